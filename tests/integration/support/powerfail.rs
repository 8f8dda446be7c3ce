//! A filesystem that forgets what was never synced, to test what a power
//! loss does to a member (issue 15; LazyFS's idea: no device-mapper or
//! LazyFS can be installed here, FUSE can). It is mounted (FUSE, served by
//! a thread of the test process) over a backing directory: every write
//! stays in memory until an fsync or fdatasync of its file (or a write
//! through a file opened O_SYNC/O_DSYNC) writes it to the backing file and
//! syncs that. `power_cut` drops every unsynced write: what is left is
//! what a disk that honours its flushes would hold after the power went.
//!
//! Simplifications (each errs on the side of keeping data): creating,
//! renaming and removing files and directories, chmod and fallocate's new
//! size of a file take effect at once, as if every directory were synced;
//! an unsynced write is lost whole, page by page, never torn inside a page.
//! No page cache stays behind a cut: the mount is unmounted and mounted
//! again, so the next reader sees only the backing files.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use fuser::{
    FileAttr, FileType, Filesystem, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};

const PAGE: u64 = 4096;
/// No attribute or entry caching in the kernel: sizes change under it.
const TTL: Duration = Duration::ZERO;

struct Node {
    /// Relative to the backing root (stale once the file is unlinked or
    /// renamed over: then only `file` reaches it).
    path: PathBuf,
    /// The backing file, opened at the first read or write.
    file: Option<File>,
    /// The file's size as the member sees it.
    size: u64,
    /// Since the last sync: the lowest size it was cut to (the backing
    /// file's bytes from there on read as zeros) ...
    cut_to: Option<u64>,
    /// ... and the pages written (each PAGE bytes).
    pages: HashMap<u64, Box<[u8]>>,
    /// Unlinked or renamed over: reached only through open handles, and
    /// its losses do not count.
    orphan: bool,
}

#[derive(Default)]
struct State {
    root: PathBuf,
    nodes: HashMap<u64, Node>,
    by_path: HashMap<PathBuf, u64>,
    next_ino: u64,
    /// Open handles: the inode and whether writes through it sync.
    handles: HashMap<u64, (u64, bool)>,
    next_fh: u64,
}

type Errno = i32;

fn errno(e: std::io::Error) -> Errno {
    e.raw_os_error().unwrap_or(nix::libc::EIO)
}

impl State {
    fn backing(&self, path: &Path) -> PathBuf {
        self.root.join(path)
    }

    fn ino_of(&mut self, path: PathBuf) -> Result<u64, Errno> {
        if let Some(&ino) = self.by_path.get(&path) {
            return Ok(ino);
        }
        let meta = std::fs::symlink_metadata(self.backing(&path)).map_err(errno)?;
        self.next_ino += 1;
        let ino = self.next_ino;
        self.nodes.insert(
            ino,
            Node {
                path: path.clone(),
                file: None,
                size: meta.len(),
                cut_to: None,
                pages: HashMap::new(),
                orphan: false,
            },
        );
        self.by_path.insert(path, ino);
        Ok(ino)
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<PathBuf, Errno> {
        let p = self.nodes.get(&parent).ok_or(nix::libc::ENOENT)?;
        Ok(p.path.join(name))
    }

    fn node(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(nix::libc::ENOENT)
    }

    /// The node with its backing file open.
    fn open_node(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        let root = self.root.clone();
        let node = self.node(ino)?;
        if node.file.is_none() {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(root.join(&node.path))
                .map_err(errno)?;
            node.file = Some(file);
        }
        Ok(node)
    }

    fn attr(&mut self, ino: u64) -> Result<FileAttr, Errno> {
        let root = self.root.clone();
        let node = self.node(ino)?;
        let meta = match &node.file {
            Some(f) => f.metadata(),
            None => std::fs::symlink_metadata(root.join(&node.path)),
        }
        .map_err(errno)?;
        let kind = if meta.is_dir() {
            FileType::Directory
        } else if meta.file_type().is_symlink() {
            FileType::Symlink
        } else {
            FileType::RegularFile
        };
        let size = match kind {
            FileType::RegularFile => node.size,
            _ => meta.len(),
        };
        let time = |s: i64| UNIX_EPOCH + Duration::from_secs(s.max(0) as u64);
        Ok(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: time(meta.atime()),
            mtime: time(meta.mtime()),
            ctime: time(meta.ctime()),
            crtime: time(meta.ctime()),
            kind,
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        })
    }
}

