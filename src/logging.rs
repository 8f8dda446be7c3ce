//! etcd's logs: zap-style JSON lines by default
//! (`{"level":"info","ts":"…","caller":"…","msg":"…",…}`), or zap's console
//! format, to stderr, stdout, files or journald (`systemd/journal`, see
//! `journal`). Tooling greps these lines ("ready to serve client
//! requests"), so message texts follow etcd's. The level can change at run
//! time (`set_level`, on SIGHUP).

mod journal;

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
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
    /// journald's native protocol (etcd's `systemd/journal`).
    Journal,
}

enum Sink {
    Stream(Box<dyn Write + Send>),
    Journal(journal::Journal),
}

struct ZapLayer {
    format: Format,
    sinks: Mutex<Vec<Sink>>,
    has_journal: bool,
    /// `SYSLOG_IDENTIFIER` of journal entries: the program's name.
    identifier: String,
}

/// The most verbose level logged, as `level_rank`; changes at run time.
static MIN_LEVEL: AtomicU8 = AtomicU8::new(3);

fn level_rank(l: Level) -> u8 {
    match l {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// Changes the level of the installed logger; returns the previous one.
pub fn set_level(level: Level) -> Level {
    let previous = current_level();
    MIN_LEVEL.store(level_rank(level), Ordering::Relaxed);
    previous
}

pub fn current_level() -> Level {
    match MIN_LEVEL.load(Ordering::Relaxed) {
        1 => Level::ERROR,
        2 => Level::WARN,
        3 => Level::INFO,
        4 => Level::DEBUG,
        _ => Level::TRACE,
    }
}

/// Installs the global logger. Call once, before anything logs. An output
/// that cannot be opened is an error whose text is etcd's (journald:
/// "can't find journal (…)").
pub fn init(level: Level, format: Format, outputs: &[Output]) -> std::io::Result<()> {
    let mut sinks = Vec::new();
    for o in outputs {
        sinks.push(match o {
            Output::Stderr => Sink::Stream(Box::new(std::io::stderr())),
            Output::Stdout => Sink::Stream(Box::new(std::io::stdout())),
            Output::File(p) => Sink::Stream(Box::new(
                OpenOptions::new().create(true).append(true).open(p)?,
            )),
            Output::Journal => Sink::Journal(journal::Journal::connect(journal::SOCKET.as_ref())?),
        });
    }
    set_level(level);
    let identifier = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "etcd".to_string());
    let layer = ZapLayer {
        format,
        has_journal: sinks.iter().any(|s| matches!(s, Sink::Journal(_))),
        sinks: Mutex::new(sinks),
        identifier,
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

/// etcd's field names use dashes (`local-member-id`, `data-dir`); Rust
/// identifiers cannot, so fields are written `local_member_id` in code and
/// renamed here, once, for every line.
fn etcd_field_name(name: &str) -> String {
    name.replace('_', "-")
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.msg = value.to_string(),
            "logger" => self.logger = Some(value.to_string()),
            name => {
                self.rest.insert(etcd_field_name(name), value.into());
            }
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest
            .insert(etcd_field_name(field.name()), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest
            .insert(etcd_field_name(field.name()), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest
            .insert(etcd_field_name(field.name()), value.into());
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

/// journald's priority for a level, as etcd maps zap's levels.
fn journal_priority(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "3",
        Level::WARN => "4",
        Level::INFO => "6",
        Level::DEBUG | Level::TRACE => "7",
    }
}

impl ZapLayer {
    /// etcd's journal entry: the whole log line as MESSAGE, its priority,
    /// the caller's package and the program name; plus each structured
    /// field under its own journal field name, and the source location.
    fn journal_fields(
        &self,
        meta: &Metadata<'_>,
        line: &str,
        caller: &str,
        rest: &serde_json::Map<String, serde_json::Value>,
    ) -> Vec<(String, String)> {
        let package = caller.rsplit_once('/').map_or(".", |(dir, _)| dir);
        let mut fields = vec![
            ("MESSAGE".to_string(), line.trim_end().to_string()),
            (
                "PRIORITY".to_string(),
                journal_priority(meta.level()).to_string(),
            ),
            ("PACKAGE".to_string(), package.to_string()),
            ("SYSLOG_IDENTIFIER".to_string(), self.identifier.clone()),
            (
                "CODE_FILE".to_string(),
                meta.file().unwrap_or("?").to_string(),
            ),
            (
                "CODE_LINE".to_string(),
                meta.line().unwrap_or(0).to_string(),
            ),
        ];
        for (name, value) in rest {
            let name = journal::field_name(name);
            if fields.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            fields.push((name, value));
        }
        fields
    }
}

impl<S: Subscriber> Layer<S> for ZapLayer {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The level can change at run time: ask `enabled` every time.
        Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        level_rank(*meta.level()) <= MIN_LEVEL.load(Ordering::Relaxed)
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
        let rest_for_journal = self.has_journal.then(|| f.rest.clone());
        let caller_for_journal = if self.has_journal {
            caller.clone()
        } else {
            String::new()
        };
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
        let journal_entry = rest_for_journal
            .map(|rest| self.journal_fields(meta, &line, &caller_for_journal, &rest));
        // A logger that cannot write has nowhere to report it; journald
        // gone away falls back to stderr, as etcd's journal writer does.
        if let Ok(mut sinks) = self.sinks.lock() {
            for sink in sinks.iter_mut() {
                match sink {
                    Sink::Stream(w) => {
                        let _ = w.write_all(line.as_bytes());
                        let _ = w.flush();
                    }
                    Sink::Journal(j) => {
                        let sent = journal_entry.as_ref().map(|fields| j.send(fields));
                        if !matches!(sent, Some(Ok(()))) {
                            let _ = std::io::stderr().write_all(line.as_bytes());
                        }
                    }
                }
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
