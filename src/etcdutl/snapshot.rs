//! Backend snapshot files: what `etcdctl snapshot save` writes and
//! `snapshot status` / `snapshot restore` read.
//!
//! A snapshot is a backend file optionally followed by etcd's integrity
//! trailer, the SHA-256 of everything before it. The backend file is in
//! one of two formats:
//! - etcd's: a bbolt database in etcd's schema, what Maintenance.Snapshot
//!   sends (from rsetcd or etcd) and what an etcd member keeps in
//!   `member/snap/db`; restored through `mvcc::etcd_format::import`;
//! - rsetcd's own before it spoke etcd's (an LMDB copy of the backend),
//!   still restored so that older backups keep working.
//!
//! As etcd, a file carries the trailer when its size is 32 more than a
//! multiple of 512 (backend files are whole pages); a backend copied
//! straight out of a data dir has none and is restored only with
//! --skip-hash-check.
//!
//! Restore writes a new data dir whose member belongs to a new cluster: the
//! ids `etcd --initial-cluster-state new` would derive from the same
//! --initial-cluster and token, the new membership in the backend, and the
//! WAL a new member writes (one AddNode per member at term 1), with the
//! backend's consistent index already past those entries. By default the
//! revision jumps ahead and everything before it is compacted, so a watcher
//! resuming from a revision of the old cluster is told its history is gone
//! instead of silently missing changes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _};
use heed::{Env, WithoutTls};
use sha2::{Digest, Sha256};

use super::identity::{self, NewIdentity};
use super::printer::SnapshotStatus;
use super::{create_private_dir_all, io_text, meta, sync_dir, Error, Result};
use crate::cluster::{self, Member};
use crate::mvcc::revision::Revision;
use crate::mvcc::store::{META_CONSISTENT_INDEX, META_TERM};
use crate::mvcc::{Applied, Store};
use crate::storage::backend::{self, Backend, DEFAULT_MAP_SIZE};
use crate::storage::bbolt::{Invalid, Reader};
use crate::storage::hash;
use crate::storage::wal::Wal;

/// Length of the SHA-256 trailer.
pub const CHECKSUM_LEN: u64 = 32;

/// How much `restore` moves the revision on unless told otherwise: the
/// amount etcd's documentation suggests, far more than any cluster writes
/// between a snapshot and its restore.
pub const DEFAULT_REVISION_BUMP: u64 = 1_000_000_000;

/// etcd's `hasChecksum`: a snapshot carries a trailer when its size is 32
/// past a multiple of 512 (a minimum disk sector, dividing every page size).
pub fn has_checksum(size: u64) -> bool {
    size % 512 == CHECKSUM_LEN
}

/// The trailer for a snapshot whose backend bytes are `backend_bytes`.
pub fn checksum(backend_bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(backend_bytes).into()
}

/// The two formats a snapshot file may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// etcd's: bbolt in etcd's schema.
    Etcd,
    /// rsetcd's before it spoke etcd's: an LMDB backend.
    Lmdb,
}

/// Which format the file at `path` is in: etcd's when bbolt's magic opens
/// its first meta page or a bbolt reader finds a valid meta (the first
/// may be damaged), else ours (the LMDB check then says what it is).
pub fn format_of(path: &Path) -> anyhow::Result<Format> {
    let f = File::open(path).map_err(|e| anyhow!("open {}: {}", path.display(), io_text(&e)))?;
    let mut head = [0u8; 20];
    use std::os::unix::fs::FileExt as _;
    let magic = f.read_exact_at(&mut head, 0).is_ok()
        && u32::from_le_bytes(head[16..20].try_into().expect("4 bytes")) == BBOLT_MAGIC;
    Ok(if magic || Reader::open(f, None).is_ok() {
        Format::Etcd
    } else {
        Format::Lmdb
    })
}

const BBOLT_MAGIC: u32 = 0xED0C_DAED;

