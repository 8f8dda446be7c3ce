//! The Maintenance service: status, alarms, defragment, hashes, leader
//! moves, and snapshots streamed in etcd's own format (a bbolt file in
//! etcd's schema with its SHA-256 trailer), which etcd's tools read.
//! Downgrade is not served yet.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::proto::etcdserverpb::{
    alarm_request::AlarmAction, maintenance_server::Maintenance, AlarmRequest, AlarmResponse,
    AlarmType, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use crate::server::{Error, EtcdServer};
use crate::storage::schema::MEMBER_LOCAL_META;

pub struct MaintenanceService {
    server: Arc<EtcdServer>,
    /// Each client snapshot is a full copy of the backend on disk until
    /// its stream ends: a bounded number at once, so clients cannot fill
    /// the disk with them.
    snapshots: Arc<tokio::sync::Semaphore>,
}

/// Client snapshots streaming at once, per member.
const MAX_SNAPSHOT_STREAMS: usize = 2;

impl MaintenanceService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        MaintenanceService {
            server,
            snapshots: Arc::new(tokio::sync::Semaphore::new(MAX_SNAPSHOT_STREAMS)),
        }
    }
}

/// etcd's snapshotSendBufferSize.
const SNAPSHOT_CHUNK: usize = 32 * 1024;

/// A point-in-time copy of the backend for one Snapshot stream, in
/// etcd's format (a bbolt file in etcd's schema, `mvcc::etcd_format`),
/// made from one LMDB read txn (writers go on) and unlinked at once so
/// that nothing is left behind however the stream ends. `None` while a
/// compaction's deletions are under way (the copy would carry them).
fn snapshot_copy(store: &crate::mvcc::Store) -> anyhow::Result<Option<(std::fs::File, u64)>> {
    use anyhow::Context as _;
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let Some((backend, txn)) = store.compacted_read()? else {
        return Ok(None);
    };
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = store.db_path().with_file_name(format!(
        "client-snapshot-{}-{n}.snap.db.tmp",
        std::process::id()
    ));
    let made = crate::mvcc::etcd_format::export(&backend, &txn, &path)
        .and_then(|size| {
            let file =
                std::fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
            Ok((file, size))
        })
        .with_context(|| format!("write the snapshot {}", path.display()));
    drop(txn);
    let _ = std::fs::remove_file(&path);
    made.map(Some)
}

