//! Global options and the connection to etcd: flags completed from
//! `ETCDCTL_*` environment variables (etcd's `pkg/flags` rules), the client
//! configuration etcdctl builds from them (TLS files, `--user` login), and
//! a gRPC client that tries the endpoints in order (plain or TLS, as
//! `tls` decides per endpoint), fails over when one is down, logs in and
//! sends the token with every call (renewing it when the server forgot it),
//! and turns gRPC errors into etcdctl's messages.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::error::Elapsed;
use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

use rsetcd::client::{grpc_status_string, status_text};
use rsetcd::gofmt;
use rsetcd::logging::{utc_timestamp, TimestampPrecision};
use rsetcd::proto::etcdserverpb::auth_client::AuthClient;
use rsetcd::proto::etcdserverpb::AuthenticateRequest;

use crate::exit::{CtlResult, ExitError, EXIT_BAD_ARGS, EXIT_BAD_CONNECTION, EXIT_ERROR};
use crate::flags::{FlagSet, FlagSpec};
use crate::password;
use crate::printer::Printer;
use crate::tls::{self, TlsClient, TlsOptions};

const ENV_PREFIX: &str = "ETCDCTL";

/// grpc-go never pings more often than this, whatever the flag says.
const MIN_KEEPALIVE_TIME: Duration = Duration::from_secs(10);

/// The environment variable that sets a flag: `ETCDCTL_DIAL_TIMEOUT`.
pub fn flag_to_env(name: &str) -> String {
    format!("{ENV_PREFIX}_{}", name.to_uppercase().replace('-', "_"))
}

/// etcd's `SetPflagsFromEnv` over the inherited (global) flags: a flag not
/// given on the command line takes its `ETCDCTL_*` variable; a variable that
/// shadows a given flag is fatal; unknown `ETCDCTL_*` variables are warned
/// about. Invalid values are ignored, as etcdctl ignores that error.
pub fn apply_env(flags: &mut FlagSet, inherited: &[FlagSpec]) -> CtlResult {
    let mut used = Vec::new();
    let mut shadowed = Vec::new();
    for spec in inherited {
        let key = flag_to_env(spec.name);
        if flags.changed(spec.name) {
            shadowed.push(key);
            continue;
        }
        if let Ok(value) = std::env::var(&key) {
            if !value.is_empty() {
                used.push(key);
                let _ = flags.set(spec.name, &value);
            }
        }
    }
    // watch's positional-argument variables are etcdctl's own, not flags.
    used.push(flag_to_env("watch-key"));
    used.push(flag_to_env("watch-range-end"));
    // Selects the API version; main has dealt with it.
    used.push(format!("{ENV_PREFIX}_API"));
    for (key, value) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if used.contains(&key) {
            continue;
        }
        if shadowed.contains(&key) {
            log_line(
                "fatal",
                None,
                "flags/flag.go:141",
                "conflicting environment variable is shadowed by corresponding command-line flag (either unset environment variable or disable flag))",
                &[("environment-variable", key)],
            );
            return Err(ExitError::new(EXIT_ERROR, String::new()).silent());
        }
        if key.starts_with(&format!("{ENV_PREFIX}_")) {
            log_line(
                "warn",
                None,
                "flags/flag.go:93",
                "unrecognized environment variable",
                &[(
                    "environment-variable",
                    format!("{key}={}", value.to_string_lossy()),
                )],
            );
        }
    }
    Ok(())
}

/// Everything needed to reach the cluster, from the global flags.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub endpoints: Vec<String>,
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
    pub keepalive_time: Duration,
    pub keepalive_timeout: Duration,
    /// `--user` and its password; `None` (or an empty password, as
    /// clientv3 treats it) sends no token.
    pub auth: Option<(String, String)>,
    /// The TLS configuration, when TLS flags were given; `https://`
    /// endpoints use TLS without it too.
    pub tls: Option<TlsClient>,
}

