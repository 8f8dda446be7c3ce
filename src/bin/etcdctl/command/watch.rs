//! `etcdctl watch [options] [key or prefix] [range_end] [--] [exec-command
//! arg1 arg2 ...]`: prints every event until the server ends the watch
//! (exit 5) or a signal ends etcdctl; with an exec-command, runs it once per
//! event. `-i` reads `watch ...` and `progress` lines from stdin instead.
//! Arguments are sorted out as etcd's `parseWatchArgs` does, quirks
//! included, from the raw command line (to find `--`).

use tokio::io::{AsyncBufReadExt as _, BufReader};

use rsetcd::client::prefix_end;
use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::WatchCreateRequest;

use crate::cli::WATCH_LINE_FLAGS;
use crate::command::txn::argify;
use crate::command::Invocation;
use crate::exit::{CtlResult, ExitError, EXIT_ERROR, EXIT_INTERRUPTED};
use crate::flags::{FlagSet, ParseError};
use crate::global::{self, Client};
use crate::printer::{event_type_name, Printer};
use crate::process::{self, Exec};
use crate::watcher::{WatchChannel, Watcher};

const ERR_BAD_ARGS_NUM: &str = "bad number of arguments";
const ERR_CONFLICT_ENV: &str = "bad number of arguments (found conflicting environment key)";
const ERR_SEPARATOR: &str = "bad number of arguments (found separator --, but no commands)";
const ERR_INTERACTIVE_WATCH: &str = "args[0] must be 'watch' for interactive calls";

const ENV_WATCH_KEY: &str = "ETCDCTL_WATCH_KEY";
const ENV_WATCH_RANGE_END: &str = "ETCDCTL_WATCH_RANGE_END";

/// The options a watch is created with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct WatchOptions {
    prefix: bool,
    rev: i64,
    prev_kv: bool,
    progress_notify: bool,
}

impl WatchOptions {
    fn from_flags(flags: &FlagSet) -> Self {
        WatchOptions {
            prefix: flags.bool("prefix"),
            rev: flags.int("rev"),
            prev_kv: flags.bool("prev-kv"),
            progress_notify: flags.bool("progress-notify"),
        }
    }
}

/// `ETCDCTL_WATCH_KEY` and `ETCDCTL_WATCH_RANGE_END`, which stand for the
/// key arguments.
struct EnvRange {
    key: String,
    range_end: String,
}

pub async fn run(mut inv: Invocation) -> CtlResult {
    let env = EnvRange {
        key: std::env::var(ENV_WATCH_KEY).unwrap_or_default(),
        range_end: std::env::var(ENV_WATCH_RANGE_END).unwrap_or_default(),
    };
    if env.key.is_empty() && !env.range_end.is_empty() {
        return Err(ExitError::bad_args(format!(
            "{ENV_WATCH_KEY} is empty but got {ENV_WATCH_RANGE_END}={}",
            gofmt::quote(env.range_end.as_bytes())
        )));
    }
    let os_args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let options = WatchOptions::from_flags(&inv.flags);
    if inv.flags.bool("interactive") {
        return interactive(inv, &os_args, &env, options).await;
    }
    let parsed = parse_watch_args(&os_args, &inv.args, &env, false).map_err(ExitError::bad_args)?;
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let request = watch_request(&parsed.watch_args, options).map_err(ExitError::bad_args)?;
    let mut watcher = Watcher::new(Client::unbounded(config).shared(), true);
    let channel = watcher.watch(request);
    print_watch_channel(&printer, channel, &parsed.exec_args).await?;
    Err(ExitError::new(
        EXIT_INTERRUPTED,
        "watch is canceled by the server",
    ))
}

