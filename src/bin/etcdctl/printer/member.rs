//! The member commands' output. `member list` prints in every format; the
//! changes (add, remove, update, promote) print as simple text or as their
//! raw response (json, protobuf), and etcd's fields and table printers do
//! not know them. `--hex` turns `member list -w json` into etcd 3.5's
//! hand-written form: IDs as hex strings, `raft_term` as bare hex digits,
//! names unescaped and the `clientURLS` key misspelt, all as etcd writes it.

use std::fmt::Write as _;

use prost::Message;

use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::{
    Member, MemberAddResponse, MemberListResponse, MemberPromoteResponse, MemberRemoveResponse,
    MemberUpdateResponse, ResponseHeader,
};

use super::{
    fields_header, json_header, json_line, table, write_stdout, Format, JsonObject, Printer,
};
use crate::exit::CtlResult;

const MEMBER_LIST_HEADER: [&str; 6] = [
    "ID",
    "Status",
    "Name",
    "Peer Addrs",
    "Client Addrs",
    "Is Learner",
];

impl Printer {
    pub fn member_list(&self, resp: &MemberListResponse) -> CtlResult {
        let out = match self.format {
            Format::Simple => {
                let mut s = String::new();
                for row in member_rows(&resp.members) {
                    let _ = writeln!(s, "{}", row.join(", "));
                }
                s.into_bytes()
            }
            Format::Table => table(&MEMBER_LIST_HEADER, &member_rows(&resp.members)).into_bytes(),
            Format::Json if self.hex => json_line(&hex_json_member_list(resp)),
            Format::Json => {
                let mut o = JsonObject::new();
                json_header(&mut o, resp.header.as_ref());
                json_members(&mut o, &resp.members);
                json_line(&o.finish())
            }
            Format::Fields => fields_member_list(resp).into_bytes(),
            Format::Protobuf => resp.encode_to_vec(),
        };
        write_stdout(&out)
    }

    pub fn member_add(&self, resp: &MemberAddResponse) -> CtlResult {
        let member_id = resp.member.as_ref().map_or(0, |m| m.id);
        let simple = format!(
            "Member {member_id:16x} added to cluster {:16x}\n",
            cluster_id(resp.header.as_ref())
        );
        self.member_change(resp, simple, |o| {
            json_header(o, resp.header.as_ref());
            if let Some(member) = &resp.member {
                o.raw("member", json_member(member));
            }
            json_members(o, &resp.members);
        })
    }

    pub fn member_remove(&self, id: u64, resp: &MemberRemoveResponse) -> CtlResult {
        let simple = format!(
            "Member {id:16x} removed from cluster {:16x}\n",
            cluster_id(resp.header.as_ref())
        );
        self.member_change(resp, simple, |o| {
            json_header(o, resp.header.as_ref());
            json_members(o, &resp.members);
        })
    }

    pub fn member_update(&self, id: u64, resp: &MemberUpdateResponse) -> CtlResult {
        let simple = format!(
            "Member {id:16x} updated in cluster {:16x}\n",
            cluster_id(resp.header.as_ref())
        );
        self.member_change(resp, simple, |o| {
            json_header(o, resp.header.as_ref());
            json_members(o, &resp.members);
        })
    }

    /// etcd 3.5's json, fields and table printers lack promote and crash on
    /// it; we print the response as they print the other member changes.
    pub fn member_promote(&self, id: u64, resp: &MemberPromoteResponse) -> CtlResult {
        let simple = format!(
            "Member {id:16x} promoted in cluster {:16x}\n",
            cluster_id(resp.header.as_ref())
        );
        self.member_change(resp, simple, |o| {
            json_header(o, resp.header.as_ref());
            json_members(o, &resp.members);
        })
    }

    fn member_change<R: Message>(
        &self,
        resp: &R,
        simple: String,
        json: impl FnOnce(&mut JsonObject),
    ) -> CtlResult {
        let out = match self.format {
            Format::Simple => simple.into_bytes(),
            Format::Json => {
                let mut o = JsonObject::new();
                json(&mut o);
                json_line(&o.finish())
            }
            Format::Protobuf => resp.encode_to_vec(),
            Format::Fields | Format::Table => return Err(self.unsupported()),
        };
        write_stdout(&out)
    }
}

fn cluster_id(header: Option<&ResponseHeader>) -> u64 {
    header.map_or(0, |h| h.cluster_id)
}

