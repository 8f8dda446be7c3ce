//! etcd's logs: zap-style JSON lines by default
//! (`{"level":"info","ts":"…","caller":"…","msg":"…",…}`), or zap's console
//! format, to stderr, stdout or files. Tooling greps these lines ("ready to
//! serve client requests"), so message texts follow etcd's.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Console,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stderr,
    Stdout,
    File(PathBuf),
}

struct ZapLayer {
    format: Format,
    min: Level,
    sinks: Mutex<Vec<Box<dyn Write + Send>>>,
}

/// Installs the global logger. Call once, before anything logs.
pub fn init(level: Level, format: Format, outputs: &[Output]) -> std::io::Result<()> {
    let mut sinks: Vec<Box<dyn Write + Send>> = Vec::new();
    for o in outputs {
        sinks.push(match o {
            Output::Stderr => Box::new(std::io::stderr()),
            Output::Stdout => Box::new(std::io::stdout()),
            Output::File(p) => Box::new(OpenOptions::new().create(true).append(true).open(p)?),
        });
    }
    let layer = ZapLayer {
        format,
        min: level,
        sinks: Mutex::new(sinks),
    };
    // A second init (tests) keeps the first logger.
    let _ = tracing_subscriber::registry().with(layer).try_init();
    Ok(())
}

#[derive(Default)]
struct Fields {
    msg: String,
    logger: Option<String>,
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.msg = value.to_string(),
            "logger" => self.logger = Some(value.to_string()),
            name => {
                self.rest.insert(name.to_string(), value.into());
            }
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.insert(field.name().to_string(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest.insert(field.name().to_string(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.record_str(field, &text);
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG | Level::TRACE => "debug",
    }
}

impl<S: Subscriber> Layer<S> for ZapLayer {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        // tracing orders levels by verbosity: ERROR < WARN < … < TRACE
        *meta.level() <= self.min
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut f = Fields::default();
        event.record(&mut f);
        let caller = format!(
            "{}:{}",
            meta.file()
                .unwrap_or("?")
                .trim_start_matches("src/")
                .trim_start_matches("/"),
            meta.line().unwrap_or(0)
        );
        let ts = utc_timestamp(TimestampPrecision::Micros);
        let line = match self.format {
            Format::Json => {
                let mut m = serde_json::Map::new();
                m.insert("level".into(), level_name(meta.level()).into());
                m.insert("ts".into(), ts.into());
                if let Some(l) = f.logger {
                    m.insert("logger".into(), l.into());
                }
                m.insert("caller".into(), caller.into());
                m.insert("msg".into(), f.msg.into());
                m.extend(f.rest);
                let mut s = serde_json::Value::Object(m).to_string();
                s.push('\n');
                s
            }
            Format::Console => {
                let mut s = format!(
                    "{ts}\t{}\t{caller}\t{}",
                    level_name(meta.level()).to_uppercase(),
                    f.msg
                );
                if !f.rest.is_empty() {
                    let _ = write!(s, "\t{}", serde_json::Value::Object(f.rest));
                }
                s.push('\n');
                s
            }
        };
        // A logger that cannot write has nowhere to report it.
        if let Ok(mut sinks) = self.sinks.lock() {
            for w in sinks.iter_mut() {
                let _ = w.write_all(line.as_bytes());
                let _ = w.flush();
            }
        }
    }
}

/// How many decimals of a second a timestamp shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampPrecision {
    /// `.123`: zap's ISO8601 encoder, as etcd's client tools log.
    Millis,
    /// `.123456`: the server's log lines.
    Micros,
}

/// The current time as RFC 3339 UTC (`2026-11-21T10:42:00.123456Z`),
/// computed without a date crate.
pub fn utc_timestamp(precision: TimestampPrecision) -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let fraction = match precision {
        TimestampPrecision::Millis => format!("{:03}", d.subsec_millis()),
        TimestampPrecision::Micros => format!("{:06}", d.subsec_micros()),
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    )
}

#[cfg(test)]
mod tests {
    use super::{utc_timestamp, TimestampPrecision};

    #[test]
    fn timestamp_shape() {
        let ts = utc_timestamp(TimestampPrecision::Micros);
        assert_eq!(ts.len(), "2026-11-21T10:42:00.123456Z".len(), "{ts}");
        assert!(ts.starts_with("20"), "{ts}");
        let ts = utc_timestamp(TimestampPrecision::Millis);
        assert_eq!(ts.len(), "2026-11-21T10:42:00.123Z".len(), "{ts}");
    }
}
