//! Command-line parsing with the semantics of Go's `flag` package, which etcd
//! uses: `-name` and `--name` are the same flag, `--name value` and
//! `--name=value` both work, booleans only take `=value`, parsing stops at
//! the first non-flag argument, and errors are Go's texts (exit code 2).
//!
//! A small lexer applies those rules and hands clap a normalised argument
//! list (`--name=value`); clap then collects occurrences and runs the typed
//! value parsers in argument order.

use std::error::Error as _;

use clap::builder::ValueParser;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, Command};

use super::table::{self, Setting, SETTINGS};
use super::value::{parse_flag_value, Value};
use super::ConfigError;

/// The result of reading the command line.
pub(crate) enum FlagOutcome {
    /// `-h`/`--help` was given (after every earlier flag parsed cleanly).
    Help,
    Parsed(CommandLine),
}

/// Settings given on the command line, in table order, with their last value.
pub(crate) struct CommandLine {
    pub values: Vec<(&'static Setting, Value)>,
    /// Arguments after the flags; etcd rejects them.
    pub positionals: Vec<String>,
}

impl CommandLine {
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.values
            .iter()
            .find(|(s, _)| s.name == name)
            .map(|(_, v)| v)
    }
}

/// A flag value error already worded as etcd prints it.
#[derive(Debug)]
struct FlagValueError(String);

impl std::fmt::Display for FlagValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FlagValueError {}

/// Parses `args` (without argv[0]) like etcd's flag set.
pub(crate) fn parse(args: &[String]) -> Result<FlagOutcome, ConfigError> {
    let lexed = lex(args)?;
    let matches = clap_command()
        .try_get_matches_from(&lexed.tokens)
        .map_err(clap_error)?;
    if lexed.help {
        return Ok(FlagOutcome::Help);
    }
    let mut values = Vec::new();
    for setting in SETTINGS {
        if matches.value_source(setting.name) != Some(ValueSource::CommandLine) {
            continue;
        }
        if let Some(value) = matches
            .get_many::<Value>(setting.name)
            .and_then(|mut values| values.next_back())
        {
            values.push((setting, value.clone()));
        }
    }
    Ok(FlagOutcome::Parsed(CommandLine {
        values,
        positionals: lexed.positionals,
    }))
}

/// The command line after Go's lexical rules, ready for clap.
struct Lexed {
    tokens: Vec<String>,
    help: bool,
    positionals: Vec<String>,
}

/// Go's `FlagSet.parseOne`, applied until the first non-flag argument.
fn lex(args: &[String]) -> Result<Lexed, ConfigError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        let dashes = if arg.starts_with("--") { 2 } else { 1 };
        if arg == "--" {
            i += 1;
            break;
        }
        let body = &arg[dashes..];
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(ConfigError::usage(format!("bad flag syntax: {arg}")));
        }
        i += 1;
        let (name, attached) = match body.char_indices().skip(1).find(|(_, c)| *c == '=') {
            Some((eq, _)) => (&body[..eq], Some(&body[eq + 1..])),
            None => (body, None),
        };
        let Some(setting) = table::find(name) else {
            if name == "help" || name == "h" {
                return Ok(Lexed {
                    tokens,
                    help: true,
                    positionals: Vec::new(),
                });
            }
            return Err(ConfigError::usage(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        if setting.kind.is_bool_like() {
            tokens.push(match attached {
                Some(value) => format!("--{name}={value}"),
                None => format!("--{name}"),
            });
            continue;
        }
        let value = match attached {
            Some(value) => value,
            None => {
                let Some(next) = args.get(i) else {
                    return Err(ConfigError::usage(format!(
                        "flag needs an argument: -{name}"
                    )));
                };
                i += 1;
                next.as_str()
            }
        };
        tokens.push(format!("--{name}={value}"));
    }
    Ok(Lexed {
        tokens,
        help: false,
        positionals: args[i..].to_vec(),
    })
}

/// One clap argument per table entry; values go through the etcd parsers.
fn clap_command() -> Command {
    let mut command = Command::new("etcd")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true);
    for setting in SETTINGS {
        let mut arg = Arg::new(setting.name)
            .long(setting.name)
            .action(ArgAction::Append)
            .require_equals(true)
            .value_parser(value_parser(setting));
        arg = if setting.kind.is_bool_like() {
            arg.num_args(0..=1).default_missing_value("true")
        } else {
            arg.num_args(1)
        };
        command = command.arg(arg);
    }
    command
}

fn value_parser(setting: &'static Setting) -> ValueParser {
    ValueParser::new(move |raw: &str| {
        parse_flag_value(setting, raw).map_err(|e| {
            let message = if setting.kind.is_bool_like() {
                format!("invalid boolean value {raw:?} for -{}: {e}", setting.name)
            } else {
                format!("invalid value {raw:?} for flag -{}: {e}", setting.name)
            };
            FlagValueError(message)
        })
    })
}

