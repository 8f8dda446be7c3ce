//! The progress bar `check perf` and `check datascale` draw: a port of
//! cheggaaa/pb.v1 as etcdctl configures it (format "Bom !", counters,
//! percent, time left, final time), redrawn on stdout every 200 ms with a
//! carriage return. Without a terminal (pb asks /dev/tty for its width)
//! there is no bar, only the counters and times.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rsetcd::gofmt;

const REFRESH_RATE: Duration = Duration::from_millis(200);

// etcdctl's `bar.Format("Bom !")`.
const BAR_START: &str = "B";
const BAR_CURRENT: &str = "o";
const BAR_CURRENT_END: &str = "m";
const BAR_EMPTY: &str = " ";
const BAR_END: &str = "!";

struct State {
    total: i64,
    current: i64,
    /// The value at the last redraw, and when it last changed.
    previous: i64,
    changed_at: Instant,
    started_at: Instant,
    finished: bool,
}

/// A running progress bar; clones share it.
#[derive(Clone)]
pub struct ProgressBar {
    state: Arc<Mutex<State>>,
    refresher: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl ProgressBar {
    /// pb's `New(total)` followed by `Start()`: draws at once, then every
    /// 200 ms.
    pub fn start(total: i64) -> Self {
        let now = Instant::now();
        let bar = ProgressBar {
            state: Arc::new(Mutex::new(State {
                total,
                current: 0,
                previous: 0,
                changed_at: now,
                started_at: now,
                finished: false,
            })),
            refresher: Arc::new(Mutex::new(None)),
        };
        bar.update();
        let ticking = bar.clone();
        let handle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_RATE).await;
                ticking.update();
            }
        });
        if let Ok(mut slot) = bar.refresher.lock() {
            *slot = Some(handle);
        }
        bar
    }

    pub fn add(&self, n: i64) {
        if let Ok(mut state) = self.state.lock() {
            state.current += n;
        }
    }

    /// Draws the final state (with the elapsed time) and ends the line.
    pub fn finish(&self) {
        if let Ok(mut slot) = self.refresher.lock() {
            if let Some(handle) = slot.take() {
                handle.abort();
            }
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.finished {
            return;
        }
        state.finished = true;
        let line = render(&state, terminal_width(), Instant::now());
        print_now(&format!("\r{line}\n"));
    }

    fn update(&self) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.finished {
            return;
        }
        let now = Instant::now();
        if state.previous != state.current {
            state.changed_at = now;
            state.previous = state.current;
        }
        let line = render(&state, terminal_width(), now);
        print_now(&format!("\r{line}"));
    }
}

fn print_now(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// pb's `write`: `prefix + counters + bar + percent + time`, padded to
/// the terminal's width.
fn render(state: &State, width: usize, now: Instant) -> String {
    let (total, current) = (state.total, state.current);
    let percent = if total > 0 {
        current as f64 / (total as f64 / 100.0)
    } else {
        current as f64 / 100.0
    };
    let percent_box = format!(" {percent:6.2}%");
    let counters_box = if total > 0 {
        format!(" {current} / {total} ")
    } else {
        format!(" {current} / ? ")
    };
    let since_start = now.duration_since(state.started_at);
    let time_box = if state.finished {
        let whole = Duration::from_secs(since_start.as_secs());
        format!(" {}", gofmt::format_duration(whole))
    } else if current > 0 && total > 0 {
        // pb's integer arithmetic on nanoseconds, truncated to seconds.
        let per_entry =
            state.changed_at.duration_since(state.started_at).as_nanos() as i128 / current as i128;
        let left = (total - current) as i128 * per_entry
            - now.duration_since(state.changed_at).as_nanos() as i128;
        let left_secs = left / 1_000_000_000;
        if left_secs > 0 {
            format!(" {}", minutes_seconds(left_secs as u64))
        } else {
            String::new()
        }
    } else {
        String::new()
    };

    let fixed = counters_box.chars().count()
        + BAR_START.len()
        + BAR_END.len()
        + percent_box.chars().count()
        + time_box.chars().count();
    let mut bar_box = String::new();
    if width > fixed && total > 0 {
        let size = width - fixed;
        let filled = ((current as f64 / total as f64) * size as f64).ceil() as usize;
        let filled = filled.min(size);
        let empty = size - filled;
        bar_box.push_str(BAR_START);
        if empty == 0 {
            bar_box.push_str(&BAR_CURRENT.repeat(filled));
        } else if filled > 0 {
            bar_box.push_str(&BAR_CURRENT.repeat(filled - BAR_CURRENT_END.len()));
            bar_box.push_str(BAR_CURRENT_END);
        }
        bar_box.push_str(&BAR_EMPTY.repeat(empty));
        bar_box.push_str(BAR_END);
    }
    let mut out = format!("{counters_box}{bar_box}{percent_box}{time_box}");
    let len = out.chars().count();
    if len < width {
        out.push_str(&" ".repeat(width - len));
    }
    out
}

/// pb's duration format for the time left: `00m59s`, `1h02m03s`.
fn minutes_seconds(secs: u64) -> String {
    let mut out = String::new();
    let mut rest = secs;
    if rest > 24 * 3600 {
        out.push_str(&format!("{}d", rest / (24 * 3600)));
        rest %= 24 * 3600;
    }
    if rest > 3600 {
        out.push_str(&format!("{}h", rest / 3600));
        rest %= 3600;
    }
    out.push_str(&format!("{:02}m{:02}s", rest / 60, rest % 60));
    out
}

nix::ioctl_read_bad!(window_size, nix::libc::TIOCGWINSZ, nix::libc::winsize);

/// The width of the controlling terminal (pb asks /dev/tty, else stdin);
/// 0 when there is none.
fn terminal_width() -> usize {
    let tty = File::open("/dev/tty");
    let fd = match &tty {
        Ok(file) => file.as_raw_fd(),
        Err(_) => std::io::stdin().as_raw_fd(),
    };
    let mut size = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `size`, which outlives
    // the call; `fd` is open for its duration.
    match unsafe { window_size(fd, &mut size) } {
        Ok(_) => usize::from(size.ws_col),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(current: i64, total: i64, elapsed: Duration, finished: bool) -> (State, Instant) {
        let start = Instant::now();
        let now = start + elapsed;
        (
            State {
                total,
                current,
                previous: current,
                changed_at: now,
                started_at: start,
                finished,
            },
            now,
        )
    }

    #[test]
    fn renders_like_pb_without_a_terminal() {
        let (s, now) = state(0, 60, Duration::ZERO, false);
        assert_eq!(render(&s, 0, now), " 0 / 60    0.00%");
        let (s, now) = state(1, 60, Duration::from_millis(1000), false);
        assert_eq!(render(&s, 0, now), " 1 / 60    1.67% 00m59s");
        let (s, now) = state(60, 60, Duration::from_millis(60_100), true);
        assert_eq!(render(&s, 0, now), " 60 / 60  100.00% 1m0s");
    }

    #[test]
    fn draws_the_bar_on_a_terminal() {
        let (s, now) = state(30, 60, Duration::from_secs(30), false);
        let line = render(&s, 50, now);
        assert_eq!(line.chars().count(), 50);
        assert!(line.starts_with(" 30 / 60 Booooo"), "{line:?}");
        assert!(line.contains("m      "), "{line:?}");
    }
}