/// `watch -i`: one watch per `watch ...` line, all on one stream, each
/// printing on its own; `progress` asks for a progress notification.
async fn interactive(
    mut inv: Invocation,
    os_args: &[String],
    env: &EnvRange,
    options: WatchOptions,
) -> CtlResult {
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let mut watcher = Watcher::new(Client::unbounded(config).shared(), true);
    let mut stdin = BufReader::new(tokio::io::stdin());
    loop {
        let mut raw = Vec::new();
        let read = stdin.read_until(b'\n', &mut raw).await;
        // Go's ReadString fails on a last line without a newline too.
        let line = match read {
            Ok(_) if raw.last() == Some(&b'\n') => {
                raw.pop();
                String::from_utf8_lossy(&raw).into_owned()
            }
            Ok(_) => {
                return Err(ExitError::invalid_input(
                    "Error reading watch request line: EOF",
                ))
            }
            Err(err) => {
                return Err(ExitError::invalid_input(format!(
                    "Error reading watch request line: {err}"
                )))
            }
        };
        let args: Vec<String> = argify(&line)?
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        match args.first().map(String::as_str) {
            None => eprintln!("Invalid command: {line} (watch and progress supported)"),
            Some("watch") => {
                if args.len() < 2 && env.key.is_empty() {
                    eprintln!("Invalid command {line} (command type or key is not provided)");
                    continue;
                }
                let parsed =
                    parse_watch_args(os_args, &args, env, true).map_err(ExitError::bad_args)?;
                let line_options = WatchOptions {
                    progress_notify: options.progress_notify,
                    ..parsed.line_options
                };
                match watch_request(&parsed.watch_args, line_options) {
                    Ok(request) => {
                        let channel = watcher.watch(request);
                        let printer = printer.clone();
                        tokio::spawn(async move {
                            if let Err(err) =
                                print_watch_channel(&printer, channel, &parsed.exec_args).await
                            {
                                exit_now(err);
                            }
                        });
                    }
                    Err(err) => eprintln!("Invalid command {line} ({err})"),
                }
            }
            Some("progress") => watcher.request_progress(),
            Some(_) => eprintln!("Invalid command {line} (only support watch)"),
        }
    }
}

/// Ends etcdctl from a watch's own task, as etcd's printing goroutine does.
fn exit_now(err: ExitError) -> ! {
    if !err.silent {
        eprintln!("Error: {}", err.message);
    }
    std::process::exit(err.code)
}

/// Prints a watch's responses until it ends, running the exec-command (if
/// any) for each event; a failed command ends etcdctl with status 1.
async fn print_watch_channel(
    printer: &Printer,
    mut channel: WatchChannel,
    exec_args: &[String],
) -> CtlResult {
    while let Some(response) = channel.recv().await {
        if response.canceled {
            let reason = response.err().unwrap_or_else(|| "<nil>".to_string());
            eprintln!("watch was canceled ({reason})");
        }
        if response.is_progress_notify() {
            printer.progress_notify(response.header.revision)?;
        }
        printer.watch(&response)?;
        if exec_args.is_empty() {
            continue;
        }
        for event in &response.events {
            let kv = event.kv.clone().unwrap_or_default();
            let exec = Exec {
                args: exec_args.to_vec(),
                env_over: vec![
                    (
                        "ETCD_WATCH_REVISION".to_string(),
                        response.header.revision.to_string(),
                    ),
                    (
                        "ETCD_WATCH_EVENT_TYPE".to_string(),
                        gofmt::quote(event_type_name(event).as_bytes()),
                    ),
                    ("ETCD_WATCH_KEY".to_string(), gofmt::quote(&kv.key)),
                    ("ETCD_WATCH_VALUE".to_string(), gofmt::quote(&kv.value)),
                ],
                ..Exec::default()
            };
            if let Err(failure) = process::run(exec).await {
                eprintln!(
                    "command {} error ({})",
                    go_quoted_list(exec_args),
                    failure.text
                );
                return Err(ExitError::new(EXIT_ERROR, String::new()).silent());
            }
        }
    }
    Ok(())
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| gofmt::quote(i.as_bytes())).collect();
    format!("[{}]", quoted.join(" "))
}

