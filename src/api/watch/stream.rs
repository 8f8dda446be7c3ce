//! One client watch stream (etcd's serverWatchStream): its watchers, their
//! cursors, and the loop that answers create/cancel/progress requests and
//! catches every watcher up to the newest revision.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use tokio::sync::mpsc;
use tonic::Status;

use crate::mvcc::{self, KeyRange, RevEvents};
use crate::proto::etcdserverpb::{
    watch_create_request::FilterType, watch_request, ResponseHeader, WatchCreateRequest,
    WatchRequest, WatchResponse,
};
use crate::proto::mvccpb::event::EventType;
use crate::proto::mvccpb::Event;
use crate::server::EtcdServer;
use crate::watch::{Hub, Matcher};

/// etcd's InvalidWatchID: answers not tied to one watcher.
const INVALID_WATCH_ID: i64 = -1;
/// How many events one catch-up step reads before yielding to the others.
const EVENTS_PER_STEP: usize = 1000;

struct Watcher {
    range: KeyRange,
    /// The next revision this watcher must see.
    next: i64,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    progress_notify: bool,
    fragment: bool,
}

pub struct WatchStream {
    server: Arc<EtcdServer>,
    hub: Arc<Hub>,
    tx: mpsc::Sender<Result<WatchResponse, Status>>,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
    /// A progress request waits until every watcher has caught up.
    progress_pending: bool,
    /// Who opened the stream: each create is checked for read permission.
    credential: crate::auth::Credential,
    /// The matcher of the last group of watchers that shared a cursor (in
    /// steady state: every synced watcher), kept while the group is the
    /// same; a create or a removal drops it.
    matcher: Option<(Vec<i64>, Matcher)>,
}

impl WatchStream {
    pub fn new(
        server: Arc<EtcdServer>,
        hub: Arc<Hub>,
        tx: mpsc::Sender<Result<WatchResponse, Status>>,
    ) -> Self {
        crate::metrics::mvcc().watch_stream_total.inc();
        WatchStream {
            server,
            hub,
            tx,
            watchers: BTreeMap::new(),
            next_id: 0,
            progress_pending: false,
            credential: crate::auth::Credential::None,
            matcher: None,
        }
    }

    pub fn with_credential(mut self, credential: crate::auth::Credential) -> Self {
        self.credential = credential;
        self
    }

