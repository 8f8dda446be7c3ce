//! The Election service (etcd's v3election server with
//! concurrency.Election): candidates are keys `<name>/<lease hex>` holding
//! their proposed value; the oldest one leads. Campaign waits for
//! leadership, Proclaim changes the leader's value, Resign deletes the
//! leader's key, Leader reads the current leader and Observe streams it on
//! every change.
//!
//! Observe follows the prefix's event history revision by revision, so it
//! reports every leader and every proclaimed value in order, even when
//! changes come faster than the stream is read (etcd re-reads the leader
//! after each deletion and may skip a short-lived one).

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::concurrency::{self as cc, Standing, Turn, WithdrawOnDrop};
use crate::apply::ops;
use crate::mvcc::{self, KeyRange, RangeOptions, RevEvents};
use crate::proto::etcdserverpb::{ResponseHeader, TxnRequest};
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::proto::v3electionpb::{
    election_server::Election, CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest,
    LeaderResponse, ProclaimRequest, ProclaimResponse, ResignRequest, ResignResponse,
};
use crate::server::{Error, EtcdServer};

/// concurrency.ErrElectionNotLeader and ErrElectionNoLeader.
const NOT_LEADER: &str = "election: not leader";
const NO_LEADER: &str = "election: no leader";
/// v3election.ErrMissingLeaderKey.
const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";
/// What etcd's txn on an empty leader key answers.
const EMPTY_KEY: &str = "etcdserver: key is not provided";

/// Events read per step while an observer catches up.
const EVENTS_PER_STEP: usize = 1000;
/// Leader changes buffered per observer before it waits for the client.
const OBSERVE_BUFFER: usize = 16;

pub struct ElectionService {
    server: Arc<EtcdServer>,
}

impl ElectionService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        ElectionService { server }
    }

    /// The caller, checked as etcd's client calls on its behalf would be.
    async fn who<T>(&self, req: &Request<T>) -> Result<crate::auth::AuthInfo, Status> {
        let caller = super::auth::caller(&self.server, req)
            .await
            .map_err(cc::as_go_error)?;
        Ok(super::auth::or_empty(&caller))
    }
}

