//! The receiving side of the peer port (see the module docs of `peer`):
//! raft messages and snapshots go straight to the raft thread, as etcd's
//! rafthttp handler does; what followers forward to the leader (lease
//! renewals, time-to-live, learner promotion) is answered by the server, as
//! etcd's peer handler under etcdhttp does. It lives with the client API
//! because it serves requests on top of `server`.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::{Arc, OnceLock, Weak};

use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::io::AsyncWriteExt as _;
use tonic::{Request, Response, Status, Streaming};

use crate::cluster::Membership;
use crate::mvcc::Store;
use crate::proto::peer::peer_server::{Peer, PeerServer};
use crate::proto::peer::{
    MembersRequest, MembersResponse, PeerHashKvRequest, PeerHashKvResponse, PeerLeaseRenewRequest,
    PeerLeaseRenewResponse, PeerLeaseTimeToLiveRequest, PeerLeaseTimeToLiveResponse,
    PeerMemberPromoteRequest, PeerMemberPromoteResponse, ProbeRequest, ProbeResponse, RaftBatch,
    RaftStreamEnd, Route, SnapshotAck, SnapshotChunk,
};
use crate::raft::RaftMsg;
use crate::server::EtcdServer;
use crate::storage::snapshot::Snapshotter;

pub struct PeerService {
    membership: Arc<Membership>,
    raft_tx: Sender<RaftMsg>,
    /// Counts what waits in `raft_tx` from peers.
    raft: Arc<crate::raft::RaftShared>,
    /// When a dropped message was last logged (seconds since the epoch).
    drop_logged: std::sync::atomic::AtomicU64,
    snapshots: Arc<Snapshotter>,
    /// Read for HashKV.
    store: Arc<Store>,
    /// Answers what followers forward to the leader; set once the server
    /// exists (the peer port serves raft before that).
    server: LateServer,
}

/// The server, once built; weak so that the peer port does not keep a
/// stopped server alive.
pub type LateServer = Arc<OnceLock<Weak<EtcdServer>>>;

pub fn server(
    membership: Arc<Membership>,
    raft: &crate::raft::RaftHandle,
    snapshots: Arc<Snapshotter>,
    store: Arc<Store>,
    server: LateServer,
) -> PeerServer<PeerService> {
    PeerServer::new(PeerService {
        membership,
        raft_tx: raft.tx.clone(),
        raft: raft.shared.clone(),
        drop_logged: Default::default(),
        snapshots,
        store,
        server,
    })
    .max_decoding_message_size(MAX_PEER_FRAME)
    .max_encoding_message_size(usize::MAX)
}

/// Peer messages the raft thread may have waiting (etcd's recvBufSize).
const MAX_QUEUED_PEER_MESSAGES: usize = 4096;

/// Takes a place in the raft thread's queue for one peer message, or says
/// it is full.
fn admit_peer_message(queued: &std::sync::atomic::AtomicUsize) -> bool {
    if queued.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED_PEER_MESSAGES {
        queued.fetch_sub(1, Ordering::AcqRel);
        return false;
    }
    true
}

/// Deletes a file when dropped, unless its path was taken back.
struct RemoveOnDrop(Option<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A forwarded proposal (MsgPropose from another member) carrying an entry
/// that only the leader makes for itself, unchecked: lease expiry,
/// checkpoints, auto-compaction. A follower never forwards those (a
/// deposed leader's are retried by the next one), so one arriving here is
/// forged, and would skip every permission check when applied. Returns
/// its kind.
fn leader_only_proposal(m: &Message) -> Option<&'static str> {
    use crate::proto::internal::{internal_raft_request::Request, InternalRaftRequest};
    use prost::Message as _;
    if m.get_msg_type() != raft::eraftpb::MessageType::MsgPropose {
        return None;
    }
    m.entries.iter().find_map(|e| {
        let entry = InternalRaftRequest::decode(e.data.as_ref()).ok()?;
        if !entry.header.is_some_and(|h| h.internal) {
            return None;
        }
        match entry.request? {
            Request::LeaseRevoke(_) => Some("lease revoke"),
            Request::LeaseCheckpoint(_) => Some("lease checkpoint"),
            Request::Compaction(_) => Some("compaction"),
            _ => None,
        }
    })
}

