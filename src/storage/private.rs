//! File modes of everything a member writes, as etcd's `fileutil`:
//! directories 0700 and files 0600, so that no other local user reads
//! keys and values from the WAL, the backend or a snapshot (the WAL dir
//! may live outside the data dir, so each directory is made private, not
//! only the data dir).
//!
//! The daemon also sets its umask to 077 at start (`restrict_umask`), so
//! files that libraries create for us (LMDB's copies) are private too.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// etcd's `fileutil.PrivateDirMode`.
pub const DIR_MODE: u32 = 0o700;
/// etcd's `fileutil.PrivateFileMode`.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents as 0700. An existing directory
/// with a wider mode is narrowed to 0700 with etcd's warning: etcd only
/// warns ("check file permission"); leaving the data readable is worse.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & !DIR_MODE != 0 {
                tracing::warn!(
                    error = %format!(
                        "directory {:?} exist, but the permission is {:?}. The recommended permission is \"-rwx------\" to prevent possible unprivileged access to the data",
                        dir.display().to_string(),
                        mode_string(mode, true)
                    ),
                    "check file permission"
                );
                fs::set_permissions(dir, fs::Permissions::from_mode(mode & DIR_MODE))?;
            }
            Ok(())
        }
        _ => fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir),
    }
}

/// Options that create a file as 0600 (an existing file keeps its mode).
pub fn file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// Makes a file written by someone else's code (LMDB's copy) 0600.
pub fn restrict_file(path: &Path) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE))
}

/// Every file and directory this process creates from now on is private
/// to its user, whoever creates it.
pub fn restrict_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}

/// Go's `os.FileMode.String()` for a permission (`drwxr-xr-x`).
fn mode_string(mode: u32, dir: bool) -> String {
    let mut s = String::from(if dir { "d" } else { "-" });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_directories_are_private_and_wide_ones_are_narrowed() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a/b/c");
        create_dir_all(&deep).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            let mode = fs::metadata(tmp.path().join(d))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, DIR_MODE, "{d}");
        }
        let wide = tmp.path().join("wide");
        fs::create_dir(&wide).unwrap();
        fs::set_permissions(&wide, fs::Permissions::from_mode(0o755)).unwrap();
        create_dir_all(&wide).unwrap();
        assert_eq!(
            fs::metadata(&wide).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(mode_string(0o755, true), "drwxr-xr-x");
    }

    #[test]
    fn new_files_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        file_options().create(true).write(true).open(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            FILE_MODE
        );
    }
}
