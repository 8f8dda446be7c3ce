//! What the integration tests share:
//! - `process::Proc`: the one way a test starts a process (output in a
//!   log file, signalled only while not reaped, SIGKILL by PID on drop).
//!   `member::Member` is a server on it (our etcd or etcd 3.4: ports, data
//!   dir, arguments, restarts, every start's log): `cluster::Cluster`
//!   starts several, `common::TestServer` and `kv::Server` one each; tests
//!   with their own flags (TLS, config files, environment only) start a
//!   `Proc` themselves.
//! - `etcdctl`: running either etcdctl on a case (args, stdin, env),
//!   bounded in time; `auth`: root, roles, users and tokens as the auth
//!   tests set them up; `tls`: a certificate authority and its files.
//! - `powerfail`: a FUSE filesystem that loses unsynced writes at a
//!   power cut.
//! - `proxy`: the peer network a test controls (cut, delay, loss, one way
//!   or both).
//! - `ports` (free ports, one sequence per test binary), `wire`, `http`,
//!   `modes`, `hostile` (the hostile-request table).

pub mod auth;
pub mod cluster;
pub mod common;
pub mod etcdctl;
pub mod history;
pub mod hostile;
pub mod http;
pub mod kv;
pub mod member;
pub mod modes;
pub mod ports;
pub mod powerfail;
pub mod process;
pub mod proxy;
pub mod tls;
pub mod wire;
