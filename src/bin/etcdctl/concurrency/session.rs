//! clientv3's `concurrency.Session`: a lease granted for the session and
//! kept alive in the background; the session is over when the keep-alive
//! gives up (the lease expired or was revoked).

use std::time::Duration;

use tokio::sync::oneshot;

use rsetcd::proto::etcdserverpb::lease_client::LeaseClient;
use rsetcd::proto::etcdserverpb::LeaseGrantRequest;

use crate::global::{RpcError, SharedClient};
use crate::lessor;

/// The TTL of a session that asks for none (or for a non-positive one).
pub const DEFAULT_TTL: i64 = 60;

pub struct Session {
    lease: i64,
    ended: oneshot::Receiver<()>,
}

impl Session {
    /// Grants the session's lease with `ttl` seconds and starts keeping it
    /// alive; `first_timeout` bounds the wait for the first renewal.
    pub async fn new(
        client: &SharedClient,
        ttl: i64,
        first_timeout: Duration,
    ) -> Result<Session, RpcError> {
        let ttl = if ttl > 0 { ttl } else { DEFAULT_TTL };
        let grant = client
            .lock()
            .await
            .call(
                LeaseGrantRequest { ttl, id: 0 },
                true,
                |channel, req| async move { LeaseClient::new(channel).lease_grant(req).await },
            )
            .await?;
        let mut renewals = lessor::keep_alive(client.clone(), grant.id, first_timeout);
        let (ended_tx, ended) = oneshot::channel();
        tokio::spawn(async move {
            while renewals.recv().await.is_some() {}
            let _ = ended_tx.send(());
        });
        Ok(Session {
            lease: grant.id,
            ended,
        })
    }

    /// The session's lease ID.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// Resolves when the lease is no longer kept alive.
    pub async fn done(&mut self) {
        let _ = (&mut self.ended).await;
    }
}

/// A lease ID as Go's `%x` prints it into lock and election keys.
pub fn lease_hex(lease: i64) -> String {
    if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    }
}
