//! etcd's checks and derived defaults, applied once all sources are merged:
//! `embed.Config.Validate`, the etcdmain adjustments around it (advertise
//! URLs, discovery, data-dir and initial-cluster defaults), and finally
//! rsetcd's own "is not supported yet" check.

use std::time::Duration;

use crate::gofmt::format_duration;

use super::settings::{Origin, Settings};
use super::table::{self, Kind, Setting, Support};
use super::urls::{self, EtcdUrl};
use super::value::{default_value, Value};
use super::ConfigError;

/// Which etcd code path produced the settings; a few rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    CommandLine,
    ConfigFile,
}

/// etcd's `maxElectionMs`.
const MAX_ELECTION_MS: u64 = 50_000;
/// rafthttp's `DefaultConnReadTimeout` / `DefaultConnWriteTimeout`.
const MIN_RAFT_CONN_TIMEOUT: Duration = Duration::from_secs(5);
/// The initial cluster etcd derives from the default name.
const DEFAULT_INITIAL_CLUSTER: &str = "default=http://localhost:2380";
const UNSET_ADVERTISE_CLIENT_URLS: &str =
    "--advertise-client-urls is required when --listen-client-urls is set explicitly";

/// Log levels zap accepts (etcd passes the string to zap).
pub(crate) const LOG_LEVELS: &[&str] = &[
    "debug", "DEBUG", "info", "INFO", "", "warn", "WARN", "error", "ERROR", "dpanic", "DPANIC",
    "panic", "PANIC", "fatal", "FATAL",
];

/// Applies etcd's derivations and checks; returns the final settings.
pub(crate) fn resolve(
    mut s: Settings,
    mode: Mode,
    warnings: &mut Vec<String>,
    infos: &mut Vec<String>,
) -> Result<Settings, ConfigError> {
    let may_be_proxy = may_be_proxy(&s);
    if mode == Mode::CommandLine {
        for name in ["raft-read-timeout", "raft-write-timeout"] {
            if s.duration(name) < MIN_RAFT_CONN_TIMEOUT {
                s.derive(name, Value::Duration(MIN_RAFT_CONN_TIMEOUT));
                infos.push(format!(
                    "{name} increased to minimum value: {}",
                    format_duration(MIN_RAFT_CONN_TIMEOUT)
                ));
            }
        }
        // Listening on explicit client URLs drops the localhost advertise default.
        if s.is_explicit("listen-client-urls")
            && !s.is_explicit("advertise-client-urls")
            && !may_be_proxy
        {
            s.derive("advertise-client-urls", Value::Urls(Vec::new()));
        }
        let discovery = ["discovery", "discovery-srv", "discovery-srv-name"]
            .iter()
            .any(|name| !s.str(name).is_empty());
        if discovery && !s.is_explicit("initial-cluster") {
            s.derive("initial-cluster", Value::Str(String::new()));
        }
    }

    match validate(&s, warnings) {
        Err(e)
            if mode == Mode::CommandLine
                && may_be_proxy
                && e.message() == UNSET_ADVERTISE_CLIENT_URLS => {}
        Err(e) => return Err(e),
        Ok(()) => {}
    }

    if s.str("data-dir").is_empty() {
        let dir = format!("{}.etcd", s.str("name"));
        warnings.push(format!(
            "'data-dir' was empty; using default (data-dir: {dir})"
        ));
        s.derive("data-dir", Value::Str(dir));
    }
    // `etcd --name x` alone gets `x=<advertise peer URLs>` as its initial cluster.
    if s.str("name") != "default" && s.str("initial-cluster") == DEFAULT_INITIAL_CLUSTER {
        let derived =
            initial_cluster_from_name(s.str("name"), s.urls("initial-advertise-peer-urls"));
        s.derive("initial-cluster", Value::Str(derived));
    }
    let bcrypt_cost = s.uint("bcrypt-cost");
    if !(4..=31).contains(&bcrypt_cost) {
        warnings.push(format!(
            "use default bcrypt cost instead of the invalid given cost (min-cost: 4, max-cost: 31, default-cost: 10, given-cost: {bcrypt_cost})"
        ));
        s.derive("bcrypt-cost", Value::Uint(10));
    }
    if s.uint("max-request-bytes") > RECOMMENDED_MAX_REQUEST_BYTES {
        warnings.push(format!(
            "exceeded recommended request limit (max-request-bytes: {}, recommended-request-bytes: {RECOMMENDED_MAX_REQUEST_BYTES})",
            s.uint("max-request-bytes")
        ));
    }
    parse_initial_cluster(s.str("initial-cluster"))?;
    auto_compaction(&s)?;
    check_supported(&s)?;
    Ok(s)
}