/// etcdctl's `getWatchChan`: the create request for `<key> [range_end]`.
fn watch_request(args: &[String], options: WatchOptions) -> Result<WatchCreateRequest, String> {
    let Some(key) = args.first() else {
        return Err(ERR_BAD_ARGS_NUM.to_string());
    };
    let mut key = key.as_bytes().to_vec();
    let mut range_end = Vec::new();
    if args.len() == 2 {
        if options.prefix {
            return Err("`range_end` and `--prefix` are mutually exclusive".to_string());
        }
        range_end = args[1].as_bytes().to_vec();
    }
    if options.prefix {
        if key.is_empty() {
            key = vec![0];
            range_end = vec![0];
        } else {
            range_end = prefix_end(&key);
        }
    }
    Ok(WatchCreateRequest {
        key,
        range_end,
        start_revision: options.rev,
        progress_notify: options.progress_notify,
        prev_kv: options.prev_kv,
        ..WatchCreateRequest::default()
    })
}

/// What `parseWatchArgs` makes of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ParsedWatch {
    /// `<key> [range_end]` (more words are ignored, as etcd ignores them).
    watch_args: Vec<String>,
    exec_args: Vec<String>,
    /// The flags of an interactive `watch` line.
    line_options: WatchOptions,
}

/// etcd's `parseWatchArgs`. `os_args` is the whole command line;
/// `command_args` the positional arguments (non-interactive) or the words
/// of a `watch` line (interactive).
fn parse_watch_args(
    os_args: &[String],
    command_args: &[String],
    env: &EnvRange,
    interactive: bool,
) -> Result<ParsedWatch, String> {
    // The words after the first literal "watch" (all of them if the
    // command was abbreviated).
    let raw_args = match os_args.iter().position(|a| a == "watch") {
        Some(idx) => &os_args[idx + 1..],
        None => os_args,
    };
    let mut watch_args = command_args.to_vec();
    if interactive {
        if watch_args.first().map(String::as_str) != Some("watch") {
            return Err(ERR_INTERACTIVE_WATCH.to_string());
        }
        watch_args.remove(0);
    }
    let has_env_key = !env.key.is_empty();
    if !interactive {
        let exec_idx = raw_args.iter().position(|a| a == "--");
        if exec_idx.is_some_and(|i| i == raw_args.len() - 1) {
            return Err(ERR_SEPARATOR.to_string());
        }
        if exec_idx.is_none() && raw_args.is_empty() && !has_env_key {
            return Err(ERR_BAD_ARGS_NUM.to_string());
        }
        if let (Some(exec_idx), true) = (exec_idx, has_env_key) {
            // "ETCDCTL_WATCH_KEY=foo watch foo -- echo 1": a key argument
            // before "--" conflicts with the variable.
            let mut ridx = raw_args.len() as isize - 1;
            for word in watch_args.iter().rev() {
                if ridx >= 0 && *word == raw_args[ridx as usize] {
                    ridx -= 1;
                    continue;
                }
                if ridx == exec_idx as isize {
                    return Err(ERR_CONFLICT_ENV.to_string());
                }
            }
        }
        if exec_idx.is_none() && !watch_args.is_empty() && has_env_key {
            return Err(ERR_CONFLICT_ENV.to_string());
        }
    } else {
        let exec_idx = watch_args.iter().position(|a| a == "--");
        if exec_idx.is_some_and(|i| i == watch_args.len() - 1) {
            return Err(ERR_SEPARATOR.to_string());
        }
        let (positional, _) = parse_line_flags(&watch_args)?;
        if exec_idx.is_none() && !has_env_key && positional.is_empty() {
            return Err(ERR_BAD_ARGS_NUM.to_string());
        }
        if exec_idx.is_none() && !positional.is_empty() && has_env_key {
            return Err(ERR_CONFLICT_ENV.to_string());
        }
    }

    // Interactive lines keep their "--"; on the command line, flag
    // parsing removed it, so look in the raw words.
    let args_with_sep: Vec<String> = if interactive {
        watch_args.clone()
    } else {
        raw_args.to_vec()
    };
    let separator = args_with_sep.iter().position(|a| a == "--");
    let exec_args = separator.map_or_else(Vec::new, |i| args_with_sep[i + 1..].to_vec());
    let mut line_options = WatchOptions::default();
    if interactive {
        let (positional, options) = parse_line_flags(&args_with_sep)?;
        watch_args = positional;
        line_options = options;
    }
    if has_env_key {
        let mut ranges = vec![env.key.clone()];
        if !env.range_end.is_empty() {
            ranges.push(env.range_end.clone());
        }
        ranges.append(&mut watch_args);
        watch_args = ranges;
    }
    if let Some(separator) = separator {
        // The positional arguments include the exec-command: cut them at
        // the last word equal to the command's name.
        let command = &args_with_sep[separator + 1];
        let end = watch_args.iter().rposition(|a| a == command).unwrap_or(0);
        watch_args.truncate(end);
    }
    Ok(ParsedWatch {
        watch_args,
        exec_args,
        line_options,
    })
}