/// What `snapshot status` adds on stderr after its output for a file in
/// rsetcd's earlier format (etcd's format needs no word: etcd's output
/// stays exactly etcd's).
pub fn format_note(path: &Path) -> Option<String> {
    (format_of(path).ok()? == Format::Lmdb).then(|| {
        format!(
            "{} is in rsetcd's earlier snapshot format (LMDB), which etcd's tools do not read; rsetcd restores it as before\n",
            path.display()
        )
    })
}

/// `snapshot status`: the hash, revision, record count and size of a
/// snapshot file (etcd's `v3Manager.Status`). For etcd's format these are
/// etcd's numbers exactly (after bbolt's integrity check, as etcd runs
/// it); for the LMDB format the hash covers every table, as
/// `storage::hash` defines it. Unlike etcd's, it also checks the SHA-256
/// trailer when the file has one: a file restore would refuse fails here.
pub fn status(path: &Path) -> Result<SnapshotStatus> {
    let md =
        std::fs::metadata(path).map_err(|e| anyhow!("stat {}: {}", path.display(), io_text(&e)))?;
    if md.is_dir() {
        return Err(anyhow!("{} is a directory, not a snapshot file", path.display()).into());
    }
    let status = if format_of(path)? == Format::Etcd {
        etcd_status(path)?
    } else {
        lmdb_status(path)?
    };
    // Stricter than etcd's status, which never reads the trailer: a
    // snapshot that restore would refuse is not reported sound.
    verify_trailer(path)?;
    Ok(status)
}

/// When the file carries etcd's trailer, checks it against the bytes
/// before it (restore's first check, with its words).
fn verify_trailer(path: &Path) -> anyhow::Result<()> {
    let mut f =
        File::open(path).map_err(|e| anyhow!("open {}: {}", path.display(), io_text(&e)))?;
    let size = f
        .metadata()
        .map_err(|e| anyhow!("stat {}: {}", path.display(), io_text(&e)))?
        .len();
    if !has_checksum(size) {
        return Ok(());
    }
    let mut sha = Sha256::new();
    let mut left = size - CHECKSUM_LEN;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        f.read_exact(&mut buf[..want])
            .map_err(|e| anyhow!("read {}: {}", path.display(), io_text(&e)))?;
        sha.update(&buf[..want]);
        left -= want as u64;
    }
    let mut expected = [0u8; CHECKSUM_LEN as usize];
    f.read_exact(&mut expected)
        .map_err(|e| anyhow!("read {}: {}", path.display(), io_text(&e)))?;
    check_trailer(&expected, sha)
}

/// The trailer against the digest of the bytes before it (etcd's words).
fn check_trailer(expected: &[u8; CHECKSUM_LEN as usize], sha: Sha256) -> anyhow::Result<()> {
    let got: [u8; 32] = sha.finalize().into();
    if got != *expected {
        bail!(
            "expected sha256 {}, got {}",
            go_bytes(expected),
            go_bytes(&got)
        );
    }
    Ok(())
}

/// `snapshot status` of a file in our earlier (LMDB) format.
fn lmdb_status(path: &Path) -> anyhow::Result<SnapshotStatus> {
    let env = open_backend_file(path, path)?;
    let result = (|| -> anyhow::Result<SnapshotStatus> {
        let tables = hash::tables(&env)?;
        let rtxn = env.read_txn()?;
        let digest = hash::backend_hash(&rtxn, &tables, &[])?;
        let mut revision = 0;
        if let Some((_, meta_table)) = tables.iter().find(|(n, _)| n == hash::META_TABLE) {
            if let Some(v) = meta_table.get(&rtxn, meta::CURRENT_REV)? {
                revision = i64_of(v)
                    .with_context(|| format!("{}: bad current revision", path.display()))?;
            }
        }
        if revision == 0 {
            // etcd reads the revision of the last record instead.
            if let Some((_, kv)) = tables
                .iter()
                .find(|(n, _)| n == crate::storage::schema::KEY_TABLE)
            {
                if let Some((k, _)) = kv.last(&rtxn)? {
                    revision = Revision::from_bytes(k).map_or(0, |r| r.main);
                }
            }
        }
        let page_size = u64::from(env.unnamed_database_stat().page_size);
        let pages = env.info().last_page_number as u64 + 1;
        Ok(SnapshotStatus {
            hash: digest.hash,
            revision,
            total_key: digest.records,
            total_size: i64::try_from(pages * page_size).unwrap_or(i64::MAX),
        })
    })();
    env.prepare_for_closing().wait();
    result
}

