//! The raft write-ahead log: raft entries, hard state and snapshot markers in
//! segment files with a checksum per record.
//!
//! Layout: `<wal-dir>/<seq:016x>-<first-index:016x>.wal`. A record is
//! `len: u32 LE | crc32c(kind, payload): u32 LE | kind: u8 | payload`.
//! Every write (one per sync, and a new segment's head) starts with a sync
//! record whose payload is the length of the records it writes after it.
//! Segments are preallocated (fallocate), so an fdatasync after an append
//! need not also commit a new file size; an all-zero header marks the end
//! of the written part.
//! A new segment starts with the latest snapshot marker and hard state, so
//! that older segments can be deleted once a snapshot covers their entries.
//!
//! Replay rules: a later entry at an index already seen replaces it and
//! everything after it (raft overwrote a conflicting suffix). Damage in the
//! newest segment that no later write's sync record follows is the remains
//! of the last write, which was never acknowledged (no fsync returned): a
//! partial record, or a later page of that write on disk without an
//! earlier one (zeros, then valid records). It is cut off with a warning;
//! the valid records before it are a prefix of what raft asked to persist.
//! Damage followed by a later write's sync record was synced before that
//! write began: corruption, which refuses to start, naming the file. (A
//! segment without sync records, from before they existed, keeps the
//! older rule: only damage that no valid record follows is cut.)
//!
//! This module knows nothing about MVCC; it only stores what raft hands it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{Entry, HardState, SnapshotMetadata};

