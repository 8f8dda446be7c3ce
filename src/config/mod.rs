//! The `etcd` daemon's configuration, exactly as etcd 3.5 reads it: every
//! flag with etcd's names and defaults, the matching `ETCD_*` environment
//! variables, the YAML `--config-file`, etcd's validation and error texts,
//! `--help` and `--version`.
//!
//! [`parse`] turns argv and the environment into a [`Command`]: either a
//! typed [`Config`] to run with, or text to print before exiting.
//! Settings the server does not implement yet (see the table in `table.rs`)
//! are accepted only at their default value; anything else fails at start
//! with "`--<flag> is not supported yet`".

mod docs;
mod env;
pub mod envfile;
mod flags;
mod help;
// the shipped sample files, checked against the table by its tests
#[cfg(test)]
mod sample;
mod settings;
mod table;
mod urls;
mod validate;
mod value;
mod yaml;

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

pub use docs::docs_command;
pub use urls::{check_url_list, url_to_string};
pub use validate::{supported_settings, unsupported_settings, AutoCompaction};

use flags::FlagOutcome;
use settings::Settings;
use validate::Mode;
use value::Value;

/// The etcd release whose behaviour rsetcd follows (printed by `--version`);
/// the crate-wide constant, so there is one place to change it.
pub const ETCD_VERSION: &str = crate::ETCD_VERSION;

/// What the daemon should do.
#[derive(Debug)]
pub enum Command {
    /// Start the server with this configuration.
    Run(Box<Config>),
    /// Print `output` exactly as is (it ends with a newline) and exit.
    Exit {
        code: i32,
        output: String,
        to_stderr: bool,
    },
}

/// How etcd reports a configuration error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// A command-line syntax error from Go's flag package: etcd prints the
    /// message and the usage text to stderr and exits with 2.
    Usage,
    /// Any other bad configuration: etcd logs it (zap warning "failed to
    /// verify flags", field `error`) and exits with 1.
    Invalid,
}

/// A configuration error with etcd's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    message: String,
}

impl ConfigError {
    pub(crate) fn usage(message: String) -> Self {
        ConfigError {
            kind: ConfigErrorKind::Usage,
            message,
        }
    }

    pub(crate) fn invalid(message: String) -> Self {
        ConfigError {
            kind: ConfigErrorKind::Invalid,
            message,
        }
    }

    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The error alone, without the usage text.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// etcd's exit code: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ConfigErrorKind::Usage => 2,
            ConfigErrorKind::Invalid => 1,
        }
    }
}

/// The text to print on stderr (with `eprintln!`): for usage errors the
/// message followed by the usage text, as etcd prints them.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ConfigErrorKind::Usage => write!(f, "{}\n{}", self.message, help::USAGE),
            ConfigErrorKind::Invalid => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

/// zap's levels, which etcd's `--log-level` maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    DPanic,
    Panic,
    Fatal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Console,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    /// `stderr`, and etcd's `default`.
    Stderr,
    Stdout,
    /// `systemd/journal`: journald's native protocol.
    Journal,
    /// Any other value: a file the logs are appended to.
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryFallback {
    Exit,
    Proxy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    Off,
    Readonly,
    On,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Deprecation {
    NotYet,
    WriteOnly,
    WriteOnlyDropData,
    Gone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreelistType {
    Array,
    Map,
}

/// TLS settings of the client or the peer listener (etcd's `TLSInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
    pub crl_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    pub auto_tls: bool,
    pub allowed_hostname: Option<String>,
    /// Peer only (`--peer-cert-allowed-cn`).
    pub allowed_cn: Option<String>,
    /// Peer only (`--experimental-peer-skip-client-san-verification`).
    pub skip_client_san_verification: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    pub url: String,
    pub fallback: DiscoveryFallback,
    pub proxy: String,
    pub srv: String,
    pub srv_name: String,
}

/// The deprecated v2 proxy (`--proxy*`); times in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub mode: ProxyMode,
    pub failure_wait_ms: u64,
    pub refresh_interval_ms: u64,
    pub dial_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub read_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracingConfig {
    pub enabled: bool,
    pub address: String,
    pub service_name: String,
    pub instance_id: String,
    pub sampling_rate_per_million: i64,
}

/// The `--experimental-*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentalConfig {
    pub initial_corrupt_check: bool,
    pub corrupt_check_time: Duration,
    pub compact_hash_check_enabled: bool,
    pub compact_hash_check_time: Duration,
    pub enable_v2v3: String,
    pub enable_lease_checkpoint: bool,
    pub enable_lease_checkpoint_persist: bool,
    /// 0 means the store's default (1000), as in etcd.
    pub compaction_batch_limit: i64,
    /// Zero means the store's default (10ms), as in etcd.
    pub compaction_sleep_interval: Duration,
    pub watch_progress_notify_interval: Duration,
    pub downgrade_check_time: Duration,
    pub memory_mlock: bool,
    pub warning_apply_duration: Duration,
    pub warning_unary_request_duration: Duration,
    pub txn_mode_write_with_shared_buffer: bool,
    pub bootstrap_defrag_threshold_megabytes: u64,
    pub stop_grpc_service_on_defrag: bool,
    pub max_learners: i64,
    pub snapshot_catchup_entries: u64,
    pub distributed_tracing: TracingConfig,
}