/// `snapshot status` of a file in etcd's format, as etcd computes it:
/// bbolt's `tx.Check` first, then a CRC-32C over every bucket's name and
/// its keys and values in order, the entries of every bucket, the main
/// revision of the last key in `key`, and the database's size (the
/// trailer not counted).
fn etcd_status(path: &Path) -> anyhow::Result<SnapshotStatus> {
    let file = File::open(path).map_err(|e| anyhow!("open {}: {}", path.display(), io_text(&e)))?;
    let db = Reader::open(file, None)?;
    let errors = db.check();
    if !errors.is_empty() {
        bail!(
            "snapshot file integrity check failed. {} errors found.\n{}",
            errors.len(),
            errors.join("\n")
        );
    }
    let mut hash = 0u32;
    let mut total_key = 0u64;
    let mut revision = 0i64;
    for (name, root) in db.buckets()? {
        hash = crc32c::crc32c_append(hash, &name);
        let is_key = name == b"key";
        db.for_each(&root, &mut |k, v| {
            hash = crc32c::crc32c_append(hash, k);
            hash = crc32c::crc32c_append(hash, v);
            total_key += 1;
            if is_key {
                if k.len() < 17 {
                    return Err(Invalid(format!("bucket key holds a {}-byte key", k.len())));
                }
                revision = i64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
            }
            Ok(())
        })?;
    }
    Ok(SnapshotStatus {
        hash,
        revision,
        total_key,
        total_size: i64::try_from(db.size()).unwrap_or(i64::MAX),
    })
}

/// How `restore` moves the revision: etcd's --bump-revision and
/// --mark-compacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevisionBump {
    /// Added to the snapshot's revision; 0 keeps it.
    pub bump: u64,
    /// Compact everything up to the bumped revision.
    pub mark_compacted: bool,
}

impl RevisionBump {
    /// The flags' meaning. Without --bump-revision the revision moves by
    /// `DEFAULT_REVISION_BUMP` and is marked compacted (our default, so a
    /// restore never rewrites history under a watcher); given explicitly,
    /// etcd 3.5's rule holds: --mark-compacted exactly when the bump is
    /// not 0.
    pub fn from_flags(bump: Option<u64>, mark_compacted: bool) -> Result<RevisionBump> {
        match bump {
            None => Ok(RevisionBump {
                bump: DEFAULT_REVISION_BUMP,
                mark_compacted: true,
            }),
            Some(n) if (n == 0) == mark_compacted => Err(Error::BadArgs(
                "--mark-compacted required if --revision-bump > 0".into(),
            )),
            Some(n) => Ok(RevisionBump {
                bump: n,
                mark_compacted,
            }),
        }
    }
}

/// What `snapshot restore` is asked to do (etcd's `RestoreConfig`).
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    pub snapshot_path: PathBuf,
    /// --name: this member of the new cluster.
    pub name: String,
    /// --data-dir; `<name>.etcd` when `None`.
    pub data_dir: Option<PathBuf>,
    /// --wal-dir; `<data-dir>/member/wal` when `None`.
    pub wal_dir: Option<PathBuf>,
    /// --initial-advertise-peer-urls, comma separated.
    pub peer_urls: String,
    /// --initial-cluster: `name=url,...`.
    pub initial_cluster: String,
    pub initial_cluster_token: String,
    pub skip_hash_check: bool,
    pub revision: RevisionBump,
}

