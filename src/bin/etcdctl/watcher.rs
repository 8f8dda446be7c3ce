//! clientv3's watcher, as etcdctl uses it: many watches share one gRPC
//! Watch stream; creations go out one at a time; each watch gets its
//! responses on its own channel; a broken stream is reopened and every
//! watch resumed from the revision after the last one it saw; errors that
//! will not go away (clientv3's "halt" errors) end every watch with a
//! canceled response carrying the error.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Code, Status};

use rsetcd::client::status_text;
use rsetcd::proto::etcdserverpb::watch_client::WatchClient;
use rsetcd::proto::etcdserverpb::watch_request::RequestUnion;
use rsetcd::proto::etcdserverpb::{
    ResponseHeader, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest,
    WatchResponse as PbWatchResponse,
};
use rsetcd::proto::mvccpb::Event;

use crate::global::SharedClient;

/// The watch ID etcd uses for "no watch": a failed creation (etcd 3.3) and
/// progress responses meant for every watch on the stream.
const INVALID_WATCH_ID: i64 = -1;

/// grpc's backoff between attempts to reopen an unavailable stream.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// The error etcd's client gives a watch the server cancelled for
/// compaction.
pub const ERR_COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const ERR_FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
const ERR_NO_LEADER: &str = "etcdserver: no leader";

/// clientv3's `WatchResponse`: what one watch sees.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatchResponse {
    pub header: ResponseHeader,
    pub events: Vec<Event>,
    /// Whether `events` is Go's nil slice (a response the client made up)
    /// rather than an empty one (anything the server sent).
    pub events_nil: bool,
    pub compact_revision: i64,
    pub canceled: bool,
    pub created: bool,
    /// Why the stream ended for this watch (clientv3's `closeErr`).
    pub close_error: Option<String>,
    cancel_reason: String,
}

impl WatchResponse {
    fn from_server(resp: &PbWatchResponse) -> Self {
        WatchResponse {
            header: resp.header.unwrap_or_default(),
            events: resp.events.clone(),
            events_nil: false,
            compact_revision: resp.compact_revision,
            canceled: resp.canceled,
            created: resp.created,
            close_error: None,
            cancel_reason: resp.cancel_reason.clone(),
        }
    }

    /// The final response of a watch whose stream failed for good.
    fn closed(error: String) -> Self {
        WatchResponse {
            events_nil: true,
            canceled: true,
            close_error: Some(error),
            ..WatchResponse::default()
        }
    }

    /// clientv3's `Err()`: why this response ends the watch, if it does.
    pub fn err(&self) -> Option<String> {
        if let Some(error) = &self.close_error {
            return Some(error.clone());
        }
        if self.compact_revision != 0 {
            return Some(ERR_COMPACTED.to_string());
        }
        if self.canceled {
            if self.cancel_reason.is_empty() {
                return Some(ERR_FUTURE_REV.to_string());
            }
            let status = Status::failed_precondition(self.cancel_reason.clone());
            return Some(status_text(&status));
        }
        None
    }

    /// A progress notification: no events, only a revision.
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty()
            && !self.canceled
            && !self.created
            && self.compact_revision == 0
            && self.header.revision != 0
    }
}

/// The responses of one watch; dropping it cancels the watch.
pub struct WatchChannel {
    id: u64,
    responses: mpsc::UnboundedReceiver<WatchResponse>,
    control: mpsc::UnboundedSender<Control>,
}

impl WatchChannel {
    /// The next response; `None` once the watch is over.
    pub async fn recv(&mut self) -> Option<WatchResponse> {
        self.responses.recv().await
    }
}

impl Drop for WatchChannel {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Cancel(self.id));
    }
}

enum Control {
    Watch(Watch),
    Progress,
    Cancel(u64),
}

/// A handle on the shared Watch stream.
pub struct Watcher {
    control: mpsc::UnboundedSender<Control>,
    next_id: u64,
}

impl Watcher {
    /// Starts the stream's task. `require_leader` is clientv3's
    /// `WithRequireLeader` context.
    pub fn new(client: SharedClient, require_leader: bool) -> Self {
        let (control, requests) = mpsc::unbounded_channel();
        let stream = WatchStream {
            client,
            require_leader,
            control: requests,
            watching: HashMap::new(),
            resuming: VecDeque::new(),
            cancel_set: HashSet::new(),
            outgoing: None,
        };
        tokio::spawn(stream.run());
        Watcher {
            control,
            next_id: 0,
        }
    }

    /// Starts a watch (clientv3's `Watch`).
    pub fn watch(&mut self, request: WatchCreateRequest) -> WatchChannel {
        self.next_id += 1;
        let (out, responses) = mpsc::unbounded_channel();
        let watch = Watch {
            id: self.next_id,
            next_revision: request.start_revision,
            request,
            out,
            awaiting_first_creation: true,
        };
        let _ = self.control.send(Control::Watch(watch));
        WatchChannel {
            id: self.next_id,
            responses,
            control: self.control.clone(),
        }
    }

