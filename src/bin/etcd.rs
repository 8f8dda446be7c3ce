//! The `etcd` daemon: parse etcd's flags, env vars or YAML file, set up
//! logging, and run the member until SIGTERM. SIGHUP re-reads the
//! configuration (the flags, the environment file the unit names in
//! RSETCD_ENVIRONMENT_FILE, the YAML file) and applies what can change
//! without a restart (the log level).

use rsetcd::config::{self, Command, ConfigErrorKind, LogFormat, LogLevel, LogOutput};
use rsetcd::{etcdmain, logging};

fn main() {
    rsetcd::abort_on_panic();
    // etcd's modes for everything the member writes (see storage::private)
    rsetcd::storage::private::restrict_umask();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // vars_os: a non-UTF-8 variable must not panic the daemon.
    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let cfg = match config::parse(args.clone(), env.clone()) {
        Ok(Command::Run(cfg)) => cfg,
        Ok(Command::Exit {
            code,
            output,
            to_stderr,
        }) => {
            if to_stderr {
                eprint!("{output}");
            } else {
                print!("{output}");
            }
            std::process::exit(code);
        }
        Err(e) => {
            if e.kind() == ConfigErrorKind::Usage {
                eprintln!("{e}");
            } else {
                eprintln!(
                    "{}",
                    serde_json::json!({"level": "warn", "msg": "failed to verify flags", "error": e.message()})
                );
            }
            std::process::exit(e.exit_code());
        }
    };

    let level = tracing_level(cfg.log_level);
    let format = match cfg.log_format {
        LogFormat::Json => logging::Format::Json,
        LogFormat::Console => logging::Format::Console,
    };
    let outputs: Vec<logging::Output> = cfg
        .log_outputs
        .iter()
        .map(|o| match o {
            LogOutput::Stderr => logging::Output::Stderr,
            LogOutput::Stdout => logging::Output::Stdout,
            LogOutput::Journal => logging::Output::Journal,
            LogOutput::File(p) => logging::Output::File(p.clone()),
        })
        .collect();
    if let Err(e) = logging::init(level, format, &outputs) {
        // etcd checks its log outputs while verifying its flags.
        eprintln!(
            "{}",
            serde_json::json!({"level": "warn", "msg": "failed to verify flags", "error": e.to_string()})
        );
        std::process::exit(1);
    }
    for i in &cfg.infos {
        tracing::info!("{i}");
    }
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("etcd-worker")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("etcd: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    reload_on_sighup(&runtime, args, env, (*cfg).clone());
    #[cfg(feature = "failpoints")]
    let _failpoints = runtime.block_on(async { rsetcd::failpoint::setup() });
    if let Err(e) = runtime.block_on(etcdmain::run(etcdmain::ServeOptions::from(&*cfg))) {
        tracing::error!(error = format!("{e:#}"), "etcd stopped with an error");
        eprintln!("etcd: {e:#}");
        std::process::exit(1);
    }
}

fn tracing_level(level: LogLevel) -> tracing::Level {
    match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error | LogLevel::DPanic | LogLevel::Panic | LogLevel::Fatal => {
            tracing::Level::ERROR
        }
    }
}

/// Installs the SIGHUP handler now (SIGHUP would otherwise end the
/// process) and reloads on every signal.
fn reload_on_sighup(
    runtime: &tokio::runtime::Runtime,
    args: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
    mut current: config::Config,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let _entered = runtime.enter();
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle SIGHUP; reloading is off");
            return;
        }
    };
    let mut env = EnvSource::new(env);
    runtime.spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("received SIGHUP; reloading the configuration");
            // a small file read, on a blocking thread all the same
            let (next_env, args_now) = (env.clone(), args.clone());
            let read = tokio::task::spawn_blocking(move || {
                let mut env = next_env;
                env.refresh().map(|()| env)
            })
            .await;
            match read {
                Ok(Ok(fresh)) => env = fresh,
                Ok(Err(e)) => {
                    tracing::warn!(
                        error = e,
                        "cannot reload the configuration; keeping the running one"
                    );
                    continue;
                }
                Err(_) => continue,
            }
            if let Some(next) = reload(&args_now, &env.vars, &current) {
                current = next;
            }
        }
    });
}

