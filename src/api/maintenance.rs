//! The Maintenance service. Status and alarm listing are served; the rest
//! (defragment, hashes, snapshots, leader moves, alarm changes) arrive with
//! the maintenance work and answer Unimplemented until then.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::proto::etcdserverpb::{
    alarm_request::AlarmAction, maintenance_server::Maintenance, AlarmRequest, AlarmResponse,
    DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
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
        let r = req.into_inner();
        match AlarmAction::try_from(r.action) {
            // Nothing raises alarms yet (quota and corruption checks come
            // with the maintenance work), so the list is truly empty.
            Ok(AlarmAction::Get) => Ok(Response::new(AlarmResponse {
                header: Some(self.server.header(self.current_rev()?)),
                alarms: Vec::new(),
            })),
            _ => Err(not_yet("changing alarms")),
        }
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
            errors: Vec::new(),
            db_size_in_use,
            is_learner: false,
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

    async fn hash_kv(&self, _: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        Err(not_yet("hashkv"))
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
        _: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(not_yet("move-leader"))
    }

    async fn downgrade(
        &self,
        _: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(not_yet("downgrade"))
    }
}
