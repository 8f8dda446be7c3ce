//! Per-second request samples (`--sample`): min/avg/max latency and request
//! count for each wall-clock second of the run, printed as etcd's CSV block.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rsetcd::gofmt::format_duration;

/// One successful request: when it started (Unix nanoseconds) and how long
/// it took.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub start_unix_nanos: u128,
    pub latency: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SecondPoint {
    min: Duration,
    max: Duration,
    total: Duration,
    count: u64,
}

/// Samples grouped by the Unix second in which each request started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeSeries {
    seconds: BTreeMap<u64, SecondPoint>,
}

impl TimeSeries {
    pub fn new(samples: impl IntoIterator<Item = Sample>) -> TimeSeries {
        let mut seconds: BTreeMap<u64, SecondPoint> = BTreeMap::new();
        for sample in samples {
            let second = (sample.start_unix_nanos / 1_000_000_000) as u64;
            let lat = sample.latency;
            seconds
                .entry(second)
                .and_modify(|point| {
                    // etcd ignores zero latencies for the minimum.
                    if !lat.is_zero() {
                        point.min = point.min.min(lat);
                    }
                    point.max = point.max.max(lat);
                    point.total += lat;
                    point.count += 1;
                })
                .or_insert(SecondPoint {
                    min: lat,
                    max: lat,
                    total: lat,
                    count: 1,
                });
        }
        // Seconds without any request still get a row, as in etcd.
        if let (Some(first), Some(last)) = (
            seconds.keys().next().copied(),
            seconds.keys().next_back().copied(),
        ) {
            for second in first..last {
                seconds.entry(second).or_insert(SecondPoint {
                    min: Duration::ZERO,
                    max: Duration::ZERO,
                    total: Duration::ZERO,
                    count: 0,
                });
            }
        }
        TimeSeries { seconds }
    }
}

impl fmt::Display for TimeSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\nSample in one second (unix latency throughput):")?;
        writeln!(
            f,
            "UNIX-SECOND,MIN-LATENCY-MS,AVG-LATENCY-MS,MAX-LATENCY-MS,AVG-THROUGHPUT"
        )?;
        for (second, point) in &self.seconds {
            let average = if point.count > 0 {
                Duration::from_nanos((point.total.as_nanos() / point.count as u128) as u64)
            } else {
                Duration::ZERO
            };
            writeln!(
                f,
                "{second},{},{},{},{}",
                format_duration(point.min),
                format_duration(average),
                format_duration(point.max),
                point.count
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_second_and_fills_gaps() {
        let at = |second: u128, micros: u64| Sample {
            start_unix_nanos: second * 1_000_000_000 + 5,
            latency: Duration::from_micros(micros),
        };
        let series = TimeSeries::new([at(100, 160), at(100, 2440), at(102, 1000)]);
        assert_eq!(
            series.to_string(),
            "\nSample in one second (unix latency throughput):\n\
             UNIX-SECOND,MIN-LATENCY-MS,AVG-LATENCY-MS,MAX-LATENCY-MS,AVG-THROUGHPUT\n\
             100,160µs,1.3ms,2.44ms,2\n\
             101,0s,0s,0s,0\n\
             102,1ms,1ms,1ms,1\n"
        );
    }
}
