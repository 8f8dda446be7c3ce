//! The gateway's side of an in-process gRPC call: message framing,
//! the status a response ends with, and grpc-gateway's HTTP status for
//! each gRPC code.

use axum::http::{HeaderMap, StatusCode};
use bytes::{Buf as _, Bytes, BytesMut};

/// A gRPC message frame: uncompressed flag, length, message.
pub fn frame(message: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + message.len());
    b.extend_from_slice(&[0]);
    b.extend_from_slice(&(message.len() as u32).to_be_bytes());
    b.extend_from_slice(message);
    b.freeze()
}

/// Splits a response body's data into messages.
#[derive(Default)]
pub struct Deframer {
    buf: BytesMut,
}

impl Deframer {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole message, if one is buffered.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, String> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        if self.buf[0] != 0 {
            return Err("a compressed gRPC message".into());
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        self.buf.advance(5);
        Ok(Some(self.buf.split_to(len).freeze()))
    }
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcStatus {
    pub code: i32,
    pub message: String,
}

/// The status in a header or trailer map (`grpc-status`, and
/// `grpc-message` percent-decoded), if there is one.
pub fn status_of(headers: &HeaderMap) -> Option<GrpcStatus> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some(GrpcStatus { code, message })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// grpc-gateway's `HTTPStatusFromCode` (runtime 1.6.4, Debian's etcd 3.4).
pub fn http_status(code: i32) -> StatusCode {
    match code {
        0 => StatusCode::OK,
        1 => StatusCode::REQUEST_TIMEOUT,
        2 => StatusCode::INTERNAL_SERVER_ERROR,
        3 => StatusCode::BAD_REQUEST,
        4 => StatusCode::GATEWAY_TIMEOUT,
        5 => StatusCode::NOT_FOUND,
        6 => StatusCode::CONFLICT,
        7 => StatusCode::FORBIDDEN,
        8 => StatusCode::TOO_MANY_REQUESTS,
        9 => StatusCode::PRECONDITION_FAILED,
        10 => StatusCode::CONFLICT,
        11 => StatusCode::BAD_REQUEST,
        12 => StatusCode::NOT_IMPLEMENTED,
        13 => StatusCode::INTERNAL_SERVER_ERROR,
        14 => StatusCode::SERVICE_UNAVAILABLE,
        15 => StatusCode::INTERNAL_SERVER_ERROR,
        16 => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_join_as_grpc_writes_them() {
        let mut d = Deframer::default();
        let (a, b) = (frame(b"hello"), frame(b""));
        let joined = [a.as_ref(), b.as_ref()].concat();
        d.push(&joined[..3]);
        assert_eq!(d.next_message(), Ok(None));
        d.push(&joined[3..]);
        assert_eq!(d.next_message(), Ok(Some(Bytes::from_static(b"hello"))));
        assert_eq!(d.next_message(), Ok(Some(Bytes::new())));
        assert_eq!(d.next_message(), Ok(None));
    }

    #[test]
    fn statuses_are_read_and_mapped() {
        let mut h = HeaderMap::new();
        h.insert("grpc-status", "11".parse().unwrap());
        h.insert(
            "grpc-message",
            "etcdserver: mvcc: required revision has been compacted%0A50%"
                .parse()
                .unwrap(),
        );
        let s = status_of(&h).unwrap();
        assert_eq!(s.code, 11);
        assert_eq!(
            s.message,
            "etcdserver: mvcc: required revision has been compacted\n50%"
        );
        assert_eq!(http_status(s.code), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(9), StatusCode::PRECONDITION_FAILED);
    }
}