/// The largest frame the peer port reads, fixed as etcd's rafthttp
/// readBytesLimit (512 MiB): not derived from this member's
/// --max-request-bytes, since members with different settings (a rolling
/// change of the flag) must still take each other's entries. Anything
/// larger is refused before it is read into memory.
pub const MAX_PEER_FRAME: usize = 512 << 20;

impl PeerService {
    /// Refuses traffic from another cluster, for another member, or from a
    /// removed member. Returns the sender's id.
    fn check(&self, route: Option<&Route>) -> Result<u64, Status> {
        let route =
            route.ok_or_else(|| Status::invalid_argument("peer request without a route"))?;
        if route.cluster_id != self.membership.cluster_id {
            tracing::warn!(
                local_cluster_id = format!("{:x}", self.membership.cluster_id),
                remote_cluster_id = format!("{:x}", route.cluster_id),
                remote_peer_id = format!("{:x}", route.from),
                "request cluster ID mismatch"
            );
            return Err(Status::failed_precondition(format!(
                "request cluster ID mismatch: this member is in cluster {:x}, the request is for cluster {:x}",
                self.membership.cluster_id, route.cluster_id
            )));
        }
        if route.to != self.membership.local_id {
            return Err(Status::failed_precondition(format!(
                "request member ID mismatch: this member is {:x}, the request is for {:x}",
                self.membership.local_id, route.to
            )));
        }
        if self.membership.is_removed(route.from) {
            return Err(Status::permission_denied(crate::peer::REMOVED_MEMBER));
        }
        Ok(route.from)
    }

