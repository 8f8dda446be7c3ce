//! The health endpoints as probes see them: etcd 3.5's `/health` (JSON
//! with a reason, `?serializable`, `?exclude`) and etcd 3.6's `/livez` and
//! `/readyz` (named checks, `?verbose`, `?exclude=`, one path per check),
//! on the client port and on a `--listen-metrics-urls` listener.
//!
//! The failing cases (no leader in a 3-member cluster, a NOSPACE alarm)
//! need the cluster and maintenance issues; what exists is tested here.

use crate::support::common;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use anyhow::Context as _;
use common::{ServerOptions, TestServer};

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

fn request(base: &str, method: &str, path: &str) -> anyhow::Result<Reply> {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").context("no header end")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("status")?;
    Ok(Reply {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    })
}

#[test]
fn health_livez_and_readyz_answer_as_etcd() -> anyhow::Result<()> {
    let metrics_url = format!("http://127.0.0.1:{}", common::free_port()?);
    let server = TestServer::start_ours(&ServerOptions {
        extra_args: vec![format!("--listen-metrics-urls={metrics_url}")],
        ..ServerOptions::default()
    })?;
    for base in [server.client_url.as_str(), metrics_url.as_str()] {
        // /health: etcd 3.5's body, as Go's content sniffing labels it.
        for path in [
            "/health",
            "/health?serializable=true",
            "/health?exclude=NOSPACE",
        ] {
            let r = request(base, "GET", path)?;
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.body, r#"{"health":"true","reason":""}"#, "{path}");
            assert!(r
                .headers
                .contains("content-type: text/plain; charset=utf-8"));
        }
        let r = request(base, "POST", "/health")?;
        assert_eq!(r.status, 405);
        assert_eq!(r.body, "Method Not Allowed\n");
        assert!(r.headers.contains("allow: get"), "{}", r.headers);

        // /livez and /readyz: "ok", the checks with ?verbose.
        let r = request(base, "GET", "/livez")?;
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
        let r = request(base, "GET", "/livez?verbose")?;
        assert_eq!(r.body, "[+]serializable_read ok\nok\n");
        let r = request(base, "GET", "/readyz?verbose")?;
        assert_eq!(
            r.body,
            "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\nok\n"
        );
        assert!(r.headers.contains("x-content-type-options: nosniff"));
        // Excluded checks are skipped; unknown ones are ignored.
        let r = request(
            base,
            "GET",
            "/readyz?verbose&exclude=linearizable_read&exclude=no_such_check",
        )?;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            "[+]data_corruption ok\n[+]serializable_read ok\nok\n"
        );
        // One check by its path.
        let r = request(base, "GET", "/readyz/linearizable_read?verbose")?;
        assert_eq!(r.body, "[+]linearizable_read ok\nok\n");
        let r = request(base, "GET", "/livez/serializable_read")?;
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
        assert_eq!(
            request(base, "GET", "/livez/linearizable_read")?.status,
            404
        );
        assert_eq!(request(base, "POST", "/readyz")?.status, 405);
    }
    // /version is the client API's, not the metrics listener's.
    let r = request(&server.client_url, "GET", "/version")?;
    assert_eq!(r.status, 200);
    assert!(r.body.contains(r#""etcdserver":"3.5.17""#), "{}", r.body);
    assert_eq!(request(&metrics_url, "GET", "/version")?.status, 404);
    Ok(())
}