/// etcdctl's `clientConfigFromCmd`: applies the environment, prints the
/// `--debug` dump, validates TLS and auth options and picks the printer.
pub fn client_config(
    flags: &mut FlagSet,
    inherited: &[FlagSpec],
) -> CtlResult<(ClientConfig, Printer)> {
    apply_env(flags, inherited)?;
    if flags.bool("debug") {
        for spec in inherited {
            eprintln!("{}={}", flag_to_env(spec.name), flags.value_text(spec.name));
        }
    }
    let mut config = ClientConfig {
        endpoints: flags.slice("endpoints"),
        dial_timeout: flags.duration("dial-timeout"),
        command_timeout: flags.duration("command-timeout"),
        keepalive_time: flags.duration("keepalive-time"),
        keepalive_timeout: flags.duration("keepalive-timeout"),
        auth: None,
        tls: tls_from_flags(flags)?,
    };
    config.auth = auth_from_flags(flags)?;
    if !flags.string("discovery-srv").is_empty() {
        return Err(ExitError::new(
            EXIT_BAD_ARGS,
            "DNS discovery (--discovery-srv) is not supported yet",
        ));
    }
    let printer = Printer::from_flags(flags)?;
    Ok((config, printer))
}

/// etcdctl's `secureCfgFromCmd` + `newClientCfg`: empty file names are
/// refused, then the files are loaded (Go's errors, exit code 128).
fn tls_from_flags(flags: &FlagSet) -> CtlResult<Option<TlsClient>> {
    for name in ["cert", "key", "cacert"] {
        if flags.changed(name) && flags.string(name).is_empty() {
            return Err(ExitError::bad_args(format!(
                "empty string is passed to --{name} option"
            )));
        }
    }
    let options = TlsOptions {
        cert: flags.string("cert"),
        key: flags.string("key"),
        cacert: flags.string("cacert"),
        insecure_transport: flags.bool("insecure-transport"),
        insecure_skip_verify: flags.bool("insecure-skip-tls-verify"),
    };
    options.load().map_err(ExitError::bad_args)
}

/// `--user name[:password]` and `--password`, as etcdctl's `authCfgFromCmd`
/// combines them: with `--password` the whole `--user` is the name;
/// otherwise a name without `:` makes etcdctl ask for the password.
fn auth_from_flags(flags: &FlagSet) -> CtlResult<Option<(String, String)>> {
    user_and_password(
        &flags.string("user"),
        &flags.string("password"),
        "Password: ",
    )
}

/// The `--user`/`--password` pair (also make-mirror's `--dest-user` and
/// `--dest-password`, whose prompt names the destination).
pub fn user_and_password(
    user: &str,
    password: &str,
    prompt: &str,
) -> CtlResult<Option<(String, String)>> {
    if user.is_empty() {
        return Ok(None);
    }
    if !password.is_empty() {
        return Ok(Some((user.to_string(), password.to_string())));
    }
    match user.split_once(':') {
        Some((name, pass)) => Ok(Some((name.to_string(), pass.to_string()))),
        None => {
            let password = password::ask(prompt).map_err(ExitError::error)?;
            Ok(Some((user.to_string(), password)))
        }
    }
}

/// The message etcdctl prints when the command's deadline passes.
pub const DEADLINE_EXCEEDED: &str = "context deadline exceeded";

/// The errors after which clientv3 fetches a new token and retries.
const INVALID_AUTH_TOKEN: &str = "etcdserver: invalid auth token";
const AUTH_OLD_REVISION: &str = "etcdserver: revision of auth store is old";

/// The authentication error etcd returns when auth is off; clients go on
/// without a token then.
const AUTH_NOT_ENABLED: &str = "etcdserver: authentication is not enabled";

/// A failed RPC: what etcdctl prints, and the exit code (connection setup
/// failures, such as a rejected login, exit with `EXIT_BAD_CONNECTION`).
#[derive(Debug)]
pub struct RpcError {
    pub text: String,
    pub exit_code: i32,
}

impl RpcError {
    /// A failure that exits with etcdctl's generic error code.
    pub fn new(text: impl Into<String>) -> Self {
        RpcError {
            text: text.into(),
            exit_code: EXIT_ERROR,
        }
    }
}

impl From<RpcError> for ExitError {
    fn from(err: RpcError) -> Self {
        ExitError::new(err.exit_code, err.text)
    }
}

