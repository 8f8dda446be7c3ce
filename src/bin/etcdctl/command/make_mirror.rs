//! `etcdctl make-mirror [options] <destination>`: copies the keys under
//! `--prefix` to another cluster and keeps them in sync, as clientv3's
//! mirror package does: read everything at one revision (pages of 1000),
//! put each key to the destination, then watch from the next revision and
//! replay each revision's events there in one transaction. Every 30 s it
//! prints how many keys it has mirrored. It runs until it fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rsetcd::client::prefix_end;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::request_op::Request;
use rsetcd::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest,
};
use rsetcd::proto::mvccpb::event::EventType;

use crate::command::Invocation;
use crate::exit::{CtlResult, ExitError};
use crate::global::{self, Client, ClientConfig};
use crate::tls::{TlsClient, TlsOptions};
use crate::watcher::{Watcher, ERR_COMPACTED};

/// Keys read per page of the initial copy (the mirror package's limit).
const BATCH_LIMIT: i64 = 1000;

/// How often the running count is printed.
const REPORT_INTERVAL: Duration = Duration::from_secs(30);

/// `--prefix`, and what replaces it in the destination's keys.
struct KeyMapping {
    prefix: Vec<u8>,
    dest_prefix: Vec<u8>,
}

impl KeyMapping {
    /// Go's `strings.Replace(key, prefix, destPrefix, 1)`: the first
    /// occurrence of the prefix (an empty prefix matches at the start).
    fn destination_key(&self, key: &[u8]) -> Vec<u8> {
        let at = if self.prefix.is_empty() {
            Some(0)
        } else {
            key.windows(self.prefix.len())
                .position(|w| w == self.prefix.as_slice())
        };
        match at {
            Some(i) => [
                &key[..i],
                self.dest_prefix.as_slice(),
                &key[i + self.prefix.len()..],
            ]
            .concat(),
            None => key.to_vec(),
        }
    }
}

pub async fn run(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args(
            "make-mirror takes one destination argument",
        ));
    }
    let destination = inv.args[0].clone();
    let dest_tls = dest_tls(&inv)?;
    let dest_auth = global::user_and_password(
        &inv.flags.string("dest-user"),
        &inv.flags.string("dest-password"),
        "Destination Password: ",
    )?;
    let (config, _printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let dest_config = ClientConfig {
        endpoints: vec![destination],
        auth: dest_auth,
        tls: dest_tls,
        ..config.clone()
    };

    let prefix = inv.flags.string("prefix").into_bytes();
    let dest_prefix = inv.flags.string("dest-prefix").into_bytes();
    let no_dest_prefix = inv.flags.bool("no-dest-prefix");
    if no_dest_prefix && !dest_prefix.is_empty() {
        return Err(ExitError::bad_args(
            "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one",
        ));
    }
    let mapping = KeyMapping {
        dest_prefix: if !no_dest_prefix && dest_prefix.is_empty() {
            prefix.clone()
        } else {
            dest_prefix
        },
        prefix,
    };

    let total = Arc::new(AtomicU64::new(0));
    let reporter = tokio::spawn(report_progress(Arc::clone(&total)));
    // etcdctl runs the mirror with context.TODO(): no deadline anywhere.
    let result = mirror(
        Client::unbounded(config),
        Client::unbounded(dest_config),
        &mapping,
        &total,
    )
    .await;
    reporter.abort();
    // etcd reports whatever ended the mirror, even a watch that simply
    // closed ("<nil>").
    Err(ExitError::error(
        result.err().unwrap_or_else(|| "<nil>".to_string()),
    ))
}

/// Prints the number of mirrored keys every 30 s.
async fn report_progress(total: Arc<AtomicU64>) {
    loop {
        tokio::time::sleep(REPORT_INTERVAL).await;
        println!("{}", total.load(Ordering::Relaxed));
    }
}

