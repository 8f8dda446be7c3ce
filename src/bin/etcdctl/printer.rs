//! Output formats, as etcdctl's `printer*.go` write them: `simple` (plain
//! text, `--hex` escapes), `json` (Go's encoding/json of the gogo-protobuf
//! structs: snake_case names, omitted zero fields, base64 bytes), `fields`
//! (`"Name" : value` lines), `protobuf` (the raw message) and `table` (only
//! for the endpoint commands and `member list`).

use rsetcd::gofmt::table;
use std::fmt::Write as _;
use std::io::Write as _;

use base64::Engine as _;
use prost::Message;

use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::{
    response_op, DeleteRangeResponse, PutResponse, RangeResponse, ResponseHeader, StatusResponse,
    TxnResponse,
};
use rsetcd::proto::mvccpb::KeyValue;

use crate::exit::{CtlResult, ExitError};
use crate::flags::FlagSet;

mod alarm;
mod auth;
mod lease;
mod maintenance;
mod member;
mod watch;

pub use auth::HeaderOnly;
pub use lease::lease_id_text;
pub use maintenance::EndpointHashKv;
pub use watch::event_type_name;

/// The `--write-out` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Simple,
    Json,
    Fields,
    Protobuf,
    Table,
}

/// Prints command results in the chosen format.
#[derive(Debug, Clone)]
pub struct Printer {
    pub format: Format,
    pub hex: bool,
    /// `get --print-value-only`: simple output without keys.
    pub value_only: bool,
}

/// One endpoint's `endpoint health` result.
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    pub endpoint: String,
    pub health: bool,
    pub took: String,
    pub error: String,
}

/// One endpoint's `endpoint status` result.
#[derive(Debug, Clone)]
pub struct EndpointStatus {
    pub endpoint: String,
    pub status: StatusResponse,
}

impl Printer {
    /// `--write-out` and `--hex`, as `initDisplayFromCmd` reads them.
    pub fn from_flags(flags: &FlagSet) -> CtlResult<Printer> {
        let format = match flags.string("write-out").as_str() {
            "simple" => Format::Simple,
            "json" => Format::Json,
            "fields" => Format::Fields,
            "protobuf" => Format::Protobuf,
            "table" => Format::Table,
            _ => return Err(ExitError::bad_feature("unsupported output format")),
        };
        Ok(Printer {
            format,
            hex: flags.bool("hex"),
            value_only: false,
        })
    }

    fn unsupported(&self) -> ExitError {
        let name = match self.format {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Protobuf => "protobuf",
            Format::Table => "table",
        };
        ExitError::bad_feature(format!("{name} not supported as output format"))
    }

    pub fn put(&self, resp: &PutResponse) -> CtlResult {
        self.kv_response(resp, Self::simple_put, json_put, fields_put)
    }

    pub fn get(&self, resp: &RangeResponse) -> CtlResult {
        self.kv_response(resp, Self::simple_get, json_range, fields_get)
    }

    pub fn del(&self, resp: &DeleteRangeResponse) -> CtlResult {
        self.kv_response(resp, Self::simple_del, json_delete, fields_del)
    }

    pub fn txn(&self, resp: &TxnResponse) -> CtlResult {
        self.kv_response(resp, Self::simple_txn, json_txn, fields_txn)
    }

    /// The KV responses print alike: one function per format, no table
    /// form, and protobuf is the response message itself.
    fn kv_response<R: Message>(
        &self,
        resp: &R,
        simple: fn(&Self, &mut Vec<u8>, &R),
        json: fn(&R) -> String,
        fields: fn(&mut Vec<u8>, &R),
    ) -> CtlResult {
        let mut out = Vec::new();
        match self.format {
            Format::Simple => simple(self, &mut out, resp),
            Format::Json => out.extend(json_line(&json(resp))),
            Format::Fields => fields(&mut out, resp),
            Format::Protobuf => out.extend(resp.encode_to_vec()),
            Format::Table => return Err(self.unsupported()),
        }
        write_stdout(&out)
    }

