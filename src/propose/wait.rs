//! Waiters for proposed requests, keyed by request id. The API registers a
//! waiter before proposing; the apply thread wakes it with the result. A
//! waiter whose request timed out is removed by the API, and a late result
//! is dropped.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::ProposeResult;

/// Shards keep concurrent registrations off one lock.
const SHARDS: usize = 32;

pub struct Wait {
    shards: Vec<Mutex<HashMap<u64, oneshot::Sender<ProposeResult>>>>,
}

impl Default for Wait {
    fn default() -> Self {
        Wait {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Wait {
    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, oneshot::Sender<ProposeResult>>> {
        &self.shards[(id as usize) % SHARDS]
    }

    pub fn register(&self, id: u64) -> oneshot::Receiver<ProposeResult> {
        let (tx, rx) = oneshot::channel();
        // std Mutex: held for a map operation only, never across an await.
        self.shard(id).lock().expect("wait lock").insert(id, tx);
        rx
    }

    pub fn trigger(&self, id: u64, result: ProposeResult) {
        let tx = self.shard(id).lock().expect("wait lock").remove(&id);
        if let Some(tx) = tx {
            let _ = tx.send(result);
        }
    }

    pub fn cancel(&self, id: u64) {
        self.shard(id).lock().expect("wait lock").remove(&id);
    }
}