/// One client shared by the parts of a command that run at once (a
/// session's keep-alive, watches, unary calls), as clientv3 shares one
/// connection.
pub type SharedClient = Arc<tokio::sync::Mutex<Client>>;

/// A client of one etcd cluster reached through `endpoints`, bound to one
/// command's deadline (etcdctl's `--command-timeout` context) or, for the
/// commands etcdctl runs with `context.TODO()`, to none.
pub struct Client {
    config: ClientConfig,
    deadline: Option<Instant>,
    /// Index of the endpoint in use and its channel.
    connected: Option<(usize, Channel)>,
    /// Whether the server has answered on the current connection; until it
    /// has, a failure of the transport itself (a TLS peer refusing us, a
    /// plain server on a TLS port) is a failed dial, as for grpc-go, which
    /// waits for the server's preface before using a connection.
    proven: bool,
    /// Connections that failed before the server answered, for backoff.
    unproven_failures: u32,
    /// While the first login is under way: when it must be done. clientv3
    /// logs in while the client is built, within `--dial-timeout`, and
    /// etcdctl exits with code 2 when that fails.
    login_by: Option<Instant>,
    /// The first login is behind us (or none is needed).
    login_settled: bool,
    /// Where the next connection attempt starts.
    next_endpoint: usize,
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
    last_connect_error: String,
}

impl Client {
    /// A client whose calls must finish within `--command-timeout` from now.
    pub fn new(config: ClientConfig) -> Self {
        let deadline = Instant::now() + config.command_timeout;
        Client {
            deadline: Some(deadline),
            ..Client::unbounded(config)
        }
    }

    /// A client whose calls must finish by `deadline`, shared with other
    /// clients of the same command (clientv3 clients given one context).
    pub fn with_deadline(config: ClientConfig, deadline: Instant) -> Self {
        Client {
            deadline: Some(deadline),
            ..Client::unbounded(config)
        }
    }

    /// A client whose calls wait as long as they must, retrying while the
    /// cluster is unreachable (clientv3 with a context that never ends).
    pub fn unbounded(config: ClientConfig) -> Self {
        Client {
            config,
            deadline: None,
            connected: None,
            proven: false,
            unproven_failures: 0,
            login_by: None,
            login_settled: false,
            next_endpoint: 0,
            token: None,
            last_connect_error: String::new(),
        }
    }

    /// Runs one unary RPC. `retry_safe` calls (reads) move on to the next
    /// endpoint when the current one becomes unavailable; writes only fail
    /// over while no connection could be made.
    pub async fn call<Req, Resp, F, Fut>(
        &mut self,
        message: Req,
        retry_safe: bool,
        rpc: F,
    ) -> Result<Resp, RpcError>
    where
        Req: Clone,
        F: Fn(Channel, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let mut refreshed = false;
        loop {
            let channel = self.channel().await?;
            let request = self.request(message.clone());
            match self.before_deadline(rpc(channel, request)).await {
                Ok(Ok(response)) => {
                    self.proven = true;
                    self.unproven_failures = 0;
                    return Ok(response.into_inner());
                }
                Ok(Err(status)) if !self.proven && is_transport_failure(&status) => {
                    self.dial_failed(&status).await;
                    if self.past_deadline() {
                        return Err(self.deadline_exceeded());
                    }
                }
                Ok(Err(status)) if status.code() == Code::Unavailable && retry_safe => {
                    self.last_connect_error = grpc_status_string(&status);
                    self.drop_connection();
                }
                Ok(Err(status)) if self.should_refresh_token(&status, refreshed) => {
                    // clientv3's retry interceptor: log in again, then retry.
                    refreshed = true;
                    self.warn_retry(&grpc_status_string(&status));
                    self.token = None;
                    if let Some((_, channel)) = self.connected.clone() {
                        match self.authenticate(channel).await {
                            Ok(()) => {}
                            Err(LoginError::Dial(status)) => self.dial_failed(&status).await,
                            // Only the first login ends etcdctl with code 2.
                            Err(LoginError::Refused(err)) => {
                                return Err(RpcError::new(err.text));
                            }
                        }
                    }
                }
                Ok(Err(status)) => {
                    self.proven = true;
                    self.warn_retry(&grpc_status_string(&status));
                    return Err(RpcError::new(status_text(&status)));
                }
                Err(_) => return Err(self.deadline_exceeded()),
            }
        }
    }