    /// Health goes to stderr in simple format (etcd 3.5 does so).
    pub fn endpoint_health(&self, list: &[EndpointHealth]) -> CtlResult {
        let mut out = Vec::new();
        match self.format {
            Format::Simple => {
                let mut err = String::new();
                for h in list {
                    if h.error.is_empty() {
                        let _ = writeln!(
                            err,
                            "{} is healthy: successfully committed proposal: took = {}",
                            h.endpoint, h.took
                        );
                    } else {
                        let _ = writeln!(
                            err,
                            "{} is unhealthy: failed to commit proposal: {}",
                            h.endpoint, h.error
                        );
                    }
                }
                eprint!("{err}");
            }
            Format::Json => {
                let items: Vec<String> = list
                    .iter()
                    .map(|h| {
                        let mut o = JsonObject::new();
                        o.raw("endpoint", gofmt::json_string(&h.endpoint));
                        o.raw("health", h.health.to_string());
                        o.raw("took", gofmt::json_string(&h.took));
                        if !h.error.is_empty() {
                            o.raw("error", gofmt::json_string(&h.error));
                        }
                        o.finish()
                    })
                    .collect();
                out.extend(json_line(&format!("[{}]", items.join(","))));
            }
            Format::Fields => {
                let mut s = String::new();
                for h in list {
                    let _ = writeln!(s, "\"Endpoint\" : {}", gofmt::quote(h.endpoint.as_bytes()));
                    let _ = writeln!(s, "\"Health\" : {}", h.health);
                    let _ = writeln!(s, "\"Took\" : {}", h.took);
                    let _ = writeln!(s, "\"Error\" : {}", h.error);
                    s.push('\n');
                }
                out.extend(s.into_bytes());
            }
            Format::Protobuf => return Err(self.unsupported()),
            Format::Table => {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|h| {
                        vec![
                            h.endpoint.clone(),
                            h.health.to_string(),
                            h.took.clone(),
                            h.error.clone(),
                        ]
                    })
                    .collect();
                out.extend(table(&["endpoint", "health", "took", "error"], &rows).into_bytes());
            }
        }
        write_stdout(&out)
    }

    pub fn endpoint_status(&self, list: &[EndpointStatus]) -> CtlResult {
        let mut out = Vec::new();
        match self.format {
            Format::Simple => {
                for row in status_rows(list) {
                    out.extend(format!("{}\n", row.join(", ")).into_bytes());
                }
            }
            Format::Json => {
                let items: Vec<String> = list
                    .iter()
                    .map(|s| {
                        let mut o = JsonObject::new();
                        o.raw("Endpoint", gofmt::json_string(&s.endpoint));
                        o.raw("Status", json_status(&s.status));
                        o.finish()
                    })
                    .collect();
                out.extend(json_line(&format!("[{}]", items.join(","))));
            }
            Format::Fields => {
                let mut s = String::new();
                for ep in list {
                    let st = &ep.status;
                    fields_header(&mut s, st.header.as_ref());
                    let _ = writeln!(s, "\"Version\" : {}", gofmt::quote(st.version.as_bytes()));
                    let _ = writeln!(s, "\"DBSize\" : {}", st.db_size);
                    let _ = writeln!(s, "\"Leader\" : {}", st.leader);
                    let _ = writeln!(s, "\"IsLearner\" : {}", st.is_learner);
                    let _ = writeln!(s, "\"RaftIndex\" : {}", st.raft_index);
                    let _ = writeln!(s, "\"RaftTerm\" : {}", st.raft_term);
                    let _ = writeln!(s, "\"RaftAppliedIndex\" : {}", st.raft_applied_index);
                    let _ = writeln!(s, "\"Errors\" : [{}]", st.errors.join(" "));
                    let _ = writeln!(s, "\"Endpoint\" : {}", gofmt::quote(ep.endpoint.as_bytes()));
                    s.push('\n');
                }
                out.extend(s.into_bytes());
            }
            Format::Protobuf => return Err(self.unsupported()),
            Format::Table => {
                let header = [
                    "endpoint",
                    "ID",
                    "version",
                    "db size",
                    "is leader",
                    "is learner",
                    "raft term",
                    "raft index",
                    "raft applied index",
                    "errors",
                ];
                out.extend(table(&header, &status_rows(list)).into_bytes());
            }
        }
        write_stdout(&out)
    }

    fn simple_kv(&self, out: &mut Vec<u8>, kv: &KeyValue) {
        if !self.value_only {
            self.simple_bytes(out, &kv.key);
        }
        self.simple_bytes(out, &kv.value);
    }

    fn simple_bytes(&self, out: &mut Vec<u8>, bytes: &[u8]) {
        if self.hex {
            for b in bytes {
                out.extend(format!("\\x{b:02x}").into_bytes());
            }
        } else {
            out.extend_from_slice(bytes);
        }
        out.push(b'\n');
    }

    fn simple_put(&self, out: &mut Vec<u8>, resp: &PutResponse) {
        out.extend_from_slice(b"OK\n");
        if let Some(prev) = &resp.prev_kv {
            self.simple_kv(out, prev);
        }
    }

    fn simple_get(&self, out: &mut Vec<u8>, resp: &RangeResponse) {
        for kv in &resp.kvs {
            self.simple_kv(out, kv);
        }
    }

    fn simple_del(&self, out: &mut Vec<u8>, resp: &DeleteRangeResponse) {
        out.extend(format!("{}\n", resp.deleted).into_bytes());
        for kv in &resp.prev_kvs {
            self.simple_kv(out, kv);
        }
    }

    fn simple_txn(&self, out: &mut Vec<u8>, resp: &TxnResponse) {
        out.extend_from_slice(if resp.succeeded {
            b"SUCCESS\n"
        } else {
            b"FAILURE\n"
        });
        for op in &resp.responses {
            out.push(b'\n');
            match &op.response {
                Some(response_op::Response::ResponseDeleteRange(r)) => self.simple_del(out, r),
                Some(response_op::Response::ResponsePut(r)) => self.simple_put(out, r),
                Some(response_op::Response::ResponseRange(r)) => self.simple_get(out, r),
                other => {
                    out.extend(format!("unexpected response {other:?}\n").into_bytes());
                }
            }
        }
    }
}

