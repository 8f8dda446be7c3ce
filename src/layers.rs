//! The dependency rule (docs/ARCHITECTURE.md, "Layers"), checked on the
//! sources: a module imports only modules of lower layers, or of its own
//! layer where `SIDEWAYS` allows it. The test reads every file under src/
//! (the binaries excepted) and fails on an import that breaks the rule, so
//! a new upward arrow or cycle is caught when it is written.

use std::collections::BTreeSet;
use std::path::Path;

/// Top-level modules, bottom layer first.
const LAYERS: &[&[&str]] = &[
    // wire types and leaf helpers
    &[
        "proto",
        "gofmt",
        "logging",
        "metrics",
        "notify",
        "client",
        "config",
        "failpoint",
    ],
    &["tls"],
    // the data dir: WAL, LMDB backend, snapshot files, the schema
    &["storage"],
    &["mvcc"],
    // state kept by applied entries
    &["alarm", "lease", "auth", "cluster", "watch"],
    // what a proposal answers: waiter, responses, errors
    &["propose"],
    &["peer"],
    &["raft"],
    // one member's state, shared by the applier and the server
    &["member"],
    &["apply"],
    &["server"],
    &["api", "etcdutl"],
    &["etcdmain"],
];

/// Imports allowed inside one layer (acyclic: a parser of settings uses
/// Go's formats).
const SIDEWAYS: &[(&str, &str)] = &[("config", "gofmt")];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The source with comments and string literals blanked, and the test
/// modules (`#[cfg(test)] mod x { ... }`) cut out: tests may reach anywhere.
fn code(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let b = source.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // `r"`, `r#"`, `r##"` (also after a `b`): a raw string
        let raw = b[i] == b'r'
            && b[i + 1..].iter().find(|&&c| c != b'#') == Some(&b'"')
            && match i {
                0 => true,
                _ if b[i - 1] == b'b' => i < 2 || !is_ident(b[i - 2]),
                _ => !is_ident(b[i - 1]),
            };
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            // block comments nest
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' || raw {
            // a string (raw strings end at their quote and hashes)
            let hashes = if raw {
                b[i + 1..].iter().take_while(|&&c| c == b'#').count()
            } else {
                0
            };
            i += if raw { 2 + hashes } else { 1 };
            while i < b.len() {
                if !raw && b[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if b[i] == b'"' && b[i + 1..].iter().take(hashes).all(|&c| c == b'#') {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3; // a char literal such as '"'
        } else if b[i..].starts_with(b"'\\") && b.get(i + 3) == Some(&b'\'') {
            i += 4; // an escaped one such as '\"'
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    without_test_modules(&out)
}

/// `code` without its inline `#[cfg(test)] mod x { ... }` blocks (braces
/// balance: strings and comments are blanked).
fn without_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let item = after.trim_start();
        let item = item.strip_prefix("pub ").unwrap_or(item);
        let inline_mod = item.strip_prefix("mod ").and_then(|m| {
            let name_end = m.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
            m[name_end..].trim_start().starts_with('{').then_some(())
        });
        if inline_mod.is_none() {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        let open = after.find('{').expect("a module body");
        let mut depth = 0;
        let mut end = after.len();
        for (k, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Test-only file modules `code` declares (`#[cfg(test)] mod x;`), by name.
fn test_file_modules(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        rest = &rest[at + "#[cfg(test)]".len()..];
        let item = rest.trim_start();
        let item = item.strip_prefix("pub ").unwrap_or(item);
        if let Some(m) = item.strip_prefix("mod ") {
            let name: String = m
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if m[name.len()..].trim_start().starts_with(';') {
                names.push(name);
            }
        }
    }
    names
}

/// The top-level modules `code` names through `crate::` (including the
/// members of `use crate::{a::x, b}` groups) or through `super::` paths
/// that climb to the crate root from a file `depth` modules deep.
fn imports(code: &str, depth: usize) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        let before = rest[..at].bytes().last();
        rest = &rest[at..];
        let mut climbs = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            climbs += 1;
            rest = r;
        }
        if before.is_some_and(|c| is_ident(c) || c == b':') || climbs < depth {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        found.insert(name);
    }
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // `rsetcd::crate::`-like or part of another name
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut first = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && c == ',' {
                    first = true;
                    continue;
                }
                if first {
                    if c.is_alphanumeric() || c == '_' {
                        item.push(c);
                    } else if !item.is_empty() {
                        found.insert(std::mem::take(&mut item));
                        first = false;
                    }
                }
            }
            if !item.is_empty() {
                found.insert(item);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every import edge that breaks the rule, as "file: from -> to".
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    sources(src, &mut files);
    // files that only tests compile
    let mut test_only = BTreeSet::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read source");
        let dir = match file.file_name().and_then(|n| n.to_str()) {
            Some("mod.rs" | "lib.rs") => file.parent().expect("a dir").to_path_buf(),
            _ => file.with_extension(""),
        };
        for name in test_file_modules(&code(&source)) {
            test_only.insert(dir.join(format!("{name}.rs")));
            test_only.insert(dir.join(&name).join("mod.rs"));
        }
    }
    let mut bad = Vec::new();
    for file in files {
        if test_only.contains(&file) {
            continue;
        }
        let rel = file.strip_prefix(src).expect("under src");
        let first = rel.components().next().expect("a component");
        let top = first.as_os_str().to_string_lossy();
        let top = top.trim_end_matches(".rs");
        if top == "bin" || top == "lib" || top == "layers" {
            continue;
        }
        let Some(from) = layer(top) else {
            bad.push(format!("{}: module {top} is in no layer", rel.display()));
            continue;
        };
        let source = std::fs::read_to_string(&file).expect("read source");
        // modules deep below the crate root: src/a.rs and src/a/mod.rs 1,
        // src/a/b.rs 2
        let mut depth = rel.components().count();
        if rel.ends_with("mod.rs") {
            depth -= 1;
        }
        for to in imports(&code(&source), depth) {
            if to == top || to == "fatal" || to == "ETCD_VERSION" || to == "CLUSTER_VERSION" {
                continue;
            }
            let Some(level) = layer(&to) else {
                bad.push(format!(
                    "{}: {top} -> {to}: {to} is in no layer",
                    rel.display()
                ));
                continue;
            };
            let sideways = level == from && SIDEWAYS.contains(&(top, to.as_str()));
            if level > from || (level == from && !sideways) {
                bad.push(format!("{}: {top} -> {to}", rel.display()));
            }
        }
    }
    bad
}

#[test]
fn no_module_imports_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(
        bad.is_empty(),
        "imports against the layers:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_imports() {
    let code = code(concat!(
        "use crate::mvcc::Store;\n",
        "use crate::{server::{Error, Limits}, api};\n",
        "// crate::etcdmain\n/* /* crate::lease */ crate::alarm */\n",
        "let s = \"crate::raft\"; let r = r##\"crate::apply\"## ; let q = '\"';\n",
        "crate::peer::x();\n",
        "#[cfg(test)]\nmod tests { use crate::apply; }\n",
        "#[cfg(test)]\nmod more;\n",
        "use super::super::watch::Hub;\n",
        "fn after_the_tests() { crate::tls::x(); }\n",
    ));
    let found: Vec<String> = imports(&code, 2).into_iter().collect();
    assert_eq!(found, ["api", "mvcc", "peer", "server", "tls", "watch"]);
    assert_eq!(test_file_modules(&code), ["more"]);
    // one `super::` from two modules deep stays inside the top module
    assert!(imports("use super::x;", 2).is_empty());
}
