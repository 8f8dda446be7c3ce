//! The table of every etcd 3.5 setting: flag name, value kind, default,
//! config-file key, `--help` text and whether rsetcd supports it yet.
//!
//! Everything else in the config module (clap arguments, `ETCD_*` variables,
//! YAML keys, help output, the "not supported yet" check) is driven by this
//! table. To support a setting, flip its `.supported()` marker here and read
//! the typed field from [`super::Config`].

/// How a setting's value is written and parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Bool,
    /// Go `uint`/`uint64` (flags accept Go's base prefixes); YAML integer.
    Uint,
    /// A `Uint` counted in milliseconds.
    Millis,
    /// etcd's `Uint32Value` (max-concurrent-streams).
    Uint32,
    /// Go `int`/`int64`.
    Int,
    /// Go duration string ("10m") in flags; integer nanoseconds in YAML.
    Duration,
    /// etcd's `UniqueURLs`: comma-separated URLs, sorted, deduplicated.
    Urls,
    /// `UniqueURLs` that also accepts `*` (cors).
    Cors,
    /// Comma-separated, deduplicated and sorted strings (host-whitelist).
    StringSet,
    /// Like `StringSet` on the command line, but a YAML list (log-outputs).
    StringSetList,
    /// Comma-separated strings kept in order; a YAML list (cipher-suites).
    StringList,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
    /// A flag etcd still accepts but ignores (legacy v2 flags).
    Ignored,
}

impl Kind {
    /// Go's `flag` treats these as booleans: `--x` alone means true and a
    /// value must be attached with `=`.
    pub(crate) fn is_bool_like(self) -> bool {
        matches!(self, Kind::Bool | Kind::Ignored)
    }
}

/// Where a setting lives in etcd's YAML config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum YamlKey {
    /// Only settable by flag or environment variable.
    None,
    Top(&'static str),
    /// A key inside a block, e.g. `client-transport-security: {cert-file: ...}`.
    Nested(&'static str, &'static str),
}

/// Whether the server implements a setting yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Supported,
    /// Accepted only at its default value; anything else fails at start.
    NotYet,
}

/// The `--help` section a flag is listed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Member,
    Clustering,
    Security,
    Auth,
    Monitoring,
    Logging,
    Tracing,
    Proxy,
    Experimental,
    Unsafe,
    /// Not listed (config-file and version are in the usage text, legacy flags nowhere).
    Hidden,
}

impl Section {
    pub(crate) fn title(self) -> &'static str {
        match self {
            Section::Member => "Member:",
            Section::Clustering => "Clustering:",
            Section::Security => "Security:",
            Section::Auth => "Auth:",
            Section::Monitoring => "Profiling and Monitoring:",
            Section::Logging => "Logging:",
            Section::Tracing => "Experimental distributed tracing:",
            Section::Proxy => "v2 Proxy (to be deprecated in v3.6):",
            Section::Experimental => "Experimental feature:",
            Section::Unsafe => "Unsafe feature:",
            Section::Hidden => "",
        }
    }
}

/// One etcd setting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setting {
    /// Flag name without dashes; also gives the `ETCD_*` variable name.
    pub name: &'static str,
    pub kind: Kind,
    /// Default in flag syntax (parsed like a flag value; "" is an empty list).
    pub default: &'static str,
    pub yaml: YamlKey,
    pub support: Support,
    pub section: Section,
    /// The default as etcd's `--help` prints it (quotes included, may be empty).
    pub shown_default: &'static str,
    pub help: &'static str,
}

impl Setting {
    const fn new(name: &'static str, kind: Kind, default: &'static str) -> Self {
        Setting {
            name,
            kind,
            default,
            yaml: YamlKey::Top(name),
            support: Support::NotYet,
            section: Section::Hidden,
            shown_default: "",
            help: "",
        }
    }

    const fn supported(mut self) -> Self {
        self.support = Support::Supported;
        self
    }

