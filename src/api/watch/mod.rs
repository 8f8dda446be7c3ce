//! The Watch service: one `api::watch::stream::WatchStream` task per client
//! stream, answering through a bounded channel.

pub mod stream;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::etcdserverpb::{watch_server::Watch, WatchRequest, WatchResponse};
use crate::server::EtcdServer;
use stream::WatchStream;

/// Responses buffered per stream before the stream task waits for the
/// client: a slow client slows only itself.
const STREAM_BUFFER: usize = 64;

pub struct WatchService {
    server: Arc<EtcdServer>,
}

impl WatchService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        WatchService { server }
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.server.refuse_learner()?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let credential = super::auth::credential(&self.server, &req).await;
        let stream = WatchStream::new(self.server.clone(), self.server.hub().clone(), tx)
            .with_credential(credential);
        let interval = self.server.watch_progress_interval();
        tokio::spawn(stream.run(req.into_inner(), interval));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
