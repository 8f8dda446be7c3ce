//! What rsetcd's client programs (etcdctl, rsetcd-bench) share about
//! reaching a cluster: the endpoint forms etcd's client accepts, clientv3's
//! prefix ranges, and the text etcd's client library and grpc-go give a
//! failed call.

use tonic::{Code, Status};

/// Why an endpoint cannot be dialed over plain HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointError {
    /// `https://` or `unixs://`: needs TLS.
    Tls,
    /// Any other scheme (`unix://`, `ftp://`…).
    UnsupportedScheme,
}

/// The `host:port` to dial for an etcd endpoint written `host:port` or
/// `http://host:port`.
pub fn endpoint_host_port(raw: &str) -> Result<&str, EndpointError> {
    if let Some(rest) = raw.strip_prefix("http://") {
        return Ok(rest.trim_end_matches('/'));
    }
    if raw.starts_with("https://") || raw.starts_with("unixs://") {
        return Err(EndpointError::Tls);
    }
    if raw.contains("://") {
        return Err(EndpointError::UnsupportedScheme);
    }
    Ok(raw)
}

/// The smallest key greater than every key with this prefix (clientv3's
/// `GetPrefixRangeEnd`); `\0` (to the end) when there is none.
pub fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// What etcd's client shows for a failed call: etcd's own errors
/// ("etcdserver: ...") by their message, anything else as grpc-go formats
/// a status.
pub fn status_text(status: &Status) -> String {
    if status.message().starts_with("etcdserver: ") {
        return status.message().to_string();
    }
    grpc_status_string(status)
}

/// grpc-go's `status.Error` text: `rpc error: code = X desc = Y`.
pub fn grpc_status_string(status: &Status) -> String {
    format!(
        "rpc error: code = {} desc = {}",
        grpc_code_name(status.code()),
        status.message()
    )
}

/// grpc-go's names for status codes.
pub fn grpc_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_etcds_forms() {
        assert_eq!(endpoint_host_port("127.0.0.1:2379"), Ok("127.0.0.1:2379"));
        assert_eq!(
            endpoint_host_port("http://localhost:2379/"),
            Ok("localhost:2379")
        );
        assert_eq!(
            endpoint_host_port("https://127.0.0.1:2379"),
            Err(EndpointError::Tls)
        );
        assert_eq!(endpoint_host_port("unixs://sock"), Err(EndpointError::Tls));
        assert_eq!(
            endpoint_host_port("unix://sock"),
            Err(EndpointError::UnsupportedScheme)
        );
    }

    #[test]
    fn prefix_end_like_clientv3() {
        assert_eq!(prefix_end(b"foo"), b"fop");
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b");
        assert_eq!(prefix_end(&[0xff, 0xff]), vec![0]);
    }

    #[test]
    fn errors_read_like_etcds_client() {
        let too_large = Status::invalid_argument("etcdserver: request is too large");
        assert_eq!(status_text(&too_large), "etcdserver: request is too large");
        let refused = Status::cancelled("connection closed");
        assert_eq!(
            status_text(&refused),
            "rpc error: code = Canceled desc = connection closed"
        );
    }
}