impl Node {
    /// Page `n` as the member sees it.
    fn page(&self, n: u64) -> Result<Box<[u8]>, Errno> {
        if let Some(p) = self.pages.get(&n) {
            return Ok(p.clone());
        }
        let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
        let file = self.file.as_ref().ok_or(nix::libc::EBADF)?;
        let durable = file.metadata().map_err(errno)?.len();
        // bytes past a cut read as zeros until the next sync
        let limit = durable.min(self.cut_to.unwrap_or(u64::MAX));
        let start = n * PAGE;
        if start < limit {
            let len = (limit - start).min(PAGE) as usize;
            file.read_exact_at(&mut page[..len], start).map_err(errno)?;
        }
        Ok(page)
    }

    fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, Errno> {
        let end = (offset + len).min(self.size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let page = self.page(at / PAGE)?;
            let from = (at % PAGE) as usize;
            let to = ((end - at / PAGE * PAGE).min(PAGE)) as usize;
            out.extend_from_slice(&page[from..to]);
            at = at / PAGE * PAGE + to as u64;
        }
        Ok(out)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Errno> {
        let mut done = 0usize;
        while done < data.len() {
            let at = offset + done as u64;
            let n = at / PAGE;
            let mut page = self.page(n)?;
            let from = (at % PAGE) as usize;
            let len = (PAGE as usize - from).min(data.len() - done);
            page[from..from + len].copy_from_slice(&data[done..done + len]);
            self.pages.insert(n, page);
            done += len;
        }
        self.size = self.size.max(offset + data.len() as u64);
        Ok(())
    }

    fn truncate(&mut self, size: u64) -> Result<(), Errno> {
        if size < self.size {
            if size % PAGE != 0 {
                // the last page keeps its head, its tail reads as zeros
                let n = size / PAGE;
                let mut page = self.page(n)?;
                page[(size % PAGE) as usize..].fill(0);
                self.pages.insert(n, page);
            }
            self.pages.retain(|&n, _| n * PAGE < size);
            self.cut_to = Some(self.cut_to.map_or(size, |c| c.min(size)));
        }
        self.size = size;
        Ok(())
    }

    /// Writes what is unsynced to the backing file and syncs it.
    fn sync(&mut self) -> Result<(), Errno> {
        let file = self.file.as_ref().ok_or(nix::libc::EBADF)?;
        if let Some(cut) = self.cut_to.take() {
            file.set_len(cut).map_err(errno)?;
        }
        if file.metadata().map_err(errno)?.len() != self.size {
            file.set_len(self.size).map_err(errno)?;
        }
        for (&n, page) in &self.pages {
            let start = n * PAGE;
            let len = (self.size.saturating_sub(start)).min(PAGE) as usize;
            file.write_all_at(&page[..len], start).map_err(errno)?;
        }
        file.sync_data().map_err(errno)?;
        self.pages.clear();
        Ok(())
    }
}

struct Fs(Arc<Mutex<State>>);

macro_rules! tri {
    ($reply:ident, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $reply.error(e),
        }
    };
}

impl Filesystem for Fs {
    fn lookup(&mut self, _r: &Request, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let mut s = self.0.lock().unwrap();
        let path = tri!(reply, s.child(parent, name));
        let ino = tri!(reply, s.ino_of(path));
        let attr = tri!(reply, s.attr(ino));
        reply.entry(&TTL, &attr, 0);
    }

    fn getattr(&mut self, _r: &Request, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        let mut s = self.0.lock().unwrap();
        let attr = tri!(reply, s.attr(ino));
        reply.attr(&TTL, &attr);
    }

    fn setattr(
        &mut self,
        _r: &Request,
        ino: u64,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let mut s = self.0.lock().unwrap();
        if let Some(mode) = mode {
            let rel = tri!(reply, s.node(ino)).path.clone();
            let path = s.backing(&rel);
            let perm = std::fs::Permissions::from_mode(mode & 0o7777);
            tri!(reply, std::fs::set_permissions(path, perm).map_err(errno));
        }
        if let Some(size) = size {
            tri!(reply, tri!(reply, s.open_node(ino)).truncate(size));
        }
        let attr = tri!(reply, s.attr(ino));
        reply.attr(&TTL, &attr);
    }

    fn mkdir(
        &mut self,
        _r: &Request,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut s = self.0.lock().unwrap();
        let path = tri!(reply, s.child(parent, name));
        let full = s.backing(&path);
        tri!(reply, std::fs::create_dir(&full).map_err(errno));
        let perm = std::fs::Permissions::from_mode(mode & !umask & 0o7777);
        tri!(reply, std::fs::set_permissions(&full, perm).map_err(errno));
        let ino = tri!(reply, s.ino_of(path));
        let attr = tri!(reply, s.attr(ino));
        reply.entry(&TTL, &attr, 0);
    }

