//! `etcdctl check perf` and `etcdctl check datascale`: etcd's built-in
//! load checks. `perf` writes rate-limited puts from many clients for 60 s
//! and judges throughput, slowest request and spread of latencies against
//! etcd's thresholds; `datascale` writes a fixed number of keys and reports
//! the resident memory the server grew by (from its `/metrics`). Both
//! refuse a prefix that already holds keys and delete their keys after.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::time::Instant;

use rsetcd::client::{endpoint_host_port, prefix_end};
use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest,
};

use crate::command::{defrag, Invocation};
use crate::exit::{CtlResult, ExitError};
use crate::global::{self, Client, ClientConfig};
use crate::progress::ProgressBar;

/// How long cleanup, compaction and defragmentation may take each.
const MAINTENANCE_TIMEOUT: Duration = Duration::from_secs(30);

/// A `check perf` workload: puts per second, concurrent clients, seconds.
struct PerfLoad {
    rate: u32,
    clients: usize,
    duration: u64,
}

/// A `check datascale` workload: keys to write and concurrent clients
/// (etcd names each key-value's size but writes 512 + 512 bytes).
struct DatascaleLoad {
    keys: usize,
    kv_size: usize,
    clients: usize,
}

/// The load names both checks accept, as etcd's alias table.
fn load_model(name: &str) -> Option<&'static str> {
    match name {
        "s" | "small" => Some("s"),
        "m" | "medium" => Some("m"),
        "l" | "large" => Some("l"),
        "xl" | "xLarge" => Some("xl"),
        _ => None,
    }
}

fn perf_load(name: &str) -> CtlResult<PerfLoad> {
    let (rate, clients) = match load_model(name) {
        Some("s") => (150, 50),
        Some("m") => (1000, 200),
        Some("l") => (8000, 500),
        Some(_) => (15000, 1000),
        None => {
            return Err(ExitError::bad_feature(format!(
                "unknown load option {name}"
            )))
        }
    };
    Ok(PerfLoad {
        rate,
        clients,
        duration: 60,
    })
}

fn datascale_load(name: &str) -> CtlResult<DatascaleLoad> {
    let (keys, clients) = match load_model(name) {
        Some("s") => (10_000, 50),
        Some("m") => (100_000, 200),
        Some("l") => (1_000_000, 500),
        // xl aims at the upper bound: 3 versions of 1M objects.
        Some(_) => (3_000_000, 1000),
        None => {
            return Err(ExitError::bad_feature(format!(
                "unknown load option {name}"
            )))
        }
    };
    Ok(DatascaleLoad {
        keys,
        kv_size: 1024,
        clients,
    })
}

