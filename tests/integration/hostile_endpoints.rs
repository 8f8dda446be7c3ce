//! The HTTP endpoints and the peer port survive hostile traffic (issue 13,
//! section 2). Anyone who can open a TCP connection reaches both: the
//! client port serves gRPC and HTTP/1.1 (/health, /livez, /readyz,
//! /version, /metrics) on one listener, the peer port the members' gRPC
//! service. Nothing sent there may stop a member.
//!
//! The client port gets odd paths, queries and methods, oversized headers,
//! framing that lies, gRPC over HTTP/1.1, garbage, an HTTP/2 preface and
//! garbage, and half requests: each gets an HTTP status line (HTTP/2: a
//! closed connection). The peer port gets garbage, calls whose route names
//! another cluster, another member or no member, and Raft streams of
//! garbage up to 16 MiB: all are refused, and resident memory stays
//! bounded. (Well-formed raft messages from a real member: another test.)
//! Afterwards the member is alive, logged no panic, answers /health, a put
//! and a get, and keeps the value across a restart.

use crate::support;
use std::future::Future;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use rsetcd::proto::etcdserverpb::{PutRequest, RangeRequest};
use rsetcd::proto::peer::peer_client::PeerClient;
use rsetcd::proto::peer::{
    MembersRequest, PeerHashKvRequest, PeerLeaseRenewRequest, PeerLeaseTimeToLiveRequest,
    PeerMemberPromoteRequest, ProbeRequest, RaftBatch, Route,
};
use support::kv::{is_clean_sigterm_exit, Flavor, Server};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic::transport::Channel;
use tonic::Code;

/// How long the server may take to answer (or close) one raw request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a peer gRPC call may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(20);
/// How much the member's resident memory may grow over the Raft streams.
const RSS_SLACK_KIB: u64 = 200 * 1024;
const KEY: &[u8] = b"hostile-endpoints";
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[tokio::test]
async fn hostile_traffic_leaves_the_member_serving() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut server = Server::start(Flavor::Ours, &tmp.path().join("data"), &[]).await?;

    hostile_http(&mut server).await?;
    serving(&mut server, b"after the HTTP requests").await?;
    hostile_peer(&mut server).await?;
    serving(&mut server, b"after the peer requests").await?;
    let log = server.log();
    ensure!(!log.contains("panicked"), "etcd logged a panic:\n{log}");

    let status = server.terminate(Duration::from_secs(20)).await?;
    ensure!(
        is_clean_sigterm_exit(status),
        "etcd did not stop cleanly: {status:?}\n{}",
        server.log_tail()
    );
    server.restart().await.context("restart")?;
    let value = stored_value(&server).await?;
    ensure!(
        value.as_deref() == Some(&b"after the peer requests"[..]),
        "after the restart {KEY:?} holds {value:?}"
    );
    Ok(())
}

fn alive(server: &mut Server, after: &str) -> anyhow::Result<()> {
    let log = server.log_tail();
    ensure!(server.is_running(), "etcd died after {after}:\n{log}");
    Ok(())
}

