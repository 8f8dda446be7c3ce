//! JSON ↔ protobuf as etcd's gateway maps them (grpc-gateway's JSONPb
//! with OrigName, i.e. golang/protobuf's jsonpb): field names as written
//! in the .proto (both those and the lowerCamel JSON names are read),
//! 64-bit integers as strings, bytes as standard base64, enums by name,
//! default values left out; unknown fields are ignored on input. The
//! messages are described by the descriptors of our own .proto files
//! (the same ones the gRPC code is generated from), so every message of
//! the API is covered without hand-written mappings.

use std::sync::OnceLock;

use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions,
};

/// Every message and service of the API.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptors build.rs compiled decode")
    })
}

/// A request body that is not a message of the expected type: the text
/// the gateway answers with (code InvalidArgument).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadJson(pub String);

/// Decodes the first JSON value of `body` (what the gateway reads; the
/// rest is ignored, as Go's json.Decoder leaves it) as a `desc` message
/// and returns its protobuf encoding. An empty body or `null` is an empty
/// message.
pub fn decode_request(desc: &MessageDescriptor, body: &[u8]) -> Result<Vec<u8>, BadJson> {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>();
    let value = match values.next() {
        None => serde_json::Value::Null,
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(BadJson(go_json_error(body, &e))),
    };
    decode_value(desc, value)
}

/// One JSON value as a `desc` message, encoded.
pub fn decode_value(
    desc: &MessageDescriptor,
    value: serde_json::Value,
) -> Result<Vec<u8>, BadJson> {
    let value = match value {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        serde_json::Value::Object(o) => serde_json::Value::Object(o),
        other => return Err(type_error(json_kind(&other), "map[string]json.RawMessage")),
    };
    check_message(desc, &value)?;
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let message = DynamicMessage::deserialize_with_options(desc.clone(), value, &options)
        .map_err(|e| BadJson(e.to_string()))?;
    Ok(message.encode_to_vec())
}

/// What jsonpb refuses (with unknown fields allowed), checked before the
/// general proto3 JSON rules read the value, with Go's words: a value of
/// the wrong JSON kind (`json: cannot unmarshal bool into Go value of type
/// int64`), an integer with a fraction or out of range, an enum name the
/// enum does not have, bytes that are not standard base64 with padding.
fn check_message(desc: &MessageDescriptor, value: &serde_json::Value) -> Result<(), BadJson> {
    let serde_json::Value::Object(fields) = value else {
        return Err(type_error(json_kind(value), "map[string]json.RawMessage"));
    };
    for (name, v) in fields {
        let field = desc
            .get_field_by_name(name)
            .or_else(|| desc.get_field_by_json_name(name));
        let Some(field) = field else { continue };
        match (field.is_list(), v) {
            (_, serde_json::Value::Null) => {}
            (true, serde_json::Value::Array(items)) => {
                for item in items {
                    check_value(&field.kind(), item)?;
                }
            }
            (true, other) => return Err(type_error(json_kind(other), "[]json.RawMessage")),
            (false, v) => check_value(&field.kind(), v)?,
        }
    }
    Ok(())
}

/// encoding/json's UnmarshalTypeError.
fn type_error(what: &str, go_type: &str) -> BadJson {
    BadJson(format!(
        "json: cannot unmarshal {what} into Go value of type {go_type}"
    ))
}

/// The Go type golang/protobuf generates for an enum: its package, then
/// its nesting joined by '_' (etcdserverpb.RangeRequest_SortOrder).
fn go_enum_name(e: &prost_reflect::EnumDescriptor) -> String {
    let full = e.full_name();
    let package = e.parent_file().package_name().to_string();
    let rest = full
        .strip_prefix(&format!("{package}."))
        .unwrap_or(full)
        .replace('.', "_");
    format!("{package}.{rest}")
}

fn check_value(kind: &prost_reflect::Kind, v: &serde_json::Value) -> Result<(), BadJson> {
    use prost_reflect::Kind;
    use serde_json::Value;
    let integer = match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Some(("int32", i32::MIN as i128, i32::MAX as i128))
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Some(("int64", i64::MIN as i128, i64::MAX as i128))
        }
        Kind::Uint32 | Kind::Fixed32 => Some(("uint32", 0, u32::MAX as i128)),
        Kind::Uint64 | Kind::Fixed64 => Some(("uint64", 0, u64::MAX as i128)),
        _ => None,
    };
    if let Some((go_type, min, max)) = integer {
        // jsonpb strips the quotes of a quoted number and hands the rest
        // to encoding/json as a JSON text of its own
        let owned;
        let v = match v {
            Value::String(inner) => {
                owned = serde_json::from_str::<Value>(inner).map_err(|e| {
                    BadJson(
                        go_json_error(inner.as_bytes(), &e)
                            .replace("unexpected EOF", "unexpected end of JSON input"),
                    )
                })?;
                if let Value::Number(_) = owned {
                    return check_integer(inner.trim(), go_type, min, max);
                }
                &owned
            }
            v => v,
        };
        return match v {
            Value::Null => Ok(()),
            Value::Number(n) => check_integer(&n.to_string(), go_type, min, max),
            other => Err(type_error(json_kind(other), go_type)),
        };
    }
    match (kind, v) {
        (Kind::Enum(e), Value::String(s)) if e.get_value_by_name(s).is_none() => Err(BadJson(
            format!("unknown value {s:?} for enum {}", go_enum_name(e)),
        )),
        (Kind::Enum(e), Value::Number(n)) => check_integer(
            &n.to_string(),
            &go_enum_name(e),
            i32::MIN as i128,
            i32::MAX as i128,
        ),
        (Kind::Enum(e), Value::Bool(_) | Value::Array(_) | Value::Object(_)) => {
            Err(type_error(json_kind(v), &go_enum_name(e)))
        }
        (Kind::Bytes, Value::String(s)) => check_base64(s),
        (Kind::Bytes, Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_)) => {
            Err(type_error(json_kind(v), "[]uint8"))
        }
        (Kind::String, Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_)) => {
            Err(type_error(json_kind(v), "string"))
        }
        (Kind::Bool, Value::String(_) | Value::Number(_) | Value::Array(_) | Value::Object(_)) => {
            Err(type_error(json_kind(v), "bool"))
        }
        (Kind::Message(_), Value::Null) => Ok(()),
        (Kind::Message(m), v) => check_message(m, v),
        _ => Ok(()),
    }
}