pub async fn perf(mut inv: Invocation) -> CtlResult {
    let load = perf_load(&inv.flags.string("load"))?;
    let prefix = inv.flags.string("prefix");
    let auto_compact = inv.flags.bool("auto-compact");
    let auto_defrag = inv.flags.bool("auto-defrag");
    let (config, _printer) = global::client_config(&mut inv.flags, &inv.inherited)?;

    let deadline = Instant::now() + Duration::from_secs(load.duration);
    let (cancel, cancelled) = watch::channel(false);
    let interrupt = tokio::spawn(cleanup_on_interrupt(config.clone(), prefix.clone(), cancel));

    let mut first = Client::with_deadline(config.clone(), deadline);
    let found = tokio::select! {
        found = has_keys(&mut first, &prefix) => found?,
        _ = wait_cancelled(cancelled.clone()) => {
            return Err(ExitError::error(crate::shutdown::CONTEXT_CANCELED));
        }
    };
    if found {
        return Err(ExitError::invalid_input(format!(
            "prefix {} has keys. Delete with 'etcdctl del --prefix {prefix}' first",
            gofmt::quote(prefix.as_bytes())
        )));
    }

    let bar = ProgressBar::start(load.duration as i64);
    let (keys, results, started) = spawn_workers(&config, load.clients, 1024, None);
    let generator = {
        let prefix = prefix.clone().into_bytes();
        let mut cancelled = cancelled.clone();
        tokio::spawn(async move {
            let mut key = KeyGenerator::new(prefix, 256);
            let mut limiter = RateLimiter::new(f64::from(load.rate));
            loop {
                // etcd's `limit.Wait(ctx)`: fails when the wait would pass
                // the deadline.
                let at = limiter.reserve(Instant::now());
                if at > deadline || *cancelled.borrow() {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = cancelled.changed() => break,
                }
                if keys.send(key.next()).await.is_err() {
                    break;
                }
            }
        })
    };
    let ticker = {
        let bar = bar.clone();
        let duration = load.duration;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(
                Instant::now() + Duration::from_secs(1),
                Duration::from_secs(1),
            );
            for _ in 0..duration {
                ticks.tick().await;
                bar.add(1);
            }
            bar.finish();
        })
    };

    let stats = Stats::collect(results, started).await;
    let _ = generator.await;
    // etcd goes on without waiting for the bar, so its last line may land
    // among the next ones; ours ends first (unless interrupted: etcd's
    // bar would run on).
    if !*cancelled.borrow() {
        let _ = ticker.await;
    }

    attempt_cleanup(&config, &prefix, auto_compact).await?;
    if auto_defrag {
        for endpoint in &config.endpoints {
            defragment(&config, endpoint).await?;
        }
    }
    interrupt.abort();

    let mut ok = stats.report_errors();
    if stats.rps / f64::from(load.rate) <= 0.9 {
        println!(
            "FAIL: Throughput too low: {} writes/s",
            stats.rps as i64 + 1
        );
        ok = false;
    } else {
        println!("PASS: Throughput is {} writes/s", stats.rps as i64 + 1);
    }
    if stats.slowest > 0.5 {
        println!("Slowest request took too long: {:.6}s", stats.slowest);
        ok = false;
    } else {
        println!("PASS: Slowest request took {:.6}s", stats.slowest);
    }
    if stats.stddev > 0.1 {
        println!("Stddev too high: {:.6}s", stats.stddev);
        ok = false;
    } else {
        println!("PASS: Stddev is {:.6}s", stats.stddev);
    }
    if ok {
        println!("PASS");
        Ok(())
    } else {
        println!("FAIL");
        Err(ExitError::error(String::new()).silent())
    }
}

