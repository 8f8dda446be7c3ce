//! Typed setting values and how a flag or `ETCD_*` string becomes one.
//!
//! This mirrors the `Set` method of each Go `flag.Value` etcd registers, so
//! the same string is accepted or rejected as etcd would, with Go's error
//! wording followed by a hint about what is allowed.

use std::time::Duration;

use crate::gofmt::{self, NumError, NumErrorKind};

use super::table::{Kind, Setting};
use super::urls::{self, EtcdUrl};

/// A setting's value, typed by its [`Kind`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Bool(bool),
    Uint(u64),
    Int(i64),
    Duration(Duration),
    Urls(Vec<EtcdUrl>),
    List(Vec<String>),
    /// Value of a legacy flag etcd ignores.
    Ignored,
}

/// Why a flag value was rejected: Go's own text plus what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetError {
    /// The error text etcd prints ("parse error", "invalid value", a URL error).
    pub go: String,
    /// What the setting accepts, appended in parentheses.
    pub hint: Option<String>,
}

impl std::fmt::Display for SetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.hint {
            Some(hint) => write!(f, "{} ({hint})", self.go),
            None => f.write_str(&self.go),
        }
    }
}

impl std::error::Error for SetError {}

/// Parses a command-line or environment value for `setting`, like the Go
/// `flag.Value` etcd registers for it.
pub(crate) fn parse_flag_value(setting: &Setting, raw: &str) -> Result<Value, SetError> {
    let fail = |go: &str, hint: String| SetError {
        go: go.to_string(),
        hint: Some(hint),
    };
    match setting.kind {
        Kind::Str => Ok(Value::Str(raw.to_string())),
        Kind::Bool => gofmt::parse_bool(raw)
            .map(Value::Bool)
            .map_err(|_| fail("parse error", "expected true or false".into())),
        Kind::Uint | Kind::Millis => gofmt::parse_uint(raw, 0, 64)
            .map(Value::Uint)
            .map_err(|e| fail(num_error_text(&e), uint_hint(setting.kind))),
        Kind::Uint32 => gofmt::parse_uint(raw, 0, 32).map(Value::Uint).map_err(|e| {
            fail(
                &e.to_string(),
                format!("expected an integer between 0 and {}", u32::MAX),
            )
        }),
        Kind::Int => gofmt::parse_int(raw, 0)
            .map(Value::Int)
            .map_err(|e| fail(num_error_text(&e), "expected an integer".into())),
        Kind::Duration => parse_duration(raw)
            .map(Value::Duration)
            .map_err(|why| fail("parse error", format!("{why}; {DURATION_HINT}"))),
        Kind::Urls => urls::parse_unique_url_flag(raw)
            .map(Value::Urls)
            .map_err(|go| SetError { go, hint: None }),
        Kind::Cors => {
            if raw == "*" {
                return Ok(Value::List(vec!["*".to_string()]));
            }
            urls::parse_unique_url_flag(raw)
                .map(|list| Value::List(list.into_iter().map(|u| u.text).collect()))
                .map_err(|go| SetError {
                    go,
                    hint: Some("expected \"*\" or a comma-separated list of URLs".into()),
                })
        }
        Kind::StringSet | Kind::StringSetList => {
            let mut items: Vec<String> = raw.split(',').map(str::to_string).collect();
            items.sort();
            items.dedup();
            Ok(Value::List(items))
        }
        Kind::StringList => Ok(Value::List(raw.split(',').map(str::to_string).collect())),
        Kind::Choice(valid) => {
            if valid.contains(&raw) {
                Ok(Value::Str(raw.to_string()))
            } else {
                Err(fail("invalid value", format!("expected {}", one_of(valid))))
            }
        }
        Kind::Ignored => Ok(Value::Ignored),
    }
}

/// The default value of `setting`, parsed from the table.
pub(crate) fn default_value(setting: &Setting) -> Value {
    match (setting.kind, setting.default) {
        (Kind::Urls, "") => Value::Urls(Vec::new()),
        (Kind::StringList, "") => Value::List(Vec::new()),
        (Kind::Ignored, _) => Value::Ignored,
        (_, default) => match parse_flag_value(setting, default) {
            Ok(value) => value,
            Err(e) => panic!("bad default {default:?} for --{}: {e}", setting.name),
        },
    }
}

/// What a setting of this kind accepts, for config-file messages.
pub(crate) fn expected(setting: &Setting) -> String {
    match setting.kind {
        Kind::Str => "a string".into(),
        Kind::Bool => "true or false".into(),
        Kind::Uint | Kind::Millis => uint_hint(setting.kind).trim_start_matches("expected ").into(),
        Kind::Uint32 => format!("an integer between 0 and {}", u32::MAX),
        Kind::Int => "an integer".into(),
        Kind::Duration => {
            "an integer number of nanoseconds (etcd's config file does not take duration strings such as \"10m\")".into()
        }
        Kind::Urls | Kind::Cors | Kind::StringSet => "a comma-separated string".into(),
        Kind::StringSetList | Kind::StringList => "a list of strings, e.g. [a, b]".into(),
        Kind::Choice(valid) => one_of(valid),
        Kind::Ignored => "anything".into(),
    }
}

/// `"a", "b" or "c"`.
pub(crate) fn one_of(valid: &[&str]) -> String {
    let quoted: Vec<String> = valid.iter().map(|v| format!("{v:?}")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

const DURATION_HINT: &str = "expected a duration such as \"300ms\", \"5s\" or \"10m\"";

/// What Go's `flag` package says for a `strconv` failure in its own
/// integer flags: "parse error" for syntax, `strconv.ErrRange`'s text.
fn num_error_text(e: &NumError) -> &'static str {
    match e.kind() {
        NumErrorKind::Syntax => "parse error",
        NumErrorKind::Range => "value out of range",
    }
}

/// `time.ParseDuration`, restricted to non-negative results because the
/// settings that take durations are all intervals or timeouts.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let nanos = gofmt::parse_duration(s)?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| format!("negative duration {s:?} is not allowed"))
}

fn uint_hint(kind: Kind) -> String {
    if kind == Kind::Millis {
        "expected a non-negative integer number of milliseconds".into()
    } else {
        "expected a non-negative integer".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::table::{self, SETTINGS};

    #[test]
    fn every_default_parses() {
        for setting in SETTINGS {
            default_value(setting);
        }
    }

    #[test]
    fn errors_keep_go_text_and_add_a_hint() {
        let e = parse_flag_value(table::get("heartbeat-interval"), "abc").unwrap_err();
        assert_eq!(
            e.to_string(),
            "parse error (expected a non-negative integer number of milliseconds)"
        );
        let e = parse_flag_value(table::get("initial-cluster-state"), "foo").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value (expected \"new\" or \"existing\")"
        );
        let e = parse_flag_value(table::get("max-concurrent-streams"), "x").unwrap_err();
        assert!(e
            .go
            .starts_with("strconv.ParseUint: parsing \"x\": invalid syntax"));
    }

    #[test]
    fn durations_must_not_be_negative() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("-1s"),
            Err("negative duration \"-1s\" is not allowed".to_string())
        );
        assert!(parse_duration("10").is_err());
    }

    #[test]
    fn string_sets_are_sorted_and_unique() {
        let v = parse_flag_value(table::get("log-outputs"), "stdout,stderr,stdout").unwrap();
        assert_eq!(v, Value::List(vec!["stderr".into(), "stdout".into()]));
        let v = parse_flag_value(table::get("cipher-suites"), "b,a").unwrap();
        assert_eq!(v, Value::List(vec!["b".into(), "a".into()]));
    }
}
