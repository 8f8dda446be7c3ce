//! etcd's YAML config file (`--config-file`, keys of `etcd.conf.yml.sample`).
//!
//! etcd reads it with `sigs.k8s.io/yaml` into its Go config struct, so:
//! unknown keys are ignored, keys match case-insensitively, `null`/empty
//! values keep the default, empty URL strings keep the default, durations
//! are integer nanoseconds, and scalars are turned into strings for string
//! settings. Unknown keys are ignored as etcd does, with a warning added.

use std::io::Read;

use serde_norway::Value as Yaml;

use super::settings::{Origin, Settings};
use super::table::{Kind, Setting, YamlKey, SETTINGS};
use super::urls;
use super::value::{expected, one_of, Value};
use super::ConfigError;

/// Loads `path` into `settings` (which start at their defaults).
pub(crate) fn load(
    path: &str,
    settings: &mut Settings,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let text = read(path)?;
    let doc: Yaml = serde_norway::from_str(&text)
        .map_err(|e| ConfigError::invalid(format!("error converting YAML to JSON: {e}")))?;
    let top = match doc {
        Yaml::Null => {
            finish(settings);
            return Ok(());
        }
        Yaml::Mapping(map) => map,
        other => {
            return Err(ConfigError::invalid(format!(
                "config file {path} must be a mapping of etcd settings, got {}",
                describe(&other)
            )))
        }
    };
    for (key, value) in &top {
        let key = scalar_text(key).unwrap_or_default();
        if let Some(setting) = find(|k| matches!(k, YamlKey::Top(top) if same_key(top, &key))) {
            apply(settings, setting, &key, value, path)?;
            continue;
        }
        let is_block = SETTINGS
            .iter()
            .any(|s| matches!(s.yaml, YamlKey::Nested(block, _) if same_key(block, &key)));
        if !is_block {
            warnings.push(format!("ignoring unrecognized config file key {key:?}"));
            continue;
        }
        let block = match value {
            Yaml::Null => continue,
            Yaml::Mapping(block) => block,
            other => return Err(bad_value(path, &key, other, "a mapping")),
        };
        for (inner, inner_value) in block {
            let inner = scalar_text(inner).unwrap_or_default();
            let path_key = format!("{key}.{inner}");
            match find(
                |k| matches!(k, YamlKey::Nested(b, i) if same_key(b, &key) && same_key(i, &inner)),
            ) {
                Some(setting) => apply(settings, setting, &path_key, inner_value, path)?,
                None => warnings.push(format!(
                    "ignoring unrecognized config file key {path_key:?}"
                )),
            }
        }
    }
    finish(settings);
    Ok(())
}

/// Reads the file, with Go's `open`/`read` error wording.
fn read(path: &str) -> Result<String, ConfigError> {
    let mut file = std::fs::File::open(path).map_err(|e| {
        ConfigError::invalid(format!("open {path}: {}", crate::gofmt::os_error_text(&e)))
    })?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| {
        ConfigError::invalid(format!("read {path}: {}", crate::gofmt::os_error_text(&e)))
    })?;
    Ok(text)
}

/// etcd's post-processing in `configFromFile`.
fn finish(settings: &mut Settings) {
    let discovery =
        !settings.str("discovery").is_empty() || !settings.str("discovery-srv").is_empty();
    if discovery && settings.str("initial-cluster") == super::table::get("initial-cluster").default
    {
        settings.derive("initial-cluster", Value::Str(String::new()));
    }
    if settings.str("initial-cluster-state").is_empty() {
        settings.derive("initial-cluster-state", Value::Str("new".into()));
    }
    if settings.uint("self-signed-cert-validity") == 0 {
        settings.derive("self-signed-cert-validity", Value::Uint(1));
    }
}

fn find(pred: impl Fn(&YamlKey) -> bool) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| pred(&s.yaml))
}

/// Go's encoding/json matches keys case-insensitively.
fn same_key(ours: &str, theirs: &str) -> bool {
    ours.eq_ignore_ascii_case(theirs)
}

/// Stores one key's value; `null` (and, where etcd does so, "") keeps the default.
fn apply(
    settings: &mut Settings,
    setting: &'static Setting,
    key: &str,
    value: &Yaml,
    path: &str,
) -> Result<(), ConfigError> {
    if let Some(value) = convert(setting, key, value, path)? {
        settings.set(setting, value, Origin::File(key.to_string()));
    }
    Ok(())
}