pub async fn datascale(mut inv: Invocation) -> CtlResult {
    let load = datascale_load(&inv.flags.string("load"))?;
    let prefix = inv.flags.string("prefix");
    let auto_compact = inv.flags.bool("auto-compact");
    let auto_defrag = inv.flags.bool("auto-defrag");
    let (config, _printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let Some(endpoint) = config.endpoints.first().cloned() else {
        return Err(ExitError::error(global::DEADLINE_EXCEEDED));
    };

    if has_keys(&mut Client::unbounded(config.clone()), &prefix).await? {
        return Err(ExitError::invalid_input(format!(
            "prefix {} has keys. Delete with etcdctl del --prefix {prefix} first",
            gofmt::quote(prefix.as_bytes())
        )));
    }

    let before = resident_memory(&endpoint).await;
    if before == 0.0 {
        println!("FAIL: Could not read process_resident_memory_bytes before the put operations.");
        return Err(ExitError::error(String::new()).silent());
    }
    println!(
        "Start data scale check for work load [{} key-value pairs, {} bytes per key-value, {} concurrent clients].",
        load.keys, load.kv_size, load.clients
    );
    let bar = ProgressBar::start(load.keys as i64);
    let (keys, results, started) = spawn_workers(&config, load.clients, 512, Some(bar.clone()));
    let generator = {
        let prefix = prefix.clone().into_bytes();
        tokio::spawn(async move {
            let mut key = KeyGenerator::new(prefix, 512);
            for _ in 0..load.keys {
                if keys.send(key.next()).await.is_err() {
                    break;
                }
            }
        })
    };
    let stats = Stats::collect(results, started).await;
    let _ = generator.await;
    bar.finish();

    let after = resident_memory(&endpoint).await;
    if after == 0.0 {
        println!("FAIL: Could not read process_resident_memory_bytes after the put operations.");
        return Err(ExitError::error(String::new()).silent());
    }
    let revision = delete_prefix(&mut Client::unbounded(config.clone()), &prefix)
        .await
        .map_err(ExitError::error)?;
    if auto_compact {
        compact(&config, revision).await?;
    }
    if auto_defrag {
        for endpoint in &config.endpoints {
            defragment(&config, endpoint).await?;
        }
    }
    let used_mb = (after - before) / (1024.0 * 1024.0);
    if !stats.report_errors() {
        return Err(ExitError::error(String::new()).silent());
    }
    println!("PASS: Approximate system memory used : {used_mb:.2} MB.");
    Ok(())
}

/// Waits for SIGINT; then stops the check (as etcd's interruptible
/// context) and deletes its keys.
async fn cleanup_on_interrupt(config: ClientConfig, prefix: String, cancel: watch::Sender<bool>) {
    let Ok(mut interrupt) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    else {
        return;
    };
    if interrupt.recv().await.is_some() {
        let _ = cancel.send(true);
        let _ = attempt_cleanup(&config, &prefix, false).await;
    }
}

async fn wait_cancelled(mut cancelled: watch::Receiver<bool>) {
    while !*cancelled.borrow() {
        if cancelled.changed().await.is_err() {
            // The sender is gone: no cancellation will come.
            std::future::pending::<()>().await;
        }
    }
}

/// Whether any key starts with `prefix`.
async fn has_keys(client: &mut Client, prefix: &str) -> CtlResult<bool> {
    let request = RangeRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: prefix_end(prefix.as_bytes()),
        limit: 1,
        ..RangeRequest::default()
    };
    let response = client
        .call(request, true, |channel, req| async move {
            KvClient::new(channel).range(req).await
        })
        .await?;
    Ok(!response.kvs.is_empty())
}

/// Deletes the check's keys; returns the revision of the deletion.
async fn delete_prefix(client: &mut Client, prefix: &str) -> Result<i64, String> {
    let request = DeleteRangeRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: prefix_end(prefix.as_bytes()),
        ..DeleteRangeRequest::default()
    };
    client
        .call(request, false, |channel, req| async move {
            KvClient::new(channel).delete_range(req).await
        })
        .await
        .map(|resp| resp.header.map_or(0, |h| h.revision))
        .map_err(|err| err.text)
}

/// etcd's `attemptCleanup`: a failed deletion is reported, not fatal.
async fn attempt_cleanup(config: &ClientConfig, prefix: &str, auto_compact: bool) -> CtlResult {
    let mut client = Client::new(with_timeout(config, MAINTENANCE_TIMEOUT));
    match delete_prefix(&mut client, prefix).await {
        Ok(revision) if auto_compact => compact(config, revision).await,
        Ok(_) => Ok(()),
        Err(text) => {
            println!("FAIL: Cleanup failed during key deletion: ERROR({text})");
            Ok(())
        }
    }
}

/// etcd's `compact`: a physical compaction at `revision`.
async fn compact(config: &ClientConfig, revision: i64) -> CtlResult {
    println!("Compacting with revision {revision}");
    let mut client = Client::new(with_timeout(config, MAINTENANCE_TIMEOUT));
    let request = CompactionRequest {
        revision,
        physical: true,
    };
    client
        .call(request, false, |channel, req| async move {
            KvClient::new(channel).compact(req).await
        })
        .await?;
    println!("Compacted with revision {revision}");
    Ok(())
}

/// etcd's `defrag` helper of the checks.
async fn defragment(config: &ClientConfig, endpoint: &str) -> CtlResult {
    let quoted = gofmt::quote(endpoint.as_bytes());
    println!("Defragmenting {quoted}");
    defrag::defragment(&with_timeout(config, MAINTENANCE_TIMEOUT), endpoint)
        .await
        .map_err(ExitError::error)?;
    println!("Defragmented {quoted}");
    Ok(())
}

