//! bbolt files, the format of etcd's backend and snapshots
//! (docs/design/etcd-snapshot-format.md is the spec).
//!
//! The `Writer` bulk-loads buckets of sorted keys bottom-up into B+tree
//! pages, a root bucket naming them, an empty freelist and two meta pages,
//! as `bolt.Open` and `tx.Check` (what `etcdctl snapshot status` runs)
//! accept. The `Reader` walks any bbolt file read-only with plain reads,
//! every offset bounds-checked (a damaged or hostile file is an error,
//! never a crash); `check` is bbolt's `tx.Check`.
//!
//! Our own code rather than a port of bbolt (bbolt-rs): snapshots need a
//! bulk writer and a read-only walker, a few hundred lines; a full
//! transactional engine maps the file and trusts its page numbers (SIGBUS
//! on a truncated file), which is what a reader of foreign files must not.
//!
//! Every integer bbolt stores is little-endian (the host order of every
//! platform etcd runs on); pages are 4096 bytes, a multiple of 512 as
//! etcd's snapshot trailer check needs.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub const PAGE_SIZE: usize = 4096;
const HEADER: usize = 16;
const ELEMENT: usize = 16;
/// A page's element count is a u16 and bbolt refuses 0xFFFF.
const MAX_ELEMENTS: usize = 0xFFFE;

const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
/// A leaf element that is a sub-bucket.
const BUCKET_LEAF: u32 = 0x01;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
/// Pages 0 and 1 are the metas, 2 the (empty) freelist.
const FREELIST_PGID: u64 = 2;
const FIRST_DATA_PGID: u64 = 3;

/// What goes after a key in a node: a value (leaf) or a child page
/// (branch).
enum Payload {
    Value(Vec<u8>),
    Child(u64),
}

#[derive(Default)]
struct Node {
    entries: Vec<(Vec<u8>, Payload)>,
    /// Bytes the node takes written: header, elements, keys and values.
    size: usize,
    /// Nodes written at this level so far.
    written: usize,
}

/// Writes a bbolt file: `bucket` for each bucket in name order, then
/// `finish`.
pub struct Writer {
    file: File,
    next_pgid: u64,
    /// Each bucket's name and root page, in name order.
    buckets: Vec<(Vec<u8>, u64)>,
}