/// Parses an interactive line's words with the watch command's flags.
fn parse_line_flags(words: &[String]) -> Result<(Vec<String>, WatchOptions), String> {
    let mut flags = FlagSet::new(WATCH_LINE_FLAGS.iter().copied());
    let positional = flags.parse(words).map_err(|err| match err {
        ParseError::Help => "pflag: help requested".to_string(),
        ParseError::Invalid(message) => message,
    })?;
    let options = WatchOptions {
        progress_notify: false,
        ..WatchOptions::from_flags(&flags)
    };
    Ok((positional, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn no_env() -> EnvRange {
        EnvRange {
            key: String::new(),
            range_end: String::new(),
        }
    }

    #[test]
    fn exec_command_follows_the_separator() {
        let os = words(&["etcdctl", "watch", "foo", "--rev", "1", "--", "echo", "hi"]);
        let parsed =
            parse_watch_args(&os, &words(&["foo", "echo", "hi"]), &no_env(), false).unwrap();
        assert_eq!(parsed.watch_args, words(&["foo"]));
        assert_eq!(parsed.exec_args, words(&["echo", "hi"]));
    }

    #[test]
    fn argument_errors_match_etcd() {
        let os = words(&["etcdctl", "watch", "foo", "--"]);
        assert_eq!(
            parse_watch_args(&os, &words(&["foo"]), &no_env(), false),
            Err(ERR_SEPARATOR.to_string())
        );
        let env = EnvRange {
            key: "k".into(),
            range_end: String::new(),
        };
        let os = words(&["etcdctl", "watch", "foo"]);
        assert_eq!(
            parse_watch_args(&os, &words(&["foo"]), &env, false),
            Err(ERR_CONFLICT_ENV.to_string())
        );
        let os = words(&["etcdctl", "watch", "--", "echo"]);
        let parsed = parse_watch_args(&os, &words(&["echo"]), &env, false).unwrap();
        assert_eq!(parsed.watch_args, words(&["k"]));
        assert_eq!(parsed.exec_args, words(&["echo"]));
    }

    #[test]
    fn interactive_lines_carry_their_flags() {
        let os = words(&["etcdctl", "watch", "-i"]);
        let line = words(&["watch", "a", "--prefix", "--rev=3", "--", "echo", "x"]);
        let parsed = parse_watch_args(&os, &line, &no_env(), true).unwrap();
        assert_eq!(parsed.watch_args, words(&["a"]));
        assert_eq!(parsed.exec_args, words(&["echo", "x"]));
        assert!(parsed.line_options.prefix);
        assert_eq!(parsed.line_options.rev, 3);
        assert_eq!(
            parse_watch_args(&os, &words(&["watch", "--rev=zz", "x"]), &no_env(), true),
            Err(
                "invalid argument \"zz\" for \"--rev\" flag: strconv.ParseInt: parsing \"zz\": invalid syntax"
                    .to_string()
            )
        );
    }

    #[test]
    fn requests_like_clientv3() {
        let options = WatchOptions {
            prefix: true,
            ..WatchOptions::default()
        };
        let request = watch_request(&words(&[""]), options).unwrap();
        assert_eq!((request.key, request.range_end), (vec![0], vec![0]));
        assert_eq!(
            watch_request(&words(&["a", "b"]), options),
            Err("`range_end` and `--prefix` are mutually exclusive".to_string())
        );
        let request = watch_request(&words(&["a", "b", "c"]), WatchOptions::default()).unwrap();
        assert_eq!(
            (request.key, request.range_end),
            (b"a".to_vec(), Vec::new())
        );
    }
}