/// Streams the copy in etcd's shape: chunks with the bytes remaining after
/// each, then one message carrying the SHA-256 of everything sent, which
/// `etcdutl snapshot restore` checks.
async fn send_snapshot(
    (file, total): (std::fs::File, u64),
    tx: tokio::sync::mpsc::Sender<Result<SnapshotResponse, Status>>,
) {
    use sha2::Digest as _;
    use tokio::io::AsyncReadExt as _;
    let started = std::time::Instant::now();
    tracing::info!(
        total_bytes = total,
        size = %crate::gofmt::humanize_bytes(total),
        "sending database snapshot to client"
    );
    let mut file = tokio::fs::File::from_std(file);
    let mut sha = sha2::Sha256::new();
    let mut sent = 0u64;
    while sent < total {
        let mut buf = vec![0u8; SNAPSHOT_CHUNK.min((total - sent) as usize)];
        if let Err(e) = file.read_exact(&mut buf).await {
            let _ = tx
                .send(Err(Status::unknown(format!("read snapshot: {e}"))))
                .await;
            return;
        }
        sent += buf.len() as u64;
        sha.update(&buf);
        let chunk = SnapshotResponse {
            header: None,
            remaining_bytes: total - sent,
            blob: buf,
        };
        if tx.send(Ok(chunk)).await.is_err() {
            tracing::warn!("snapshot client went away before the end");
            return;
        }
    }
    let digest = sha.finalize().to_vec();
    tracing::info!(
        total_bytes = total,
        checksum_size = digest.len(),
        "sending database sha256 checksum to client"
    );
    let last = SnapshotResponse {
        header: None,
        remaining_bytes: 0,
        blob: digest,
    };
    if tx.send(Ok(last)).await.is_ok() {
        tracing::info!(
            size = %crate::gofmt::humanize_bytes(total),
            took = ?started.elapsed(),
            "successfully sent database snapshot to client"
        );
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("etcdserver: {what} is not supported yet"))
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        // Raising or clearing an alarm stops or resumes every write in the
        // cluster: with auth on it needs root (beyond etcd, which lets
        // anyone do it). Listing stays open, as in etcd.
        if req.get_ref().action != AlarmAction::Get as i32 {
            super::auth::require_root(&self.server, &req).await?;
        }
        let mut resp = self.server.alarm(req.into_inner()).await?;
        resp.header = Some(self.server.header(self.server.current_rev()?));
        Ok(Response::new(resp))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let raft = self.server.raft_status();
        let (db_size, db_size_in_use) = self
            .server
            .store()
            .db_size()
            .map_err(|e| Error::Apply(e.into()))?;
        Ok(Response::new(StatusResponse {
            header: Some(self.server.header(self.server.current_rev()?)),
            version: crate::ETCD_VERSION.to_string(),
            db_size,
            leader: raft.leader,
            raft_index: raft.index,
            raft_term: raft.term,
            raft_applied_index: self.server.applied_index(),
            // etcd lists active alarms here, in their protobuf text form.
            errors: self
                .server
                .alarms()
                .get(AlarmType::None)
                .iter()
                .map(|a| {
                    format!(
                        "memberID:{} alarm:{} ",
                        a.member_id,
                        a.alarm().as_str_name()
                    )
                })
                .collect(),
            db_size_in_use,
            is_learner: self.server.membership().local_is_learner(),
        }))
    }

    async fn defragment(
        &self,
        req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        super::auth::require_root_unconverted(&self.server, &req).await?;
        tracing::info!("starting defragment");
        let disk = crate::metrics::disk();
        disk.defrag_inflight.set(1);
        let store = self.server.store().clone();
        let result = tokio::task::spawn_blocking(move || store.defrag()).await;
        disk.defrag_inflight.set(0);
        let stats = match result {
            Ok(Ok(stats)) => stats,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "failed to defragment");
                return Err(Status::unknown(e.to_string()));
            }
            Err(e) => return Err(Status::unknown(format!("defragment: {e}"))),
        };
        disk.backend_defrag_duration
            .observe(stats.took.as_secs_f64());
        tracing::info!(
            path = %self.server.store().db_path().display(),
            current_db_size_bytes_diff = stats.size_after - stats.size_before,
            current_db_size_bytes = stats.size_after,
            current_db_size_in_use_bytes = stats.size_in_use,
            took = ?stats.took,
            write_stall = ?stats.write_stall,
            "finished defragmenting directory"
        );
        tracing::info!("finished defragment");
        Ok(Response::new(DefragmentResponse {
            header: Some(self.server.header(self.server.current_rev()?)),
        }))
    }

    async fn hash(&self, req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        super::auth::require_root_unconverted(&self.server, &req).await?;
        // The hash reads the LMDB file: commit what readers already see
        // (etcd's ForceCommit before Hash).
        self.server.backend_barrier().await?;
        let store = self.server.store().clone();
        let (hash, rev) = tokio::task::spawn_blocking(move || store.hash(MEMBER_LOCAL_META))
            .await
            .map_err(|e| Status::unknown(format!("hash: {e}")))?
            .map_err(|e| Status::unknown(format!("{e:#}")))?;
        Ok(Response::new(HashResponse {
            header: Some(self.server.header(rev)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        super::auth::require_root_unconverted(&self.server, &req).await?;
        let rev = req.into_inner().revision;
        let started = std::time::Instant::now();
        let view = self.server.read_view()?;
        let h = view.hash_kv(rev).map_err(|e| Error::Apply(e.into()))?;
        crate::metrics::mvcc()
            .hash_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(Response::new(HashKvResponse {
            header: Some(self.server.header(view.current_rev())),
            hash: h.hash,
            compact_revision: h.compact_revision,
            hash_revision: h.hash_revision,
        }))
    }

    type SnapshotStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

    async fn snapshot(
        &self,
        req: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        super::auth::require_root_unconverted(&self.server, &req).await?;
        let permit = self.snapshots.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "etcdserver: too many snapshots in progress (at most {MAX_SNAPSHOT_STREAMS} per member); try again later"
            ))
        })?;
        // The copy is made from the LMDB file: commit what readers see
        // (etcd's backend commits its batch before a snapshot).
        self.server.backend_barrier().await?;
        let store = self.server.store().clone();
        let mut waits = 0;
        let mut permit = permit;
        let file = loop {
            let s = store.clone();
            // The permit travels with the copy: a client that goes away
            // while it is made still counts until the copy is done.
            let (made, back) = tokio::task::spawn_blocking(move || (snapshot_copy(&s), permit))
                .await
                .map_err(|e| Status::unknown(format!("snapshot: {e}")))?;
            permit = back;
            let made = made.map_err(|e| Status::unknown(format!("{e:#}")))?;
            if let Some(file) = made {
                break file;
            }
            // a compaction is deleting records: the snapshot waits for it,
            // as etcd's waits for its backend's batch to commit
            waits += 1;
            if waits > 10 {
                return Err(Status::unavailable(
                    "etcdserver: compactions keep running; try the snapshot again later",
                ));
            }
            let compacted = store
                .read()
                .map_err(|e| Status::unknown(e.to_string()))?
                .compacted_rev();
            store.physically_compacted(compacted).await;
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            send_snapshot(file, tx).await;
            drop(permit);
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        super::auth::require_root_unconverted(&self.server, &req).await?;
        let to = req.into_inner().target_id;
        if !self.server.is_leader() {
            return Err(Error::NotLeader.into());
        }
        match self.server.membership().member(to) {
            Some(m) if !m.is_learner => {}
            _ => return Err(Error::BadLeaderTransferee.into()),
        }
        if to != self.server.member_id() {
            tracing::info!(
                from = format!("{:x}", self.server.member_id()),
                to = format!("{to:x}"),
                "leadership transfer starting"
            );
            self.server.transfer_leadership(to).await?;
            tracing::info!(to = format!("{to:x}"), "leadership transfer finished");
        }
        // etcd answers MoveLeader with an empty response (no header).
        Ok(Response::new(MoveLeaderResponse { header: None }))
    }

    async fn downgrade(
        &self,
        req: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        super::auth::require_root_unconverted(&self.server, &req).await?;
        Err(not_yet("downgrade"))
    }
}
