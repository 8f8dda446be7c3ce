//! Generates the man pages and shell completions the packages install:
//!
//! ```sh
//! cargo run --release --example gen-docs -- OUTDIR
//! ```
//!
//! writes `OUTDIR/man/*.1` (etcd.1, etcdctl.1, etcdctl-<command>.1, etcdutl.1,
//! etcdutl-<command>.1) and `OUTDIR/completions/{etcd,etcdctl,etcdutl}.{bash,zsh,fish}`.
//!
//! Only etcdutl parses its command line with clap. etcd (Go `flag` rules) and
//! etcdctl (cobra/pflag rules) have their own parsers, so for them a clap
//! command is built from the tables those parsers read: etcd's settings
//! table through `rsetcd::config::docs_command`, etcdctl's command tree here.
//! etcdctl's and etcdutl's command definitions live in their binaries, which
//! an example cannot link against, so the files that hold them are compiled
//! into this example as modules: the docs always follow the real tables, and
//! the binaries keep their layout.

use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use clap::{Arg, ArgAction, Command, CommandFactory as _, ValueHint};
use clap_complete::Shell;

// The tables, exactly as the binaries compile them; the rest of those files
// (parsing, `main`) is unused here.
#[allow(dead_code)]
#[path = "../src/bin/etcdctl/flags.rs"]
mod flags;

#[allow(dead_code)]
#[path = "../src/bin/etcdctl/cli.rs"]
mod cli;

#[allow(dead_code)]
#[path = "../src/bin/etcdutl.rs"]
mod etcdutl;

use cli::CommandDef;
use flags::{FlagKind, FlagSpec};

fn main() -> anyhow::Result<()> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let [out_dir] = args.as_slice() else {
        anyhow::bail!("usage: gen-docs OUTDIR (writes OUTDIR/man and OUTDIR/completions)");
    };
    let out_dir = Path::new(out_dir);
    for command in [etcd_command(), etcdctl_command(), etcdutl_command()] {
        write_man_pages(command.clone(), &out_dir.join("man"))?;
        write_completions(command, &out_dir.join("completions"))?;
    }
    println!(
        "wrote {}/man and {}/completions",
        out_dir.display(),
        out_dir.display()
    );
    Ok(())
}

fn etcd_command() -> Command {
    rsetcd::config::docs_command().after_long_help(
        "FILES:\n  \
         /etc/etcd/etcd.conf      ETCD_* settings, read by etcd.service (EnvironmentFile)\n  \
         /etc/etcd/etcd.conf.yml  the YAML configuration, used when ETCD_CONFIG_FILE names it\n  \
         /var/lib/etcd            the data directory of the packaged service",
    )
}

fn etcdutl_command() -> Command {
    etcdutl::Cli::command().version(rsetcd::ETCD_VERSION)
}

/// One man page per command and subcommand (clap_mangen names them
/// `etcdctl-member-add.1`).
fn write_man_pages(command: Command, dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    clap_mangen::generate_to(command, dir)
        .with_context(|| format!("write man pages into {}", dir.display()))
}

fn write_completions(mut command: Command, dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let name = command.get_name().to_string();
    for (shell, ext) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let path = dir.join(format!("{name}.{ext}"));
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, &name, &mut script);
        fs::File::create(&path)
            .and_then(|mut f| f.write_all(&script))
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// etcdctl's cobra tree as a clap command: the root's persistent flags are
/// global, each command's flags and `Use` positionals are its arguments.
fn etcdctl_command() -> Command {
    command_from_def(&cli::ROOT, &[])
        .version(cli::VERSION)
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
