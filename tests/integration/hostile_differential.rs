//! The hostile-input table (tests/integration/support/hostile.rs) sent to etcd 3.4 and to
//! ours, call for call in lockstep, auth off, one member each: the gRPC
//! code and message of every answer must match, except where the
//! difference is known and explained below (etcd 3.5 behaviour we follow,
//! a 3.4 bug, or a decoder that is stricter than Go's).
//!
//! RSETCD_HOSTILE_DIFF=full sends every mutant (about 1,300 calls); the
//! default sends the top-level ones only (no mutants inside nested
//! messages), to keep CI short.

use crate::support;
use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use rsetcd::proto::etcdserverpb::*;
use support::cluster::{reference_available, Cluster, Flavor};
use support::hostile::{call, mutants, table, Outcome, Shape};
use tonic::transport::Channel;

/// What a client sees of an answer, ids and revisions left out.
fn seen(o: &Outcome) -> String {
    match o {
        Outcome::Answered => "answered".into(),
        Outcome::Status(code, msg) => format!("{code:?}: {msg}"),
        Outcome::Silent => "silent".into(),
    }
}

/// A difference we know of and keep, with the reason.
fn explained(path: &str, what: &str, etcd: &str, ours: &str) -> Option<&'static str> {
    // Go's protobuf (gogo) does not check that a proto3 string is UTF-8;
    // prost does, and tonic answers a request that does not decode with
    // Internal. etcd takes the bytes as they are.
    if ours.starts_with("Internal: failed to decode") && ours.contains("not UTF-8") {
        return Some("prost checks UTF-8 in string fields; gogo does not");
    }
    // A oneof member that is a message, sent twice: prost merges the two
    // (what the protobuf spec says), gogo keeps the last one.
    if what.ends_with("field 4: twice") && path == "/etcdserverpb.KV/Txn" {
        return Some(
            "a oneof message member sent twice: prost merges (the spec), gogo keeps the last",
        );
    }
    // An unknown sort target in a txn's range: etcd crashes when such a
    // range runs (in apply, on every member); we refuse the txn up front.
    if path == "/etcdserverpb.KV/Txn" && ours == "InvalidArgument: etcdserver: invalid sort option"
    {
        return Some("an unknown sort target inside a txn: refused up front (etcd crashes in apply when it runs)");
    }
    // etcd 3.4 puts the password itself in the raft entry; 3.5, like us,
    // hashes it first, so a 1.5 MiB password is not a 1.5 MiB proposal.
    if (path == "/etcdserverpb.Auth/UserAdd" || path == "/etcdserverpb.Auth/UserChangePassword")
        && what.starts_with("field 2: max-request-bytes")
        && etcd == "InvalidArgument: etcdserver: request is too large"
    {
        return Some("a huge password: 3.4 proposes it whole, 3.5 and we propose its hash");
    }
    // A password over 72 bytes: etcd 3.5 hashes with an x/crypto whose
    // bcrypt refuses it (since 2022) and returns that error; 3.4 as Debian
    // builds it hashes the first 72 bytes and drops the rest.
    if (path == "/etcdserverpb.Auth/UserAdd" || path == "/etcdserverpb.Auth/UserChangePassword")
        && ours == "Unknown: bcrypt: password length exceeds 72 bytes"
    {
        return Some(
            "a password over 72 bytes: refused as etcd 3.5's bcrypt does (3.4 truncates it)",
        );
    }
    // A message cut short inside a nested message or a field of the wrong
    // type: both refuse to decode, in their own words.
    let etcd_undecodable =
        etcd.contains("proto:") || etcd.contains("unexpected EOF") || etcd.contains("illegal tag");
    if etcd_undecodable && ours.starts_with("Internal: failed to decode") {
        return Some("both refuse an undecodable request (Go's and prost's messages differ)");
    }
    if path == "/etcdserverpb.Maintenance/Downgrade" {
        return Some("etcd 3.4 has no Downgrade (Unimplemented); we answer as 3.5");
    }
    if path == "/etcdserverpb.Auth/AuthStatus" && etcd.starts_with("Unimplemented") {
        return Some("etcd 3.4 has no AuthStatus; we answer as 3.5");
    }
    if path == "/etcdserverpb.Auth/RoleGrantPermission"
        && ours == "InvalidArgument: etcdserver: permission not given"
    {
        return Some("no permission in a grant: etcd 3.5's \"permission not given\" (3.4 goes on)");
    }
    if (path == "/etcdserverpb.Auth/UserAdd" || path == "/etcdserverpb.Auth/RoleAdd")
        && ours.ends_with("is too long (at most 500 bytes)")
    {
        return Some(
            "user and role names over 500 bytes do not fit LMDB's 511-byte keys: refused before \
             proposing (etcd takes up to bbolt's 32 KiB and crashes past it)",
        );
    }
    None
}