/// The flags' defaults, as etcd's.
pub const DEFAULT_NAME: &str = "default";
pub const DEFAULT_INITIAL_CLUSTER: &str = "default=http://localhost:2380";
pub const DEFAULT_INITIAL_CLUSTER_TOKEN: &str = "etcd-cluster";
pub const DEFAULT_PEER_URLS: &str = "http://localhost:2380";

/// `snapshot restore`: writes a new data dir (and WAL dir) for member
/// `name` of the cluster `initial_cluster` from the snapshot. Refuses an
/// existing data dir; removes what it wrote if it fails halfway.
pub fn restore(cfg: &RestoreConfig) -> Result<NewIdentity> {
    let peer_urls = parse_urls(cfg.peer_urls.split(','))?;
    let initial = parse_initial_cluster(&cfg.initial_cluster)?;
    verify_bootstrap(&cfg.name, &peer_urls, &initial)?;
    let members = cluster::initial_members(&initial, &cfg.initial_cluster_token);
    let identity = NewIdentity {
        member_id: members
            .iter()
            .find(|m| m.name == cfg.name)
            .map(|m| m.id)
            .context("local member missing from the initial cluster")?,
        cluster_id: cluster::initial_cluster_id(&members),
        members,
    };
    let data_dir = cfg
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", cfg.name)));
    if data_dir.exists() {
        return Err(anyhow!("data-dir {:?} exists", data_dir.display().to_string()).into());
    }
    let wal_dir = match &cfg.wal_dir {
        None => super::wal_dir(&data_dir),
        Some(w) if w.exists() => {
            return Err(anyhow!("wal-dir {:?} exists", w.display().to_string()).into())
        }
        Some(w) => w.clone(),
    };
    let snap_dir = super::snap_dir(&data_dir);
    tracing::info!(
        path = %cfg.snapshot_path.display(),
        "wal-dir" = %wal_dir.display(),
        "data-dir" = %data_dir.display(),
        "snap-dir" = %snap_dir.display(),
        "restoring snapshot"
    );
    let written = write_member(cfg, &identity, &data_dir, &wal_dir);
    if let Err(e) = written {
        // A half-written data dir would only make the next attempt fail
        // with "data-dir exists".
        let _ = std::fs::remove_dir_all(&data_dir);
        if cfg.wal_dir.is_some() {
            let _ = std::fs::remove_dir_all(&wal_dir);
        }
        return Err(e.into());
    }
    tracing::info!(
        path = %cfg.snapshot_path.display(),
        "wal-dir" = %wal_dir.display(),
        "data-dir" = %data_dir.display(),
        "snap-dir" = %snap_dir.display(),
        "restored snapshot"
    );
    Ok(identity)
}

/// The backend and WAL of the restored member.
fn write_member(
    cfg: &RestoreConfig,
    identity: &NewIdentity,
    data_dir: &Path,
    wal_dir: &Path,
) -> anyhow::Result<()> {
    create_private_dir_all(data_dir)?;
    let snap_dir = super::snap_dir(data_dir);
    create_private_dir_all(&snap_dir)?;
    let db = snap_dir.join("db");
    if format_of(&cfg.snapshot_path)? == Format::Etcd {
        // etcd's format: verified into a copy (the source may change),
        // checked whole, then loaded into a new backend
        let copy = snap_dir.join("db.bbolt.tmp");
        let size = copy_verified(&cfg.snapshot_path, &copy, cfg.skip_hash_check)?;
        let started = Instant::now();
        let imported = import_etcd(&copy, &db, &cfg.snapshot_path);
        let _ = std::fs::remove_file(&copy);
        let imported = imported?;
        tracing::info!(
            path = %db.display(),
            size = %crate::gofmt::humanize_bytes(size),
            revision = imported.revision,
            "compact-revision" = imported.compacted,
            records = imported.records,
            leases = imported.leases,
            took = ?started.elapsed(),
            "loaded etcd's snapshot into the backend"
        );
    } else {
        let started = Instant::now();
        let size = copy_verified(&cfg.snapshot_path, &db, cfg.skip_hash_check)?;
        tracing::info!(
            path = %db.display(),
            size = %crate::gofmt::humanize_bytes(size),
            took = ?started.elapsed(),
            "copied the snapshot's backend"
        );
        // Refuse anything but a backend before opening it for writing
        // (which would create the tables in any LMDB file).
        open_backend_file(&db, &cfg.snapshot_path)?
            .prepare_for_closing()
            .wait();
    }
    rewrite_backend(&db, identity, cfg.revision)?;
    write_bootstrap_wal(wal_dir, &identity.members)?;
    sync_dir(data_dir)?;
    Ok(())
}

