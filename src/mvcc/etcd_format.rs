//! The backend in etcd's own schema, as a bbolt file: what
//! `Maintenance.Snapshot` sends (`export`) and what `etcdutl snapshot
//! restore` takes from etcd's snapshots and data dirs (`import`).
//! docs/design/etcd-snapshot-format.md is the spec.
//!
//! etcd's buckets and ours:
//! - `key`: revision (main, '_', sub; 't' appended for a deletion) →
//!   `mvccpb.KeyValue`; ours: revision (main, sub) → kind byte + KeyValue.
//!   etcd's tombstone holds only the key (its mod revision is the
//!   revision's main, patched in when read); ours holds both.
//! - `meta`: consistent_index, and the compaction as scheduledCompactRev /
//!   finishedCompactRev (revision bytes); ours: consistent_index,
//!   current_rev, compact_rev.
//! - `lease`: id (8 bytes BE) → `leasepb.Lease`; ours is the same.
//! - `auth` (authEnabled, authRevision), `authUsers`, `authRoles` (name →
//!   authpb message); ours: `auth/...` meta keys with the same values.
//! - `alarm`: `AlarmMember` bytes → nothing; ours: `alarm/<id><type>`.
//! - `members`, `members_removed`, `cluster`: membership as JSON, hex id;
//!   ours: `members/<id>` → our Member. A restore rebuilds membership from
//!   its flags in both systems, so `import` leaves these out.
//!
//! The meta schema written is etcd 3.4's (no `term`, `confState`), which
//! every etcd 3.4.x and 3.5.x opens; 3.5's extra keys are ignored on import.

use std::io;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use heed::{RoTxn, WithoutTls};
use prost::Message as _;

use super::revision::Revision;
use super::store::{decode_record, encode_record, RECORD_DELETE, RECORD_PUT};
use crate::proto::authpb::{Role, User};
use crate::proto::etcdserverpb::AlarmMember;
use crate::proto::internal::{LeaseRecord, Member};
use crate::proto::mvccpb::KeyValue;
use crate::storage::backend::Backend;
use crate::storage::bbolt::{Reader, Writer};
use crate::storage::schema::{
    META_ALARM_PREFIX, META_AUTH_ENABLED, META_AUTH_REVISION, META_AUTH_ROLE_PREFIX,
    META_AUTH_USER_PREFIX, META_CLUSTER_VERSION, META_COMPACT_REV, META_CONSISTENT_INDEX,
    META_CURRENT_REV, META_MEMBER_PREFIX, META_REMOVED_PREFIX,
};

// etcd's bucket names, in byte order (the order a bbolt root lists them).
const ALARM: &[u8] = b"alarm";
const AUTH: &[u8] = b"auth";
const AUTH_ROLES: &[u8] = b"authRoles";
const AUTH_USERS: &[u8] = b"authUsers";
const CLUSTER: &[u8] = b"cluster";
const KEY: &[u8] = b"key";
const LEASE: &[u8] = b"lease";
const MEMBERS: &[u8] = b"members";
const MEMBERS_REMOVED: &[u8] = b"members_removed";
const META: &[u8] = b"meta";

// etcd's keys in `meta`, `auth` and `cluster`.
const ETCD_CONSISTENT_INDEX: &[u8] = b"consistent_index";
const ETCD_FINISHED_COMPACT: &[u8] = b"finishedCompactRev";
const ETCD_SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
const ETCD_AUTH_ENABLED: &[u8] = b"authEnabled";
const ETCD_AUTH_REVISION: &[u8] = b"authRevision";
const ETCD_CLUSTER_VERSION: &[u8] = b"clusterVersion";

/// etcd's revision key: main, '_', sub, big-endian; 't' marks a deletion.
fn etcd_revision(rev: Revision, tombstone: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(18);
    b.extend_from_slice(&rev.main.to_be_bytes());
    b.push(b'_');
    b.extend_from_slice(&rev.sub.to_be_bytes());
    if tombstone {
        b.push(b't');
    }
    b
}

