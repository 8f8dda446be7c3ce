//! clientv3's lease keep-alive, as etcdctl and its sessions use it: a
//! LeaseKeepAlive stream that renews the lease right away and then a third
//! of its TTL after each answer (every half second while unanswered),
//! reopens the stream whenever it breaks, and gives up when the lease is
//! gone (TTL 0) or no answer came within the lease's TTL.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Status;

use rsetcd::client::status_text;
use rsetcd::proto::etcdserverpb::lease_client::LeaseClient;
use rsetcd::proto::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse};

use crate::exit::EXIT_ERROR;
use crate::global::{ClientConfig, RpcError, SharedClient};
use crate::watcher::is_halt_error;

/// clientv3's `retryConnWait`: the pause before reopening a broken stream,
/// and between renewals that got no answer.
const RETRY_WAIT: Duration = Duration::from_millis(500);

/// What clientv3 says when a lease is not there.
const ERR_LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";

/// How long clientv3 waits for the first answer, before the lease's TTL is
/// known: the dial timeout and a second, or 5 s without a dial timeout.
pub fn first_keep_alive_timeout(config: &ClientConfig) -> Duration {
    let timeout = config.dial_timeout + Duration::from_secs(1);
    if timeout == Duration::from_secs(1) {
        Duration::from_secs(5)
    } else {
        timeout
    }
}

/// Keeps lease `id` alive (clientv3's `KeepAlive`); every answer comes out
/// of the channel, which closes when the lease expires or is revoked.
pub fn keep_alive(
    client: SharedClient,
    id: i64,
    first_timeout: Duration,
) -> mpsc::UnboundedReceiver<LeaseKeepAliveResponse> {
    let (out, responses) = mpsc::unbounded_channel();
    let keeper = KeepAlive {
        client,
        id,
        out,
        deadline: Instant::now() + first_timeout,
        next_renewal: Instant::now(),
    };
    tokio::spawn(keeper.run());
    responses
}

struct KeepAlive {
    client: SharedClient,
    id: i64,
    out: mpsc::UnboundedSender<LeaseKeepAliveResponse>,
    /// When the lease is given up for lack of answers.
    deadline: Instant,
    next_renewal: Instant,
}

/// A renewal stream, once open.
type Opened = (
    mpsc::UnboundedSender<LeaseKeepAliveRequest>,
    tonic::Streaming<LeaseKeepAliveResponse>,
);

impl KeepAlive {
    async fn run(mut self) {
        while self.serve_stream().await {
            tokio::select! {
                () = tokio::time::sleep(RETRY_WAIT) => {}
                () = tokio::time::sleep_until(self.deadline) => return,
            }
        }
    }

    /// Runs one stream until it breaks (true: try again) or the lease is
    /// over (false).
    async fn serve_stream(&mut self) -> bool {
        let out = self.out.clone();
        let deadline = self.deadline;
        let opened = tokio::select! {
            opened = self.open_stream() => opened,
            () = tokio::time::sleep_until(deadline) => return false,
            () = out.closed() => return false,
        };
        let (outgoing, mut inbound) = match opened {
            Ok(Some(opened)) => opened,
            Ok(None) => return true,
            Err(_) => return false,
        };
        loop {
            let next_renewal = self.next_renewal;
            let deadline = self.deadline;
            tokio::select! {
                () = tokio::time::sleep_until(next_renewal) => self.renew(&outgoing),
                () = tokio::time::sleep_until(deadline) => return false,
                () = out.closed() => return false,
                message = inbound.message() => match message {
                    Ok(Some(response)) => {
                        if !self.answered(response) {
                            return false;
                        }
                    }
                    Ok(None) | Err(_) => {
                        self.client.lock().await.reconnect();
                        return true;
                    }
                },
            }
        }
    }

    /// Opens a stream, sending the renewal that is due with it; `Ok(None)`
    /// if the server refused the stream, an error if there is no
    /// connection to be had.
    async fn open_stream(&mut self) -> Result<Option<Opened>, RpcError> {
        let (outgoing, requests) = mpsc::unbounded_channel();
        let (channel, request) = {
            let mut client = self.client.lock().await;
            let channel = client.connection().await?;
            // clientv3's lessor runs its streams under WithRequireLeader.
            let request = client.stream_request(UnboundedReceiverStream::new(requests), true);
            (channel, request)
        };
        if self.next_renewal <= Instant::now() {
            self.renew(&outgoing);
        }
        match LeaseClient::new(channel).lease_keep_alive(request).await {
            Ok(response) => Ok(Some((outgoing, response.into_inner()))),
            Err(_) => {
                self.client.lock().await.reconnect();
                Ok(None)
            }
        }
    }

    fn renew(&mut self, outgoing: &mpsc::UnboundedSender<LeaseKeepAliveRequest>) {
        let _ = outgoing.send(LeaseKeepAliveRequest { id: self.id });
        self.next_renewal = Instant::now() + RETRY_WAIT;
    }

    /// Takes an answer; false when the lease is gone.
    fn answered(&mut self, response: LeaseKeepAliveResponse) -> bool {
        if response.id != self.id {
            return true;
        }
        if response.ttl <= 0 {
            return false;
        }
        let ttl = Duration::from_secs(response.ttl.unsigned_abs());
        let now = Instant::now();
        self.next_renewal = now + ttl / 3;
        self.deadline = now + ttl;
        self.out.send(response).is_ok()
    }
}

/// Renews lease `id` once (clientv3's `KeepAliveOnce`): retries while the
/// cluster cannot be reached; a lease that is gone is an error.
pub async fn keep_alive_once(
    client: &SharedClient,
    id: i64,
) -> Result<LeaseKeepAliveResponse, RpcError> {
    loop {
        match keep_alive_once_attempt(client, id).await {
            Ok(response) if response.ttl <= 0 => {
                return Err(RpcError {
                    text: ERR_LEASE_NOT_FOUND.to_string(),
                    exit_code: EXIT_ERROR,
                })
            }
            Ok(response) => return Ok(response),
            Err(Attempt::Failed(err)) => return Err(err),
            Err(Attempt::Halted(status)) if is_halt_error(&status) => {
                return Err(RpcError {
                    text: status_text(&status),
                    exit_code: EXIT_ERROR,
                })
            }
            Err(Attempt::Halted(_) | Attempt::Broken) => {
                client.lock().await.reconnect();
                tokio::time::sleep(RETRY_WAIT).await;
            }
        }
    }
}

enum Attempt {
    /// The connection could not be set up at all.
    Failed(RpcError),
    /// The stream failed with this status.
    Halted(Status),
    /// The stream ended without an answer.
    Broken,
}

async fn keep_alive_once_attempt(
    client: &SharedClient,
    id: i64,
) -> Result<LeaseKeepAliveResponse, Attempt> {
    let (outgoing, requests) = mpsc::unbounded_channel();
    let (channel, request) = {
        let mut client = client.lock().await;
        let channel = client.connection().await.map_err(Attempt::Failed)?;
        let request = client.stream_request(UnboundedReceiverStream::new(requests), false);
        (channel, request)
    };
    let _ = outgoing.send(LeaseKeepAliveRequest { id });
    let mut inbound = LeaseClient::new(channel)
        .lease_keep_alive(request)
        .await
        .map_err(Attempt::Halted)?
        .into_inner();
    match inbound.message().await {
        Ok(Some(response)) => Ok(response),
        Ok(None) => Err(Attempt::Broken),
        Err(status) => Err(Attempt::Halted(status)),
    }
}