impl Writer {
    pub fn create(path: &Path) -> io::Result<Writer> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Writer {
            file,
            next_pgid: FIRST_DATA_PGID,
            buckets: Vec::new(),
        })
    }

    /// A bucket of `entries`, which must come in strictly increasing key
    /// order (bytewise), keys non-empty; the first error among them ends
    /// the write. Buckets must come in name order.
    pub fn bucket(
        &mut self,
        name: &[u8],
        entries: impl IntoIterator<Item = io::Result<(Vec<u8>, Vec<u8>)>>,
    ) -> io::Result<()> {
        if let Some((last, _)) = self.buckets.last() {
            if last.as_slice() >= name {
                return Err(invalid(format!(
                    "bucket {:?} after {:?}: buckets go in name order",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(last)
                )));
            }
        }
        let root = self.tree(
            0,
            entries
                .into_iter()
                .map(|e| e.map(|(k, v)| (k, Payload::Value(v)))),
        )?;
        self.buckets.push((name.to_vec(), root));
        Ok(())
    }

    /// The root bucket, the freelist and the metas; returns the file's
    /// size (pages × PAGE_SIZE).
    pub fn finish(mut self) -> io::Result<u64> {
        let buckets = std::mem::take(&mut self.buckets);
        let root = self.tree(
            BUCKET_LEAF,
            buckets.into_iter().map(|(name, root)| {
                let mut header = Vec::with_capacity(16);
                header.extend_from_slice(&root.to_le_bytes());
                header.extend_from_slice(&0u64.to_le_bytes()); // sequence
                Ok((name, Payload::Value(header)))
            }),
        )?;
        let mut freelist = vec![0u8; PAGE_SIZE];
        page_header(&mut freelist, FREELIST_PGID, FREELIST_PAGE, 0, 0);
        self.file
            .write_all_at(&freelist, FREELIST_PGID * PAGE_SIZE as u64)?;
        // bolt's Tx.WriteTo: meta 0 at txid T, meta 1 at T - 1
        for (pgid, txid) in [(0u64, 1u64), (1, 0)] {
            let page = meta_page(pgid, root, self.next_pgid, txid);
            self.file.write_all_at(&page, pgid * PAGE_SIZE as u64)?;
        }
        self.file.sync_all()?;
        Ok(self.next_pgid * PAGE_SIZE as u64)
    }

    /// Bulk-loads sorted entries into leaf pages (elements flagged
    /// `leaf_flags`) and the branch pages above them; returns the root.
    fn tree(
        &mut self,
        leaf_flags: u32,
        entries: impl Iterator<Item = io::Result<(Vec<u8>, Payload)>>,
    ) -> io::Result<u64> {
        let mut levels: Vec<Node> = vec![Node::default()];
        let mut last: Option<Vec<u8>> = None;
        for entry in entries {
            let (key, payload) = entry?;
            if key.is_empty() || last.as_ref().is_some_and(|l| *l >= key) {
                return Err(invalid(
                    "keys must be non-empty and strictly increasing".into(),
                ));
            }
            last = Some(key.clone());
            self.add(&mut levels, 0, leaf_flags, key, payload)?;
        }
        // Flush from the leaves up; the root is the only node ever made
        // at the top level.
        let mut level = 0;
        loop {
            let top = level == levels.len() - 1;
            if top && levels[level].written == 0 {
                let node = std::mem::take(&mut levels[level]);
                return self.write_node(level, leaf_flags, node);
            }
            self.flush(&mut levels, level, leaf_flags)?;
            level += 1;
        }
    }

    fn add(
        &mut self,
        levels: &mut Vec<Node>,
        level: usize,
        leaf_flags: u32,
        key: Vec<u8>,
        payload: Payload,
    ) -> io::Result<()> {
        if levels.len() == level {
            levels.push(Node::default());
        }
        let size = ELEMENT
            + key.len()
            + match &payload {
                Payload::Value(v) => v.len(),
                Payload::Child(_) => 0,
            };
        let node = &levels[level];
        if !node.entries.is_empty()
            && (node.size + size > PAGE_SIZE || node.entries.len() == MAX_ELEMENTS)
        {
            self.flush(levels, level, leaf_flags)?;
        }
        let node = &mut levels[level];
        if node.entries.is_empty() {
            node.size = HEADER;
        }
        node.size += size;
        node.entries.push((key, payload));
        Ok(())
    }

    /// Writes the node at `level` and adds it to its parent.
    fn flush(&mut self, levels: &mut Vec<Node>, level: usize, leaf_flags: u32) -> io::Result<()> {
        let mut node = std::mem::take(&mut levels[level]);
        let written = node.written + 1;
        let first = match node.entries.first() {
            Some((k, _)) => k.clone(),
            // an empty bucket: one empty leaf (only at the leaf level)
            None => Vec::new(),
        };
        node.written = 0;
        let pgid = self.write_node(level, leaf_flags, node)?;
        levels[level].written = written;
        if first.is_empty() {
            return Err(invalid("an empty node has no parent".into()));
        }
        self.add(levels, level + 1, leaf_flags, first, Payload::Child(pgid))
    }

    /// Writes one node (a leaf at level 0, else a branch) on the next
    /// free pages; returns its first page.
    fn write_node(&mut self, level: usize, leaf_flags: u32, node: Node) -> io::Result<u64> {
        let size = node.size.max(HEADER);
        let pages = size.div_ceil(PAGE_SIZE);
        let pgid = self.next_pgid;
        self.next_pgid += pages as u64;
        let mut buf = vec![0u8; pages * PAGE_SIZE];
        let count = node.entries.len();
        let kind = if level == 0 { LEAF_PAGE } else { BRANCH_PAGE };
        page_header(&mut buf, pgid, kind, count as u16, (pages - 1) as u32);
        let mut data = HEADER + ELEMENT * count;
        for (i, (key, payload)) in node.entries.iter().enumerate() {
            let at = HEADER + ELEMENT * i;
            // positions are relative to the element itself
            let pos = (data - at) as u32;
            match payload {
                Payload::Value(value) => {
                    put_u32(&mut buf, at, leaf_flags);
                    put_u32(&mut buf, at + 4, pos);
                    put_u32(&mut buf, at + 8, key.len() as u32);
                    put_u32(&mut buf, at + 12, value.len() as u32);
                    buf[data..data + key.len()].copy_from_slice(key);
                    data += key.len();
                    buf[data..data + value.len()].copy_from_slice(value);
                    data += value.len();
                }
                Payload::Child(child) => {
                    put_u32(&mut buf, at, pos);
                    put_u32(&mut buf, at + 4, key.len() as u32);
                    buf[at + 8..at + 16].copy_from_slice(&child.to_le_bytes());
                    buf[data..data + key.len()].copy_from_slice(key);
                    data += key.len();
                }
            }
        }
        self.file.write_all_at(&buf, pgid * PAGE_SIZE as u64)?;
        Ok(pgid)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn page_header(buf: &mut [u8], pgid: u64, flags: u16, count: u16, overflow: u32) {
    buf[0..8].copy_from_slice(&pgid.to_le_bytes());
    buf[8..10].copy_from_slice(&flags.to_le_bytes());
    buf[10..12].copy_from_slice(&count.to_le_bytes());
    buf[12..16].copy_from_slice(&overflow.to_le_bytes());
}

/// A meta page: the root bucket's page, the high-water mark, the txid,
/// and the FNV-1a 64 checksum of the fields before it.
fn meta_page(pgid: u64, root: u64, high_water: u64, txid: u64) -> Vec<u8> {
    let mut page = vec![0u8; PAGE_SIZE];
    page_header(&mut page, pgid, META_PAGE, 0, 0);
    let mut meta = Vec::with_capacity(64);
    meta.extend_from_slice(&MAGIC.to_le_bytes());
    meta.extend_from_slice(&VERSION.to_le_bytes());
    meta.extend_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
    meta.extend_from_slice(&0u32.to_le_bytes()); // flags
    meta.extend_from_slice(&root.to_le_bytes());
    meta.extend_from_slice(&0u64.to_le_bytes()); // root sequence
    meta.extend_from_slice(&FREELIST_PGID.to_le_bytes());
    meta.extend_from_slice(&high_water.to_le_bytes());
    meta.extend_from_slice(&txid.to_le_bytes());
    let sum = fnv1a64(&meta);
    meta.extend_from_slice(&sum.to_le_bytes());
    page[HEADER..HEADER + 64].copy_from_slice(&meta);
    page
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

// ---------------------------------------------------------------- reading

/// Why a file cannot be read as a bbolt database: bbolt's own words where
/// it has them ("invalid database", "version mismatch", "checksum error").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// Called with each key and value of a bucket.
pub type EntryFn<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), Invalid> + 'a;
/// Called with each leaf element's flags, key and value.
type ElementFn<'a> = dyn FnMut(u32, &[u8], &[u8]) -> Result<(), Invalid> + 'a;

fn bad<T>(msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(msg.into()))
}

