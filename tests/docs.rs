//! The man pages and shell completions the packages install, as a user gets
//! them: `examples/gen-docs.rs` writes them, `man -l` renders every page and
//! bash loads each completion script.

use std::path::Path;
use std::process::Command;

/// Runs the generator the packaging script runs, into `out`.
fn generate(out: &Path) {
    let status = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--quiet", "--example", "gen-docs", "--"])
        .arg(out)
        .status()
        .expect("run cargo");
    assert!(status.success(), "gen-docs failed: {status}");
}

fn have_man() -> bool {
    Command::new("man")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn man_pages_render_and_bash_completions_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(dir.path());

    let man_dir = dir.path().join("man");
    let mut pages: Vec<String> = std::fs::read_dir(&man_dir)
        .expect("man dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    pages.sort();
    for expected in [
        "etcd.1",
        "etcdctl.1",
        "etcdctl-get.1",
        "etcdctl-member-add.1",
        "etcdctl-snapshot-save.1",
        "etcdutl.1",
        "etcdutl-snapshot-restore.1",
    ] {
        assert!(
            pages.iter().any(|p| p == expected),
            "{expected} missing from {pages:?}"
        );
    }

    if have_man() {
        for page in &pages {
            let out = Command::new("man")
                .arg("-l")
                .arg(man_dir.join(page))
                .env("MANWIDTH", "100")
                .env_remove("MAN_KEEP_FORMATTING")
                .output()
                .expect("run man");
            let text = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "man -l {page}: {stderr}");
            // groff reports malformed input on stderr ("warning: ...").
            assert!(stderr.trim().is_empty(), "man -l {page} warned: {stderr}");
            let name = page.trim_end_matches(".1");
            assert!(
                text.contains("NAME") && text.contains("SYNOPSIS"),
                "{page}:\n{text}"
            );
            assert!(text.contains(name), "{page} does not name itself:\n{text}");
        }
        let etcd = render(&man_dir.join("etcd.1"));
        assert!(etcd.contains("--listen-client-urls"), "{etcd}");
        assert!(etcd.contains("ETCD_LISTEN_CLIENT_URLS"), "{etcd}");
        let put = render(&man_dir.join("etcdctl-put.1"));
        assert!(put.contains("--prev-kv"), "{put}");
        assert!(put.contains("ETCDCTL_ENDPOINTS"), "{put}");
    } else {
        // `apt-get install man-db` provides it; CI installs it.
        println!("skipping man -l: man is not installed");
    }

    let completions = dir.path().join("completions");
    for bin in ["etcd", "etcdctl", "etcdutl"] {
        for ext in ["bash", "zsh", "fish"] {
            let path = completions.join(format!("{bin}.{ext}"));
            let len = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .len();
            assert!(len > 0, "{} is empty", path.display());
        }
        let script = completions.join(format!("{bin}.bash"));
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("source {} && complete -p {bin}", script.display()))
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "{bin}.bash: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let registered = String::from_utf8_lossy(&out.stdout);
        assert!(registered.contains(&format!(" {bin}")), "{registered}");
    }
    // The completion offers etcdctl's commands and a subcommand's flags.
    let offered = bash_complete(
        &completions.join("etcdctl.bash"),
        "etcdctl",
        &["etcdctl", "mem"],
    );
    assert!(offered.contains("member"), "{offered}");
    let offered = bash_complete(
        &completions.join("etcdctl.bash"),
        "etcdctl",
        &["etcdctl", "get", "--pre"],
    );
    assert!(offered.contains("--prefix"), "{offered}");
}

fn render(page: &Path) -> String {
    let out = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "200")
        .output()
        .expect("run man");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What bash's completion function offers for `words` (the last one being
/// completed).
fn bash_complete(script: &Path, bin: &str, words: &[&str]) -> String {
    let function = format!("_{bin}");
    let line = words.join(" ");
    let words_array = words
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let program = format!(
        "source {script}; COMP_WORDS=({words_array}); COMP_CWORD={cword}; \
         COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; \
         {function} {bin} '{last}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script = script.display(),
        cword = words.len() - 1,
        last = words[words.len() - 1],
        prev = words[words.len() - 2],
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(program)
        .output()
        .expect("run bash");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `etcdctl completion <shell>` prints the shell's script (as Debian's
/// etcdctl 3.4 does): bash loads it and completes a command from its
/// prefix; the others carry their shell's markers.
#[test]
fn etcdctl_completion_prints_scripts_that_load() {
    let etcdctl = env!("CARGO_BIN_EXE_etcdctl");
    let script = |shell: &str| {
        let out = Command::new(etcdctl)
            .args(["completion", shell])
            .output()
            .expect("run etcdctl");
        assert!(out.status.success(), "{shell}: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8 script")
    };
    for (shell, marker) in [
        ("zsh", "#compdef etcdctl"),
        ("fish", "complete -c etcdctl"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        assert!(
            script(shell).contains(marker),
            "{shell} script lacks {marker:?}"
        );
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("etcdctl.bash");
    std::fs::write(&file, script("bash")).expect("write script");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && COMP_WORDS=(etcdctl memb) && COMP_CWORD=1 && _etcdctl etcdctl memb etcdctl && echo \"${{COMPREPLY[@]}}\"",
            file.display()
        ))
        .output()
        .expect("run bash");
    let replies = String::from_utf8_lossy(&out.stdout);
    assert!(
        replies.split_whitespace().any(|w| w == "member"),
        "bash completed `etcdctl memb` to {replies:?}; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // a group without a shell prints its help, as cobra does
    let out = Command::new(etcdctl)
        .arg("completion")
        .output()
        .expect("run etcdctl");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bash"),
        "{out:?}"
    );
}