fn convert(
    setting: &Setting,
    key: &str,
    value: &Yaml,
    path: &str,
) -> Result<Option<Value>, ConfigError> {
    if matches!(value, Yaml::Null) {
        return Ok(None);
    }
    let bad = || bad_value(path, key, value, &expected(setting));
    let text = scalar_text(value);
    let converted = match setting.kind {
        Kind::Str => Value::Str(text.ok_or_else(bad)?),
        Kind::Bool => Value::Bool(yaml_bool(value).ok_or_else(bad)?),
        Kind::Uint | Kind::Millis => {
            Value::Uint(integer(value).and_then(Yaml::as_u64).ok_or_else(bad)?)
        }
        Kind::Uint32 => Value::Uint(
            integer(value)
                .and_then(Yaml::as_u64)
                .filter(|n| *n <= u64::from(u32::MAX))
                .ok_or_else(bad)?,
        ),
        Kind::Int => Value::Int(integer(value).and_then(Yaml::as_i64).ok_or_else(bad)?),
        Kind::Duration => {
            let nanos = integer(value).and_then(Yaml::as_u64).ok_or_else(bad)?;
            Value::Duration(std::time::Duration::from_nanos(nanos))
        }
        Kind::Urls => {
            let text = text.ok_or_else(bad)?;
            if text.is_empty() {
                return Ok(None);
            }
            Value::Urls(urls::parse_url_list(text.split(',')).map_err(|e| setup_error(key, &e))?)
        }
        Kind::Cors => {
            let text = text.ok_or_else(bad)?;
            if text.is_empty() {
                return Ok(None);
            }
            if text == "*" {
                Value::List(vec![text])
            } else {
                let list = urls::parse_unique_url_flag(&text).map_err(|e| setup_error(key, &e))?;
                Value::List(list.into_iter().map(|u| u.text).collect())
            }
        }
        Kind::StringSet => {
            let text = text.ok_or_else(bad)?;
            if text.is_empty() {
                return Ok(None);
            }
            let mut items: Vec<String> = text.split(',').map(str::to_string).collect();
            items.sort();
            items.dedup();
            Value::List(items)
        }
        Kind::StringSetList | Kind::StringList => {
            let Yaml::Sequence(items) = value else {
                return Err(bad());
            };
            let items: Option<Vec<String>> = items.iter().map(scalar_text).collect();
            Value::List(items.ok_or_else(bad)?)
        }
        Kind::Choice(valid) => {
            let text = text.ok_or_else(bad)?;
            if setting.name == "initial-cluster-state" {
                // etcd checks it later, in Validate, with its own message.
                Value::Str(text)
            } else if text.is_empty() {
                return Ok(None);
            } else if valid.contains(&text.as_str()) {
                Value::Str(text)
            } else {
                return Err(ConfigError::invalid(format!(
                    "unexpected error setting up {key}: invalid value {text:?} (expected {})",
                    one_of(valid)
                )));
            }
        }
        Kind::Ignored => Value::Ignored,
    };
    Ok(Some(converted))
}

/// etcd's message for a URL list it cannot use.
fn setup_error(key: &str, err: &str) -> ConfigError {
    ConfigError::invalid(format!("unexpected error setting up {key}: {err}"))
}

fn bad_value(path: &str, key: &str, value: &Yaml, expected: &str) -> ConfigError {
    ConfigError::invalid(format!(
        "invalid value {} for key {key:?} in config file {path}: expected {expected}",
        describe(value)
    ))
}

/// A YAML value as shown in messages.
fn describe(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => format!("{s:?}"),
        Yaml::Sequence(_) => "(a list)".into(),
        Yaml::Mapping(_) => "(a mapping)".into(),
        Yaml::Tagged(_) => "(a tagged value)".into(),
        other => scalar_text(other).unwrap_or_default(),
    }
}

/// A scalar as the string a Go string field would receive.
fn scalar_text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn integer(value: &Yaml) -> Option<&Yaml> {
    match value {
        Yaml::Number(n) if n.is_i64() || n.is_u64() => Some(value),
        _ => None,
    }
}

