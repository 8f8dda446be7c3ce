//! Backend snapshots for members that fell behind the leader's log: a
//! compacted, point-in-time copy of the LMDB file
//! (`member/snap/<index>.snap.db`, named by the raft index it reflects).
//!
//! The leader makes one on a background thread when raft asks for it
//! (LMDB's copy runs inside a read transaction, so writers go on); the
//! copy's own consistent index, term and conf state are the snapshot's raft
//! metadata, so data and metadata always agree. A follower receives the
//! file into the same place and the apply thread installs it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use heed::{Env, WithoutTls};
use protobuf::Message as _;
use raft::eraftpb::{ConfState, SnapshotMetadata};

pub use crate::storage::schema::META_CONF_STATE;
use crate::storage::schema::{META_CONSISTENT_INDEX, META_TERM};

const SUFFIX: &str = ".snap.db";

#[derive(Default)]
struct State {
    newest: Option<SnapshotMetadata>,
    generating: bool,
}

/// Hands out the live backend's environment (a defrag may replace it).
pub type CurrentEnv = Arc<dyn Fn() -> Env<WithoutTls> + Send + Sync>;

pub struct Snapshotter {
    dir: PathBuf,
    /// The live backend; `None` in unit tests.
    env: Option<CurrentEnv>,
    state: Arc<Mutex<State>>,
}

impl Snapshotter {
    pub fn new(dir: PathBuf, env: CurrentEnv) -> Self {
        // Half-written files of a previous run are useless.
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Snapshotter {
            dir,
            env: Some(env),
            state: Arc::default(),
        }
    }

    /// A snapshotter that never makes snapshots (unit tests).
    pub fn detached(dir: PathBuf) -> Self {
        Snapshotter {
            dir,
            env: None,
            state: Arc::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the snapshot at raft index `index` lives.
    pub fn path(&self, index: u64) -> PathBuf {
        path_in(&self.dir, index)
    }

    /// Where a snapshot being received is written before it is complete:
    /// a name of its own per stream, so two streams for one index (a
    /// retry while the first still runs) never write into one file.
    pub fn partial_path(&self, index: u64) -> PathBuf {
        static STREAM: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STREAM.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.dir.join(format!("{index:016x}{SUFFIX}.{n}.tmp"))
    }

    /// Deletes the snapshot files older than `index` (a follower's, once
    /// it installed the one at `index`: the older ones serve nothing).
    pub fn remove_older_than(&self, index: u64) {
        remove_older(&self.dir, index);
    }

    /// The newest snapshot if it covers `min`; otherwise starts making a
    /// new one (in the background) and returns `None`: raft asks again.
    pub fn newest_at_least(&self, min: u64, to: u64) -> Option<SnapshotMetadata> {
        let mut state = self.state.lock().expect("snapshotter lock");
        if let Some(meta) = &state.newest {
            if meta.index >= min && self.path(meta.index).exists() {
                return Some(meta.clone());
            }
        }
        let env = (self.env.as_ref()?)();
        if !state.generating {
            state.generating = true;
            tracing::info!(
                to = format!("{to:x}"),
                min_index = min,
                "making a backend snapshot to send to a member that is behind"
            );
            let (dir, shared) = (self.dir.clone(), self.state.clone());
            let spawned = std::thread::Builder::new()
                .name("snapshot".into())
                .spawn(move || {
                    let made = generate(&dir, &env);
                    let mut state = shared.lock().expect("snapshotter lock");
                    state.generating = false;
                    match made {
                        Ok(meta) => {
                            remove_older(&dir, meta.index);
                            state.newest = Some(meta);
                        }
                        Err(e) => tracing::error!(error = %format!("{e:#}"), "making a backend snapshot failed"),
                    }
                });
            if let Err(e) = spawned {
                state.generating = false;
                tracing::error!(error = %e, "cannot start the snapshot thread");
            }
        }
        None
    }
}

fn path_in(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:016x}{SUFFIX}"))
}

/// Copies the live backend, reads the copy's raft position and renames it
/// after that position.
fn generate(dir: &Path, env: &Env<WithoutTls>) -> anyhow::Result<SnapshotMetadata> {
    use anyhow::Context as _;
    let started = std::time::Instant::now();
    let tmp = dir.join(format!("copy-{}{SUFFIX}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let file = env
        .copy_to_path(&tmp, heed::CompactionOption::Enabled)
        .with_context(|| format!("copy the backend to {}", tmp.display()))?;
    super::private::restrict_file(&tmp)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("fsync {}", tmp.display()))?;
    drop(file);
    let meta = read_metadata(&tmp)?;
    let path = path_in(dir, meta.index);
    std::fs::rename(&tmp, &path).with_context(|| format!("rename to {}", path.display()))?;
    sync_dir(dir);
    crate::metrics::disk()
        .backend_snapshot_duration
        .observe(started.elapsed().as_secs_f64());
    tracing::info!(
        path = %path.display(),
        index = meta.index,
        term = meta.term,
        took = ?started.elapsed(),
        "saved backend snapshot"
    );
    Ok(meta)
}

/// The raft index, term and conf state a backend file reflects.
pub fn read_metadata(path: &Path) -> anyhow::Result<SnapshotMetadata> {
    use anyhow::Context as _;
    let env = crate::storage::backend::open_read_only(path)?;
    let result = (|| -> anyhow::Result<SnapshotMetadata> {
        let [_, meta, _] = crate::storage::backend::open_tables(&env, path)?;
        let rtxn = env.read_txn()?;
        let u64_of = |key: &[u8]| -> anyhow::Result<u64> {
            let b = meta.get(&rtxn, key)?.with_context(|| {
                format!("{} lacks {}", path.display(), String::from_utf8_lossy(key))
            })?;
            Ok(i64::from_be_bytes(b.try_into().with_context(|| {
                format!(
                    "{}: malformed {}",
                    path.display(),
                    String::from_utf8_lossy(key)
                )
            })?) as u64)
        };
        let cs_bytes = meta
            .get(&rtxn, META_CONF_STATE)?
            .with_context(|| format!("{} holds no conf state", path.display()))?;
        let cs = ConfState::parse_from_bytes(cs_bytes)
            .with_context(|| format!("{}: malformed conf state", path.display()))?;
        let mut m = SnapshotMetadata {
            index: u64_of(META_CONSISTENT_INDEX)?,
            term: u64_of(META_TERM)?,
            ..Default::default()
        };
        m.set_conf_state(cs);
        Ok(m)
    })();
    env.prepare_for_closing().wait();
    result
}

/// Deletes snapshot files older than `keep`.
fn remove_older(dir: &Path, keep: u64) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(hex) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        if let Ok(index) = u64::from_str_radix(hex, 16) {
            if index < keep {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_snapshots_go_once_a_newer_one_is_installed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Snapshotter::detached(dir.path().to_path_buf());
        for index in [5, 9, 12] {
            std::fs::write(s.path(index), b"db").expect("write");
        }
        let (a, b) = (s.partial_path(12), s.partial_path(12));
        assert_ne!(a, b, "two streams for one index share a file");
        s.remove_older_than(9);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [s.path(9), s.path(12)].map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        );
    }
}
