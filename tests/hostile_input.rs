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

mod support_cluster;
mod support_wire;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use bytes::{Buf as _, BufMut as _};
use rsetcd::proto::etcdserverpb::*;
use rsetcd::proto::{authpb, v3electionpb, v3lockpb};
use support_cluster::{Cluster, Flavor};
use support_wire::{encode, parse, Field, Value};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::Code;

/// etcd's default --max-request-bytes.
const MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// How long an answer may take. Writes of 1.5 MiB through raft on a busy
/// CI machine are the slowest.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// Lock, Campaign and Observe wait by design; they get this long.
const WAITING_TIMEOUT: Duration = Duration::from_millis(300);

// ---- a gRPC codec for raw protobuf bytes ---------------------------------

#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

/// What a hostile client puts in a length-delimited field. `top` adds the
/// sizes around --max-request-bytes (only for top-level fields: they cost
/// 1.5 MiB a call).
fn hostile_bytes(top: bool) -> Vec<(&'static str, Vec<u8>)> {
    let mut v = vec![
        ("empty", Vec::new()),
        ("1 byte", b"a".to_vec()),
        ("511 bytes", vec![b'k'; 511]),
        ("512 bytes", vec![b'k'; 512]),
        ("64 KiB", vec![b'x'; 64 * 1024]),
        ("invalid UTF-8", b"\xff\xfe\xc3\x28 not utf-8".to_vec()),
        ("a NUL byte", b"\0".to_vec()),
    ];
    if top {
        v.push((
            "max-request-bytes - 100",
            vec![b'm'; MAX_REQUEST_BYTES - 100],
        ));
        v.push((
            "max-request-bytes + 100",
            vec![b'm'; MAX_REQUEST_BYTES + 100],
        ));
    }
    v
}

const HOSTILE_NUMBERS: &[(&str, u64)] = &[
    ("0", 0),
    ("1", 1),
    ("-1", u64::MAX),
    ("i64::MIN", i64::MIN as u64),
    ("i64::MAX", i64::MAX as u64),
];

/// Every mutation of `msg`, named. Nested messages (length-delimited
/// fields that parse as one) are mutated too, down to `depth` levels.
fn mutants(msg: &[u8], depth: usize) -> Vec<(String, Vec<u8>)> {
    let Some(fields) = parse(msg) else {
        return Vec::new();
    };
    let mut out = vec![("as given".to_string(), msg.to_vec())];
    if !msg.is_empty() {
        out.push(("cut short".to_string(), msg[..msg.len() - 1].to_vec()));
    }
    let mut unknown = fields.clone();
    unknown.push(Field {
        number: 999,
        value: Value::Bytes(b"unknown".to_vec()),
    });
    out.push(("an unknown field".to_string(), encode(&unknown)));
    for (i, f) in fields.iter().enumerate() {
        let with = |value: Value| {
            let mut fs = fields.clone();
            fs[i].value = value;
            encode(&fs)
        };
        let name = |what: &str| format!("field {}: {what}", f.number);
        let mut dropped = fields.clone();
        dropped.remove(i);
        out.push((name("dropped"), encode(&dropped)));
        let mut twice = fields.clone();
        twice.insert(i, f.clone());
        out.push((name("twice"), encode(&twice)));
        match &f.value {
            Value::Varint(_) | Value::Fixed64(_) | Value::Fixed32(_) => {
                for (what, n) in HOSTILE_NUMBERS {
                    out.push((name(what), with(Value::Varint(*n))));
                }
            }
            Value::Bytes(inner) => {
                for (what, b) in hostile_bytes(depth == 2) {
                    out.push((name(what), with(Value::Bytes(b))));
                }
                if depth > 0 && !inner.is_empty() && parse(inner).is_some() {
                    for (what, m) in mutants(inner, depth - 1) {
                        out.push((name(&format!("inside, {what}")), with(Value::Bytes(m))));
                    }
                }
            }
        }
    }
    out
}

