//! The protobuf wire format, just enough to take a message apart field by
//! field and put it back together with a field changed: what the hostile
//! input test and the fuzzer send that generated types cannot express
//! (invalid UTF-8 in a string, a varint of -1 for a bool, a cut message).

// Each test crate uses a different part of this module.
#![allow(dead_code)]

#[derive(Clone, Debug)]
pub enum Value {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(Vec<u8>),
    Fixed32([u8; 4]),
}

#[derive(Clone, Debug)]
pub struct Field {
    pub number: u64,
    pub value: Value,
}

fn read_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The fields of a message, or None when `buf` is not one (groups and
/// wire types 6 and 7 are not accepted: plain text rarely parses).
pub fn parse(mut buf: &[u8]) -> Option<Vec<Field>> {
    let mut fields = Vec::new();
    while !buf.is_empty() {
        let key = read_varint(&mut buf)?;
        let number = key >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return None;
        }
        let value = match key & 7 {
            0 => Value::Varint(read_varint(&mut buf)?),
            1 => {
                let v: [u8; 8] = buf.get(..8)?.try_into().ok()?;
                buf = &buf[8..];
                Value::Fixed64(v)
            }
            2 => {
                let len = usize::try_from(read_varint(&mut buf)?).ok()?;
                let v = buf.get(..len)?.to_vec();
                buf = &buf[len..];
                Value::Bytes(v)
            }
            5 => {
                let v: [u8; 4] = buf.get(..4)?.try_into().ok()?;
                buf = &buf[4..];
                Value::Fixed32(v)
            }
            _ => return None,
        };
        fields.push(Field { number, value });
    }
    Some(fields)
}

pub fn encode(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        let wire = match f.value {
            Value::Varint(_) => 0,
            Value::Fixed64(_) => 1,
            Value::Bytes(_) => 2,
            Value::Fixed32(_) => 5,
        };
        prost::encoding::encode_varint(f.number << 3 | wire, &mut out);
        match &f.value {
            Value::Varint(v) => prost::encoding::encode_varint(*v, &mut out),
            Value::Fixed64(b) => out.extend_from_slice(b),
            Value::Fixed32(b) => out.extend_from_slice(b),
            Value::Bytes(b) => {
                prost::encoding::encode_varint(b.len() as u64, &mut out);
                out.extend_from_slice(b);
            }
        }
    }
    out
}