    /// The connection broke before the server ever answered: remember why,
    /// give it up and wait a little before dialing again.
    async fn dial_failed(&mut self, status: &Status) {
        self.last_connect_error = format!(
            "connection error: desc = \"transport: {}\"",
            transport_failure_text(status)
        );
        self.drop_connection();
        self.unproven_failures = (self.unproven_failures + 1).min(5);
        let pause = Duration::from_millis(50) * (1 << self.unproven_failures);
        let wake = Instant::now() + pause.min(Duration::from_secs(1));
        tokio::time::sleep_until(self.limit().map_or(wake, |d| wake.min(d))).await;
    }

    /// Whether calls carry a token: clientv3 logs in only with both a user
    /// name and a password.
    fn needs_login(&self) -> bool {
        self.config
            .auth
            .as_ref()
            .is_some_and(|(_, password)| !password.is_empty())
    }

    /// Whether a failed call is worth one retry with a fresh token: the
    /// server dropped ours (restart, expiry) or its auth store moved on.
    fn should_refresh_token(&self, status: &Status, refreshed: bool) -> bool {
        !refreshed
            && self.token.is_some()
            && matches!(status.message(), INVALID_AUTH_TOKEN | AUTH_OLD_REVISION)
    }

    fn request<Req>(&self, message: Req) -> Request<Req> {
        let mut request = Request::new(message);
        if let Some(deadline) = self.deadline {
            request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        if let Some(token) = &self.token {
            request.metadata_mut().insert("token", token.clone());
        }
        request
    }

    /// A request for a long-lived stream (watch, lease keep-alive): no
    /// deadline; `require_leader` is clientv3's `WithRequireLeader`, which
    /// makes the server end the stream when it loses its leader.
    pub fn stream_request<Req>(&self, message: Req, require_leader: bool) -> Request<Req> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            request.metadata_mut().insert("token", token.clone());
        }
        if require_leader {
            request
                .metadata_mut()
                .insert("hasleader", MetadataValue::from_static("true"));
        }
        request
    }

    /// This client, for sharing.
    pub fn shared(self) -> SharedClient {
        Arc::new(tokio::sync::Mutex::new(self))
    }

    /// The connection streams run on, connecting first if needed.
    pub async fn connection(&mut self) -> Result<Channel, RpcError> {
        self.channel().await
    }

    /// Gives up the connection after a stream failed on it; the next one
    /// starts at the following endpoint.
    pub fn reconnect(&mut self) {
        self.drop_connection();
    }

    /// Runs `future` until the command's deadline, if it has one.
    async fn before_deadline<F: Future>(&self, future: F) -> Result<F::Output, Elapsed> {
        match self.limit() {
            Some(deadline) => tokio::time::timeout_at(deadline, future).await,
            None => Ok(future.await),
        }
    }

    /// The time the current step must end by: the command's deadline, or
    /// sooner while the first login is under way.
    fn limit(&self) -> Option<Instant> {
        match (self.deadline, self.login_by) {
            (Some(d), Some(l)) => Some(d.min(l)),
            (d, l) => d.or(l),
        }
    }

    fn past_deadline(&self) -> bool {
        self.limit().is_some_and(|d| Instant::now() >= d)
    }

    fn drop_connection(&mut self) {
        if let Some((index, _)) = self.connected.take() {
            self.next_endpoint = (index + 1) % self.config.endpoints.len().max(1);
        }
    }

    /// The channel in use, connecting (in endpoint order, round and round)
    /// until one answers or the deadline passes.
    async fn channel(&mut self) -> Result<Channel, RpcError> {
        if let Some((_, channel)) = &self.connected {
            return Ok(channel.clone());
        }
        if self.config.endpoints.is_empty() {
            return Err(self.deadline_exceeded());
        }
        if !self.login_settled && self.login_by.is_none() && self.needs_login() {
            self.login_by = Some(Instant::now() + self.config.dial_timeout);
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            for _ in 0..self.config.endpoints.len() {
                let index = self.next_endpoint;
                self.next_endpoint = (index + 1) % self.config.endpoints.len();
                if self.past_deadline() {
                    return Err(self.deadline_exceeded());
                }
                match self.connect(index).await {
                    Ok(channel) => {
                        self.connected = Some((index, channel.clone()));
                        self.proven = false;
                        if self.token.is_none() && self.config.auth.is_some() {
                            match self.authenticate(channel.clone()).await {
                                Ok(()) => {}
                                Err(LoginError::Dial(status)) => {
                                    self.dial_failed(&status).await;
                                    continue;
                                }
                                Err(LoginError::Refused(err)) => return Err(err),
                            }
                        }
                        self.login_by = None;
                        self.login_settled = true;
                        return Ok(channel);
                    }
                    Err(err) => self.last_connect_error = err,
                }
            }
            if self.past_deadline() {
                return Err(self.deadline_exceeded());
            }
            let wake = Instant::now() + backoff;
            tokio::time::sleep_until(self.limit().map_or(wake, |d| wake.min(d))).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    async fn connect(&self, index: usize) -> Result<Channel, String> {
        let raw = &self.config.endpoints[index];
        let target = tls::target(raw, self.config.tls.as_ref())?;
        let host_port = &target.host_port;
        let scheme = if target.secure { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{host_port}"))
            .map_err(|e| format!("invalid endpoint {raw:?}: {e}"))?
            .connect_timeout(self.config.dial_timeout)
            .http2_keep_alive_interval(self.config.keepalive_time.max(MIN_KEEPALIVE_TIME))
            .keep_alive_timeout(self.config.keepalive_timeout)
            .tcp_nodelay(true);
        if target.secure {
            let tls = self
                .config
                .tls
                .clone()
                .unwrap_or_else(TlsClient::system_default);
            endpoint = tls.apply(endpoint)?;
        }
        let dial_limit = Instant::now() + self.config.dial_timeout;
        let limit = self.limit().map_or(dial_limit, |d| d.min(dial_limit));
        match tokio::time::timeout_at(limit, endpoint.connect()).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(err)) => match handshake_error(&err) {
                Some(reason) => Err(format!(
                    "connection error: desc = \"transport: {reason}\""
                )),
                None => Err(format!(
                    "connection error: desc = \"transport: Error while dialing: dial tcp {host_port}: {}\"",
                    innermost_error(&err)
                )),
            },
            Err(_) => Err(format!(
                "connection error: desc = \"transport: Error while dialing: dial tcp {host_port}: i/o timeout\""
            )),
        }
    }

    /// Fetches an auth token for `--user`; servers with auth off are used
    /// without one.
    async fn authenticate(&mut self, channel: Channel) -> Result<(), LoginError> {
        let Some((name, password)) = self.config.auth.clone() else {
            return Ok(());
        };
        // clientv3 logs in only with both a name and a password.
        if password.is_empty() {
            return Ok(());
        }
        let request = self.request(AuthenticateRequest { name, password });
        let result = self
            .before_deadline(AuthClient::new(channel).authenticate(request))
            .await;
        match result {
            Ok(Ok(response)) => {
                self.proven = true;
                let token = response.into_inner().token;
                let value = MetadataValue::try_from(token.as_str()).map_err(|_| {
                    LoginError::Refused(RpcError::new("etcdserver: invalid auth token"))
                })?;
                self.token = Some(value);
                Ok(())
            }
            Ok(Err(status)) if !self.proven && is_transport_failure(&status) => {
                Err(LoginError::Dial(status))
            }
            Ok(Err(status)) if status.message() == AUTH_NOT_ENABLED => {
                self.proven = true;
                self.warn_retry(&grpc_status_string(&status));
                Ok(())
            }
            Ok(Err(status)) => {
                self.warn_retry(&grpc_status_string(&status));
                Err(LoginError::Refused(RpcError {
                    text: status_text(&status),
                    exit_code: EXIT_BAD_CONNECTION,
                }))
            }
            Err(_) => Err(LoginError::Refused(self.deadline_exceeded())),
        }
    }

    fn deadline_exceeded(&self) -> RpcError {
        let detail = if self.last_connect_error.is_empty() {
            DEADLINE_EXCEEDED.to_string()
        } else {
            format!("latest balancer error: {}", self.last_connect_error)
        };
        self.warn_retry(&format!(
            "rpc error: code = DeadlineExceeded desc = {detail}"
        ));
        if self.login_by.is_some() {
            return RpcError {
                text: DEADLINE_EXCEEDED.to_string(),
                exit_code: EXIT_BAD_CONNECTION,
            };
        }
        RpcError::new(DEADLINE_EXCEEDED)
    }

    /// The warning etcd's client logs for every failed unary call.
    fn warn_retry(&self, error: &str) {
        let endpoint = match &self.connected {
            Some((index, _)) => self.config.endpoints[*index].clone(),
            None => self.config.endpoints.join(","),
        };
        log_line(
            "warn",
            Some("etcd-client"),
            "v3/retry_interceptor.go:62",
            "retrying of unary invoker failed",
            &[
                ("target", format!("etcd-endpoints://{:p}/{endpoint}", self)),
                ("attempt", "0".to_string()),
                ("error", error.to_string()),
            ],
        );
    }
}