/// Turns a clap failure into etcd's usage error.
fn clap_error(err: clap::Error) -> ConfigError {
    if let Some(ours) = err
        .source()
        .and_then(|source| source.downcast_ref::<FlagValueError>())
    {
        return ConfigError::usage(ours.0.clone());
    }
    // The lexer only passes known flags in `--name[=value]` form, so clap
    // failing otherwise means an argument it could not decode.
    let message = match err.kind() {
        ErrorKind::InvalidUtf8 => "invalid UTF-8 in command-line argument".to_string(),
        _ => err
            .render()
            .to_string()
            .trim()
            .trim_start_matches("error: ")
            .to_string(),
    };
    ConfigError::usage(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn parsed(list: &[&str]) -> CommandLine {
        match parse(&args(list)) {
            Ok(FlagOutcome::Parsed(cl)) => cl,
            Ok(FlagOutcome::Help) => panic!("unexpected help"),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn error(list: &[&str]) -> String {
        match parse(&args(list)) {
            Err(e) => e.message().to_string(),
            Ok(_) => panic!("expected an error for {list:?}"),
        }
    }

    #[test]
    fn accepts_go_flag_forms() {
        let cl = parsed(&[
            "-name",
            "a",
            "--data-dir=/d",
            "--snapshot-count",
            "7",
            "-pre-vote=false",
        ]);
        assert_eq!(cl.get("name"), Some(&Value::Str("a".into())));
        assert_eq!(cl.get("data-dir"), Some(&Value::Str("/d".into())));
        assert_eq!(cl.get("snapshot-count"), Some(&Value::Uint(7)));
        assert_eq!(cl.get("pre-vote"), Some(&Value::Bool(false)));
        assert!(cl.positionals.is_empty());
    }

    #[test]
    fn values_may_start_with_dashes_and_be_empty() {
        let cl = parsed(&["--name", "--weird", "--wal-dir="]);
        assert_eq!(cl.get("name"), Some(&Value::Str("--weird".into())));
        assert_eq!(cl.get("wal-dir"), Some(&Value::Str(String::new())));
    }

    #[test]
    fn last_occurrence_wins() {
        let cl = parsed(&["--name", "a", "--name", "b"]);
        assert_eq!(cl.get("name"), Some(&Value::Str("b".into())));
    }

    #[test]
    fn bool_flags_take_no_separate_value() {
        let cl = parsed(&["--strict-reconfig-check", "false"]);
        assert_eq!(cl.get("strict-reconfig-check"), Some(&Value::Bool(true)));
        assert_eq!(cl.positionals, ["false"]);
    }

    #[test]
    fn parsing_stops_at_first_positional_or_double_dash() {
        assert_eq!(parsed(&["bar", "--foo"]).positionals, ["bar", "--foo"]);
        assert_eq!(parsed(&["--", "--name"]).positionals, ["--name"]);
        assert_eq!(parsed(&["-"]).positionals, ["-"]);
    }

    #[test]
    fn errors_use_go_wording() {
        assert_eq!(error(&["--foo"]), "flag provided but not defined: -foo");
        assert_eq!(error(&["-foo=1"]), "flag provided but not defined: -foo");
        assert_eq!(error(&["---name"]), "bad flag syntax: ---name");
        assert_eq!(error(&["--name"]), "flag needs an argument: -name");
        assert_eq!(
            error(&["--heartbeat-interval=abc"]),
            "invalid value \"abc\" for flag -heartbeat-interval: parse error (expected a non-negative integer number of milliseconds)"
        );
        assert_eq!(
            error(&["--pre-vote=maybe"]),
            "invalid boolean value \"maybe\" for -pre-vote: parse error (expected true or false)"
        );
        assert_eq!(
            error(&["--listen-client-urls", "abc"]),
            "invalid value \"abc\" for flag -listen-client-urls: URL scheme must be http, https, unix, or unixs: abc"
        );
    }

    #[test]
    fn help_is_reported_after_earlier_flags_parse() {
        assert!(matches!(parse(&args(&["-h"])), Ok(FlagOutcome::Help)));
        assert!(matches!(
            parse(&args(&["--name", "x", "-help"])),
            Ok(FlagOutcome::Help)
        ));
        assert!(parse(&args(&["--heartbeat-interval=x", "--help"])).is_err());
        assert!(parse(&args(&["--foo", "--help"])).is_err());
    }

    #[test]
    fn legacy_flags_are_accepted() {
        let cl = parsed(&["--snapshot", "-v", "--peer-heartbeat-interval=5"]);
        assert!(cl.get("snapshot").is_some() && cl.get("v").is_some());
    }
}
