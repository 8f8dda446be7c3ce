//! etcdctl's command tree as a clap `Command`, built from the tables the
//! real parser reads (`cli::ROOT`, `flags`): the shell completions of
//! `etcdctl completion <shell>` and the man pages and completion files that
//! `examples/gen-docs.rs` writes for the packages come from it, so they
//! always follow the commands and flags etcdctl has.

use clap::{Arg, ArgAction, Command, ValueHint};

use crate::cli::CommandDef;
use crate::flags::{FlagKind, FlagSpec};

/// etcdctl's cobra tree as a clap command: the root's persistent flags are
/// global, each command's flags and `Use` positionals are its arguments.
pub fn etcdctl_command() -> Command {
    command_from_def(&crate::cli::ROOT, &[])
        .version(crate::cli::VERSION)
        .long_about(
            "etcdctl is the command-line client of etcd's v3 API (rsetcd, compatible \
             with etcd 3.5's etcdctl). Every global flag can also be given as an \
             ETCDCTL_* environment variable (--endpoints is ETCDCTL_ENDPOINTS).",
        )
        .disable_help_subcommand(true)
        .disable_version_flag(true)
}

fn command_from_def(def: &CommandDef, parents: &[&str]) -> Command {
    let mut path = parents.to_vec();
    path.push(def.name);
    let mut command = Command::new(def.name)
        .about(def.short)
        .subcommand_required(!def.runnable && !def.children.is_empty());
    if !def.long.trim().is_empty() {
        command = command.long_about(def.long.trim().to_string());
    }
    // clap adds its own -h/--help, which is cobra's.
    for spec in def.flags.iter().filter(|f| f.name != "help") {
        command = command.arg(flag_arg(spec));
    }
    for spec in def.persistent {
        let mut arg = flag_arg(spec).global(true);
        // etcdctl reads its root's persistent flags from ETCDCTL_* too.
        if parents.is_empty() {
            arg = arg.env(format!(
                "ETCDCTL_{}",
                spec.name.replace('-', "_").to_uppercase()
            ));
        }
        command = command.arg(arg);
    }
    if def.children.is_empty() {
        for arg in positionals(def.usage) {
            command = command.arg(arg);
        }
    }
    for child in def.children {
        command = command.subcommand(command_from_def(child, &path));
    }
    // Subcommand pages are titled with their whole path (etcdctl-member-add).
    if !parents.is_empty() {
        command = command.display_name(path.join("-"));
    }
    command
}

fn flag_arg(spec: &FlagSpec) -> Arg {
    let mut arg = Arg::new(spec.name).long(spec.name).help(spec.usage);
    if let Some(c) = spec.short {
        arg = arg.short(c);
    }
    if !spec.default.is_empty() {
        arg = arg.default_value(spec.default_display());
    }
    match spec.kind {
        // pflag: `--x` means true, `--x=false` sets it false.
        FlagKind::Bool => arg
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_name("BOOL")
            .value_parser(["true", "false"])
            .hide_possible_values(true),
        FlagKind::Int64 => arg.value_name("NUMBER"),
        FlagKind::Duration => arg.value_name("DURATION"),
        FlagKind::StringSlice => arg.value_name("LIST").action(ArgAction::Append),
        FlagKind::String => {
            let hint = match spec.name {
                "cert" | "key" | "cacert" | "dest-cert" | "dest-key" | "dest-cacert" => {
                    ValueHint::FilePath
                }
                "data-dir" | "wal-dir" => ValueHint::DirPath,
                _ => ValueHint::Unknown,
            };
            arg.value_name("STRING").value_hint(hint)
        }
    }
}

/// The positional arguments named in cobra's `Use` line
/// (`get [options] <key> [range_end]`): `<x>` required, `[x]` optional,
/// a trailing `...` takes the rest; `[options]`, `[--]` and `(notes)` are not
/// arguments.
fn positionals(usage: &str) -> Vec<Arg> {
    let mut args = Vec::new();
    let mut rest = usage.split_once(' ').map(|(_, r)| r).unwrap_or("");
    while let Some(open) = rest.find(['<', '[', '(']) {
        let opener = rest.as_bytes()[open];
        let closer = match opener {
            b'<' => '>',
            b'[' => ']',
            _ => ')',
        };
        let Some(len) = rest[open..].find(closer) else {
            break;
        };
        let inner = &rest[open + 1..open + len];
        rest = &rest[open + len + 1..];
        if opener == b'(' || matches!(inner, "options" | "flags" | "--") {
            continue;
        }
        let variadic = inner.ends_with("...");
        let name = inner.split_whitespace().next().unwrap_or(inner);
        let mut arg = Arg::new(name.to_string())
            .value_name(name.to_string())
            .required(opener == b'<');
        if variadic {
            arg = arg.num_args(1..).trailing_var_arg(true);
        }
        if name.contains("filename") {
            arg = arg.value_hint(ValueHint::FilePath);
        }
        args.push(arg);
    }
    args
}
