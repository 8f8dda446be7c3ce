//! The backend's schema: every LMDB table and every key of the meta table,
//! in one place. A key named here is read back after restarts, carried in
//! snapshots and (unless member-local) covered by Hash, so renaming one is
//! a data-dir format change.

/// Revision → record (`mvcc::store`'s encoding of a put or a delete).
pub const KEY_TABLE: &str = "key";
/// Small named values: the keys below.
pub const META_TABLE: &str = "meta";
/// Lease id → `LeaseRecord`.
pub const LEASE_TABLE: &str = "lease";

// --- MVCC state (`mvcc::store`), written with every applied batch.
/// The newest revision.
pub const META_CURRENT_REV: &[u8] = b"current_rev";
/// The revision the last compaction kept history from.
pub const META_COMPACT_REV: &[u8] = b"compact_rev";
/// The index of the last raft entry applied: apply is exactly-once across
/// restarts because entries at or below it are skipped.
pub const META_CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// The term of that entry.
pub const META_TERM: &[u8] = b"consistent_term";
/// How many times this member's backend was rewritten whole (a snapshot
/// installed from the leader): the generation of the key index that
/// matches it. Member-local: an install writes its own count over the
/// leader's.
pub const META_INDEX_GENERATION: &[u8] = b"local_index_generation";

// --- raft (`storage::snapshot`).
/// Raft's conf state as of the consistent index.
pub const META_CONF_STATE: &[u8] = b"conf_state";

// --- this member's identity (`etcdmain`), member-local.
pub const META_MEMBER_ID: &[u8] = b"member_id";
pub const META_CLUSTER_ID: &[u8] = b"cluster_id";

// --- cluster state (`apply`, `cluster`, `alarm`).
/// The cluster version the members agreed on.
pub const META_CLUSTER_VERSION: &[u8] = b"cluster_version";
/// `members/<id>` → `Member`.
pub const META_MEMBER_PREFIX: &str = "members/";
/// `members_removed/<id>`: removed for good.
pub const META_REMOVED_PREFIX: &str = "members_removed/";
/// Active alarms: `alarm/<member BE><type BE>`.
pub const META_ALARM_PREFIX: &[u8] = b"alarm/";

// --- auth (`auth`).
/// Every auth key starts with this.
pub const META_AUTH_PREFIX: &[u8] = b"auth/";
pub const META_AUTH_ENABLED: &[u8] = b"auth/enabled";
pub const META_AUTH_REVISION: &[u8] = b"auth/revision";
/// `auth/users/<name>` → `User`.
pub const META_AUTH_USER_PREFIX: &[u8] = b"auth/users/";
/// `auth/roles/<name>` → `Role`.
pub const META_AUTH_ROLE_PREFIX: &[u8] = b"auth/roles/";

/// Meta keys that differ between members holding the same data; Hash
/// leaves them out (etcd's DefaultIgnores, plus the local member id that
/// etcd keeps outside its backend).
pub const MEMBER_LOCAL_META: &[&[u8]] = &[
    META_MEMBER_ID,
    META_CONSISTENT_INDEX,
    META_TERM,
    META_INDEX_GENERATION,
];