fn write_stdout(bytes: &[u8]) -> CtlResult {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|err| ExitError::error(format!("write stdout: {err}")))
}

fn status_rows(list: &[EndpointStatus]) -> Vec<Vec<String>> {
    list.iter()
        .map(|ep| {
            let st = &ep.status;
            let member_id = st.header.as_ref().map_or(0, |h| h.member_id);
            vec![
                ep.endpoint.clone(),
                format!("{member_id:x}"),
                st.version.clone(),
                gofmt::humanize_bytes(u64::try_from(st.db_size).unwrap_or(0)),
                (st.leader == member_id).to_string(),
                st.is_learner.to_string(),
                st.raft_term.to_string(),
                st.raft_index.to_string(),
                st.raft_applied_index.to_string(),
                st.errors.join(", "),
            ]
        })
        .collect()
}

// ---- fields ----

fn fields_header(s: &mut String, header: Option<&ResponseHeader>) {
    let h = header.cloned().unwrap_or_default();
    let _ = writeln!(s, "\"ClusterID\" : {}", h.cluster_id);
    let _ = writeln!(s, "\"MemberID\" : {}", h.member_id);
    let _ = writeln!(s, "\"Revision\" : {}", h.revision);
    let _ = writeln!(s, "\"RaftTerm\" : {}", h.raft_term);
}

fn fields_kv(s: &mut String, prefix: &str, kv: &KeyValue) {
    let _ = writeln!(s, "\"{prefix}Key\" : {}", gofmt::quote(&kv.key));
    let _ = writeln!(s, "\"{prefix}CreateRevision\" : {}", kv.create_revision);
    let _ = writeln!(s, "\"{prefix}ModRevision\" : {}", kv.mod_revision);
    let _ = writeln!(s, "\"{prefix}Version\" : {}", kv.version);
    let _ = writeln!(s, "\"{prefix}Value\" : {}", gofmt::quote(&kv.value));
    let _ = writeln!(s, "\"{prefix}Lease\" : {}", kv.lease);
}

