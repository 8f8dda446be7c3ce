//! `--auth-token jwt,...`: signed tokens carry the user and the auth
//! revision, so a token issued before any auth change is refused as old,
//! and one past its ttl as invalid. Compared with etcd 3.4 over gRPC.

use crate::support;
use crate::support::common;
use crate::support::common::with_token;

use std::time::Duration;

use common::{reference_available, ServerOptions, TestServer};
use rsetcd::proto::authpb::{permission::Type as PermType, Permission};
use rsetcd::proto::etcdserverpb::auth_client::AuthClient;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::*;
use tonic::transport::Channel;

fn outcome<T>(r: Result<tonic::Response<T>, tonic::Status>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(s) => format!("{:?}: {}", s.code(), s.message()),
    }
}

fn range(key: &str) -> RangeRequest {
    RangeRequest {
        key: key.as_bytes().to_vec(),
        ..Default::default()
    }
}

async fn token(c: &Channel, name: &str, password: &str) -> String {
    let r = AuthenticateRequest {
        name: name.into(),
        password: password.into(),
    };
    AuthClient::new(c.clone())
        .authenticate(r)
        .await
        .expect("authenticate")
        .into_inner()
        .token
}

/// What a client sees along the flow, one line per step.
async fn flow(url: &str) -> Vec<String> {
    let c = Channel::from_shared(url.to_string())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut auth = AuthClient::new(c.clone());
    let mut kv = KvClient::new(c.clone());
    let perm = |key: &str| Permission {
        perm_type: PermType::Read as i32,
        key: key.as_bytes().to_vec(),
        range_end: Vec::new(),
    };
    support::auth::add_root(&mut auth).await.expect("root");
    support::auth::add_user_with_role(&mut auth, None, "u", "upw", "r", &[perm("k")])
        .await
        .expect("role r, user u");
    support::auth::enable(&mut auth).await.expect("enable");

    let mut seen = Vec::new();
    let u = token(&c, "u", "upw").await;
    seen.push(format!("jwt has 3 parts: {}", u.split('.').count() == 3));
    seen.push(outcome(kv.range(with_token(range("k"), &u)).await));
    seen.push(outcome(kv.range(with_token(range("j"), &u)).await));
    seen.push(outcome(kv.range(with_token(range("k"), "not.a.jwt")).await));

    // Any auth change leaves the token behind.
    let root = token(&c, "root", "rootpw").await;
    let grant = AuthRoleGrantPermissionRequest {
        name: "r".into(),
        perm: Some(perm("j")),
    };
    seen.push(outcome(
        auth.role_grant_permission(with_token(grant, &root)).await,
    ));
    seen.push(outcome(kv.range(with_token(range("k"), &u)).await));
    let u = token(&c, "u", "upw").await;
    seen.push(outcome(kv.range(with_token(range("j"), &u)).await));

    // ttl=2s
    tokio::time::sleep(Duration::from_millis(3500)).await;
    seen.push(outcome(kv.range(with_token(range("k"), &u)).await));
    seen
}

#[test]
fn jwt_tokens_behave_as_etcds() {
    if !reference_available() {
        eprintln!("skipped: etcd 3.4 is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("ES256 key");
    let (private, public) = (dir.path().join("jwt.key"), dir.path().join("jwt.pub"));
    std::fs::write(&private, key.serialize_pem()).expect("write key");
    std::fs::write(&public, key.public_key_pem()).expect("write pub");
    let opts = ServerOptions {
        extra_args: vec![
            "--bcrypt-cost=4".into(),
            format!(
                "--auth-token=jwt,pub-key={},priv-key={},sign-method=ES256,ttl=2s",
                public.display(),
                private.display()
            ),
        ],
        ..ServerOptions::default()
    };
    let reference = TestServer::start_reference(&opts).expect("start etcd 3.4");
    let ours = TestServer::start_ours(&opts).expect("start ours");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let want = runtime.block_on(flow(&reference.client_url));
    let got = runtime.block_on(flow(&ours.client_url));
    assert_eq!(want, got, "--- our log:\n{}", ours.log());
    assert_eq!(
        want,
        [
            "jwt has 3 parts: true",
            "ok",
            "PermissionDenied: etcdserver: permission denied",
            "Unauthenticated: etcdserver: invalid auth token",
            "ok",
            "InvalidArgument: etcdserver: revision of auth store is old",
            "ok",
            "Unauthenticated: etcdserver: invalid auth token",
        ]
    );
}

#[test]
fn a_bad_jwt_option_stops_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = format!("http://127.0.0.1:{}", common::free_port().expect("port"));
    let peer = format!("http://127.0.0.1:{}", common::free_port().expect("port"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_etcd"))
        .arg("--auth-token=jwt,sign-method=ES256,pub-key=/nonexistent")
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=default={peer}"))
        .output()
        .expect("run etcd");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("auth: read pub-key /nonexistent"),
        "{stderr}"
    );
}
