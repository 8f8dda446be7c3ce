//! Restarts after a clean stop (SIGTERM): once after many raft snapshots,
//! whose WAL segments must have been purged, and once on a store that was
//! never written. Everything a client can read — every key with its value,
//! version and revisions, the history at old revisions, the current
//! revision — must come back unchanged, and writes go on at the next
//! revision.

use crate::support;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context as _};
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse};
use support::kv::{describe, is_clean_sigterm_exit, Flavor, Server};
use tonic::transport::Channel;

const SNAPSHOT_COUNT: u64 = 50;
const WRITES: usize = 1000;
const WRITERS: usize = 8;
/// Distinct keys: fewer than the writes, so many are overwritten.
const KEY_SPACE: usize = 300;
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The full store at `revision` (0: the current one), as `get "" --from-key`.
async fn everything(kv: &mut KvClient<Channel>, revision: i64) -> anyhow::Result<RangeResponse> {
    let mut resp = kv
        .range(RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision,
            ..Default::default()
        })
        .await
        .with_context(|| format!("range over all keys at revision {revision}"))?
        .into_inner();
    // Member ids and term are not part of the data.
    if let Some(h) = resp.header.as_mut() {
        h.raft_term = 0;
    }
    Ok(resp)
}

fn revision_of(resp: &RangeResponse) -> i64 {
    resp.header.as_ref().map(|h| h.revision).unwrap_or(0)
}