/// Loads the bbolt file `copy` (etcd's format, from `shown`) into a new
/// backend at `db`, after bbolt's integrity check.
fn import_etcd(
    copy: &Path,
    db: &Path,
    shown: &Path,
) -> anyhow::Result<crate::mvcc::etcd_format::Imported> {
    let in_shown = |e: Invalid| anyhow!("{}: {e}", shown.display());
    let file = File::open(copy).map_err(|e| anyhow!("open {}: {}", copy.display(), io_text(&e)))?;
    let reader = Reader::open(file, None).map_err(in_shown)?;
    // Pages lost to the freelist do not touch the data: etcd's restore
    // never runs bbolt's check, so such a file restores (with a word).
    let (leaks, errors): (Vec<String>, Vec<String>) = reader.check().into_iter().partition(|e| {
        ["unreachable unfreed", "already freed", "reachable freed"]
            .iter()
            .any(|leak| e.ends_with(leak))
    });
    if !leaks.is_empty() {
        tracing::warn!(
            path = %shown.display(),
            pages = leaks.len(),
            first = %leaks[0],
            "the snapshot's freelist is inconsistent (space leaked, no data touched); restoring anyway"
        );
    }
    if !errors.is_empty() {
        bail!(
            "{}: snapshot file integrity check failed. {} errors found.\n{}",
            shown.display(),
            errors.len(),
            errors.join("\n")
        );
    }
    let backend = Backend::open(db, DEFAULT_MAP_SIZE)?;
    let imported = crate::mvcc::etcd_format::import(&reader, &backend)
        .map_err(|e| anyhow!("{}: {e:#}", shown.display()));
    let synced = backend
        .env
        .force_sync()
        .with_context(|| format!("fsync {}", db.display()));
    backend.env.prepare_for_closing().wait();
    synced?;
    imported
}

/// Makes the restored backend a member of the new cluster, as if the
/// bootstrap entries were applied, and moves its revision.
fn rewrite_backend(
    db: &Path,
    identity: &NewIdentity,
    revision: RevisionBump,
) -> anyhow::Result<()> {
    let backend = Backend::open(db, DEFAULT_MAP_SIZE)?;
    let store = Store::open(backend).with_context(|| format!("open {}", db.display()))?;
    let applied = Applied {
        index: identity.members.len() as u64,
        term: 1,
    };
    let (current, compacted) = {
        let view = store.read()?;
        (view.current_rev(), view.compacted_rev())
    };
    let bumped = current
        .checked_add_unsigned(revision.bump)
        .filter(|r| *r >= current)
        .ok_or_else(|| anyhow!("revision {current} + {} overflows", revision.bump))?;
    if revision.bump > 0 {
        tracing::info!(
            "latest-revision" = current,
            "bump-amount" = revision.bump,
            "new-latest-revision" = bumped,
            "bumping latest revision"
        );
    }
    if revision.mark_compacted {
        tracing::info!(revision = bumped, "marking revision compacted");
        // Nothing lies between `current` and `bumped`: compacting at
        // `current` removes what etcd's compaction at `bumped` would.
        if current > compacted {
            let mut wt = store.write()?;
            wt.compact(current)?;
            wt.commit(applied)?;
            // offline: delete the compacted records now, whole
            while store.compact_step(10_000)? {}
        }
    }
    let b = store.backend();
    let mut txn = b.env.write_txn()?;
    identity::rewrite(&mut txn, b.meta, identity)?;
    b.meta.put(
        &mut txn,
        META_CONSISTENT_INDEX,
        &(applied.index as i64).to_be_bytes(),
    )?;
    b.meta
        .put(&mut txn, META_TERM, &(applied.term as i64).to_be_bytes())?;
    if revision.bump > 0 {
        b.meta
            .put(&mut txn, meta::CURRENT_REV, &bumped.to_be_bytes())?;
    }
    if revision.mark_compacted {
        b.meta
            .put(&mut txn, meta::COMPACT_REV, &bumped.to_be_bytes())?;
    }
    txn.commit()?;
    b.env
        .force_sync()
        .with_context(|| format!("fsync {}", db.display()))?;
    for m in &identity.members {
        tracing::info!(
            "cluster-id" = %format!("{:x}", identity.cluster_id),
            "local-member-id" = %format!("{:x}", identity.member_id),
            "added-peer-id" = %format!("{:x}", m.id),
            "added-peer-peer-urls" = %m.peer_urls.join(","),
            "added member"
        );
    }
    Ok(())
}

