//! clientv3's `concurrency.Election`: candidates put `<name>/<lease>` with
//! their proposal; the oldest key is the leader. Observers follow the
//! leader key's values.

use tokio::sync::mpsc;

use rsetcd::client::prefix_end;
use rsetcd::proto::etcdserverpb::range_request::SortOrder;
use rsetcd::proto::etcdserverpb::request_op::Request;
use rsetcd::proto::etcdserverpb::response_op::Response;
use rsetcd::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest,
    WatchCreateRequest,
};
use rsetcd::proto::mvccpb::event::EventType;

use super::session::{lease_hex, Session};
use super::{by_creation, create_revision_is, range, txn, wait_deletes};
use crate::global::{RpcError, SharedClient};
use crate::watcher::Watcher;

const ERR_NOT_LEADER: &str = "election: not leader";

pub struct Election {
    lease: i64,
    prefix: Vec<u8>,
    leader_key: Vec<u8>,
    leader_revision: i64,
    /// Whether we have a key in the election (clientv3's leaderSession).
    campaigning: bool,
}

impl Election {
    pub fn new(session: &Session, name: &str) -> Self {
        Election {
            lease: session.lease(),
            prefix: format!("{name}/").into_bytes(),
            leader_key: Vec::new(),
            leader_revision: 0,
            campaigning: false,
        }
    }

    /// Puts our proposal and waits until every older candidate is gone.
    pub async fn campaign(
        &mut self,
        client: &SharedClient,
        watcher: &mut Watcher,
        value: &[u8],
    ) -> Result<(), RpcError> {
        let mut key = self.prefix.clone();
        key.extend(lease_hex(self.lease).into_bytes());
        let request = TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: key.clone(),
                    value: value.to_vec(),
                    lease: self.lease,
                    ..PutRequest::default()
                })),
            }],
            failure: vec![RequestOp {
                request: Some(Request::RequestRange(RangeRequest {
                    key: key.clone(),
                    ..RangeRequest::default()
                })),
            }],
        };
        let response = txn(client, request).await?;
        self.leader_key = key;
        self.leader_revision = response.header.as_ref().map_or(0, |h| h.revision);
        self.campaigning = true;
        if !response.succeeded {
            let existing = match response.responses.first().and_then(|r| r.response.as_ref()) {
                Some(Response::ResponseRange(range)) => range.kvs.first().cloned(),
                _ => None,
            };
            let Some(kv) = existing else {
                self.campaigning = false;
                return Err(RpcError::new(ERR_NOT_LEADER));
            };
            self.leader_revision = kv.create_revision;
            if kv.value != value {
                if let Err(err) = self.proclaim(client, value).await {
                    let _ = self.resign(client).await;
                    return Err(err);
                }
            }
        }
        if let Err(err) =
            wait_deletes(client, watcher, &self.prefix, self.leader_revision - 1).await
        {
            self.campaigning = false;
            return Err(err);
        }
        Ok(())
    }

    /// Whether we put a key in the election, so that an abandoned campaign
    /// must resign.
    pub fn is_campaigning(&self) -> bool {
        self.campaigning
    }

    /// Announces a new value while leader.
    async fn proclaim(&mut self, client: &SharedClient, value: &[u8]) -> Result<(), RpcError> {
        let request = TxnRequest {
            compare: vec![create_revision_is(&self.leader_key, self.leader_revision)],
            success: vec![RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: self.leader_key.clone(),
                    value: value.to_vec(),
                    lease: self.lease,
                    ..PutRequest::default()
                })),
            }],
            failure: Vec::new(),
        };
        let response = txn(client, request).await?;
        if !response.succeeded {
            self.leader_key.clear();
            return Err(RpcError::new(ERR_NOT_LEADER));
        }
        Ok(())
    }

    /// Gives up leadership (or candidacy) by deleting our key if it is
    /// still the one we created.
    pub async fn resign(&mut self, client: &SharedClient) -> Result<(), RpcError> {
        if !self.campaigning {
            return Ok(());
        }
        let request = TxnRequest {
            compare: vec![create_revision_is(&self.leader_key, self.leader_revision)],
            success: vec![RequestOp {
                request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                    key: self.leader_key.clone(),
                    ..DeleteRangeRequest::default()
                })),
            }],
            failure: Vec::new(),
        };
        let result = txn(client, request).await;
        self.leader_key.clear();
        self.campaigning = false;
        result.map(|_| ())
    }

    /// Our key while campaigning.
    pub fn key(&self) -> &[u8] {
        &self.leader_key
    }
}

/// Follows the election `name`: every leader and each new value of the
/// leader's key, as a get response with that one key. The channel closes
/// if following fails.
pub fn observe(client: SharedClient, name: &str) -> mpsc::UnboundedReceiver<RangeResponse> {
    let (out, leaders) = mpsc::unbounded_channel();
    let prefix = format!("{name}/").into_bytes();
    tokio::spawn(async move {
        let mut watcher = Watcher::new(client.clone(), false);
        let _ = follow(&client, &mut watcher, &prefix, &out).await;
    });
    leaders
}

/// The loop of clientv3's `observe`; returns when it cannot go on.
async fn follow(
    client: &SharedClient,
    watcher: &mut Watcher,
    prefix: &[u8],
    out: &mpsc::UnboundedSender<RangeResponse>,
) -> Option<()> {
    loop {
        let first = range(client, by_creation(prefix, SortOrder::Ascend))
            .await
            .ok()?;
        let (header, kv) = match first.kvs.first() {
            Some(kv) => (first.header.unwrap_or_default(), kv.clone()),
            None => {
                // No leader yet: wait for the first key put under the prefix.
                let mut watch = watcher.watch(WatchCreateRequest {
                    key: prefix.to_vec(),
                    range_end: prefix_end(prefix),
                    start_revision: first.header.as_ref().map_or(0, |h| h.revision),
                    ..WatchCreateRequest::default()
                });
                loop {
                    let response = watch.recv().await?;
                    if response.err().is_some() {
                        return None;
                    }
                    let put = response
                        .events
                        .iter()
                        .find(|e| e.r#type == EventType::Put as i32)
                        .and_then(|e| e.kv.clone());
                    if let Some(kv) = put {
                        let mut header = response.header;
                        header.revision = kv.mod_revision;
                        break (header, kv);
                    }
                }
            }
        };
        let revision = header.revision;
        let key = kv.key.clone();
        out.send(RangeResponse {
            header: Some(header),
            kvs: vec![kv],
            ..RangeResponse::default()
        })
        .ok()?;
        let mut watch = watcher.watch(WatchCreateRequest {
            key,
            start_revision: revision + 1,
            ..WatchCreateRequest::default()
        });
        'leader: loop {
            let response = watch.recv().await?;
            for event in &response.events {
                if event.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                out.send(RangeResponse {
                    header: Some(response.header),
                    kvs: event.kv.clone().into_iter().collect(),
                    ..RangeResponse::default()
                })
                .ok()?;
            }
        }
    }
}