/// Everything the etcd daemon is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    // Member
    pub name: String,
    /// `${name}.etcd` when not given.
    pub data_dir: PathBuf,
    pub wal_dir: Option<PathBuf>,
    pub snapshot_count: u64,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms: u64,
    pub initial_election_tick_advance: bool,
    /// Sorted and deduplicated, as etcd does. Render with [`url_to_string`].
    pub listen_peer_urls: Vec<Url>,
    pub listen_client_urls: Vec<Url>,
    pub listen_client_http_urls: Vec<Url>,
    pub max_snapshots: u64,
    pub max_wals: u64,
    /// 0 means the default quota; negative disables it (as in etcd).
    pub quota_backend_bytes: i64,
    pub backend_bbolt_freelist_type: FreelistType,
    pub backend_batch_interval: Duration,
    pub backend_batch_limit: i64,
    pub max_txn_ops: u64,
    pub max_request_bytes: u64,
    pub max_concurrent_streams: u32,
    pub enable_grpc_gateway: bool,
    pub grpc_keepalive_min_time: Duration,
    pub grpc_keepalive_interval: Duration,
    pub grpc_keepalive_timeout: Duration,
    pub socket_reuse_port: bool,
    pub socket_reuse_address: bool,
    pub raft_read_timeout: Duration,
    pub raft_write_timeout: Duration,

    // Clustering
    pub initial_advertise_peer_urls: Vec<Url>,
    pub advertise_client_urls: Vec<Url>,
    /// `name=url` pairs in the order given; a name repeats for several URLs.
    /// Empty when discovery is used.
    pub initial_cluster: Vec<(String, Url)>,
    pub initial_cluster_token: String,
    pub initial_cluster_state: ClusterState,
    pub discovery: DiscoveryConfig,
    pub strict_reconfig_check: bool,
    pub pre_vote: bool,
    pub auto_compaction: AutoCompaction,
    pub auto_compaction_mode: String,
    pub auto_compaction_retention: String,
    pub enable_v2: bool,
    pub v2_deprecation: V2Deprecation,

    // Security
    pub client_tls: TlsConfig,
    pub peer_tls: TlsConfig,
    pub self_signed_cert_validity_years: u64,
    pub cipher_suites: Vec<String>,
    pub cors: Vec<String>,
    pub host_whitelist: Vec<String>,
    pub tls_min_version: String,
    pub tls_max_version: String,

    // Auth
    pub auth_token: String,
    pub bcrypt_cost: u64,
    pub auth_token_ttl_secs: u64,

    // Profiling and monitoring
    pub enable_pprof: bool,
    pub metrics: String,
    pub listen_metrics_urls: Vec<Url>,

    // Logging
    pub logger: String,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    pub log_outputs: Vec<LogOutput>,
    pub enable_log_rotation: bool,
    pub log_rotation_config_json: String,

    pub proxy: ProxyConfig,
    pub experimental: ExperimentalConfig,

    // Unsafe
    pub force_new_cluster: bool,
    pub unsafe_no_fsync: bool,

    /// The YAML file the settings came from, if any.
    pub config_file: Option<PathBuf>,
    /// Messages to log at warn level once logging is up (unknown `ETCD_*`
    /// variables, config-file precedence, defaults etcd warns about, …).
    pub warnings: Vec<String>,
    /// Messages etcd logs at info level while reading its configuration
    /// (environment variables used, adjusted values).
    pub infos: Vec<String>,
}

impl Default for Config {
    /// etcd's defaults, as `etcd` with no flags and no environment.
    fn default() -> Self {
        match parse(vec![OsString::from("etcd")], Vec::new()) {
            Ok(Command::Run(config)) => *config,
            other => panic!("etcd's default configuration must be valid: {other:?}"),
        }
    }
}