/// The WAL a new member of `members` writes at its first start.
fn write_bootstrap_wal(wal_dir: &Path, members: &[Member]) -> anyhow::Result<()> {
    create_private_dir_all(wal_dir)?;
    let (mut wal, _) = Wal::open(wal_dir)?;
    let (entries, hard_state) = crate::raft::node::bootstrap_log(members)?;
    wal.append_entries(&entries)?;
    wal.set_hard_state(&hard_state)?;
    wal.sync()?;
    Ok(())
}

/// Copies the snapshot at `src` to a new file `dst` without its trailer,
/// checking the trailer against the copied bytes unless `skip_hash_check`
/// (etcd's `copyAndVerifyDB`, with its error texts). Returns the bytes
/// copied.
pub fn copy_verified(src: &Path, dst: &Path, skip_hash_check: bool) -> anyhow::Result<u64> {
    let mut from =
        File::open(src).map_err(|e| anyhow!("open {}: {}", src.display(), io_text(&e)))?;
    let size = from
        .metadata()
        .map_err(|e| anyhow!("stat {}: {}", src.display(), io_text(&e)))?
        .len();
    if size < CHECKSUM_LEN {
        bail!("seek {}: invalid argument", src.display());
    }
    let trailer = has_checksum(size);
    if !trailer && !skip_hash_check {
        bail!("snapshot missing hash but --skip-hash-check=false");
    }
    let body = if trailer { size - CHECKSUM_LEN } else { size };
    // Private to the user (0600), as etcd writes it.
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(|e| anyhow!("open {}: {}", dst.display(), io_text(&e)))?;
    let mut sha = (trailer && !skip_hash_check).then(Sha256::new);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = body;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = from
            .read(&mut buf[..want])
            .map_err(|e| anyhow!("read {}: {}", src.display(), io_text(&e)))?;
        if n == 0 {
            bail!("read {}: the file shrank while copying it", src.display());
        }
        if let Some(h) = sha.as_mut() {
            h.update(&buf[..n]);
        }
        to.write_all(&buf[..n])
            .map_err(|e| anyhow!("write {}: {}", dst.display(), io_text(&e)))?;
        left -= n as u64;
    }
    to.sync_all()
        .map_err(|e| anyhow!("fsync {}: {}", dst.display(), io_text(&e)))?;
    if let Some(h) = sha {
        let mut expected = [0u8; CHECKSUM_LEN as usize];
        from.seek(SeekFrom::Start(body))
            .and_then(|_| from.read_exact(&mut expected))
            .map_err(|e| anyhow!("read {}: {}", src.display(), io_text(&e)))?;
        check_trailer(&expected, h)?;
    }
    Ok(body)
}

