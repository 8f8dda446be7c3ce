//! Crash safety: 16 clients write distinct keys while the server is killed
//! with SIGKILL; after a restart on the same data dir every acknowledged
//! write must be there with exactly the revision it was acknowledged with,
//! and the revisions of all writes must run without gaps or reuse. Three
//! kill/restart cycles in one test, each adding writes on top of the last.

use crate::support;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use rsetcd::proto::etcdserverpb::{PutRequest, RangeRequest};
use support::kv::{Flavor, Server};

const CLIENTS: usize = 16;
const CYCLES: usize = 3;
/// Writes that may not fail before the kill are given this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A write the server acknowledged.
#[derive(Debug, Clone)]
struct Ack {
    key: String,
    value: String,
    revision: i64,
}

/// Every key is written once, with a value derived from the key, so any
/// key found after a crash can be checked, acknowledged or not.
fn value_of(key: &str) -> String {
    format!("value-of-{key}")
}

/// What one client did in one cycle.
#[derive(Default)]
struct ClientLog {
    acks: Vec<Ack>,
    /// A failure before the kill: the server should not fail any write then.
    early_error: Option<String>,
}

/// Puts new keys back to back until a put fails; failures after `killed`
/// is set are the expected end.
async fn client(server_url: String, cycle: usize, id: usize, killed: Arc<AtomicBool>) -> ClientLog {
    let mut log = ClientLog::default();
    let mut kv = match rsetcd::proto::etcdserverpb::kv_client::KvClient::connect(server_url).await {
        Ok(kv) => kv,
        Err(e) => {
            log.early_error = Some(format!("client {id}: connect: {e}"));
            return log;
        }
    };
    for seq in 0.. {
        let key = format!("crash/{cycle}/{id:02}/{seq:06}");
        let value = value_of(&key);
        let put = PutRequest {
            key: key.clone().into_bytes(),
            value: value.clone().into_bytes(),
            ..Default::default()
        };
        let result = tokio::time::timeout(WRITE_TIMEOUT, kv.put(put)).await;
        match result {
            Ok(Ok(resp)) => {
                let Some(header) = resp.into_inner().header else {
                    log.early_error =
                        Some(format!("client {id}: put {key} answered without a header"));
                    return log;
                };
                log.acks.push(Ack {
                    key,
                    value,
                    revision: header.revision,
                });
            }
            Ok(Err(status)) if !killed.load(Ordering::SeqCst) => {
                log.early_error = Some(format!("client {id}: put {key}: {status:?}"));
                return log;
            }
            Err(_) if !killed.load(Ordering::SeqCst) => {
                log.early_error = Some(format!(
                    "client {id}: put {key}: no answer in {WRITE_TIMEOUT:?}"
                ));
                return log;
            }
            _ => return log,
        }
    }
    log
}

