//! rsetcd: an etcd-compatible, strongly consistent key-value store.
//!
//! Layout, top layer first (docs/ARCHITECTURE.md has the layers, the map
//! and the invariants; `layers.rs` checks the dependency rule):
//! - `etcdmain`: start and stop a member.
//! - `api`: the gRPC services and HTTP endpoints on the client listeners,
//!   and the peer port's service; `etcdutl`: offline tools over data dirs
//!   and snapshot files.
//! - `server`: propose-and-wait, read points, the leader's loops.
//! - `apply`: the apply thread, the only LMDB writer; etcd's request semantics.
//! - `member`: `MemberState`, one member's state (store, waiter, lessor,
//!   watch hub, membership, alarms, auth, transport, snapshot files),
//!   shared by the applier and the server.
//! - `raft`: the raft thread that owns raft-rs's `RawNode` and the WAL.
//! - `peer`: the sending side of the peer port.
//! - `propose`: what a proposal answers (waiter, response, errors), below
//!   raft, apply and server.
//! - `alarm`, `lease`, `auth` (RBAC: users, roles, permissions, tokens),
//!   `cluster` (membership, ids), `watch` (the event ring): state changed
//!   only by applied entries.
//! - `mvcc`: revisions, the key index, reads and writes on LMDB.
//! - `storage`: the data dir, the WAL, the LMDB environment, the schema.
//! - `tls`: rustls configs from etcd's certificate flags.
//! - `config`: etcd's flags, env vars and YAML file.
//! - `logging`: etcd's zap-style structured logs.
//! - `metrics`: Prometheus metrics under etcd's names.
//! - `notify`: systemd's readiness and watchdog notifications.
//! - `failpoint`: crash points at durable steps (`--features failpoints`,
//!   test builds only).

pub mod alarm;
pub mod api;
pub mod apply;
pub mod auth;
pub mod client;
pub mod cluster;
pub mod config;
pub mod etcdmain;
pub mod etcdutl;
pub mod failpoint;
pub mod gofmt;
pub mod lease;
pub mod logging;
pub mod member;
pub mod metrics;
pub mod mvcc;
pub mod notify;
pub mod peer;
pub mod propose;
pub mod proto;
pub mod raft;
pub mod server;
pub mod storage;
pub mod tls;
pub mod watch;

#[cfg(test)]
mod layers;

/// The etcd release whose API and behaviour we implement.
pub const ETCD_VERSION: &str = "3.5.17";
/// The cluster version a member of this release proposes.
pub const CLUSTER_VERSION: &str = "3.5.0";

/// Ends the process after an unrecoverable failure (storage, a dead
/// essential thread). Raft and apply cannot skip or redo work, so going on
/// would risk the data; a restart replays the WAL instead.
pub fn fatal(msg: &str) -> ! {
    tracing::error!("{msg}");
    eprintln!("etcd: fatal: {msg}");
    std::process::exit(1);
}

/// Makes a panic on any thread end the whole process. Without it a panic
/// ends only its own thread (or tokio task): a member whose raft or apply
/// thread died would go on answering serializable reads, watches and lease
/// keep-alives from state that no longer moves. The panic is logged (and
/// printed as Rust prints it), then the process aborts: no destructor, no
/// flush of half-applied state, and systemd's `Restart=on-failure` sees a
/// failure, as with Go's exit code 2 after an unrecovered panic in etcd.
pub fn abort_on_panic() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(
            thread,
            location,
            panic = payload,
            "panic; stopping the member"
        );
        default_hook(info);
        std::process::abort();
    }));
}