/// The revision and deletion mark of an etcd revision key.
fn parse_etcd_revision(k: &[u8]) -> Option<(Revision, bool)> {
    let tombstone = match k.len() {
        17 => false,
        18 if k[17] == b't' => true,
        _ => return None,
    };
    if k[8] != b'_' {
        return None;
    }
    let rev = Revision::new(
        i64::from_be_bytes(k[..8].try_into().ok()?),
        i64::from_be_bytes(k[9..17].try_into().ok()?),
    );
    (rev.main > 0 && rev.sub >= 0).then_some((rev, tombstone))
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn i64_be(v: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(v.try_into().ok()?))
}

/// Writes the state `txn` sees as a bbolt file in etcd's schema at `path`
/// (which must not exist); returns its size. `txn` must hold no record a
/// compaction dropped (`Store::compacted_read`): etcd's key bucket after a
/// compaction has none.
pub fn export(backend: &Backend, txn: &RoTxn<'_, WithoutTls>, path: &Path) -> anyhow::Result<u64> {
    let meta_get = |k: &[u8]| -> anyhow::Result<Option<Vec<u8>>> {
        Ok(backend.meta.get(txn, k)?.map(<[u8]>::to_vec))
    };
    let meta_prefix = |prefix: &[u8]| -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in backend.meta.prefix_iter(txn, prefix)? {
            let (k, v) = item?;
            out.push((k[prefix.len()..].to_vec(), v.to_vec()));
        }
        Ok(out)
    };
    let mut w = Writer::create(path).with_context(|| format!("create {}", path.display()))?;

    let mut alarms: Vec<Vec<u8>> = Vec::new();
    for (k, _) in meta_prefix(META_ALARM_PREFIX)? {
        if k.len() != 12 {
            bail!("corrupt backend: alarm key of {} bytes", k.len());
        }
        let member_id = u64::from_be_bytes(k[..8].try_into()?);
        let alarm = i32::from_be_bytes(k[8..].try_into()?);
        alarms.push(AlarmMember { member_id, alarm }.encode_to_vec());
    }
    alarms.sort();
    w.bucket(ALARM, alarms.into_iter().map(|k| Ok((k, Vec::new()))))?;

    let mut auth = Vec::new();
    if let Some(v) = meta_get(META_AUTH_ENABLED)? {
        auth.push(Ok((ETCD_AUTH_ENABLED.to_vec(), v)));
    }
    if let Some(v) = meta_get(META_AUTH_REVISION)? {
        auth.push(Ok((ETCD_AUTH_REVISION.to_vec(), v)));
    }
    w.bucket(AUTH, auth)?;
    w.bucket(
        AUTH_ROLES,
        meta_prefix(META_AUTH_ROLE_PREFIX)?.into_iter().map(Ok),
    )?;
    w.bucket(
        AUTH_USERS,
        meta_prefix(META_AUTH_USER_PREFIX)?.into_iter().map(Ok),
    )?;

    let version = meta_get(META_CLUSTER_VERSION)?;
    w.bucket(
        CLUSTER,
        version.map(|v| Ok((ETCD_CLUSTER_VERSION.to_vec(), v))),
    )?;

    let records = backend.kv.iter(txn)?.map(|item| {
        let (k, v) = item.map_err(io_err)?;
        let rev = Revision::from_bytes(k)
            .ok_or_else(|| io_err(format!("corrupt backend: revision key {k:x?}")))?;
        let (deleted, kv) = decode_record(v).map_err(io_err)?;
        let value = if deleted {
            KeyValue {
                key: kv.key,
                ..Default::default()
            }
        } else {
            kv
        };
        Ok((etcd_revision(rev, deleted), value.encode_to_vec()))
    });
    w.bucket(KEY, records)?;

    let leases = backend.lease.iter(txn)?.map(|item| {
        let (k, v) = item.map_err(io_err)?;
        Ok((k.to_vec(), v.to_vec()))
    });
    w.bucket(LEASE, leases)?;

    let mut members = Vec::new();
    for (hex, v) in meta_prefix(META_MEMBER_PREFIX.as_bytes())? {
        let m = Member::decode(v.as_slice()).map_err(|e| {
            anyhow!(
                "corrupt backend: member {}: {e}",
                String::from_utf8_lossy(&hex)
            )
        })?;
        members.push((format!("{:x}", m.id).into_bytes(), member_json(&m)));
    }
    // etcd's keys are unpadded hex: sorted as bytes, not as numbers
    members.sort();
    w.bucket(MEMBERS, members.into_iter().map(Ok))?;
    let mut removed = Vec::new();
    for (hex, _) in meta_prefix(META_REMOVED_PREFIX.as_bytes())? {
        let id = std::str::from_utf8(&hex)
            .ok()
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .ok_or_else(|| anyhow!("corrupt backend: removed member {hex:x?}"))?;
        removed.push((format!("{id:x}").into_bytes(), b"removed".to_vec()));
    }
    removed.sort();
    w.bucket(MEMBERS_REMOVED, removed.into_iter().map(Ok))?;

    let mut meta = Vec::new();
    if let Some(v) = meta_get(META_CONSISTENT_INDEX)? {
        let index = i64_be(&v).context("corrupt backend: consistent index")?;
        meta.push((
            ETCD_CONSISTENT_INDEX.to_vec(),
            (index as u64).to_be_bytes().to_vec(),
        ));
    }
    let compacted = match meta_get(META_COMPACT_REV)? {
        Some(v) => i64_be(&v).context("corrupt backend: compact revision")?,
        None => 0,
    };
    if compacted > 0 {
        let rev = etcd_revision(Revision::new(compacted, 0), false);
        meta.push((ETCD_FINISHED_COMPACT.to_vec(), rev.clone()));
        meta.push((ETCD_SCHEDULED_COMPACT.to_vec(), rev));
    }
    w.bucket(META, meta.into_iter().map(Ok))?;
    Ok(w.finish()?)
}