    fn unlink(&mut self, _r: &Request, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.0.lock().unwrap();
        let path = tri!(reply, s.child(parent, name));
        // open handles keep reaching it
        let ino = tri!(reply, s.ino_of(path.clone()));
        tri!(reply, s.open_node(ino).map(|_| ()));
        tri!(reply, std::fs::remove_file(s.backing(&path)).map_err(errno));
        s.by_path.remove(&path);
        tri!(reply, s.node(ino)).orphan = true;
        reply.ok();
    }

    fn rmdir(&mut self, _r: &Request, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.0.lock().unwrap();
        let path = tri!(reply, s.child(parent, name));
        tri!(reply, std::fs::remove_dir(s.backing(&path)).map_err(errno));
        s.by_path.remove(&path);
        reply.ok();
    }

    fn rename(
        &mut self,
        _r: &Request,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        if flags != 0 {
            return reply.error(nix::libc::EINVAL);
        }
        let mut s = self.0.lock().unwrap();
        let from = tri!(reply, s.child(parent, name));
        let to = tri!(reply, s.child(newparent, newname));
        tri!(reply, s.ino_of(from.clone()));
        // a file renamed over stays reachable through its open handles
        if let Ok(over) = s.ino_of(to.clone()) {
            if std::fs::metadata(s.backing(&to)).is_ok_and(|m| m.is_file()) {
                let _ = s.open_node(over);
            }
            if let Some(n) = s.nodes.get_mut(&over) {
                n.orphan = true;
            }
            s.by_path.remove(&to);
        }
        tri!(
            reply,
            std::fs::rename(s.backing(&from), s.backing(&to)).map_err(errno)
        );
        // the moved node and, for a directory, everything under it
        let renamed: Vec<(PathBuf, u64)> = s
            .by_path
            .iter()
            .filter(|(p, _)| p.starts_with(&from))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        for (p, i) in renamed {
            s.by_path.remove(&p);
            let new = match p == from {
                true => to.clone(),
                false => to.join(p.strip_prefix(&from).expect("under from")),
            };
            if let Some(n) = s.nodes.get_mut(&i) {
                n.path = new.clone();
            }
            s.by_path.insert(new, i);
        }
        reply.ok();
    }

    fn open(&mut self, _r: &Request, ino: u64, flags: i32, reply: ReplyOpen) {
        let mut s = self.0.lock().unwrap();
        let is_file = tri!(reply, s.attr(ino)).kind == FileType::RegularFile;
        if is_file {
            tri!(reply, s.open_node(ino).map(|_| ()));
        }
        s.next_fh += 1;
        let fh = s.next_fh;
        let sync = flags & (nix::libc::O_SYNC | nix::libc::O_DSYNC) != 0;
        s.handles.insert(fh, (ino, sync));
        reply.opened(fh, 0);
    }

    fn create(
        &mut self,
        _r: &Request,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.0.lock().unwrap();
        let path = tri!(reply, s.child(parent, name));
        let file = tri!(
            reply,
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(mode & !umask & 0o7777)
                .open(s.backing(&path))
                .map_err(errno)
        );
        // a file that was there is reached again by its path
        s.by_path.remove(&path);
        let ino = tri!(reply, s.ino_of(path));
        tri!(reply, s.node(ino)).file = Some(file);
        s.next_fh += 1;
        let fh = s.next_fh;
        let sync = flags & (nix::libc::O_SYNC | nix::libc::O_DSYNC) != 0;
        s.handles.insert(fh, (ino, sync));
        let attr = tri!(reply, s.attr(ino));
        reply.created(&TTL, &attr, 0, fh, 0);
    }

    fn read(
        &mut self,
        _r: &Request,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyData,
    ) {
        let mut s = self.0.lock().unwrap();
        let node = tri!(reply, s.open_node(ino));
        let data = tri!(reply, node.read(offset.max(0) as u64, u64::from(size)));
        reply.data(&data);
    }

    fn write(
        &mut self,
        _r: &Request,
        ino: u64,
        fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyWrite,
    ) {
        let mut s = self.0.lock().unwrap();
        let sync = s.handles.get(&fh).is_some_and(|h| h.1);
        let node = tri!(reply, s.open_node(ino));
        tri!(reply, node.write(offset.max(0) as u64, data));
        if sync {
            tri!(reply, node.sync());
        }
        reply.written(data.len() as u32);
    }