// ---- the table ------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Unary,
    /// One request, a stream of answers: read them all.
    ServerStream,
    /// A bidirectional stream: send one request, read the first answer.
    Bidi,
}

struct Rpc {
    path: &'static str,
    shape: Shape,
    base: Vec<u8>,
    /// May wait for something else to happen (Lock, Campaign, Observe).
    waits: bool,
}

fn rpc(path: &'static str, base: impl prost::Message) -> Rpc {
    Rpc {
        path,
        shape: Shape::Unary,
        base: base.encode_to_vec(),
        waits: false,
    }
}

/// Every method of every client service, each with a request that sets
/// most of its fields, so each field gets its turn. `lease` exists, with
/// the key "leased" on it.
fn table(lease: i64) -> Vec<Rpc> {
    let range = RangeRequest {
        key: b"k".to_vec(),
        range_end: b"l".to_vec(),
        limit: 10,
        revision: 2,
        sort_order: 1,
        sort_target: 1,
        serializable: true,
        keys_only: true,
        count_only: false,
        min_mod_revision: 1,
        max_mod_revision: 1000,
        min_create_revision: 1,
        max_create_revision: 1000,
    };
    let put = PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        lease,
        prev_kv: true,
        ignore_value: false,
        ignore_lease: false,
    };
    let delete = DeleteRangeRequest {
        key: b"d".to_vec(),
        range_end: b"e".to_vec(),
        prev_kv: true,
    };
    let op = |r: request_op::Request| RequestOp { request: Some(r) };
    let txn = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Mod as i32,
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            target_union: Some(compare::TargetUnion::ModRevision(3)),
        }],
        success: vec![
            op(request_op::Request::RequestPut(put.clone())),
            op(request_op::Request::RequestRange(range.clone())),
        ],
        failure: vec![
            op(request_op::Request::RequestDeleteRange(delete.clone())),
            op(request_op::Request::RequestTxn(TxnRequest {
                compare: Vec::new(),
                success: vec![op(request_op::Request::RequestPut(PutRequest {
                    key: b"t".to_vec(),
                    ..Default::default()
                }))],
                failure: Vec::new(),
            })),
        ],
    };
    let watch = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
                start_revision: 2,
                progress_notify: true,
                filters: vec![1],
                prev_kv: true,
                watch_id: 7,
                fragment: true,
            },
        )),
    };
    let cancel = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CancelRequest(
            WatchCancelRequest { watch_id: 7 },
        )),
    };
    let leader_key = v3electionpb::LeaderKey {
        name: b"e".to_vec(),
        key: b"e/1".to_vec(),
        rev: 5,
        lease,
    };
    let permission = authpb::Permission {
        perm_type: 2,
        key: b"p".to_vec(),
        range_end: b"q".to_vec(),
    };
    let stream = |mut r: Rpc, shape: Shape| {
        r.shape = shape;
        r
    };
    let waiting = |mut r: Rpc| {
        r.waits = true;
        r
    };
    vec![
        rpc("/etcdserverpb.KV/Range", range),
        rpc("/etcdserverpb.KV/Put", put),
        rpc("/etcdserverpb.KV/DeleteRange", delete),
        rpc("/etcdserverpb.KV/Txn", txn),
        rpc(
            "/etcdserverpb.KV/Compact",
            CompactionRequest {
                revision: 3,
                physical: true,
            },
        ),
        stream(rpc("/etcdserverpb.Watch/Watch", watch), Shape::Bidi),
        // cancelling a watch that does not exist is not answered (etcd)
        waiting(stream(
            rpc("/etcdserverpb.Watch/Watch", cancel),
            Shape::Bidi,
        )),
        rpc(
            "/etcdserverpb.Lease/LeaseGrant",
            LeaseGrantRequest { ttl: 60, id: 4242 },
        ),
        rpc(
            "/etcdserverpb.Lease/LeaseRevoke",
            LeaseRevokeRequest { id: 4242 },
        ),
        stream(
            rpc(
                "/etcdserverpb.Lease/LeaseKeepAlive",
                LeaseKeepAliveRequest { id: lease },
            ),
            Shape::Bidi,
        ),
        rpc(
            "/etcdserverpb.Lease/LeaseTimeToLive",
            LeaseTimeToLiveRequest {
                id: lease,
                keys: true,
            },
        ),
        rpc("/etcdserverpb.Lease/LeaseLeases", LeaseLeasesRequest {}),
        rpc(
            "/etcdserverpb.Cluster/MemberAdd",
            MemberAddRequest {
                peer_ur_ls: vec!["http://127.0.0.1:9".into()],
                is_learner: true,
            },
        ),
        rpc(
            "/etcdserverpb.Cluster/MemberRemove",
            MemberRemoveRequest { id: 0x1234 },
        ),
        rpc(
            "/etcdserverpb.Cluster/MemberUpdate",
            MemberUpdateRequest {
                id: 0x1234,
                peer_ur_ls: vec!["http://127.0.0.1:9".into()],
            },
        ),
        rpc(
            "/etcdserverpb.Cluster/MemberList",
            MemberListRequest { linearizable: true },
        ),
        rpc(
            "/etcdserverpb.Cluster/MemberPromote",
            MemberPromoteRequest { id: 0x1234 },
        ),
        rpc("/etcdserverpb.Maintenance/Status", StatusRequest {}),
        rpc("/etcdserverpb.Maintenance/Defragment", DefragmentRequest {}),
        rpc("/etcdserverpb.Maintenance/Hash", HashRequest {}),
        rpc(
            "/etcdserverpb.Maintenance/HashKV",
            HashKvRequest { revision: 4 },
        ),
        stream(
            rpc("/etcdserverpb.Maintenance/Snapshot", SnapshotRequest {}),
            Shape::ServerStream,
        ),
        rpc(
            "/etcdserverpb.Maintenance/MoveLeader",
            MoveLeaderRequest { target_id: 0x1234 },
        ),
        rpc(
            "/etcdserverpb.Maintenance/Downgrade",
            DowngradeRequest {
                action: 0,
                version: "3.4.0".into(),
            },
        ),
        rpc(
            "/etcdserverpb.Auth/Authenticate",
            AuthenticateRequest {
                name: "u".into(),
                password: "pw".into(),
            },
        ),
        rpc(
            "/etcdserverpb.Auth/UserAdd",
            AuthUserAddRequest {
                name: "u".into(),
                password: "pw".into(),
                options: Some(authpb::UserAddOptions { no_password: true }),
            },
        ),
        rpc(
            "/etcdserverpb.Auth/UserGet",
            AuthUserGetRequest { name: "u".into() },
        ),
        rpc("/etcdserverpb.Auth/UserList", AuthUserListRequest {}),
        rpc(
            "/etcdserverpb.Auth/UserChangePassword",
            AuthUserChangePasswordRequest {
                name: "u".into(),
                password: "pw2".into(),
            },
        ),
        rpc(
            "/etcdserverpb.Auth/UserGrantRole",
            AuthUserGrantRoleRequest {
                user: "u".into(),
                role: "r".into(),
            },
        ),
        rpc(
            "/etcdserverpb.Auth/UserRevokeRole",
            AuthUserRevokeRoleRequest {
                name: "u".into(),
                role: "r".into(),
            },
        ),
        rpc(
            "/etcdserverpb.Auth/RoleAdd",
            AuthRoleAddRequest { name: "r".into() },
        ),
        rpc(
            "/etcdserverpb.Auth/RoleGet",
            AuthRoleGetRequest { role: "r".into() },
        ),
        rpc("/etcdserverpb.Auth/RoleList", AuthRoleListRequest {}),
        rpc(
            "/etcdserverpb.Auth/RoleGrantPermission",
            AuthRoleGrantPermissionRequest {
                name: "r".into(),
                perm: Some(permission),
            },
        ),
        rpc(
            "/etcdserverpb.Auth/RoleRevokePermission",
            AuthRoleRevokePermissionRequest {
                role: "r".into(),
                key: b"p".to_vec(),
                range_end: b"q".to_vec(),
            },
        ),
        rpc(
            "/etcdserverpb.Auth/RoleDelete",
            AuthRoleDeleteRequest { role: "r".into() },
        ),
        rpc(
            "/etcdserverpb.Auth/UserDelete",
            AuthUserDeleteRequest { name: "u".into() },
        ),
        rpc("/etcdserverpb.Auth/AuthStatus", AuthStatusRequest {}),
        waiting(rpc(
            "/v3lockpb.Lock/Lock",
            v3lockpb::LockRequest {
                name: b"lk".to_vec(),
                lease,
            },
        )),
        rpc(
            "/v3lockpb.Lock/Unlock",
            v3lockpb::UnlockRequest {
                key: b"lk/1".to_vec(),
            },
        ),
        waiting(rpc(
            "/v3electionpb.Election/Campaign",
            v3electionpb::CampaignRequest {
                name: b"e".to_vec(),
                lease,
                value: b"v".to_vec(),
            },
        )),
        rpc(
            "/v3electionpb.Election/Proclaim",
            v3electionpb::ProclaimRequest {
                leader: Some(leader_key.clone()),
                value: b"v2".to_vec(),
            },
        ),
        rpc(
            "/v3electionpb.Election/Leader",
            v3electionpb::LeaderRequest {
                name: b"e".to_vec(),
            },
        ),
        waiting(stream(
            rpc(
                "/v3electionpb.Election/Observe",
                v3electionpb::LeaderRequest {
                    name: b"e".to_vec(),
                },
            ),
            Shape::ServerStream,
        )),
        rpc(
            "/v3electionpb.Election/Resign",
            v3electionpb::ResignRequest {
                leader: Some(leader_key),
            },
        ),
        // Last: raising an alarm stops writes for the rest of the table.
        rpc(
            "/etcdserverpb.Maintenance/Alarm",
            AlarmRequest {
                action: 0,
                member_id: 0x1234,
                alarm: 1,
            },
        ),
    ]
}