/// bbolt's marker for "no freelist page" (etcd syncs none on Linux).
const NO_FREELIST: u64 = u64::MAX;
/// Deeper than any real tree (a 4 KiB page holds at least two branch
/// elements, so 64 levels address more pages than a file can hold).
const MAX_DEPTH: usize = 64;

/// Where the bytes come from: a file (read page by page, never mapped)
/// or memory (tests, fuzzing).
enum Source {
    File(File),
    Bytes(Vec<u8>),
}

/// A meta page's fields.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub page_size: u32,
    pub root: u64,
    pub freelist: u64,
    /// Pages in use: the database is `high_water * page_size` bytes.
    pub high_water: u64,
    pub txid: u64,
}

/// A bucket's contents: a tree of pages, or a leaf page stored inline in
/// its parent's value.
#[derive(Debug, Clone)]
pub enum BucketRoot {
    Tree(u64),
    Inline(Vec<u8>),
}

/// One node: its bytes (the page and its overflow pages, or an inline
/// page) and its kind and element count.
struct Page {
    buf: Vec<u8>,
    pgid: u64,
    leaf: bool,
    count: usize,
}

/// An element of a node.
enum Element<'a> {
    Leaf {
        flags: u32,
        key: &'a [u8],
        value: &'a [u8],
    },
    Branch {
        key: &'a [u8],
        child: u64,
    },
}

pub struct Reader {
    source: Source,
    /// Bytes of the database (a snapshot's trailer excluded).
    len: u64,
    meta: Meta,
}

impl Reader {
    /// Opens the database in the first `len` bytes of `file` (all of it
    /// when `None`), as `bolt.Open` would.
    pub fn open(file: File, len: Option<u64>) -> Result<Reader, Invalid> {
        let len = match len {
            Some(n) => n,
            None => file
                .metadata()
                .map_err(|e| Invalid(format!("stat: {e}")))?
                .len(),
        };
        Reader::with_source(Source::File(file), len)
    }

