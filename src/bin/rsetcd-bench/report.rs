//! Turns recorded latencies and errors into etcd's benchmark report
//! (pkg/report): summary, response time histogram, latency distribution,
//! optional per-second samples and error distribution, plus the one-line
//! JSON summary that scripts consume.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use rsetcd::gofmt::format_g;

use crate::timeseries::TimeSeries;

/// etcd's percentiles, in the order the report prints them.
const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];
const HISTOGRAM_BUCKETS: usize = 10;
const BAR_WIDTH: usize = 40;
const BAR_CHAR: char = '∎';

/// How numbers are printed: etcd's default `%4.4f`, or `%g` with `--precise`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    FourDecimals,
    Full,
}

impl Precision {
    fn format(self, value: f64) -> String {
        match self {
            Precision::FourDecimals => format!("{value:4.4}"),
            Precision::Full => format_g(value),
        }
    }

    fn seconds(self, value: f64) -> String {
        format!("{} secs", self.format(value))
    }
}

/// Aggregated results of one benchmark run, computed the way etcd does.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Wall time of the whole run.
    pub total: Duration,
    /// Latencies of successful requests in seconds, sorted ascending.
    pub latencies: Vec<f64>,
    pub average: f64,
    pub stddev: f64,
    pub fastest: f64,
    pub slowest: f64,
    pub requests_per_sec: f64,
    /// Error message and count, most frequent first.
    pub errors: Vec<(String, usize)>,
}

impl Stats {
    pub fn new(total: Duration, mut latencies: Vec<f64>, errors: HashMap<String, usize>) -> Stats {
        let count = latencies.len() as f64;
        let sum: f64 = latencies.iter().sum();
        let average = sum / count;
        let variance = latencies
            .iter()
            .map(|lat| (lat - average) * (lat - average))
            .sum::<f64>()
            / count;
        latencies.sort_by(f64::total_cmp);
        let mut errors: Vec<(String, usize)> = errors.into_iter().collect();
        errors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Stats {
            total,
            fastest: latencies.first().copied().unwrap_or(0.0),
            slowest: latencies.last().copied().unwrap_or(0.0),
            requests_per_sec: count / total.as_secs_f64(),
            average,
            stddev: variance.sqrt(),
            latencies,
            errors,
        }
    }

    pub fn error_count(&self) -> usize {
        self.errors.iter().map(|(_, count)| count).sum()
    }

    /// etcd's percentile pick: the first latency whose rank reaches the
    /// percentile; 0 when there are too few samples to reach it.
    pub fn percentiles(&self) -> [f64; PERCENTILES.len()] {
        let mut data = [0.0; PERCENTILES.len()];
        let n = self.latencies.len();
        let mut next = 0;
        for (i, latency) in self.latencies.iter().enumerate() {
            if next == PERCENTILES.len() {
                break;
            }
            if i as f64 * 100.0 / n as f64 >= PERCENTILES[next] {
                data[next] = *latency;
                next += 1;
            }
        }
        data
    }

    /// The report as etcd's benchmark prints it. Empty when nothing was
    /// recorded at all.
    pub fn render(&self, precision: Precision, samples: Option<&TimeSeries>) -> String {
        let mut out = String::new();
        if !self.latencies.is_empty() {
            out.push_str("\nSummary:\n");
            let rows = [
                ("Total", self.total.as_secs_f64()),
                ("Slowest", self.slowest),
                ("Fastest", self.fastest),
                ("Average", self.average),
                ("Stddev", self.stddev),
            ];
            for (label, value) in rows {
                let _ = writeln!(out, "  {label}:\t{}.", precision.seconds(value));
            }
            let _ = writeln!(
                out,
                "  Requests/sec:\t{}",
                precision.format(self.requests_per_sec)
            );
            out.push_str(&self.histogram(precision));
            out.push_str(&self.latency_distribution(precision));
            if let Some(samples) = samples {
                let _ = writeln!(out, "{samples}");
            }
        }
        if !self.errors.is_empty() {
            out.push_str("\nError distribution:\n");
            for (message, count) in &self.errors {
                let _ = writeln!(out, "  [{count}]\t{message}");
            }
        }
        out
    }

    /// Ten equal-width buckets between fastest and slowest plus one for the
    /// slowest itself, each labelled by its upper bound.
    fn histogram(&self, precision: Precision) -> String {
        let width = (self.slowest - self.fastest) / HISTOGRAM_BUCKETS as f64;
        let mut bounds = [0.0; HISTOGRAM_BUCKETS + 1];
        for (i, bound) in bounds.iter_mut().enumerate().take(HISTOGRAM_BUCKETS) {
            *bound = self.fastest + width * i as f64;
        }
        bounds[HISTOGRAM_BUCKETS] = self.slowest;

        let mut counts = [0usize; HISTOGRAM_BUCKETS + 1];
        let mut bucket = 0;
        for latency in &self.latencies {
            while *latency > bounds[bucket] && bucket < HISTOGRAM_BUCKETS {
                bucket += 1;
            }
            counts[bucket] += 1;
        }
        let max = counts.iter().copied().max().unwrap_or(0);

        let mut out = String::from("\nResponse time histogram:\n");
        for (bound, count) in bounds.iter().zip(counts) {
            let bar_len = (count * BAR_WIDTH).checked_div(max).unwrap_or(0);
            let bar: String = std::iter::repeat_n(BAR_CHAR, bar_len).collect();
            let _ = writeln!(out, "  {} [{count}]\t|{bar}", precision.format(*bound));
        }
        out
    }

