//! `etcdutl backup` (legacy, as etcd's): copies a stopped member's data dir
//! under a brand-new member and cluster id, so the copy can never rejoin,
//! or be mistaken for a member of, the cluster it came from.
//!
//! As etcd: the copy's only member is `etcdctl-v2-backup` with the peer URL
//! `http://use-flag--force-new-cluster:2080` (it starts alone; fix the URL
//! with `member update`), the WAL keeps every entry at its index and term
//! but turns membership changes and member attribute updates into empty
//! entries (so nothing shifts and the consistent index stays valid), and
//! the backend loses the old membership.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use prost::Message as _;
use raft::eraftpb::{Entry, EntryType, SnapshotMetadata};

use super::identity::{self, NewIdentity};
use super::snapshot::open_backend_file;
use super::{create_private_dir_all, io_text, sync_dir, Result};
use crate::cluster::Member;
use crate::mvcc::store::{META_CONSISTENT_INDEX, META_TERM};
use crate::proto::internal::internal_raft_request::Request;
use crate::proto::internal::InternalRaftRequest;
use crate::storage::backend::{Backend, DEFAULT_MAP_SIZE};
use crate::storage::wal::Wal;
use crate::storage::DataDir;

/// The member a backup holds, as etcd names it.
pub const BACKUP_MEMBER_NAME: &str = "etcdctl-v2-backup";
pub const BACKUP_PEER_URL: &str = "http://use-flag--force-new-cluster:2080";

#[derive(Debug, Clone)]
pub struct BackupConfig {
    pub data_dir: PathBuf,
    /// --wal-dir of the source; `<data-dir>/member/wal` when `None`.
    pub wal_dir: Option<PathBuf>,
    pub backup_dir: PathBuf,
    /// --backup-wal-dir; `<backup-dir>/member/wal` when `None`.
    pub backup_wal_dir: Option<PathBuf>,
    /// --with-v3: copy the backend's keys too. Without it the copy keeps
    /// the raft log's length but none of the keys (etcd's v2-only backup).
    pub with_v3: bool,
}

/// Writes the backup; returns the copy's new identity.
pub fn backup(cfg: &BackupConfig) -> Result<NewIdentity> {
    Ok(write_backup(cfg)?)
}

