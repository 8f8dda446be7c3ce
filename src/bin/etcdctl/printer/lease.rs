//! The lease commands' output. clientv3 wraps the lease responses in its
//! own structs that embed the response header, so their JSON has the
//! header's fields inline and Go-cased names, and the protobuf printer
//! finds only the embedded header's `Marshal` (revoke's response has none
//! at all and cannot be printed as protobuf).

use std::fmt::Write as _;

use prost::Message;

use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::{
    LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeResponse,
    LeaseTimeToLiveResponse, ResponseHeader,
};

use super::{fields_header, json_header, json_line, write_stdout, Format, JsonObject, Printer};
use crate::exit::{CtlResult, ExitError};

impl Printer {
    pub fn lease_grant(&self, resp: &LeaseGrantResponse) -> CtlResult {
        let text = match self.format {
            Format::Simple => format!(
                "lease {} granted with TTL({}s)\n",
                lease_id_text(resp.id),
                resp.ttl
            )
            .into_bytes(),
            Format::Json => {
                let mut o = embedded_header(resp.header.as_ref());
                o.raw("ID", resp.id.to_string());
                o.raw("TTL", resp.ttl.to_string());
                o.raw("Error", gofmt::json_string(&resp.error));
                json_line(&o.finish())
            }
            Format::Fields => id_ttl_fields(resp.header.as_ref(), resp.id, resp.ttl).into_bytes(),
            Format::Protobuf => header_bytes(resp.header.as_ref()),
            Format::Table => return Err(self.unsupported()),
        };
        write_stdout(&text)
    }

    pub fn lease_revoke(&self, id: i64, resp: &LeaseRevokeResponse) -> CtlResult {
        let text = match self.format {
            Format::Simple => format!("lease {} revoked\n", lease_id_text(id)).into_bytes(),
            Format::Json => {
                let mut o = JsonObject::new();
                json_header(&mut o, resp.header.as_ref());
                json_line(&o.finish())
            }
            Format::Fields => {
                let mut s = String::new();
                fields_header(&mut s, resp.header.as_ref());
                s.into_bytes()
            }
            Format::Protobuf => {
                // clientv3.LeaseRevokeResponse has no Marshal method.
                let header = match &resp.header {
                    Some(h) => compact_header_text(h),
                    None => "<nil>".to_string(),
                };
                return Err(ExitError::bad_feature(format!(
                    "marshal unsupported for type clientv3.LeaseRevokeResponse ({{{header}}})"
                )));
            }
            Format::Table => return Err(self.unsupported()),
        };
        write_stdout(&text)
    }

    pub fn lease_keep_alive(&self, resp: &LeaseKeepAliveResponse) -> CtlResult {
        let text = match self.format {
            Format::Simple => format!(
                "lease {} keepalived with TTL({})\n",
                lease_id_text(resp.id),
                resp.ttl
            )
            .into_bytes(),
            Format::Json => {
                let mut o = embedded_header(resp.header.as_ref());
                o.raw("ID", resp.id.to_string());
                o.raw("TTL", resp.ttl.to_string());
                json_line(&o.finish())
            }
            Format::Fields => id_ttl_fields(resp.header.as_ref(), resp.id, resp.ttl).into_bytes(),
            Format::Protobuf => header_bytes(resp.header.as_ref()),
            Format::Table => return Err(self.unsupported()),
        };
        write_stdout(&text)
    }

    pub fn lease_time_to_live(&self, resp: &LeaseTimeToLiveResponse, keys: bool) -> CtlResult {
        let text = match self.format {
            Format::Simple => simple_time_to_live(resp, keys).into_bytes(),
            Format::Json => {
                let mut o = embedded_header(resp.header.as_ref());
                o.raw("id", resp.id.to_string());
                o.raw("ttl", resp.ttl.to_string());
                o.raw("granted-ttl", resp.granted_ttl.to_string());
                let list = if resp.keys.is_empty() {
                    "null".to_string()
                } else {
                    let items: Vec<String> = resp.keys.iter().map(|k| json_bytes(k)).collect();
                    format!("[{}]", items.join(","))
                };
                o.raw("keys", list);
                json_line(&o.finish())
            }
            Format::Fields => {
                let mut s = id_ttl_fields(resp.header.as_ref(), resp.id, resp.ttl);
                let _ = writeln!(s, "\"GrantedTTL\" : {}", resp.granted_ttl);
                for key in &resp.keys {
                    let _ = writeln!(s, "\"Key\" : {}", gofmt::quote(key));
                }
                s.into_bytes()
            }
            Format::Protobuf => header_bytes(resp.header.as_ref()),
            Format::Table => return Err(self.unsupported()),
        };
        write_stdout(&text)
    }