/// Reads the configuration like `etcd` does. `args` includes argv[0]; `env`
/// is the process environment in order (any list, for tests).
pub fn parse(args: Vec<OsString>, env: Vec<(String, String)>) -> Result<Command, ConfigError> {
    let args: Vec<String> = args
        .into_iter()
        .skip(1)
        .map(|arg| {
            arg.into_string().map_err(|arg| {
                ConfigError::usage(format!("invalid UTF-8 in command-line argument {arg:?}"))
            })
        })
        .collect::<Result<_, _>>()?;
    if let Some(sub) = args
        .first()
        .filter(|a| matches!(a.as_str(), "gateway" | "grpc-proxy"))
    {
        return Err(ConfigError::invalid(format!(
            "etcd {sub} is not supported yet"
        )));
    }
    let command_line = match flags::parse(&args)? {
        FlagOutcome::Help => {
            return Ok(Command::Exit {
                code: 0,
                output: help::help_text(),
                to_stderr: false,
            })
        }
        FlagOutcome::Parsed(command_line) => command_line,
    };
    if let Some(first) = command_line.positionals.first() {
        return Err(ConfigError::invalid(format!(
            "'{first}' is not a valid flag"
        )));
    }
    if command_line.get("version") == Some(&Value::Bool(true)) {
        return Ok(Command::Exit {
            code: 0,
            output: version_text(),
            to_stderr: false,
        });
    }

    let mut warnings = Vec::new();
    let mut infos = Vec::new();
    for (setting, _) in &command_line.values {
        if setting.kind == table::Kind::Ignored {
            warnings.push(format!(
                "flag \"-{}\" is no longer supported - ignoring.",
                setting.name
            ));
        }
    }
    // Like etcd, ETCD_CONFIG_FILE is read even though the environment is
    // otherwise ignored when a config file is used.
    let config_file = match command_line.get("config-file") {
        Some(Value::Str(path)) if !path.is_empty() => Some(path.clone()),
        _ => env
            .iter()
            .find(|(key, _)| key == "ETCD_CONFIG_FILE")
            .map(|(_, value)| value.clone())
            .filter(|value| !value.is_empty()),
    };
    let (settings, mode) = match &config_file {
        Some(path) => {
            let mut settings = Settings::defaults();
            yaml::load(path, &mut settings, &mut warnings)?;
            warnings.push(format!(
                "loaded server configuration, other configuration command line flags and environment variables will be ignored if provided (path: {path})"
            ));
            (settings, Mode::ConfigFile)
        }
        None => {
            let mut settings = Settings::from_command_line(&command_line);
            env::apply(
                &mut settings,
                &command_line,
                &env,
                &mut warnings,
                &mut infos,
            )?;
            (settings, Mode::CommandLine)
        }
    };
    let settings = validate::resolve(settings, mode, &mut warnings, &mut infos)?;
    let mut config = build(&settings)?;
    config.config_file = config_file.map(PathBuf::from);
    config.warnings = warnings;
    config.infos = infos;
    Ok(Command::Run(Box::new(config)))
}

/// `etcd --version`, with rsetcd in place of the Go toolchain.
fn version_text() -> String {
    format!(
        "etcd Version: {ETCD_VERSION}\nGit SHA: {}\nGo Version: rsetcd {} (Rust)\nGo OS/Arch: {}/{}\n",
        option_env!("RSETCD_GIT_SHA").unwrap_or("unknown"),
        env!("CARGO_PKG_VERSION"),
        go_os(),
        go_arch()
    )
}

/// `runtime.GOOS` for this platform.
fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

/// `runtime.GOARCH` for this platform.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        other => other,
    }
}