/// The rows of the simple and table forms; a member that has not started
/// yet has no name.
fn member_rows(members: &[Member]) -> Vec<Vec<String>> {
    members
        .iter()
        .map(|m| {
            let status = if m.name.is_empty() {
                "unstarted"
            } else {
                "started"
            };
            vec![
                format!("{:x}", m.id),
                status.to_string(),
                m.name.clone(),
                m.peer_ur_ls.join(","),
                m.client_ur_ls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect()
}

fn json_strings(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| gofmt::json_string(s)).collect();
    format!("[{}]", quoted.join(","))
}

fn json_member(m: &Member) -> String {
    let mut o = JsonObject::new();
    o.num("ID", m.id);
    if !m.name.is_empty() {
        o.raw("name", gofmt::json_string(&m.name));
    }
    if !m.peer_ur_ls.is_empty() {
        o.raw("peerURLs", json_strings(&m.peer_ur_ls));
    }
    if !m.client_ur_ls.is_empty() {
        o.raw("clientURLs", json_strings(&m.client_ur_ls));
    }
    o.flag("isLearner", m.is_learner);
    o.finish()
}

fn json_members(o: &mut JsonObject, members: &[Member]) {
    if !members.is_empty() {
        let items: Vec<String> = members.iter().map(json_member).collect();
        o.raw("members", format!("[{}]", items.join(",")));
    }
}

/// etcd 3.5's `printMemberListWithHexJSON`, byte for byte.
fn hex_json_member_list(resp: &MemberListResponse) -> String {
    // encoding/json writes a nil slice (a member without URLs) as null.
    let urls = |items: &[String]| {
        if items.is_empty() {
            "null".to_string()
        } else {
            json_strings(items)
        }
    };
    let h = resp.header.unwrap_or_default();
    let mut s = format!(
        "{{\"header\":{{\"cluster_id\":\"{:x}\",\"member_id\":\"{:x}\",\"raft_term\":{:x}}}",
        h.cluster_id, h.member_id, h.raft_term
    );
    for (i, m) in resp.members.iter().enumerate() {
        s.push_str(if i == 0 { ",\"members\":[" } else { "," });
        let _ = write!(
            s,
            "{{\"ID\":\"{:x}\",\"name\":\"{}\",\"peerURLs\":{},\"clientURLS\":{}}}",
            m.id,
            m.name,
            urls(&m.peer_ur_ls),
            urls(&m.client_ur_ls)
        );
        if i + 1 == resp.members.len() {
            s.push(']');
        }
    }
    s.push('}');
    s
}

fn fields_member_list(resp: &MemberListResponse) -> String {
    let mut s = String::new();
    fields_header(&mut s, resp.header.as_ref());
    for m in &resp.members {
        let _ = writeln!(s, "\"ID\" : {}", m.id);
        let _ = writeln!(s, "\"Name\" : {}", gofmt::quote(m.name.as_bytes()));
        for url in &m.peer_ur_ls {
            let _ = writeln!(s, "\"PeerURL\" : {}", gofmt::quote(url.as_bytes()));
        }
        for url in &m.client_ur_ls {
            let _ = writeln!(s, "\"ClientURL\" : {}", gofmt::quote(url.as_bytes()));
        }
        let _ = writeln!(s, "\"IsLearner\" : {}", m.is_learner);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> MemberListResponse {
        MemberListResponse {
            header: Some(ResponseHeader {
                cluster_id: 0x90eedb4021189817,
                member_id: 0xe790d0afc1f8c766,
                revision: 0,
                raft_term: 11,
            }),
            members: vec![
                Member {
                    id: 0x119e2715ced357c1,
                    name: String::new(),
                    peer_ur_ls: vec!["http://127.0.0.1:45999".into()],
                    client_ur_ls: Vec::new(),
                    is_learner: true,
                },
                Member {
                    id: 0xe790d0afc1f8c766,
                    name: "n1".into(),
                    peer_ur_ls: vec!["http://127.0.0.1:42721".into()],
                    client_ur_ls: vec!["http://127.0.0.1:42722".into()],
                    is_learner: false,
                },
            ],
        }
    }

    #[test]
    fn json_member_list_matches_etcd() {
        let mut o = JsonObject::new();
        let resp = list();
        json_header(&mut o, resp.header.as_ref());
        json_members(&mut o, &resp.members);
        assert_eq!(
            o.finish(),
            r#"{"header":{"cluster_id":10443525654398408727,"member_id":16686066072699848550,"raft_term":11},"members":[{"ID":1269495119582812097,"peerURLs":["http://127.0.0.1:45999"],"isLearner":true},{"ID":16686066072699848550,"name":"n1","peerURLs":["http://127.0.0.1:42721"],"clientURLs":["http://127.0.0.1:42722"]}]}"#
        );
    }

    #[test]
    fn hex_json_member_list_matches_etcd_3_5() {
        assert_eq!(
            hex_json_member_list(&list()),
            r#"{"header":{"cluster_id":"90eedb4021189817","member_id":"e790d0afc1f8c766","raft_term":b},"members":[{"ID":"119e2715ced357c1","name":"","peerURLs":["http://127.0.0.1:45999"],"clientURLS":null},{"ID":"e790d0afc1f8c766","name":"n1","peerURLs":["http://127.0.0.1:42721"],"clientURLS":["http://127.0.0.1:42722"]}]}"#
        );
    }

    #[test]
    fn rows_mark_unstarted_members() {
        let rows = member_rows(&list().members);
        assert_eq!(
            rows[0].join(", "),
            "119e2715ced357c1, unstarted, , http://127.0.0.1:45999, , true"
        );
    }
}
