//! Hostile input, every RPC (issue 13, part 2): against a three-member
//! cluster of ours, every method of KV, Watch, Lease, Cluster, Maintenance,
//! Auth, Lock and Election gets its request with each field, one at a time
//! and inside nested messages too, replaced at the protobuf wire level by
//! what a broken or hostile client sends: empty, one byte, at and past the
//! backend's 511-byte key limit, 64 KiB, just under and just over
//! --max-request-bytes, invalid UTF-8, 0, 1, -1, i64::MIN and i64::MAX; and
//! with a field dropped, repeated, unknown, or the message cut short. Once
//! with auth off, once with auth on (no token, and a user without roles).
//!
//! Every call must be answered (an answer or a status) in time: only Lock,
//! Campaign and Observe may wait, as they do by design, and a watch stream
//! answers nothing to a request with nothing in it or to the cancel of a
//! watch it does not have (as etcd). No status may be
//! Internal unless the request did not decode. Afterwards every member is
//! alive, restarting all three replays their logs cleanly, the members'
//! HashKV agree at one revision, and a put and a get work.
//!
//! The messages are built as bytes, not with the generated types, so that
//! what the types cannot express (invalid UTF-8 in a string, a truncated
//! message, a varint of -1 for a bool) is sent too.

use crate::support;
use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use rsetcd::proto::etcdserverpb::*;
use support::cluster::{Cluster, Flavor};
use support::hostile::{as_root, call, mutants, table, Outcome, Shape};
use tonic::transport::Channel;
use tonic::Code;

/// Sends every mutant of every RPC, spread over the members, with `token`;
/// returns the problems found and a count of outcomes per RPC.
async fn run_table(
    cluster: &mut Cluster,
    lease: i64,
    token: &str,
) -> anyhow::Result<(Vec<String>, BTreeMap<String, usize>)> {
    let mut channels = Vec::new();
    for m in &cluster.members {
        channels.push(m.channel().await?);
    }
    let mut problems = Vec::new();
    let mut summary = BTreeMap::new();
    let mut n = 0usize;
    for r in table(lease) {
        for (what, body) in mutants(&r.base, 2) {
            let member = n % channels.len();
            n += 1;
            let outcome = call(&channels[member], &r, body, token).await;
            let label = match &outcome {
                Outcome::Answered => "answered".to_string(),
                Outcome::Status(code, _) => format!("{code:?}"),
                Outcome::Silent => "silent".to_string(),
            };
            *summary.entry(format!("{} {label}", r.path)).or_default() += 1;
            let problem = match &outcome {
                // a WatchRequest without a request in it is ignored (etcd)
                Outcome::Silent
                    if !(r.waits || r.shape == Shape::Bidi && what == "field 1: dropped") =>
                {
                    Some("no answer".to_string())
                }
                Outcome::Status(Code::Internal, msg)
                    if !msg.contains("decode") && !msg.contains("Missing response") =>
                {
                    Some(format!("Internal: {msg}"))
                }
                Outcome::Status(Code::Unknown, msg) if msg.contains("panic") => {
                    Some(format!("Unknown: {msg}"))
                }
                _ => None,
            };
            if let Some(p) = problem {
                problems.push(format!("{} ({what}) on member {member}: {p}", r.path));
            }
            if !cluster.members[member].is_running() {
                bail!(
                    "member {member} died on {} ({what}). Log:\n{}",
                    r.path,
                    cluster.members[member].log()
                );
            }
        }
    }
    Ok((problems, summary))
}

// ---- the test -------------------------------------------------------------

async fn grant_lease(channel: &Channel, token: &str) -> anyhow::Result<i64> {
    let mut req = tonic::Request::new(LeaseGrantRequest { ttl: 3600, id: 0 });
    if !token.is_empty() {
        req.metadata_mut().insert("token", token.parse()?);
    }
    let id = lease_client::LeaseClient::new(channel.clone())
        .lease_grant(req)
        .await?
        .into_inner()
        .id;
    let mut put = tonic::Request::new(PutRequest {
        key: b"leased".to_vec(),
        value: b"v".to_vec(),
        lease: id,
        ..Default::default()
    });
    if !token.is_empty() {
        put.metadata_mut().insert("token", token.parse()?);
    }
    kv_client::KvClient::new(channel.clone()).put(put).await?;
    Ok(id)
}

async fn token(channel: &Channel, name: &str, password: &str) -> anyhow::Result<String> {
    Ok(auth_client::AuthClient::new(channel.clone())
        .authenticate(AuthenticateRequest {
            name: name.into(),
            password: password.into(),
        })
        .await?
        .into_inner()
        .token)
}