/// etcd's `Member` JSON (membership/member.go): id, peerURLs, isLearner,
/// name, clientURLs, the last three omitted when empty.
fn member_json(m: &Member) -> Vec<u8> {
    let mut o = serde_json::Map::new();
    o.insert("id".into(), m.id.into());
    o.insert("peerURLs".into(), m.peer_urls.clone().into());
    if m.is_learner {
        o.insert("isLearner".into(), true.into());
    }
    if !m.name.is_empty() {
        o.insert("name".into(), m.name.clone().into());
    }
    if !m.client_urls.is_empty() {
        o.insert("clientURLs".into(), m.client_urls.clone().into());
    }
    serde_json::Value::Object(o).to_string().into_bytes()
}

/// What an import brought in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    /// The store revision: the newest record's, or the compaction's when
    /// that is newer (etcd's restore rule).
    pub revision: i64,
    /// The compaction revision (0: never compacted).
    pub compacted: i64,
    pub records: u64,
    pub leases: u64,
}

/// Records written per LMDB transaction: a multi-gigabyte snapshot never
/// sits in one transaction's dirty pages.
const IMPORT_BATCH: usize = 10_000;

/// Fills the empty backend `to` from an etcd database: every revision of
/// the key bucket (tombstones included), leases, auth, alarms and the
/// compaction point. Membership and raft position are left to the caller
/// (a restore writes the new cluster's). Any entry that etcd itself would
/// refuse to load is an error naming the bucket and key.
pub fn import(from: &Reader, to: &Backend) -> anyhow::Result<Imported> {
    let buckets = from.buckets()?;
    let find = |name: &[u8]| buckets.iter().find(|(n, _)| n == name).map(|(_, r)| r);
    // etcd creates missing buckets, but a file with neither of these is
    // some other program's bbolt database, not an etcd backend
    if find(KEY).is_none() && find(META).is_none() {
        let names: Vec<String> = buckets
            .iter()
            .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
            .collect();
        bail!(
            "not an etcd backend: no key or meta bucket (buckets: {})",
            names.join(", ")
        );
    }
    let mut imported = Imported::default();
    let mut batch = Batch::new(to)?;

    let mut last_rev: Option<Revision> = None;
    if let Some(root) = find(KEY) {
        from.for_each(root, &mut |k, v| {
            let bad = |why: String| {
                crate::storage::bbolt::Invalid(format!("bucket key, key {k:x?}: {why}"))
            };
            let (rev, tombstone) =
                parse_etcd_revision(k).ok_or_else(|| bad("not a revision".into()))?;
            let mut kv = KeyValue::decode(v).map_err(|e| bad(format!("not a KeyValue: {e}")))?;
            last_rev = Some(rev);
            if kv.key.is_empty() {
                // etcd's restore with --bump-revision marks the new
                // revision with an empty record; it names no key
                return Ok(());
            }
            let record = if tombstone {
                kv = KeyValue {
                    key: kv.key,
                    mod_revision: rev.main,
                    ..Default::default()
                };
                encode_record(RECORD_DELETE, &kv)
            } else {
                encode_record(RECORD_PUT, &kv)
            };
            imported.records += 1;
            batch
                .put(Table::Kv, &rev.to_bytes(), &record)
                .map_err(|e| bad(format!("{e:#}")))
        })?;
    }
    if let Some(root) = find(LEASE) {
        from.for_each(root, &mut |k, v| {
            let bad = |why: String| {
                crate::storage::bbolt::Invalid(format!("bucket lease, key {k:x?}: {why}"))
            };
            if k.len() != 8 {
                return Err(bad("not a lease id".into()));
            }
            let lease = LeaseRecord::decode(v).map_err(|e| bad(format!("not a Lease: {e}")))?;
            if lease.id.to_be_bytes() != k {
                return Err(bad(format!("holds lease {:x}", lease.id)));
            }
            imported.leases += 1;
            batch
                .put(Table::Lease, k, &lease.encode_to_vec())
                .map_err(|e| bad(format!("{e:#}")))
        })?;
    }
    let mut compacted = 0i64;
    if let Some(root) = find(META) {
        from.for_each(root, &mut |k, v| {
            if k == ETCD_FINISHED_COMPACT || k == ETCD_SCHEDULED_COMPACT {
                let (rev, _) = parse_etcd_revision(v).ok_or_else(|| {
                    crate::storage::bbolt::Invalid(format!(
                        "bucket meta, key {}: not a revision",
                        String::from_utf8_lossy(k)
                    ))
                })?;
                compacted = compacted.max(rev.main);
            }
            Ok(())
        })?;
    }
    if let Some(root) = find(AUTH) {
        from.for_each(root, &mut |k, v| {
            let ours = match k {
                ETCD_AUTH_ENABLED if v.len() == 1 => META_AUTH_ENABLED,
                ETCD_AUTH_REVISION if v.len() == 8 => META_AUTH_REVISION,
                ETCD_AUTH_ENABLED | ETCD_AUTH_REVISION => {
                    return Err(crate::storage::bbolt::Invalid(format!(
                        "bucket auth, key {}: a value of {} bytes",
                        String::from_utf8_lossy(k),
                        v.len()
                    )))
                }
                _ => return Ok(()),
            };
            batch
                .put(Table::Meta, ours, v)
                .map_err(|e| crate::storage::bbolt::Invalid(format!("{e:#}")))
        })?;
    }
    for (bucket, prefix, is_user) in [
        (AUTH_USERS, META_AUTH_USER_PREFIX, true),
        (AUTH_ROLES, META_AUTH_ROLE_PREFIX, false),
    ] {
        let Some(root) = find(bucket) else { continue };
        from.for_each(root, &mut |k, v| {
            let bad = |why: String| {
                crate::storage::bbolt::Invalid(format!(
                    "bucket {}, key {:?}: {why}",
                    String::from_utf8_lossy(bucket),
                    String::from_utf8_lossy(k)
                ))
            };
            let name = if is_user {
                User::decode(v).map(|u| u.name)
            } else {
                Role::decode(v).map(|r| r.name)
            }
            .map_err(|e| bad(format!("not an authpb message: {e}")))?;
            if name != k {
                return Err(bad("names another".into()));
            }
            let key = [prefix, k].concat();
            super::check_key(&key).map_err(|e| bad(e.to_string()))?;
            batch
                .put(Table::Meta, &key, v)
                .map_err(|e| bad(format!("{e:#}")))
        })?;
    }
    if let Some(root) = find(ALARM) {
        from.for_each(root, &mut |k, _| {
            let a = AlarmMember::decode(k).map_err(|e| {
                crate::storage::bbolt::Invalid(format!("bucket alarm, key {k:x?}: {e}"))
            })?;
            let mut key = META_ALARM_PREFIX.to_vec();
            key.extend_from_slice(&a.member_id.to_be_bytes());
            key.extend_from_slice(&a.alarm.to_be_bytes());
            batch
                .put(Table::Meta, &key, &[])
                .map_err(|e| crate::storage::bbolt::Invalid(format!("{e:#}")))
        })?;
    }
    let newest = last_rev.map_or(1, |r| r.main);
    imported.revision = newest.max(compacted);
    imported.compacted = compacted;
    batch.put(
        Table::Meta,
        META_CURRENT_REV,
        &imported.revision.to_be_bytes(),
    )?;
    if compacted > 0 {
        batch.put(Table::Meta, META_COMPACT_REV, &compacted.to_be_bytes())?;
    }
    batch.finish()?;
    Ok(imported)
}