/// etcd's `recommendedMaxRequestBytes` (10 MiB).
const RECOMMENDED_MAX_REQUEST_BYTES: u64 = 10 * 1024 * 1024;

/// etcd's `embed.Config.Validate`, in etcd's order.
fn validate(s: &Settings, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
    let fail = |message: String| Err(ConfigError::invalid(message));
    validate_logging(s)?;
    for name in [
        "listen-peer-urls",
        "listen-client-urls",
        "listen-client-http-urls",
        "listen-metrics-urls",
    ] {
        urls::check_bind_urls(s.urls(name)).map_err(ConfigError::invalid)?;
        if name == "listen-client-http-urls" && s.urls(name).is_empty() {
            warnings.push(
                "Running http and grpc server on single port. This is not recommended for production."
                    .into(),
            );
        }
    }
    for name in ["initial-advertise-peer-urls", "advertise-client-urls"] {
        if let Err(e) = urls::check_host_urls(s.urls(name)) {
            return fail(format!(
                "--{name} {:?} must be \"host:port\" ({e})",
                joined(s.urls(name))
            ));
        }
    }
    let bootstrap_flags = ["discovery", "initial-cluster", "discovery-srv"]
        .iter()
        .filter(|name| !s.str(name).is_empty())
        .count();
    let state = s.str("initial-cluster-state");
    if state != "new" && state != "existing" {
        return fail(format!("unexpected clusterState {state:?}"));
    }
    if bootstrap_flags > 1 {
        return fail(
            "multiple discovery or bootstrap flags are set. Choose one of \"initial-cluster\", \"discovery\" or \"discovery-srv\"".into(),
        );
    }
    let tick = s.uint("heartbeat-interval");
    let election = s.uint("election-timeout");
    if tick == 0 {
        return fail(format!("--heartbeat-interval must be >0 (set to {tick}ms)"));
    }
    if election == 0 {
        return fail(format!(
            "--election-timeout must be >0 (set to {election}ms)"
        ));
    }
    if tick.saturating_mul(5) > election {
        return fail(format!(
            "--election-timeout[{election}ms] should be at least as 5 times as --heartbeat-interval[{tick}ms]"
        ));
    }
    if election > MAX_ELECTION_MS {
        return fail(format!(
            "--election-timeout[{election}ms] is too long, and should be set less than {MAX_ELECTION_MS}ms"
        ));
    }
    if !s.urls("listen-client-urls").is_empty() && s.urls("advertise-client-urls").is_empty() {
        return fail(UNSET_ADVERTISE_CLIENT_URLS.into());
    }
    let mode = s.str("auto-compaction-mode");
    if !matches!(mode, "" | "periodic" | "revision") {
        return fail(format!("unknown auto-compaction-mode {mode:?}"));
    }
    let checkpoint = s.bool("experimental-enable-lease-checkpoint");
    let persist = s.bool("experimental-enable-lease-checkpoint-persist");
    if checkpoint && !persist {
        warnings.push("Detected that checkpointing is enabled without persistence. Consider enabling experimental-enable-lease-checkpoint-persist".into());
    }
    if persist && !checkpoint {
        return fail("setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint".into());
    }
    let hash_check = s.duration("experimental-compact-hash-check-time");
    if hash_check.is_zero() {
        return fail(format!(
            "--experimental-compact-hash-check-time must be >0 (set to {})",
            format_duration(hash_check)
        ));
    }
    validate_tls_versions(s)
}

