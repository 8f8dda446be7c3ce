//! Auto-compaction (`--auto-compaction-mode`, `--auto-compaction-retention`,
//! etcd's v3compactor): while this member leads, compact the keyspace
//! history through raft with the same Compaction request a client sends.
//!
//! - Revision mode keeps the last `retention` revisions: every 5 minutes it
//!   compacts to `current - retention` (unless that is not above 0 or was
//!   the last target).
//! - Periodic mode keeps `period` of history: it samples the current
//!   revision every `min(period, 1h) / 10` and, once `period` has passed
//!   since the start (then every `min(period, 1h)` after a success),
//!   compacts to the oldest sample, the revision that was current `period`
//!   ago.
//!
//! A follower pauses: it keeps sampling (so a new leader knows the history
//! of revisions) but does not compact, as etcd's Pause/Resume on leadership
//! changes.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{Error, EtcdServer};
use crate::apply::ApplyError;
use crate::config::AutoCompaction;
use crate::gofmt::format_duration;
use crate::proto::etcdserverpb::CompactionRequest;

/// How often revision mode looks at the current revision (etcd's
/// revInterval).
pub const REVISION_CHECK_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Overrides [`REVISION_CHECK_INTERVAL`] (milliseconds) so that tests need
/// not wait five minutes. Not a user setting: etcd has no such flag.
pub const TEST_REVISION_INTERVAL_ENV: &str = "RSETCD_TEST_AUTO_COMPACTION_REVISION_INTERVAL_MS";

/// Periodic mode samples this many times per compaction interval (etcd's
/// retryDivisor).
const RETRY_DIVISOR: u32 = 10;
/// Periodic mode compacts at most this often, however long the retention.
const MAX_COMPACT_INTERVAL: Duration = Duration::from_secs(3600);
/// A floor for the sampling interval: etcd divides by it, and a retention
/// of a few nanoseconds would otherwise spin.
const MIN_RETRY_INTERVAL: Duration = Duration::from_millis(1);

/// The revision-mode interval: etcd's 5 minutes unless a test shortened it.
pub fn revision_check_interval() -> Duration {
    std::env::var(TEST_REVISION_INTERVAL_ENV)
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(REVISION_CHECK_INTERVAL)
}

/// Starts the compactor for `policy` (nothing when disabled). It holds the
/// server weakly and ends when the server is gone.
pub fn spawn(server: &Arc<EtcdServer>, policy: AutoCompaction, revision_interval: Duration) {
    let server = Arc::downgrade(server);
    match policy {
        AutoCompaction::Disabled => {}
        AutoCompaction::Periodic(period) => {
            tokio::spawn(run_periodic(server, period));
        }
        AutoCompaction::Revision(retention) => {
            let retention = i64::try_from(retention).unwrap_or(i64::MAX);
            tokio::spawn(run_revision(server, retention, revision_interval));
        }
    }
}

