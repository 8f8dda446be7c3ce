//! What an operator sees of a running member: gRPC and plain HTTP on every
//! client listener, etcd's /version and /health bodies, and the startup
//! lines tooling waits for, in etcd's order.

use crate::support;
use crate::support::process::Proc;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::kv::free_port;

/// One HTTP/1.1 GET; returns (status line, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw.lines().next().unwrap_or_default().to_string();
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    Ok((status, body))
}

#[test]
fn two_listeners_serve_http_and_startup_lines_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, peer) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let log = dir.path().join("etcd.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_etcd"));
    cmd.arg("--name=s1")
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg(format!(
            "--listen-client-urls=http://127.0.0.1:{a},http://127.0.0.1:{b}"
        ))
        .arg(format!("--advertise-client-urls=http://127.0.0.1:{a}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
        ))
        .arg(format!("--initial-cluster=s1=http://127.0.0.1:{peer}"));
    let _etcd = Proc::spawn("s1", cmd, &log).expect("start etcd");
    let deadline = Instant::now() + Duration::from_secs(20);
    let version = loop {
        match http_get(a, "/version") {
            Ok(r) if r.0.contains("200") => break r,
            _ if Instant::now() > deadline => panic!(
                "no /version answer; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert_eq!(
        version.1,
        format!(
            r#"{{"etcdserver":"{}","etcdcluster":"3.5.0"}}"#,
            rsetcd::ETCD_VERSION
        )
    );
    for port in [a, b] {
        let (status, body) = http_get(port, "/health").unwrap();
        assert!(status.contains("200"), "{status}");
        assert_eq!(body, r#"{"health":"true","reason":""}"#);
        let (_, body) = http_get(port, "/health?serializable=true").unwrap();
        assert_eq!(body, r#"{"health":"true","reason":""}"#);
    }
    // The cluster version is applied concurrently with serving, as in etcd:
    // wait for its line rather than assume an order.
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("\"msg\":\"enabled capabilities for version\"")
            || Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let at = |msg: &str| {
        text.find(&format!("\"msg\":\"{msg}\""))
            .unwrap_or_else(|| panic!("no {msg:?} line in:\n{text}"))
    };
    let published = at("published local member to cluster through raft");
    let ready = at("ready to serve client requests");
    at("enabled capabilities for version");
    assert!(published < ready, "publish comes before ready");
    // every line is one zap-style JSON object
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect(line);
        for field in ["level", "ts", "caller", "msg"] {
            assert!(v.get(field).is_some(), "{field} missing in {line}");
        }
    }
}