fn with_timeout(config: &ClientConfig, timeout: Duration) -> ClientConfig {
    ClientConfig {
        command_timeout: timeout,
        ..config.clone()
    }
}

/// golang.org/x/time/rate's token bucket with a burst of 1, as `check
/// perf` uses it: a token every 1/rate seconds, at most one saved up.
/// Reserving when none is left books the next one, so a late wake-up does
/// not shift the schedule.
struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    fn new(rate: f64) -> Self {
        RateLimiter {
            rate,
            tokens: 1.0,
            last: Instant::now(),
        }
    }

    /// Takes a token; returns when it may be used.
    fn reserve(&mut self, now: Instant) -> Instant {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(1.0) - 1.0;
        self.last = now;
        if self.tokens < 0.0 {
            now + Duration::from_secs_f64(-self.tokens / self.rate)
        } else {
            now
        }
    }
}

/// One finished put: how long it took, or why it failed.
struct Sample {
    latency: Duration,
    error: Option<String>,
}

/// Starts `count` clients, each with its own connection, putting the keys
/// sent on the returned channel with zero-filled values of `value_size`
/// bytes (counting each on `bar`). Returns that channel, the results, and
/// when collecting started.
fn spawn_workers(
    config: &ClientConfig,
    count: usize,
    value_size: usize,
    bar: Option<ProgressBar>,
) -> (
    mpsc::Sender<Vec<u8>>,
    mpsc::UnboundedReceiver<Sample>,
    Instant,
) {
    let (keys, queue) = mpsc::channel::<Vec<u8>>(count.max(1));
    let queue = Arc::new(Mutex::new(queue));
    let (results, samples) = mpsc::unbounded_channel();
    for _ in 0..count {
        let mut client = Client::unbounded(config.clone());
        let queue = Arc::clone(&queue);
        let results = results.clone();
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                let next = queue.lock().await.recv().await;
                let Some(key) = next else { break };
                let request = PutRequest {
                    key,
                    value: vec![0; value_size],
                    ..PutRequest::default()
                };
                let started = Instant::now();
                let result = client
                    .call(request, false, |channel, req| async move {
                        KvClient::new(channel).put(req).await
                    })
                    .await;
                let sample = Sample {
                    latency: started.elapsed(),
                    error: result.err().map(|err| err.text),
                };
                if results.send(sample).is_err() {
                    break;
                }
                if let Some(bar) = &bar {
                    bar.add(1);
                }
            }
        });
    }
    (keys, samples, Instant::now())
}

/// etcd's `report` statistics over the successful requests, in seconds.
struct Stats {
    rps: f64,
    slowest: f64,
    stddev: f64,
    /// Error text → how many requests failed with it.
    errors: BTreeMap<String, u64>,
}

impl Stats {
    async fn collect(mut samples: mpsc::UnboundedReceiver<Sample>, started: Instant) -> Stats {
        let mut latencies = Vec::new();
        let mut errors = BTreeMap::new();
        while let Some(sample) = samples.recv().await {
            match sample.error {
                Some(text) => *errors.entry(text).or_insert(0) += 1,
                None => latencies.push(sample.latency.as_secs_f64()),
            }
        }
        let total = started.elapsed().as_secs_f64();
        let count = latencies.len() as f64;
        let average = latencies.iter().sum::<f64>() / count;
        let variance = latencies
            .iter()
            .map(|l| (l - average) * (l - average))
            .sum::<f64>()
            / count;
        Stats {
            rps: count / total,
            slowest: latencies.iter().copied().fold(0.0, f64::max),
            stddev: variance.sqrt(),
            errors,
        }
    }

    /// Prints the failures, if any; true when there were none.
    fn report_errors(&self) -> bool {
        if self.errors.is_empty() {
            return true;
        }
        println!("FAIL: too many errors");
        for (text, count) in &self.errors {
            println!("FAIL: ERROR({text}) -> {count}");
        }
        false
    }
}