/// Opens a backend file read-only after checking that it holds the MVCC
/// tables; errors name `shown` (the file the user gave).
pub(crate) fn open_backend_file(path: &Path, shown: &Path) -> anyhow::Result<Env<WithoutTls>> {
    let not_backend = |why: String| anyhow!("{} is not an etcd backend: {why}", shown.display());
    // LMDB follows whatever page numbers the file holds: a damaged file
    // must be refused with a message before it is mapped, not end the
    // process with SIGSEGV or SIGBUS.
    match crate::storage::lmdb_check::check_file(path) {
        Ok(Some(_)) => {}
        Ok(None) => return Err(not_backend("the file is empty".into())),
        Err(damage) if damage.bbolt => {
            return Err(anyhow!(
                "{} is an etcd (bbolt) database: `etcdutl snapshot status` and `snapshot restore` read it; this command reads rsetcd's data dirs (LMDB)",
                shown.display()
            ))
        }
        Err(damage) => return Err(not_backend(damage.reason)),
    }
    let env = backend::open_read_only(path).map_err(|e| not_backend(e.root_cause().to_string()))?;
    if let Err(e) = backend::open_tables(&env, path) {
        env.prepare_for_closing().wait();
        return Err(not_backend(e.root_cause().to_string()));
    }
    Ok(env)
}

fn i64_of(v: &[u8]) -> anyhow::Result<i64> {
    Ok(i64::from_be_bytes(
        v.try_into()
            .map_err(|_| anyhow!("{} bytes, want 8", v.len()))?,
    ))
}

/// Go's `%v` of a byte slice: `[1 2 255]`.
fn go_bytes(b: &[u8]) -> String {
    let parts: Vec<String> = b.iter().map(u8::to_string).collect();
    format!("[{}]", parts.join(" "))
}

/// etcd's `types.NewURLs` over a flag's items, as strings the way the
/// server derives member ids from them.
fn parse_urls<'a>(items: impl IntoIterator<Item = &'a str>) -> anyhow::Result<Vec<String>> {
    let items: Vec<&str> = items.into_iter().collect();
    crate::config::check_url_list(items.iter().copied()).map_err(|e| anyhow!(e))?;
    let mut urls = Vec::with_capacity(items.len());
    for item in items {
        let u = url::Url::parse(item).map_err(|e| anyhow!("parse {item:?}: {e}"))?;
        urls.push(crate::config::url_to_string(&u));
    }
    urls.sort();
    Ok(urls)
}

/// etcd's `types.NewURLsMap`: `name=url` pairs; a name may repeat to give
/// a member several peer URLs. Keeps the order given.
fn parse_initial_cluster(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in text.split(',').filter(|i| !i.is_empty()) {
        let (name, u) = item.split_once('=').unwrap_or((item, ""));
        for u in parse_urls([u])? {
            out.push((name.to_string(), u));
        }
    }
    Ok(out)
}

