//! A structural check of an LMDB file (the backend `member/snap/db`) done
//! with plain file reads before LMDB maps it.
//!
//! LMDB trusts its file: a page number or node offset that points past the
//! end of a truncated or overwritten file is followed through the memory
//! map, and the process dies of SIGBUS. This check walks what LMDB would
//! read — both meta pages, then every branch and leaf page of the free-page
//! tree, the main tree and each named tree, and the headers of overflow
//! pages — and reports the first inconsistency with the file named, so a
//! damaged backend refuses to start with a message instead of a crash.
//! It reads each tree page once (the startup key-index rebuild reads as
//! much again), and does not look into values: the MVCC layer decodes and
//! checks those.
//!
//! The layout is LMDB 0.9's on a 64-bit little-endian machine (the
//! `lmdb-master-sys` build heed links): 16-byte page headers, 8-byte page
//! numbers, no MDB_VL32.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// What was found wrong, with the file it was found in.
#[derive(Debug)]
pub struct Damage {
    pub path: PathBuf,
    pub reason: String,
    /// The file is sound but etcd's (bbolt), not damaged.
    pub bbolt: bool,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.display();
        if self.bbolt {
            write!(f, "backend file {path} {}", self.reason)
        } else {
            write!(f, "backend file {path} is damaged: {}", self.reason)
        }
    }
}

impl std::error::Error for Damage {}

/// bbolt's meta magic: etcd's backend file, met when rsetcd is pointed at
/// an etcd data dir.
const BBOLT_MAGIC: u32 = 0xED0C_DAED;
/// What an operator reads when that happens.
const BBOLT_REASON: &str = "is an etcd (bbolt) backend, not an rsetcd (LMDB) one: rsetcd \
    cannot open etcd's data dir in place. Restore it into a new data dir with `etcdutl \
    snapshot restore <etcd data dir>/member/snap/db --skip-hash-check` (or an etcd snapshot \
    file), see docs/migration.md";

const MAGIC: u32 = 0xBEEF_C0DE;
const DATA_VERSION: u32 = 1;
const PAGE_HEADER: usize = 16;
const NODE_HEADER: usize = 8;
const DB_RECORD: usize = 48;
const MIN_PAGE_SIZE: u32 = 512;
const MAX_PAGE_SIZE: u32 = 0x8000;
const P_INVALID: u64 = u64::MAX;
/// LMDB's cursors hold at most this many levels (CURSOR_STACK).
const MAX_DEPTH: u16 = 32;

const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;
const P_META: u16 = 0x08;
const P_LEAF2: u16 = 0x20;
const PAGE_KINDS: u16 = P_BRANCH | P_LEAF | P_OVERFLOW | P_META;

const F_BIGDATA: u16 = 0x01;
const F_SUBDATA: u16 = 0x02;

/// Offsets inside a meta page (after the page header): magic, version,
/// fixed-map address, map size, the free and main tree records, the last
/// page number and the transaction id.
const META_MAGIC: usize = PAGE_HEADER;
const META_VERSION: usize = PAGE_HEADER + 4;
const META_DBS: usize = PAGE_HEADER + 24;
const META_LAST_PAGE: usize = META_DBS + 2 * DB_RECORD;
const META_TXN_ID: usize = META_LAST_PAGE + 8;
const META_END: usize = META_TXN_ID + 8;

/// One tree's record (`MDB_db`).
#[derive(Debug, Clone, Copy)]
struct TreeRecord {
    depth: u16,
    root: u64,
}

impl TreeRecord {
    fn parse(b: &[u8]) -> TreeRecord {
        TreeRecord {
            depth: u16_at(b, 6),
            root: u64_at(b, 40),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    page_size: u32,
    free: TreeRecord,
    main: TreeRecord,
    txn_id: u64,
}

/// What a check found in a sound file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub page_size: u32,
    /// Branch and leaf pages read.
    pub tree_pages: u64,
    pub overflow_pages: u64,
}

/// Checks the LMDB file at `path`. A missing or empty file is sound (LMDB
/// creates it).
pub fn check_file(path: &Path) -> Result<Option<Summary>, Damage> {
    let damage = |reason: String| Damage {
        path: path.to_path_buf(),
        reason,
        bbolt: false,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(damage(format!("cannot open it: {e}"))),
    };
    let len = file
        .metadata()
        .map_err(|e| damage(format!("cannot stat it: {e}")))?
        .len();
    if len == 0 {
        return Ok(None);
    }
    let mut walker = Walker {
        file: &file,
        len,
        page_size: 0,
        visited: Vec::new(),
        summary: Summary {
            page_size: 0,
            tree_pages: 0,
            overflow_pages: 0,
        },
    };
    if walker.is_bbolt() {
        return Err(Damage {
            bbolt: true,
            ..damage(BBOLT_REASON.to_string())
        });
    }
    walker.check().map_err(damage)?;
    Ok(Some(walker.summary))
}

struct Walker<'f> {
    file: &'f File,
    len: u64,
    page_size: u32,
    /// One bit per page: a page reached twice means a loop or shared page.
    visited: Vec<u64>,
    summary: Summary,
}

