//! The hostile-input table shared by tests/integration/hostile_input.rs (every RPC,
//! every field mutated, against a cluster of ours) and
//! tests/integration/hostile_differential.rs (the same calls to etcd 3.4 and to ours,
//! answers compared): requests built as protobuf bytes, their mutants, and
//! a raw gRPC call that reports how it ended.

#![allow(dead_code)]

use std::time::Duration;

use bytes::{Buf as _, BufMut as _};
use rsetcd::proto::etcdserverpb::*;
use rsetcd::proto::{authpb, v3electionpb, v3lockpb};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::Code;

use crate::support::wire;
use wire::{encode, parse, Field, Value};

/// etcd's default --max-request-bytes.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// How long an answer may take. Writes of 1.5 MiB through raft on a busy
/// CI machine are the slowest.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// Lock, Campaign and Observe wait by design; they get this long.
const WAITING_TIMEOUT: Duration = Duration::from_millis(300);

// ---- a gRPC codec for raw protobuf bytes ---------------------------------

#[derive(Clone, Copy, Default)]
pub struct Raw;

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
pub fn hostile_bytes(top: bool) -> Vec<(&'static str, Vec<u8>)> {
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

pub const HOSTILE_NUMBERS: &[(&str, u64)] = &[
    ("0", 0),
    ("1", 1),
    ("-1", u64::MAX),
    ("i64::MIN", i64::MIN as u64),
    ("i64::MAX", i64::MAX as u64),
];

/// Every mutation of `msg`, named. Nested messages (length-delimited
/// fields that parse as one) are mutated too, down to `depth` levels.
pub fn mutants(msg: &[u8], depth: usize) -> Vec<(String, Vec<u8>)> {
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
pub enum Shape {
    Unary,
    /// One request, a stream of answers: read them all.
    ServerStream,
    /// A bidirectional stream: send one request, read the first answer.
    Bidi,
}

pub struct Rpc {
    pub path: &'static str,
    pub shape: Shape,
    pub base: Vec<u8>,
    /// May wait for something else to happen (Lock, Campaign, Observe).
    pub waits: bool,
}

pub fn rpc(path: &'static str, base: impl prost::Message) -> Rpc {
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
pub fn table(lease: i64) -> Vec<Rpc> {
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
pub enum Outcome {
    Answered,
    Status(Code, String),
    /// No answer within the call's time.
    Silent,
}

pub async fn call(channel: &Channel, r: &Rpc, body: Vec<u8>, token: &str) -> Outcome {
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

/// The request with `root` as its token (none when empty).
pub fn as_root<T>(message: T, root: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if !root.is_empty() {
        r.metadata_mut()
            .insert("token", root.parse().expect("ascii token"));
    }
    r
}