/// A JSON number (as written) stored into a Go integer: a fraction, an
/// exponent or a value out of range is encoding/json's type error, with
/// the number in it.
fn check_integer(text: &str, go_type: &str, min: i128, max: i128) -> Result<(), BadJson> {
    match text.parse::<i128>() {
        Ok(n) if (min..=max).contains(&n) => Ok(()),
        _ => Err(type_error(&format!("number {text}"), go_type)),
    }
}

/// Go's base64.StdEncoding: the standard alphabet, padded to whole
/// quanta; the error names the offset Go reports.
fn check_base64(s: &str) -> Result<(), BadJson> {
    let b = s.as_bytes();
    let bad = |at: usize| Err(BadJson(format!("illegal base64 data at input byte {at}")));
    let data_end = b.iter().position(|&c| c == b'=').unwrap_or(b.len());
    for (i, &c) in b[..data_end].iter().enumerate() {
        if !(c.is_ascii_alphanumeric() || c == b'+' || c == b'/') {
            return bad(i);
        }
    }
    if b.len() % 4 != 0 {
        return bad(b.len() / 4 * 4);
    }
    let padding = b.len() - data_end;
    if padding > 2 || b[data_end..].iter().any(|&c| c != b'=') {
        return bad(data_end);
    }
    Ok(())
}

/// A response message's JSON, as etcd's gateway writes it.
pub fn encode_response(desc: &MessageDescriptor, bytes: &[u8]) -> Result<String, String> {
    let message = DynamicMessage::decode(desc.clone(), bytes).map_err(|e| e.to_string())?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true)
        .stringify_64_bit_integers(true);
    let mut out = serde_json::Serializer::new(Vec::new());
    message
        .serialize_with_options(&mut out, &options)
        .map_err(|e| e.to_string())?;
    Ok(go_escape(
        &String::from_utf8(out.into_inner()).map_err(|e| e.to_string())?,
    ))
}