    fn flush(&mut self, _r: &Request, _ino: u64, _fh: u64, _lock: u64, reply: ReplyEmpty) {
        reply.ok(); // close does not sync
    }

    fn release(
        &mut self,
        _r: &Request,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.0.lock().unwrap().handles.remove(&fh);
        reply.ok();
    }

    fn fsync(&mut self, _r: &Request, ino: u64, _fh: u64, _datasync: bool, reply: ReplyEmpty) {
        let mut s = self.0.lock().unwrap();
        tri!(reply, tri!(reply, s.open_node(ino)).sync());
        reply.ok();
    }

    fn opendir(&mut self, _r: &Request, _ino: u64, _flags: i32, reply: ReplyOpen) {
        reply.opened(0, 0);
    }

    fn readdir(
        &mut self,
        _r: &Request,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let mut s = self.0.lock().unwrap();
        let dir = tri!(reply, s.node(ino)).path.clone();
        let listing = tri!(reply, std::fs::read_dir(s.backing(&dir)).map_err(errno));
        let mut names: Vec<(std::ffi::OsString, bool)> = listing
            .filter_map(|e| e.ok())
            .map(|e| (e.file_name(), e.file_type().is_ok_and(|t| t.is_dir())))
            .collect();
        names.sort();
        let mut entries = vec![
            (ino, FileType::Directory, ".".into()),
            (ino, FileType::Directory, "..".into()),
        ];
        for (name, is_dir) in names {
            let Ok(child) = s.ino_of(dir.join(&name)) else {
                continue;
            };
            let kind = match is_dir {
                true => FileType::Directory,
                false => FileType::RegularFile,
            };
            entries.push((child, kind, name));
        }
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(child, i as i64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&mut self, _r: &Request, _ino: u64, _fh: u64, _ds: bool, reply: ReplyEmpty) {
        reply.ok(); // directory changes took effect at once
    }

    fn statfs(&mut self, _r: &Request, _ino: u64, reply: ReplyStatfs) {
        let root = self.0.lock().unwrap().root.clone();
        match nix::sys::statvfs::statvfs(&root) {
            Ok(v) => reply.statfs(
                v.blocks(),
                v.blocks_free(),
                v.blocks_available(),
                v.files(),
                v.files_free(),
                v.block_size() as u32,
                v.name_max() as u32,
                v.fragment_size() as u32,
            ),
            Err(e) => reply.error(e as i32),
        }
    }

    fn access(&mut self, _r: &Request, _ino: u64, _mask: i32, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &mut self,
        _r: &Request,
        ino: u64,
        _fh: u64,
        offset: i64,
        length: i64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode & !nix::libc::FALLOC_FL_KEEP_SIZE != 0 {
            return reply.error(nix::libc::EOPNOTSUPP);
        }
        let mut s = self.0.lock().unwrap();
        let node = tri!(reply, s.open_node(ino));
        if mode & nix::libc::FALLOC_FL_KEEP_SIZE == 0 {
            node.size = node.size.max((offset + length).max(0) as u64);
        }
        reply.ok();
    }
}

/// A mounted power-fail filesystem over `backing`.
pub struct PowerFailFs {
    backing: PathBuf,
    mountpoint: PathBuf,
    state: Arc<Mutex<State>>,
    session: Option<fuser::BackgroundSession>,
}

impl PowerFailFs {
    pub fn mount(backing: &Path, mountpoint: &Path) -> anyhow::Result<PowerFailFs> {
        std::fs::create_dir_all(backing)?;
        std::fs::create_dir_all(mountpoint)?;
        let mut fs = PowerFailFs {
            backing: backing.to_path_buf(),
            mountpoint: mountpoint.to_path_buf(),
            state: Default::default(),
            session: None,
        };
        fs.start()?;
        Ok(fs)
    }

    fn start(&mut self) -> anyhow::Result<()> {
        let mut state = State {
            root: self.backing.clone(),
            next_ino: 1,
            ..Default::default()
        };
        state.nodes.insert(
            1,
            Node {
                path: PathBuf::new(),
                file: None,
                size: 0,
                cut_to: None,
                pages: HashMap::new(),
                orphan: false,
            },
        );
        state.by_path.insert(PathBuf::new(), 1);
        self.state = Arc::new(Mutex::new(state));
        let session = fuser::spawn_mount2(
            Fs(self.state.clone()),
            &self.mountpoint,
            &[fuser::MountOption::FSName("rsetcd-powerfail".into())],
        )
        .with_context(|| format!("mount FUSE on {}", self.mountpoint.display()))?;
        self.session = Some(session);
        Ok(())
    }