async fn lease(channel: &Channel) -> anyhow::Result<i64> {
    let id = lease_client::LeaseClient::new(channel.clone())
        .lease_grant(LeaseGrantRequest { ttl: 3600, id: 0 })
        .await?
        .into_inner()
        .id;
    kv_client::KvClient::new(channel.clone())
        .put(PutRequest {
            key: b"leased".to_vec(),
            value: b"v".to_vec(),
            lease: id,
            ..Default::default()
        })
        .await?;
    Ok(id)
}

/// One etcd 3.4 and one of ours, fresh, each with a lease ("leased" on it).
struct Pair {
    etcd: Cluster,
    ours: Cluster,
    etcd_channel: Channel,
    our_channel: Channel,
    etcd_table: Vec<support::hostile::Rpc>,
    our_table: Vec<support::hostile::Rpc>,
}

impl Pair {
    async fn start() -> anyhow::Result<Pair> {
        let etcd = Cluster::start(Flavor::Reference, 1, &[]).await?;
        let ours = Cluster::start(Flavor::Ours, 1, &[]).await?;
        let etcd_channel = etcd.members[0].channel().await?;
        let our_channel = ours.members[0].channel().await?;
        let etcd_table = table(lease(&etcd_channel).await.context("etcd lease")?);
        let our_table = table(lease(&our_channel).await.context("our lease")?);
        Ok(Pair {
            etcd,
            ours,
            etcd_channel,
            our_channel,
            etcd_table,
            our_table,
        })
    }
}

#[tokio::test]
async fn hostile_requests_get_etcds_answers() -> anyhow::Result<()> {
    if !reference_available() {
        eprintln!("skipped: etcd 3.4 is not installed (apt-get install etcd-server)");
        return Ok(());
    }
    let full = std::env::var("RSETCD_HOSTILE_DIFF").is_ok_and(|v| v == "full");
    let depth = if full { 2 } else { 0 };
    let mut pair = Pair::start().await?;
    let mut etcd_crashes = Vec::new();
    let mut differences = Vec::new();
    let mut known: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut calls = 0;
    for i in 0..pair.etcd_table.len() {
        let count = mutants(&pair.etcd_table[i].base, depth).len();
        for j in 0..count {
            // the lease id differs between the servers: each its own table
            let (what, e_body) = mutants(&pair.etcd_table[i].base, depth).swap_remove(j);
            let (_, o_body) = mutants(&pair.our_table[i].base, depth).swap_remove(j);
            let (e, o) = (&pair.etcd_table[i], &pair.our_table[i]);
            if e.shape == Shape::Bidi && what == "field 1: dropped" {
                // a stream request with nothing in it: neither answers, and
                // waiting 15 s for each adds nothing (hostile_input checks it)
                continue;
            }
            calls += 1;
            let want = seen(&call(&pair.etcd_channel, e, e_body, "").await);
            let got = seen(&call(&pair.our_channel, o, o_body, "").await);
            anyhow::ensure!(
                pair.ours.members[0].is_running(),
                "ours died on {} ({what})",
                e.path
            );
            // A request that crashes etcd breaks its connection before the
            // process has exited (the panic is still being written): give a
            // broken call time to show whether the process went with it.
            let broken = want.contains("transport error") || want.starts_with("Unavailable");
            let etcd_died = if broken {
                pair.etcd.members[0]
                    .wait_exit(Duration::from_secs(10))
                    .is_ok()
            } else {
                !pair.etcd.members[0].is_running()
            };
            if etcd_died {
                // etcd 3.4 itself crashes (and again at every restart, as
                // it replays the entry): we must answer, and do. Both
                // start afresh for the rest of the table.
                let log = pair.etcd.members[0].log();
                let fatal = log
                    .lines()
                    .find(|l| l.starts_with("panic:") || l.contains(" C | "))
                    .unwrap_or("(no fatal line)")
                    .to_string();
                etcd_crashes.push(format!("{} ({what}): {fatal}\n      ours: {got}", e.path));
                anyhow::ensure!(
                    got != "silent",
                    "ours did not answer what crashes etcd: {} ({what})",
                    e.path
                );
                pair = Pair::start().await?;
                continue;
            }
            if want == got {
                continue;
            }
            match explained(e.path, &what, &want, &got) {
                Some(reason) => *known.entry(reason).or_default() += 1,
                None => differences.push(format!(
                    "{} ({what}):\n    etcd 3.4: {want}\n    ours:     {got}",
                    e.path
                )),
            }
        }
    }
    eprintln!("{calls} calls; requests that crash etcd 3.4 (ours answers them):");
    for c in &etcd_crashes {
        eprintln!("  {c}");
    }
    eprintln!("known differences:");
    for (reason, n) in &known {
        eprintln!("{n:6}  {reason}");
    }
    anyhow::ensure!(
        differences.is_empty(),
        "{} of {calls} answers differ from etcd 3.4's:\n{}",
        differences.len(),
        differences.join("\n")
    );
    Ok(())
}