/// etcd's `ServerConfig.VerifyBootstrap` for a restore: this member is in
/// the initial cluster with exactly the advertised peer URLs, and no URL
/// belongs to two members.
fn verify_bootstrap(
    name: &str,
    advertised: &[String],
    initial: &[(String, String)],
) -> anyhow::Result<()> {
    let mut own: Vec<String> = initial
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, u)| u.clone())
        .collect();
    if own.is_empty() {
        bail!("couldn't find local name {name:?} in the initial cluster configuration");
    }
    own.sort();
    if own != advertised {
        let missing: Vec<String> = own
            .iter()
            .filter(|u| !advertised.contains(u))
            .map(|u| format!("{name}={u}"))
            .collect();
        if !missing.is_empty() {
            bail!(
                "--initial-cluster has {} but missing from --initial-advertise-peer-urls={} ({:?}(resolved from {:?}) != {:?}(resolved from {:?}))",
                missing.join(","),
                advertised.join(","),
                advertised.join(","),
                advertised.join(","),
                own.join(","),
                own.join(",")
            );
        }
        let extra: Vec<&str> = advertised
            .iter()
            .filter(|u| !own.contains(u))
            .map(String::as_str)
            .collect();
        let own_map: Vec<String> = advertised.iter().map(|u| format!("{name}={u}")).collect();
        bail!(
            "--initial-advertise-peer-urls has {} but missing from --initial-cluster={}",
            extra.join(","),
            own_map.join(",")
        );
    }
    let mut seen = std::collections::HashSet::new();
    if initial.iter().any(|(_, u)| !seen.insert(u.as_str())) {
        let mut all: Vec<String> = initial.iter().map(|(n, u)| format!("{n}={u}")).collect();
        all.sort();
        bail!("initial cluster {} has duplicate url", all.join(","));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_is_detected_by_size_as_etcd() {
        assert!(has_checksum(20480 + 32));
        assert!(!has_checksum(20480));
        assert!(!has_checksum(20480 + 31));
    }

    #[test]
    fn revision_flags_follow_etcd_with_our_default() {
        let ok = |b, m| RevisionBump::from_flags(b, m).unwrap();
        assert_eq!(
            ok(None, false),
            RevisionBump {
                bump: DEFAULT_REVISION_BUMP,
                mark_compacted: true
            }
        );
        assert_eq!(ok(Some(0), false).bump, 0);
        assert!(ok(Some(7), true).mark_compacted);
        for (b, m) in [(Some(0), true), (Some(7), false)] {
            let e = RevisionBump::from_flags(b, m).unwrap_err();
            assert_eq!(
                e.to_string(),
                "--mark-compacted required if --revision-bump > 0"
            );
            assert_eq!(e.exit_code(), 128);
        }
    }

    #[test]
    fn bootstrap_checks_use_etcds_texts() {
        let ic = parse_initial_cluster("a=http://127.0.0.1:1,b=http://127.0.0.1:2").unwrap();
        let adv = parse_urls(["http://127.0.0.1:1"]).unwrap();
        verify_bootstrap("a", &adv, &ic).unwrap();
        assert_eq!(
            verify_bootstrap("c", &adv, &ic).unwrap_err().to_string(),
            "couldn't find local name \"c\" in the initial cluster configuration"
        );
        let e = verify_bootstrap("b", &adv, &ic).unwrap_err().to_string();
        assert!(
            e.starts_with("--initial-cluster has b=http://127.0.0.1:2 but missing from --initial-advertise-peer-urls=http://127.0.0.1:1"),
            "{e}"
        );
        let dup = parse_initial_cluster("a=http://127.0.0.1:1,b=http://127.0.0.1:1").unwrap();
        assert_eq!(
            verify_bootstrap("a", &adv, &dup).unwrap_err().to_string(),
            "initial cluster a=http://127.0.0.1:1,b=http://127.0.0.1:1 has duplicate url"
        );
        assert!(parse_initial_cluster("a=ftp://x:1").is_err());
    }

    #[test]
    fn copy_verifies_the_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let body = vec![7u8; 4096];
        let mut with = body.clone();
        with.extend_from_slice(&checksum(&body));
        let good = dir.path().join("good");
        std::fs::write(&good, &with).unwrap();
        assert_eq!(
            copy_verified(&good, &dir.path().join("out1"), false).unwrap(),
            4096
        );
        assert_eq!(std::fs::read(dir.path().join("out1")).unwrap(), body);

        let mut flipped = with.clone();
        flipped[10] ^= 1;
        let bad = dir.path().join("bad");
        std::fs::write(&bad, &flipped).unwrap();
        let e = copy_verified(&bad, &dir.path().join("out2"), false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("expected sha256 ["), "{e}");
        copy_verified(&bad, &dir.path().join("out3"), true).unwrap();

        let bare = dir.path().join("bare");
        std::fs::write(&bare, &body).unwrap();
        assert_eq!(
            copy_verified(&bare, &dir.path().join("out4"), false)
                .unwrap_err()
                .to_string(),
            "snapshot missing hash but --skip-hash-check=false"
        );
    }
}