/// Checks the restarted store against everything acknowledged so far.
/// Returns the store's current revision.
async fn verify(server: &Server, acked: &[Ack]) -> anyhow::Result<i64> {
    let mut kv = server.kv().await?;
    let all = kv
        .range(RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        })
        .await
        .context("range over all keys after restart")?
        .into_inner();
    let current = all.header.map(|h| h.revision).unwrap_or(0);
    let stored: BTreeMap<String, _> = all
        .kvs
        .into_iter()
        .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv))
        .collect();

    // Every acknowledged write is there, exactly as acknowledged.
    for ack in acked {
        let Some(kv) = stored.get(&ack.key) else {
            bail!(
                "acknowledged write lost: {} at revision {}",
                ack.key,
                ack.revision
            );
        };
        ensure!(
            kv.value == ack.value.as_bytes()
                && kv.mod_revision == ack.revision
                && kv.create_revision == ack.revision
                && kv.version == 1,
            "acknowledged write {} at revision {} reads back as {:?}",
            ack.key,
            ack.revision,
            kv
        );
    }

    // No revision was handed out twice...
    let distinct: HashSet<i64> = acked.iter().map(|a| a.revision).collect();
    ensure!(
        distinct.len() == acked.len(),
        "{} acknowledged writes share {} revisions",
        acked.len(),
        distinct.len()
    );
    let max_acked = acked.iter().map(|a| a.revision).max().unwrap_or(1);
    ensure!(
        current >= max_acked,
        "store is at revision {current}, below the acknowledged revision {max_acked}"
    );

    // ...and none is missing: each write made one key, so the keys'
    // revisions are exactly 2..=current (revision 1 is the empty store).
    let mut revisions: Vec<i64> = stored.values().map(|kv| kv.mod_revision).collect();
    revisions.sort_unstable();
    let expected: Vec<i64> = (2..=current).collect();
    if revisions != expected {
        let have: HashSet<i64> = revisions.iter().copied().collect();
        let missing: Vec<i64> = expected
            .iter()
            .filter(|r| !have.contains(r))
            .take(10)
            .copied()
            .collect();
        bail!(
            "store at revision {current} holds {} keys; revisions missing (first 10): {missing:?}",
            revisions.len()
        );
    }
    for (key, kv) in &stored {
        ensure!(
            kv.value == value_of(key).as_bytes(),
            "key {key} holds a value that was never written: {:?}",
            String::from_utf8_lossy(&kv.value)
        );
    }
    Ok(current)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut server = Server::start(Flavor::Ours, &tmp.path().join("data"), &[]).await?;
    kill_cycles(&mut server, || Ok(())).await
}

/// As `acknowledged_writes_survive_kill_9`, with a power cut after each
/// kill: the data dir is on `support::powerfail`, which loses every write
/// not yet fsynced (always some: at least the LMDB meta page of the last
/// commit, which NO_META_SYNC leaves to the next commit's sync).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_power_loss() -> anyhow::Result<()> {
    use support::powerfail::PowerFailFs;
    if !PowerFailFs::available() {
        eprintln!("skipped: the power-loss filesystem needs root and /dev/fuse (FUSE)");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let mut fs = PowerFailFs::mount(&tmp.path().join("disk"), &tmp.path().join("mnt"))?;
    // the logs off the disk that loses what is not synced
    let mut server = Server::start_logging_to(
        Flavor::Ours,
        &tmp.path().join("mnt/data"),
        Some(tmp.path()),
        &[],
    )
    .await?;
    let mut backend_lost = 0;
    kill_cycles(&mut server, || {
        let lost = fs.power_cut()?;
        eprintln!("power cut: unsynced bytes lost: {lost:?}");
        backend_lost += lost
            .iter()
            .filter(|(path, _)| path.ends_with("member/snap/db"))
            .map(|(_, bytes)| bytes)
            .sum::<u64>();
        Ok(())
    })
    .await?;
    ensure!(
        backend_lost > 0,
        "no power cut lost a write to the backend: the test proves little"
    );
    Ok(())
}