// ---- sending --------------------------------------------------------------

/// How one call ended, as the summary counts it.
#[derive(Debug)]
enum Outcome {
    Answered,
    Status(Code, String),
    /// No answer within the call's time.
    Silent,
}

async fn call(channel: &Channel, r: &Rpc, body: Vec<u8>, token: &str) -> Outcome {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    let limit = if r.waits {
        WAITING_TIMEOUT
    } else {
        ANSWER_TIMEOUT
    };
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(r.path);
    let work = async {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        match r.shape {
            Shape::Unary => {
                grpc.unary(as_root(body, token), path, Raw).await?;
            }
            Shape::ServerStream => {
                let mut s = grpc
                    .server_streaming(as_root(body, token), path, Raw)
                    .await?
                    .into_inner();
                while s.message().await?.is_some() {}
            }
            Shape::Bidi => {
                // keep the request side open until the first answer
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                tx.send(body).await.expect("queue the request");
                let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
                let mut s = grpc
                    .streaming(as_root(requests, token), path, Raw)
                    .await?
                    .into_inner();
                s.message().await?;
                drop(tx);
            }
        }
        Ok::<(), tonic::Status>(())
    };
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(())) => Outcome::Answered,
        Ok(Err(s)) => Outcome::Status(s.code(), s.message().to_string()),
        Err(_) => Outcome::Silent,
    }
}

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

fn as_root<T>(message: T, root: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if !root.is_empty() {
        r.metadata_mut()
            .insert("token", root.parse().expect("ascii token"));
    }
    r
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
async fn read_as_root(m: &support_cluster::Member) -> anyhow::Result<()> {
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
    for m in &cluster.members {
        hashes.push(m.hash_kv(rev).await?);
    }
    ensure!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "HashKV at revision {rev} differs between members: {hashes:?}"
    );
    Ok(())
}
