//! A checksum of a whole backend file, as etcd's `backend.Hash` and
//! `snapshot status` compute it over bbolt: CRC32C over every table's name
//! followed by each of its keys and values, tables in name order, records
//! in key order. Members that applied the same entries hold the same
//! tables, so they agree, except for meta keys that are each member's own
//! (its id): the caller names those to skip.

use heed::types::Bytes;
use heed::{Database, Env, RoTxn, WithoutTls};

/// A table of a backend, by name.
pub type NamedTable<'e> = (String, Database<'e, Bytes, Bytes>);

/// The table whose keys `backend_hash` may skip.
pub use super::schema::META_TABLE;

/// What hashing a backend found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendHash {
    pub hash: u32,
    /// Records hashed, all tables together (etcd's "total keys").
    pub records: u64,
}

/// Every named table of `env`, in name order (LMDB keeps the names as the
/// keys of its unnamed database). Opening commits a read txn, so open the
/// tables first and hash in a read txn taken afterwards.
pub fn tables(env: &Env<WithoutTls>) -> anyhow::Result<Vec<NamedTable<'_>>> {
    let main = env
        .open_databases_and_commit(env.read_txn()?, |opener, rtxn| -> heed::Result<_> {
            let db = opener.open_database::<Bytes, Bytes>(rtxn, None)?;
            Ok(heed::CommitOrAbort::<_, ()>::Commit(db))
        })?
        .unwrap_commit()
        .ok_or_else(|| anyhow::anyhow!("the backend has no main table"))?;
    let names: Vec<String> = {
        let rtxn = env.read_txn()?;
        let mut names = Vec::new();
        for item in main.iter(&rtxn)? {
            let (name, _) = item?;
            names.push(String::from_utf8(name.to_vec()).map_err(|_| {
                anyhow::anyhow!("the backend holds a table whose name is not UTF-8: {name:x?}")
            })?);
        }
        names
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let db = env
            .open_databases_and_commit(env.read_txn()?, |opener, rtxn| -> heed::Result<_> {
                let db = opener.open_database::<Bytes, Bytes>(rtxn, Some(&name))?;
                Ok(heed::CommitOrAbort::<_, ()>::Commit(db))
            })?
            .unwrap_commit()
            .ok_or_else(|| anyhow::anyhow!("table {name} vanished while opening it"))?;
        out.push((name, db));
    }
    Ok(out)
}

/// CRC32C over `tables` as seen by `rtxn`, leaving out the keys of the
/// `meta` table listed in `skip_meta_keys` (and their values).
pub fn backend_hash(
    rtxn: &RoTxn<'_, WithoutTls>,
    tables: &[NamedTable<'_>],
    skip_meta_keys: &[&[u8]],
) -> anyhow::Result<BackendHash> {
    let mut hash = 0u32;
    let mut records = 0u64;
    for (name, db) in tables {
        hash = crc32c::crc32c_append(hash, name.as_bytes());
        let skip = if name == META_TABLE {
            skip_meta_keys
        } else {
            &[]
        };
        for item in db.iter(rtxn)? {
            let (k, v) = item?;
            if skip.contains(&k) {
                continue;
            }
            hash = crc32c::crc32c_append(hash, k);
            hash = crc32c::crc32c_append(hash, v);
            records += 1;
        }
    }
    Ok(BackendHash { hash, records })
}

/// Opens every table of `env` and hashes them in one fresh read txn.
pub fn hash_env(env: &Env<WithoutTls>, skip_meta_keys: &[&[u8]]) -> anyhow::Result<BackendHash> {
    let tables = tables(env)?;
    let rtxn = env.read_txn()?;
    backend_hash(&rtxn, &tables, skip_meta_keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::backend::Backend;

    /// The checksum is etcd's definition, computed by hand here: table
    /// names in order, then each table's records.
    #[test]
    fn hashes_names_keys_and_values_in_order_and_skips_meta_keys() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(&dir.path().join("db"), 1 << 24).unwrap();
        let mut w = b.env.write_txn().unwrap();
        b.kv.put(&mut w, b"r1", b"v1").unwrap();
        b.meta.put(&mut w, b"member_id", b"me").unwrap();
        b.meta.put(&mut w, b"x", b"y").unwrap();
        w.commit().unwrap();

        let mut want = 0u32;
        for part in [
            &b"key"[..],
            b"r1",
            b"v1",
            b"lease",
            b"meta",
            b"member_id",
            b"me",
            b"x",
            b"y",
        ] {
            want = crc32c::crc32c_append(want, part);
        }
        let got = hash_env(&b.env, &[]).unwrap();
        assert_eq!(
            got,
            BackendHash {
                hash: want,
                records: 3
            }
        );

        let mut skipped = 0u32;
        for part in [&b"key"[..], b"r1", b"v1", b"lease", b"meta", b"x", b"y"] {
            skipped = crc32c::crc32c_append(skipped, part);
        }
        let got = hash_env(&b.env, &[b"member_id"]).unwrap();
        assert_eq!(
            got,
            BackendHash {
                hash: skipped,
                records: 2
            }
        );
    }
}
