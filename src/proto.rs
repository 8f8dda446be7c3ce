//! Generated protobuf types and gRPC stubs. Package names, messages, field
//! numbers and service paths are etcd's, so the wire format is identical.

#![allow(clippy::all, missing_docs)]

pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

pub mod authpb {
    tonic::include_proto!("authpb");
}

pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// rsetcd's own raft entry payload (package `rsetcd.internal`).
pub mod rsetcd {
    pub mod internal {
        tonic::include_proto!("rsetcd.internal");
    }
    /// Member-to-member traffic on the peer port (package `rsetcd.peer`).
    pub mod peer {
        tonic::include_proto!("rsetcd.peer");
    }
}

pub use self::rsetcd::{internal, peer};

/// The descriptors of every message and service above (a protobuf
/// `FileDescriptorSet`), for the JSON gateway's mapping.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rsetcd_descriptors.bin"));