    /// A database held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Reader, Invalid> {
        let len = bytes.len() as u64;
        Reader::with_source(Source::Bytes(bytes), len)
    }

    fn with_source(source: Source, len: u64) -> Result<Reader, Invalid> {
        let mut r = Reader {
            source,
            len,
            meta: Meta {
                page_size: 0,
                root: 0,
                freelist: 0,
                high_water: 0,
                txid: 0,
            },
        };
        r.meta = r.pick_meta()?;
        Ok(r)
    }

    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// The database's size, as bbolt's `tx.Size()`.
    pub fn size(&self) -> u64 {
        self.meta.high_water * u64::from(self.meta.page_size)
    }

    fn read_at(&self, buf: &mut [u8], at: u64) -> Result<(), Invalid> {
        let end = at.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return bad(format!(
                "read of {} bytes at {at} past the end of the file ({} bytes)",
                buf.len(),
                self.len
            ));
        }
        match &self.source {
            Source::File(f) => f
                .read_exact_at(buf, at)
                .map_err(|e| Invalid(format!("read at {at}: {e}"))),
            Source::Bytes(b) => {
                buf.copy_from_slice(&b[at as usize..at as usize + buf.len()]);
                Ok(())
            }
        }
    }

    /// bbolt's `db.meta()`: the valid meta with the higher txid. The page
    /// size comes from meta 0, or, when that is damaged, from a meta 1
    /// found at one of the page sizes bbolt probes.
    fn pick_meta(&self) -> Result<Meta, Invalid> {
        if self.len < 1024 {
            return bad("invalid database");
        }
        let mut page_size = match self.meta_at(0) {
            Ok(m) => Some(m.page_size),
            Err(_) => None,
        };
        if page_size.is_none() {
            for i in 0..15 {
                let off = 1024u64 << i;
                if let Ok(m) = self.meta_at(off) {
                    if u64::from(m.page_size) == off {
                        page_size = Some(m.page_size);
                        break;
                    }
                }
            }
        }
        // Neither meta is readable: report meta 0's fault, as bbolt does.
        let Some(page_size) = page_size else {
            return Err(self
                .meta_at(0)
                .err()
                .unwrap_or(Invalid("invalid database".into())));
        };
        let ps = u64::from(page_size);
        if self.len < 2 * ps {
            return bad(format!("file size too small {}", self.len));
        }
        let (a, b) = (self.meta_at(0), self.meta_at(ps));
        let meta = match (a, b) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(m), Err(_)) | (Err(_), Ok(m)) => m,
            (Err(e), Err(_)) => return Err(e),
        };
        if meta.page_size != page_size {
            return bad(format!(
                "the metas disagree on the page size ({} and {page_size})",
                meta.page_size
            ));
        }
        let size = meta.high_water.checked_mul(ps);
        if size.is_none_or(|s| s > self.len) {
            return bad(format!(
                "the database claims {} pages of {page_size} bytes, the file has {} bytes (truncated?)",
                meta.high_water, self.len
            ));
        }
        if meta.root < 2 || meta.root >= meta.high_water {
            return bad(format!(
                "root bucket page {} outside the database ({} pages)",
                meta.root, meta.high_water
            ));
        }
        Ok(meta)
    }

    /// The meta of the page at byte `at`, validated as bbolt's
    /// `meta.validate`: magic, then version, then checksum.
    fn meta_at(&self, at: u64) -> Result<Meta, Invalid> {
        let mut b = [0u8; HEADER + 64];
        self.read_at(&mut b, at)?;
        let m = &b[HEADER..];
        let u32_at = |o: usize| u32::from_le_bytes(m[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(m[o..o + 8].try_into().expect("8 bytes"));
        if u32_at(0) != MAGIC {
            return bad("invalid database");
        }
        if u32_at(4) != VERSION {
            return bad("version mismatch");
        }
        if u64_at(56) != fnv1a64(&m[..56]) {
            return bad("checksum error");
        }
        let page_size = u32_at(8);
        if !page_size.is_power_of_two() || !(512..=1 << 20).contains(&page_size) {
            return bad(format!("invalid page size {page_size}"));
        }
        Ok(Meta {
            page_size,
            root: u64_at(16),
            freelist: u64_at(32),
            high_water: u64_at(40),
            txid: u64_at(48),
        })
    }

    /// The node at `pgid` with its overflow pages, checked to lie inside
    /// the database.
    fn node(&self, pgid: u64) -> Result<Page, Invalid> {
        let ps = u64::from(self.meta.page_size);
        if pgid >= self.meta.high_water {
            return bad(format!(
                "page {pgid}: out of bounds: {}",
                self.meta.high_water
            ));
        }
        let mut header = [0u8; HEADER];
        self.read_at(&mut header, pgid * ps)?;
        let (id, flags, count, overflow) = parse_header(&header);
        if id != pgid {
            return bad(format!("page {pgid}: holds page id {id}"));
        }
        let last = pgid + u64::from(overflow);
        if last >= self.meta.high_water {
            return bad(format!(
                "page {pgid}: {overflow} overflow pages run past the database ({} pages)",
                self.meta.high_water
            ));
        }
        let leaf = match flags {
            LEAF_PAGE => true,
            BRANCH_PAGE => false,
            other => return bad(format!("page {pgid}: invalid type: {}", page_type(other))),
        };
        let mut buf = alloc(((last - pgid + 1) * ps) as usize, pgid)?;
        self.read_at(&mut buf, pgid * ps)?;
        let node = Page {
            buf,
            pgid,
            leaf,
            count: usize::from(count),
        };
        if HEADER + ELEMENT * node.count > node.buf.len() {
            return bad(format!("page {pgid}: {count} elements do not fit"));
        }
        Ok(node)
    }

    /// The root-level buckets, in name order. Anything but a bucket at
    /// the root is an error (etcd's status: "cannot get hash of bucket").
    pub fn buckets(&self) -> Result<Vec<(Vec<u8>, BucketRoot)>, Invalid> {
        let mut out = Vec::new();
        self.walk(&BucketRoot::Tree(self.meta.root), &mut |flags, k, v| {
            if flags & BUCKET_LEAF == 0 {
                return bad(format!(
                    "cannot get hash of bucket {}",
                    String::from_utf8_lossy(k)
                ));
            }
            out.push((k.to_vec(), bucket_root(k, v)?));
            Ok(())
        })?;
        Ok(out)
    }

    /// Every key and value of a bucket, in key order. A sub-bucket inside
    /// it is an error: etcd's buckets hold none.
    pub fn for_each(&self, bucket: &BucketRoot, f: &mut EntryFn<'_>) -> Result<(), Invalid> {
        self.walk(bucket, &mut |flags, k, v| {
            if flags & BUCKET_LEAF != 0 {
                return bad(format!(
                    "unexpected nested bucket {}",
                    String::from_utf8_lossy(k)
                ));
            }
            f(k, v)
        })
    }

    /// Visits a bucket's leaf elements in order, checking that keys
    /// increase and that no page is visited twice.
    fn walk(&self, bucket: &BucketRoot, f: &mut ElementFn<'_>) -> Result<(), Invalid> {
        let mut seen = PageSet::new(self.meta.high_water);
        let mut last: Option<Vec<u8>> = None;
        let mut visit = |flags: u32, k: &[u8], v: &[u8]| -> Result<(), Invalid> {
            if last.as_deref().is_some_and(|l| l >= k) {
                return bad(format!("key {:?} out of order", String::from_utf8_lossy(k)));
            }
            last = Some(k.to_vec());
            f(flags, k, v)
        };
        match bucket {
            BucketRoot::Inline(page) => {
                let node = inline_node(page)?;
                for i in 0..node.count {
                    match node.element(i)? {
                        Element::Leaf { flags, key, value } => visit(flags, key, value)?,
                        Element::Branch { .. } => unreachable!("inline nodes are leaves"),
                    }
                }
                Ok(())
            }
            BucketRoot::Tree(root) => {
                let none_freed = PageSet::new(0);
                self.check_tree(*root, None, None, 0, &mut seen, &none_freed, &mut visit)
            }
        }
    }

    /// bbolt's `tx.Check` (v1.3.11), reporting the first fault of each
    /// tree rather than every one: every page of every bucket inside the database
    /// and referenced once, of the right type, keys in order (within
    /// pages and against the branch keys above them), and, when the file
    /// has a freelist, every page either in use or free. Returns the
    /// errors found, in bbolt's words.
    pub fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut reachable = PageSet::new(self.meta.high_water);
        reachable.insert(0);
        reachable.insert(1);
        let mut freed = PageSet::new(self.meta.high_water);
        let has_freelist = self.meta.freelist != NO_FREELIST;
        if has_freelist {
            match self.freelist() {
                Ok((ids, last)) => {
                    for p in self.meta.freelist..=last {
                        reachable.insert(p);
                    }
                    for id in ids {
                        // ids past the high-water mark: bbolt ignores them
                        if id < self.meta.high_water && !freed.insert(id) {
                            errors.push(format!("page {id}: already freed"));
                        }
                    }
                }
                Err(e) => errors.push(e.0),
            }
        }
        self.check_buckets(&mut reachable, &freed, &mut errors);
        if has_freelist && errors.is_empty() {
            for p in 0..self.meta.high_water {
                if !reachable.contains(p) && !freed.contains(p) {
                    errors.push(format!("page {p}: unreachable unfreed"));
                    if errors.len() > 100 {
                        break;
                    }
                }
            }
        }
        errors
    }

    /// The freelist's page ids and the last page it occupies.
    fn freelist(&self) -> Result<(Vec<u64>, u64), Invalid> {
        let pgid = self.meta.freelist;
        let ps = u64::from(self.meta.page_size);
        if pgid < 2 || pgid >= self.meta.high_water {
            return bad(format!(
                "page {pgid}: out of bounds: {}",
                self.meta.high_water
            ));
        }
        let mut header = [0u8; HEADER];
        self.read_at(&mut header, pgid * ps)?;
        let (id, flags, count, overflow) = parse_header(&header);
        if id != pgid || flags != FREELIST_PAGE {
            return bad(format!(
                "page {pgid}: invalid freelist page: {}, page type is {}",
                id,
                page_type(flags)
            ));
        }
        let last = pgid + u64::from(overflow);
        if last >= self.meta.high_water {
            return bad(format!(
                "page {pgid}: out of bounds: {}",
                self.meta.high_water
            ));
        }
        let mut buf = alloc(((last - pgid + 1) * ps) as usize, pgid)?;
        self.read_at(&mut buf, pgid * ps)?;
        let (n, start) = if count == 0xFFFF {
            (u64_le(&buf, HEADER) as usize, HEADER + 8)
        } else {
            (usize::from(count), HEADER)
        };
        if n > (buf.len() - start) / 8 {
            return bad(format!("page {pgid}: {n} free pages do not fit"));
        }
        Ok(((0..n).map(|i| u64_le(&buf, start + 8 * i)).collect(), last))
    }

    /// The root bucket's tree, then each bucket's. Inline buckets have no
    /// pages of their own (bbolt's check skips them; `for_each` checks
    /// their contents); a bucket inside a bucket is an error: etcd's
    /// schema has none.
    fn check_buckets(&self, reachable: &mut PageSet, freed: &PageSet, errors: &mut Vec<String>) {
        let mut buckets = Vec::new();
        let walked = self.check_tree(
            self.meta.root,
            None,
            None,
            0,
            reachable,
            freed,
            &mut |flags, k, v| {
                if flags & BUCKET_LEAF == 0 {
                    return bad(format!(
                        "cannot get hash of bucket {}",
                        String::from_utf8_lossy(k)
                    ));
                }
                buckets.push((k.to_vec(), bucket_root(k, v)?));
                Ok(())
            },
        );
        if let Err(e) = walked {
            errors.push(e.0);
            return;
        }
        for (name, bucket) in buckets {
            let BucketRoot::Tree(root) = bucket else {
                continue;
            };
            let walked =
                self.check_tree(root, None, None, 0, reachable, freed, &mut |flags, k, _| {
                    if flags & BUCKET_LEAF != 0 {
                        return bad(format!(
                            "bucket {}: unexpected nested bucket {}",
                            String::from_utf8_lossy(&name),
                            String::from_utf8_lossy(k)
                        ));
                    }
                    Ok(())
                });
            if let Err(e) = walked {
                errors.push(e.0);
            }
        }
    }

    /// One subtree: every key within [min, max) of the branch above.
    #[allow(clippy::too_many_arguments)]
    fn check_tree(
        &self,
        pgid: u64,
        min: Option<&[u8]>,
        max: Option<&[u8]>,
        depth: usize,
        reachable: &mut PageSet,
        freed: &PageSet,
        visit: &mut ElementFn<'_>,
    ) -> Result<(), Invalid> {
        if depth > MAX_DEPTH {
            return bad(format!("page {pgid}: tree deeper than {MAX_DEPTH} levels"));
        }
        let node = self.node(pgid)?;
        let last = pgid + (node.buf.len() as u64 / u64::from(self.meta.page_size)) - 1;
        for p in pgid..=last {
            if !reachable.insert(p) {
                return bad(format!("page {p}: multiple references"));
            }
            if freed.contains(p) {
                return bad(format!("page {p}: reachable freed"));
            }
        }
        let keys: Vec<&[u8]> = (0..node.count)
            .map(|i| node.element(i).map(|e| e.key()))
            .collect::<Result<_, _>>()?;
        for (i, k) in keys.iter().enumerate() {
            let below_min = min.is_some_and(|m| *k < m);
            let at_or_above_max = max.is_some_and(|m| *k >= m);
            let unordered = i > 0 && keys[i - 1] >= *k;
            if below_min || at_or_above_max || unordered {
                return bad(format!(
                    "page {pgid}: key {:?} out of order",
                    String::from_utf8_lossy(k)
                ));
            }
        }
        for i in 0..node.count {
            match node.element(i)? {
                Element::Leaf { flags, key, value } => visit(flags, key, value)?,
                Element::Branch { key, child } => {
                    let upper = keys.get(i + 1).copied().or(max);
                    self.check_tree(child, Some(key), upper, depth + 1, reachable, freed, visit)?
                }
            }
        }
        Ok(())
    }
}