    /// Asks the server for a progress notification on every watch.
    pub fn request_progress(&self) {
        let _ = self.control.send(Control::Progress);
    }
}

/// One watch on the stream (clientv3's `watcherStream`).
struct Watch {
    id: u64,
    request: WatchCreateRequest,
    /// Where the watch resumes after the stream is reopened.
    next_revision: i64,
    out: mpsc::UnboundedSender<WatchResponse>,
    awaiting_first_creation: bool,
}

impl Watch {
    fn create_request(&self) -> WatchRequest {
        let mut create = self.request.clone();
        create.start_revision = self.next_revision;
        WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create)),
        }
    }

    /// Hands a response to the subscriber; false once it has gone.
    fn deliver(&self, response: WatchResponse) -> bool {
        self.out.send(response).is_ok()
    }
}

/// How a stream ended.
enum StreamEnd {
    /// The watcher handle is gone, or the stream cannot be reopened.
    Finished,
    /// The last watch ended; the stream closes until the next one.
    Idle,
    /// The stream failed; reopen it.
    Broken(Option<Status>),
}

/// The task that owns the gRPC stream (clientv3's `watchGrpcStream`).
struct WatchStream {
    client: SharedClient,
    require_leader: bool,
    control: mpsc::UnboundedReceiver<Control>,
    /// Established watches by the server's watch ID.
    watching: HashMap<i64, Watch>,
    /// Watches waiting for their creation; the head's request is in flight.
    resuming: VecDeque<Option<Watch>>,
    /// Watch IDs a cancel was sent for.
    cancel_set: HashSet<i64>,
    outgoing: Option<mpsc::UnboundedSender<WatchRequest>>,
}