/// The check's keys: the prefix, then a buffer that starts with the
/// varint of a random number (the rest left from earlier keys), as etcd's
/// `binary.PutVarint(k, rand.Int63n(math.MaxInt64))`.
struct KeyGenerator {
    prefix: Vec<u8>,
    buffer: Vec<u8>,
    state: u64,
}

impl KeyGenerator {
    fn new(prefix: Vec<u8>, size: usize) -> Self {
        let seed = RandomState::new().build_hasher().finish();
        KeyGenerator {
            prefix,
            buffer: vec![0; size],
            state: seed,
        }
    }

    fn next(&mut self) -> Vec<u8> {
        let random = (self.next_random() >> 1) as i64;
        let mut zigzag = ((random << 1) ^ (random >> 63)) as u64;
        let mut i = 0;
        while zigzag >= 0x80 && i < self.buffer.len() {
            self.buffer[i] = zigzag as u8 | 0x80;
            zigzag >>= 7;
            i += 1;
        }
        if i < self.buffer.len() {
            self.buffer[i] = zigzag as u8;
        }
        [self.prefix.as_slice(), self.buffer.as_slice()].concat()
    }

    /// splitmix64: uniform enough for spreading keys.
    fn next_random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The server's `process_resident_memory_bytes` from `<endpoint>/metrics`,
/// or 0 after printing why it could not be read (etcd's
/// `endpointMemoryMetrics`).
async fn resident_memory(endpoint: &str) -> f64 {
    const KEY: &str = "process_resident_memory_bytes";
    let host = if endpoint.starts_with("http://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    let url = format!("{host}/metrics");
    let body = match http_get(&url).await {
        Ok(body) => body,
        Err(err) => {
            println!("fetch error: Get {}: {err}", gofmt::quote(url.as_bytes()));
            return 0.0;
        }
    };
    let Some(value) = body
        .lines()
        .find_map(|line| line.strip_prefix(KEY).map(str::trim))
    else {
        println!("could not find: {KEY}");
        return 0.0;
    };
    match value.parse::<f64>() {
        Ok(bytes) => bytes,
        Err(_) => {
            println!(
                "parse error: strconv.ParseFloat: parsing {}: invalid syntax",
                gofmt::quote(value.as_bytes())
            );
            0.0
        }
    }
}

/// A plain HTTP/1.0 GET (the server closes the connection after the
/// body); the error is Go's net/http dial text.
async fn http_get(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = endpoint_host_port(authority).unwrap_or(authority);
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|err| {
            format!(
                "dial tcp {address}: connect: {}",
                crate::process::errno_text(&err)
            )
        })?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| crate::process::errno_text(&err))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|err| crate::process::errno_text(&err))?;
    let text = String::from_utf8_lossy(&response);
    Ok(match text.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_string(),
        None => String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_match_etcd() {
        let s = perf_load("small").unwrap();
        assert_eq!((s.rate, s.clients, s.duration), (150, 50, 60));
        assert_eq!(perf_load("xLarge").unwrap().rate, 15000);
        assert_eq!(
            perf_load("huge").err().unwrap(),
            ExitError::bad_feature("unknown load option huge")
        );
        assert_eq!(datascale_load("m").unwrap().keys, 100_000);
    }

    #[test]
    fn limiter_keeps_its_schedule() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(100.0);
        limiter.last = start;
        assert_eq!(limiter.reserve(start), start);
        let second = limiter.reserve(start);
        assert_eq!(second, start + Duration::from_millis(10));
        // Waking 3 ms late still books the third token at 20 ms.
        let third = limiter.reserve(second + Duration::from_millis(3));
        assert_eq!(third.duration_since(start).as_millis(), 20);
    }

    #[test]
    fn keys_are_prefix_then_varint() {
        let mut keys = KeyGenerator::new(b"/p/".to_vec(), 256);
        let key = keys.next();
        assert_eq!(key.len(), 3 + 256);
        assert!(key.starts_with(b"/p/"));
        assert_ne!(keys.next(), key);
    }
}
