//! Security regressions (issue 23): with auth on, a restricted user never
//! receives a key or value its roles do not let it read, and never changes
//! the cluster's state beyond what its roles allow. The oracle is the
//! permission model, not etcd 3.4: etcd 3.4.23 has the first hole below
//! (GHSA-xg4h-6gfc-h4m8, fixed in 3.4.26/3.5.9) and lets anyone compact
//! and raise alarms.
//!
//! The user `u` may read the key "k" and write the key "w", nothing else.

use crate::support;
use crate::support::auth::as_user;
use crate::support::common;

use std::time::Duration;

use common::{ServerOptions, TestServer};
use rsetcd::proto::authpb::{permission::Type as PermType, Permission};
use rsetcd::proto::etcdserverpb::auth_client::AuthClient;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::watch_client::WatchClient;
use rsetcd::proto::etcdserverpb::*;
use tonic::transport::Channel;

struct RestrictedServer {
    server: TestServer,
    channel: Channel,
    root: String,
    user: String,
}

/// Starts our server (the harness blocks, so outside the runtime), then
/// runs `test` on a runtime of its own.
fn with_cluster<F, Fut>(test: F)
where
    F: FnOnce(RestrictedServer) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let server = TestServer::start_ours(&ServerOptions {
        extra_args: vec!["--bcrypt-cost=4".into()],
        ..ServerOptions::default()
    })
    .expect("start ours");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move { test(RestrictedServer::setup(server).await).await });
}

impl RestrictedServer {
    async fn setup(server: TestServer) -> RestrictedServer {
        let channel = Channel::from_shared(server.client_url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let mut auth = AuthClient::new(channel.clone());
        let mut kv = KvClient::new(channel.clone());
        for (k, v) in [("k", "readable"), ("w", "old secret"), ("s/1", "secret")] {
            kv.put(PutRequest {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            })
            .await
            .expect("seed");
        }
        support::auth::add_root(&mut auth).await.expect("root");
        support::auth::enable(&mut auth).await.expect("enable");
        let root = token(&channel, "root", "rootpw").await;
        let perms: Vec<Permission> = [(PermType::Read, "k"), (PermType::Write, "w")]
            .into_iter()
            .map(|(t, key)| Permission {
                perm_type: t as i32,
                key: key.into(),
                range_end: Vec::new(),
            })
            .collect();
        support::auth::add_user_with_role(&mut auth, Some(&root), "u", "upw", "r", &perms)
            .await
            .expect("role r, user u");
        let user = token(&channel, "u", "upw").await;
        RestrictedServer {
            server,
            channel,
            root,
            user,
        }
    }

    fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone())
    }

    fn maintenance(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.channel.clone())
    }

    async fn raft_index(&self) -> u64 {
        self.maintenance()
            .status(StatusRequest {})
            .await
            .expect("status")
            .into_inner()
            .raft_index
    }

    /// Everything a watch created with `create` delivers within a second.
    async fn watch(&self, create: WatchCreateRequest, token: &str) -> Vec<WatchResponse> {
        let request = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(request).await.expect("queue create");
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut answers = WatchClient::new(self.channel.clone())
            .watch(as_user(stream, token))
            .await
            .expect("open watch stream")
            .into_inner();
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Ok(Some(r))) = tokio::time::timeout_at(deadline, answers.message()).await {
            got.push(r);
        }
        drop(tx);
        got
    }
}

async fn token(channel: &Channel, name: &str, password: &str) -> String {
    AuthClient::new(channel.clone())
        .authenticate(AuthenticateRequest {
            name: name.into(),
            password: password.into(),
        })
        .await
        .expect("authenticate")
        .into_inner()
        .token
}

fn denied<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> String {
    match r {
        Ok(resp) => panic!("allowed: {resp:?}"),
        Err(s) => format!("{:?}: {}", s.code(), s.message()),
    }
}

const PERMISSION_DENIED: &str = "PermissionDenied: etcdserver: permission denied";

#[test]
fn a_restricted_user_reads_nothing_beyond_its_permissions() {
    with_cluster(reads);
}