impl WatchStream {
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(1);
        loop {
            // Open the stream only when there is something to send on it.
            if self.is_idle() {
                match self.control.recv().await {
                    Some(control) => self.handle_control(control),
                    None => return,
                }
                continue;
            }
            match self.serve().await {
                StreamEnd::Finished => return,
                StreamEnd::Idle => {
                    self.outgoing = None;
                    self.resuming.clear();
                }
                StreamEnd::Broken(status) => {
                    if let Some(status) = &status {
                        if is_halt_error(status) || status.message() == ERR_NO_LEADER {
                            self.close_all(status_text(status));
                            return;
                        }
                        if status.code() == Code::Unavailable {
                            backoff = (backoff + backoff / 4).min(MAX_BACKOFF);
                        }
                    }
                    tokio::time::sleep(backoff).await;
                    self.client.lock().await.reconnect();
                    self.prepare_resume();
                }
            }
        }
    }

    /// Opens the stream and serves it until it ends.
    async fn serve(&mut self) -> StreamEnd {
        let (outgoing, requests) = mpsc::unbounded_channel();
        self.outgoing = Some(outgoing);
        self.send_next_creation();
        let (channel, request) = {
            let mut client = self.client.lock().await;
            let channel = match client.connection().await {
                Ok(channel) => channel,
                Err(err) => {
                    drop(client);
                    self.close_all(err.text);
                    return StreamEnd::Finished;
                }
            };
            let request =
                client.stream_request(UnboundedReceiverStream::new(requests), self.require_leader);
            (channel, request)
        };
        let mut inbound = match WatchClient::new(channel).watch(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return StreamEnd::Broken(Some(status)),
        };
        loop {
            tokio::select! {
                control = self.control.recv() => match control {
                    Some(control) => self.handle_control(control),
                    None => return StreamEnd::Finished,
                },
                message = inbound.message() => match message {
                    Ok(Some(response)) => self.handle_response(response),
                    Ok(None) => return StreamEnd::Broken(None),
                    Err(status) => return StreamEnd::Broken(Some(status)),
                },
            }
            if self.is_idle() {
                return StreamEnd::Idle;
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.watching.is_empty() && self.resuming.iter().all(Option::is_none)
    }

    fn send(&self, request: WatchRequest) {
        if let Some(outgoing) = &self.outgoing {
            let _ = outgoing.send(request);
        }
    }

    /// Sends the creation request of the first live watch in the queue,
    /// dropping the cancelled ones ahead of it.
    fn send_next_creation(&mut self) {
        while let Some(None) = self.resuming.front() {
            self.resuming.pop_front();
        }
        if let Some(Some(watch)) = self.resuming.front() {
            self.send(watch.create_request());
        }
    }

    fn handle_control(&mut self, control: Control) {
        match control {
            Control::Watch(watch) => {
                self.resuming.push_back(Some(watch));
                if self.resuming.len() == 1 {
                    self.send_next_creation();
                }
            }
            Control::Progress => self.send(WatchRequest {
                request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
            }),
            Control::Cancel(id) => {
                if let Some(server_id) = self
                    .watching
                    .iter()
                    .find(|(_, w)| w.id == id)
                    .map(|(server_id, _)| *server_id)
                {
                    self.watching.remove(&server_id);
                    self.send_cancel(server_id);
                    return;
                }
                // A watch still waiting for creation: the head's creation
                // is in flight, so leave its place and cancel on arrival.
                for slot in self.resuming.iter_mut() {
                    if slot.as_ref().is_some_and(|w| w.id == id) {
                        *slot = None;
                    }
                }
            }
        }
    }

    fn send_cancel(&mut self, server_id: i64) {
        self.cancel_set.insert(server_id);
        self.send(WatchRequest {
            request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
                watch_id: server_id,
            })),
        });
    }

    fn handle_response(&mut self, response: PbWatchResponse) {
        if response.created {
            self.handle_created(&response);
            return;
        }
        if response.canceled && response.compact_revision == 0 {
            // The server ended the watch; its channel closes without a word.
            self.cancel_set.remove(&response.watch_id);
            self.watching.remove(&response.watch_id);
            return;
        }
        let wr = WatchResponse::from_server(&response);
        if wr.is_progress_notify() && response.watch_id == INVALID_WATCH_ID {
            let ids: Vec<i64> = self.watching.keys().copied().collect();
            for id in ids {
                self.dispatch(id, wr.clone());
            }
            return;
        }
        if !self.watching.contains_key(&response.watch_id) {
            if !self.cancel_set.contains(&response.watch_id) {
                self.send_cancel(response.watch_id);
            }
            return;
        }
        self.dispatch(response.watch_id, wr);
    }

    fn handle_created(&mut self, response: &PbWatchResponse) {
        let head = self.resuming.pop_front();
        match head {
            Some(Some(mut watch)) => {
                if response.watch_id == INVALID_WATCH_ID
                    || (response.canceled && !response.cancel_reason.is_empty())
                {
                    watch.deliver(WatchResponse::closed(response.cancel_reason.clone()));
                } else {
                    if watch.awaiting_first_creation {
                        watch.awaiting_first_creation = false;
                        // A watch from "now" resumes at the revision it
                        // was created at.
                        if watch.request.start_revision == 0 {
                            watch.next_revision =
                                response.header.as_ref().map_or(0, |h| h.revision);
                        }
                    }
                    self.watching.insert(response.watch_id, watch);
                }
            }
            Some(None) if response.watch_id != INVALID_WATCH_ID => {
                self.send_cancel(response.watch_id);
            }
            _ => {}
        }
        self.send_next_creation();
    }

    /// Hands a response to one watch, tracking where it would resume; a
    /// response that ends the watch closes its channel.
    fn dispatch(&mut self, server_id: i64, wr: WatchResponse) {
        let Some(watch) = self.watching.get_mut(&server_id) else {
            return;
        };
        watch.next_revision = match wr.events.last() {
            Some(last) => last.kv.as_ref().map_or(0, |kv| kv.mod_revision) + 1,
            None => wr.header.revision,
        };
        let ends = wr.err().is_some();
        if !watch.deliver(wr) {
            self.watching.remove(&server_id);
            self.send_cancel(server_id);
            return;
        }
        if ends {
            self.watching.remove(&server_id);
        }
    }

    /// After a broken stream: every watch queues for creation again.
    fn prepare_resume(&mut self) {
        self.outgoing = None;
        self.cancel_set.clear();
        let mut established: Vec<Watch> = self.watching.drain().map(|(_, w)| w).collect();
        established.sort_by_key(|w| w.id);
        self.resuming.extend(established.into_iter().map(Some));
    }

    /// Ends every watch with `error` (clientv3's `closeErr`).
    fn close_all(&mut self, error: String) {
        for (_, watch) in self.watching.drain() {
            watch.deliver(WatchResponse::closed(error.clone()));
        }
        for watch in self.resuming.drain(..).flatten() {
            watch.deliver(WatchResponse::closed(error.clone()));
        }
    }
}

/// clientv3's `isHaltErr`: a failure retrying will not fix. Unavailable
/// and Internal mean the connection broke, and so does a status tonic made
/// from a transport error (it carries the error as its source, where grpc-go
/// would say Unavailable); anything else is the server's final answer.
pub fn is_halt_error(status: &Status) -> bool {
    use std::error::Error as _;
    let transport_failure = status.source().is_some();
    !transport_failure && !matches!(status.code(), Code::Unavailable | Code::Internal)
}
