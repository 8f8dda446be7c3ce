//! `etcdctl`: etcd's command-line client for the v3 API, output-compatible
//! with etcd 3.5's etcdctl (same commands, flags, environment variables,
//! output formats, error messages and exit codes).
//!
//! Layout: `cli` (command tree and resolution), `flags` (pflag syntax),
//! `help` + `tabwriter` (usage text), `global` (environment, connection,
//! errors), `tls` (client TLS), `password` (password prompts), `printer` (output formats), `exit` (exit codes), `command/*`
//! (one module per command). The long-running commands use ports of
//! clientv3's machinery: `watcher` (watch streams), `lessor` (lease
//! keep-alive), `concurrency` (session, mutex, election), with `process`
//! (exec-commands), `shutdown` (signals) and `progress` (the progress bar
//! of `check`). Go's formatting rules are
//! `rsetcd::gofmt`.

mod clap_tree;
mod cli;
mod command;
mod concurrency;
mod exit;
mod flags;
mod global;
mod help;
mod lessor;
mod password;
mod printer;
mod process;
mod progress;
mod shutdown;
mod tabwriter;
mod tls;
mod watcher;

use crate::command::Invocation;
use crate::flags::ParseError;

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    // etcdctl 3.5 still had a v2 mode; ours speaks only the v3 API.
    if let Ok(api) = std::env::var("ETCDCTL_API") {
        if !api.is_empty() && api != "3" {
            eprintln!("unsupported API version {api}");
            return exit::EXIT_ERROR;
        }
    }
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();

    let resolved = match cli::find(&args) {
        Ok(resolved) => resolved,
        Err(message) => {
            // cobra reports it, then etcdctl's MustStart reports it again.
            eprintln!("Error: {message}");
            eprintln!("Run 'etcdctl --help' for usage.");
            eprintln!("Error: {message}");
            return exit::EXIT_ERROR;
        }
    };
    let mut flags = resolved.flag_set();
    let args = match flags.parse(&resolved.args) {
        Ok(args) => args,
        Err(ParseError::Help) => {
            print!("{}", help::usage(&resolved));
            return 0;
        }
        Err(ParseError::Invalid(message)) => {
            // cobra prints the error and the usage (etcd's usage function
            // writes to stdout), then MustStart prints the error again.
            eprintln!("Error: {message}");
            print!("{}", help::usage(&resolved));
            eprintln!();
            eprintln!("Error: {message}");
            return exit::EXIT_ERROR;
        }
    };
    if !resolved.command().runnable {
        print!("{}", help::usage(&resolved));
        return 0;
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("Error: start async runtime: {err}");
            return exit::EXIT_ERROR;
        }
    };
    let invocation = Invocation {
        flags,
        inherited: resolved.inherited_flags(),
        args,
    };
    match runtime.block_on(command::run(&resolved, invocation)) {
        Ok(()) => 0,
        Err(err) => {
            if !err.silent {
                eprintln!("Error: {}", err.message);
            }
            err.code
        }
    }
}
