//! The sample configuration files the packages ship, etc/etcd/etcd.conf
//! (ETCD_* variables) and etc/etcd/etcd.conf.yml (etcd's YAML keys),
//! written from the settings table: every name, default, help text and
//! "not supported" mark comes from [`super::table`], so the files can never
//! say something the daemon does not do.
//!
//! A unit test fails when a shipped file differs from what is written
//! here; `UPDATE_SAMPLES=1 cargo test --lib config::sample` rewrites them
//! (the pattern of rust-analyzer's generated files).

use std::fmt::Write as _;

use super::table::{Kind, Section, Setting, Support, YamlKey, SETTINGS};
use super::value::{default_value, Value};

/// Settings the shipped files set (uncommented): a single member on
/// localhost with its data under /var/lib/etcd, as the unit expects.
const ACTIVE: &[(&str, &str)] = &[
    ("name", "default"),
    ("data-dir", "/var/lib/etcd/default.etcd"),
    ("listen-peer-urls", "http://localhost:2380"),
    ("listen-client-urls", "http://localhost:2379"),
    ("initial-advertise-peer-urls", "http://localhost:2380"),
    ("initial-cluster", "default=http://localhost:2380"),
    ("initial-cluster-state", "new"),
    ("initial-cluster-token", "etcd-cluster"),
    ("advertise-client-urls", "http://localhost:2379"),
];

const NOT_SUPPORTED: &str = "(not supported by rsetcd yet)";

/// The sections in `--help` order.
const SECTIONS: &[Section] = &[
    Section::Member,
    Section::Clustering,
    Section::Security,
    Section::Auth,
    Section::Monitoring,
    Section::Logging,
    Section::Tracing,
    Section::Proxy,
    Section::Experimental,
    Section::Unsafe,
];

const ENV_HEADER: &str = r#"# /etc/etcd/etcd.conf: the environment file etcd.service reads
# (EnvironmentFile=-/etc/etcd/etcd.conf). Each line is one etcd flag written
# as ETCD_<FLAG>="value" (systemd's EnvironmentFile syntax: no shell
# expansion, one variable per line). Lines starting with '#' are comments;
# a commented-out setting shows the value etcd uses when it is unset.
#
# The active lines give a single member on localhost with its data in
# /var/lib/etcd/default.etcd. `systemctl reload etcd` reads this file again:
# the log level changes at once, and the log names every other changed
# setting as needing `systemctl restart etcd`.
#
# Settings marked "not supported by rsetcd yet" are accepted only at the
# value shown; any other value stops etcd from starting with
# "--<flag> is not supported yet". Keep them commented out.
#
# This file is written from rsetcd's settings table (src/config/sample.rs).
#
# The etcd.service unit may only write to /var/lib/etcd
# (ProtectSystem=strict). A data or WAL directory elsewhere needs a drop-in:
#   systemctl edit etcd   ->   [Service] ReadWritePaths=/srv/etcd
"#;

const YAML_HEADER: &str = r#"# /etc/etcd/etcd.conf.yml: etcd's YAML configuration file (the keys of
# etcd's etcd.conf.yml.sample). etcd reads it when started with
# --config-file, or when /etc/etcd/etcd.conf sets
#   ETCD_CONFIG_FILE="/etc/etcd/etcd.conf.yml"
# and then ignores every other flag and ETCD_* variable.
#
# Durations are integer nanoseconds (e.g. 5000000000 is 5s); an empty value
# keeps etcd's default. Keys marked "not supported by rsetcd yet" are
# accepted only at the value shown: keep them commented out.
# `systemctl reload etcd` reads this file again: the log level changes at
# once, and the log names every other changed key as needing a restart.
#
# This file is written from rsetcd's settings table (src/config/sample.rs).
"#;

/// The env-style file, etc/etcd/etcd.conf.
pub(crate) fn env_file() -> String {
    let mut out = String::from(ENV_HEADER);
    out.push_str("\n#[Config file]\n");
    out.push_str(
        "# Path to etcd's YAML configuration file (sample: /etc/etcd/etcd.conf.yml).\n\
         # When set, etcd reads only that file and ignores every other ETCD_*\n\
         # variable below.\n\
         #ETCD_CONFIG_FILE=\"/etc/etcd/etcd.conf.yml\"\n",
    );
    for &section in SECTIONS {
        let _ = writeln!(out, "\n#[{}]", section.title().trim_end_matches(':'));
        for setting in SETTINGS.iter().filter(|s| s.section == section) {
            comment(&mut out, "", setting);
            let (value, active) = match active_value(setting) {
                Some(v) => (v.to_string(), true),
                None => (setting.default.to_string(), false),
            };
            let _ = writeln!(
                out,
                "{}{}={}",
                if active { "" } else { "#" },
                setting.env_name(),
                env_quote(&value)
            );
        }
    }
    out
}

