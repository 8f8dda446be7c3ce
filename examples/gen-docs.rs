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
//! table through `rsetcd::config::docs_command`, etcdctl's command tree in
//! `src/bin/etcdctl/clap_tree.rs` (which `etcdctl completion` uses too).
//! etcdctl's and etcdutl's command definitions live in their binaries, which
//! an example cannot link against, so the files that hold them are compiled
//! into this example as modules: the docs always follow the real tables, and
//! the binaries keep their layout.

use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use clap::{Command, CommandFactory as _};
use clap_complete::Shell;

// The tables, exactly as the binaries compile them; the rest of those files
// (parsing, `main`) is unused here.
#[allow(dead_code)]
#[path = "../src/bin/etcdctl/flags.rs"]
mod flags;

#[allow(dead_code)]
#[path = "../src/bin/etcdctl/cli.rs"]
mod cli;

#[path = "../src/bin/etcdctl/clap_tree.rs"]
mod clap_tree;

#[allow(dead_code)]
#[path = "../src/bin/etcdutl.rs"]
mod etcdutl;

fn main() -> anyhow::Result<()> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let [out_dir] = args.as_slice() else {
        anyhow::bail!("usage: gen-docs OUTDIR (writes OUTDIR/man and OUTDIR/completions)");
    };
    let out_dir = Path::new(out_dir);
    for command in [
        etcd_command(),
        clap_tree::etcdctl_command(),
        etcdutl_command(),
    ] {
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