/// etcd's `setupLogging` checks, plus the level and format values.
fn validate_logging(s: &Settings) -> Result<(), ConfigError> {
    let fail = |message: String| Err(ConfigError::invalid(message));
    match s.str("logger") {
        "zap" => {}
        "capnslog" => return fail("--logger=capnslog is removed in v3.5".into()),
        other => return fail(format!("unknown logger option {other:?}")),
    }
    let outputs = s.list("log-outputs");
    if outputs.len() > 1 && outputs.iter().any(|o| o == "default") {
        return fail("multi logoutput for \"default\" is not supported yet".into());
    }
    if s.bool("enable-log-rotation") {
        let files = outputs
            .iter()
            .filter(|o| !matches!(o.as_str(), "default" | "stderr" | "stdout"))
            .count();
        if (outputs.len() == 1 && files == 0) || files > 1 {
            return fail("--log-outputs requires a single file path when --log-rotate-config-json is defined".into());
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(s.str("log-rotation-config-json"))
        {
            return fail(format!("improperly formatted log rotation config: {e}"));
        }
    }
    if outputs.iter().any(|o| o == "systemd/journal") && outputs.len() > 1 {
        let quoted: Vec<String> = outputs.iter().map(|o| format!("{o:?}")).collect();
        return fail(format!(
            "running with systemd/journal but other '--log-outputs' values ([{}]) are configured with 'default'; override 'default' value with something else",
            quoted.join(" ")
        ));
    }
    let level = s.str("log-level");
    if !LOG_LEVELS.contains(&level) {
        return fail(format!(
            "invalid value {level:?} for --log-level: only supports debug, info, warn, error, panic, or fatal"
        ));
    }
    let format = s.str("log-format");
    if !matches!(format, "json" | "console" | "") {
        return fail(format!(
            "invalid value {format:?} for --log-format: only supports json or console"
        ));
    }
    Ok(())
}

/// etcd's `tlsutil.GetTLSVersion` and the checks that use it.
fn validate_tls_versions(s: &Settings) -> Result<(), ConfigError> {
    let version = |name: &str| -> Result<u8, ConfigError> {
        match s.str(name) {
            "" => Ok(0),
            "TLS1.2" => Ok(2),
            "TLS1.3" => Ok(3),
            other => Err(ConfigError::invalid(format!(
                "unexpected TLS version {other:?} (must be one of: TLS1.2, TLS1.3)"
            ))),
        }
    };
    let min = version("tls-min-version")?;
    let max = version("tls-max-version")?;
    if max != 0 && min > max {
        return Err(ConfigError::invalid(format!(
            "min version ({}) is greater than max version ({})",
            s.str("tls-min-version"),
            s.str("tls-max-version")
        )));
    }
    if min == 3 && !s.list("cipher-suites").is_empty() {
        return Err(ConfigError::invalid(
            "cipher suites cannot be configured when only TLS1.3 is enabled".into(),
        ));
    }
    Ok(())
}

/// etcdmain's `mayBeProxy`: a v2 proxy does not need advertise-client-urls.
fn may_be_proxy(s: &Settings) -> bool {
    let may_fall_back = !s.str("discovery").is_empty() && s.str("discovery-fallback") == "proxy";
    s.str("proxy") != "off" || may_fall_back
}

/// etcd's `InitialClusterFromName`.
fn initial_cluster_from_name(name: &str, peer_urls: &[EtcdUrl]) -> String {
    let name = if name.is_empty() { "default" } else { name };
    peer_urls
        .iter()
        .map(|u| format!("{name}={}", u.text))
        .collect::<Vec<_>>()
        .join(",")
}

/// etcd's `types.NewURLsMap`: `name=url` pairs, comma separated; a name may
/// repeat to give a member several peer URLs.
pub(crate) fn parse_initial_cluster(text: &str) -> Result<Vec<(String, EtcdUrl)>, ConfigError> {
    let mut members = Vec::new();
    for item in text.split(',').filter(|item| !item.is_empty()) {
        let (name, url) = item.split_once('=').unwrap_or((item, ""));
        let parsed = urls::parse_url_list([url])
            .map_err(|e| ConfigError::invalid(format!("error setting up initial cluster: {e}")))?;
        members.extend(parsed.into_iter().map(|u| (name.to_string(), u)));
    }
    Ok(members)
}

/// What `--auto-compaction-retention` means under the given mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    Disabled,
    /// Keep this much history (periodic mode).
    Periodic(Duration),
    /// Keep this many revisions (revision mode).
    Revision(u64),
}

