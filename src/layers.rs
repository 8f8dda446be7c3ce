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
        "proto", "gofmt", "logging", "metrics", "notify", "client", "config",
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

/// The source with comments and string literals blanked, and the test
/// modules cut off (tests may reach anywhere).
fn code(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let b = source.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' || b[i..].starts_with(b"r#\"") || b[i..].starts_with(b"r\"") {
            // a string (raw strings end at their quote and hashes)
            let hashes = b[i..].iter().skip(1).take_while(|&&c| c == b'#').count();
            let raw = b[i] == b'r';
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
    match out.find("#[cfg(test)]\nmod tests") {
        Some(at) => out[..at].to_string(),
        None => out,
    }
}

/// The top-level modules `code` names through `crate::`, including the
/// members of `use crate::{a::x, b}` groups.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
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
    let mut bad = Vec::new();
    for file in files {
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
        for to in imports(&code(&source)) {
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
    let code = code(
        "use crate::mvcc::Store;\nuse crate::{server::Error, api};\n// crate::etcdmain\nlet s = \"crate::raft\"; crate::peer::x();\n#[cfg(test)]\nmod tests { use crate::apply; }",
    );
    let found: Vec<String> = imports(&code).into_iter().collect();
    assert_eq!(found, ["api", "mvcc", "peer", "server"]);
}