/// The typed configuration from validated settings.
fn build(s: &Settings) -> Result<Config, ConfigError> {
    let urls = |name: &str| {
        s.urls(name)
            .iter()
            .map(|u| u.url.clone())
            .collect::<Vec<_>>()
    };
    let path = |name: &str| {
        Some(s.str(name))
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    };
    let text = |name: &str| {
        Some(s.str(name))
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    let ms = |name: &str| s.uint(name);
    let initial_cluster = validate::parse_initial_cluster(s.str("initial-cluster"))?
        .into_iter()
        .map(|(name, u)| (name, u.url))
        .collect();
    Ok(Config {
        name: s.str("name").to_string(),
        data_dir: PathBuf::from(s.str("data-dir")),
        wal_dir: path("wal-dir"),
        snapshot_count: s.uint("snapshot-count"),
        heartbeat_interval_ms: ms("heartbeat-interval"),
        election_timeout_ms: ms("election-timeout"),
        initial_election_tick_advance: s.bool("initial-election-tick-advance"),
        listen_peer_urls: urls("listen-peer-urls"),
        listen_client_urls: urls("listen-client-urls"),
        listen_client_http_urls: urls("listen-client-http-urls"),
        max_snapshots: s.uint("max-snapshots"),
        max_wals: s.uint("max-wals"),
        quota_backend_bytes: s.int("quota-backend-bytes"),
        backend_bbolt_freelist_type: if s.str("backend-bbolt-freelist-type") == "array" {
            FreelistType::Array
        } else {
            FreelistType::Map
        },
        backend_batch_interval: s.duration("backend-batch-interval"),
        backend_batch_limit: s.int("backend-batch-limit"),
        max_txn_ops: s.uint("max-txn-ops"),
        max_request_bytes: s.uint("max-request-bytes"),
        max_concurrent_streams: u32::try_from(s.uint("max-concurrent-streams")).unwrap_or(u32::MAX),
        enable_grpc_gateway: s.bool("enable-grpc-gateway"),
        grpc_keepalive_min_time: s.duration("grpc-keepalive-min-time"),
        grpc_keepalive_interval: s.duration("grpc-keepalive-interval"),
        grpc_keepalive_timeout: s.duration("grpc-keepalive-timeout"),
        socket_reuse_port: s.bool("socket-reuse-port"),
        socket_reuse_address: s.bool("socket-reuse-address"),
        raft_read_timeout: s.duration("raft-read-timeout"),
        raft_write_timeout: s.duration("raft-write-timeout"),

        initial_advertise_peer_urls: urls("initial-advertise-peer-urls"),
        advertise_client_urls: urls("advertise-client-urls"),
        initial_cluster,
        initial_cluster_token: s.str("initial-cluster-token").to_string(),
        initial_cluster_state: if s.str("initial-cluster-state") == "existing" {
            ClusterState::Existing
        } else {
            ClusterState::New
        },
        discovery: DiscoveryConfig {
            url: s.str("discovery").to_string(),
            fallback: if s.str("discovery-fallback") == "exit" {
                DiscoveryFallback::Exit
            } else {
                DiscoveryFallback::Proxy
            },
            proxy: s.str("discovery-proxy").to_string(),
            srv: s.str("discovery-srv").to_string(),
            srv_name: s.str("discovery-srv-name").to_string(),
        },
        strict_reconfig_check: s.bool("strict-reconfig-check"),
        pre_vote: s.bool("pre-vote"),
        auto_compaction: validate::auto_compaction(s)?,
        auto_compaction_mode: s.str("auto-compaction-mode").to_string(),
        auto_compaction_retention: s.str("auto-compaction-retention").to_string(),
        enable_v2: s.bool("enable-v2"),
        v2_deprecation: match s.str("v2-deprecation") {
            "write-only" => V2Deprecation::WriteOnly,
            "write-only-drop-data" => V2Deprecation::WriteOnlyDropData,
            "gone" => V2Deprecation::Gone,
            _ => V2Deprecation::NotYet,
        },

        client_tls: TlsConfig {
            cert_file: path("cert-file"),
            key_file: path("key-file"),
            client_cert_file: path("client-cert-file"),
            client_key_file: path("client-key-file"),
            trusted_ca_file: path("trusted-ca-file"),
            crl_file: path("client-crl-file"),
            client_cert_auth: s.bool("client-cert-auth"),
            auto_tls: s.bool("auto-tls"),
            allowed_hostname: text("client-cert-allowed-hostname"),
            allowed_cn: None,
            skip_client_san_verification: false,
        },
        peer_tls: TlsConfig {
            cert_file: path("peer-cert-file"),
            key_file: path("peer-key-file"),
            client_cert_file: path("peer-client-cert-file"),
            client_key_file: path("peer-client-key-file"),
            trusted_ca_file: path("peer-trusted-ca-file"),
            crl_file: path("peer-crl-file"),
            client_cert_auth: s.bool("peer-client-cert-auth"),
            auto_tls: s.bool("peer-auto-tls"),
            allowed_hostname: text("peer-cert-allowed-hostname"),
            allowed_cn: text("peer-cert-allowed-cn"),
            skip_client_san_verification: s.bool("experimental-peer-skip-client-san-verification"),
        },
        self_signed_cert_validity_years: s.uint("self-signed-cert-validity"),
        cipher_suites: s.list("cipher-suites").to_vec(),
        cors: s.list("cors").to_vec(),
        host_whitelist: s.list("host-whitelist").to_vec(),
        tls_min_version: s.str("tls-min-version").to_string(),
        tls_max_version: s.str("tls-max-version").to_string(),

        auth_token: s.str("auth-token").to_string(),
        bcrypt_cost: s.uint("bcrypt-cost"),
        auth_token_ttl_secs: s.uint("auth-token-ttl"),

        enable_pprof: s.bool("enable-pprof"),
        metrics: s.str("metrics").to_string(),
        listen_metrics_urls: urls("listen-metrics-urls"),

        logger: s.str("logger").to_string(),
        log_level: log_level(s.str("log-level")),
        log_format: if s.str("log-format") == "console" {
            LogFormat::Console
        } else {
            LogFormat::Json
        },
        log_outputs: log_outputs(s.list("log-outputs")),
        enable_log_rotation: s.bool("enable-log-rotation"),
        log_rotation_config_json: s.str("log-rotation-config-json").to_string(),

        proxy: ProxyConfig {
            mode: match s.str("proxy") {
                "readonly" => ProxyMode::Readonly,
                "on" => ProxyMode::On,
                _ => ProxyMode::Off,
            },
            failure_wait_ms: ms("proxy-failure-wait"),
            refresh_interval_ms: ms("proxy-refresh-interval"),
            dial_timeout_ms: ms("proxy-dial-timeout"),
            write_timeout_ms: ms("proxy-write-timeout"),
            read_timeout_ms: ms("proxy-read-timeout"),
        },
        experimental: ExperimentalConfig {
            initial_corrupt_check: s.bool("experimental-initial-corrupt-check"),
            corrupt_check_time: s.duration("experimental-corrupt-check-time"),
            compact_hash_check_enabled: s.bool("experimental-compact-hash-check-enabled"),
            compact_hash_check_time: s.duration("experimental-compact-hash-check-time"),
            enable_v2v3: s.str("experimental-enable-v2v3").to_string(),
            enable_lease_checkpoint: s.bool("experimental-enable-lease-checkpoint"),
            enable_lease_checkpoint_persist: s.bool("experimental-enable-lease-checkpoint-persist"),
            compaction_batch_limit: s.int("experimental-compaction-batch-limit"),
            compaction_sleep_interval: s.duration("experimental-compaction-sleep-interval"),
            watch_progress_notify_interval: s
                .duration("experimental-watch-progress-notify-interval"),
            downgrade_check_time: s.duration("experimental-downgrade-check-time"),
            memory_mlock: s.bool("experimental-memory-mlock"),
            warning_apply_duration: s.duration("experimental-warning-apply-duration"),
            warning_unary_request_duration: s
                .duration("experimental-warning-unary-request-duration"),
            txn_mode_write_with_shared_buffer: s
                .bool("experimental-txn-mode-write-with-shared-buffer"),
            bootstrap_defrag_threshold_megabytes: s
                .uint("experimental-bootstrap-defrag-threshold-megabytes"),
            stop_grpc_service_on_defrag: s.bool("experimental-stop-grpc-service-on-defrag"),
            max_learners: s.int("experimental-max-learners"),
            snapshot_catchup_entries: s.uint("experimental-snapshot-catchup-entries"),
            distributed_tracing: TracingConfig {
                enabled: s.bool("experimental-enable-distributed-tracing"),
                address: s
                    .str("experimental-distributed-tracing-address")
                    .to_string(),
                service_name: s
                    .str("experimental-distributed-tracing-service-name")
                    .to_string(),
                instance_id: s
                    .str("experimental-distributed-tracing-instance-id")
                    .to_string(),
                sampling_rate_per_million: s.int("experimental-distributed-tracing-sampling-rate"),
            },
        },

        force_new_cluster: s.bool("force-new-cluster"),
        unsafe_no_fsync: s.bool("unsafe-no-fsync"),

        config_file: None,
        warnings: Vec::new(),
        infos: Vec::new(),
    })
}

fn log_level(level: &str) -> LogLevel {
    match level.to_ascii_lowercase().as_str() {
        "debug" => LogLevel::Debug,
        "warn" => LogLevel::Warn,
        "error" => LogLevel::Error,
        "dpanic" => LogLevel::DPanic,
        "panic" => LogLevel::Panic,
        "fatal" => LogLevel::Fatal,
        _ => LogLevel::Info,
    }
}

/// etcd's output targets; "default" is stderr, an empty list means default.
fn log_outputs(outputs: &[String]) -> Vec<LogOutput> {
    if outputs.is_empty() {
        return vec![LogOutput::Stderr];
    }
    outputs
        .iter()
        .map(|o| match o.as_str() {
            "default" | "stderr" => LogOutput::Stderr,
            "stdout" => LogOutput::Stdout,
            "systemd/journal" => LogOutput::Journal,
            path => LogOutput::File(PathBuf::from(path)),
        })
        .collect()
}

#[cfg(test)]
mod tests;