impl Page {
    fn element(&self, i: usize) -> Result<Element<'_>, Invalid> {
        let at = HEADER + ELEMENT * i;
        let e = &self.buf[at..at + ELEMENT];
        let word = |o: usize| u32::from_le_bytes(e[o..o + 4].try_into().expect("4 bytes")) as usize;
        let slice = |from: usize, len: usize| -> Result<&[u8], Invalid> {
            from.checked_add(len)
                .and_then(|end| self.buf.get(from..end))
                .ok_or_else(|| {
                    Invalid(format!(
                        "page {}: element {i} points past its page",
                        self.pgid
                    ))
                })
        };
        if self.leaf {
            let (flags, pos, ksize, vsize) = (word(0) as u32, word(4), word(8), word(12));
            let key = slice(at + pos, ksize)?;
            let value = slice(at + pos + ksize, vsize)?;
            if key.is_empty() {
                return bad(format!("page {}: element {i} has an empty key", self.pgid));
            }
            Ok(Element::Leaf { flags, key, value })
        } else {
            let (pos, ksize) = (word(0), word(4));
            let child = u64::from_le_bytes(e[8..16].try_into().expect("8 bytes"));
            let key = slice(at + pos, ksize)?;
            Ok(Element::Branch { key, child })
        }
    }
}

