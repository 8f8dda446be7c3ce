//! The usage text etcdctl prints for `--help`, `help <command>` and flag
//! errors: etcd's `cobrautl` usage template (NAME, USAGE, VERSION,
//! COMMANDS, DESCRIPTION, OPTIONS, GLOBAL OPTIONS), aligned by tabwriter.

use std::fmt::Write as _;

use rsetcd::gofmt;

use crate::cli::{CommandDef, Resolved, API_VERSION, VERSION};
use crate::flags::{FlagKind, FlagSpec};
use crate::tabwriter;

/// The full usage text of the resolved command.
pub fn usage(resolved: &Resolved) -> String {
    let cmd = resolved.command();
    let is_root = resolved.path.len() == 1;
    let mut t = String::new();
    let name = if is_root {
        cmd.name.to_string()
    } else {
        relative_name(&resolved.path[1..])
    };
    let _ = write!(t, "NAME:\n\t{name} - {}\n", cmd.short);
    t.push_str("\nUSAGE:\n");
    let _ = writeln!(t, "\t{}", use_line(resolved));
    if is_root {
        let _ = write!(t, "\nVERSION:\n\t{VERSION}\n");
    }
    if !cmd.children.is_empty() {
        let _ = write!(t, "\nAPI VERSION:\n\t{API_VERSION}\n");
        t.push_str("\n\nCOMMANDS:\n");
        let mut listed = Vec::new();
        collect_runnable(cmd, &mut Vec::new(), &mut listed);
        for (name, short) in listed {
            let _ = writeln!(t, "\t{name}\t{short}");
        }
    }
    if !cmd.long.is_empty() {
        t.push_str("\nDESCRIPTION:\n");
        for line in cmd.long.trim_matches(['\n', '\t', ' ']).split('\n') {
            let _ = writeln!(t, "\t{line}");
        }
    }
    let local = resolved.local_flags();
    if !local.is_empty() {
        t.push_str("\nOPTIONS:\n");
        t.push_str(&flag_usages(&local));
    }
    let inherited = resolved.inherited_flags();
    if !inherited.is_empty() {
        t.push_str("\nGLOBAL OPTIONS:\n");
        t.push_str(&flag_usages(&inherited));
    }
    t.push('\n');
    tabwriter::align(&t)
}

/// cobra's `UseLine`: the parent's path, the command's `Use`, `[flags]`.
fn use_line(resolved: &Resolved) -> String {
    let cmd = resolved.command();
    let mut line = if resolved.path.len() > 1 {
        let parent: Vec<&str> = resolved.path[..resolved.path.len() - 1]
            .iter()
            .map(|c| c.name)
            .collect();
        format!("{} {}", parent.join(" "), cmd.usage)
    } else {
        cmd.usage.to_string()
    };
    if !line.contains("[flags]") {
        line.push_str(" [flags]");
    }
    line
}

fn relative_name(path: &[&CommandDef]) -> String {
    path.iter().map(|c| c.name).collect::<Vec<_>>().join(" ")
}

/// Every runnable descendant, depth first, named relative to `cmd`.
fn collect_runnable<'a>(
    cmd: &'a CommandDef,
    prefix: &mut Vec<&'a str>,
    out: &mut Vec<(String, &'a str)>,
) {
    for child in cmd.children {
        prefix.push(child.name);
        if child.runnable {
            out.push((prefix.join(" "), child.short));
        }
        collect_runnable(child, prefix, out);
        prefix.pop();
    }
}

/// etcd's flag listing: `  -w, --write-out="simple"\tusage`.
fn flag_usages(flags: &[FlagSpec]) -> String {
    let mut out = String::new();
    for flag in flags {
        match flag.short {
            Some(c) => {
                let _ = write!(out, "  -{c}, --{}", flag.name);
            }
            None => {
                let _ = write!(out, "      --{}", flag.name);
            }
        }
        let default = flag.default_display();
        let value = if flag.kind == FlagKind::String {
            gofmt::quote(default.as_bytes())
        } else {
            default
        };
        if flag.kind == FlagKind::Bool {
            let _ = write!(out, "[={value}]");
        } else {
            let _ = write!(out, "={value}");
        }
        let _ = writeln!(out, "\t{}", flag.usage);
    }
    out
}