/// Removes the members the table added and disarms its alarms, so the
/// three real members can restart on their own.
async fn tidy(cluster: &Cluster, root: &str) -> anyhow::Result<()> {
    let channel = cluster.members[0].channel().await?;
    let mut c = cluster_client::ClusterClient::new(channel.clone());
    let members = c
        .member_list(as_root(MemberListRequest { linearizable: true }, root))
        .await?
        .into_inner()
        .members;
    let ours: Vec<String> = cluster.members.iter().map(|m| m.name.clone()).collect();
    for m in members.iter().filter(|m| !ours.contains(&m.name)) {
        c.member_remove(as_root(MemberRemoveRequest { id: m.id }, root))
            .await
            .with_context(|| format!("remove the added member {:x}", m.id))?;
    }
    let mut maintenance = maintenance_client::MaintenanceClient::new(channel);
    let alarms = maintenance
        .alarm(as_root(AlarmRequest::default(), root))
        .await?
        .into_inner()
        .alarms;
    for a in alarms {
        maintenance
            .alarm(as_root(
                AlarmRequest {
                    action: alarm_request::AlarmAction::Deactivate as i32,
                    member_id: a.member_id,
                    alarm: a.alarm,
                },
                root,
            ))
            .await?;
    }
    Ok(())
}

/// A linearizable read through `m` as root.
async fn read_as_root(m: &support::cluster::Member) -> anyhow::Result<()> {
    let channel = m.channel().await?;
    let root = token(&channel, "root", "pw").await?;
    kv_client::KvClient::new(channel)
        .range(as_root(
            RangeRequest {
                key: b"\0".to_vec(),
                ..Default::default()
            },
            &root,
        ))
        .await?;
    Ok(())
}

fn report(phase: &str, problems: &[String], summary: &BTreeMap<String, usize>) {
    eprintln!("== {phase}: outcomes per RPC");
    for (k, v) in summary {
        eprintln!("{v:6} {k}");
    }
    for p in problems {
        eprintln!("PROBLEM: {p}");
    }
}

#[tokio::test]
async fn every_rpc_answers_hostile_requests_and_the_cluster_survives() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(Flavor::Ours, 3, &["--bcrypt-cost=4"]).await?;
    let channel = cluster.members[0].channel().await?;
    let lease = grant_lease(&channel, "").await?;

    // auth off
    let (mut problems, summary) = run_table(&mut cluster, lease, "").await?;
    report("auth off", &problems, &summary);
    tidy(&cluster, "").await?;

    // auth on: no token, then a user without roles
    let mut auth = auth_client::AuthClient::new(channel.clone());
    for name in ["root", "nobody"] {
        let _ = auth
            .user_delete(AuthUserDeleteRequest { name: name.into() })
            .await;
        auth.user_add(AuthUserAddRequest {
            name: name.into(),
            password: "pw".into(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("add {name}"))?;
    }
    auth.user_grant_role(AuthUserGrantRoleRequest {
        user: "root".into(),
        role: "root".into(),
    })
    .await?;
    auth.auth_enable(AuthEnableRequest {}).await?;
    let root = token(&channel, "root", "pw").await?;
    let lease = grant_lease(&channel, &root).await?;
    for who in ["", "nobody"] {
        let t = if who.is_empty() {
            String::new()
        } else {
            token(&channel, who, "pw").await?
        };
        let (p, summary) = run_table(&mut cluster, lease, &t).await?;
        report(&format!("auth on, user {who:?}"), &p, &summary);
        problems.extend(p);
    }
    tidy(&cluster, &root).await?;
    ensure!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );

    // every member restarts and replays what it applied
    for i in 0..cluster.members.len() {
        if let Err(e) = cluster.members[i].terminate() {
            let log = cluster.members[i].log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            bail!(
                "{e:#}; the last lines of its log, newest first:\n{}",
                tail.join("\n")
            );
        }
    }
    for i in 0..cluster.members.len() {
        cluster.restart(i)?;
    }
    for m in &cluster.members {
        // auth is on: the harness's wait reads without a token
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while let Err(e) = read_as_root(m).await {
            if tokio::time::Instant::now() > deadline {
                bail!("{} not serving after a restart: {e:#}\n{}", m.name, m.log());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let channel = cluster.members[1].channel().await?;
    let root = token(&channel, "root", "pw").await?;
    kv_client::KvClient::new(channel.clone())
        .put(as_root(
            PutRequest {
                key: b"after".to_vec(),
                value: b"ok".to_vec(),
                ..Default::default()
            },
            &root,
        ))
        .await
        .context("put after the restart")?;
    let got = kv_client::KvClient::new(cluster.members[2].channel().await?)
        .range(as_root(
            RangeRequest {
                key: b"after".to_vec(),
                ..Default::default()
            },
            &token(&channel, "root", "pw").await?,
        ))
        .await?
        .into_inner();
    ensure!(got.kvs.first().map(|kv| &kv.value[..]) == Some(&b"ok"[..]));
    // HashKV needs root with auth on; the harness asks without a token
    auth_client::AuthClient::new(channel.clone())
        .auth_disable(as_root(AuthDisableRequest {}, &root))
        .await
        .context("auth disable")?;
    let rev = got.header.map(|h| h.revision).unwrap_or_default();
    let mut hashes = Vec::new();
    for m in &mut cluster.members {
        // a read without a token passes once this member has applied the
        // disable (a follower may apply it after the member that proposed
        // it answered; seen with tests running side by side)
        m.wait_serving(Duration::from_secs(30)).await?;
        hashes.push(m.hash_kv(rev).await?);
    }
    ensure!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "HashKV at revision {rev} differs between members: {hashes:?}"
    );
    Ok(())
}
