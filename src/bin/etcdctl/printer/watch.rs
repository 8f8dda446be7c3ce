//! `watch` output, one response at a time: `simple` prints each event's
//! type, the previous pair (with `--prev-kv`) and the pair; `json` is Go's
//! encoding of clientv3's `WatchResponse` (Go field names, the header as a
//! value); `protobuf` re-encodes it as the wire `WatchResponse`.

use std::fmt::Write as _;

use prost::Message;

use rsetcd::proto::etcdserverpb::WatchResponse as PbWatchResponse;
use rsetcd::proto::mvccpb::event::EventType;
use rsetcd::proto::mvccpb::Event;

use super::{
    fields_header, fields_kv, json_kv, json_line, write_stdout, Format, JsonObject, Printer,
};
use crate::exit::CtlResult;
use crate::watcher::WatchResponse;

impl Printer {
    /// The line etcdctl prints before a progress notification.
    pub fn progress_notify(&self, revision: i64) -> CtlResult {
        write_stdout(format!("progress notify: {revision}\n").as_bytes())
    }

    pub fn watch(&self, resp: &WatchResponse) -> CtlResult {
        let mut out = Vec::new();
        match self.format {
            Format::Simple => {
                for event in &resp.events {
                    out.extend(event_type_name(event).as_bytes());
                    out.push(b'\n');
                    if let Some(prev) = &event.prev_kv {
                        self.simple_kv(&mut out, prev);
                    }
                    self.simple_kv(&mut out, &event.kv.clone().unwrap_or_default());
                }
            }
            Format::Json => out.extend(json_line(&json_watch(resp))),
            Format::Fields => {
                let mut s = String::new();
                fields_header(&mut s, Some(&resp.header));
                for event in &resp.events {
                    let _ = writeln!(s, "\"Type\" : {}", event_type_name(event));
                    if let Some(prev) = &event.prev_kv {
                        fields_kv(&mut s, "Prev", prev);
                    }
                    fields_kv(&mut s, "", &event.kv.clone().unwrap_or_default());
                }
                out.extend(s.into_bytes());
            }
            Format::Protobuf => {
                let wire = PbWatchResponse {
                    header: Some(resp.header),
                    events: resp.events.clone(),
                    compact_revision: resp.compact_revision,
                    canceled: resp.canceled,
                    created: resp.created,
                    ..PbWatchResponse::default()
                };
                out.extend(wire.encode_to_vec());
            }
            Format::Table => return Err(self.unsupported()),
        }
        write_stdout(&out)
    }
}

/// The event type's name (`PUT`, `DELETE`), or its number if unknown, as
/// Go's generated `String()` prints it.
pub fn event_type_name(event: &Event) -> String {
    match EventType::try_from(event.r#type) {
        Ok(EventType::Put) => "PUT".to_string(),
        Ok(EventType::Delete) => "DELETE".to_string(),
        Err(_) => event.r#type.to_string(),
    }
}

fn json_watch(resp: &WatchResponse) -> String {
    let mut header = JsonObject::new();
    header.num("cluster_id", resp.header.cluster_id);
    header.num("member_id", resp.header.member_id);
    header.num("revision", resp.header.revision);
    header.num("raft_term", resp.header.raft_term);
    let mut o = JsonObject::new();
    o.raw("Header", header.finish());
    let events = if resp.events_nil {
        "null".to_string()
    } else {
        let items: Vec<String> = resp.events.iter().map(json_event).collect();
        format!("[{}]", items.join(","))
    };
    o.raw("Events", events);
    o.raw("CompactRevision", resp.compact_revision.to_string());
    o.raw("Canceled", resp.canceled.to_string());
    o.raw("Created", resp.created.to_string());
    o.finish()
}

fn json_event(event: &Event) -> String {
    let mut o = JsonObject::new();
    o.num("type", event.r#type);
    if let Some(kv) = &event.kv {
        o.raw("kv", json_kv(kv));
    }
    if let Some(prev) = &event.prev_kv {
        o.raw("prev_kv", json_kv(prev));
    }
    o.finish()
}