/// The member is alive, healthy, and a put of `value` reads back.
async fn serving(server: &mut Server, value: &[u8]) -> anyhow::Result<()> {
    alive(server, "everything")?;
    let (status, body) = support::http::get(&server.client_url(), "/health").await?;
    ensure!(
        status == 200 && body.contains(r#""health":"true""#),
        "GET /health answered {status} {body}\n{}",
        server.log_tail()
    );
    let put = PutRequest {
        key: KEY.to_vec(),
        value: value.to_vec(),
        ..Default::default()
    };
    server.kv().await?.put(put).await.context("put")?;
    let got = stored_value(server).await?;
    ensure!(got.as_deref() == Some(value), "read back {got:?}");
    Ok(())
}

async fn stored_value(server: &Server) -> anyhow::Result<Option<Vec<u8>>> {
    let range = RangeRequest {
        key: KEY.to_vec(),
        ..Default::default()
    };
    let resp = server.kv().await?.range(range).await.context("range")?;
    Ok(resp.into_inner().kvs.into_iter().next().map(|kv| kv.value))
}

/// An HTTP/1.1 request with `headers` (each ending in CRLF) and `body`.
fn request(method: &str, target: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let host = "Host: 127.0.0.1\r\n";
    let head = format!("{method} {target} HTTP/1.1\r\n{host}{headers}\r\n");
    [head.as_bytes(), body].concat()
}

/// Hostile requests for the client port, by name.
fn http_cases() -> Vec<(&'static str, Vec<u8>)> {
    let get = |target: &str| request("GET", target, "", b"");
    let bare = |method: &str, target: &str| request(method, target, "", b"");
    let health = |headers: &str, body: &[u8]| request("GET", "/health", headers, body);
    let mut cases: Vec<_> = [
        "/health/../metrics",
        "//health",
        "/health%00",
        "/%ff%fe",
        "/livez/%ff%fe",
        "/v3/kv/range",
        "/health?serializable=maybe",
        "/livez?verbose",
    ]
    .into_iter()
    .map(|target| (target, get(target)))
    .collect();
    let long_path = format!("/{}", "a".repeat(64 << 10));
    let long_query = format!("/metrics?x={}", "q".repeat(10 << 10));
    let bad_exclude = format!("/readyz?exclude={}", "%ff%00%zz;,&exclude=".repeat(200));
    let big_header = format!("X-Big: {}\r\n", "v".repeat(1 << 20));
    let many_headers = "X-Many: 1\r\n".repeat(1000);
    let huge = "Content-Length: 1000000000000\r\n";
    let chunked = "Transfer-Encoding: chunked\r\n";
    let grpc = "Content-Type: application/grpc\r\nContent-Length: 5\r\n";
    let grpc_put = request("POST", "/etcdserverpb.KV/Put", grpc, &[0xff; 5]);
    let http10 = b"GET /health HTTP/1.0\r\n\r\n".to_vec();
    let ff_line = [&[0xff; 4096][..], &b"\r\n\r\n"[..]].concat();
    let h2 = [H2_PREFACE, &[0xff; 64][..]].concat();
    cases.extend([
        ("a 64 KiB path", get(&long_path)),
        ("/metrics?x= and 10 KiB", get(&long_query)),
        ("/readyz?exclude= and garbage", get(&bad_exclude)),
        ("DELETE /health", bare("DELETE", "/health")),
        ("PUT /metrics", bare("PUT", "/metrics")),
        ("FOO /version", bare("FOO", "/version")),
        ("CONNECT 127.0.0.1:1", bare("CONNECT", "127.0.0.1:1")),
        ("a 1 MiB header value", health(&big_header, b"")),
        ("1,000 headers", health(&many_headers, b"")),
        ("a Content-Length of 10^12", health(huge, b"")),
        ("a garbage chunk size", health(chunked, b"zz\xff\r\n")),
        ("gRPC over HTTP/1.1, a garbage frame", grpc_put),
        ("HTTP/1.0 without Host", http10),
        ("a request line of 0xff bytes", ff_line),
        ("an HTTP/2 preface and garbage", h2),
    ]);
    cases
}

async fn hostile_http(server: &mut Server) -> anyhow::Result<()> {
    let url = server.client_url();
    let addr = url.trim_start_matches("http://");
    for (name, bytes) in http_cases() {
        let (answer, closed) = exchange(addr, &bytes).await?;
        alive(server, name)?;
        // HTTP/2 answers garbage with frames of its own, then goes away.
        let ok = if bytes.starts_with(H2_PREFACE) {
            closed
        } else {
            status_of(&answer).is_some()
        };
        let start = String::from_utf8_lossy(&answer[..answer.len().min(160)]);
        ensure!(ok, "{name}: answered {start:?}, then closed: {closed}");
    }
    // Half a request (a head, a body), then the client shuts its side and
    // goes away: the server may close or wait, but not stop.
    let halves: [&[u8]; 2] = [
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ",
        b"PUT /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nhalf",
    ];
    for half in halves {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(half).await?;
        stream.shutdown().await?;
        let _ = tokio::time::timeout(ANSWER_TIMEOUT, stream.read_to_end(&mut Vec::new())).await;
        alive(server, &String::from_utf8_lossy(half))?;
    }
    Ok(())
}

/// Sends `bytes` on a new connection to `addr` and reads until a status
/// line is in, the server closes the connection, or ANSWER_TIMEOUT passes.
/// Returns what came, and whether the server closed (or reset) first.
async fn exchange(addr: &str, bytes: &[u8]) -> anyhow::Result<(Vec<u8>, bool)> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    let (mut rd, mut wr) = stream.split();
    // Written while reading: the server may answer (and close) before it
    // read everything. The write side stays open, as a client's does while
    // it waits for its answer.
    let write = async {
        let _ = wr.write_all(bytes).await;
        std::future::pending::<()>().await
    };
    let read = async {
        let (mut got, mut buf) = (Vec::new(), vec![0u8; 64 << 10]);
        let closed = tokio::time::timeout(ANSWER_TIMEOUT, async {
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
                if status_of(&got).is_some() {
                    return false;
                }
            }
        })
        .await
        .unwrap_or(false);
        (got, closed)
    };
    Ok(tokio::select! {
        answer = read => answer,
        () = write => unreachable!("the writer never finishes"),
    })
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let line = &answer[..answer.windows(2).position(|w| w == b"\r\n")?];
    let code = line.strip_prefix(b"HTTP/1.")?.get(2..5)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

