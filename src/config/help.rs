//! `etcd --help` and the usage text etcd prints after a flag error, in
//! etcd 3.5's layout, generated from the settings table.

use super::table::{Section, SETTINGS};

/// etcd's `usageline`.
pub(crate) const USAGE: &str = "Usage:

  etcd [flags]
    Start an etcd server.

  etcd --version
    Show the version of etcd.

  etcd -h | --help
    Show the help information about etcd.

  etcd --config-file
    Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.

  etcd gateway
    Run the stateless pass-through etcd TCP connection forwarding proxy.

  etcd grpc-proxy
    Run the stateless etcd v3 gRPC L7 reverse proxy.
";

/// The full `--help` output: usage, then every flag by section.
pub(crate) fn help_text() -> String {
    format!("{USAGE}\n{}\n", flags_text())
}

/// etcd's `flagsline`.
fn flags_text() -> String {
    let mut out = String::new();
    let mut current: Option<Section> = None;
    for setting in SETTINGS.iter().filter(|s| s.section != Section::Hidden) {
        if current != Some(setting.section) {
            out.push('\n');
            out.push_str(setting.section.title());
            out.push('\n');
            current = Some(setting.section);
        }
        out.push_str("  --");
        out.push_str(setting.name);
        if !setting.shown_default.is_empty() {
            out.push(' ');
            out.push_str(setting.shown_default);
        }
        out.push_str("\n    ");
        out.push_str(setting.help);
        out.push('\n');
    }
    out.push_str(
        "\nCAUTIOUS with unsafe flag! It may break the guarantees given by the consensus protocol!\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_sections_and_flags_like_etcd() {
        let help = help_text();
        assert!(help.starts_with("Usage:\n\n  etcd [flags]\n"));
        assert!(help.contains(
            "\nMember:\n  --name 'default'\n    Human-readable name for this member.\n  --data-dir '${name}.etcd'\n"
        ));
        assert!(help.contains("  --bcrypt-cost 10\n"));
        assert!(help.contains("  --enable-grpc-gateway\n    Enable GRPC gateway.\n"));
        assert!(help.contains("\n\nClustering:\n"));
        assert!(!help.contains("--cluster-active-size"));
        assert!(help.ends_with("consensus protocol!\n\n"));
    }
}