async fn reads(c: RestrictedServer) {
    // GHSA-xg4h-6gfc-h4m8: a watch from the one readable key to the end of
    // the keyspace, with history and previous values.
    let from_key = c
        .watch(
            WatchCreateRequest {
                key: b"k".to_vec(),
                range_end: vec![0],
                start_revision: 1,
                prev_kv: true,
                ..Default::default()
            },
            &c.user,
        )
        .await;
    assert_eq!(
        from_key.len(),
        1,
        "one refusal and nothing else: {from_key:?}"
    );
    assert!(from_key[0].canceled, "{from_key:?}");
    assert_eq!(
        from_key[0].cancel_reason,
        "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    );
    assert!(from_key.iter().all(|r| r.events.is_empty()));
    // a range over the same keys is refused alike
    let range = c
        .kv()
        .range(as_user(
            RangeRequest {
                key: b"k".to_vec(),
                range_end: vec![0],
                ..Default::default()
            },
            &c.user,
        ))
        .await;
    assert_eq!(denied(range), PERMISSION_DENIED);
    // the readable key alone may be watched, history included
    let own = c
        .watch(
            WatchCreateRequest {
                key: b"k".to_vec(),
                start_revision: 1,
                ..Default::default()
            },
            &c.user,
        )
        .await;
    assert!(own[0].created && !own[0].canceled, "{own:?}");
    let events: Vec<_> = own.iter().flat_map(|r| &r.events).collect();
    assert_eq!(events.len(), 1, "{own:?}");
    assert_eq!(events[0].kv.as_ref().map(|kv| &kv.key[..]), Some(&b"k"[..]));

    // A put with prev_kv returns the old value: inside a txn it needs read
    // permission too (etcd checks only the write there).
    let txn = |prev_kv: bool| TxnRequest {
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"w".to_vec(),
                value: b"new".to_vec(),
                prev_kv,
                ..Default::default()
            })),
        }],
        ..Default::default()
    };
    assert_eq!(
        denied(c.kv().txn(as_user(txn(true), &c.user)).await),
        PERMISSION_DENIED
    );
    let put = PutRequest {
        key: b"w".to_vec(),
        value: b"new".to_vec(),
        prev_kv: true,
        ..Default::default()
    };
    assert_eq!(
        denied(c.kv().put(as_user(put, &c.user)).await),
        PERMISSION_DENIED
    );
    // the write alone is the user's to make
    let resp = c
        .kv()
        .txn(as_user(txn(false), &c.user))
        .await
        .expect("a txn put without prev_kv")
        .into_inner();
    assert!(resp.succeeded);
    let w = c
        .kv()
        .range(as_user(
            RangeRequest {
                key: b"w".to_vec(),
                ..Default::default()
            },
            &c.root,
        ))
        .await
        .expect("root reads w")
        .into_inner();
    assert_eq!(w.kvs[0].value, b"new");
}

#[test]
fn only_root_compacts_raises_alarms_or_manages_users() {
    with_cluster(admin_only);
}

async fn admin_only(c: RestrictedServer) {
    let compact = || CompactionRequest {
        revision: 2,
        physical: false,
    };
    assert_eq!(
        denied(c.kv().compact(as_user(compact(), &c.user)).await),
        PERMISSION_DENIED
    );
    assert_eq!(
        denied(c.kv().compact(compact()).await),
        "InvalidArgument: etcdserver: user name is empty"
    );
    c.kv()
        .compact(as_user(compact(), &c.root))
        .await
        .expect("root compacts");

    let alarm = |action: alarm_request::AlarmAction| AlarmRequest {
        action: action as i32,
        member_id: 0,
        alarm: AlarmType::Nospace as i32,
    };
    use alarm_request::AlarmAction::{Activate, Deactivate, Get};
    for action in [Activate, Deactivate] {
        let mut m = c.maintenance();
        assert_eq!(
            denied(m.alarm(as_user(alarm(action), &c.user)).await),
            PERMISSION_DENIED
        );
        assert_eq!(
            denied(m.alarm(alarm(action)).await),
            "InvalidArgument: etcdserver: user name is empty"
        );
    }
    // listing stays open (as in etcd), and nothing was raised
    let list = c
        .maintenance()
        .alarm(alarm(Get))
        .await
        .expect("alarm list")
        .into_inner();
    assert!(list.alarms.is_empty(), "{list:?}");
    let put = PutRequest {
        key: b"w".to_vec(),
        value: b"still writable".to_vec(),
        ..Default::default()
    };
    c.kv()
        .put(as_user(put, &c.user))
        .await
        .expect("writes go on");

    // A non-root caller is refused before the password is hashed and
    // before anything is proposed: the raft log does not move.
    let mut auth = AuthClient::new(c.channel.clone());
    let before = c.raft_index().await;
    let add = AuthUserAddRequest {
        name: "mallory".into(),
        password: "pw".into(),
        ..Default::default()
    };
    assert_eq!(
        denied(auth.user_add(as_user(add.clone(), &c.user)).await),
        PERMISSION_DENIED
    );
    assert_eq!(
        denied(auth.user_add(add).await),
        "InvalidArgument: etcdserver: user name is empty"
    );
    let change = AuthUserChangePasswordRequest {
        name: "root".into(),
        password: "owned".into(),
    };
    assert_eq!(
        denied(auth.user_change_password(as_user(change, &c.user)).await),
        PERMISSION_DENIED
    );
    assert_eq!(
        c.raft_index().await,
        before,
        "a refused request was proposed"
    );
    // http peer URLs: anyone who reaches the peer port can forge entries
    assert!(
        c.server
            .log()
            .contains("the peer port does not authenticate members"),
        "no warning that RBAC holds only against clients"
    );
}