fn route((cluster_id, from, to): (u64, u64, u64)) -> Route {
    Route {
        cluster_id,
        from,
        to,
    }
}

async fn within<T>(what: &str, call: impl Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(RPC_TIMEOUT, call)
        .await
        .with_context(|| format!("{what}: no answer within {RPC_TIMEOUT:?}"))
}

/// Every unary call that carries a route, with route `rt`: each call's name
/// and whether it was answered (rather than refused).
async fn unary_calls(
    p: &mut PeerClient<Channel>,
    rt: (u64, u64, u64),
) -> Vec<(&'static str, bool)> {
    let r = || Some(route(rt));
    let probe = ProbeRequest { route: r() };
    let hash = PeerHashKvRequest {
        route: r(),
        revision: 0,
    };
    let renew = PeerLeaseRenewRequest {
        route: r(),
        id: i64::MAX,
    };
    let t = PeerLeaseTimeToLiveRequest {
        route: r(),
        id: i64::MAX,
        keys: true,
    };
    let m = PeerMemberPromoteRequest {
        route: r(),
        id: u64::MAX,
    };
    vec![
        ("Probe", p.probe(probe).await.is_ok()),
        ("HashKV", p.hash_kv(hash).await.is_ok()),
        ("LeaseRenew", p.lease_renew(renew).await.is_ok()),
        ("LeaseTimeToLive", p.lease_time_to_live(t).await.is_ok()),
        ("MemberPromote", p.member_promote(m).await.is_ok()),
    ]
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    std::fs::read_to_string(&path)?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}

/// Bytes that look random, the same on every run.
fn noise(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 40_503) >> 7) as u8).collect()
}