    const fn no_yaml(mut self) -> Self {
        self.yaml = YamlKey::None;
        self
    }

    const fn yaml_key(mut self, key: &'static str) -> Self {
        self.yaml = YamlKey::Top(key);
        self
    }

    const fn yaml_nested(mut self, block: &'static str, key: &'static str) -> Self {
        self.yaml = YamlKey::Nested(block, key);
        self
    }

    const fn help(
        mut self,
        section: Section,
        shown_default: &'static str,
        help: &'static str,
    ) -> Self {
        self.section = section;
        self.shown_default = shown_default;
        self.help = help;
        self
    }

    /// The environment variable etcd reads for this flag (`ETCD_LISTEN_CLIENT_URLS`).
    pub(crate) fn env_name(&self) -> String {
        format!("ETCD_{}", self.name.replace('-', "_").to_uppercase())
    }
}

/// Finds a setting by flag name.
pub(crate) fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// Finds a setting by flag name, for names written in this module's code.
pub(crate) fn get(name: &str) -> &'static Setting {
    match find(name) {
        Some(setting) => setting,
        None => panic!("config table has no setting named {name:?}"),
    }
}

const CLUSTER_STATES: &[&str] = &["new", "existing"];
const FALLBACKS: &[&str] = &["exit", "proxy"];
const PROXY_MODES: &[&str] = &["off", "readonly", "on"];
const V2_DEPRECATION: &[&str] = &["not-yet", "write-only", "write-only-drop-data", "gone"];
const CLIENT_TLS: &str = "client-transport-security";
const PEER_TLS: &str = "peer-transport-security";

use Kind::*;
use Section::*;