#[derive(Clone, Copy)]
enum Table {
    Kv,
    Meta,
    Lease,
}

/// Writes in transactions of `IMPORT_BATCH` puts.
struct Batch<'b> {
    backend: &'b Backend,
    txn: Option<heed::RwTxn<'b>>,
    puts: usize,
}

impl<'b> Batch<'b> {
    fn new(backend: &'b Backend) -> anyhow::Result<Batch<'b>> {
        Ok(Batch {
            backend,
            txn: Some(backend.env.write_txn()?),
            puts: 0,
        })
    }

    fn put(&mut self, table: Table, k: &[u8], v: &[u8]) -> anyhow::Result<()> {
        let b = self.backend;
        let db = match table {
            Table::Kv => b.kv,
            Table::Meta => b.meta,
            Table::Lease => b.lease,
        };
        let txn = match &mut self.txn {
            Some(t) => t,
            None => self.txn.insert(b.env.write_txn()?),
        };
        db.put(txn, k, v)?;
        self.puts += 1;
        if self.puts % IMPORT_BATCH == 0 {
            if let Some(t) = self.txn.take() {
                t.commit()?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        if let Some(t) = self.txn.take() {
            t.commit()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_keys_round_trip_in_etcds_encoding() {
        let r = Revision::new(0x0102, 3);
        let k = etcd_revision(r, false);
        assert_eq!(
            k,
            [0, 0, 0, 0, 0, 0, 1, 2, b'_', 0, 0, 0, 0, 0, 0, 0, 3].to_vec()
        );
        assert_eq!(parse_etcd_revision(&k), Some((r, false)));
        let t = etcd_revision(r, true);
        assert_eq!(t.len(), 18);
        assert_eq!(parse_etcd_revision(&t), Some((r, true)));
        // a deletion sorts right after the same revision, before the next
        assert!(k < t && t < etcd_revision(Revision::new(0x0102, 4), false));
        for bad in [&k[..16], &[k.as_slice(), b"x"].concat()[..], &[0u8; 17][..]] {
            assert_eq!(parse_etcd_revision(bad), None, "{bad:x?}");
        }
    }

    #[test]
    fn members_are_written_as_etcds_json() {
        let m = Member {
            id: 0x8e9e05c52164694d,
            name: "default".into(),
            peer_urls: vec!["http://localhost:2380".into()],
            client_urls: vec!["http://localhost:2379".into()],
            is_learner: false,
        };
        assert_eq!(
            String::from_utf8(member_json(&m)).unwrap(),
            r#"{"id":10276657743932975437,"peerURLs":["http://localhost:2380"],"name":"default","clientURLs":["http://localhost:2379"]}"#
        );
    }

    use crate::mvcc::{Applied, KeyRange, RangeOptions, Store};

    const ETCD_SNAPSHOT: &[u8] = include_bytes!("../../tests/fixtures/etcd-3.4.23-snapshot.db");

    fn backend(dir: &Path, name: &str) -> Backend {
        Backend::open(&dir.join(name), 1 << 30).unwrap()
    }

    /// Every key at `rev`: (key, value, create, mod, version, lease).
    fn at(store: &Store, rev: i64) -> Vec<(String, String, i64, i64, i64, i64)> {
        let view = store.read().unwrap();
        let opts = RangeOptions {
            rev,
            ..Default::default()
        };
        view.range(&KeyRange::From(vec![0]), opts)
            .unwrap()
            .kvs
            .into_iter()
            .map(|kv| {
                (
                    String::from_utf8(kv.key).unwrap(),
                    String::from_utf8(kv.value).unwrap(),
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                    kv.lease,
                )
            })
            .collect()
    }

    #[test]
    fn etcds_snapshot_imports_with_its_history_leases_and_auth() {
        // etcd 3.4.23: put a=1 b=2 a=3, del b, put c=4, l=x (lease), d=5,
        // compact 4, put a=6, del c; root and u1 (role r1), auth on
        let dir = tempfile::tempdir().unwrap();
        let reader = Reader::from_bytes(ETCD_SNAPSHOT.to_vec()).unwrap();
        let b = backend(dir.path(), "db");
        let imported = import(&reader, &b).unwrap();
        assert_eq!(
            imported,
            Imported {
                revision: 10,
                compacted: 4,
                records: 8,
                leases: 1
            }
        );
        drop(b);
        let store = Store::open(backend(dir.path(), "db")).unwrap();
        let lease = store.leases().unwrap()[0].id;
        let l = ("l".to_string(), "x".to_string(), 7, 7, 1, lease);
        assert_eq!(
            at(&store, 0),
            [
                ("a".into(), "6".into(), 2, 9, 3, 0),
                ("d".into(), "5".into(), 8, 8, 1, 0),
                l.clone()
            ]
        );
        assert_eq!(
            at(&store, 4),
            [
                ("a".into(), "3".into(), 2, 4, 2, 0),
                ("b".into(), "2".into(), 3, 3, 1, 0)
            ]
        );
        assert_eq!(at(&store, 6)[1], ("c".into(), "4".into(), 6, 6, 1, 0));
        let view = store.read().unwrap();
        assert_eq!((view.current_rev(), view.compacted_rev()), (10, 4));
        assert!(view
            .range(
                &KeyRange::Single(b"a".to_vec()),
                RangeOptions {
                    rev: 3,
                    ..Default::default()
                }
            )
            .is_err());
        drop(view);
        let auth = store.meta_with_prefix(b"auth/").unwrap();
        let names: Vec<String> = auth
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "auth/enabled",
                "auth/revision",
                "auth/roles/r1",
                "auth/roles/root",
                "auth/users/root",
                "auth/users/u1"
            ]
        );
        assert_eq!(auth[0].1, [1]);
    }

    #[test]
    fn export_then_import_gives_back_the_same_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(backend(dir.path(), "a")).unwrap();
        let mut index = 0;
        let mut commit = |wt: crate::mvcc::WriteTxn<'_>| {
            index += 1;
            wt.commit(Applied { index, term: 1 }).unwrap();
        };
        for round in 0..3u8 {
            let mut wt = store.write().unwrap();
            for i in 0..500 {
                let lease = if i % 7 == 0 { 0x1234 } else { 0 };
                wt.put(format!("k/{i:04}").as_bytes(), vec![round; i % 50], lease)
                    .unwrap();
                wt.end_request();
            }
            wt.delete_range(&KeyRange::Until(b"k/0100".to_vec(), b"k/0110".to_vec()))
                .unwrap();
            wt.end_request();
            if round == 1 {
                let rev = wt.current_rev();
                wt.compact(rev - 3).unwrap();
                wt.put_lease(&LeaseRecord {
                    id: 0x1234,
                    ttl: 60,
                    remaining_ttl: 0,
                })
                .unwrap();
                wt.put_meta(META_AUTH_ENABLED, &[1]).unwrap();
                wt.put_meta(META_AUTH_REVISION, &7u64.to_be_bytes())
                    .unwrap();
                let user = User {
                    name: b"u1".to_vec(),
                    password: b"$2a$10$hash".to_vec(),
                    roles: vec!["r1".into()],
                    options: None,
                };
                wt.put_meta(b"auth/users/u1", &user.encode_to_vec())
                    .unwrap();
                let mut alarm = META_ALARM_PREFIX.to_vec();
                alarm.extend_from_slice(&9u64.to_be_bytes());
                alarm.extend_from_slice(&1i32.to_be_bytes());
                wt.put_meta(&alarm, &[]).unwrap();
            }
            commit(wt);
            while store.compact_step(100).unwrap() {}
        }
        let (b, txn) = store.compacted_read().unwrap().expect("compaction done");
        let path = dir.path().join("snap.bbolt");
        export(&b, &txn, &path).unwrap();
        drop(txn);
        let reader = Reader::open(std::fs::File::open(&path).unwrap(), None).unwrap();
        assert_eq!(reader.check(), Vec::<String>::new());
        let copy = backend(dir.path(), "b");
        import(&reader, &copy).unwrap();
        drop(copy);
        let copy = Store::open(backend(dir.path(), "b")).unwrap();
        let (a, c) = (store.read().unwrap(), copy.read().unwrap());
        assert_eq!(
            (a.current_rev(), a.compacted_rev()),
            (c.current_rev(), c.compacted_rev())
        );
        let first = a.compacted_rev();
        for rev in first..=a.current_rev() {
            assert_eq!(at(&store, rev), at(&copy, rev), "at revision {rev}");
        }
        drop((a, c));
        assert_eq!(store.leases().unwrap(), copy.leases().unwrap());
        for prefix in [&b"auth/"[..], META_ALARM_PREFIX] {
            assert_eq!(
                store.meta_with_prefix(prefix).unwrap(),
                copy.meta_with_prefix(prefix).unwrap()
            );
        }
        // the same history: HashKV at the current revision agrees
        assert_eq!(
            store.read().unwrap().hash_kv(0).unwrap().hash,
            copy.read().unwrap().hash_kv(0).unwrap().hash
        );
    }

    #[test]
    fn a_bumped_restore_in_35s_schema_imports() {
        // etcd's restore --bump-revision 100 --mark-compacted of a store
        // at revision 2: an empty record at 102, compacted there
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bumped.bbolt");
        let put = KeyValue {
            key: b"a".to_vec(),
            value: b"1".to_vec(),
            create_revision: 2,
            mod_revision: 2,
            version: 1,
            lease: 0,
        };
        let mark = etcd_revision(Revision::new(102, 0), false);
        let mut w = Writer::create(&path).unwrap();
        // etcd 3.5's schema: term and confState in meta, downgrade in
        // cluster (ignored: a restore writes its own)
        w.bucket(
            CLUSTER,
            [
                Ok((b"clusterVersion".to_vec(), b"3.5.0".to_vec())),
                Ok((
                    b"downgrade".to_vec(),
                    br#"{"target-version":"","enabled":false}"#.to_vec(),
                )),
            ],
        )
        .unwrap();
        w.bucket(
            KEY,
            [
                Ok((
                    etcd_revision(Revision::new(2, 0), false),
                    put.encode_to_vec(),
                )),
                Ok((mark.clone(), Vec::new())),
            ],
        )
        .unwrap();
        w.bucket(
            META,
            [
                Ok((
                    b"confState".to_vec(),
                    br#"{"voters":[1],"auto_leave":false}"#.to_vec(),
                )),
                Ok((ETCD_SCHEDULED_COMPACT.to_vec(), mark)),
                Ok((b"term".to_vec(), 4u64.to_be_bytes().to_vec())),
            ],
        )
        .unwrap();
        w.finish().unwrap();
        let reader = Reader::open(std::fs::File::open(&path).unwrap(), None).unwrap();
        let b = backend(dir.path(), "db");
        let imported = import(&reader, &b).unwrap();
        assert_eq!(
            (imported.revision, imported.compacted, imported.records),
            (102, 102, 1)
        );
        drop(b);
        let store = Store::open(backend(dir.path(), "db")).unwrap();
        assert_eq!(at(&store, 0), [("a".into(), "1".into(), 2, 2, 1, 0)]);
    }
}