async fn hostile_peer(server: &mut Server) -> anyhow::Result<()> {
    let url = server.peer_url();
    let addr = url.trim_start_matches("http://");

    // (a) bytes that are no gRPC at all: any answer will do
    let settings_of_7_bytes: &[u8] = &[0, 0, 7, 4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7];
    let h2_garbage = [H2_PREFACE, settings_of_7_bytes, &noise(256)[..]].concat();
    let garbage = [
        ("random bytes", noise(4096)),
        ("an HTTP/1.1 GET", request("GET", "/", "", b"")),
        ("an HTTP/2 preface and garbage frames", h2_garbage),
    ];
    for (name, bytes) in garbage {
        exchange(addr, &bytes).await?;
        alive(server, &format!("{name} on the peer port"))?;
    }

    // (b) unary calls with routes that are not this member's
    let mut peer = PeerClient::connect(server.peer_url())
        .await
        .context("connect to the peer port")?;
    let members = within("Members", peer.members(MembersRequest {})).await??;
    let members = members.into_inner();
    let cluster = members.cluster_id;
    let ids: Vec<u64> = members.members.iter().map(|m| m.id).collect();
    ensure!(ids.len() == 1, "Members answered {ids:x?}");
    let (me, other_cluster) = (ids[0], cluster.wrapping_add(1));
    let stranger = me.wrapping_add(1); // no member of this cluster
    let refused = [
        (other_cluster, 0, me),
        (other_cluster, u64::MAX, stranger),
        (cluster, 0, stranger),
        (cluster, u64::MAX, stranger),
    ];
    for r in refused {
        for (call, answered) in within("peer calls", unary_calls(&mut peer, r)).await? {
            ensure!(!answered, "{call} with route {r:x?} was answered");
        }
        alive(server, &format!("peer calls with route {r:x?}"))?;
    }
    // This cluster and member, from no member: what acts for a member is
    // refused; Probe and HashKV check only the route and may answer.
    for from in [0, u64::MAX] {
        let r = (cluster, from, me);
        for (call, answered) in within("peer calls", unary_calls(&mut peer, r)).await? {
            let may = matches!(call, "Probe" | "HashKV");
            ensure!(!answered || may, "{call} from {from:x} was answered");
        }
        alive(server, &format!("peer calls with route {r:x?}"))?;
    }

    // (c), (d) Raft streams of garbage, small and 16 MiB, with no route,
    // another cluster's, another member's, and from no member
    let rss_before = rss_kib(server.pid())?;
    let raft_routes = [
        ("no route", None),
        ("another cluster", Some((other_cluster, stranger, me))),
        ("another member", Some((cluster, stranger, stranger))),
        ("no member", Some((cluster, stranger, me))),
    ];
    for (whose, rt) in raft_routes {
        for junk in [b"\xff\xff garbage".to_vec(), vec![0xff; 16 << 20]] {
            let what = format!("a Raft stream from {whose}, {} bytes", junk.len());
            let huge = junk.len() > 1 << 20;
            let batch = RaftBatch {
                route: rt.map(route),
                messages: vec![junk],
            };
            let stream = tokio_stream::iter([batch]);
            let result = within("Raft", peer.raft(stream)).await?;
            let Err(status) = result else {
                bail!("{what} was accepted");
            };
            // a stranger's stream is refused as etcd refuses it
            if whose == "no member" && !huge {
                ensure!(status.code() == Code::NotFound, "{what}: {status:?}");
                ensure!(status.message().contains("sender not found"), "{status:?}");
            }
            alive(server, &what)?;
        }
    }
    let rss_after = rss_kib(server.pid())?;
    ensure!(
        rss_after < rss_before + RSS_SLACK_KIB,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    Ok(())
}

/// Clients that never close their streams (a lease keep-alive, a watch, a
/// lock waiting behind a holder) cannot hold a stopping member up: after
/// SIGTERM it gives them the request timeout (7 s with the default 1 s
/// election timeout), as etcd's stopServers does, then closes them.
#[tokio::test]
async fn sigterm_ends_a_member_whose_clients_hold_streams_open() -> anyhow::Result<()> {
    use rsetcd::proto::etcdserverpb::lease_client::LeaseClient;
    use rsetcd::proto::etcdserverpb::watch_client::WatchClient;
    use rsetcd::proto::etcdserverpb::{
        watch_request, LeaseGrantRequest, LeaseKeepAliveRequest, WatchCreateRequest, WatchRequest,
    };
    use rsetcd::proto::v3lockpb::{lock_client::LockClient, LockRequest};

    let tmp = tempfile::tempdir()?;
    let mut server = Server::start(Flavor::Ours, &tmp.path().join("data"), &[]).await?;
    let channel = Channel::from_shared(server.client_url())?.connect().await?;
    let mut lease = LeaseClient::new(channel.clone());
    let id = lease
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await?
        .into_inner()
        .id;
    let (keep_tx, keep_rx) = tokio::sync::mpsc::channel(1);
    keep_tx.send(LeaseKeepAliveRequest { id }).await?;
    let mut keep_alive = lease
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(keep_rx))
        .await?
        .into_inner();
    keep_alive.message().await?;
    let (watch_tx, watch_rx) = tokio::sync::mpsc::channel(1);
    watch_tx
        .send(WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: KEY.to_vec(),
                    ..Default::default()
                },
            )),
        })
        .await?;
    let mut watch = WatchClient::new(channel.clone())
        .watch(tokio_stream::wrappers::ReceiverStream::new(watch_rx))
        .await?
        .into_inner();
    watch.message().await?;
    let mut locks = LockClient::new(channel.clone());
    let lock = |lease| LockRequest {
        name: b"held".to_vec(),
        lease,
    };
    locks.lock(lock(id)).await?;
    let second = LeaseClient::new(channel.clone())
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await?
        .into_inner()
        .id;
    let waiting = tokio::spawn(async move { locks.lock(lock(second)).await });

    let started = std::time::Instant::now();
    let status = server.terminate(Duration::from_secs(25)).await?;
    ensure!(
        is_clean_sigterm_exit(status),
        "etcd did not stop cleanly: {status:?}\n{}",
        server.log_tail()
    );
    ensure!(
        server.log().contains("in-flight requests did not finish"),
        "{}",
        server.log_tail()
    );
    eprintln!("stopped in {:?}", started.elapsed());
    drop((keep_tx, watch_tx, waiting));
    Ok(())
}