    /// Whether FUSE can be mounted here (tried once: it needs /dev/fuse
    /// and the right to mount).
    pub fn available() -> bool {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            let Ok(dir) = tempfile::tempdir() else {
                return false;
            };
            let tried = PowerFailFs::mount(&dir.path().join("b"), &dir.path().join("m"));
            tried.and_then(|mut fs| fs.unmount()).is_ok()
        })
    }

    /// Bytes written and not yet synced, per file (by its path under the
    /// mount; files unlinked since are left out).
    pub fn unsynced(&self) -> Vec<(PathBuf, u64)> {
        let s = self.state.lock().unwrap();
        let mut files: Vec<(PathBuf, u64)> = s
            .nodes
            .values()
            .filter(|n| !n.orphan && !n.pages.is_empty())
            .map(|n| (n.path.clone(), n.pages.len() as u64 * PAGE))
            .collect();
        files.sort();
        files
    }

    /// The power goes: every write not synced is lost. Call with no
    /// process using the mount (kill them first). Returns what was lost,
    /// per file.
    pub fn power_cut(&mut self) -> anyhow::Result<Vec<(PathBuf, u64)>> {
        // the kernel's cached pages go with the mount; what it flushes
        // while unmounting is lost with the rest
        self.unmount()?;
        let lost = self.unsynced();
        self.start()?;
        Ok(lost)
    }

    /// Unmounts and waits for the session to end: 10 s, then a lazy
    /// unmount and 10 s more (a process still using the mount holds it).
    fn unmount(&mut self) -> anyhow::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            session.join();
            let _ = tx.send(());
        });
        if rx.recv_timeout(Duration::from_secs(10)).is_ok() {
            return Ok(());
        }
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mountpoint)
            .status();
        rx.recv_timeout(Duration::from_secs(10)).map_err(|_| {
            anyhow::anyhow!(
                "{}: still busy after a lazy unmount (a process still uses it)",
                self.mountpoint.display()
            )
        })
    }
}

impl Drop for PowerFailFs {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            eprintln!("powerfail: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn a_power_cut_keeps_what_was_synced_and_nothing_else() {
        if !PowerFailFs::available() {
            eprintln!("skipped: FUSE needs root and /dev/fuse");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut fs = PowerFailFs::mount(&dir.path().join("b"), &dir.path().join("m")).unwrap();
        let m = dir.path().join("m");
        std::fs::create_dir(m.join("d")).unwrap();
        let mut f = std::fs::File::create(m.join("d/f")).unwrap();
        f.write_all(b"synced ").unwrap();
        f.sync_data().unwrap();
        f.write_all(b"lost").unwrap();
        assert_eq!(std::fs::read(m.join("d/f")).unwrap(), b"synced lost");
        let mut g = std::fs::File::create(m.join("g")).unwrap();
        g.write_all(&[7u8; 10_000]).unwrap();
        // the backing file holds only what was synced
        assert_eq!(std::fs::read(dir.path().join("b/d/f")).unwrap(), b"synced ");
        drop((f, g));
        let lost = fs.power_cut().unwrap();
        // "lost" in d/f's first page, 10,000 bytes in g's three
        let pages = |p: &str, n| (PathBuf::from(p), n * PAGE);
        assert_eq!(lost, vec![pages("d/f", 1), pages("g", 3)]);
        assert_eq!(std::fs::read(m.join("d/f")).unwrap(), b"synced ");
        assert_eq!(std::fs::read(m.join("g")).unwrap(), b"");
        // a cut file reads as zeros past its cut, even when it grows again
        let mut h = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(m.join("h"))
            .unwrap();
        h.write_all(&[1u8; 8192]).unwrap();
        h.sync_all().unwrap();
        h.set_len(100).unwrap();
        h.set_len(8192).unwrap();
        let read = std::fs::read(m.join("h")).unwrap();
        assert_eq!(&read[..100], &[1u8; 100][..]);
        assert!(read[100..].iter().all(|&b| b == 0));
        // a rename takes effect at once, its data when synced
        std::fs::rename(m.join("h"), m.join("d/h2")).unwrap();
        drop(h);
        fs.power_cut().unwrap();
        assert_eq!(std::fs::read(m.join("d/h2")).unwrap(), vec![1u8; 8192]);
        assert!(!m.join("h").exists());
    }
}
