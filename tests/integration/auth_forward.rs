//! Requests only the leader can answer, sent to a follower by a client
//! known only by its certificate's Common Name (--client-cert-auth, no
//! token), in a three-member cluster on https client and peer URLs: the
//! follower checks the caller's permission and asks the leader over the
//! peer port, so lease time-to-live with keys, keep-alive and learner
//! promotion work for permitted users and are refused for the others, as
//! etcd answers them.

use crate::support::tls as support;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rsetcd::proto::authpb::{permission::Type as PermType, Permission};
use rsetcd::proto::etcdserverpb::auth_client::AuthClient;
use rsetcd::proto::etcdserverpb::cluster_client::ClusterClient;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::lease_client::LeaseClient;
use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::{
    AuthEnableRequest, AuthRoleAddRequest, AuthRoleGrantPermissionRequest, AuthUserAddRequest,
    AuthUserGrantRoleRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseTimeToLiveRequest,
    MemberAddRequest, MemberPromoteRequest, PutRequest, StatusRequest,
};
use support::{free_port, Ca, Pair, Proc};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::support::common::OUR_ETCD as OURS;

struct Node {
    name: String,
    client: String,
    peer: String,
}

impl Node {
    fn new(name: &str) -> Node {
        Node {
            name: name.to_string(),
            client: format!("https://127.0.0.1:{}", free_port().expect("port")),
            peer: format!("https://127.0.0.1:{}", free_port().expect("port")),
        }
    }
}

/// A member with https client (certificate CN as user) and peer URLs.
fn start(dir: &Path, node: &Node, cluster: &str, state: &str, ca: &Ca, pair: &Pair) -> Proc {
    let ca_file = ca.ca_file().display().to_string();
    let (cert, key) = (pair.cert.display(), pair.key.display());
    let args = vec![
        format!("--name={}", node.name),
        format!("--data-dir={}", dir.join(&node.name).display()),
        format!("--listen-client-urls={}", node.client),
        format!("--advertise-client-urls={}", node.client),
        format!("--listen-peer-urls={}", node.peer),
        format!("--initial-advertise-peer-urls={}", node.peer),
        format!("--initial-cluster={cluster}"),
        format!("--initial-cluster-state={state}"),
        "--initial-cluster-token=auth-forward".to_string(),
        "--heartbeat-interval=50".to_string(),
        "--election-timeout=500".to_string(),
        "--bcrypt-cost=4".to_string(),
        format!("--cert-file={cert}"),
        format!("--key-file={key}"),
        format!("--trusted-ca-file={ca_file}"),
        "--client-cert-auth".to_string(),
        format!("--peer-cert-file={cert}"),
        format!("--peer-key-file={key}"),
        format!("--peer-trusted-ca-file={ca_file}"),
        "--peer-client-cert-auth".to_string(),
    ];
    Proc::start(OURS, &node.name, dir, &args).expect("start member")
}