/// A forged proposal on the peer port: entries marked as the member's own
/// (unchecked when applied) of a kind only the leader makes for itself —
/// here an auto-compaction — are dropped; other forwarded proposals go on
/// (a forged internal put shows the message itself was well formed).
#[tokio::test]
async fn forged_leader_only_proposals_are_refused() -> anyhow::Result<()> {
    use prost::Message as _;
    use protobuf::Message as _;
    use raft::eraftpb::{Entry, Message, MessageType};
    use rsetcd::proto::etcdserverpb::CompactionRequest;
    use rsetcd::proto::internal::{internal_raft_request, InternalRaftRequest, RequestHeader};

    let tmp = tempfile::tempdir()?;
    let mut server = Server::start(Flavor::Ours, &tmp.path().join("data"), &[]).await?;
    let mut kv = server.kv().await?;
    for v in ["1", "2", "3"] {
        kv.put(PutRequest {
            key: KEY.to_vec(),
            value: v.into(),
            ..Default::default()
        })
        .await?;
    }
    let mut peer = PeerClient::connect(server.peer_url()).await?;
    let members = peer.members(MembersRequest {}).await?.into_inner();
    let me = members.members[0].id;
    let forged = |request| {
        let entry = InternalRaftRequest {
            header: Some(RequestHeader {
                id: 4242,
                member_id: me,
                internal: true,
                ..Default::default()
            }),
            request: Some(request),
        };
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgPropose);
        m.from = me;
        m.to = me;
        m.entries = vec![Entry {
            data: entry.encode_to_vec().into(),
            ..Default::default()
        }]
        .into();
        RaftBatch {
            route: Some(route((members.cluster_id, me, me))),
            messages: vec![m.write_to_bytes().expect("encode")],
        }
    };
    let compact = forged(internal_raft_request::Request::Compaction(
        CompactionRequest {
            revision: 3,
            physical: true,
        },
    ));
    let put = forged(internal_raft_request::Request::Put(PutRequest {
        key: b"forged".to_vec(),
        value: b"internal put".to_vec(),
        ..Default::default()
    }));
    within("Raft", peer.raft(tokio_stream::iter([compact, put]))).await??;
    // the put applies: the forged compaction before it was dropped, not lost
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = kv
            .range(RangeRequest {
                key: b"forged".to_vec(),
                ..Default::default()
            })
            .await?
            .into_inner();
        if !got.kvs.is_empty() {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the forged put never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let old = kv
        .range(RangeRequest {
            key: KEY.to_vec(),
            revision: 2,
            ..Default::default()
        })
        .await
        .context("history at revision 2 must still be there")?
        .into_inner();
    ensure!(old.kvs[0].value == b"1", "{old:?}");
    ensure!(
        server
            .log()
            .contains("refused a forwarded proposal that only the leader itself makes"),
        "{}",
        server.log_tail()
    );
    alive(&mut server, "forged proposals")?;

    // Raft messages no member sends: a heartbeat from a newer term that
    // commits far past the log (raft-rs would panic on it), and a snapshot
    // outside a snapshot stream (raft would look for a file never saved).
    let raw = |m: Message| RaftBatch {
        route: Some(route((members.cluster_id, me, me))),
        messages: vec![m.write_to_bytes().expect("encode")],
    };
    let mut heartbeat = Message::default();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    (heartbeat.from, heartbeat.to, heartbeat.term) = (me, me, 1000);
    heartbeat.commit = u64::MAX / 2;
    within("Raft", peer.raft(tokio_stream::iter([raw(heartbeat)]))).await??;
    let mut snapshot = Message::default();
    snapshot.set_msg_type(MessageType::MsgSnapshot);
    (snapshot.from, snapshot.to, snapshot.term) = (me, me, 1000);
    snapshot.mut_snapshot().mut_metadata().index = 1 << 40;
    let refused = within("Raft", peer.raft(tokio_stream::iter([raw(snapshot)]))).await?;
    ensure!(refused.is_err(), "a snapshot on the raft stream was taken");
    tokio::time::sleep(Duration::from_millis(300)).await;
    alive(&mut server, "a forged heartbeat and snapshot")?;
    ensure!(
        server
            .log()
            .contains("dropped a heartbeat committing past the end of the log"),
        "{}",
        server.log_tail()
    );
    serving(&mut server, b"after forged raft messages").await?;
    Ok(())
}