/// Why logging in failed.
enum LoginError {
    /// The connection itself failed before the server answered.
    Dial(Status),
    /// The server refused (wrong password, ...), or time ran out.
    Refused(RpcError),
}

/// Whether a failed call's status was made up locally from a transport
/// error (tonic keeps the error as its source) rather than sent by the
/// server.
fn is_transport_failure(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// What broke the transport: a TLS failure in Go's words, or the
/// innermost error.
fn transport_failure_text(status: &Status) -> String {
    match std::error::Error::source(status) {
        Some(source) => handshake_error(source).unwrap_or_else(|| innermost_error(source)),
        None => status.message().to_string(),
    }
}

/// The TLS failure behind a failed dial, in Go's words.
fn handshake_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(tls_err) = e.downcast_ref::<rustls::Error>() {
            return Some(tls::handshake_error_text(tls_err));
        }
        if let Some(io_err) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io_err.get_ref() {
                if let Some(tls_err) = inner.downcast_ref::<rustls::Error>() {
                    return Some(tls::handshake_error_text(tls_err));
                }
                // tokio-rustls hands alerts read after the handshake on as text.
                if let Some(text) = tls::alert_error_text(&inner.to_string()) {
                    return Some(text);
                }
            }
        }
        current = e.source();
    }
    None
}

