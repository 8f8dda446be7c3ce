//! Output of the Maintenance commands that report on or steer the cluster:
//! `endpoint hashkv` (every format but protobuf) and `move-leader` (simple
//! text, or the raw response as json or protobuf).

use std::fmt::Write as _;

use prost::Message;

use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::{HashKvResponse, MoveLeaderResponse};

use super::{
    fields_header, json_header, json_line, table, write_stdout, Format, JsonObject, Printer,
};
use crate::exit::CtlResult;

/// One endpoint's `endpoint hashkv` result.
#[derive(Debug, Clone)]
pub struct EndpointHashKv {
    pub endpoint: String,
    pub response: HashKvResponse,
}

impl Printer {
    pub fn endpoint_hash_kv(&self, list: &[EndpointHashKv]) -> CtlResult {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|h| vec![h.endpoint.clone(), h.response.hash.to_string()])
            .collect();
        let out = match self.format {
            Format::Simple => {
                let mut s = String::new();
                for row in &rows {
                    let _ = writeln!(s, "{}", row.join(", "));
                }
                s
            }
            Format::Table => table(&["endpoint", "hash"], &rows),
            Format::Json => {
                let items: Vec<String> = list
                    .iter()
                    .map(|h| {
                        let mut o = JsonObject::new();
                        if !h.endpoint.is_empty() {
                            o.raw("Endpoint", gofmt::json_string(&h.endpoint));
                        }
                        o.raw("HashKV", json_hash_kv(&h.response));
                        o.finish()
                    })
                    .collect();
                format!("[{}]\n", items.join(","))
            }
            Format::Fields => {
                let mut s = String::new();
                for h in list {
                    fields_header(&mut s, h.response.header.as_ref());
                    let _ = writeln!(s, "\"Endpoint\" : {}", gofmt::quote(h.endpoint.as_bytes()));
                    let _ = writeln!(s, "\"Hash\" : {}", h.response.hash);
                    s.push('\n');
                }
                s
            }
            Format::Protobuf => return Err(self.unsupported()),
        };
        write_stdout(out.as_bytes())
    }

    /// `leader` and `target` print as etcd's `types.ID`: bare hex.
    pub fn move_leader(&self, leader: u64, target: u64, resp: &MoveLeaderResponse) -> CtlResult {
        let out = match self.format {
            Format::Simple => {
                format!("Leadership transferred from {leader:x} to {target:x}\n").into_bytes()
            }
            Format::Json => {
                let mut o = JsonObject::new();
                json_header(&mut o, resp.header.as_ref());
                json_line(&o.finish())
            }
            Format::Protobuf => resp.encode_to_vec(),
            Format::Fields | Format::Table => return Err(self.unsupported()),
        };
        write_stdout(&out)
    }
}

fn json_hash_kv(resp: &HashKvResponse) -> String {
    let mut o = JsonObject::new();
    json_header(&mut o, resp.header.as_ref());
    o.num("hash", resp.hash);
    o.num("compact_revision", resp.compact_revision);
    o.num("hash_revision", resp.hash_revision);
    o.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsetcd::proto::etcdserverpb::ResponseHeader;

    #[test]
    fn json_hash_kv_matches_etcd() {
        let resp = HashKvResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 2,
                raft_term: 7,
            }),
            hash: 3628877040,
            compact_revision: -1,
            hash_revision: 0,
        };
        assert_eq!(
            json_hash_kv(&resp),
            r#"{"header":{"cluster_id":1,"member_id":2,"revision":2,"raft_term":7},"hash":3628877040,"compact_revision":-1}"#
        );
    }
}
