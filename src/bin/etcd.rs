//! The `etcd` daemon: parse etcd's flags, env vars or YAML file, set up
//! logging, and run the member until SIGTERM.

use rsetcd::config::{self, Command, ConfigErrorKind, LogFormat, LogLevel, LogOutput};
use rsetcd::{etcdmain, logging};

fn main() {
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
    let cfg = match config::parse(args, env) {
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

    let level = match cfg.log_level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error | LogLevel::DPanic | LogLevel::Panic | LogLevel::Fatal => {
            tracing::Level::ERROR
        }
    };
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
            LogOutput::File(p) => logging::Output::File(p.clone()),
        })
        .collect();
    if let Err(e) = logging::init(level, format, &outputs) {
        eprintln!("etcd: cannot open log output: {e}");
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
    if let Err(e) = runtime.block_on(etcdmain::run(etcdmain::ServeOptions::from(&*cfg))) {
        tracing::error!(error = format!("{e:#}"), "etcd stopped with an error");
        eprintln!("etcd: {e:#}");
        std::process::exit(1);
    }
}