impl Walker<'_> {
    fn check(&mut self) -> Result<(), String> {
        let first = self.meta(0, None)?;
        let second = self.meta(1, Some(first.page_size))?;
        let meta = if second.txn_id > first.txn_id {
            second
        } else {
            first
        };
        self.page_size = meta.page_size;
        self.summary.page_size = meta.page_size;
        let pages = self.len / u64::from(self.page_size);
        self.visited = vec![0; (pages as usize).div_ceil(64)];
        self.tree(meta.free, "the free-page tree")?;
        self.tree(meta.main, "the main tree")
    }

    /// Whether the first page is a bbolt meta page (its magic sits where
    /// LMDB's does: after a 16-byte page header).
    fn is_bbolt(&self) -> bool {
        let mut b = [0u8; META_MAGIC + 4];
        self.file.read_exact_at(&mut b, 0).is_ok() && u32_at(&b, META_MAGIC) == BBOLT_MAGIC
    }

    fn pages_in_file(&self) -> u64 {
        self.len / u64::from(self.page_size)
    }

    /// Reads meta page `index`; the second one sits one page size (as the
    /// first states it) into the file.
    fn meta(&self, index: u64, page_size: Option<u32>) -> Result<Meta, String> {
        let offset = page_size.map_or(0, |p| u64::from(p) * index);
        let mut b = [0u8; META_END];
        if offset + META_END as u64 > self.len {
            return Err(format!(
                "it is {} bytes long, too short to hold meta page {index}",
                self.len
            ));
        }
        self.file
            .read_exact_at(&mut b, offset)
            .map_err(|e| format!("cannot read meta page {index}: {e}"))?;
        let flags = u16_at(&b, 10);
        let magic = u32_at(&b, META_MAGIC);
        if flags & PAGE_KINDS != P_META || magic != MAGIC {
            return Err(format!(
                "meta page {index} is not an LMDB meta page (flags {flags:#x}, magic {magic:#x})"
            ));
        }
        let version = u32_at(&b, META_VERSION);
        if version != DATA_VERSION {
            return Err(format!(
                "meta page {index} has LMDB data version {version}, not {DATA_VERSION}"
            ));
        }
        let free = TreeRecord::parse(&b[META_DBS..META_DBS + DB_RECORD]);
        let main = TreeRecord::parse(&b[META_DBS + DB_RECORD..META_LAST_PAGE]);
        // The page size is kept in the free tree's record (mm_psize).
        let page_size = u32_at(&b, META_DBS);
        if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(format!(
                "meta page {index} gives an impossible page size {page_size}"
            ));
        }
        Ok(Meta {
            page_size,
            free,
            main,
            txn_id: u64_at(&b, META_TXN_ID),
        })
    }

    fn tree(&mut self, record: TreeRecord, name: &str) -> Result<(), String> {
        if record.root == P_INVALID {
            return Ok(());
        }
        if record.depth == 0 || record.depth > MAX_DEPTH {
            return Err(format!(
                "{name} has root page {} but an impossible depth {}",
                record.root, record.depth
            ));
        }
        self.page(record.root, 1, record.depth, name)
    }

    /// Checks tree page `pgno` at `level` (the root is 1) of a tree
    /// `depth` deep, and everything below it.
    fn page(&mut self, pgno: u64, level: u16, depth: u16, tree: &str) -> Result<(), String> {
        let page = self.read_page(pgno, tree)?;
        let flags = u16_at(&page, 10);
        let want = if level < depth { P_BRANCH } else { P_LEAF };
        if flags & PAGE_KINDS != want {
            return Err(format!(
                "page {pgno} of {tree} has flags {flags:#x}, expected a {} page at level {level} of {depth}",
                if want == P_BRANCH { "branch" } else { "leaf" }
            ));
        }
        self.summary.tree_pages += 1;
        if flags & P_LEAF2 != 0 {
            // Fixed-size duplicate keys: no nodes to follow.
            return Ok(());
        }
        let lower = usize::from(u16_at(&page, 12));
        let upper = usize::from(u16_at(&page, 14));
        let size = page.len();
        if lower < PAGE_HEADER || lower > upper || upper > size || (lower - PAGE_HEADER) % 2 != 0 {
            return Err(format!(
                "page {pgno} of {tree} has impossible bounds (lower {lower}, upper {upper})"
            ));
        }
        let keys = (lower - PAGE_HEADER) / 2;
        if want == P_BRANCH && keys == 0 {
            return Err(format!("branch page {pgno} of {tree} has no entries"));
        }
        for i in 0..keys {
            let at = usize::from(u16_at(&page, PAGE_HEADER + 2 * i));
            if at < upper || at + NODE_HEADER > size {
                return Err(format!(
                    "page {pgno} of {tree}: entry {i} lies outside the page (offset {at})"
                ));
            }
            let lo = u64::from(u16_at(&page, at));
            let hi = u64::from(u16_at(&page, at + 2));
            let node_flags = u16_at(&page, at + 4);
            let key_size = usize::from(u16_at(&page, at + 6));
            let key_end = at + NODE_HEADER + key_size;
            if key_end > size {
                return Err(format!(
                    "page {pgno} of {tree}: the key of entry {i} runs past the page"
                ));
            }
            if want == P_BRANCH {
                let child = lo | (hi << 16) | (u64::from(node_flags) << 32);
                self.page(child, level + 1, depth, tree)?;
                continue;
            }
            let data_size = (lo | (hi << 16)) as usize;
            if node_flags & F_BIGDATA != 0 {
                let Some(b) = page.get(key_end..key_end + 8) else {
                    return Err(format!(
                        "page {pgno} of {tree}: entry {i} runs past the page"
                    ));
                };
                self.overflow(u64_at(b, 0), data_size, tree)?;
            } else if key_end + data_size > size {
                return Err(format!(
                    "page {pgno} of {tree}: the value of entry {i} runs past the page"
                ));
            } else if node_flags & F_SUBDATA != 0 {
                if data_size != DB_RECORD {
                    return Err(format!(
                        "page {pgno} of {tree}: entry {i} names a sub-tree with a {data_size}-byte record"
                    ));
                }
                let name = String::from_utf8_lossy(&page[at + NODE_HEADER..key_end]).into_owned();
                let record = TreeRecord::parse(&page[key_end..key_end + DB_RECORD]);
                self.tree(record, &format!("table {name:?}"))?;
            }
        }
        Ok(())
    }

    /// Checks the header of the overflow run at `pgno` holding `bytes`.
    fn overflow(&mut self, pgno: u64, bytes: usize, tree: &str) -> Result<(), String> {
        let header = self.read_header(pgno, tree)?;
        let flags = u16_at(&header, 10);
        let count = u64::from(u32_at(&header, 12));
        let page_size = u64::from(self.page_size);
        let needed = (PAGE_HEADER as u64 - 1 + bytes as u64) / page_size + 1;
        if flags & PAGE_KINDS != P_OVERFLOW || count < needed {
            return Err(format!(
                "overflow page {pgno} of {tree} (flags {flags:#x}, {count} pages) cannot hold a {bytes}-byte value"
            ));
        }
        if pgno + count > self.pages_in_file() {
            return Err(format!(
                "overflow pages {pgno}..{} of {tree} lie past the end of the file ({} bytes): it was truncated",
                pgno + count,
                self.len
            ));
        }
        for p in pgno + 1..pgno + count {
            self.visit(p, tree)?;
        }
        self.summary.overflow_pages += count;
        Ok(())
    }

    fn visit(&mut self, pgno: u64, tree: &str) -> Result<(), String> {
        if pgno < 2 || pgno >= self.pages_in_file() {
            return Err(format!(
                "{tree} refers to page {pgno}, which is {}",
                if pgno < 2 {
                    "a meta page".to_string()
                } else {
                    format!(
                        "past the end of the file ({} bytes, {} pages): it was truncated or the reference is garbage",
                        self.len,
                        self.pages_in_file()
                    )
                }
            ));
        }
        let (word, bit) = ((pgno / 64) as usize, pgno % 64);
        if self.visited[word] & (1 << bit) != 0 {
            return Err(format!("{tree} reaches page {pgno} twice"));
        }
        self.visited[word] |= 1 << bit;
        Ok(())
    }

    fn read_page(&mut self, pgno: u64, tree: &str) -> Result<Vec<u8>, String> {
        self.visit(pgno, tree)?;
        let mut page = vec![0u8; self.page_size as usize];
        self.file
            .read_exact_at(&mut page, pgno * u64::from(self.page_size))
            .map_err(|e| format!("cannot read page {pgno}: {e}"))?;
        check_page_number(&page, pgno, tree)?;
        Ok(page)
    }

    fn read_header(&mut self, pgno: u64, tree: &str) -> Result<[u8; PAGE_HEADER], String> {
        self.visit(pgno, tree)?;
        let mut header = [0u8; PAGE_HEADER];
        self.file
            .read_exact_at(&mut header, pgno * u64::from(self.page_size))
            .map_err(|e| format!("cannot read page {pgno}: {e}"))?;
        check_page_number(&header, pgno, tree)?;
        Ok(header)
    }
}