impl<'a> Element<'a> {
    fn key(&self) -> &'a [u8] {
        match self {
            Element::Leaf { key, .. } | Element::Branch { key, .. } => key,
        }
    }
}

/// The largest node read (a page and its overflow): far above any value
/// etcd accepts, and a hostile header cannot make the reader ask for more.
const MAX_NODE_BYTES: usize = 512 << 20;

/// A zeroed buffer for a node of `len` bytes, or an error when it is
/// larger than any real one or memory is short (never an abort).
fn alloc(len: usize, pgid: u64) -> Result<Vec<u8>, Invalid> {
    if len > MAX_NODE_BYTES {
        return bad(format!(
            "page {pgid}: a node of {len} bytes (at most {MAX_NODE_BYTES})"
        ));
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(len)
        .map_err(|e| Invalid(format!("page {pgid}: {e}")))?;
    buf.resize(len, 0);
    Ok(buf)
}

/// A bucket's root from its value in the parent: a page id, or (root 0)
/// the leaf page stored inline after the header.
fn bucket_root(name: &[u8], value: &[u8]) -> Result<BucketRoot, Invalid> {
    if value.len() < 16 {
        return bad(format!(
            "bucket {}: a {}-byte header",
            String::from_utf8_lossy(name),
            value.len()
        ));
    }
    match u64_le(value, 0) {
        0 => Ok(BucketRoot::Inline(value[16..].to_vec())),
        root => Ok(BucketRoot::Tree(root)),
    }
}

fn inline_node(page: &[u8]) -> Result<Page, Invalid> {
    if page.len() < HEADER {
        return bad("an inline bucket shorter than a page header");
    }
    let (_, flags, count, _) = parse_header(page);
    if flags != LEAF_PAGE {
        return bad(format!("an inline bucket of type {}", page_type(flags)));
    }
    let node = Page {
        buf: page.to_vec(),
        pgid: 0,
        leaf: true,
        count: usize::from(count),
    };
    if HEADER + ELEMENT * node.count > node.buf.len() {
        return bad(format!("an inline bucket's {count} elements do not fit"));
    }
    Ok(node)
}

fn parse_header(b: &[u8]) -> (u64, u16, u16, u32) {
    (
        u64_le(b, 0),
        u16::from_le_bytes([b[8], b[9]]),
        u16::from_le_bytes([b[10], b[11]]),
        u32::from_le_bytes(b[12..16].try_into().expect("4 bytes")),
    )
}

fn u64_le(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// bbolt's `page.typ()`.
fn page_type(flags: u16) -> String {
    match flags {
        BRANCH_PAGE => "branch".into(),
        LEAF_PAGE => "leaf".into(),
        META_PAGE => "meta".into(),
        FREELIST_PAGE => "freelist".into(),
        other => format!("unknown<{other:02x}>"),
    }
}

/// A set of page ids below the database's high-water mark.
struct PageSet(Vec<u64>);

impl PageSet {
    fn new(pages: u64) -> PageSet {
        PageSet(vec![0; pages.div_ceil(64) as usize])
    }
    /// False when already present or out of range.
    fn insert(&mut self, p: u64) -> bool {
        let Some(word) = self.0.get_mut((p / 64) as usize) else {
            return false;
        };
        let bit = 1u64 << (p % 64);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }
    fn contains(&self, p: u64) -> bool {
        self.0
            .get((p / 64) as usize)
            .is_some_and(|w| w & (1 << (p % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_checksums_match_bbolts() {
        // bbolt's db.init for an empty 4096-byte-page database: root 3,
        // freelist 2, high water 4 (vectors from the spec)
        let sum = |txid| {
            let page = meta_page(0, 3, 4, txid);
            u64::from_le_bytes(page[HEADER + 56..HEADER + 64].try_into().unwrap())
        };
        assert_eq!(sum(0), 0x0751_6e11_4689_fdee);
        assert_eq!(sum(1), 0x264c_351a_5179_480f);
    }

    #[test]
    fn keys_out_of_order_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::create(&dir.path().join("db")).unwrap();
        let e = w.bucket(
            b"b",
            [Ok((b"2".to_vec(), vec![])), Ok((b"1".to_vec(), vec![]))],
        );
        assert!(e.is_err());
    }

    /// etcd 3.4.23's `snapshot save` of a small cluster: every bucket
    /// inline, no freelist page (NoFreelistSync), the SHA-256 trailer.
    const ETCD_SNAPSHOT: &[u8] = include_bytes!("../../tests/fixtures/etcd-3.4.23-snapshot.db");

    fn entries(r: &Reader, root: &BucketRoot) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        r.for_each(root, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    /// Reads everything a reader can: check, buckets, entries; returns
    /// the entries (check's findings, if any, make it an error).
    fn read_all(bytes: Vec<u8>) -> Result<usize, Invalid> {
        let r = Reader::from_bytes(bytes)?;
        let errors = r.check();
        if !errors.is_empty() {
            return Err(Invalid(errors.join("; ")));
        }
        let mut n = 0;
        for (_, root) in r.buckets()? {
            r.for_each(&root, &mut |_, _| {
                n += 1;
                Ok(())
            })?;
        }
        Ok(n)
    }

    /// Everything a reader does, whatever check finds (a damaged file).
    fn exercise(bytes: Vec<u8>) {
        let Ok(r) = Reader::from_bytes(bytes) else {
            return;
        };
        let _ = r.check();
        for (_, root) in r.buckets().unwrap_or_default() {
            let _ = r.for_each(&root, &mut |_, _| Ok(()));
        }
    }

    #[test]
    fn reads_etcds_own_snapshot() {
        let r = Reader::from_bytes(ETCD_SNAPSHOT.to_vec()).unwrap();
        assert_eq!(r.meta().freelist, NO_FREELIST);
        assert_eq!(r.size(), ETCD_SNAPSHOT.len() as u64 - 32);
        assert_eq!(r.check(), Vec::<String>::new());
        let buckets = r.buckets().unwrap();
        let names: Vec<&[u8]> = buckets.iter().map(|(n, _)| n.as_slice()).collect();
        assert_eq!(
            names,
            [
                &b"alarm"[..],
                b"auth",
                b"authRoles",
                b"authUsers",
                b"cluster",
                b"key",
                b"lease",
                b"members",
                b"members_removed",
                b"meta"
            ]
        );
        assert!(buckets
            .iter()
            .all(|(_, b)| matches!(b, BucketRoot::Inline(_))));
        let keys = entries(&r, &buckets[5].1);
        assert_eq!(keys.len(), 8);
        assert_eq!(keys.last().unwrap().0.len(), 18, "a deletion last");
        let auth = entries(&r, &buckets[1].1);
        assert_eq!(auth[0], (b"authEnabled".to_vec(), vec![1]));
    }

    #[test]
    fn what_the_writer_writes_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let small: Vec<(Vec<u8>, Vec<u8>)> = (0..50_000u32)
            .map(|i| (format!("k{i:08}").into_bytes(), i.to_be_bytes().to_vec()))
            .collect();
        // values larger than a page take overflow pages
        let large: Vec<(Vec<u8>, Vec<u8>)> = (0..5u8)
            .map(|i| (vec![b'x', i], vec![i; 3 * PAGE_SIZE + 100]))
            .collect();
        let mut w = Writer::create(&path).unwrap();
        w.bucket(b"a-empty", std::iter::empty()).unwrap();
        w.bucket(b"b-small", small.iter().cloned().map(Ok)).unwrap();
        w.bucket(b"c-large", large.iter().cloned().map(Ok)).unwrap();
        let size = w.finish().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);

        let r = Reader::open(File::open(&path).unwrap(), None).unwrap();
        assert_eq!(r.size(), size);
        assert_eq!(r.check(), Vec::<String>::new());
        let buckets = r.buckets().unwrap();
        assert_eq!(buckets.len(), 3);
        assert!(entries(&r, &buckets[0].1).is_empty());
        assert_eq!(entries(&r, &buckets[1].1), small);
        assert_eq!(entries(&r, &buckets[2].1), large);
    }

    #[test]
    fn a_file_that_is_cut_short_or_not_bbolt_is_refused() {
        let body = &ETCD_SNAPSHOT[..ETCD_SNAPSHOT.len() - 32];
        let e = Reader::from_bytes(body[..3 * PAGE_SIZE].to_vec()).err();
        assert!(
            e.as_ref().is_some_and(|e| e.0.contains("truncated")),
            "{e:?}"
        );
        assert_eq!(
            Reader::from_bytes(vec![0; 8192]).err(),
            Some(Invalid("invalid database".into()))
        );
        let mut wrong_version = body.to_vec();
        for meta in [0, PAGE_SIZE] {
            wrong_version[meta + HEADER + 4] = 3;
        }
        assert_eq!(
            Reader::from_bytes(wrong_version).err(),
            Some(Invalid("version mismatch".into()))
        );
        let mut both_damaged = body.to_vec();
        for meta in [0, PAGE_SIZE] {
            both_damaged[meta + HEADER + 20] ^= 1;
        }
        assert_eq!(
            Reader::from_bytes(both_damaged).err(),
            Some(Invalid("checksum error".into()))
        );
        // one damaged meta: the other one serves, as in bbolt
        let mut one_damaged = body.to_vec();
        one_damaged[HEADER + 20] ^= 1;
        assert_eq!(read_all(one_damaged).unwrap(), 20);
    }

    /// Rewrites both metas of a written file through `f`, checksums
    /// recomputed.
    fn edit_metas(bytes: &mut [u8], f: impl Fn(&mut [u8])) {
        for at in [0, PAGE_SIZE] {
            let m = &mut bytes[at + HEADER..at + HEADER + 64];
            f(m);
            let sum = fnv1a64(&m[..56]);
            m[56..].copy_from_slice(&sum.to_le_bytes());
        }
    }

    #[test]
    fn check_reports_what_bboltss_check_reports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut w = Writer::create(&path).unwrap();
        let keys = (0..2000u32).map(|i| Ok((format!("{i:06}").into_bytes(), vec![0; 40])));
        w.bucket(b"key", keys).unwrap();
        w.finish().unwrap();
        let good = std::fs::read(&path).unwrap();
        assert_eq!(read_all(good.clone()).unwrap(), 2000);

        // a page nobody uses and the freelist does not list
        let mut slack = good.clone();
        slack.extend_from_slice(&[0; PAGE_SIZE]);
        let pages = (slack.len() / PAGE_SIZE) as u64;
        edit_metas(&mut slack, |m| {
            m[40..48].copy_from_slice(&pages.to_le_bytes())
        });
        let r = Reader::from_bytes(slack).unwrap();
        assert_eq!(
            r.check(),
            [format!("page {}: unreachable unfreed", pages - 1)]
        );

        // a branch whose second child is its first: referenced twice
        let r = Reader::from_bytes(good.clone()).unwrap();
        let root = r.buckets().unwrap()[0].1.clone();
        let BucketRoot::Tree(top) = root else {
            panic!("a 2000-key bucket is not inline")
        };
        let mut twice = good.clone();
        let at = top as usize * PAGE_SIZE;
        assert_eq!(twice[at + 8], BRANCH_PAGE as u8);
        let first_child: [u8; 8] = twice[at + HEADER + 8..at + HEADER + 16].try_into().unwrap();
        twice[at + HEADER + ELEMENT + 8..at + HEADER + ELEMENT + 16].copy_from_slice(&first_child);
        let errors = Reader::from_bytes(twice).unwrap().check();
        assert!(
            errors.iter().any(|e| e.ends_with("multiple references")),
            "{errors:?}"
        );

        // a child pointing at a meta page
        let mut meta_child = good.clone();
        meta_child[at + HEADER + 8..at + HEADER + 16].copy_from_slice(&1u64.to_le_bytes());
        let errors = Reader::from_bytes(meta_child).unwrap().check();
        assert_eq!(errors, ["page 1: invalid type: meta"]);
    }

    #[test]
    fn no_single_damaged_byte_makes_the_reader_panic() {
        // every byte of etcd's file flipped in turn, and of ours
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut w = Writer::create(&path).unwrap();
        let keys = (0..150u32).map(|i| Ok((format!("{i:06}").into_bytes(), vec![7; 20])));
        w.bucket(b"key", keys).unwrap();
        w.bucket(b"meta", [Ok((b"m".to_vec(), vec![1]))]).unwrap();
        w.finish().unwrap();
        let ours = std::fs::read(&path).unwrap();
        for file in [ETCD_SNAPSHOT.to_vec(), ours] {
            // the bytes that say something: headers and what is not zero
            let telling = (0..file.len()).filter(|&at| at % PAGE_SIZE < 64 || file[at] != 0);
            for at in telling {
                for flip in [0x01u8, 0xff] {
                    let mut damaged = file.clone();
                    damaged[at] ^= flip;
                    exercise(damaged);
                }
            }
        }
    }
}
