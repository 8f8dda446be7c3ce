//! A `clap::Command` that describes `etcd`'s command line for documentation
//! (man page, shell completions), built from the settings table. etcd does
//! not parse with it: `flags.rs` owns parsing with Go's `flag` rules; this
//! only says which flags exist, what they take, their defaults and their
//! `ETCD_*` variables, grouped in `--help`'s sections.

use clap::builder::PossibleValuesParser;
use clap::{Arg, ArgAction, Command, ValueHint};

use super::help::USAGE;
use super::table::{Kind, Section, Setting, SETTINGS};

/// etcd's command line as a documentation-only clap command.
pub fn docs_command() -> Command {
    let mut command = Command::new("etcd")
        .version(crate::ETCD_VERSION)
        .about("An etcd-compatible, distributed, reliable key-value store")
        .long_about(
            "etcd is a strongly consistent, distributed key-value store (rsetcd, \
             compatible with etcd 3.5). Every flag can also be given as an ETCD_* \
             environment variable (--listen-client-urls is ETCD_LISTEN_CLIENT_URLS), \
             or as a key of the YAML file named by --config-file, in which case \
             other flags and variables are ignored. Flags take one or two dashes; \
             a boolean's value must be attached with '=' (--enable-pprof=false).",
        )
        .after_long_help(USAGE)
        .disable_version_flag(true)
        .arg(
            Arg::new("config-file")
                .long("config-file")
                .value_name("FILE")
                .value_hint(ValueHint::FilePath)
                .env("ETCD_CONFIG_FILE")
                .help(
                    "Path to the server configuration file. Note that if a configuration \
                     file is provided, other command line flags and environment variables \
                     will be ignored.",
                ),
        )
        .arg(
            Arg::new("version")
                .long("version")
                .action(ArgAction::Version)
                .help("Print the version and exit."),
        );
    for setting in SETTINGS.iter().filter(|s| s.section != Section::Hidden) {
        command = command.arg(setting_arg(setting));
    }
    command
}

fn setting_arg(setting: &Setting) -> Arg {
    let title = setting.section.title();
    let mut help = setting.help.to_string();
    if !setting.shown_default.is_empty() {
        help.push_str(&format!(" [default: {}]", setting.shown_default));
    }
    let arg = Arg::new(setting.name)
        .long(setting.name)
        .help(help)
        .help_heading(title.trim_end_matches(':').to_string())
        .env(setting.env_name());
    match setting.kind {
        // `--x` alone means true; a value needs `=` (Go's flag package).
        Kind::Bool | Kind::Ignored => arg
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_name("BOOL")
            .value_parser(PossibleValuesParser::new(["true", "false"]))
            .hide_possible_values(true),
        Kind::Choice(choices) => arg
            .value_name("MODE")
            .value_parser(PossibleValuesParser::new(choices.iter().copied())),
        Kind::Urls | Kind::Cors => arg.value_name("URLS").value_hint(ValueHint::Url),
        Kind::Duration => arg.value_name("DURATION"),
        Kind::Uint | Kind::Millis | Kind::Uint32 | Kind::Int => arg.value_name("NUMBER"),
        Kind::StringSet | Kind::StringSetList | Kind::StringList => arg.value_name("LIST"),
        Kind::Str => arg.value_name("STRING").value_hint(path_hint(setting.name)),
    }
}

/// Shells complete file or directory names for settings that name one.
fn path_hint(name: &str) -> ValueHint {
    if name.ends_with("-dir") {
        ValueHint::DirPath
    } else if name.ends_with("-file") {
        ValueHint::FilePath
    } else {
        ValueHint::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_every_listed_flag_with_its_variable() {
        let command = docs_command();
        command.clone().debug_assert();
        let name = command
            .get_arguments()
            .find(|a| a.get_id() == "name")
            .expect("--name is described");
        assert_eq!(name.get_env().and_then(|e| e.to_str()), Some("ETCD_NAME"));
        assert_eq!(name.get_help_heading(), Some("Member"));
        let listed = SETTINGS
            .iter()
            .filter(|s| s.section != Section::Hidden)
            .count();
        // every listed setting, plus --config-file and --version (clap adds
        // --help when the command is built)
        assert_eq!(command.get_arguments().count(), listed + 2);
    }
}