    /// etcd's isWatchPermitted, as fixed for GHSA-xg4h-6gfc-h4m8: the
    /// range is checked as the watch will serve it. A range end of "\0"
    /// (from-key) is the interval to the end of the keyspace; etcd before
    /// 3.4.26/3.5.9 emptied it first and checked only the single key, so a
    /// user allowed one key watched every key after it.
    fn watch_permitted(&self, c: &WatchCreateRequest) -> bool {
        let auth = self.server.auth();
        let who = match auth.resolve(&self.credential) {
            Ok(who) => who.unwrap_or_default(),
            Err(_) => return false,
        };
        auth.check(&who, crate::auth::Access::Read, &c.key, &c.range_end)
            .is_ok()
    }

    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(self.server.header(revision))
    }

    /// The store's current revision.
    fn store_rev(&self) -> i64 {
        self.server
            .store()
            .read()
            .map(|v| v.current_rev())
            .unwrap_or_else(|_| self.hub.current())
    }

    /// Runs until the client goes away. A client that closes its sending
    /// side keeps its watchers (etcd's recvLoop returns on EOF and the
    /// stream lives on until its context ends), so the JSON gateway's
    /// watch, whose request body ends at once, goes on too.
    pub async fn run(
        mut self,
        mut requests: tonic::Streaming<WatchRequest>,
        progress_interval: Duration,
    ) {
        let mut revs = self.hub.subscribe();
        let mut ticker = tokio::time::interval(progress_interval);
        ticker.tick().await;
        let mut sending_side_open = true;
        loop {
            if self.catch_up().await.is_err() {
                return; // the client is gone
            }
            let behind = self.watchers.values().any(|w| w.next <= self.hub.current());
            if behind {
                // more to send: take requests without waiting for a revision
                tokio::select! {
                    biased;
                    req = requests.message(), if sending_side_open => match req {
                        Ok(Some(r)) => { if self.handle(r).await.is_err() { return; } }
                        Ok(None) => sending_side_open = false,
                        Err(undecodable) => return self.fail(undecodable).await,
                    },
                    _ = std::future::ready(()) => {}
                }
                // a catch-up step that sent nothing never awaited: let the
                // worker's other tasks run between steps
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                req = requests.message(), if sending_side_open => match req {
                    Ok(Some(r)) => { if self.handle(r).await.is_err() { return; } }
                    Ok(None) => sending_side_open = false,
                    Err(undecodable) => return self.fail(undecodable).await,
                },
                changed = revs.changed() => { if changed.is_err() { return; } }
                _ = ticker.tick() => {
                    if self.progress_notify().await.is_err() { return; }
                }
                // the client went away: its receiving side is gone
                _ = self.tx.closed() => return,
            }
        }
    }

    /// A request that does not decode ends the stream with its status
    /// (Internal), as etcd's recvLoop ends it with grpc's unmarshal error.
    async fn fail(&self, status: Status) {
        let _ = self.tx.send(Err(status)).await;
    }

    /// Removes a watcher (canceled by the client or by compaction).
    fn remove(&mut self, id: i64) -> bool {
        let gone = self.watchers.remove(&id).is_some();
        self.matcher = None;
        if gone {
            crate::metrics::mvcc().watcher_total.dec();
        }
        gone
    }

    async fn send(&self, r: WatchResponse) -> Result<(), ()> {
        self.tx.send(Ok(r)).await.map_err(|_| ())
    }

    async fn handle(&mut self, req: WatchRequest) -> Result<(), ()> {
        match req.request_union {
            Some(watch_request::RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(watch_request::RequestUnion::CancelRequest(c)) => {
                if self.remove(c.watch_id) {
                    let rev = self.store_rev();
                    self.send(WatchResponse {
                        header: self.header(rev),
                        watch_id: c.watch_id,
                        canceled: true,
                        ..Default::default()
                    })
                    .await?;
                }
                Ok(())
            }
            Some(watch_request::RequestUnion::ProgressRequest(_)) => {
                // Answered once every watcher has caught up (etcd #15220:
                // never report a revision some watcher has not reached).
                self.progress_pending = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn create(&mut self, mut c: WatchCreateRequest) -> Result<(), ()> {
        if c.key.is_empty() {
            c.key = vec![0]; // "\0" is the smallest key
        }
        if !self.watch_permitted(&c) {
            let current = self.store_rev();
            return self
                .send(WatchResponse {
                    header: self.header(current),
                    watch_id: c.watch_id,
                    created: true,
                    canceled: true,
                    cancel_reason:
                        "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
                            .to_string(),
                    ..Default::default()
                })
                .await;
        }
        let range = KeyRange::new(&c.key, &c.range_end);
        let current = self.store_rev();
        let error = if matches!(&range, KeyRange::Until(s, e) if s >= e) {
            Some("mvcc: watcher range is empty")
        } else if c.watch_id != 0 && self.watchers.contains_key(&c.watch_id) {
            Some("mvcc: duplicate watch ID provided on the WatchStream")
        } else {
            None
        };
        if let Some(reason) = error {
            return self
                .send(WatchResponse {
                    header: self.header(current),
                    watch_id: INVALID_WATCH_ID,
                    created: true,
                    canceled: true,
                    cancel_reason: reason.to_string(),
                    ..Default::default()
                })
                .await;
        }
        let id = if c.watch_id != 0 {
            c.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        };
        let has = |f: FilterType| c.filters.contains(&(f as i32));
        crate::metrics::mvcc().watcher_total.inc();
        self.matcher = None;
        self.watchers.insert(
            id,
            Watcher {
                range,
                next: if c.start_revision > 0 {
                    c.start_revision
                } else {
                    current + 1
                },
                no_put: has(FilterType::Noput),
                no_delete: has(FilterType::Nodelete),
                prev_kv: c.prev_kv,
                progress_notify: c.progress_notify,
                fragment: c.fragment,
            },
        );
        self.send(WatchResponse {
            header: self.header(current),
            watch_id: id,
            created: true,
            ..Default::default()
        })
        .await?;
        // etcd compares a negative start with its compaction revision, -1
        // before any compaction: below it, the watch ends as compacted;
        // -1 itself (never compacted) watches from now on, like 0.
        if c.start_revision < 0 {
            let compacted = match self.hub.compacted() {
                0 => -1,
                rev => rev,
            };
            if c.start_revision < compacted {
                return self.cancel_compacted(id, compacted).await;
            }
        }
        Ok(())
    }

    /// Brings each watcher up to the newest published revision, one bounded
    /// step each; answers a pending progress request once all are synced.
    /// Watchers at the same cursor (all the synced ones, usually) share one
    /// walk of the ring, their keys matched by a hash lookup: the work per
    /// event is the watchers it concerns, not every watcher of the stream.
    async fn catch_up(&mut self) -> Result<(), ()> {
        let target = self.hub.current();
        let compacted = self.hub.compacted();
        let mut due: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        let mut behind_compaction = Vec::new();
        for (&id, w) in &self.watchers {
            if w.next > target {
                continue;
            }
            if w.next < compacted {
                behind_compaction.push(id);
            } else {
                due.entry(w.next).or_default().push(id);
            }
        }
        for id in behind_compaction {
            self.cancel_compacted(id, compacted).await?;
        }
        for (from, ids) in due {
            let matcher = match self.matcher.take() {
                Some((same, m)) if same == ids => m,
                _ => {
                    let mut m = Matcher::default();
                    for (i, id) in ids.iter().enumerate() {
                        if let Some(w) = self.watchers.get(id) {
                            m.add(&w.range, i);
                        }
                    }
                    m
                }
            };
            let found = self.hub.recent_for(&matcher, from, EVENTS_PER_STEP);
            self.matcher = Some((ids.clone(), matcher));
            if let Some((mut batches, next)) = found {
                for (i, id) in ids.into_iter().enumerate() {
                    let batch = batches.remove(&i).unwrap_or_default();
                    self.deliver(id, batch, next, target).await?;
                }
                continue;
            }
            // the ring no longer holds the cursor: the store's history
            for id in ids {
                let Some(w) = self.watchers.get(&id) else {
                    continue;
                };
                match self.history(&w.range, w.next) {
                    Ok((batch, next)) => self.deliver(id, batch, next, target).await?,
                    Err(compacted) => self.cancel_compacted(id, compacted).await?,
                }
            }
        }
        if self.progress_pending && self.watchers.values().all(|w| w.next > target) {
            self.progress_pending = false;
            self.send(WatchResponse {
                header: self.header(target),
                watch_id: INVALID_WATCH_ID,
                ..Default::default()
            })
            .await?;
        }
        Ok(())
    }

    /// Sends watcher `id` its events of `batch` (after its filters) and
    /// moves its cursor to `next`.
    async fn deliver(
        &mut self,
        id: i64,
        batch: Vec<RevEvents>,
        next: i64,
        target: i64,
    ) -> Result<(), ()> {
        let events = self.filter(id, batch);
        if let Some(w) = self.watchers.get_mut(&id) {
            w.next = next;
        }
        if events.is_empty() {
            return Ok(());
        }
        crate::metrics::mvcc()
            .events_total
            .inc_by(events.len() as u64);
        // The store (which `history` reads) and the hub may already hold
        // revisions past `target`: a response's header never says less
        // than its events (etcd's never does).
        let newest = events
            .iter()
            .filter_map(|e| e.kv.as_ref().map(|kv| kv.mod_revision))
            .max()
            .unwrap_or(target);
        self.send_events(id, events, target.max(newest)).await
    }

    /// Ends a watcher whose cursor fell below the compaction revision, with
    /// etcd's answer: canceled, compact_revision set, header revision 0.
    async fn cancel_compacted(&mut self, id: i64, compacted: i64) -> Result<(), ()> {
        self.remove(id);
        self.send(WatchResponse {
            header: self.header(0),
            watch_id: id,
            canceled: true,
            compact_revision: compacted,
            ..Default::default()
        })
        .await
    }

    /// Reads history from the store; `Err(compact_revision)` when the
    /// cursor is already compacted away.
    fn history(&self, range: &KeyRange, from: i64) -> Result<(Vec<RevEvents>, i64), i64> {
        let view = match self.server.store().read() {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "watch: cannot read the store");
                return Ok((Vec::new(), from));
            }
        };
        match view.history(range, from, EVENTS_PER_STEP) {
            Ok(r) => Ok(r),
            Err(mvcc::Error::Compacted) => Err(view.compacted_rev()),
            Err(e) => {
                tracing::error!(error = %e, "watch: cannot read history");
                Ok((Vec::new(), from))
            }
        }
    }

    /// Applies the watcher's filters and fills prev_kv.
    fn filter(&self, id: i64, batch: Vec<RevEvents>) -> Vec<Event> {
        let Some(w) = self.watchers.get(&id) else {
            return Vec::new();
        };
        if batch.is_empty() {
            return Vec::new();
        }
        let view = if w.prev_kv {
            self.server.store().read().ok()
        } else {
            None
        };
        let mut out = Vec::new();
        for r in batch {
            for mut e in r.events {
                let is_put = e.r#type == EventType::Put as i32;
                if (is_put && w.no_put) || (!is_put && w.no_delete) {
                    continue;
                }
                if let (Some(view), Some(kv)) = (&view, &e.kv) {
                    e.prev_kv = view.prev_kv(&kv.key, r.rev).ok().flatten();
                }
                out.push(e);
            }
        }
        out
    }

    async fn send_events(&self, id: i64, events: Vec<Event>, rev: i64) -> Result<(), ()> {
        let fragment = self.watchers.get(&id).is_some_and(|w| w.fragment);
        let resp = WatchResponse {
            header: self.header(rev),
            watch_id: id,
            events,
            ..Default::default()
        };
        let limit =
            self.server.limits().max_request_bytes as usize + crate::server::GRPC_OVERHEAD_BYTES;
        if !fragment || resp.encoded_len() < limit || resp.events.len() < 2 {
            return self.send(resp).await;
        }
        // etcd's sendFragments: fill each part up to the limit, mark all but
        // the last as a fragment.
        let mut rest = resp.events.into_iter().peekable();
        while rest.peek().is_some() {
            let mut part = WatchResponse {
                header: resp.header,
                watch_id: id,
                fragment: true,
                ..Default::default()
            };
            while let Some(e) = rest.peek() {
                if !part.events.is_empty() && part.encoded_len() + e.encoded_len() >= limit {
                    break;
                }
                part.events.extend(rest.next());
            }
            part.fragment = rest.peek().is_some();
            self.send(part).await?;
        }
        Ok(())
    }

    /// Periodic progress for watchers that asked for it and are caught up.
    async fn progress_notify(&self) -> Result<(), ()> {
        let target = self.hub.current();
        for (id, w) in &self.watchers {
            if w.progress_notify && w.next > target {
                self.send(WatchResponse {
                    header: self.header(target),
                    watch_id: *id,
                    ..Default::default()
                })
                .await?;
            }
        }
        Ok(())
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        let m = crate::metrics::mvcc();
        m.watcher_total.sub(self.watchers.len() as i64);
        m.watch_stream_total.dec();
    }
}