/// Go's encoding/json escapes these in every string (HTML safety); they
/// can only occur inside strings, so the whole text can be rewritten.
pub fn go_escape(json: &str) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json.to_string();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Go's json.Decoder's words for a body that is not JSON.
pub(super) fn go_json_error(body: &[u8], e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    // a body that cannot begin a value at all
    if let Some(&c) = body.iter().find(|c| !c.is_ascii_whitespace()) {
        if !matches!(
            c,
            b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
        ) {
            let c =
                String::from_utf8_lossy(&body[body.iter().position(|&b| b == c).unwrap_or(0)..])
                    .chars()
                    .next()
                    .unwrap_or('?');
            return format!("invalid character {c:?} looking for beginning of value");
        }
    }
    match e.classify() {
        Category::Eof => "unexpected EOF".into(),
        Category::Syntax if e.to_string().starts_with("expected value") => {
            // the character where a value should have begun
            let line = body.split(|&c| c == b'\n').nth(e.line().saturating_sub(1));
            let c = line
                .and_then(|l| std::str::from_utf8(l).ok())
                .and_then(|l| l.chars().nth(e.column().saturating_sub(1)));
            match c {
                Some(c) => format!("invalid character {c:?} looking for beginning of value"),
                None => e.to_string(),
            }
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(name: &str) -> MessageDescriptor {
        pool().get_message_by_name(name).expect(name)
    }

    #[test]
    fn requests_read_proto_and_json_names_numbers_and_strings() {
        let range = desc("etcdserverpb.RangeRequest");
        let a =
            decode_request(&range, br#"{"key":"Zm9v","range_end":"Zm9w","limit":"5"}"#).unwrap();
        let b = decode_request(
            &range,
            br#"{"key":"Zm9v","rangeEnd":"Zm9w","limit":5,"nope":1} trailing"#,
        )
        .unwrap();
        assert_eq!(a, b);
        let r = crate::proto::etcdserverpb::RangeRequest::decode(a.as_slice()).unwrap();
        assert_eq!(
            (r.key.as_slice(), r.range_end.as_slice(), r.limit),
            (&b"foo"[..], &b"fop"[..], 5)
        );
        assert!(decode_request(&range, b"").unwrap().is_empty());
        assert!(decode_request(&range, b"null").unwrap().is_empty());
        assert_eq!(
            decode_request(&range, b"[1,2]").unwrap_err().0,
            "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"
        );
        assert_eq!(
            decode_request(&range, br#"{"key":"#).unwrap_err().0,
            "unexpected EOF"
        );
        for (body, go_says) in [
            (r#"{"limit":1.5}"#, "json: cannot unmarshal number 1.5 into Go value of type int64"),
            (r#"{"limit":"99999999999999999999"}"#, "json: cannot unmarshal number 99999999999999999999 into Go value of type int64"),
            (r#"{"limit":true}"#, "json: cannot unmarshal bool into Go value of type int64"),
            (r#"{"limit":"abc"}"#, "invalid character 'a' looking for beginning of value"),
            (r#"{"serializable":"true"}"#, "json: cannot unmarshal string into Go value of type bool"),
            (r#"{"key":5}"#, "json: cannot unmarshal number into Go value of type []uint8"),
            (r#"{"sort_order":true}"#, "json: cannot unmarshal bool into Go value of type etcdserverpb.RangeRequest_SortOrder"),
        ] {
            assert_eq!(decode_request(&range, body.as_bytes()).unwrap_err().0, go_says, "{body}");
        }
        for accepted in [
            r#"{"limit":"-1"}"#,
            r#"{"limit":5}"#,
            r#"{"limit":null}"#,
            r#"{"sort_order":7}"#,
        ] {
            assert!(
                decode_request(&range, accepted.as_bytes()).is_ok(),
                "{accepted}"
            );
        }
        let lease = desc("etcdserverpb.LeaseGrantRequest");
        assert_eq!(
            decode_request(&lease, br#"{"TTL":[1]}"#).unwrap_err().0,
            "json: cannot unmarshal array into Go value of type int64"
        );
        let user = desc("etcdserverpb.AuthUserAddRequest");
        assert_eq!(
            decode_request(&user, br#"{"name":1}"#).unwrap_err().0,
            "json: cannot unmarshal number into Go value of type string"
        );
        assert_eq!(
            decode_request(&range, br#"{"sort_order":"SIDEWAYS"}"#)
                .unwrap_err()
                .0,
            "unknown value \"SIDEWAYS\" for enum etcdserverpb.RangeRequest_SortOrder"
        );
        assert!(decode_request(&range, br#"{"sort_order":"DESCEND"}"#).is_ok());
        assert_eq!(
            decode_request(&range, br#"{"key":"Zm9vMg"}"#)
                .unwrap_err()
                .0,
            "illegal base64 data at input byte 4"
        );
        assert_eq!(
            decode_request(&range, br#"{"key":"-_8="}"#).unwrap_err().0,
            "illegal base64 data at input byte 0"
        );
        assert_eq!(
            decode_request(&range, b"hello").unwrap_err().0,
            "invalid character 'h' looking for beginning of value"
        );
        let txn = desc("etcdserverpb.TxnRequest");
        assert!(decode_request(&txn, br#"{"compare":[{"result":"NOPE"}]}"#).is_err());
        assert_eq!(
            decode_request(&txn, br#"{"compare":{}}"#).unwrap_err().0,
            "json: cannot unmarshal object into Go value of type []json.RawMessage"
        );
        assert_eq!(
            decode_request(&txn, br#"{"success":["x"]}"#).unwrap_err().0,
            "json: cannot unmarshal string into Go value of type map[string]json.RawMessage"
        );
    }

    #[test]
    fn responses_are_written_as_etcds_gateway_writes_them() {
        use crate::proto::etcdserverpb::{RangeResponse, ResponseHeader};
        use crate::proto::mvccpb::KeyValue;
        let r = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 6001611773266757492,
                member_id: 13049071153751544597,
                revision: 2,
                raft_term: 2,
            }),
            kvs: vec![KeyValue {
                key: b"<a&b>".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: Vec::new(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        let json =
            encode_response(&desc("etcdserverpb.RangeResponse"), &r.encode_to_vec()).unwrap();
        assert_eq!(
            json,
            r#"{"header":{"cluster_id":"6001611773266757492","member_id":"13049071153751544597","revision":"2","raft_term":"2"},"kvs":[{"key":"PGEmYj4=","create_revision":"2","mod_revision":"2","version":"1"}],"count":"1"}"#
        );
        let missing = RangeResponse {
            header: r.header,
            ..Default::default()
        };
        let json = encode_response(
            &desc("etcdserverpb.RangeResponse"),
            &missing.encode_to_vec(),
        )
        .unwrap();
        assert!(json.ends_with(r#""raft_term":"2"}}"#), "{json}");
        assert_eq!(
            go_escape("\"a<b>&\u{2028}\""),
            "\"a\\u003cb\\u003e\\u0026\\u2028\""
        );
    }
}
