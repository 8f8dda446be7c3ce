//! rsetcd: an etcd-compatible, strongly consistent key-value store.

pub mod proto;