fn write_backup(cfg: &BackupConfig) -> anyhow::Result<NewIdentity> {
    let src_db = super::db_path(&cfg.data_dir);
    let src_wal = cfg
        .wal_dir
        .clone()
        .unwrap_or_else(|| super::wal_dir(&cfg.data_dir));
    for needed in [&src_db, &src_wal] {
        std::fs::metadata(needed)
            .map_err(|e| anyhow!("open {}: {}", needed.display(), io_text(&e)))?;
    }
    let dest_snap = super::snap_dir(&cfg.backup_dir);
    let dest_db = dest_snap.join("db");
    let dest_wal = cfg
        .backup_wal_dir
        .clone()
        .unwrap_or_else(|| super::wal_dir(&cfg.backup_dir));
    ensure_empty(&dest_snap)?;
    if dest_wal.exists() {
        return Err(anyhow!(
            "create {}: file already exists",
            dest_wal.display()
        ));
    }
    // Keeps a running member (and its WAL writes) away while we read.
    let _lock = DataDir::open(&cfg.data_dir, cfg.wal_dir.as_deref())?;

    let identity = new_identity();
    let (_, recovered) = Wal::open(&src_wal)?;
    let entries: Vec<Entry> = recovered
        .entries
        .iter()
        .map(|e| translate(e, cfg.with_v3))
        .collect();
    let hard_state = recovered.hard_state.clone();

    create_private_dir_all(&dest_snap)?;
    if cfg.with_v3 {
        let src = open_backend_file(&src_db, &src_db)?;
        let copied = src
            .copy_to_path(&dest_db, heed::CompactionOption::Enabled)
            .with_context(|| format!("copy {} to {}", src_db.display(), dest_db.display()))
            .and_then(|f| {
                f.sync_all()
                    .with_context(|| format!("fsync {}", dest_db.display()))
            });
        src.prepare_for_closing().wait();
        copied?;
    }
    {
        let backend = Backend::open(&dest_db, DEFAULT_MAP_SIZE)?;
        let mut txn = backend.env.write_txn()?;
        identity::rewrite(&mut txn, backend.meta, &identity)?;
        if !cfg.with_v3 {
            // An empty backend at the end of the log: nothing to replay.
            backend.meta.put(
                &mut txn,
                META_CONSISTENT_INDEX,
                &(hard_state.commit as i64).to_be_bytes(),
            )?;
            backend
                .meta
                .put(&mut txn, META_TERM, &(hard_state.term as i64).to_be_bytes())?;
        }
        txn.commit()?;
        backend.env.force_sync()?;
    }

    create_private_dir_all(&dest_wal)?;
    let (mut wal, _) = Wal::open(&dest_wal)?;
    if recovered.snapshot.index > 0 {
        let mut marker = SnapshotMetadata {
            index: recovered.snapshot.index,
            term: recovered.snapshot.term,
            ..Default::default()
        };
        marker.set_conf_state(crate::raft::node::bootstrap_conf_state(&identity.members));
        wal.save_snapshot(&marker)?;
    }
    wal.append_entries(&entries)?;
    wal.set_hard_state(&hard_state)?;
    wal.sync()?;
    sync_dir(&cfg.backup_dir)?;
    tracing::info!(
        "backup-dir" = %cfg.backup_dir.display(),
        "member-id" = %format!("{:x}", identity.member_id),
        "cluster-id" = %format!("{:x}", identity.cluster_id),
        entries = entries.len(),
        "saved backup"
    );
    Ok(identity)
}

/// A new member alone in a new cluster, with ids from etcd's id generator
/// (time-based, so two backups never share them).
fn new_identity() -> NewIdentity {
    let ids = crate::cluster::id::RequestIds::new(0);
    let member_id = ids.next();
    let cluster_id = ids.next();
    NewIdentity {
        member_id,
        cluster_id,
        members: vec![Member {
            id: member_id,
            name: BACKUP_MEMBER_NAME.to_string(),
            peer_urls: vec![BACKUP_PEER_URL.to_string()],
            client_urls: Vec::new(),
            is_learner: false,
        }],
    }
}

/// The entry the backup's WAL holds at this index: membership changes of
/// the old cluster become empty entries (as do key changes without v3).
fn translate(e: &Entry, with_v3: bool) -> Entry {
    let empty = || {
        let mut n = Entry {
            term: e.term,
            index: e.index,
            ..Default::default()
        };
        n.set_entry_type(EntryType::EntryNormal);
        n
    };
    if e.get_entry_type() != EntryType::EntryNormal {
        tracing::info!(index = e.index, "ignoring EntryConfChange raft entry");
        return empty();
    }
    if e.data.is_empty() {
        return e.clone();
    }
    let request = InternalRaftRequest::decode(e.data.as_ref())
        .ok()
        .and_then(|r| r.request);
    match request {
        Some(Request::MemberAttributes(_)) => {
            tracing::info!(index = e.index, "ignoring member attribute update");
            empty()
        }
        Some(Request::MemberPeerUrls(_)) => {
            tracing::info!(index = e.index, "ignoring member update");
            empty()
        }
        _ if !with_v3 => empty(),
        _ => e.clone(),
    }
}

/// etcd's `fileutil.CreateDirAll` refuses a directory that holds anything.
fn ensure_empty(dir: &Path) -> anyhow::Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| format!("{:?}", e.file_name().to_string_lossy()))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    Err(anyhow!(
        "failed creating backup snapshot dir: expected {:?} to be empty, got [{}]",
        dir.display().to_string(),
        names.join(" ")
    ))
}