fn fields_put(out: &mut Vec<u8>, resp: &PutResponse) {
    let mut s = String::new();
    fields_header(&mut s, resp.header.as_ref());
    if let Some(prev) = &resp.prev_kv {
        fields_kv(&mut s, "Prev", prev);
    }
    out.extend(s.into_bytes());
}

fn fields_get(out: &mut Vec<u8>, resp: &RangeResponse) {
    let mut s = String::new();
    fields_header(&mut s, resp.header.as_ref());
    for kv in &resp.kvs {
        fields_kv(&mut s, "", kv);
    }
    let _ = writeln!(s, "\"More\" : {}", resp.more);
    let _ = writeln!(s, "\"Count\" : {}", resp.count);
    out.extend(s.into_bytes());
}

fn fields_del(out: &mut Vec<u8>, resp: &DeleteRangeResponse) {
    let mut s = String::new();
    fields_header(&mut s, resp.header.as_ref());
    let _ = writeln!(s, "\"Deleted\" : {}", resp.deleted);
    for kv in &resp.prev_kvs {
        fields_kv(&mut s, "Prev", kv);
    }
    out.extend(s.into_bytes());
}

fn fields_txn(out: &mut Vec<u8>, resp: &TxnResponse) {
    let mut s = String::new();
    fields_header(&mut s, resp.header.as_ref());
    let _ = writeln!(s, "\"Succeeded\" : {}", resp.succeeded);
    out.extend(s.into_bytes());
    for op in &resp.responses {
        match &op.response {
            Some(response_op::Response::ResponseDeleteRange(r)) => fields_del(out, r),
            Some(response_op::Response::ResponsePut(r)) => fields_put(out, r),
            Some(response_op::Response::ResponseRange(r)) => fields_get(out, r),
            other => {
                let text = format!("{other:?}");
                out.extend(
                    format!("\"Unknown\" : {}\n", gofmt::quote(text.as_bytes())).into_bytes(),
                );
            }
        }
    }
}

// ---- json ----

/// Builds a JSON object field by field, in Go struct order.
struct JsonObject {
    body: String,
}

impl JsonObject {
    fn new() -> Self {
        JsonObject {
            body: String::new(),
        }
    }

    fn raw(&mut self, name: &str, value: String) {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        let _ = write!(self.body, "\"{name}\":{value}");
    }

    /// An `omitempty` integer field.
    fn num<T: PartialEq + Default + std::fmt::Display>(&mut self, name: &str, value: T) {
        if value != T::default() {
            self.raw(name, value.to_string());
        }
    }

    /// An `omitempty` bool field.
    fn flag(&mut self, name: &str, value: bool) {
        if value {
            self.raw(name, "true".to_string());
        }
    }

    /// An `omitempty` []byte field (base64).
    fn bytes(&mut self, name: &str, value: &[u8]) {
        if !value.is_empty() {
            let encoded = base64::engine::general_purpose::STANDARD.encode(value);
            self.raw(name, format!("\"{encoded}\""));
        }
    }

    fn finish(self) -> String {
        format!("{{{}}}", self.body)
    }
}

fn json_line(json: &str) -> Vec<u8> {
    format!("{json}\n").into_bytes()
}

fn json_header(o: &mut JsonObject, header: Option<&ResponseHeader>) {
    if let Some(h) = header {
        let mut ho = JsonObject::new();
        ho.num("cluster_id", h.cluster_id);
        ho.num("member_id", h.member_id);
        ho.num("revision", h.revision);
        ho.num("raft_term", h.raft_term);
        o.raw("header", ho.finish());
    }
}

fn json_kv(kv: &KeyValue) -> String {
    let mut o = JsonObject::new();
    o.bytes("key", &kv.key);
    o.num("create_revision", kv.create_revision);
    o.num("mod_revision", kv.mod_revision);
    o.num("version", kv.version);
    o.bytes("value", &kv.value);
    o.num("lease", kv.lease);
    o.finish()
}