/// The environment a reload parses: the process's own, with the unit's
/// environment file (RSETCD_ENVIRONMENT_FILE) read again, since systemd
/// reads it only when it starts the process.
#[derive(Clone)]
struct EnvSource {
    vars: Vec<(String, String)>,
    file: Option<std::path::PathBuf>,
    /// The names the file set last time, removed before it is read again
    /// (a line deleted from the file unsets its variable, as at a restart).
    from_file: Vec<String>,
}

impl EnvSource {
    fn new(vars: Vec<(String, String)>) -> EnvSource {
        let file = vars
            .iter()
            .find(|(k, _)| k == config::envfile::ENV_FILE_VAR)
            .map(|(_, v)| std::path::PathBuf::from(v))
            .filter(|p| !p.as_os_str().is_empty());
        let from_file = file
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| {
                config::envfile::parse(&text)
                    .0
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect()
            })
            .unwrap_or_default();
        EnvSource {
            vars,
            file,
            from_file,
        }
    }

    /// Reads the environment file again (a missing file sets nothing, as
    /// `EnvironmentFile=-` in the unit); the file's assignments override
    /// the process environment, as systemd applies them.
    fn refresh(&mut self) -> Result<(), String> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                // a file only root may read: the YAML file and the flags
                // still reload, with the variables etcd started with
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "cannot read the environment file; reloading with the variables etcd started with"
                );
                return Ok(());
            }
        };
        let (assigned, skipped) = config::envfile::parse(&text);
        for line in skipped {
            tracing::warn!(path = %path.display(), line, "ignoring a line of the environment file that is not an assignment");
        }
        self.vars
            .retain(|(k, _)| !self.from_file.contains(k) && !assigned.iter().any(|(a, _)| a == k));
        self.from_file = assigned.iter().map(|(k, _)| k.clone()).collect();
        self.vars.extend(assigned);
        Ok(())
    }
}

/// Parses flags, environment and config file again; applies the log level
/// and names the settings that need a restart. Returns the new
/// configuration, or None (and keeps the running one) when it does not
/// parse.
fn reload(
    args: &[std::ffi::OsString],
    env: &[(String, String)],
    current: &config::Config,
) -> Option<config::Config> {
    let next = match config::parse(args.to_vec(), env.to_vec()) {
        Ok(Command::Run(cfg)) => *cfg,
        Ok(Command::Exit { .. }) => return None,
        Err(e) => {
            tracing::warn!(
                error = e.message(),
                "cannot reload the configuration; keeping the running one"
            );
            return None;
        }
    };
    let level = tracing_level(next.log_level);
    let previous = logging::set_level(level);
    if previous != level {
        tracing::info!(
            previous = previous.to_string().to_lowercase(),
            current = level.to_string().to_lowercase(),
            "changed the log level"
        );
    }
    let mut unchanged_level = next.clone();
    unchanged_level.log_level = current.log_level;
    let pending = changed_settings(current, &unchanged_level);
    if !pending.is_empty() {
        tracing::warn!(
            settings = pending.join(","),
            "these settings changed but take effect only at restart"
        );
    }
    if previous == level && pending.is_empty() {
        tracing::info!("configuration reloaded; nothing changed");
    }
    Some(next)
}

/// Names (as flags) of the top-level settings that differ, read from the
/// configurations' pretty debug forms.
fn changed_settings(a: &config::Config, b: &config::Config) -> Vec<String> {
    fn fields(c: &config::Config) -> Vec<(String, String)> {
        let text = format!("{c:#?}");
        let mut out: Vec<(String, String)> = Vec::new();
        for line in text.lines().skip(1) {
            let top = line.strip_prefix("    ").filter(|l| !l.starts_with(' '));
            match top.and_then(|l| l.split_once(':')) {
                Some((name, _)) => out.push((name.to_string(), line.to_string())),
                None => {
                    if let Some(last) = out.last_mut() {
                        last.1.push_str(line);
                    }
                }
            }
        }
        out
    }
    let (fa, fb) = (fields(a), fields(b));
    fa.iter()
        .zip(fb.iter())
        .filter(|(x, y)| x != y)
        .map(|(x, _)| x.0.replace('_', "-"))
        .filter(|name| name != "warnings" && name != "infos")
        .collect()
}