/// Segments are preallocated to this size and rotated once full (smaller
/// in unit tests, which create many).
const SEGMENT_BYTES: u64 = if cfg!(test) { 4 << 20 } else { 64 << 20 };
const HEADER_LEN: usize = 9;

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_SNAPSHOT: u8 = 3;
/// Starts every write; its payload is the write's length after it and the
/// record's own offset in the segment (u64 LE each): a copy of one inside a
/// client's value, at another offset, is not taken for one.
const KIND_SYNC: u8 = 4;
const SYNC_PAYLOAD: usize = 16;
/// A sync record's length: header and payload.
const SYNC_LEN: usize = HEADER_LEN + SYNC_PAYLOAD;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("wal: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("wal: file {path} is corrupt at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> WalError {
    let context = context.into();
    move |source| WalError::Io { context, source }
}

/// What replay recovered: the raft state to rebuild memory storage from.
#[derive(Debug, Default)]
pub struct Recovered {
    pub snapshot: SnapshotMetadata,
    pub hard_state: HardState,
    /// Entries after `snapshot.index`, contiguous.
    pub entries: Vec<Entry>,
    /// Number of torn bytes cut from the tail (0 when the log was clean).
    pub truncated_tail: u64,
}

struct Segment {
    seq: u64,
    first_index: u64,
    path: PathBuf,
}

/// The open log: appends go to the newest segment.
pub struct Wal {
    dir: PathBuf,
    segments: Vec<Segment>,
    file: File,
    /// Offset where the next record goes in the newest segment.
    end: u64,
    /// Records waiting for the next `sync`, encoded back to back after room
    /// for the write's sync record (filled in by `sync`).
    pending: Vec<u8>,
    last_snapshot: SnapshotMetadata,
    last_hard_state: HardState,
    /// Index of the next entry raft will append.
    next_index: u64,
    /// The state as of the last completed `sync`: what a new segment's
    /// head may claim. Queued records are not on disk yet, and a head that
    /// named them (a hard state committing entries that a crash then lost,
    /// a first index past the log) would point past the log.
    durable: Durable,
}

#[derive(Clone, Default)]
struct Durable {
    snapshot: SnapshotMetadata,
    hard_state: HardState,
    next_index: u64,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir` and replays it.
    pub fn open(dir: &Path) -> Result<(Wal, Recovered), WalError> {
        super::private::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
        let mut segments = list_segments(dir)?;
        let mut recovered = Recovered::default();
        let count = segments.len();
        let mut end = 0;
        let mut newest_has_sync_records = true;
        for (i, seg) in segments.iter().enumerate() {
            let is_last = i + 1 == count;
            let replayed = replay_segment(&seg.path, is_last, &mut recovered)?;
            end = replayed.end;
            newest_has_sync_records = replayed.synced_writes;
        }
        if let Some(first) = recovered.entries.first() {
            if first.index != recovered.snapshot.index.saturating_add(1) {
                return Err(WalError::Corrupt {
                    path: dir.to_path_buf(),
                    offset: 0,
                    reason: format!(
                        "entries start at index {} but the last snapshot is at {}: segments are missing",
                        first.index, recovered.snapshot.index
                    ),
                });
            }
        }
        if segments.is_empty() {
            let seg = Segment {
                seq: 0,
                first_index: 0,
                path: dir.join(segment_name(0, 0)),
            };
            create_segment(&seg.path)?;
            sync_dir(dir)?;
            segments.push(seg);
        }
        let last = segments.last().expect("at least one segment");
        let mut file = OpenOptions::new()
            .write(true)
            .open(&last.path)
            .map_err(io_err(format!("open {}", last.path.display())))?;
        file.seek(SeekFrom::Start(end))
            .map_err(io_err(format!("seek {}", last.path.display())))?;
        let next_index = recovered
            .entries
            .last()
            .map(|e| e.index.saturating_add(1))
            .unwrap_or(recovered.snapshot.index.saturating_add(1));
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            segments,
            file,
            end,
            pending: sync_placeholder(),
            last_snapshot: recovered.snapshot.clone(),
            last_hard_state: recovered.hard_state.clone(),
            next_index,
            durable: Durable {
                snapshot: recovered.snapshot.clone(),
                hard_state: recovered.hard_state.clone(),
                next_index,
            },
        };
        if end == 0 {
            // A newest segment with nothing in it (a new log, or a crash in
            // a rotation) starts with a head, so that its first write is
            // never its first record: a torn one is then told from damage.
            let path = wal.segments.last().expect("a segment").path.clone();
            let durable = wal.durable.clone();
            wal.end = write_head(&mut wal.file, &path, &durable)?;
        } else if !newest_has_sync_records {
            // written before sync records existed: no more writes there
            wal.rotate()?;
        }
        Ok((wal, recovered))
    }

    /// Queues entries; they are durable after the next `sync`.
    pub fn append_entries(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        for e in entries {
            let bytes = e
                .write_to_bytes()
                .map_err(|e| io_err("encode entry")(io::Error::other(e)))?;
            encode_record(&mut self.pending, KIND_ENTRY, &bytes);
            self.next_index = e.index.saturating_add(1);
        }
        Ok(())
    }

    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<(), WalError> {
        let bytes = hs
            .write_to_bytes()
            .map_err(|e| io_err("encode hard state")(io::Error::other(e)))?;
        encode_record(&mut self.pending, KIND_HARD_STATE, &bytes);
        self.last_hard_state = hs.clone();
        Ok(())
    }

    /// Records that a snapshot covers everything up to `meta.index`, syncs,
    /// starts a new segment and deletes segments that hold only entries at
    /// or below the snapshot. Returns how many segments were deleted.
    pub fn save_snapshot(&mut self, meta: &SnapshotMetadata) -> Result<usize, WalError> {
        let bytes = meta
            .write_to_bytes()
            .map_err(|e| io_err("encode snapshot")(io::Error::other(e)))?;
        encode_record(&mut self.pending, KIND_SNAPSHOT, &bytes);
        self.last_snapshot = meta.clone();
        // a leader's snapshot past this log: the next entry follows it
        self.next_index = self.next_index.max(meta.index.saturating_add(1));
        let started = std::time::Instant::now();
        self.sync()?;
        crate::metrics::disk()
            .snap_fsync_duration
            .observe(started.elapsed().as_secs_f64());
        // A fresh segment lets whole older segments go as soon as the
        // snapshot covers their entries.
        self.rotate()?;
        self.purge(meta.index)
    }

    /// Writes queued records and fdatasyncs them: one fsync per raft Ready.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.pending.len() == SYNC_LEN {
            return Ok(());
        }
        if self.end >= SEGMENT_BYTES {
            self.rotate()?;
        }
        fill_sync_record(&mut self.pending, self.end);
        let path = &self.segments.last().expect("segment").path;
        let disk = crate::metrics::disk();
        let started = std::time::Instant::now();
        crate::failpoint!("raftBeforeSave");
        self.file
            .write_all(&self.pending)
            .map_err(io_err(format!("write {}", path.display())))?;
        crate::failpoint!("walBeforeFsync");
        let written = std::time::Instant::now();
        disk.wal_write_duration
            .observe((written - started).as_secs_f64());
        disk.wal_write_bytes.add(self.pending.len() as i64);
        // (etcd's WAL skips the fsync and its histogram alike)
        if !super::unsafe_no_fsync() {
            self.file
                .sync_data()
                .map_err(io_err(format!("fsync {}", path.display())))?;
            disk.wal_fsync_duration
                .observe(written.elapsed().as_secs_f64());
        }
        crate::failpoint!("raftAfterSave");
        self.end += self.pending.len() as u64;
        self.pending.truncate(SYNC_LEN);
        self.durable = Durable {
            snapshot: self.last_snapshot.clone(),
            hard_state: self.last_hard_state.clone(),
            next_index: self.next_index,
        };
        Ok(())
    }

    /// Number of segment files (for tests and status).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Starts a new segment after the last synced record. Queued records
    /// go into it after its head, in the write that follows.
    fn rotate(&mut self) -> Result<(), WalError> {
        let durable = self.durable.clone();
        let seq = self.segments.last().map(|s| s.seq + 1).unwrap_or(0);
        let seg = Segment {
            seq,
            first_index: durable.next_index,
            path: self.dir.join(segment_name(seq, durable.next_index)),
        };
        let mut file = create_segment(&seg.path)?;
        let len = write_head(&mut file, &seg.path, &durable)?;
        sync_dir(&self.dir)?;
        self.file = file;
        self.end = len;
        self.segments.push(seg);
        Ok(())
    }

    fn purge(&mut self, snapshot_index: u64) -> Result<usize, WalError> {
        // Segment i holds nothing above the snapshot when the segment after
        // it started at or below snapshot_index + 1.
        let mut removable = 0;
        for i in 0..self.segments.len().saturating_sub(1) {
            if self.segments[i + 1].first_index <= snapshot_index.saturating_add(1) {
                removable = i + 1;
            } else {
                break;
            }
        }
        for seg in self.segments.drain(..removable) {
            fs::remove_file(&seg.path).map_err(io_err(format!("remove {}", seg.path.display())))?;
        }
        if removable > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removable)
    }
}

/// Writes a segment's head at its start: a write of its own that carries
/// the state older segments held (so they can be purged), fsynced.
/// Returns its length.
fn write_head(file: &mut File, path: &Path, durable: &Durable) -> Result<u64, WalError> {
    let mut head = sync_placeholder();
    let snap = durable
        .snapshot
        .write_to_bytes()
        .map_err(|e| io_err("encode snapshot")(io::Error::other(e)))?;
    encode_record(&mut head, KIND_SNAPSHOT, &snap);
    let hs = durable
        .hard_state
        .write_to_bytes()
        .map_err(|e| io_err("encode hard state")(io::Error::other(e)))?;
    encode_record(&mut head, KIND_HARD_STATE, &hs);
    fill_sync_record(&mut head, 0);
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.write_all(&head))
        .map_err(io_err(format!("write {}", path.display())))?;
    file.sync_data()
        .map_err(io_err(format!("fsync {}", path.display())))?;
    Ok(head.len() as u64)
}

/// Creates a segment file with its full size allocated up front.
fn create_segment(path: &Path) -> Result<File, WalError> {
    let file = super::private::file_options()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(format!("create {}", path.display())))?;
    nix::fcntl::posix_fallocate(&file, 0, SEGMENT_BYTES as i64)
        .map_err(|e| io_err(format!("preallocate {}", path.display()))(e.into()))?;
    Ok(file)
}

fn segment_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, idx) = stem.split_once('-')?;
    Some((
        u64::from_str_radix(seq, 16).ok()?,
        u64::from_str_radix(idx, 16).ok()?,
    ))
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>, WalError> {
    let mut segments = Vec::new();
    let rd = fs::read_dir(dir).map_err(io_err(format!("read {}", dir.display())))?;
    for entry in rd {
        let entry = entry.map_err(io_err(format!("read {}", dir.display())))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some((seq, first_index)) = parse_segment_name(name) {
            segments.push(Segment {
                seq,
                first_index,
                path: entry.path(),
            });
        }
    }
    segments.sort_by_key(|s| s.seq);
    Ok(segments)
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("fsync directory {}", dir.display())))
}

/// A write buffer that starts with room for its sync record.
fn sync_placeholder() -> Vec<u8> {
    let mut buf = Vec::with_capacity(64 * 1024);
    buf.resize(SYNC_LEN, 0);
    buf
}

/// Writes the sync record at the start of `buf`, a write that goes at
/// `offset` in its segment: the length that follows, and the offset.
fn fill_sync_record(buf: &mut [u8], offset: u64) {
    let len = (buf.len() - SYNC_LEN) as u64;
    buf[..SYNC_LEN].copy_from_slice(&sync_record(len, offset));
}

fn sync_record(len: u64, offset: u64) -> Vec<u8> {
    let mut payload = [0u8; SYNC_PAYLOAD];
    payload[..8].copy_from_slice(&len.to_le_bytes());
    payload[8..].copy_from_slice(&offset.to_le_bytes());
    let mut record = Vec::with_capacity(SYNC_LEN);
    encode_record(&mut record, KIND_SYNC, &payload);
    record
}

/// A sync record at `offset` of `data`: the length of its write.
fn sync_at(data: &[u8], offset: usize) -> Option<usize> {
    let rest = data.get(offset..)?;
    if rest.len() < SYNC_LEN || rest[8] != KIND_SYNC {
        return None; // cheap checks first: this runs at every offset of a scan
    }
    match decode_record(rest) {
        Ok((KIND_SYNC, p, _)) if p.len() == SYNC_PAYLOAD => {
            let len = u64::from_le_bytes(p[..8].try_into().expect("8 bytes"));
            let at = u64::from_le_bytes(p[8..].try_into().expect("8 bytes"));
            (at == offset as u64)
                .then(|| usize::try_from(len).ok())
                .flatten()
        }
        _ => None,
    }
}

fn encode_record(buf: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let mut crc = crc32c::crc32c(&[kind]);
    crc = crc32c::crc32c_append(crc, payload);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(payload);
}

/// What replaying a segment found.
struct Replayed {
    /// Where its written part ends.
    end: u64,
    /// Whether it holds sync records (it was written since they exist).
    synced_writes: bool,
}

/// Replays one segment into `out`.
fn replay_segment(path: &Path, is_last: bool, out: &mut Recovered) -> Result<Replayed, WalError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(io_err(format!("read {}", path.display())))?;
    let corrupt = |offset: usize, reason: String| WalError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let mut pos = 0usize;
    let mut synced_writes = false;
    // the last write seen, by its sync record: where it starts and ends
    let mut write: Option<(usize, usize)> = None;
    while pos < data.len() {
        let rest = &data[pos..];
        let (damage, torn) = if rest.iter().take(HEADER_LEN).all(|&b| b == 0) {
            // The preallocated, never written part, where the log ends...
            if !has_valid_record_after(&data[pos + 1..]) {
                if is_last {
                    // what a torn write left there (no whole record) goes,
                    // so later writes never sit next to stale bytes
                    cut_tail(path, &data, pos, write, out)?;
                }
                return Ok(Replayed {
                    end: pos as u64,
                    synced_writes,
                });
            }
            // ...unless records follow: a hole of zeros
            ("a hole of zeros before valid records".to_string(), true)
        } else {
            match decode_record(rest) {
                Ok((KIND_SYNC, _, len)) => {
                    let Some(body) = sync_at(&data, pos) else {
                        // a sync record that names another offset is a
                        // copy (inside a value), never written as one
                        return Err(corrupt(pos, "a sync record out of place".into()));
                    };
                    synced_writes = true;
                    write = Some((pos, (pos + len).saturating_add(body)));
                    pos += len;
                    continue;
                }
                Ok((kind, payload, len)) => {
                    apply_record(kind, payload, out).map_err(|r| corrupt(pos, r))?;
                    pos += len;
                    continue;
                }
                Err(reason) => {
                    let torn = looks_torn(&data, pos, write.map(|(_, end)| end));
                    (reason, torn)
                }
            }
        };
        // Damage. Only the unacknowledged last write, in the newest
        // segment, may be cut, and only when it looks like a write that did
        // not land whole (etcd's isTornEntry: a sector of zeros, or the
        // file ends inside it); anything else is real corruption.
        let last_write = match write {
            // inside a write whose extent is known: a later write starts at
            // its end (or after it, if that one is damaged too)
            Some((_, end)) if pos < end => !has_sync_record_from(&data, end),
            _ if synced_writes => !has_sync_record_from(&data, pos + 1),
            _ => !has_valid_record_after(&data[pos + 1..]),
        };
        if is_last && last_write && torn {
            cut_tail(path, &data, pos, write, out)?;
            return Ok(Replayed {
                end: pos as u64,
                synced_writes,
            });
        }
        return Err(corrupt(pos, damage));
    }
    Ok(Replayed {
        end: pos as u64,
        synced_writes,
    })
}

/// Cuts the newest segment at `pos`: zeros from there to the last byte
/// ever written, and, when `pos` lies inside the write that `write` began,
/// that write's sync record shortened to what is kept (so that its old
/// length never spans the writes that come next).
fn cut_tail(
    path: &Path,
    data: &[u8],
    pos: usize,
    write: Option<(usize, usize)>,
    out: &mut Recovered,
) -> Result<(), WalError> {
    let written = data.iter().rposition(|&b| b != 0).map_or(pos, |p| p + 1);
    if written <= pos {
        return Ok(());
    }
    zero_range(path, pos as u64, written - pos)?;
    out.truncated_tail += (written - pos) as u64;
    if let Some((start, end)) = write {
        if start + SYNC_LEN <= pos && pos < end {
            let kept = (pos - start - SYNC_LEN) as u64;
            write_at(path, start as u64, &sync_record(kept, start as u64))?;
        }
    }
    Ok(())
}

/// Disks write whole sectors; a write cut short leaves sectors that never
/// landed, zeros in a preallocated segment.
const SECTOR: usize = 512;

/// Whether the damaged record at `pos` looks like part of a write that did
/// not land: the file ends inside it, or a piece of it between sector
/// boundaries is all zeros (etcd's isTornEntry). A flipped bit does not.
/// With the write's end known (`write_end`), a record claiming to reach
/// past it is damage (a torn write only turns bytes to zeros, which never
/// lengthens a record), and each sector is judged by all of the write that
/// falls in it, not just the record's part.
fn looks_torn(data: &[u8], pos: usize, write_end: Option<usize>) -> bool {
    let Some(header) = data.get(pos..pos + HEADER_LEN) else {
        return true; // the file ends inside the header
    };
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
    let record_end = pos.saturating_add(HEADER_LEN).saturating_add(len);
    let end = match write_end {
        Some(w) if pos < w => {
            if record_end > w {
                return false;
            }
            w
        }
        _ => record_end,
    };
    if end > data.len() {
        return true;
    }
    let mut start = pos;
    while start < end {
        let stop = (((start / SECTOR) + 1) * SECTOR).min(end);
        if data[start..stop].iter().all(|&b| b == 0) {
            return true;
        }
        start = stop;
    }
    false
}

/// Decodes one record; returns (kind, payload, total length).
fn decode_record(buf: &[u8]) -> Result<(u8, &[u8], usize), String> {
    if buf.len() < HEADER_LEN {
        return Err("truncated record header".into());
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let kind = buf[8];
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Err(format!("truncated record: want {len} bytes"));
    };
    let actual = crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload);
    if actual != crc {
        return Err(format!(
            "checksum mismatch (stored {crc:08x}, computed {actual:08x})"
        ));
    }
    Ok((kind, payload, HEADER_LEN + len))
}

/// Whether any complete, checksummed record starts somewhere in `buf`; used
/// to tell a torn tail (nothing valid follows) from damage in the middle.
fn has_valid_record_after(buf: &[u8]) -> bool {
    // A record holds a non-zero checksum, so it starts before the last
    // non-zero byte: no need to scan a long preallocated tail.
    let Some(last) = buf.iter().rposition(|&b| b != 0) else {
        return false;
    };
    (0..=last).any(|i| {
        // cheap checks first: this runs at every offset
        buf.get(i + 8)
            .is_some_and(|k| (KIND_ENTRY..=KIND_SYNC).contains(k))
            && matches!(decode_record(&buf[i..]), Ok((_, p, _)) if !p.is_empty())
    })
}

/// Whether a write's sync record (one that names its own offset) starts
/// at `from` or after it.
fn has_sync_record_from(data: &[u8], from: usize) -> bool {
    let Some(last) = data.iter().rposition(|&b| b != 0) else {
        return false;
    };
    (from..=last).any(|i| sync_at(data, i).is_some())
}

fn apply_record(kind: u8, payload: &[u8], out: &mut Recovered) -> Result<(), String> {
    match kind {
        KIND_SYNC => {}
        KIND_ENTRY => {
            let e = Entry::parse_from_bytes(payload).map_err(|e| format!("bad entry: {e}"))?;
            if e.index <= out.snapshot.index {
                return Ok(());
            }
            let first = out.entries.first().map(|f| f.index).unwrap_or(e.index);
            let next = first.saturating_add(out.entries.len() as u64);
            if e.index > next || e.index < first {
                // A gap: only legal when the entries before it were purged
                // under a snapshot recorded later in this segment; `open`
                // checks that the final log joins its snapshot.
                out.entries.clear();
                out.entries.push(e);
                return Ok(());
            }
            out.entries.truncate((e.index - first) as usize);
            out.entries.push(e);
        }
        KIND_HARD_STATE => {
            out.hard_state =
                HardState::parse_from_bytes(payload).map_err(|e| format!("bad hard state: {e}"))?;
        }
        KIND_SNAPSHOT => {
            let meta = SnapshotMetadata::parse_from_bytes(payload)
                .map_err(|e| format!("bad snapshot marker: {e}"))?;
            if meta.index >= out.snapshot.index {
                out.entries.retain(|e| e.index > meta.index);
                if out
                    .entries
                    .first()
                    .is_some_and(|f| f.index != meta.index.saturating_add(1))
                {
                    out.entries.clear();
                }
                out.snapshot = meta;
            }
        }
        other => return Err(format!("unknown record kind {other}")),
    }
    Ok(())
}

/// Overwrites `bytes` at `offset` of `path`, fsynced.
fn write_at(path: &Path, offset: u64, bytes: &[u8]) -> Result<(), WalError> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(format!("open {}", path.display())))?;
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.write_all(bytes))
        .and_then(|_| f.sync_data())
        .map_err(io_err(format!("repair {}", path.display())))
}

/// Overwrites a torn tail with zeros (keeping the preallocated size).
fn zero_range(path: &Path, offset: u64, len: usize) -> Result<(), WalError> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(format!("open {}", path.display())))?;
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.write_all(&vec![0u8; len]))
        .and_then(|_| f.sync_data())
        .map_err(io_err(format!("cut torn tail of {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    #[test]
    fn replays_entries_hard_state_and_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, rec) = Wal::open(dir.path()).unwrap();
            assert!(rec.entries.is_empty());
            wal.append_entries(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")])
                .unwrap();
            let hs = HardState {
                term: 1,
                commit: 2,
                ..Default::default()
            };
            wal.set_hard_state(&hs).unwrap();
            wal.sync().unwrap();
            // raft overwrites index 3 and beyond after a leader change
            wal.append_entries(&[entry(3, 2, b"C"), entry(4, 2, b"d")])
                .unwrap();
            wal.sync().unwrap();
        }
        let (_wal, rec) = Wal::open(dir.path()).unwrap();
        let got: Vec<(u64, u64)> = rec.entries.iter().map(|e| (e.index, e.term)).collect();
        assert_eq!(got, vec![(1, 1), (2, 1), (3, 2), (4, 2)]);
        assert_eq!(rec.hard_state.commit, 2);
    }

    #[test]
    fn torn_tail_is_cut_but_middle_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            // the second record spans a sector boundary
            wal.append_entries(&[entry(1, 1, b"aaaa"), entry(2, 1, &[b'b'; 1000])])
                .unwrap();
            wal.sync().unwrap();
        }
        let seg = fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let full = fs::read(&seg).unwrap();
        assert_eq!(
            full.len() as u64,
            SEGMENT_BYTES,
            "segments are preallocated"
        );
        let end = full.iter().rposition(|&b| b != 0).unwrap() + 1;
        // torn inside the preallocated file: the last record's final
        // sector never landed (zeros from its last sector boundary on)
        let mut torn = full.clone();
        torn[((end - 1) / SECTOR) * SECTOR..end].fill(0);
        fs::write(&seg, &torn).unwrap();
        let (_w, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.entries.len(), 1);
        assert!(rec.truncated_tail > 0);
        drop(_w);
        // torn at the end of a shorter file (the write extended the file)
        fs::write(&seg, &full[..end - 2]).unwrap();
        let (mut w, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.entries.len(), 1);
        // appending after the repair continues the log cleanly
        w.append_entries(&[entry(2, 2, b"cc")]).unwrap();
        w.sync().unwrap();
        drop(w);
        let (_w, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.entries.len(), 2);
        assert_eq!(rec.entries[1].term, 2);
        // damage in the first record, a valid one after it: refuse, name the file
        let mut bad = full.clone();
        bad[HEADER_LEN + 2] ^= 0xff;
        fs::write(&seg, &bad).unwrap();
        let err = Wal::open(dir.path()).err().expect("must refuse");
        let msg = err.to_string();
        assert!(msg.contains(&seg.display().to_string()), "{msg}");
        assert!(msg.contains("checksum mismatch"), "{msg}");
    }

    /// The only segment of `dir`, read whole.
    fn only_segment(dir: &Path) -> (PathBuf, Vec<u8>) {
        let seg = fs::read_dir(dir).unwrap().next().unwrap().unwrap().path();
        let data = fs::read(&seg).unwrap();
        (seg, data)
    }

    /// A torn last write may leave later pages on disk without an earlier
    /// one (the disk wrote them out of order, then power failed): zeros,
    /// then valid records. No later write began (that waits for this one's
    /// fsync), so no sync record follows: the write is cut where the damage
    /// starts. The same hole in a write that another write followed was
    /// synced: refused.
    #[test]
    fn a_torn_last_write_with_a_hole_is_cut_but_a_hole_before_a_later_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let page = vec![5u8; 3000];
        let second_start;
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            wal.append_entries(&[entry(1, 1, b"one"), entry(2, 1, b"two")])
                .unwrap();
            wal.sync().unwrap();
            second_start = wal.end as usize;
            let batch: Vec<Entry> = (3..=10).map(|i| entry(i, 1, &page)).collect();
            wal.append_entries(&batch).unwrap();
            wal.sync().unwrap();
        }
        let (seg, full) = only_segment(dir.path());
        let end = full.iter().rposition(|&b| b != 0).unwrap() + 1;
        // a 4 KiB page in the middle of the second write never landed
        let hole = second_start + 3 * 4096 - second_start % 4096;
        assert!(hole + 4096 + 3100 < end, "valid records follow the hole");
        let mut torn = full.clone();
        torn[hole..hole + 4096].fill(0);
        fs::write(&seg, &torn).unwrap();
        let (w, rec) = Wal::open(dir.path()).unwrap();
        let kept: Vec<u64> = rec.entries.iter().map(|e| e.index).collect();
        assert!(kept.len() >= 2 && kept.len() < 10, "{kept:?}");
        assert_eq!(kept, (1..=kept.len() as u64).collect::<Vec<_>>());
        assert!(rec.truncated_tail > 0);
        drop(w);
        // the repair is on disk: the next open is clean
        let (_w, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.entries.len(), kept.len());
        assert_eq!(rec.truncated_tail, 0);
        drop(_w);

        // the second write's first page (with its sync record) is missing
        let mut torn = full.clone();
        torn[second_start..second_start + 4096].fill(0);
        fs::write(&seg, &torn).unwrap();
        let (_w, rec) = Wal::open(dir.path()).unwrap();
        let kept: Vec<u64> = rec.entries.iter().map(|e| e.index).collect();
        assert_eq!(kept, vec![1, 2], "the first write was synced and stays");
        drop(_w);

        // a flipped bit in the last write (it may have been synced and
        // acknowledged): refused, not cut
        let mut flipped = full.clone();
        flipped[end - 100] ^= 0x01;
        fs::write(&seg, &flipped).unwrap();
        let err = Wal::open(dir.path()).err().expect("must refuse");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");

        // a hole in the first write, which the second followed: refused
        let mut bad = full.clone();
        bad[SYNC_LEN + 4..SYNC_LEN + 20].fill(0);
        fs::write(&seg, &bad).unwrap();
        let err = Wal::open(dir.path()).err().expect("must refuse");
        assert!(err.to_string().contains("corrupt"), "{err}");
    }

    /// The repairs around a torn last write: a sync record copied into a
    /// value (at another offset) is not taken for a later write; bytes a
    /// torn write left after the end of the log are zeroed; the cut write's
    /// sync record is shortened to what was kept; a record whose length
    /// reaches past its write (a flipped bit, not a tear) is refused.
    #[test]
    fn torn_write_repairs_and_what_is_not_a_tear() {
        let dir = tempfile::tempdir().unwrap();
        let page = vec![5u8; 3000];
        let (first_end, second_start);
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            wal.append_entries(&[entry(1, 1, b"one")]).unwrap();
            wal.sync().unwrap();
            first_end = wal.end as usize;
            second_start = first_end;
            // a value holding a well-formed sync record (naming offset 7)
            let fake = sync_record(1 << 20, 7);
            let mut batch = vec![entry(2, 1, &fake)];
            batch.extend((3..=6).map(|i| entry(i, 1, &page)));
            wal.append_entries(&batch).unwrap();
            wal.sync().unwrap();
        }
        let (seg, full) = only_segment(dir.path());
        let end = full.iter().rposition(|&b| b != 0).unwrap() + 1;

        // the second write's first sector (its sync record, the fake) lost:
        // cut at the write boundary, the fake notwithstanding
        let mut torn = full.clone();
        let sector = (second_start / SECTOR) * SECTOR;
        torn[second_start..sector + SECTOR].fill(0);
        fs::write(&seg, &torn).unwrap();
        let (w, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.entries.len(), 1);
        assert!(rec.truncated_tail > 0, "the later sectors were zeroed");
        drop(w);
        let after = fs::read(&seg).unwrap();
        assert!(
            after[first_end..end].iter().all(|&b| b == 0),
            "nothing stale is left"
        );

        // a sector in the middle of the second write lost: cut there, and
        // its sync record now names only what was kept
        let mut torn = full.clone();
        let hole = second_start + 2 * SECTOR - second_start % SECTOR + SECTOR;
        torn[hole..hole + SECTOR].fill(0);
        fs::write(&seg, &torn).unwrap();
        let (w, rec) = Wal::open(dir.path()).unwrap();
        let kept_end = w.end as usize;
        assert!(rec.entries.len() > 1 && rec.entries.len() < 6);
        drop(w);
        let after = fs::read(&seg).unwrap();
        let kept = sync_at(&after, second_start).expect("the sync record");
        assert_eq!(second_start + SYNC_LEN + kept, kept_end);

        // a bit flip making the last record reach past its write: damage
        let mut bad = full.clone();
        let last = end - (HEADER_LEN + entry(6, 1, &page).compute_size() as usize);
        bad[last + 2] ^= 0x40;
        fs::write(&seg, &bad).unwrap();
        let err = Wal::open(dir.path()).err().expect("must refuse");
        assert!(err.to_string().contains("corrupt"), "{err}");
    }

    /// A segment written before sync records existed keeps the old rule:
    /// only damage that no valid record follows is cut.
    #[test]
    fn a_segment_without_sync_records_refuses_a_hole_before_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_name(0, 0));
        let mut data = Vec::new();
        for i in 1..=3 {
            // each record spans a sector boundary
            let e = entry(i, 1, &[1u8; 600]).write_to_bytes().unwrap();
            encode_record(&mut data, KIND_ENTRY, &e);
        }
        let record = data.len() / 3;
        data.resize(SEGMENT_BYTES as usize, 0);
        // the second record's header is zeros, the third is intact
        let mut holed = data.clone();
        holed[record..record + HEADER_LEN].fill(0);
        fs::write(&path, &holed).unwrap();
        let err = Wal::open(dir.path()).err().expect("must refuse");
        assert!(err.to_string().contains("a hole of zeros"), "{err}");
        // a flipped bit in the last record is damage, not a torn write
        let mut flipped = data.clone();
        flipped[2 * record + HEADER_LEN + 3] ^= 0xff;
        fs::write(&path, &flipped).unwrap();
        let err = Wal::open(dir.path()).err().expect("must refuse");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        // a last record whose final sector never landed is cut
        let mut torn = data.clone();
        let end = 3 * record;
        torn[((end - 1) / SECTOR) * SECTOR..end].fill(0);
        fs::write(&path, &torn).unwrap();
        let (w, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.entries.len(), 2);
        // and the segment takes no more writes: a new one with sync records
        assert_eq!(w.segment_count(), 2);
    }

    #[test]
    fn snapshot_purges_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        let big = vec![7u8; 1024 * 1024];
        for i in 1..=10 {
            wal.append_entries(&[entry(i, 1, &big)]).unwrap();
            wal.sync().unwrap();
        }
        assert!(wal.segment_count() >= 2);
        let meta = SnapshotMetadata {
            index: 9,
            term: 1,
            ..Default::default()
        };
        let removed = wal.save_snapshot(&meta).unwrap();
        assert!(removed >= 1);
        drop(wal);
        let (_w, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.snapshot.index, 9);
        assert_eq!(
            rec.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![10]
        );
    }

    /// The records at the start of `path` (a segment's head).
    fn head_records(path: &Path) -> (SnapshotMetadata, HardState) {
        let data = fs::read(path).unwrap();
        let (k0, _, n0) = decode_record(&data).unwrap();
        assert_eq!(k0, KIND_SYNC, "a head is a write of its own");
        let data = &data[n0..];
        let (k1, p1, n1) = decode_record(data).unwrap();
        let (k2, p2, _) = decode_record(&data[n1..]).unwrap();
        assert_eq!((k1, k2), (KIND_SNAPSHOT, KIND_HARD_STATE));
        (
            SnapshotMetadata::parse_from_bytes(p1).unwrap(),
            HardState::parse_from_bytes(p2).unwrap(),
        )
    }

    /// A segment that fills up is rotated by the next sync, before that
    /// sync's records are written. The new segment's head and name must
    /// describe the log as synced so far, not the records about to be
    /// written: a crash between the head and those records would leave a
    /// hard state committing entries that are not on disk.
    #[test]
    fn a_rotation_names_only_what_was_synced() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        let big = vec![7u8; 1024 * 1024];
        let mut index = 0;
        while wal.segment_count() == 1 {
            index += 1;
            wal.append_entries(&[entry(index, 1, &big)]).unwrap();
            wal.set_hard_state(&HardState {
                term: 1,
                commit: index,
                ..Default::default()
            })
            .unwrap();
            wal.sync().unwrap();
        }
        // the sync of `index` rotated: its records follow the new head
        let newest = &wal.segments.last().unwrap().path;
        let (_, hs) = head_records(newest);
        assert_eq!(hs.commit, index - 1, "the head commits what was not synced");
        assert_eq!(wal.segments.last().unwrap().first_index, index);
        drop(wal);
        let (_w, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(rec.entries.last().map(|e| e.index), Some(index));
        assert_eq!(rec.hard_state.commit, index);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Whatever sequence of appends (with overwrites) raft makes, replay
        /// yields the same log as an in-memory model.
        #[test]
        fn replay_matches_model(ops in proptest::collection::vec((0u64..6, 1usize..4), 1..30)) {
            let dir = tempfile::tempdir().unwrap();
            let mut model: Vec<Entry> = Vec::new();
            {
                let (mut wal, _) = Wal::open(dir.path()).unwrap();
                for (term, (back, n)) in (2u64..).zip(ops) {
                    let next = model.len() as u64 + 1;
                    let start = next.saturating_sub(back).max(1);
                    let batch: Vec<Entry> = (0..n as u64).map(|k| entry(start + k, term, &[k as u8])).collect();
                    model.truncate((start - 1) as usize);
                    model.extend(batch.iter().cloned());
                    wal.append_entries(&batch).unwrap();
                    wal.sync().unwrap();
                }
            }
            let (_w, rec) = Wal::open(dir.path()).unwrap();
            prop_assert_eq!(rec.entries, model);
        }
    }
}