/// Compacts to `rev`; a revision already compacted counts as done (etcd
/// treats ErrCompacted as success).
async fn compact(server: &EtcdServer, rev: i64) -> Result<(), Error> {
    let request = CompactionRequest {
        revision: rev,
        physical: false,
    };
    match server.propose(request).await {
        Ok(_) | Err(Error::Apply(ApplyError::Compacted)) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn run_revision(server: Weak<EtcdServer>, retention: i64, interval: Duration) {
    let mut plan = RevisionPlan::new(retention);
    loop {
        tokio::time::sleep(interval).await;
        let Some(server) = server.upgrade() else {
            return;
        };
        if !server.is_leader() {
            continue;
        }
        let Some(rev) = plan.due(server.hub().current()) else {
            continue;
        };
        tracing::info!(
            revision = rev,
            "revision-compaction-retention" = retention,
            "starting auto revision compaction"
        );
        let started = Instant::now();
        match compact(&server, rev).await {
            Ok(()) => {
                plan.compacted(rev);
                tracing::info!(
                    revision = rev,
                    "revision-compaction-retention" = retention,
                    took = format_duration(started.elapsed()),
                    "completed auto revision compaction"
                );
            }
            Err(e) => tracing::warn!(
                revision = rev,
                "revision-compaction-retention" = retention,
                "retry-interval" = format_duration(interval),
                error = %e,
                "failed auto revision compaction"
            ),
        }
    }
}

async fn run_periodic(server: Weak<EtcdServer>, period: Duration) {
    let mut plan = PeriodicPlan::new(period, Instant::now());
    let period_text = format_duration(period);
    loop {
        match server.upgrade() {
            Some(server) => plan.sample(server.hub().current()),
            None => return,
        }
        tokio::time::sleep(plan.retry).await;
        let Some(server) = server.upgrade() else {
            return;
        };
        if !server.is_leader() {
            continue;
        }
        let Some(rev) = plan.due(Instant::now()) else {
            continue;
        };
        tracing::info!(
            revision = rev,
            "compact-period" = period_text.as_str(),
            "starting auto periodic compaction"
        );
        let started = Instant::now();
        match compact(&server, rev).await {
            Ok(()) => {
                plan.compacted(rev, Instant::now());
                tracing::info!(
                    revision = rev,
                    "compact-period" = period_text.as_str(),
                    took = format_duration(started.elapsed()),
                    "completed auto periodic compaction"
                );
            }
            Err(e) => tracing::warn!(
                revision = rev,
                "compact-period" = period_text.as_str(),
                "retry-interval" = format_duration(plan.retry),
                error = %e,
                "failed auto periodic compaction"
            ),
        }
    }
}

/// Revision mode's decision: compact to `current - retention` when that is
/// a new, positive target.
struct RevisionPlan {
    retention: i64,
    /// The last target compacted (0: none yet).
    previous: i64,
}

impl RevisionPlan {
    fn new(retention: i64) -> Self {
        RevisionPlan {
            retention,
            previous: 0,
        }
    }

    fn due(&self, current: i64) -> Option<i64> {
        let rev = current.saturating_sub(self.retention);
        (rev > 0 && rev != self.previous).then_some(rev)
    }

    fn compacted(&mut self, rev: i64) {
        self.previous = rev;
    }
}

/// Periodic mode's sliding window of revision samples and its timing.
struct PeriodicPlan {
    period: Duration,
    /// Time between samples (and between attempts after a failure).
    retry: Duration,
    /// Time between compactions once the first one is done.
    compact_interval: Duration,
    /// Samples kept: the oldest is the revision current `period` ago.
    retentions: usize,
    samples: VecDeque<i64>,
    last_success: Instant,
    /// `period` until the first compaction is attempted, then
    /// `compact_interval`.
    base_interval: Duration,
    last_revision: i64,
}

impl PeriodicPlan {
    fn new(period: Duration, now: Instant) -> Self {
        let compact_interval = period.min(MAX_COMPACT_INTERVAL);
        let retry = (compact_interval / RETRY_DIVISOR).max(MIN_RETRY_INTERVAL);
        let retentions = (period.as_nanos() / retry.as_nanos()) as usize + 1;
        PeriodicPlan {
            period,
            retry,
            compact_interval,
            retentions,
            samples: VecDeque::with_capacity(retentions.min(4096) + 1),
            last_success: now,
            base_interval: period,
            last_revision: 0,
        }
    }

    /// Records the current revision (once per `retry`).
    fn sample(&mut self, rev: i64) {
        self.samples.push_back(rev);
        if self.samples.len() > self.retentions {
            self.samples.pop_front();
        }
    }

    /// The revision to compact to at `now` (this member leading), if due.
    fn due(&mut self, now: Instant) -> Option<i64> {
        let rev = *self.samples.front()?;
        if now.duration_since(self.last_success) < self.base_interval || rev == self.last_revision {
            return None;
        }
        // The first compaction waits a whole period; later ones only the
        // compaction interval.
        if self.base_interval == self.period {
            self.base_interval = self.compact_interval;
        }
        Some(rev)
    }

    fn compacted(&mut self, rev: i64, now: Instant) {
        self.last_revision = rev;
        self.last_success = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_mode_keeps_the_last_revisions() {
        let mut plan = RevisionPlan::new(10);
        assert_eq!(plan.due(5), None, "nothing below revision 1");
        assert_eq!(plan.due(10), None);
        assert_eq!(plan.due(25), Some(15));
        plan.compacted(15);
        assert_eq!(plan.due(25), None, "the same target is not compacted twice");
        assert_eq!(plan.due(40), Some(30));
    }

    #[test]
    fn periodic_intervals_follow_etcd() {
        let now = Instant::now();
        let hour = PeriodicPlan::new(Duration::from_secs(3600), now);
        assert_eq!(hour.retry, Duration::from_secs(360));
        assert_eq!(hour.compact_interval, Duration::from_secs(3600));
        assert_eq!(hour.retentions, 11);
        let day = PeriodicPlan::new(Duration::from_secs(24 * 3600), now);
        assert_eq!(day.retry, Duration::from_secs(360));
        assert_eq!(day.compact_interval, Duration::from_secs(3600));
        assert_eq!(day.retentions, 241);
        let short = PeriodicPlan::new(Duration::from_secs(5), now);
        assert_eq!(short.retry, Duration::from_millis(500));
        assert_eq!(short.compact_interval, Duration::from_secs(5));
        let tiny = PeriodicPlan::new(Duration::from_nanos(3), now);
        assert_eq!(tiny.retry, MIN_RETRY_INTERVAL);
    }

    /// A 10 s period sampled every second: the first compaction comes after
    /// 10 s, later ones every 10 s, each to the oldest sample kept (taken
    /// one period and one sample interval before).
    #[test]
    fn periodic_compacts_to_the_revision_of_one_period_ago() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut plan = PeriodicPlan::new(Duration::from_secs(10), start);
        let mut compactions = Vec::new();
        // The revision grows by 100 each second; each loop samples, waits
        // one retry interval, then checks.
        for second in 0..=25u64 {
            plan.sample(100 * second as i64 + 1);
            if let Some(rev) = plan.due(at(second + 1)) {
                plan.compacted(rev, at(second + 1));
                compactions.push((second + 1, rev));
            }
        }
        assert_eq!(compactions, vec![(10, 1), (20, 901)]);
    }

    #[test]
    fn periodic_retries_a_failed_compaction_at_the_next_sample() {
        let start = Instant::now();
        let mut plan = PeriodicPlan::new(Duration::from_secs(10), start);
        for second in 0..10u64 {
            plan.sample(second as i64 + 1);
        }
        let due = plan.due(start + Duration::from_secs(10));
        assert_eq!(due, Some(1));
        // It failed: the next sample moves the window and tries again.
        plan.sample(11);
        assert_eq!(plan.due(start + Duration::from_secs(11)), Some(1));
        plan.sample(12);
        plan.compacted(2, start + Duration::from_secs(12));
        assert_eq!(plan.due(start + Duration::from_secs(13)), None);
    }

    #[test]
    fn an_idle_store_is_not_compacted_twice_at_the_same_revision() {
        let start = Instant::now();
        let mut plan = PeriodicPlan::new(Duration::from_secs(1), start);
        let mut attempts = 0;
        for tick in 1..=50u64 {
            plan.sample(7);
            let now = start + Duration::from_millis(100 * tick);
            if let Some(rev) = plan.due(now) {
                attempts += 1;
                plan.compacted(rev, now);
            }
        }
        assert_eq!(attempts, 1);
    }
}
