//! The integration tests, one binary: each module is a former test file
//! (a file per area), each starts its own servers on free loopback ports
//! in its own temp dirs. One binary links once and lets tests of different
//! areas run side by side (CI time, issue 14). `fuzz`, `docs` and
//! `panic_abort` stay separate binaries: a campaign command, a test that
//! runs cargo, and one that runs its own binary again.

mod support;

mod auth_cluster;
mod auth_differential;
mod auth_etcdctl;
mod auth_forward;
mod auth_hardening;
mod auth_jwt;
mod auth_model;
mod auth_tls;
mod auto_compaction;
mod bench_tool;
mod cluster;
mod config;
mod corrupt;
mod crash;
mod data_modes;
mod disk_full;
mod etcdctl_auth;
mod etcdctl_cli;
mod etcdctl_maintenance;
mod etcdctl_member;
mod etcdctl_tls;
mod etcdctl_watch_lock;
mod etcdutl;
mod gateway;
mod health;
mod hostile_apply;
mod hostile_differential;
mod hostile_endpoints;
mod hostile_input;
mod kv_differential;
mod kv_limits;
mod lease;
mod lock_election;
mod log_fields;
mod maintenance;
mod maintenance_cluster;
mod metrics;
mod notify;
mod packaging_files;
mod read_load;
mod restart;
mod robustness;
mod serving;
mod snapshot_format;
mod tls;
mod tls_peer;
mod tls_peer_versions;
mod watch_differential;
mod watch_stress;