    /// The server, for a request forwarded by member `from`: only a
    /// current member of this cluster (checked by `check`, and with peer
    /// TLS by its certificate) may ask the leader to act for a client.
    fn server_for(&self, from: u64) -> Result<Arc<EtcdServer>, Status> {
        if self.membership.member(from).is_none() {
            return Err(Status::permission_denied(format!(
                "{from:x} is not a member of this cluster"
            )));
        }
        self.server
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| Status::unavailable("etcdserver: server stopped"))
    }

    fn step(&self, m: Message, from: &str) -> Result<(), Status> {
        if !admit_peer_message(&self.raft.peer_messages_queued) {
            // raft recovers lost messages (retries, heartbeats); a raft
            // thread that fell behind must not queue without bound
            crate::metrics::network()
                .peer_received_failures
                .with_label_values(&[from])
                .inc();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if self.drop_logged.swap(now, Ordering::Relaxed) != now {
                tracing::warn!(
                    "message-type" = ?m.get_msg_type(),
                    "remote-peer-id" = from,
                    "dropped internal Raft message since receiving buffer is full (overloaded network)"
                );
            }
            return Ok(());
        }
        self.raft_tx.send(RaftMsg::Step(m)).map_err(|_| {
            self.raft
                .peer_messages_queued
                .fetch_sub(1, Ordering::AcqRel);
            Status::unavailable("etcdserver: server stopped")
        })
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn raft(
        &self,
        request: Request<Streaming<RaftBatch>>,
    ) -> Result<Response<RaftStreamEnd>, Status> {
        let mut stream = request.into_inner();
        let net = crate::metrics::network();
        let mut label = String::new();
        while let Some(batch) = stream.message().await? {
            let from = self.check(batch.route.as_ref())?;
            // As etcd's stream handler ("error sender not found"): raft
            // talks only to members, and the metrics are labelled by
            // sender, so a stranger must not make up labels.
            if self.membership.member(from).is_none() {
                return Err(Status::not_found(format!(
                    "error sender not found: {from:x} is not a member of this cluster"
                )));
            }
            if label.is_empty() {
                label = format!("{from:x}");
            }
            for bytes in batch.messages {
                net.peer_received_bytes
                    .with_label_values(&[&label])
                    .inc_by(bytes.len() as u64);
                let m = Message::parse_from_bytes(&bytes).map_err(|e| {
                    net.peer_received_failures
                        .with_label_values(&[&label])
                        .inc();
                    Status::invalid_argument(format!("malformed raft message: {e}"))
                })?;
                if m.from != from {
                    return Err(Status::invalid_argument(
                        "raft message sender differs from the stream's",
                    ));
                }
                // A snapshot arrives on its own stream, saved before raft
                // sees it; one here would send raft to install a file that
                // does not exist.
                if m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
                    return Err(Status::invalid_argument(
                        "a raft snapshot message outside a snapshot stream",
                    ));
                }
                if let Some(kind) = leader_only_proposal(&m) {
                    tracing::warn!(
                        from = format!("{from:x}"),
                        kind,
                        "refused a forwarded proposal that only the leader itself makes"
                    );
                    continue;
                }
                self.step(m, &label)?;
            }
        }
        Ok(Response::new(RaftStreamEnd {}))
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotAck>, Status> {
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let from = self.check(first.route.as_ref())?;
        if self.membership.member(from).is_none() {
            return Err(Status::not_found(format!(
                "error sender not found: {from:x} is not a member of this cluster"
            )));
        }
        let m = Message::parse_from_bytes(&first.message)
            .map_err(|e| Status::invalid_argument(format!("malformed raft message: {e}")))?;
        if m.from != from {
            return Err(Status::invalid_argument(
                "raft message sender differs from the stream's",
            ));
        }
        let index = m.get_snapshot().get_metadata().index;
        tracing::info!(
            from = format!("{from:x}"),
            index,
            bytes = first.total_bytes,
            "receiving database snapshot"
        );
        let partial = self.snapshots.partial_path(index);
        let io = |what: &str, e: std::io::Error| {
            Status::internal(format!("{what} {}: {e}", partial.display()))
        };
        let mut file = tokio::fs::OpenOptions::from(crate::storage::private::file_options())
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)
            .await
            .map_err(|e| io("create", e))?;
        // however the stream ends before the rename, the partial file goes
        let mut unsaved = RemoveOnDrop(Some(partial.clone()));
        let mut crc = 0u32;
        let mut received = 0u64;
        let mut done = None;
        while let Some(chunk) = stream.message().await? {
            if chunk.done {
                done = Some(chunk.crc32c);
                break;
            }
            crc = crc32c::crc32c_append(crc, &chunk.data);
            received += chunk.data.len() as u64;
            file.write_all(&chunk.data)
                .await
                .map_err(|e| io("write", e))?;
            crate::failpoint!("raftMidSnapshotReceive");
        }
        let complete = done == Some(crc) && received == first.total_bytes;
        if !complete {
            drop(file);
            return Err(Status::data_loss(format!(
                "snapshot at index {index} arrived incomplete or damaged ({received} of {} bytes)",
                first.total_bytes
            )));
        }
        file.sync_all().await.map_err(|e| io("fsync", e))?;
        drop(file);
        let path = self.snapshots.path(index);
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(|e| io("rename", e))?;
        unsaved.0 = None;
        crate::failpoint!("raftAfterReceiveSnap");
        let dir = self.snapshots.dir().to_path_buf();
        let _ = tokio::task::spawn_blocking(move || crate::storage::snapshot::sync_dir(&dir)).await;
        crate::metrics::network()
            .peer_received_bytes
            .with_label_values(&[&format!("{from:x}")])
            .inc_by(received);
        tracing::info!(
            from = format!("{from:x}"),
            index,
            path = %path.display(),
            "received and saved database snapshot"
        );
        // a saved snapshot is always stepped: dropping it would leave the
        // leader waiting on a snapshot the follower never installs
        self.raft
            .peer_messages_queued
            .fetch_add(1, Ordering::AcqRel);
        self.raft_tx.send(RaftMsg::Step(m)).map_err(|_| {
            self.raft
                .peer_messages_queued
                .fetch_sub(1, Ordering::AcqRel);
            Status::unavailable("etcdserver: server stopped")
        })?;
        Ok(Response::new(SnapshotAck {}))
    }

    async fn members(
        &self,
        _request: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        Ok(Response::new(MembersResponse {
            cluster_id: self.membership.cluster_id,
            members: self.membership.members(),
            removed: self.membership.removed(),
        }))
    }

    async fn probe(
        &self,
        request: Request<ProbeRequest>,
    ) -> Result<Response<ProbeResponse>, Status> {
        self.check(request.get_ref().route.as_ref())?;
        Ok(Response::new(ProbeResponse {}))
    }

    async fn hash_kv(
        &self,
        request: Request<PeerHashKvRequest>,
    ) -> Result<Response<PeerHashKvResponse>, Status> {
        let request = request.into_inner();
        self.check(request.route.as_ref())?;
        let (store, rev) = (self.store.clone(), request.revision);
        // A scan of the whole keyspace: off the async workers.
        let hashed = tokio::task::spawn_blocking(move || {
            let view = store.read()?;
            Ok::<_, crate::mvcc::Error>((view.hash_kv(rev)?, view.current_rev()))
        })
        .await
        .map_err(|e| Status::internal(format!("hash task failed: {e}")))?;
        match hashed {
            Ok((h, current)) => Ok(Response::new(PeerHashKvResponse {
                member_id: self.membership.local_id,
                revision: current,
                hash: h.hash,
                compact_revision: h.compact_revision,
                hash_revision: h.hash_revision,
            })),
            Err(e @ (crate::mvcc::Error::FutureRev | crate::mvcc::Error::Compacted)) => {
                tracing::warn!(requested_revision = rev, error = %e, "failed to get hashKV");
                Err(Status::out_of_range(e.to_string()))
            }
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    async fn lease_renew(
        &self,
        request: Request<PeerLeaseRenewRequest>,
    ) -> Result<Response<PeerLeaseRenewResponse>, Status> {
        let request = request.into_inner();
        let server = self.server_for(self.check(request.route.as_ref())?)?;
        if !server.is_leader() {
            return Err(crate::server::Error::NotLeader.into());
        }
        Ok(Response::new(PeerLeaseRenewResponse {
            ttl: server.renew_lease_here(request.id).await?,
        }))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<PeerLeaseTimeToLiveRequest>,
    ) -> Result<Response<PeerLeaseTimeToLiveResponse>, Status> {
        let request = request.into_inner();
        let server = self.server_for(self.check(request.route.as_ref())?)?;
        if !server.is_leader() {
            return Err(crate::server::Error::NotLeader.into());
        }
        Ok(Response::new(
            server
                .lease_time_to_live_here(request.id, request.keys)
                .await?,
        ))
    }

    async fn member_promote(
        &self,
        request: Request<PeerMemberPromoteRequest>,
    ) -> Result<Response<PeerMemberPromoteResponse>, Status> {
        let request = request.into_inner();
        let server = self.server_for(self.check(request.route.as_ref())?)?;
        server.promote_member_here(request.id).await?;
        Ok(Response::new(PeerMemberPromoteResponse {
            members: server.membership().members(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn peer_messages_queue_up_to_the_bound_then_drop() {
        let queued = AtomicUsize::new(0);
        for _ in 0..MAX_QUEUED_PEER_MESSAGES {
            assert!(admit_peer_message(&queued));
        }
        assert!(!admit_peer_message(&queued), "past the bound");
        assert_eq!(queued.load(Ordering::Relaxed), MAX_QUEUED_PEER_MESSAGES);
        // the raft thread takes one: there is room again
        queued.fetch_sub(1, Ordering::AcqRel);
        assert!(admit_peer_message(&queued));
    }
}
