//! Plain HTTP/1.1 requests for tests (no HTTP client crate): the status
//! code and the body of `path` on a server given as `host:port` or
//! `http://…`.

#![allow(dead_code)]

use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub async fn get(server: &str, path: &str) -> anyhow::Result<(u16, String)> {
    request("GET", server, path, "").await
}

/// `method` on `path` with `body` (sent with its length).
pub async fn request(
    method: &str,
    server: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let addr = server.trim_start_matches("http://").trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let length = match method {
        "GET" => String::new(),
        _ => format!("Content-Length: {}\r\n", body.len()),
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{length}\r\n{body}"
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(15), s.read_to_string(&mut out)).await??;
    let (head, body) = out.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line in {head:?}"))?;
    Ok((status, body.trim().to_string()))
}