/// The mirror package's `SyncBase` then `SyncUpdates`, applied to the
/// destination. Returns when the watch ends (Ok) or anything fails.
async fn mirror(
    mut source: Client,
    mut dest: Client,
    mapping: &KeyMapping,
    total: &AtomicU64,
) -> Result<(), String> {
    // The revision to copy at: the cluster's current one.
    let probe = RangeRequest {
        key: b"foo".to_vec(),
        ..RangeRequest::default()
    };
    let revision = range(&mut source, probe)
        .await?
        .header
        .map_or(0, |h| h.revision);

    let (mut key, range_end) = if mapping.prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (mapping.prefix.clone(), prefix_end(&mapping.prefix))
    };
    loop {
        let page = range(
            &mut source,
            RangeRequest {
                key: key.clone(),
                range_end: range_end.clone(),
                limit: BATCH_LIMIT,
                revision,
                ..RangeRequest::default()
            },
        )
        .await?;
        for kv in &page.kvs {
            let request = PutRequest {
                key: mapping.destination_key(&kv.key),
                value: kv.value.clone(),
                ..PutRequest::default()
            };
            dest.call(request, false, |channel, req| async move {
                KvClient::new(channel).put(req).await
            })
            .await
            .map_err(|err| err.text)?;
            total.fetch_add(1, Ordering::Relaxed);
        }
        match page.kvs.last() {
            Some(last) if page.more => {
                key = last.key.clone();
                key.push(0);
            }
            _ => break,
        }
    }

    let (watch_key, watch_end) = if mapping.prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (mapping.prefix.clone(), prefix_end(&mapping.prefix))
    };
    let mut watcher = Watcher::new(source.shared(), false);
    let mut updates = watcher.watch(WatchCreateRequest {
        key: watch_key,
        range_end: watch_end,
        start_revision: revision + 1,
        ..WatchCreateRequest::default()
    });
    while let Some(response) = updates.recv().await {
        if response.compact_revision != 0 {
            return Err(ERR_COMPACTED.to_string());
        }
        // One destination txn per source revision.
        let mut ops = Vec::new();
        let mut last_revision = 0;
        for event in &response.events {
            let Some(kv) = &event.kv else { continue };
            if last_revision != 0 && kv.mod_revision > last_revision {
                commit(&mut dest, std::mem::take(&mut ops)).await?;
            }
            last_revision = kv.mod_revision;
            let key = mapping.destination_key(&kv.key);
            let request = if event.r#type == EventType::Delete as i32 {
                Request::RequestDeleteRange(DeleteRangeRequest {
                    key,
                    ..DeleteRangeRequest::default()
                })
            } else {
                Request::RequestPut(PutRequest {
                    key,
                    value: kv.value.clone(),
                    ..PutRequest::default()
                })
            };
            ops.push(RequestOp {
                request: Some(request),
            });
            total.fetch_add(1, Ordering::Relaxed);
        }
        if !ops.is_empty() {
            commit(&mut dest, ops).await?;
        }
    }
    Ok(())
}

async fn range(
    client: &mut Client,
    request: RangeRequest,
) -> Result<rsetcd::proto::etcdserverpb::RangeResponse, String> {
    client
        .call(request, true, |channel, req| async move {
            KvClient::new(channel).range(req).await
        })
        .await
        .map_err(|err| err.text)
}

async fn commit(dest: &mut Client, ops: Vec<RequestOp>) -> Result<(), String> {
    let request = TxnRequest {
        success: ops,
        ..TxnRequest::default()
    };
    dest.call(request, false, |channel, req| async move {
        KvClient::new(channel).txn(req).await
    })
    .await
    .map(|_| ())
    .map_err(|err| err.text)
}

/// The destination's TLS from the `--dest-*` flags (etcdctl gives the
/// destination no `--insecure-skip-tls-verify`).
fn dest_tls(inv: &Invocation) -> CtlResult<Option<TlsClient>> {
    let flags = &inv.flags;
    let options = TlsOptions {
        cert: flags.string("dest-cert"),
        key: flags.string("dest-key"),
        cacert: flags.string("dest-cacert"),
        insecure_transport: flags.bool("dest-insecure-transport"),
        insecure_skip_verify: false,
    };
    options.load().map_err(ExitError::bad_args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(prefix: &str, dest: &str) -> KeyMapping {
        KeyMapping {
            prefix: prefix.as_bytes().to_vec(),
            dest_prefix: dest.as_bytes().to_vec(),
        }
    }

    #[test]
    fn keys_map_like_strings_replace() {
        assert_eq!(mapping("a/", "b/").destination_key(b"a/x"), b"b/x");
        assert_eq!(mapping("a/", "").destination_key(b"a/x"), b"x");
        assert_eq!(mapping("", "m/").destination_key(b"x"), b"m/x");
        assert_eq!(mapping("", "").destination_key(b"x"), b"x");
        // The first occurrence, wherever it is.
        assert_eq!(mapping("a", "z").destination_key(b"bab"), b"bzb");
    }
}