/// The YAML file, etc/etcd/etcd.conf.yml: supported keys set to their
/// defaults (etcd's sample sets every key), the others commented out.
pub(crate) fn yaml_file() -> String {
    let mut out = String::from(YAML_HEADER);
    for &section in SECTIONS {
        let _ = write!(
            out,
            "\n# --- {} ---\n",
            section.title().trim_end_matches(':').to_lowercase()
        );
        for setting in SETTINGS.iter().filter(|s| s.section == section) {
            let YamlKey::Top(key) = setting.yaml else {
                continue;
            };
            out.push('\n');
            comment(&mut out, "", setting);
            yaml_line(&mut out, "", key, setting);
        }
    }
    let mut blocks: Vec<&str> = Vec::new();
    for setting in SETTINGS {
        if let YamlKey::Nested(block, _) = setting.yaml {
            if !blocks.contains(&block) {
                blocks.push(block);
            }
        }
    }
    for block in blocks {
        let _ = write!(out, "\n# --- {block} ---\n\n{block}:\n");
        for setting in SETTINGS {
            if let YamlKey::Nested(b, key) = setting.yaml {
                if b == block {
                    comment(&mut out, "  ", setting);
                    yaml_line(&mut out, "  ", key, setting);
                }
            }
        }
    }
    out
}

fn active_value(setting: &Setting) -> Option<&'static str> {
    ACTIVE
        .iter()
        .find(|(name, _)| *name == setting.name)
        .map(|(_, v)| *v)
}

/// The help text wrapped at 78 columns, and the support mark.
fn comment(out: &mut String, indent: &str, setting: &Setting) {
    let width = 78 - indent.len() - 2;
    // etcd's own line breaks (lists of values) are kept
    for paragraph in setting.help.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                let _ = writeln!(out, "{indent}# {line}");
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            let _ = writeln!(out, "{indent}# {line}");
        }
    }
    if setting.support == Support::NotYet {
        let _ = writeln!(out, "{indent}# {NOT_SUPPORTED}");
    }
}

fn yaml_line(out: &mut String, indent: &str, key: &str, setting: &Setting) {
    let active = setting.support == Support::Supported;
    let value = match active_value(setting) {
        Some(v) => yaml_quote(v),
        None => yaml_default(setting),
    };
    let _ = writeln!(
        out,
        "{indent}{}{key}:{}{value}",
        if active { "" } else { "#" },
        if value.is_empty() { "" } else { " " }
    );
}

/// A setting's default as etcd's YAML file writes it ("" when empty).
fn yaml_default(setting: &Setting) -> String {
    match (setting.kind, default_value(setting)) {
        (_, Value::Bool(b)) => b.to_string(),
        (_, Value::Uint(n)) => n.to_string(),
        (_, Value::Int(n)) => n.to_string(),
        (_, Value::Duration(d)) => d.as_nanos().to_string(),
        (Kind::StringSetList | Kind::StringList, Value::List(items)) if !items.is_empty() => {
            let quoted: Vec<String> = items.iter().map(|s| yaml_quote(s)).collect();
            format!("[{}]", quoted.join(", "))
        }
        // URLs, sets and strings: the flag's text, as etcd's YAML takes it
        _ => yaml_quote(setting.default),
    }
}

fn yaml_quote(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// systemd's EnvironmentFile quoting: double quotes unless the value holds
/// one.
fn env_quote(s: &str) -> String {
    if s.contains('"') {
        format!("'{s}'")
    } else {
        format!("\"{s}\"")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The shipped file must be what the table writes.
    fn check(path: &str, want: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        if std::env::var_os("UPDATE_SAMPLES").is_some() {
            std::fs::write(&path, want).expect("write sample");
            return;
        }
        let have = std::fs::read_to_string(&path).expect("read sample");
        if have != want {
            let first = have
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(have.lines().count().min(want.lines().count()));
            panic!(
                "{} differs from the settings table from line {}: have {:?}, the table writes {:?}.\n\
                 Rewrite it with `UPDATE_SAMPLES=1 cargo test --lib config::sample`.",
                path.display(),
                first + 1,
                have.lines().nth(first),
                want.lines().nth(first),
            );
        }
    }

    #[test]
    fn etcd_conf_is_written_from_the_table() {
        check("etc/etcd/etcd.conf", &super::env_file());
    }

    #[test]
    fn etcd_conf_yml_is_written_from_the_table() {
        check("etc/etcd/etcd.conf.yml", &super::yaml_file());
    }

    #[test]
    fn tls_and_auth_settings_are_not_marked_unsupported() {
        // the bug this module exists for: the files said TLS was unsupported
        let cases = [
            (
                super::env_file(),
                [
                    "ETCD_CERT_FILE=",
                    "ETCD_CLIENT_CERT_AUTH=",
                    "ETCD_AUTH_TOKEN=",
                ],
            ),
            (
                super::yaml_file(),
                ["cert-file:", "client-cert-auth:", "auth-token:"],
            ),
        ];
        for (text, names) in cases {
            let lines: Vec<&str> = text.lines().collect();
            for name in names {
                let at = lines
                    .iter()
                    .position(|l| l.trim_start().trim_start_matches('#').starts_with(name))
                    .expect(name);
                assert!(
                    !lines[at].trim_start().starts_with('#') || name.starts_with("ETCD_"),
                    "{name}"
                );
                assert!(
                    !lines[at - 1].contains("not supported"),
                    "{name}: {}",
                    lines[at - 1]
                );
            }
        }
    }
}