fn json_kvs(o: &mut JsonObject, name: &str, kvs: &[KeyValue]) {
    if !kvs.is_empty() {
        let items: Vec<String> = kvs.iter().map(json_kv).collect();
        o.raw(name, format!("[{}]", items.join(",")));
    }
}

fn json_range(resp: &RangeResponse) -> String {
    let mut o = JsonObject::new();
    json_header(&mut o, resp.header.as_ref());
    json_kvs(&mut o, "kvs", &resp.kvs);
    o.flag("more", resp.more);
    o.num("count", resp.count);
    o.finish()
}

fn json_put(resp: &PutResponse) -> String {
    let mut o = JsonObject::new();
    json_header(&mut o, resp.header.as_ref());
    if let Some(prev) = &resp.prev_kv {
        o.raw("prev_kv", json_kv(prev));
    }
    o.finish()
}

fn json_delete(resp: &DeleteRangeResponse) -> String {
    let mut o = JsonObject::new();
    json_header(&mut o, resp.header.as_ref());
    o.num("deleted", resp.deleted);
    json_kvs(&mut o, "prev_kvs", &resp.prev_kvs);
    o.finish()
}

fn json_txn(resp: &TxnResponse) -> String {
    let mut o = JsonObject::new();
    json_header(&mut o, resp.header.as_ref());
    o.flag("succeeded", resp.succeeded);
    if !resp.responses.is_empty() {
        let items: Vec<String> = resp
            .responses
            .iter()
            .map(|op| {
                // The oneof is a Go interface field without a json tag.
                let inner = match &op.response {
                    Some(response_op::Response::ResponseRange(r)) => {
                        format!("{{\"ResponseRange\":{}}}", json_range(r))
                    }
                    Some(response_op::Response::ResponsePut(r)) => {
                        format!("{{\"ResponsePut\":{}}}", json_put(r))
                    }
                    Some(response_op::Response::ResponseDeleteRange(r)) => {
                        format!("{{\"ResponseDeleteRange\":{}}}", json_delete(r))
                    }
                    Some(response_op::Response::ResponseTxn(r)) => {
                        format!("{{\"ResponseTxn\":{}}}", json_txn(r))
                    }
                    None => "null".to_string(),
                };
                format!("{{\"Response\":{inner}}}")
            })
            .collect();
        o.raw("responses", format!("[{}]", items.join(",")));
    }
    o.finish()
}

fn json_status(st: &StatusResponse) -> String {
    let mut o = JsonObject::new();
    json_header(&mut o, st.header.as_ref());
    if !st.version.is_empty() {
        o.raw("version", gofmt::json_string(&st.version));
    }
    o.num("dbSize", st.db_size);
    o.num("leader", st.leader);
    o.num("raftIndex", st.raft_index);
    o.num("raftTerm", st.raft_term);
    o.num("raftAppliedIndex", st.raft_applied_index);
    if !st.errors.is_empty() {
        let items: Vec<String> = st.errors.iter().map(|e| gofmt::json_string(e)).collect();
        o.raw("errors", format!("[{}]", items.join(",")));
    }
    o.num("dbSizeInUse", st.db_size_in_use);
    o.flag("isLearner", st.is_learner);
    o.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_get_matches_etcd() {
        let resp = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: b"bar".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            json_range(&resp),
            r#"{"header":{"cluster_id":1,"member_id":2,"revision":3,"raft_term":4},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":2,"version":1,"value":"YmFy"}],"count":1}"#
        );
    }

    #[test]
    fn table_matches_tablewriter() {
        let t = table(
            &["endpoint", "health"],
            &[vec!["127.0.0.1:2379".into(), "true".into()]],
        );
        assert_eq!(
            t,
            "+----------------+--------+\n|    ENDPOINT    | HEALTH |\n+----------------+--------+\n| 127.0.0.1:2379 |   true |\n+----------------+--------+\n"
        );
    }
}
