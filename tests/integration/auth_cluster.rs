//! The auth state is replicated and durable: users, roles, permissions and
//! the enabled flag set through one member hold on every member, reach a
//! member that was down through the leader's snapshot, and survive a
//! restart. Along the way, every file the members wrote (WAL, backend,
//! the snapshot sent and received) is private to their user (0600/0700).

use crate::support;
use crate::support::common::with_token;

use std::time::{Duration, Instant};

use rsetcd::proto::authpb::{permission::Type as PermType, Permission};
use rsetcd::proto::etcdserverpb::auth_client::AuthClient;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::*;
use support::cluster::{Cluster, Flavor, Member};
use tonic::transport::Channel;

const ARGS: [&str; 4] = [
    "--heartbeat-interval=100",
    "--election-timeout=1000",
    "--snapshot-count=100",
    "--bcrypt-cost=4",
];

async fn channel(m: &Member) -> Channel {
    m.channel().await.expect("connect")
}

async fn token(m: &Member, name: &str, password: &str) -> anyhow::Result<String> {
    let r = AuthenticateRequest {
        name: name.into(),
        password: password.into(),
    };
    Ok(AuthClient::new(m.channel().await?)
        .authenticate(r)
        .await?
        .into_inner()
        .token)
}

/// root, role `r` with readwrite on prefix "p/", user `u` with it, auth on.
async fn set_up_auth(m: &Member) -> String {
    let mut auth = AuthClient::new(channel(m).await);
    let perm = Permission {
        perm_type: PermType::Readwrite as i32,
        key: b"p/".to_vec(),
        range_end: b"p0".to_vec(),
    };
    support::auth::add_root(&mut auth).await.expect("root");
    support::auth::add_user_with_role(&mut auth, None, "u", "upw", "r", &[perm])
        .await
        .expect("role r, user u");
    support::auth::enable(&mut auth).await.expect("enable");
    token(m, "root", "rootpw").await.expect("root token")
}

fn range(key: &str) -> RangeRequest {
    RangeRequest {
        key: key.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// What `m` enforces: `u` reads its prefix, is refused elsewhere, and a
/// request without token is the empty user; root lists both users.
async fn assert_enforced(m: &Member) {
    let u = token(m, "u", "upw").await.expect("u authenticates");
    let mut kv = KvClient::new(channel(m).await);
    kv.range(with_token(range("p/1"), &u))
        .await
        .expect("u reads p/");
    let denied = kv
        .range(with_token(range("q"), &u))
        .await
        .expect_err("u may not read q");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let anonymous = kv.range(range("p/1")).await.expect_err("no token");
    assert_eq!(anonymous.message(), "etcdserver: user name is empty");
    let root = token(m, "root", "rootpw")
        .await
        .expect("root authenticates");
    let mut auth = AuthClient::new(channel(m).await);
    let users = auth
        .user_list(with_token(AuthUserListRequest {}, &root))
        .await
        .expect("user list")
        .into_inner()
        .users;
    assert_eq!(users, ["root", "u"]);
    let status = auth
        .auth_status(with_token(AuthStatusRequest {}, &root))
        .await
        .expect("auth status")
        .into_inner();
    assert!(status.enabled);
}

/// Waits until `m` answers root's reads (it may still be catching up).
async fn wait_serving_as_root(m: &mut Member) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(m.is_running(), "{} exited:\n{}", m.name, m.log());
        let ok = async {
            let root = token(m, "root", "rootpw").await?;
            KvClient::new(m.channel().await?)
                .range(with_token(range("p/1"), &root))
                .await?;
            anyhow::Ok(())
        }
        .await;
        if ok.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} not serving: {ok:?}\n{}",
            m.name,
            m.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_state_reaches_every_member_by_log_and_snapshot_and_survives_restart() {
    let mut cluster = Cluster::start(Flavor::Ours, 3, &ARGS).await.unwrap();
    assert!(cluster.members[2].terminate().unwrap().success());
    let root = set_up_auth(&cluster.members[0]).await;

    // Past the leader's catch-up window (5000 entries after a snapshot):
    // member 3 can only get the auth state from a snapshot.
    let urls = [
        cluster.members[0].client_url(),
        cluster.members[1].client_url(),
    ];
    let mut tasks = Vec::new();
    for w in 0..6 {
        let url = urls[w % 2].clone();
        let root = root.clone();
        tasks.push(tokio::spawn(async move {
            let mut kv = KvClient::connect(url).await.unwrap();
            for i in 0..1000 {
                let put = PutRequest {
                    key: format!("p/{w}/{i:04}").into_bytes(),
                    value: b"v".to_vec(),
                    ..Default::default()
                };
                kv.put(with_token(put, &root)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // The follower that saw it all through the log.
    assert_enforced(&cluster.members[1]).await;

    cluster.restart(2).unwrap();
    wait_serving_as_root(&mut cluster.members[2]).await;
    let log = cluster.members[2].log();
    assert!(
        log.contains("installed the leader's snapshot"),
        "member 3 should have caught up by snapshot:\n{log}"
    );
    assert_enforced(&cluster.members[2]).await;
    for m in &cluster.members {
        let wide = support::modes::too_wide(&m.data_dir);
        assert!(wide.is_empty(), "wider than etcd's 0700/0600: {wide:#?}");
    }

    // Every member down and up again: the state is on disk.
    for i in 0..3 {
        assert!(cluster.members[i].terminate().unwrap().success());
    }
    for i in 0..3 {
        cluster.restart(i).unwrap();
    }
    for i in 0..3 {
        wait_serving_as_root(&mut cluster.members[i]).await;
    }
    for i in 0..3 {
        assert_enforced(&cluster.members[i]).await;
    }
}