/// A connection to `url` as the user named by `client`'s CN.
async fn connect(url: &str, ca: &Ca, client: &Pair) -> anyhow::Result<Channel> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.cert_pem))
        .identity(Identity::from_pem(
            std::fs::read(&client.cert)?,
            std::fs::read(&client.key)?,
        ));
    Ok(Endpoint::from_shared(url.to_string())?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cn_only_callers_reach_the_leader_through_a_follower() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = Ca::new(dir.path(), "forward")?;
    let member_pair = ca.server("member", "member")?;
    let root = ca.client("root", "root")?;
    let alice = ca.client("alice", "alice")?;
    let bob = ca.client("bob", "bob")?;

    let nodes: Vec<Node> = ["m1", "m2", "m3"].iter().map(|n| Node::new(n)).collect();
    let cluster = nodes
        .iter()
        .map(|n| format!("{}={}", n.name, n.peer))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs: Vec<Proc> = nodes
        .iter()
        .map(|n| start(dir.path(), n, &cluster, "new", &ca, &member_pair))
        .collect();
    for p in &mut procs {
        p.wait_log("ready to serve client requests", Duration::from_secs(30))?;
    }

    // Users: root (admin), alice (may read a/), bob (no role). Set up as
    // root by certificate, before and after enabling auth.
    let leader_url = &nodes[0].client;
    let mut auth = AuthClient::new(connect(leader_url, &ca, &root).await?);
    for name in ["root", "alice", "bob"] {
        auth.user_add(AuthUserAddRequest {
            name: name.into(),
            password: "pw".into(),
            ..Default::default()
        })
        .await?;
    }
    auth.user_grant_role(AuthUserGrantRoleRequest {
        user: "root".into(),
        role: "root".into(),
    })
    .await?;
    auth.role_add(AuthRoleAddRequest { name: "r".into() })
        .await?;
    auth.role_grant_permission(AuthRoleGrantPermissionRequest {
        name: "r".into(),
        perm: Some(Permission {
            perm_type: PermType::Read as i32,
            key: b"a/".to_vec(),
            range_end: b"a0".to_vec(),
        }),
    })
    .await?;
    auth.user_grant_role(AuthUserGrantRoleRequest {
        user: "alice".into(),
        role: "r".into(),
    })
    .await?;
    auth.auth_enable(AuthEnableRequest {}).await?;

    // A lease with a key on it, as root.
    let root_channel = connect(leader_url, &ca, &root).await?;
    let lease = LeaseClient::new(root_channel.clone())
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await?
        .into_inner()
        .id;
    KvClient::new(root_channel.clone())
        .put(PutRequest {
            key: b"a/x".to_vec(),
            value: b"1".to_vec(),
            lease,
            ..Default::default()
        })
        .await?;

    // A follower: any member that is not the leader.
    let mut follower = None;
    for n in &nodes {
        let s = MaintenanceClient::new(connect(&n.client, &ca, &root).await?)
            .status(StatusRequest {})
            .await?
            .into_inner();
        let id = s.header.as_ref().map(|h| h.member_id).unwrap_or(0);
        if s.leader != id {
            follower = Some(n.client.clone());
            break;
        }
    }
    let follower = follower.context("a follower")?;

    // alice may read a/: the follower checks, the leader answers.
    let mut alice_lease = LeaseClient::new(connect(&follower, &ca, &alice).await?);
    let ttl = alice_lease
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: lease,
            keys: true,
        })
        .await
        .map_err(|s| anyhow::anyhow!("alice's time-to-live via a follower: {s:?}"))?
        .into_inner();
    assert_eq!(ttl.id, lease);
    assert_eq!(ttl.granted_ttl, 60);
    assert!(ttl.ttl > 0 && ttl.ttl <= 60, "ttl {}", ttl.ttl);
    assert_eq!(ttl.keys, vec![b"a/x".to_vec()]);
    // An unknown lease: TTL -1, as etcd.
    let unknown = alice_lease
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: lease + 1,
            keys: false,
        })
        .await?
        .into_inner();
    assert_eq!(unknown.ttl, -1);

    // bob may not see the keys: refused on the follower.
    let refused = LeaseClient::new(connect(&follower, &ca, &bob).await?)
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: lease,
            keys: true,
        })
        .await
        .expect_err("bob may not list the lease's keys");
    assert_eq!(refused.message(), "etcdserver: permission denied");

    // Keep-alive through the follower renews on the leader.
    let mut answers = alice_lease
        .lease_keep_alive(tokio_stream::once(LeaseKeepAliveRequest { id: lease }))
        .await?
        .into_inner();
    let renewed = answers.message().await?.context("a keep-alive answer")?;
    assert_eq!((renewed.id, renewed.ttl), (lease, 60));

    // A learner, promoted by root through the follower once it caught up.
    let learner = Node::new("m4");
    let added = ClusterClient::new(connect(leader_url, &ca, &root).await?)
        .member_add(MemberAddRequest {
            peer_ur_ls: vec![learner.peer.clone()],
            is_learner: true,
        })
        .await?
        .into_inner();
    let learner_id = added.member.context("added member")?.id;
    let joined = format!("{cluster},m4={}", learner.peer);
    let mut learner_proc = start(dir.path(), &learner, &joined, "existing", &ca, &member_pair);
    learner_proc.wait_log("ready to serve client requests", Duration::from_secs(30))?;

    let denied = ClusterClient::new(connect(&follower, &ca, &alice).await?)
        .member_promote(MemberPromoteRequest { id: learner_id })
        .await
        .expect_err("alice is not root");
    assert_eq!(denied.message(), "etcdserver: permission denied");

    let mut root_cluster = ClusterClient::new(connect(&follower, &ca, &root).await?);
    let deadline = Instant::now() + Duration::from_secs(20);
    let promoted = loop {
        match root_cluster
            .member_promote(MemberPromoteRequest { id: learner_id })
            .await
        {
            Ok(r) => break r.into_inner(),
            // The leader's own check: the learner is still catching up.
            Err(s) if s.message().contains("in sync with leader") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => anyhow::bail!("root's promote via a follower: {s:?}"),
        }
    };
    let m4 = promoted
        .members
        .iter()
        .find(|m| m.id == learner_id)
        .context("the promoted member in the answer")?;
    assert!(!m4.is_learner, "promoted: {promoted:?}");
    // Promoting it again: the leader's answer comes back unchanged.
    let again = root_cluster
        .member_promote(MemberPromoteRequest { id: learner_id })
        .await
        .expect_err("not a learner any more");
    assert_eq!(
        again.message(),
        "etcdserver: can only promote a learner member"
    );
    drop(learner_proc);
    drop(procs);
    Ok(())
}
