//! TLS for the client and peer ports, on rustls: building server and client
//! configs from etcd's certificate flags (`info`), --auto-tls certificates
//! (`selfsigned`), --cipher-suites and TLS versions (`suites`), CN and SAN
//! rules (`identity`, `verify`), accepting connections (`acceptor`) and
//! reloading changed files without a restart (`reload`).
//!
//! Plain http:// listeners never go through this module.

pub mod acceptor;
pub mod identity;
pub mod info;
pub mod pem;
pub mod reload;
pub mod selfsigned;
pub mod suites;
pub mod verify;

pub use identity::peer_common_name;
pub use info::{ReloadableTls, Role, TlsInfo, Trigger};
pub use suites::Suites;