/// Password checks run on a bounded pool: a flood of Authenticate calls
/// (each a bcrypt) gets "too many requests" past the bound at once, and
/// the member goes on serving.
#[test]
fn a_flood_of_logins_is_bounded() {
    with_cluster(login_flood);
}

async fn login_flood(c: RestrictedServer) {
    let calls = (0..300).map(|_| {
        let mut auth = AuthClient::new(c.channel.clone());
        async move {
            auth.authenticate(AuthenticateRequest {
                name: "root".into(),
                password: "wrong".into(),
            })
            .await
        }
    });
    let answers = futures::future::join_all(calls).await;
    let busy = answers
        .iter()
        .filter(|a| {
            a.as_ref().err().is_some_and(|s| {
                s.code() == tonic::Code::ResourceExhausted
                    && s.message() == "etcdserver: too many requests"
            })
        })
        .count();
    let refused = answers
        .iter()
        .filter(|a| {
            a.as_ref()
                .err()
                .is_some_and(|s| s.message().contains("authentication failed"))
        })
        .count();
    assert!(busy > 0, "no login was turned away: {answers:?}");
    assert_eq!(busy + refused, answers.len(), "{answers:?}");
    // and the member serves on
    c.kv()
        .range(as_user(
            RangeRequest {
                key: b"k".to_vec(),
                ..Default::default()
            },
            &c.root,
        ))
        .await
        .expect("a read after the flood");
}

/// etcd 3.5 hashes a new password with Go's bcrypt, which refuses more
/// than 72 bytes (x/crypto since 2022) and etcd returns that error as it
/// is; the bcrypt crate's plain `hash` would keep the first 72 bytes and
/// drop the rest without a word.
#[test]
fn passwords_past_72_bytes_are_refused_as_go_bcrypt_does() {
    with_cluster(long_passwords);
}

async fn long_passwords(c: RestrictedServer) {
    const TOO_LONG: &str = "Unknown: bcrypt: password length exceeds 72 bytes";
    let mut auth = AuthClient::new(c.channel.clone());
    let add = |name: &str, password: String| AuthUserAddRequest {
        name: name.into(),
        password,
        ..Default::default()
    };
    assert_eq!(
        denied(
            auth.user_add(as_user(add("long", "p".repeat(73)), &c.root))
                .await
        ),
        TOO_LONG
    );
    auth.user_add(as_user(add("edge", "p".repeat(72)), &c.root))
        .await
        .expect("72 bytes are fine");
    token(&c.channel, "edge", &"p".repeat(72)).await;
    let change = AuthUserChangePasswordRequest {
        name: "edge".into(),
        password: "q".repeat(100),
    };
    assert_eq!(
        denied(auth.user_change_password(as_user(change, &c.root)).await),
        TOO_LONG
    );
    // the password did not change
    token(&c.channel, "edge", &"p".repeat(72)).await;
}