/// etcd's `parseCompactionRetention` plus the mode check of
/// `v3compactor.New`: in periodic mode a plain number is hours and anything
/// else a Go duration; revision mode takes a number of revisions; 0
/// disables. Where etcd would accept a value that cannot work (a negative
/// period, a duration as a revision count) the setting is refused instead.
pub(crate) fn auto_compaction(s: &Settings) -> Result<AutoCompaction, ConfigError> {
    let origin = s.origin("auto-compaction-retention").describe();
    auto_compaction_retention(
        s.str("auto-compaction-mode"),
        s.str("auto-compaction-retention"),
    )
    .map_err(|message| ConfigError::invalid(format!("{message}{origin}")))
}

/// The value rules of [`auto_compaction`]; the error names the flag, the
/// value and what the mode accepts.
pub(crate) fn auto_compaction_retention(
    mode: &str,
    retention: &str,
) -> Result<AutoCompaction, String> {
    const PERIODIC: &str =
        "periodic mode takes 0 (disabled), a number of hours, or a duration such as \"30m\"";
    const REVISION: &str = "revision mode takes 0 (disabled) or a number of revisions to keep";
    if mode.is_empty() {
        return match retention {
            "0" => Ok(AutoCompaction::Disabled),
            _ => Err("--auto-compaction-mode is undefined".into()),
        };
    }
    let whole = retention.parse::<i64>().ok().filter(|n| *n >= 0);
    match (mode, whole) {
        (_, Some(0)) => Ok(AutoCompaction::Disabled),
        ("revision", Some(n)) => Ok(AutoCompaction::Revision(n as u64)),
        ("revision", None) => Err(format!(
            "error parsing CompactionRetention: --auto-compaction-retention={retention} is not a number of revisions ({REVISION})"
        )),
        (_, Some(hours)) => Ok(AutoCompaction::Periodic(Duration::from_secs(
            (hours as u64).saturating_mul(3600),
        ))),
        (_, None) => match crate::gofmt::parse_duration(retention) {
            Err(e) => Err(format!(
                "error parsing CompactionRetention: {e} (--auto-compaction-retention={retention}: {PERIODIC})"
            )),
            Ok(0) => Ok(AutoCompaction::Disabled),
            Ok(nanos) if nanos < 0 => Err(format!(
                "error parsing CompactionRetention: --auto-compaction-retention={retention} is negative ({PERIODIC})"
            )),
            Ok(nanos) => Ok(AutoCompaction::Periodic(Duration::from_nanos(nanos as u64))),
        },
    }
}

