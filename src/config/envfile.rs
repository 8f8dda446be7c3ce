//! systemd's `EnvironmentFile=` syntax, for reloading /etc/etcd/etcd.conf
//! on SIGHUP: systemd reads that file only when it starts the daemon, so a
//! reload that re-read only the process environment would never see an
//! edit. The unit names the file in `RSETCD_ENVIRONMENT_FILE`.
//!
//! The syntax, as systemd's `load_env_file`: one `NAME=value` a line;
//! blank lines and lines starting with `#` or `;` are comments; whitespace
//! around the name and before the value is dropped, and after an unquoted
//! value too; a value in double quotes takes `\"`, `\\`, `\$` and `` \` ``
//! escapes, one in single quotes is taken as written; a backslash at the
//! end of a line continues the value on the next one. Lines that are not
//! assignments are skipped, as systemd skips them (with a warning).

/// The variable the unit sets to the path of its `EnvironmentFile=`.
pub const ENV_FILE_VAR: &str = "RSETCD_ENVIRONMENT_FILE";

/// The assignments of an environment file, in order (a later one of the
/// same name wins when they are applied), and the lines that were skipped.
pub fn parse(text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut vars = Vec::new();
    let mut skipped = Vec::new();
    let mut lines = text.lines();
    while let Some(first) = lines.next() {
        let mut line = first.to_string();
        // an unquoted trailing backslash continues the line
        while ends_with_odd_backslashes(&line) && !in_quotes(&line) {
            line.pop();
            match lines.next() {
                Some(next) => line.push_str(next),
                None => break,
            }
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let Some((name, raw)) = trimmed.split_once('=') else {
            skipped.push(line.clone());
            continue;
        };
        let name = name.trim();
        if !is_name(name) {
            skipped.push(line.clone());
            continue;
        }
        match value(raw.trim_start()) {
            Some(v) => vars.push((name.to_string(), v)),
            None => skipped.push(line.clone()),
        }
    }
    (vars, skipped)
}

/// A line continues when it ends in a backslash that is not itself
/// escaped (two at the end are one literal backslash).
fn ends_with_odd_backslashes(line: &str) -> bool {
    line.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Whether a quote opened in `line` is still open at its end.
fn in_quotes(line: &str) -> bool {
    let mut quote = None;
    let mut escaped = false;
    for c in line.chars() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None => {}
        }
    }
    quote.is_some()
}

/// The value after `=`; None when a quote is never closed.
fn value(raw: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    // unquoted runs keep inner whitespace; trailing whitespace is dropped
    let mut pending_space = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push_str(&pending_space);
                pending_space.clear();
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            e @ ('"' | '\\' | '$' | '`') => out.push(e),
                            other => {
                                out.push('\\');
                                out.push(other);
                            }
                        },
                        other => out.push(other),
                    }
                }
            }
            '\'' => {
                out.push_str(&pending_space);
                pending_space.clear();
                loop {
                    match chars.next()? {
                        '\'' => break,
                        other => out.push(other),
                    }
                }
            }
            c if c.is_whitespace() => pending_space.push(c),
            '\\' => {
                out.push_str(&pending_space);
                pending_space.clear();
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            c => {
                out.push_str(&pending_space);
                pending_space.clear();
                out.push(c);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn reads_the_shipped_etcd_conf() {
        let text = include_str!("../../etc/etcd/etcd.conf");
        let (vars, skipped) = parse(text);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert!(vars.contains(&pair("ETCD_NAME", "default")), "{vars:?}");
        assert!(vars.contains(&pair("ETCD_DATA_DIR", "/var/lib/etcd/default.etcd")));
        assert!(vars.iter().all(|(k, _)| k.starts_with("ETCD_")));
    }

    #[test]
    fn quoting_comments_and_continuations_as_systemd() {
        let text = "# comment\n; also\n\n  A = plain value  \nB=\"dq \\\"x\\\" \\\\ \\$HOME\"\n\
                    C='single \"as is\" \\n'\nD=one\\\ntwo\nnot an assignment\n1BAD=x\nE=\nF=\"open\n";
        let (vars, skipped) = parse(text);
        assert_eq!(
            vars,
            vec![
                pair("A", "plain value"),
                pair("B", "dq \"x\" \\ $HOME"),
                pair("C", "single \"as is\" \\n"),
                pair("D", "onetwo"),
                pair("E", ""),
            ]
        );
        assert_eq!(skipped, vec!["not an assignment", "1BAD=x", "F=\"open"]);
    }

    #[test]
    fn an_escaped_backslash_at_the_end_is_no_continuation() {
        let (vars, _) = parse("A=x\\\\\nB=y\n");
        assert_eq!(vars, vec![pair("A", "x\\"), pair("B", "y")]);
    }

    #[test]
    fn hostile_text_never_panics() {
        for text in [
            "=",
            "\\",
            "\"",
            "'",
            "A=\\",
            "A=\"\\",
            "A='",
            "\u{0}=\u{0}",
            "A=\"\\\n",
        ] {
            let _ = parse(text);
        }
    }
}
