//! The Maintenance service. Status and alarm listing are served; the rest
//! (defragment, hashes, snapshots, leader moves, alarm changes) arrive with
//! the maintenance work and answer Unimplemented until then.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::proto::etcdserverpb::{
    maintenance_server::Maintenance, AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest,
    DefragmentResponse, DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse,
    HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest,
    SnapshotResponse, StatusRequest, StatusResponse,
};
use crate::server::{Error, EtcdServer};

pub struct MaintenanceService {
    server: Arc<EtcdServer>,
}

impl MaintenanceService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        MaintenanceService { server }
    }

    fn current_rev(&self) -> Result<i64, Status> {
        Ok(self
            .server
            .store
            .read()
            .map_err(|e| Error::Apply(e.into()))?
            .current_rev())
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("etcdserver: {what} is not supported yet"))
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let mut resp = self.server.alarm(req.into_inner()).await?;
        resp.header = Some(self.server.header(self.current_rev()?));
        Ok(Response::new(resp))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let shared = &self.server.raft.shared;
        let (db_size, db_size_in_use) = self
            .server
            .store
            .db_size()
            .map_err(|e| Error::Apply(e.into()))?;
        Ok(Response::new(StatusResponse {
            header: Some(self.server.header(self.current_rev()?)),
            version: crate::ETCD_VERSION.to_string(),
            db_size,
            leader: shared.leader.load(Ordering::Acquire),
            raft_index: shared.raft_index.load(Ordering::Acquire),
            raft_term: shared.term.load(Ordering::Acquire),
            raft_applied_index: self.server.applied_index(),
            // etcd lists active alarms here, in their protobuf text form.
            errors: self
                .server
                .alarms
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
            is_learner: self.server.membership.local_is_learner(),
        }))
    }

    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(not_yet("online defragment"))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(not_yet("hash"))
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let rev = req.into_inner().revision;
        let started = std::time::Instant::now();
        let view = self
            .server
            .store
            .read()
            .map_err(|e| Error::Apply(e.into()))?;
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
        _: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(not_yet("snapshot"))
    }

    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let to = req.into_inner().target_id;
        if !self.server.is_leader() {
            return Err(Error::NotLeader.into());
        }
        match self.server.membership.member(to) {
            Some(m) if !m.is_learner => {}
            _ => return Err(Error::BadLeaderTransferee.into()),
        }
        if to != self.server.member_id {
            tracing::info!(
                from = format!("{:x}", self.server.member_id),
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
        _: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(not_yet("downgrade"))
    }
}