/// Op `i` of the workload: mostly puts over a small key space (so keys are
/// overwritten), every fifth a delete.
async fn write(kv: &mut KvClient<Channel>, i: usize) -> anyhow::Result<()> {
    // A fixed scramble of i, so keys are revisited in no particular order.
    let key = format!("restart/{:03}", (i * 7919 + 13) % KEY_SPACE);
    if i % 5 == 4 {
        kv.delete_range(DeleteRangeRequest {
            key: key.clone().into_bytes(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("delete {key}"))?;
    } else {
        kv.put(PutRequest {
            key: key.clone().into_bytes(),
            value: format!("value {i}").into_bytes(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("put {key}"))?;
    }
    Ok(())
}

/// `*.wal` files in the WAL dir, sorted by name (= by sequence number).
fn wal_segments(data_dir: &Path) -> anyhow::Result<Vec<String>> {
    let dir = data_dir.join("member").join("wal");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    Ok(names)
}

/// The first raft index a segment holds, from `<seq:016x>-<index:016x>.wal`.
fn first_index(segment: &str) -> anyhow::Result<u64> {
    let index = segment
        .strip_suffix(".wal")
        .and_then(|s| s.split_once('-'))
        .map(|(_, index)| index)
        .with_context(|| format!("WAL file name {segment:?} is not <seq>-<index>.wal"))?;
    u64::from_str_radix(index, 16).with_context(|| format!("WAL file name {segment:?}: bad index"))
}

async fn stop_cleanly(server: &mut Server) -> anyhow::Result<()> {
    let status = server.terminate(STOP_TIMEOUT).await?;
    ensure!(
        is_clean_sigterm_exit(status),
        "after SIGTERM the server ended with {}; log:\n{}",
        describe(status),
        server.log_tail()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_after_snapshots_and_wal_purge() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().join("data");
    let snapshot_flag = format!("--snapshot-count={SNAPSHOT_COUNT}");
    let mut server = Server::start(Flavor::Ours, &data_dir, &[&snapshot_flag]).await?;

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let url = server.client_url();
            tokio::spawn(async move {
                let mut kv = KvClient::connect(url).await?;
                for i in (w..WRITES).step_by(WRITERS) {
                    write(&mut kv, i).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for w in writers {
        w.await??;
    }
    let mut kv = server.kv().await?;
    // One range delete as well: the keys restart/29x.
    kv.delete_range(DeleteRangeRequest {
        key: b"restart/29".to_vec(),
        range_end: b"restart/2:".to_vec(),
        prev_kv: false,
    })
    .await?;

    let before = everything(&mut kv, 0).await?;
    let current = revision_of(&before);
    ensure!(
        before.kvs.len() > KEY_SPACE / 2 && current > (WRITES / 2) as i64,
        "workload left {} keys at revision {current}; expected a busier store",
        before.kvs.len()
    );
    // The store as it was at a few old revisions, to compare after restart.
    let history_revs: Vec<i64> = (1..=4).map(|k| 1 + (current - 1) * k / 5).collect();
    let mut history = Vec::new();
    for &rev in &history_revs {
        history.push(everything(&mut kv, rev).await?);
    }
    drop(kv);

    // etcd logs "triggering snapshot" each time it takes one.
    let snapshots = server.log().matches("triggering snapshot").count();
    ensure!(
        snapshots >= WRITES / SNAPSHOT_COUNT as usize / 2,
        "only {snapshots} snapshots logged for {WRITES} writes with --snapshot-count={SNAPSHOT_COUNT}"
    );
    stop_cleanly(&mut server).await?;

    // Old segments were purged once snapshots covered them.
    let segments = wal_segments(&data_dir)?;
    ensure!(
        !segments.is_empty() && segments.len() < snapshots,
        "{} WAL segments after {snapshots} snapshots: {segments:?}",
        segments.len()
    );
    let first = first_index(&segments[0])?;
    ensure!(
        first > 0,
        "the oldest WAL segment {} still starts at index 0: nothing was purged",
        segments[0]
    );

    eprintln!(
        "{} keys at revision {current}; {snapshots} snapshots; WAL segments left: {segments:?}",
        before.kvs.len()
    );
    server.restart().await.context("restart after SIGTERM")?;
    let mut kv = server.kv().await?;
    let after = everything(&mut kv, 0).await?;
    ensure!(
        after == before,
        "store differs after restart:\nbefore: revision {} with {} keys\nafter:  revision {} with {} keys\nfirst differing key: {:?}",
        current,
        before.kvs.len(),
        revision_of(&after),
        after.kvs.len(),
        before.kvs.iter().zip(&after.kvs).find(|(b, a)| b != a)
    );
    for (rev, old) in history_revs.iter().zip(&history) {
        let now = everything(&mut kv, *rev).await?;
        ensure!(
            &now == old,
            "the store at revision {rev} reads differently after restart"
        );
    }

    // Writes go on at the next revision: an overwrite, then a new key.
    let existing = before.kvs.first().context("no keys")?.clone();
    let put = kv
        .put(PutRequest {
            key: existing.key.clone(),
            value: b"after restart".to_vec(),
            prev_kv: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    ensure!(
        put.header.as_ref().map(|h| h.revision) == Some(current + 1),
        "overwrite after restart got {:?}, want revision {}",
        put.header,
        current + 1
    );
    ensure!(
        put.prev_kv.as_ref() == Some(&existing),
        "prev_kv after restart: {:?}",
        put.prev_kv
    );
    let put = kv
        .put(PutRequest {
            key: b"restart/new".to_vec(),
            value: b"new".to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner();
    ensure!(
        put.header.as_ref().map(|h| h.revision) == Some(current + 2),
        "new key after restart got {:?}, want revision {}",
        put.header,
        current + 2
    );
    let got = kv
        .range(RangeRequest {
            key: existing.key.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let kv0 = got.kvs.first().context("overwritten key is gone")?;
    ensure!(
        kv0.create_revision == existing.create_revision
            && kv0.mod_revision == current + 1
            && kv0.version == existing.version + 1
            && kv0.value == b"after restart",
        "overwritten key reads {kv0:?}; it was {existing:?}"
    );

    // And those writes survive another clean restart.
    let before = everything(&mut kv, 0).await?;
    drop(kv);
    stop_cleanly(&mut server).await?;
    server.restart().await.context("second restart")?;
    let mut kv = server.kv().await?;
    ensure!(
        everything(&mut kv, 0).await? == before,
        "writes made after the first restart were lost"
    );
    Ok(())
}

#[tokio::test]
async fn clean_restart_without_writes() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut server = Server::start(Flavor::Ours, &tmp.path().join("data"), &[]).await?;
    stop_cleanly(&mut server).await?;
    for round in 1..=2 {
        server
            .restart()
            .await
            .with_context(|| format!("restart {round} of a store never written"))?;
        let mut kv = server.kv().await?;
        let all = everything(&mut kv, 0).await?;
        ensure!(
            all.kvs.is_empty() && all.count == 0 && revision_of(&all) == 1,
            "restart {round}: an unwritten store reads {all:?}"
        );
        drop(kv);
        stop_cleanly(&mut server).await?;
    }
    server.restart().await?;
    let mut kv = server.kv().await?;
    let put = kv
        .put(PutRequest {
            key: b"first".to_vec(),
            value: b"1".to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner();
    ensure!(
        put.header.as_ref().map(|h| h.revision) == Some(2),
        "first write after restarts got {:?}, want revision 2",
        put.header
    );
    Ok(())
}