pub(crate) static SETTINGS: &[Setting] = &[
    // Member
    Setting::new("name", Str, "default")
        .supported()
        .help(Member, "'default'", "Human-readable name for this member."),
    Setting::new("data-dir", Str, "")
        .supported()
        .help(Member, "'${name}.etcd'", "Path to the data directory."),
    Setting::new("wal-dir", Str, "")
        .supported()
        .help(Member, "''", "Path to the dedicated wal directory."),
    Setting::new("snapshot-count", Uint, "100000").supported().help(
        Member,
        "'100000'",
        "Number of committed transactions to trigger a snapshot to disk.",
    ),
    Setting::new("heartbeat-interval", Millis, "100").supported().help(
        Member,
        "'100'",
        "Time (in milliseconds) of a heartbeat interval.",
    ),
    Setting::new("election-timeout", Millis, "1000").supported().help(
        Member,
        "'1000'",
        "Time (in milliseconds) for an election to timeout. See tuning documentation for details.",
    ),
    Setting::new("initial-election-tick-advance", Bool, "true").help(
        Member,
        "'true'",
        "Whether to fast-forward initial election ticks on boot for faster election.",
    ),
    Setting::new("listen-peer-urls", Urls, "http://localhost:2380")
        .supported()
        .help(
            Member,
            "'http://localhost:2380'",
            "List of URLs to listen on for peer traffic.",
        ),
    Setting::new("listen-client-urls", Urls, "http://localhost:2379")
        .supported()
        .help(
            Member,
            "'http://localhost:2379'",
            "List of URLs to listen on for client grpc traffic and http as long as --listen-client-http-urls is not specified.",
        ),
    Setting::new("listen-client-http-urls", Urls, "").supported().help(
        Member,
        "''",
        "List of URLs to listen on for http only client traffic. Enabling this flag removes http services from --listen-client-urls.",
    ),
    Setting::new("max-snapshots", Uint, "5").supported().help(
        Member,
        "'5'",
        "Maximum number of snapshot files to retain (0 is unlimited).",
    ),
    Setting::new("max-wals", Uint, "5").supported().help(
        Member,
        "'5'",
        "Maximum number of wal files to retain (0 is unlimited).",
    ),
    Setting::new("quota-backend-bytes", Int, "0").supported().help(
        Member,
        "'0'",
        "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).",
    ),
    Setting::new("backend-bbolt-freelist-type", Str, "map").help(
        Member,
        "'map'",
        "BackendFreelistType specifies the type of freelist that boltdb backend uses(array and map are supported types).",
    ),
    Setting::new("backend-batch-interval", Duration, "0s").supported().help(
        Member,
        "''",
        "BackendBatchInterval is the maximum time before commit the backend transaction.",
    ),
    Setting::new("backend-batch-limit", Int, "0").supported().help(
        Member,
        "'0'",
        "BackendBatchLimit is the maximum operations before commit the backend transaction.",
    ),
    Setting::new("max-txn-ops", Uint, "128").supported().help(
        Member,
        "'128'",
        "Maximum number of operations permitted in a transaction.",
    ),
    Setting::new("max-request-bytes", Uint, "1572864").supported().help(
        Member,
        "'1572864'",
        "Maximum client request size in bytes the server will accept.",
    ),
    Setting::new("max-concurrent-streams", Uint32, "4294967295")
        .supported()
        .help(
        Member,
        "'math.MaxUint32'",
        "Maximum concurrent streams that each client can open at a time.",
    ),
    Setting::new("enable-grpc-gateway", Bool, "true")
        .supported()
        .help(Member, "", "Enable GRPC gateway."),
    Setting::new("grpc-keepalive-min-time", Duration, "5s")
        .supported()
        .help(
            Member,
            "'5s'",
            "Minimum duration interval that a client should wait before pinging server.",
        ),
    Setting::new("grpc-keepalive-interval", Duration, "2h")
        .supported()
        .help(
            Member,
            "'2h'",
            "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).",
        ),
    Setting::new("grpc-keepalive-timeout", Duration, "20s")
        .supported()
        .help(
            Member,
            "'20s'",
            "Additional duration of wait before closing a non-responsive connection (0 to disable).",
        ),
    Setting::new("socket-reuse-port", Bool, "false")
        .yaml_nested("socketopts", "reuse-port")
        .help(
            Member,
            "'false'",
            "Enable to set socket option SO_REUSEPORT on listeners allowing rebinding of a port already in use.",
        ),
    Setting::new("socket-reuse-address", Bool, "false")
        .yaml_nested("socketopts", "reuse-address")
        .help(
            Member,
            "'false'",
            "Enable to set socket option SO_REUSEADDR on listeners allowing binding to an address in TIME_WAIT state.",
        ),
    Setting::new("raft-read-timeout", Duration, "5s").no_yaml().help(
        Member,
        "'5s'",
        "Read timeout set on each rafthttp connection",
    ),
    Setting::new("raft-write-timeout", Duration, "5s").no_yaml().help(
        Member,
        "'5s'",
        "Write timeout set on each rafthttp connection",
    ),
    // Clustering
    Setting::new("initial-advertise-peer-urls", Urls, "http://localhost:2380")
        .supported()
        .help(
            Clustering,
            "'http://localhost:2380'",
            "List of this member's peer URLs to advertise to the rest of the cluster.",
        ),
    Setting::new("initial-cluster", Str, "default=http://localhost:2380")
        .supported()
        .help(
            Clustering,
            "'default=http://localhost:2380'",
            "Initial cluster configuration for bootstrapping.",
        ),
    Setting::new("initial-cluster-state", Choice(CLUSTER_STATES), "new")
        .supported()
        .help(
            Clustering,
            "'new'",
            "Initial cluster state ('new' when bootstrapping a new cluster or 'existing' when adding new members to an existing cluster).\n    After successful initialization (bootstrapping or adding), flag is ignored on restarts.",
        ),
    Setting::new("initial-cluster-token", Str, "etcd-cluster")
        .supported()
        .help(
            Clustering,
            "'etcd-cluster'",
            "Initial cluster token for the etcd cluster during bootstrap.\n    Specifying this can protect you from unintended cross-cluster interaction when running multiple clusters.",
        ),
    Setting::new("advertise-client-urls", Urls, "http://localhost:2379")
        .supported()
        .help(
            Clustering,
            "'http://localhost:2379'",
            "List of this member's client URLs to advertise to the public.\n    The client URLs advertised should be accessible to machines that talk to etcd cluster. etcd client libraries parse these URLs to connect to the cluster.",
        ),
    Setting::new("discovery", Str, "").help(
        Clustering,
        "''",
        "Discovery URL used to bootstrap the cluster.",
    ),
    Setting::new("discovery-fallback", Choice(FALLBACKS), "proxy").help(
        Clustering,
        "'proxy'",
        "Expected behavior ('exit' or 'proxy') when discovery services fails.\n    \"proxy\" supports v2 API only.",
    ),
    Setting::new("discovery-proxy", Str, "").help(
        Clustering,
        "''",
        "HTTP proxy to use for traffic to discovery service.",
    ),
    Setting::new("discovery-srv", Str, "").help(
        Clustering,
        "''",
        "DNS srv domain used to bootstrap the cluster.",
    ),
    Setting::new("discovery-srv-name", Str, "").help(
        Clustering,
        "''",
        "Suffix to the dns srv name queried when bootstrapping.",
    ),
    Setting::new("strict-reconfig-check", Bool, "true")
        .supported()
        .help(
            Clustering,
            "'true'",
            "Reject reconfiguration requests that would cause quorum loss.",
        ),
    Setting::new("pre-vote", Bool, "true").supported().help(
        Clustering,
        "'true'",
        "Enable to run an additional Raft election phase.",
    ),
    Setting::new("auto-compaction-retention", Str, "0")
        .supported()
        .help(
            Clustering,
            "'0'",
            "Auto compaction retention length. 0 means disable auto compaction.",
        ),
    Setting::new("auto-compaction-mode", Str, "periodic")
        .supported()
        .help(
            Clustering,
            "'periodic'",
            "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention.",
        ),
    Setting::new("enable-v2", Bool, "false").help(
        Clustering,
        "'false'",
        "Accept etcd V2 client requests. Deprecated and to be decommissioned in v3.6.",
    ),
    Setting::new("v2-deprecation", Choice(V2_DEPRECATION), "not-yet").help(
        Clustering,
        "'not-yet'",
        "Phase of v2store deprecation. Allows to opt-in for higher compatibility mode.\n    Supported values:\n      'not-yet'                // Issues a warning if v2store have meaningful content (default in v3.5)\n      'write-only'             // Custom v2 state is not allowed (planned default in v3.6)\n      'write-only-drop-data'   // Custom v2 state will get DELETED !\n      'gone'                   // v2store is not maintained any longer. (planned default in v3.7)",
    ),
    // Security
    Setting::new("cert-file", Str, "").supported()
        .yaml_nested(CLIENT_TLS, "cert-file")
        .help(Security, "''", "Path to the client server TLS cert file."),
    Setting::new("key-file", Str, "").supported()
        .yaml_nested(CLIENT_TLS, "key-file")
        .help(Security, "''", "Path to the client server TLS key file."),
    Setting::new("client-cert-auth", Bool, "false").supported()
        .yaml_nested(CLIENT_TLS, "client-cert-auth")
        .help(Security, "'false'", "Enable client cert authentication."),
    Setting::new("client-cert-file", Str, "").supported()
        .yaml_nested(CLIENT_TLS, "client-cert-file")
        .help(
            Security,
            "''",
            "Path to an explicit peer client TLS cert file otherwise cert file will be used when client auth is required.",
        ),
    Setting::new("client-key-file", Str, "").supported()
        .yaml_nested(CLIENT_TLS, "client-key-file")
        .help(
            Security,
            "''",
            "Path to an explicit peer client TLS key file otherwise key file will be used when client auth is required.",
        ),
    Setting::new("client-crl-file", Str, "").supported().no_yaml().help(
        Security,
        "''",
        "Path to the client certificate revocation list file.",
    ),
    Setting::new("client-cert-allowed-hostname", Str, "").supported()
        .no_yaml()
        .help(
            Security,
            "''",
            "Allowed TLS hostname for client cert authentication.",
        ),
    Setting::new("trusted-ca-file", Str, "").supported()
        .yaml_nested(CLIENT_TLS, "trusted-ca-file")
        .help(
            Security,
            "''",
            "Path to the client server TLS trusted CA cert file.",
        ),
    Setting::new("auto-tls", Bool, "false").supported()
        .yaml_nested(CLIENT_TLS, "auto-tls")
        .help(
            Security,
            "'false'",
            "Client TLS using generated certificates.",
        ),
    Setting::new("peer-cert-file", Str, "").supported()
        .yaml_nested(PEER_TLS, "cert-file")
        .help(Security, "''", "Path to the peer server TLS cert file."),
    Setting::new("peer-key-file", Str, "").supported()
        .yaml_nested(PEER_TLS, "key-file")
        .help(Security, "''", "Path to the peer server TLS key file."),
    Setting::new("peer-client-cert-auth", Bool, "false").supported()
        .yaml_nested(PEER_TLS, "client-cert-auth")
        .help(
            Security,
            "'false'",
            "Enable peer client cert authentication.",
        ),
    Setting::new("peer-trusted-ca-file", Str, "").supported()
        .yaml_nested(PEER_TLS, "trusted-ca-file")
        .help(
            Security,
            "''",
            "Path to the peer server TLS trusted CA file.",
        ),
    Setting::new("peer-cert-allowed-cn", Str, "").supported().no_yaml().help(
        Security,
        "''",
        "Required CN for client certs connecting to the peer endpoint.",
    ),
    Setting::new("peer-cert-allowed-hostname", Str, "").supported()
        .no_yaml()
        .help(
            Security,
            "''",
            "Allowed TLS hostname for inter peer authentication.",
        ),
    Setting::new("peer-auto-tls", Bool, "false").supported()
        .yaml_nested(PEER_TLS, "auto-tls")
        .help(
            Security,
            "'false'",
            "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.",
        ),
    Setting::new("peer-client-cert-file", Str, "").supported()
        .yaml_nested(PEER_TLS, "client-cert-file")
        .help(
            Security,
            "''",
            "Path to an explicit peer client TLS cert file otherwise peer cert file will be used when client auth is required.",
        ),
    Setting::new("peer-client-key-file", Str, "").supported()
        .yaml_nested(PEER_TLS, "client-key-file")
        .help(
            Security,
            "''",
            "Path to an explicit peer client TLS key file otherwise peer key file will be used when client auth is required.",
        ),
    Setting::new("self-signed-cert-validity", Uint, "1").supported().help(
        Security,
        "'1'",
        "The validity period of the client and peer certificates that are automatically generated by etcd when you specify ClientAutoTLS and PeerAutoTLS, the unit is year, and the default is 1.",
    ),
    Setting::new("peer-crl-file", Str, "").supported().no_yaml().help(
        Security,
        "''",
        "Path to the peer certificate revocation list file.",
    ),
    Setting::new("cipher-suites", StringList, "").supported().help(
        Security,
        "''",
        "Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go).",
    ),
    Setting::new("cors", Cors, "*").supported().help(
        Security,
        "'*'",
        "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).",
    ),
    Setting::new("host-whitelist", StringSet, "*").supported().help(
        Security,
        "'*'",
        "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all).",
    ),
    Setting::new("tls-min-version", Str, "TLS1.2").supported().help(
        Security,
        "'TLS1.2'",
        "Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3.",
    ),
    Setting::new("tls-max-version", Str, "").supported().help(
        Security,
        "''",
        "Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3 (empty will be auto-populated by Go).",
    ),
    // Auth
    Setting::new("auth-token", Str, "simple").supported().help(
        Auth,
        "'simple'",
        "Specify a v3 authentication token type and its options ('simple' or 'jwt').",
    ),
    Setting::new("bcrypt-cost", Uint, "10").supported().help(
        Auth,
        "10",
        "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords. Valid values are between 4 and 31.",
    ),
    Setting::new("auth-token-ttl", Uint, "300").supported().help(
        Auth,
        "300",
        "Time (in seconds) of the auth-token-ttl.",
    ),
    // Profiling and monitoring
    Setting::new("enable-pprof", Bool, "false").help(
        Monitoring,
        "'false'",
        "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\"",
    ),
    Setting::new("metrics", Str, "basic").supported().help(
        Monitoring,
        "'basic'",
        "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics.",
    ),
    Setting::new("listen-metrics-urls", Urls, "").supported().help(
        Monitoring,
        "''",
        "List of URLs to listen on for the /metrics and /health endpoints. For https, the client URL TLS info is used.",
    ),
    // Logging
    Setting::new("logger", Str, "zap").supported().help(
        Logging,
        "'zap'",
        "Currently only supports 'zap' for structured logging.",
    ),
    Setting::new("log-outputs", StringSetList, "default")
        .supported()
        .help(
            Logging,
            "'default'",
            "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.",
        ),
    Setting::new("log-level", Str, "info").supported().help(
        Logging,
        "'info'",
        "Configures log level. Only supports debug, info, warn, error, panic, or fatal.",
    ),
    // Not in etcd 3.5: the etcd 3.6 flag, accepted because it is how the
    // console format is chosen.
    Setting::new("log-format", Str, "json").supported().help(
        Logging,
        "'json'",
        "Configures log format. Only supports json, console. (etcd 3.6 flag)",
    ),
    Setting::new("enable-log-rotation", Bool, "false").help(
        Logging,
        "'false'",
        "Enable log rotation of a single log-outputs file target.",
    ),
    Setting::new(
        "log-rotation-config-json",
        Str,
        r#"{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}"#,
    )
    .help(
        Logging,
        r#"'{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}'"#,
        "Configures log rotation if enabled with a JSON logger config. MaxSize(MB), MaxAge(days,0=no limit), MaxBackups(0=no limit), LocalTime(use computers local time), Compress(gzip)\". ",
    ),
    // Experimental distributed tracing
    Setting::new("experimental-enable-distributed-tracing", Bool, "false").help(
        Tracing,
        "'false'",
        "Enable experimental distributed tracing.",
    ),
    Setting::new(
        "experimental-distributed-tracing-address",
        Str,
        "localhost:4317",
    )
    .help(
        Tracing,
        "'localhost:4317'",
        "Distributed tracing collector address.",
    ),
    Setting::new("experimental-distributed-tracing-service-name", Str, "etcd").help(
        Tracing,
        "'etcd'",
        "Distributed tracing service name, must be same across all etcd instances.",
    ),
    Setting::new("experimental-distributed-tracing-instance-id", Str, "").help(
        Tracing,
        "''",
        "Distributed tracing instance ID, must be unique per each etcd instance.",
    ),
    Setting::new("experimental-distributed-tracing-sampling-rate", Int, "0").help(
        Tracing,
        "'0'",
        "Number of samples to collect per million spans for distributed tracing. Disabled by default.",
    ),
    // v2 proxy
    Setting::new("proxy", Choice(PROXY_MODES), "off").help(
        Proxy,
        "'off'",
        "Proxy mode setting ('off', 'readonly' or 'on').",
    ),
    Setting::new("proxy-failure-wait", Millis, "5000").help(
        Proxy,
        "5000",
        "Time (in milliseconds) an endpoint will be held in a failed state.",
    ),
    Setting::new("proxy-refresh-interval", Millis, "30000").help(
        Proxy,
        "30000",
        "Time (in milliseconds) of the endpoints refresh interval.",
    ),
    Setting::new("proxy-dial-timeout", Millis, "1000").help(
        Proxy,
        "1000",
        "Time (in milliseconds) for a dial to timeout.",
    ),
    Setting::new("proxy-write-timeout", Millis, "5000").help(
        Proxy,
        "5000",
        "Time (in milliseconds) for a write to timeout.",
    ),
    Setting::new("proxy-read-timeout", Millis, "0").help(
        Proxy,
        "0",
        "Time (in milliseconds) for a read to timeout.",
    ),
    // Experimental features
    Setting::new("experimental-initial-corrupt-check", Bool, "false")
        .supported()
        .help(
            Experimental,
            "'false'",
            "Enable to check data corruption before serving any client/peer traffic.",
        ),
    Setting::new("experimental-corrupt-check-time", Duration, "0s")
        .supported()
        .help(
            Experimental,
            "'0s'",
            "Duration of time between cluster corruption check passes.",
        ),
    Setting::new("experimental-compact-hash-check-enabled", Bool, "false").help(
        Experimental,
        "'false'",
        "Enable leader to periodically check followers compaction hashes.",
    ),
    Setting::new("experimental-compact-hash-check-time", Duration, "1m").help(
        Experimental,
        "'1m'",
        "Duration of time between leader checks followers compaction hashes.",
    ),
    Setting::new("experimental-enable-v2v3", Str, "").help(
        Experimental,
        "''",
        "Serve v2 requests through the v3 backend under a given prefix. Deprecated and to be decommissioned in v3.6.",
    ),
    Setting::new("experimental-enable-lease-checkpoint", Bool, "false").help(
        Experimental,
        "'false'",
        "ExperimentalEnableLeaseCheckpoint enables primary lessor to persist lease remainingTTL to prevent indefinite auto-renewal of long lived leases.",
    ),
    Setting::new("experimental-enable-lease-checkpoint-persist", Bool, "false").help(
        Experimental,
        "'false'",
        "Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases. Always enabled in v3.6. Should be used to ensure smooth upgrade from v3.5 clusters with this feature enabled. Requires experimental-enable-lease-checkpoint to be enabled.",
    ),
    // etcd keeps 0 here and lets the store substitute 1000.
    Setting::new("experimental-compaction-batch-limit", Int, "0")
    .supported()
    .help(
        Experimental,
        "1000",
        "ExperimentalCompactionBatchLimit sets the maximum revisions deleted in each compaction batch.",
    ),
    // etcd keeps 0 here and lets the store substitute 10ms.
    Setting::new("experimental-compaction-sleep-interval", Duration, "0s")
    .supported()
    .help(
        Experimental,
        "'10ms'",
        "ExperimentalCompactionSleepInterval sets the sleep interval between each compaction batch.",
    ),
    Setting::new(
        "experimental-peer-skip-client-san-verification",
        Bool,
        "false",
    )
    .supported()
    .no_yaml()
    .help(
        Experimental,
        "'false'",
        "Skip verification of SAN field in client certificate for peer connections.",
    ),
    Setting::new("experimental-watch-progress-notify-interval", Duration, "10m")
        .help(
            Experimental,
            "'10m'",
            "Duration of periodical watch progress notification.",
        )
        .supported(),
    Setting::new("experimental-downgrade-check-time", Duration, "5s").help(
        Experimental,
        "",
        "Duration of time between two downgrade status checks.",
    ),
    Setting::new("experimental-memory-mlock", Bool, "false").help(
        Experimental,
        "",
        "Enable to enforce etcd pages (in particular bbolt) to stay in RAM.",
    ),
    Setting::new("experimental-warning-apply-duration", Duration, "100ms").help(
        Experimental,
        "'100ms'",
        "Warning is generated if requests take more than this duration.",
    ),
    Setting::new(
        "experimental-warning-unary-request-duration",
        Duration,
        "300ms",
    )
    .help(
        Experimental,
        "'300ms'",
        "Time duration after which a warning is generated if a unary request takes more time.",
    ),
    Setting::new(
        "experimental-txn-mode-write-with-shared-buffer",
        Bool,
        "true",
    )
    .help(
        Experimental,
        "'true'",
        "Enable the write transaction to use a shared buffer in its readonly check operations.",
    ),
    Setting::new(
        "experimental-bootstrap-defrag-threshold-megabytes",
        Uint,
        "0",
    )
    .help(
        Experimental,
        "",
        "Enable the defrag during etcd server bootstrap on condition that it will free at least the provided threshold of disk space. Needs to be set to non-zero value to take effect.",
    ),
    Setting::new("experimental-stop-grpc-service-on-defrag", Bool, "false").help(
        Experimental,
        "",
        "Enable etcd gRPC service to stop serving client requests on defragmentation.",
    ),
    Setting::new("experimental-max-learners", Int, "1").help(
        Experimental,
        "'1'",
        "Sets the maximum number of learners that can be available in the cluster membership.",
    ),
    Setting::new("experimental-snapshot-catchup-entries", Uint, "5000")
        .supported()
        .yaml_key("experimental-snapshot-catch-up-entries")
        .help(
            Experimental,
            "'5000'",
            "Number of entries for a slow follower to catch up after compacting the raft storage entries.",
        ),
    // Unsafe
    Setting::new("force-new-cluster", Bool, "false").help(
        Unsafe,
        "'false'",
        "Force to create a new one-member cluster.",
    ),
    Setting::new("unsafe-no-fsync", Bool, "false").supported().help(
        Unsafe,
        "'false'",
        "Disables fsync, unsafe, will cause data loss.",
    ),
    // Listed in the usage text rather than a section.
    Setting::new("config-file", Str, "").supported().no_yaml(),
    Setting::new("version", Bool, "false").supported().no_yaml(),
    // Legacy flags etcd accepts and ignores.
    Setting::new("cluster-active-size", Ignored, "").supported().no_yaml(),
    Setting::new("cluster-remove-delay", Ignored, "").supported().no_yaml(),
    Setting::new("cluster-sync-interval", Ignored, "").supported().no_yaml(),
    Setting::new("config", Ignored, "").supported().no_yaml(),
    Setting::new("force", Ignored, "").supported().no_yaml(),
    Setting::new("max-result-buffer", Ignored, "").supported().no_yaml(),
    Setting::new("max-retry-attempts", Ignored, "").supported().no_yaml(),
    Setting::new("peer-heartbeat-interval", Ignored, "").supported().no_yaml(),
    Setting::new("peer-election-timeout", Ignored, "").supported().no_yaml(),
    Setting::new("retry-interval", Ignored, "").supported().no_yaml(),
    Setting::new("snapshot", Ignored, "").supported().no_yaml(),
    Setting::new("v", Ignored, "").supported().no_yaml(),
    Setting::new("vv", Ignored, "").supported().no_yaml(),
    Setting::new("test.coverprofile", Ignored, "").supported().no_yaml(),
    Setting::new("test.outputdir", Ignored, "").supported().no_yaml(),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_and_yaml_keys_are_unique() {
        let mut names = HashSet::new();
        let mut keys = HashSet::new();
        for s in SETTINGS {
            assert!(names.insert(s.name), "duplicate flag {}", s.name);
            if s.yaml != YamlKey::None {
                assert!(keys.insert(s.yaml), "duplicate yaml key {:?}", s.yaml);
            }
        }
    }

    #[test]
    fn env_names_follow_etcd() {
        assert_eq!(
            get("listen-client-urls").env_name(),
            "ETCD_LISTEN_CLIENT_URLS"
        );
        assert_eq!(
            get("test.coverprofile").env_name(),
            "ETCD_TEST.COVERPROFILE"
        );
    }
}