/// YAML 1.1 booleans, which etcd's YAML library (go-yaml v2) accepts.
fn yaml_bool(value: &Yaml) -> Option<bool> {
    match value {
        Yaml::Bool(b) => Some(*b),
        Yaml::String(s) => match s.as_str() {
            "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "True" | "TRUE" => Some(true),
            "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "False" | "FALSE" => {
                Some(false)
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn load_text(text: &str) -> (Result<Settings, String>, Vec<String>) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let path = file.path().to_str().unwrap().to_string();
        let mut settings = Settings::defaults();
        let mut warnings = Vec::new();
        let result = load(&path, &mut settings, &mut warnings)
            .map(|()| settings)
            .map_err(|e| e.message().replace(&path, "PATH"));
        (result, warnings)
    }

    #[test]
    fn reads_the_sample_keys() {
        let (settings, warnings) = load_text(
            "name: 'infra1'\ndata-dir:\nheartbeat-interval: 200\nelection-timeout: 2000\n\
             listen-client-urls: http://127.0.0.1:2379,http://10.0.0.1:2379\n\
             initial-cluster: infra1=http://127.0.0.1:2380\ninitial-cluster-state: existing\n\
             client-transport-security:\n  cert-file: /c.pem\n  client-cert-auth: true\n\
             peer-transport-security:\n  auto-tls: yes\n\
             log-outputs: [stdout]\ngrpc-keepalive-min-time: 1000000000\n",
        );
        let settings = settings.unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(settings.str("name"), "infra1");
        assert_eq!(settings.str("data-dir"), "");
        assert_eq!(settings.uint("heartbeat-interval"), 200);
        assert_eq!(settings.urls("listen-client-urls").len(), 2);
        assert_eq!(settings.str("initial-cluster-state"), "existing");
        assert_eq!(settings.str("cert-file"), "/c.pem");
        assert!(settings.bool("client-cert-auth"));
        assert!(settings.bool("peer-auto-tls"));
        assert_eq!(settings.list("log-outputs"), ["stdout"]);
        assert_eq!(
            settings.duration("grpc-keepalive-min-time"),
            Duration::from_secs(1)
        );
        assert_eq!(
            settings.origin("cert-file"),
            &Origin::File("client-transport-security.cert-file".into())
        );
    }

    #[test]
    fn unknown_keys_are_ignored_with_a_warning() {
        let (settings, warnings) =
            load_text("foo: 1\nNAME: x\nclient-transport-security:\n  bar: 2\n");
        assert_eq!(settings.unwrap().str("name"), "x");
        assert_eq!(
            warnings,
            [
                "ignoring unrecognized config file key \"foo\"",
                "ignoring unrecognized config file key \"client-transport-security.bar\""
            ]
        );
    }

    #[test]
    fn bad_values_name_key_value_and_expectation() {
        let (result, _) = load_text("heartbeat-interval: abc\n");
        assert_eq!(
            result.err().unwrap(),
            "invalid value \"abc\" for key \"heartbeat-interval\" in config file PATH: expected a non-negative integer number of milliseconds"
        );
        let (result, _) = load_text("grpc-keepalive-timeout: 10s\n");
        assert!(result
            .err()
            .unwrap()
            .contains("integer number of nanoseconds"));
        let (result, _) = load_text("listen-peer-urls: localhost:2380\n");
        assert_eq!(
            result.err().unwrap(),
            "unexpected error setting up listen-peer-urls: URL scheme must be http, https, unix, or unixs: localhost:2380"
        );
        let (result, _) = load_text("log-outputs: stderr\n");
        assert!(result.err().unwrap().contains("expected a list of strings"));
    }

    #[test]
    fn empty_values_keep_defaults() {
        let (settings, _) =
            load_text("listen-client-urls: ''\ninitial-cluster-state: ''\nname: 7\n");
        let settings = settings.unwrap();
        assert_eq!(
            settings.urls("listen-client-urls")[0].text,
            "http://localhost:2379"
        );
        assert_eq!(settings.str("initial-cluster-state"), "new");
        assert_eq!(settings.str("name"), "7");
    }

    #[test]
    fn missing_file_reads_like_go() {
        let mut settings = Settings::defaults();
        let err = load("/nonexistent/etcd.yml", &mut settings, &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.message(),
            "open /nonexistent/etcd.yml: no such file or directory"
        );
    }
}