/// Each client snapshot is a copy of the backend on disk while its stream
/// lasts: clients that open many and read none cannot fill the disk. Past
/// the bound the answer is a clear refusal; a stream that ends frees its
/// place.
#[tokio::test]
async fn client_snapshots_are_bounded() -> anyhow::Result<()> {
    use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
    use rsetcd::proto::etcdserverpb::SnapshotRequest;

    let tmp = tempfile::tempdir()?;
    let server = Server::start(Flavor::Ours, &tmp.path().join("data"), &[]).await?;
    // enough data that a stream nobody reads stalls on flow control
    let mut kv = server.kv().await?;
    for i in 0..64 {
        kv.put(PutRequest {
            key: format!("big/{i}").into_bytes(),
            value: vec![b'x'; 64 * 1024],
            ..Default::default()
        })
        .await?;
    }
    let channel = Channel::from_shared(server.client_url())?.connect().await?;
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..4 {
        match MaintenanceClient::new(channel.clone())
            .snapshot(SnapshotRequest {})
            .await
        {
            Ok(stream) => held.push(stream.into_inner()),
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let Some(status) = refused else {
        bail!("{} snapshot streams were opened at once", held.len());
    };
    ensure!(held.len() == 2, "refused after {} streams", held.len());
    ensure!(status.code() == Code::ResourceExhausted, "{status:?}");
    ensure!(
        status.message().contains("too many snapshots in progress"),
        "{status:?}"
    );
    // one stream read to its end frees a place
    let mut first = held.remove(0);
    while first.message().await?.is_some() {}
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match MaintenanceClient::new(channel.clone())
            .snapshot(SnapshotRequest {})
            .await
        {
            Ok(s) => {
                let mut s = s.into_inner();
                while s.message().await?.is_some() {}
                break;
            }
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("not yet: {e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => bail!("no place freed: {e:?}"),
        }
    }
    Ok(())
}