/// Fails on any setting the server does not implement yet, unless it is at
/// its default.
fn check_supported(s: &Settings) -> Result<(), ConfigError> {
    for (setting, value, origin) in s.iter() {
        if setting.support == Support::NotYet
            && *origin != Origin::Default
            && !is_default(setting, value)
        {
            return Err(ConfigError::invalid(format!(
                "--{} is not supported yet{}",
                setting.name,
                origin.describe()
            )));
        }
    }
    for (name, schemes) in [
        ("listen-client-urls", &["http", "https"][..]),
        ("listen-peer-urls", &["http", "https"][..]),
        ("listen-metrics-urls", &["http", "https"][..]),
    ] {
        if let Some(u) = s
            .urls(name)
            .iter()
            .find(|u| !schemes.contains(&u.scheme.as_str()))
        {
            return Err(ConfigError::invalid(format!(
                "--{name} with a {:?} URL is not supported yet ({}){}",
                u.scheme,
                u.text,
                s.origin(name).describe()
            )));
        }
    }
    Ok(())
}

fn is_default(setting: &Setting, value: &Value) -> bool {
    if setting.name == "backend-bbolt-freelist-type" {
        // etcd uses the map freelist for anything but "array".
        return !matches!(value, Value::Str(v) if v == "array");
    }
    *value == default_value(setting)
}

fn joined(list: &[EtcdUrl]) -> String {
    list.iter()
        .map(|u| u.text.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Settings rsetcd supports, for documentation and tests.
pub fn supported_settings() -> Vec<&'static str> {
    table::SETTINGS
        .iter()
        .filter(|s| s.support == Support::Supported && s.kind != Kind::Ignored)
        .map(|s| s.name)
        .collect()
}

/// Settings accepted only at their default value for now.
pub fn unsupported_settings() -> Vec<&'static str> {
    table::SETTINGS
        .iter()
        .filter(|s| s.support == Support::NotYet)
        .map(|s| s.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_follows_etcd() {
        assert_eq!(
            auto_compaction_retention("periodic", "0"),
            Ok(AutoCompaction::Disabled)
        );
        assert_eq!(
            auto_compaction_retention("periodic", "1"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(3600)))
        );
        assert_eq!(
            auto_compaction_retention("periodic", "30m"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(1800)))
        );
        assert_eq!(
            auto_compaction_retention("revision", "1000"),
            Ok(AutoCompaction::Revision(1000))
        );
        assert_eq!(
            auto_compaction_retention("periodic", "1s"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(1)))
        );
        assert_eq!(
            auto_compaction_retention("periodic", "abc"),
            Err("error parsing CompactionRetention: time: invalid duration \"abc\" (--auto-compaction-retention=abc: periodic mode takes 0 (disabled), a number of hours, or a duration such as \"30m\")".into())
        );
        // etcd's own text for a negative number: it is not hours, so Go
        // parses it as a duration without a unit.
        let negative = auto_compaction_retention("periodic", "-1").unwrap_err();
        assert!(
            negative.starts_with(
                "error parsing CompactionRetention: time: missing unit in duration \"-1\""
            ),
            "{negative}"
        );
        assert!(auto_compaction_retention("periodic", "-1h")
            .unwrap_err()
            .contains("--auto-compaction-retention=-1h is negative"));
        assert_eq!(
            auto_compaction_retention("revision", "1h"),
            Err("error parsing CompactionRetention: --auto-compaction-retention=1h is not a number of revisions (revision mode takes 0 (disabled) or a number of revisions to keep)".into())
        );
        assert!(auto_compaction_retention("revision", "-5").is_err());
        assert_eq!(
            auto_compaction_retention("revision", "0"),
            Ok(AutoCompaction::Disabled)
        );
        assert_eq!(
            auto_compaction_retention("", "1"),
            Err("--auto-compaction-mode is undefined".into())
        );
    }

    #[test]
    fn initial_cluster_keeps_order_and_repeats() {
        let members =
            parse_initial_cluster("b=http://h2:2380,a=http://h1:2380,a=http://h1:2381").unwrap();
        let names: Vec<_> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["b", "a", "a"]);
        assert_eq!(
            parse_initial_cluster("a=http://h:1,b")
                .unwrap_err()
                .message(),
            "error setting up initial cluster: URL scheme must be http, https, unix, or unixs: "
        );
        assert!(parse_initial_cluster("").unwrap().is_empty());
    }
}
