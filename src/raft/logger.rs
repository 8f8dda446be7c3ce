//! Routes raft-rs's slog records into our `tracing` logs, with etcd's
//! `"logger":"raft"` field and etcd's raft message forms, so that log
//! queries written for etcd ("<id> became leader at term 2", "newRaft <id>
//! [peers: …]", "<id> switched to configuration voters=(…)") keep working.

use std::collections::HashMap;
use std::fmt::Write as _;

use slog::{Drain, Level, OwnedKVList, Record, KV};

pub struct TracingDrain;

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut fields = Fields::default();
        let _ = values.serialize(record, &mut fields);
        let _ = record.kv().serialize(record, &mut fields);
        let msg = etcd_message(&format!("{}", record.msg()), &fields.0);
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(logger = "raft", "{msg}"),
            Level::Warning => tracing::warn!(logger = "raft", "{msg}"),
            Level::Info => tracing::info!(logger = "raft", "{msg}"),
            Level::Debug | Level::Trace => tracing::debug!(logger = "raft", "{msg}"),
        }
        Ok(())
    }
}

pub fn logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}

/// A record's key-value pairs (and its logger's: `raft_id`), as text.
#[derive(Default)]
struct Fields(HashMap<String, String>);

impl slog::Serializer for Fields {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        self.0.insert(key.to_string(), val.to_string());
        Ok(())
    }
}

/// raft-rs's message in etcd raft's words, where etcd's differ; anything
/// else as raft-rs wrote it, prefixed with the member id as etcd's are.
fn etcd_message(msg: &str, kv: &HashMap<String, String>) -> String {
    let id = kv
        .get("raft_id")
        .and_then(|v| v.parse::<u64>().ok())
        .map(|id| format!("{id:x}"));
    let get = |k: &str| kv.get(k).map(String::as_str).unwrap_or("0");
    let Some(id) = id else {
        return msg.to_string();
    };
    match msg {
        "newRaft" => format!(
            "newRaft {id} [peers: [{}], term: {}, commit: {}, applied: {}, lastindex: {}, lastterm: {}]",
            numbers(kv.get("peers").map(String::as_str).unwrap_or(""))
                .iter()
                .map(|p| format!("{p:x}"))
                .collect::<Vec<_>>()
                .join(","),
            get("term"),
            get("commit"),
            get("applied"),
            get("last index"),
            get("last term"),
        ),
        "switched to configuration" => {
            format!(
                "{id} switched to configuration {}",
                configuration(kv.get("config").map(String::as_str).unwrap_or(""))
            )
        }
        "starting a new election" => {
            format!("{id} is starting a new election at term {}", get("term"))
        }
        _ => format!("{id} {msg}"),
    }
}

/// etcd raft's `Config.String()` from raft-rs's `Configuration` debug form:
/// `voters=(1 2 3)`, `voters=(1 2)&&(1)` while joint, then learners.
fn configuration(debug: &str) -> String {
    let set = |after: &str| -> Vec<u64> {
        debug
            .find(after)
            .map(|at| {
                let rest = &debug[at + after.len()..];
                numbers(&rest[..rest.find('}').unwrap_or(rest.len())])
            })
            .unwrap_or_default()
    };
    let join = |ids: Vec<u64>| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
    let incoming = set("incoming: Configuration { voters: {");
    let outgoing = set("outgoing: Configuration { voters: {");
    let mut out = format!("voters=({})", join(incoming));
    if !outgoing.is_empty() {
        let _ = write!(out, "&&({})", join(outgoing));
    }
    let learners = set("learners: {");
    if !learners.is_empty() {
        let _ = write!(out, " learners=({})", join(learners));
    }
    let next = set("learners_next: {");
    if !next.is_empty() {
        let _ = write!(out, " learners_next=({})", join(next));
    }
    out
}

/// The decimal numbers in `text`, sorted (sets print in any order).
fn numbers(text: &str) -> Vec<u64> {
    let mut out: Vec<u64> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn messages_take_etcds_forms() {
        let id = [("raft_id", "255")];
        assert_eq!(
            etcd_message("became leader at term 2", &kv(&id)),
            "ff became leader at term 2"
        );
        assert_eq!(
            etcd_message("starting a new election", &kv(&[id[0], ("term", "1")])),
            "ff is starting a new election at term 1"
        );
        let peers = "JointConfig { incoming: Configuration { voters: {255, 16} }, outgoing: Configuration { voters: {} } }";
        assert_eq!(
            etcd_message(
                "newRaft",
                &kv(&[
                    id[0],
                    ("term", "0"),
                    ("commit", "3"),
                    ("applied", "0"),
                    ("last index", "3"),
                    ("last term", "1"),
                    ("peers", peers),
                ])
            ),
            "newRaft ff [peers: [10,ff], term: 0, commit: 3, applied: 0, lastindex: 3, lastterm: 1]"
        );
        let config = "Configuration { voters: JointConfig { incoming: Configuration { voters: {3, 1} }, outgoing: Configuration { voters: {1} } }, learners: {7}, learners_next: {}, auto_leave: false }";
        assert_eq!(
            etcd_message(
                "switched to configuration",
                &kv(&[id[0], ("config", config)])
            ),
            "ff switched to configuration voters=(1 3)&&(1) learners=(7)"
        );
        // without an id (not raft's own logger) the message stays
        assert_eq!(etcd_message("anything", &kv(&[])), "anything");
    }
}