/// CYCLES rounds of: clients write, the server is killed with SIGKILL,
/// `after_kill` runs (a power cut), the server restarts and must hold
/// every acknowledged write; then a write goes on at the next revision.
async fn kill_cycles(
    server: &mut Server,
    mut after_kill: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut acked: Vec<Ack> = Vec::new();

    for cycle in 0..CYCLES {
        let killed = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| tokio::spawn(client(server.client_url(), cycle, id, killed.clone())))
            .collect();
        // Vary the moment of the kill a little between cycles.
        tokio::time::sleep(Duration::from_millis(1800 + 250 * cycle as u64)).await;
        killed.store(true, Ordering::SeqCst);
        let pid = server.pid();
        server.kill();
        after_kill()?;

        let mut this_cycle = 0;
        for c in clients {
            let log = tokio::time::timeout(Duration::from_secs(30), c)
                .await
                .context("a client did not stop after the kill")??;
            if let Some(e) = log.early_error {
                bail!(
                    "cycle {cycle}: a write failed before the kill: {e}\nserver log:\n{}",
                    server.log_tail()
                );
            }
            this_cycle += log.acks.len();
            acked.extend(log.acks);
        }
        ensure!(
            this_cycle >= CLIENTS,
            "cycle {cycle}: only {this_cycle} writes acknowledged before the kill; the test proves little"
        );

        server
            .restart()
            .await
            .with_context(|| format!("restart after kill -9 of pid {pid} (cycle {cycle})"))?;
        let current = verify(server, &acked).await.with_context(|| {
            format!(
                "cycle {cycle}: after kill -9 of pid {pid} with {this_cycle} writes acknowledged"
            )
        })?;
        eprintln!(
            "cycle {cycle}: {this_cycle} writes acknowledged, {} in total; store at revision {current} after restart",
            acked.len()
        );
    }

    // Writing goes on at the next revision.
    let mut kv = server.kv().await?;
    let before = verify(server, &acked).await?;
    let resp = kv
        .put(PutRequest {
            key: b"crash/after".to_vec(),
            value: value_of("crash/after").into_bytes(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let rev = resp.header.map(|h| h.revision).unwrap_or(0);
    ensure!(
        rev == before + 1,
        "first write after the crashes got revision {rev}, want {}",
        before + 1
    );
    Ok(())
}

/// Writes are read and watched as soon as they are answered, before the
/// backend commits them (the batch interval is an hour here: nothing but
/// the kill ends the open LMDB txn), and a kill -9 in that window loses
/// none: the restart replays them from the WAL with the same revisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_answered_before_the_backend_commit_survive_kill_9() -> anyhow::Result<()> {
    use rsetcd::proto::etcdserverpb::watch_client::WatchClient;
    use rsetcd::proto::etcdserverpb::{watch_request, WatchCreateRequest, WatchRequest};
    const WRITES: usize = 50;
    let tmp = tempfile::tempdir()?;
    let mut server = Server::start(
        Flavor::Ours,
        &tmp.path().join("data"),
        &[
            "--backend-batch-interval=1h",
            "--backend-batch-limit=1000000",
        ],
    )
    .await?;
    let mut kv = server.kv().await?;
    let mut watch = WatchClient::connect(server.client_url()).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b"open/".to_vec(),
                range_end: b"open0".to_vec(),
                ..Default::default()
            },
        )),
    })
    .await?;
    let mut events = watch
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    events.message().await?.context("watch created")?;
    let mut acked = Vec::new();
    for i in 0..WRITES {
        let key = format!("open/{i:03}");
        let rev = kv
            .put(PutRequest {
                key: key.clone().into_bytes(),
                value: value_of(&key).into_bytes(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .header
            .context("put header")?
            .revision;
        // read back at once, linearizably: from the overlay, not LMDB
        let got = kv
            .range(RangeRequest {
                key: key.clone().into_bytes(),
                ..Default::default()
            })
            .await?
            .into_inner();
        ensure!(
            got.kvs.len() == 1 && got.kvs[0].mod_revision == rev,
            "{key} written at {rev} reads back as {:?}",
            got.kvs
        );
        acked.push(Ack {
            value: value_of(&key),
            key,
            revision: rev,
        });
    }
    let mut watched = 0;
    while watched < WRITES {
        let resp = tokio::time::timeout(Duration::from_secs(10), events.message())
            .await
            .context("the watch stopped short")??
            .context("watch stream ended")?;
        for e in resp.events {
            let kv = e.kv.context("event without kv")?;
            let want = &acked[watched];
            ensure!(
                kv.key == want.key.as_bytes() && kv.mod_revision == want.revision,
                "event {watched}: {:?} at {}, want {} at {}",
                String::from_utf8_lossy(&kv.key),
                kv.mod_revision,
                want.key,
                want.revision
            );
            watched += 1;
        }
    }
    server.kill();
    server.restart().await?;
    let log = server.log();
    ensure!(
        log.contains("replaying WAL entries above the backend's applied index"),
        "the kill did not land before the backend commit (nothing replayed):\n{log}"
    );
    let current = verify(&server, &acked).await?;
    ensure!(
        current == acked.last().map(|a| a.revision).unwrap_or(0),
        "store at revision {current} after the restart"
    );
    Ok(())
}