    fn latency_distribution(&self, precision: Precision) -> String {
        let mut out = String::from("\nLatency distribution:\n");
        for (pct, value) in PERCENTILES.iter().zip(self.percentiles()) {
            if value > 0.0 {
                let _ = writeln!(out, "  {pct}% in {}.", precision.seconds(value));
            }
        }
        out
    }

    /// One JSON object on one line for scripts. Latencies are in seconds;
    /// fields are null when no request succeeded. Percentiles are the ones
    /// the report prints; one too fine for the sample count (which etcd
    /// leaves out) is the slowest latency.
    pub fn json_line(&self) -> String {
        let pct = self
            .percentiles()
            .map(|value| if value > 0.0 { value } else { self.slowest });
        let known = |value: f64| {
            if self.latencies.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::json!(value)
            }
        };
        serde_json::json!({
            "requests": self.latencies.len(),
            "errors": self.error_count(),
            "total_secs": self.total.as_secs_f64(),
            "requests_per_sec": known(self.requests_per_sec),
            "avg_secs": known(self.average),
            "stddev_secs": known(self.stddev),
            "fastest_secs": known(self.fastest),
            "slowest_secs": known(self.slowest),
            "p50_secs": known(pct[2]),
            "p90_secs": known(pct[4]),
            "p99_secs": known(pct[6]),
            "p99_9_secs": known(pct[7]),
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_of(latencies_ms: &[u64], errors: &[(&str, usize)]) -> Stats {
        let latencies = latencies_ms.iter().map(|ms| *ms as f64 / 1000.0).collect();
        let errors = errors.iter().map(|(m, c)| (m.to_string(), *c)).collect();
        Stats::new(Duration::from_secs(2), latencies, errors)
    }

    /// Expected strings were produced by etcd 3.4's pkg/report itself, fed
    /// the same latencies and total.
    #[test]
    fn report_matches_etcd_output() {
        let stats = stats_of(&[1, 2, 2, 3, 4, 4, 4, 5, 6, 11], &[]);
        let expected = "\nSummary:\n  Total:\t2.0000 secs.\n  Slowest:\t0.0110 secs.\n  \
            Fastest:\t0.0010 secs.\n  Average:\t0.0042 secs.\n  Stddev:\t0.0027 secs.\n  \
            Requests/sec:\t5.0000\n\nResponse time histogram:\n  \
            0.0010 [1]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎\n  \
            0.0020 [2]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n  \
            0.0030 [0]\t|\n  \
            0.0040 [1]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎\n  \
            0.0050 [3]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n  \
            0.0060 [1]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎\n  \
            0.0070 [1]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎\n  \
            0.0080 [0]\t|\n  0.0090 [0]\t|\n  0.0100 [0]\t|\n  \
            0.0110 [1]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎\n\nLatency distribution:\n  \
            10% in 0.0020 secs.\n  25% in 0.0030 secs.\n  50% in 0.0040 secs.\n  \
            75% in 0.0060 secs.\n  90% in 0.0110 secs.\n";
        assert_eq!(stats.render(Precision::FourDecimals, None), expected);
    }

    #[test]
    fn precise_report_matches_etcd_output() {
        let stats = stats_of(&[1, 3], &[]);
        let expected = "\nSummary:\n  Total:\t2 secs.\n  Slowest:\t0.003 secs.\n  \
            Fastest:\t0.001 secs.\n  Average:\t0.002 secs.\n  Stddev:\t0.001 secs.\n  \
            Requests/sec:\t1\n\nResponse time histogram:\n  \
            0.001 [1]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n  \
            0.0012000000000000001 [0]\t|\n  0.0014 [0]\t|\n  0.0016 [0]\t|\n  \
            0.0018 [0]\t|\n  0.002 [0]\t|\n  0.0022 [0]\t|\n  \
            0.0024000000000000002 [0]\t|\n  0.0026 [0]\t|\n  \
            0.0028000000000000004 [0]\t|\n  \
            0.003 [1]\t|∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎∎\n\n\
            Latency distribution:\n  10% in 0.003 secs.\n";
        assert_eq!(stats.render(Precision::Full, None), expected);
    }

    #[test]
    fn errors_only_run_prints_only_error_distribution() {
        let stats = stats_of(
            &[],
            &[
                ("etcdserver: request is too large", 20),
                ("rpc error: code = Unavailable desc = x", 3),
            ],
        );
        assert_eq!(
            stats.render(Precision::FourDecimals, None),
            "\nError distribution:\n  [20]\tetcdserver: request is too large\n  \
             [3]\trpc error: code = Unavailable desc = x\n"
        );
        let json: serde_json::Value = serde_json::from_str(&stats.json_line()).unwrap();
        assert_eq!(json["errors"], 23);
        assert_eq!(json["requests"], 0);
        assert!(json["requests_per_sec"].is_null());
    }

    #[test]
    fn json_line_carries_rate_and_percentiles() {
        let stats = stats_of(&[1, 2, 2, 3, 4, 4, 4, 5, 6, 11], &[("boom", 1)]);
        let line = stats.json_line();
        assert!(!line.contains('\n'));
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["requests_per_sec"], 5.0);
        assert_eq!(json["p50_secs"], 0.004);
        assert_eq!(json["p90_secs"], 0.011);
        // Too few samples for etcd's 99.9th percentile: the slowest stands in.
        assert_eq!(json["p99_9_secs"], 0.011);
        assert_eq!(json["avg_secs"], 0.0042);
        assert_eq!(json["errors"], 1);
    }
}