/// The innermost cause of a transport error (e.g. "connection refused").
pub fn innermost_error(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    let text = current.to_string();
    // io errors print "Connection refused (os error 111)"; Go prints the
    // syscall text in lower case.
    match text.split(" (os error").next() {
        Some(head) => head.to_lowercase(),
        None => text,
    }
}

/// Writes one zap-style JSON log line to stderr, as etcd's tools log.
/// `logger` is the zap logger's name (etcd's client logs as `etcd-client`).
pub fn log_line(
    level: &str,
    logger: Option<&str>,
    caller: &str,
    msg: &str,
    fields: &[(&str, String)],
) {
    let mut line = format!(
        "{{\"level\":{},\"ts\":{}",
        gofmt::json_string(level),
        gofmt::json_string(&utc_timestamp(TimestampPrecision::Millis)),
    );
    if let Some(name) = logger {
        line.push_str(&format!(",\"logger\":{}", gofmt::json_string(name)));
    }
    line.push_str(&format!(
        ",\"caller\":{},\"msg\":{}",
        gofmt::json_string(caller),
        gofmt::json_string(msg)
    ));
    for (key, value) in fields {
        let rendered = match value.parse::<i64>() {
            Ok(n) if *key == "attempt" => n.to_string(),
            _ => gofmt::json_string(value),
        };
        line.push_str(&format!(",{}:{rendered}", gofmt::json_string(key)));
    }
    line.push('}');
    eprintln!("{line}");
}

/// Whether a failed call means the server refused on permissions (which
/// still proves it is up and committing).
pub fn is_permission_denied(err: &RpcError) -> bool {
    err.text == "etcdserver: permission denied"
}