fn election_prefix(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// Puts `value` on the leader key if it is still the incarnation the
/// leader key names (etcd's Election.Proclaim).
async fn proclaim(
    server: &EtcdServer,
    key: &[u8],
    rev: i64,
    lease: i64,
    value: Vec<u8>,
) -> Result<Option<ResponseHeader>, Status> {
    let resp = cc::txn(
        server,
        TxnRequest {
            compare: vec![cc::create_revision_is(key, rev)],
            success: vec![cc::put_op(key, value, lease)],
            failure: Vec::new(),
        },
    )
    .await?;
    if !resp.succeeded {
        return Err(cc::go_error(NOT_LEADER));
    }
    Ok(resp.header)
}

impl ElectionService {
    async fn run_campaign(
        &self,
        r: CampaignRequest,
        who: &crate::auth::AuthInfo,
    ) -> Result<CampaignResponse, Status> {
        let server = &self.server;
        let prefix = election_prefix(&r.name);
        let (lease, key) = cc::checked_session(server, who, &prefix, r.lease).await?;

        let resp = cc::txn(
            server,
            TxnRequest {
                compare: vec![cc::create_revision_is(&key, 0)],
                success: vec![cc::put_op(&key, r.value.clone(), lease)],
                failure: vec![cc::get_op(&key)],
            },
        )
        .await?;
        let mut rev = resp.header.as_ref().map(|h| h.revision).unwrap_or(0);
        if !resp.succeeded {
            // Campaigning again on the same lease: keep the place in line,
            // update the value.
            let Some(kv) = cc::range_kvs(&resp, 0).first() else {
                return Err(cc::go_error(NOT_LEADER));
            };
            rev = kv.create_revision;
            if kv.value != r.value {
                if let Err(e) = proclaim(server, &key, rev, lease, r.value.clone()).await {
                    let _ = cc::withdraw(server, &key, rev).await;
                    return Err(e);
                }
            }
        }
        let guard = WithdrawOnDrop::new(server.clone(), key.clone(), rev);
        let standing = if cc::wait_turn(server, &prefix, &key, rev).await? == Turn::Lost {
            Standing::KeyLost
        } else {
            // etcd 3.5 does not check; leadership must not go to an
            // expired lease any more than a lock.
            cc::standing(server, &key, rev, lease).await?
        };
        match standing {
            Standing::Held(_) => guard.disarm(),
            Standing::KeyLost => {
                guard.disarm();
                return Err(cc::go_error(NOT_LEADER));
            }
            Standing::LeaseExpired => {
                cc::withdraw(server, &key, rev).await?;
                guard.disarm();
                return Err(cc::go_error(NOT_LEADER));
            }
        }
        Ok(CampaignResponse {
            // etcd answers with the header of the campaign's own txn
            header: resp.header,
            leader: Some(LeaderKey {
                name: r.name,
                key,
                rev,
                lease,
            }),
        })
    }

    async fn run_proclaim(&self, r: ProclaimRequest) -> Result<ProclaimResponse, Status> {
        let leader = r.leader.ok_or_else(|| cc::go_error(MISSING_LEADER_KEY))?;
        let lease = cc::session_lease(&self.server, leader.lease).await?;
        // etcd's txn on the leader key refuses an empty one
        if leader.key.is_empty() {
            return Err(cc::go_error(EMPTY_KEY));
        }
        let header = proclaim(&self.server, &leader.key, leader.rev, lease, r.value).await?;
        Ok(ProclaimResponse { header })
    }

    async fn run_leader(&self, r: LeaderRequest) -> Result<LeaderResponse, Status> {
        let prefix = election_prefix(&r.name);
        self.server.linearizable_read().await?;
        let view = self.server.read_view()?;
        let resp = ops::range(&view, &cc::first_created(&prefix))?;
        let Some(kv) = resp.kvs.into_iter().next() else {
            return Err(cc::go_error(NO_LEADER));
        };
        Ok(LeaderResponse {
            header: Some(self.server.header(view.current_rev())),
            kv: Some(kv),
        })
    }

    async fn run_observe(&self, r: LeaderRequest) -> Result<ObserveStream, Status> {
        let prefix = election_prefix(&r.name);
        self.server.linearizable_read().await?;
        let (tx, rx) = mpsc::channel(OBSERVE_BUFFER);
        let server = self.server.clone();
        tokio::spawn(async move {
            let observer = Observer {
                server,
                range: KeyRange::new(&prefix, &cc::prefix_end(&prefix)),
                tx,
            };
            if let Err(status) = observer.run().await {
                let _ = observer.tx.send(Err(cc::as_go_error(status))).await;
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn run_resign(&self, r: ResignRequest) -> Result<ResignResponse, Status> {
        let leader = r.leader.ok_or_else(|| cc::go_error(MISSING_LEADER_KEY))?;
        // etcd opens a session here too (granting a lease for lease 0)
        cc::session_lease(&self.server, leader.lease).await?;
        if leader.key.is_empty() {
            return Err(cc::go_error(EMPTY_KEY));
        }
        let resp = cc::withdraw(&self.server, &leader.key, leader.rev).await?;
        Ok(ResignResponse {
            header: resp.header,
        })
    }
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        req: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let who = self.who(&req).await?;
        let r = self.run_campaign(req.into_inner(), &who).await;
        r.map(Response::new).map_err(cc::as_go_error)
    }

    async fn proclaim(
        &self,
        req: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        if let Some(leader) = &req.get_ref().leader {
            let prefix = election_prefix(&leader.name);
            let who = self.who(&req).await?;
            super::auth::check_contender(&self.server, &who, &prefix, Some(&leader.key))
                .map_err(cc::as_go_error)?;
        }
        let r = self.run_proclaim(req.into_inner()).await;
        r.map(Response::new).map_err(cc::as_go_error)
    }

    async fn leader(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let prefix = election_prefix(&req.get_ref().name);
        let who = self.who(&req).await?;
        super::auth::check_contender(&self.server, &who, &prefix, None).map_err(cc::as_go_error)?;
        let r = self.run_leader(req.into_inner()).await;
        r.map(Response::new).map_err(cc::as_go_error)
    }

    type ObserveStream = ObserveStream;

    async fn observe(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let prefix = election_prefix(&req.get_ref().name);
        let who = self.who(&req).await?;
        super::auth::check_contender(&self.server, &who, &prefix, None).map_err(cc::as_go_error)?;
        let r = self.run_observe(req.into_inner()).await;
        r.map(Response::new).map_err(cc::as_go_error)
    }

    async fn resign(
        &self,
        req: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        if let Some(leader) = &req.get_ref().leader {
            let prefix = election_prefix(&leader.name);
            let who = self.who(&req).await?;
            super::auth::check_contender(&self.server, &who, &prefix, Some(&leader.key))
                .map_err(cc::as_go_error)?;
        }
        let r = self.run_resign(req.into_inner()).await;
        r.map(Response::new).map_err(cc::as_go_error)
    }
}

/// The candidates under an election prefix, by create revision.
#[derive(Default)]
struct Candidates {
    by_rev: BTreeMap<i64, KeyValue>,
    rev_of: HashMap<Vec<u8>, i64>,
}

impl Candidates {
    fn from_kvs(kvs: Vec<KeyValue>) -> Self {
        let mut c = Candidates::default();
        for kv in kvs {
            c.rev_of.insert(kv.key.clone(), kv.create_revision);
            c.by_rev.insert(kv.create_revision, kv);
        }
        c
    }

    fn apply(&mut self, event: Event) {
        let Some(kv) = event.kv else { return };
        if let Some(rev) = self.rev_of.remove(&kv.key) {
            self.by_rev.remove(&rev);
        }
        if event.r#type == EventType::Put as i32 {
            self.rev_of.insert(kv.key.clone(), kv.create_revision);
            self.by_rev.insert(kv.create_revision, kv);
        }
    }

    fn leader(&self) -> Option<&KeyValue> {
        self.by_rev.values().next()
    }
}

/// One Observe stream: replays the prefix's events from a snapshot and
/// sends the leader's kv whenever it changes (another leader, or the same
/// leader with a new value or revision).
struct Observer {
    server: Arc<EtcdServer>,
    range: KeyRange,
    tx: mpsc::Sender<Result<LeaderResponse, Status>>,
}

/// Why following the history stopped.
enum Stop {
    /// The client went away.
    Gone,
    /// The history we need was compacted: start over from a snapshot.
    Compacted,
}

impl Observer {
    async fn run(&self) -> Result<(), Status> {
        let mut changes = self.server.hub().subscribe();
        // The (key, mod revision) last sent: a resync must not repeat it.
        let mut sent: Option<(Vec<u8>, i64)> = None;
        loop {
            changes.borrow_and_update();
            let (mut candidates, rev) = self.snapshot()?;
            if self.report(&candidates, rev, &mut sent).await.is_err() {
                return Ok(());
            }
            match self
                .follow(&mut changes, &mut candidates, rev + 1, &mut sent)
                .await?
            {
                Stop::Gone => return Ok(()),
                Stop::Compacted => continue,
            }
        }
    }

    /// All candidates now, and the revision they are read at.
    fn snapshot(&self) -> Result<(Candidates, i64), Status> {
        let view = self.server.read_view()?;
        let r = view
            .range(&self.range, RangeOptions::default())
            .map_err(|e| Error::Apply(e.into()))?;
        Ok((Candidates::from_kvs(r.kvs), view.current_rev()))
    }

    /// Sends the leader if it differs from the last one sent.
    async fn report(
        &self,
        candidates: &Candidates,
        rev: i64,
        sent: &mut Option<(Vec<u8>, i64)>,
    ) -> Result<(), Stop> {
        let Some(leader) = candidates.leader() else {
            return Ok(());
        };
        let id = (leader.key.clone(), leader.mod_revision);
        if sent.as_ref() == Some(&id) {
            return Ok(());
        }
        let resp = LeaderResponse {
            header: Some(self.server.header(rev)),
            kv: Some(leader.clone()),
        };
        self.tx.send(Ok(resp)).await.map_err(|_| Stop::Gone)?;
        *sent = Some(id);
        Ok(())
    }

    /// Applies the prefix's events from `next` on, reporting after each
    /// revision, until the client leaves or the history is compacted.
    async fn follow(
        &self,
        changes: &mut tokio::sync::watch::Receiver<i64>,
        candidates: &mut Candidates,
        mut next: i64,
        sent: &mut Option<(Vec<u8>, i64)>,
    ) -> Result<Stop, Status> {
        loop {
            while next <= *changes.borrow_and_update() {
                let (batch, after) = match self.events_from(next)? {
                    Some(found) => found,
                    None => return Ok(Stop::Compacted),
                };
                for r in batch {
                    let rev = r.rev;
                    for event in r.events {
                        candidates.apply(event);
                    }
                    if self.report(candidates, rev, sent).await.is_err() {
                        return Ok(Stop::Gone);
                    }
                }
                if after <= next {
                    break; // nothing readable yet; wait for the next change
                }
                next = after;
                // history is read a bounded step at a time: let the other
                // tasks of this worker run between steps
                tokio::task::yield_now().await;
            }
            tokio::select! {
                changed = changes.changed() => {
                    changed.map_err(|_| Error::Stopped)?;
                }
                _ = self.tx.closed() => return Ok(Stop::Gone),
            }
        }
    }

    /// Events in the prefix from revision `from`: from the watch hub's
    /// ring while it still holds them, else from the store's history.
    /// `None` when `from` is compacted.
    fn events_from(&self, from: i64) -> Result<Option<(Vec<RevEvents>, i64)>, Status> {
        if let Some(found) = self.server.hub().recent(&self.range, from, EVENTS_PER_STEP) {
            return Ok(Some(found));
        }
        let view = self.server.read_view()?;
        match view.history(&self.range, from, EVENTS_PER_STEP) {
            Ok(found) => Ok(Some(found)),
            Err(mvcc::Error::Compacted) => Ok(None),
            Err(e) => Err(Error::Apply(e.into()).into()),
        }
    }
}
