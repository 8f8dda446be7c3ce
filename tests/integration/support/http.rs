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

/// An answer: status, header lines (lower-cased names) and body (chunked
/// transfer decoded).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `method` on `path` with extra `headers` and `body`, the whole answer.
pub async fn exchange(
    method: &str,
    server: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<Answer> {
    let addr = server.trim_start_matches("http://").trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut extra = String::new();
    for (k, v) in headers {
        extra.push_str(&format!("{k}: {v}\r\n"));
    }
    // a Host of the caller's replaces the server's address
    let host = if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        String::new()
    } else {
        format!("Host: {addr}\r\n")
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\n{host}Connection: close\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut out)).await??;
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, raw) = out.split_once("\r\n\r\n").context("no end of headers")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(raw)?
    } else {
        raw.to_string()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// The data of a chunked body (trailers dropped).
pub fn dechunk(mut raw: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = raw.split_once("\r\n").context("no chunk size")?;
        let size = usize::from_str_radix(size.trim(), 16).context("bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).context("short chunk")?);
        raw = rest.get(size + 2..).context("no chunk end")?;
    }
}
