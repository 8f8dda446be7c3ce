//! etcd's file modes, checked over a whole tree: every directory 0700 and
//! every file 0600, so no other local user reads keys or values.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// Every directory and file under `root` (itself included) that is wider
/// than etcd's modes, as "path mode" lines.
pub fn too_wide(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        let mode = meta.permissions().mode() & 0o777;
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        if mode != want {
            found.push(format!("{} {mode:o}", path.display()));
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                stack.push(entry.expect("dir entry").path());
            }
        }
    }
    found
}

/// How many regular files are under `root`: a walk that checked nothing
/// must not pass.
pub fn file_count(root: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                stack.push(entry.expect("dir entry").path());
            }
        } else {
            count += 1;
        }
    }
    count
}
