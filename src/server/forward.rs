//! Requests only the leader can answer (lease keep-alive and time-to-live:
//! only the leader runs lease clocks) are forwarded by followers to the
//! leader's client URL, over one cached connection per leader.

use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::{Error, EtcdServer};

#[derive(Default)]
pub struct LeaderChannel {
    /// (leader id, its client URL, the connection)
    cached: Mutex<Option<(u64, String, Channel)>>,
}

impl EtcdServer {
    /// A connection to the current leader's client URL.
    pub async fn leader_channel(&self) -> Result<Channel, Error> {
        let leader = self.wait_leader().await?;
        let url = self
            .membership
            .member(leader)
            .and_then(|m| m.client_urls.first().cloned())
            .ok_or(Error::NoLeader)?;
        if let Some((id, u, c)) = &*self.leader_channel.cached.lock().expect("leader channel") {
            if *id == leader && *u == url {
                return Ok(c.clone());
            }
        }
        // Connected lazily: the first request through it connects.
        let channel = Endpoint::from_shared(url.clone())
            .map_err(|_| Error::NoLeader)?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect_lazy();
        *self.leader_channel.cached.lock().expect("leader channel") =
            Some((leader, url, channel.clone()));
        Ok(channel)
    }
}