    pub fn lease_list(&self, resp: &LeaseLeasesResponse) -> CtlResult {
        let text = match self.format {
            Format::Simple => {
                let mut s = format!("found {} leases\n", resp.leases.len());
                for lease in &resp.leases {
                    let _ = writeln!(s, "{}", lease_id_text(lease.id));
                }
                s.into_bytes()
            }
            Format::Json => {
                let mut o = embedded_header(resp.header.as_ref());
                let items: Vec<String> = resp
                    .leases
                    .iter()
                    .map(|l| format!("{{\"id\":{}}}", l.id))
                    .collect();
                o.raw("leases", format!("[{}]", items.join(",")));
                json_line(&o.finish())
            }
            Format::Fields => {
                let mut s = String::new();
                fields_header(&mut s, resp.header.as_ref());
                for lease in &resp.leases {
                    let _ = writeln!(s, "\"ID\" : {}", lease.id);
                }
                s.into_bytes()
            }
            Format::Protobuf => header_bytes(resp.header.as_ref()),
            Format::Table => return Err(self.unsupported()),
        };
        write_stdout(&text)
    }
}

/// A lease ID as etcdctl prints it: Go's `%016x` of an int64 (a sign,
/// then zero padding, for the negative IDs no server hands out).
pub fn lease_id_text(id: i64) -> String {
    if id < 0 {
        format!("-{:015x}", id.unsigned_abs())
    } else {
        format!("{id:016x}")
    }
}

/// The simple format of `lease timetolive`.
fn simple_time_to_live(resp: &LeaseTimeToLiveResponse, keys: bool) -> String {
    if resp.granted_ttl == 0 && resp.ttl == -1 {
        return format!("lease {} already expired\n", lease_id_text(resp.id));
    }
    let mut text = format!(
        "lease {} granted with TTL({}s), remaining({}s)",
        lease_id_text(resp.id),
        resp.granted_ttl,
        resp.ttl
    );
    if keys {
        let names: Vec<String> = resp
            .keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        let _ = write!(text, ", attached keys([{}])", names.join(" "));
    }
    text.push('\n');
    text
}

/// The JSON of a struct embedding `*pb.ResponseHeader`: the header's
/// fields, inline (none when the pointer is nil).
fn embedded_header(header: Option<&ResponseHeader>) -> JsonObject {
    let mut o = JsonObject::new();
    if let Some(h) = header {
        o.num("cluster_id", h.cluster_id);
        o.num("member_id", h.member_id);
        o.num("revision", h.revision);
        o.num("raft_term", h.raft_term);
    }
    o
}

fn id_ttl_fields(header: Option<&ResponseHeader>, id: i64, ttl: i64) -> String {
    let mut s = String::new();
    fields_header(&mut s, header);
    let _ = writeln!(s, "\"ID\" : {id}");
    let _ = writeln!(s, "\"TTL\" : {ttl}");
    s
}

/// What the protobuf printer writes for the wrapped lease responses: the
/// embedded header's encoding.
fn header_bytes(header: Option<&ResponseHeader>) -> Vec<u8> {
    header.map(Message::encode_to_vec).unwrap_or_default()
}

/// gogo-protobuf's compact text of a header (`%v` of the pointer): the
/// non-zero fields, each followed by a space.
fn compact_header_text(h: &ResponseHeader) -> String {
    let mut s = String::new();
    if h.cluster_id != 0 {
        let _ = write!(s, "cluster_id:{} ", h.cluster_id);
    }
    if h.member_id != 0 {
        let _ = write!(s, "member_id:{} ", h.member_id);
    }
    if h.revision != 0 {
        let _ = write!(s, "revision:{} ", h.revision);
    }
    if h.raft_term != 0 {
        let _ = write!(s, "raft_term:{} ", h.raft_term);
    }
    s
}

/// A `[]byte` in Go's JSON: base64 in a string.
fn json_bytes(bytes: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "\"{}\"",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_to_live_reads_like_etcdctl() {
        let resp = LeaseTimeToLiveResponse {
            header: None,
            id: 0x1234,
            ttl: 99,
            granted_ttl: 100,
            keys: vec![b"k1".to_vec(), b"k2".to_vec()],
        };
        assert_eq!(
            simple_time_to_live(&resp, true),
            "lease 0000000000001234 granted with TTL(100s), remaining(99s), attached keys([k1 k2])\n"
        );
        let gone = LeaseTimeToLiveResponse {
            ttl: -1,
            granted_ttl: 0,
            ..resp
        };
        assert_eq!(
            simple_time_to_live(&gone, false),
            "lease 0000000000001234 already expired\n"
        );
    }

    #[test]
    fn revoke_header_text_is_gogos() {
        let h = ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 4,
            raft_term: 0,
        };
        assert_eq!(
            compact_header_text(&h),
            "cluster_id:1 member_id:2 revision:4 "
        );
    }
}
