//! Writing bbolt files, the format of etcd's backend and snapshots (issue
//! 16; docs/design/etcd-snapshot-format.md is the spec): buckets of sorted
//! keys bulk-loaded bottom-up into B+tree pages, a root bucket naming
//! them, an empty freelist and two meta pages, as `bolt.Open` and
//! `tx.Check` (what `etcdctl snapshot status` runs) accept.
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
    /// order (bytewise), keys non-empty. Buckets must come in name order.
    pub fn bucket(
        &mut self,
        name: &[u8],
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
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
        let root = self.tree(0, entries.into_iter().map(|(k, v)| (k, Payload::Value(v))))?;
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
                (name, Payload::Value(header))
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
        entries: impl Iterator<Item = (Vec<u8>, Payload)>,
    ) -> io::Result<u64> {
        let mut levels: Vec<Node> = vec![Node::default()];
        let mut last: Option<Vec<u8>> = None;
        for (key, payload) in entries {
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
        let e = w.bucket(b"b", [(b"2".to_vec(), vec![]), (b"1".to_vec(), vec![])]);
        assert!(e.is_err());
    }
}