/// A page records its own number: a mismatch means it was overwritten.
fn check_page_number(page: &[u8], pgno: u64, tree: &str) -> Result<(), String> {
    let stored = u64_at(page, 0);
    if stored != pgno {
        return Err(format!(
            "page {pgno} of {tree} holds the header of page {stored}: it was overwritten"
        ));
    }
    Ok(())
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::backend::{Backend, DEFAULT_MAP_SIZE};

    /// A backend with enough records for several levels and overflow pages.
    fn filled_backend(dir: &Path) -> PathBuf {
        let path = dir.join("db");
        let backend = Backend::open(&path, DEFAULT_MAP_SIZE).unwrap();
        let mut wtxn = backend.env.write_txn().unwrap();
        for i in 0u32..3000 {
            let value = if i % 100 == 0 {
                vec![7u8; 10_000]
            } else {
                vec![i as u8; 100]
            };
            backend.kv.put(&mut wtxn, &i.to_be_bytes(), &value).unwrap();
        }
        backend.meta.put(&mut wtxn, b"m", b"v").unwrap();
        wtxn.commit().unwrap();
        drop(backend);
        path
    }

    #[test]
    fn a_sound_file_passes_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = filled_backend(dir.path());
        let summary = check_file(&path).unwrap().unwrap();
        assert!(summary.tree_pages > 10, "{summary:?}");
        assert!(summary.overflow_pages >= 30, "{summary:?}");
        let sound = std::fs::read(&path).unwrap();
        let page = summary.page_size as usize;

        // Truncated to half: some page lies past the end.
        std::fs::write(&path, &sound[..sound.len() / 2]).unwrap();
        let err = check_file(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("past the end of the file"), "{err}");

        // Garbage over the meta pages.
        let mut bad = sound.clone();
        bad[..2 * page].fill(0x5a);
        std::fs::write(&path, &bad).unwrap();
        let err = check_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("meta page 0 is not an LMDB meta page"),
            "{err}"
        );

        // Garbage over every tree page: whatever is reached first is wrong.
        let mut bad = sound.clone();
        let mut x: u32 = 12345;
        for b in bad[2 * page..].iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 16) as u8;
        }
        std::fs::write(&path, &bad).unwrap();
        let err = check_file(&path).unwrap_err().to_string();
        assert!(err.contains("is damaged"), "{err}");

        std::fs::write(&path, &sound).unwrap();
        assert_eq!(check_file(&path).unwrap(), Some(summary));
    }

    #[test]
    fn an_etcd_bbolt_file_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        // bbolt's first meta page: page id 0, flags 0x04 (meta), magic, version 2
        let mut page = vec![0u8; 4096 * 4];
        page[8] = 0x04;
        page[16..20].copy_from_slice(&BBOLT_MAGIC.to_le_bytes());
        page[20..24].copy_from_slice(&2u32.to_le_bytes());
        std::fs::write(&path, &page).unwrap();
        let err = check_file(&path).unwrap_err().to_string();
        assert!(err.contains("is an etcd (bbolt) backend"), "{err}");
        assert!(err.contains("etcdutl snapshot restore"), "{err}");
        assert!(!err.contains("damaged"), "{err}");
    }

    #[test]
    fn missing_or_empty_files_are_left_to_lmdb() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        assert_eq!(check_file(&path).unwrap(), None);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(check_file(&path).unwrap(), None);
        std::fs::write(&path, b"short").unwrap();
        assert!(check_file(&path)
            .unwrap_err()
            .to_string()
            .contains("too short to hold meta page 0"));
    }
}
