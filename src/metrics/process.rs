//! `process_*` (the Prometheus client's standard process metrics) and
//! etcd's `os_fd_*`, read from /proc at scrape time.

use std::sync::Mutex;

use prometheus::{Counter, Gauge, Registry};

use super::register;

/// Linux reports CPU times in USER_HZ ticks, fixed at 100 for user space.
const USER_HZ: f64 = 100.0;

pub struct ProcessMetrics {
    cpu_seconds: Counter,
    open_fds: Gauge,
    max_fds: Gauge,
    virtual_memory: Gauge,
    virtual_memory_max: Gauge,
    resident_memory: Gauge,
    start_time: Gauge,
    fd_used: Gauge,
    fd_limit: Gauge,
    /// CPU seconds already added to the counter.
    cpu_reported: Mutex<f64>,
}

fn gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    register(r, Gauge::new(name, help).expect("valid metric"))
}

impl ProcessMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        ProcessMetrics {
            cpu_seconds: register(
                r,
                Counter::new(
                    "process_cpu_seconds_total",
                    "Total user and system CPU time spent in seconds.",
                )
                .expect("valid metric"),
            ),
            open_fds: gauge(r, "process_open_fds", "Number of open file descriptors."),
            max_fds: gauge(
                r,
                "process_max_fds",
                "Maximum number of open file descriptors.",
            ),
            virtual_memory: gauge(
                r,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            ),
            virtual_memory_max: gauge(
                r,
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes.",
            ),
            resident_memory: gauge(
                r,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ),
            start_time: gauge(
                r,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            ),
            fd_used: gauge(r, "os_fd_used", "The number of used file descriptors."),
            fd_limit: gauge(r, "os_fd_limit", "The file descriptor limit."),
            cpu_reported: Mutex::new(0.0),
        }
    }

    /// Reads /proc; a value that cannot be read keeps its last reading.
    pub(super) fn refresh(&self) {
        if let Some(stat) = read_stat() {
            let cpu = (stat.utime + stat.stime) as f64 / USER_HZ;
            if let Ok(mut reported) = self.cpu_reported.lock() {
                if cpu > *reported {
                    self.cpu_seconds.inc_by(cpu - *reported);
                    *reported = cpu;
                }
            }
            if let Some(boot) = boot_time() {
                self.start_time
                    .set(boot as f64 + stat.start_ticks as f64 / USER_HZ);
            }
        }
        if let Some((vm, rss)) = read_memory() {
            self.virtual_memory.set(vm as f64);
            self.resident_memory.set(rss as f64);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle itself is one of the entries.
            let open = dir.count().saturating_sub(1) as f64;
            self.open_fds.set(open);
            self.fd_used.set(open);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            if let Some(n) = soft_limit(&limits, "Max open files") {
                self.max_fds.set(n);
                self.fd_limit.set(n);
            }
            if let Some(n) = soft_limit(&limits, "Max address space") {
                self.virtual_memory_max.set(n);
            }
        }
    }
}

struct Stat {
    utime: u64,
    stime: u64,
    start_ticks: u64,
}

/// /proc/self/stat: fields after the parenthesised command name.
fn read_stat() -> Option<Stat> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_comm = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state); utime is field 14, stime 15,
    // starttime 22.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        start_ticks: field(22)?,
    })
}

/// Virtual and resident memory in bytes, from /proc/self/status (kB).
fn read_memory() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = |key: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].split_whitespace().next()?.parse().ok()
    };
    Some((kb("VmSize:")? * 1024, kb("VmRSS:")? * 1024))
}

fn boot_time() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The soft limit of a /proc/self/limits row; "unlimited" is the largest
/// value, as the Go client reports it.
fn soft_limit(limits: &str, name: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with(name))?;
    let soft = line[name.len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        Some(u64::MAX as f64)
    } else {
        soft.parse::<u64>().ok().map(|n| n as f64)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let stat = super::read_stat().expect("/proc/self/stat");
        assert!(stat.start_ticks > 0);
        let (vm, rss) = super::read_memory().expect("/proc/self/status");
        assert!(vm >= rss && rss > 0);
        assert!(super::boot_time().expect("btime") > 1_000_000_000);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \nMax address space         unlimited            unlimited            bytes     \n";
        assert_eq!(super::soft_limit(limits, "Max open files"), Some(1024.0));
        assert_eq!(
            super::soft_limit(limits, "Max address space"),
            Some(u64::MAX as f64)
        );
    }
}
