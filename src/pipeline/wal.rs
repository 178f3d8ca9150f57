//! The spool's write-ahead log: what makes an acknowledged instance durable.
//!
//! A new file plus a rename needs a file fsync and a folder fsync, each of
//! which writes metadata (with a journal: a journal commit that also flushes
//! what the workers wrote meanwhile), and the file churn itself costs inode
//! allocation and deletion: about 2 ms per instance under load, paid while
//! the sender waits for its response. Appending to a segment whose blocks
//! were written (zero-filled) and fsync'd beforehand needs only `fdatasync`
//! of the new bytes: no metadata changes (0.7 ms under the same load).
//!
//! Segments are `wal/<seq>.seg`, 16 MiB, zero-filled by a background thread
//! one step ahead. A record is (little-endian)
//!
//! ```text
//! "DGW2" | id length u16 | payload length u32 | payload CRC-32 | header CRC-32 | id | payload
//! ```
//!
//! where the header CRC covers the 14 bytes before it and the id. Segments
//! written before this format (`"DGW1" | id length | payload length | CRC-32
//! of id and payload | id | payload`, no header CRC) are still replayed, so
//! a gateway upgraded with a live log loses nothing; new records are DGW2.
//!
//! Replay reads each segment whole and never stops at a bad record: it
//! resynchronises at the next offset where a record with a known magic and
//! valid CRCs parses (the header CRC means a damaged length is never
//! followed, and a damaged payload under an intact header still names its
//! record and extent). Bad bytes with no intact record after them are a torn
//! tail: the append that wrote them never returned, so they were never
//! acknowledged and are dropped (an INFO line); zero-filled space after the
//! last record is the normal end. Bad bytes *followed* by an intact record
//! are damage to acknowledged data: every intact record is still replayed,
//! the damaged regions are logged at ERROR, counted on `/metrics` and the
//! status page, and the segment is copied once, with a report of the
//! regions, to `wal/damaged/<seq>.seg` and `<seq>.txt` before it can be
//! deleted. (A damaged last record cannot be told from a torn one.)
//!
//! When the pipeline has made an instance's outputs durable it marks the
//! record done in sled (flushed with the key store); a sealed segment whose
//! records are all done is deleted. Workers read a record back from its
//! segment (usually from the page cache), so the job state of a received
//! instance lives in the log and sled only.

use anyhow::{Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Segment size; records larger than this do not use the log.
pub const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// The record format written now (with a header CRC).
const MAGIC: [u8; 4] = *b"DGW2";
const HEADER: usize = 4 + 2 + 4 + 4 + 4;
/// The first format, still replayed (a log written before the upgrade).
const MAGIC_V1: [u8; 4] = *b"DGW1";
const HEADER_V1: usize = 4 + 2 + 4 + 4;
const DONE_TREE: &str = "spool_done";
/// Where copies of damaged segments are kept, inside the log's folder.
const DAMAGED_DIR: &str = "damaged";

/// A record in a segment file.
#[derive(Debug)]
struct Record {
    id: String,
    /// Where the payload starts, and its length.
    offset: u64,
    len: usize,
}

/// Bytes of a segment that hold no intact record.
#[derive(Debug, PartialEq)]
struct Region {
    offset: u64,
    len: u64,
    /// The record's id when its header was intact (only its payload is bad).
    id: Option<String>,
}

/// What replay found in a segment.
#[derive(Debug, Default)]
struct Scan {
    /// The intact records, in order.
    records: Vec<Record>,
    /// Regions with an intact record after them: acknowledged data lost.
    damaged: Vec<Region>,
    /// Non-zero bytes after the last intact record: a torn append.
    tail: Option<Region>,
}

/// One attempt to parse a record at an offset.
enum Parsed {
    /// A whole record; the next one starts at `end`.
    Intact(Record, usize),
    /// A verified header whose payload is bad or cut off at `end`.
    BadPayload(String, usize),
    /// No record starts here.
    NoRecord,
}

/// The log: one active segment, the sealed ones still holding live records.
pub struct Wal {
    dir: PathBuf,
    done: sled::Tree,
    active: Mutex<Active>,
    live: Mutex<Live>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for Wal {
    /// A segment still being prepared is finished first, so a reopened log
    /// never races with it.
    fn drop(&mut self) {
        if let Ok(mut a) = self.active.lock() {
            if let Some(h) = a.next.take() {
                let _ = h.join();
            }
        }
    }
}

struct Active {
    seq: u64,
    file: Arc<File>,
    offset: u64,
    /// The next segment, being zero-filled in the background.
    next: Option<JoinHandle<std::io::Result<File>>>,
}

/// Where each record not yet done is, and how many each segment holds.
#[derive(Default)]
struct Live {
    records: HashMap<String, Location>,
    segments: BTreeMap<u64, Segment>,
}

impl Live {
    /// The gauge on `/metrics` and the status page.
    fn publish(&self) {
        let n = self.records.len() as i64;
        crate::metrics::METRICS
            .spool_logged
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }
}

#[derive(Clone, Copy)]
struct Location {
    seq: u64,
    offset: u64,
    len: usize,
}

struct Segment {
    file: Arc<File>,
    live: usize,
    /// Damaged, and no copy could be kept: never deleted by this process.
    pinned: bool,
}

impl Wal {
    /// Open `dir` (creating it), find the records not done (returned in
    /// log order), delete the segments whose records are all done, and start
    /// a fresh segment. Damaged segments are reported and kept aside (see
    /// the module documentation).
    pub fn open(dir: &Path, db: &sled::Db) -> Result<(Wal, Vec<String>)> {
        crate::runtime::create_private_dir(dir)?;
        let done = db
            .open_tree(DONE_TREE)
            .context("cannot open the spool log tree")?;
        let mut live = Live::default();
        let mut ids = Vec::new();
        let mut last = 0;
        for seq in segments(dir)? {
            last = seq;
            let path = segment_path(dir, seq);
            let (records, pinned) = replay_segment(dir, seq, &done)?;
            let mut count = 0;
            for rec in records {
                if done.contains_key(done_key(seq, &rec.id))? {
                    continue;
                }
                let at = Location {
                    seq,
                    offset: rec.offset,
                    len: rec.len,
                };
                live.records.insert(rec.id.clone(), at);
                ids.push(rec.id);
                count += 1;
            }
            if count > 0 {
                let file = Arc::new(File::open(&path)?);
                let seg = Segment {
                    file,
                    live: count,
                    pinned,
                };
                live.segments.insert(seq, seg);
            } else if !pinned {
                retire(dir, &done, seq)?;
            }
        }
        publish_damaged_segments(dir);
        let seq = last + 1;
        let file = prepare(&segment_path(dir, seq))?;
        sync_dir(dir)?;
        let next = Some(prepare_in_background(segment_path(dir, seq + 1)));
        let wal = Wal {
            dir: dir.to_path_buf(),
            done,
            active: Mutex::new(Active {
                seq,
                file: Arc::new(file),
                offset: 0,
                next,
            }),
            live: Mutex::new(live),
        };
        wal.live.lock().expect("wal live lock").publish();
        Ok((wal, ids))
    }

    /// Whether a payload of `len` bytes fits a segment.
    pub fn fits(len: usize, id: &str) -> bool {
        (HEADER + id.len() + len) as u64 <= SEGMENT_BYTES
    }

    /// Append a record and make it durable (`fdatasync`).
    pub fn append(&self, id: &str, payload: &[u8]) -> std::io::Result<()> {
        let rec = encode(id, payload)?;
        let mut a = self.active.lock().expect("wal lock");
        if a.offset + rec.len() as u64 > SEGMENT_BYTES {
            self.rotate(&mut a)?;
        }
        a.file.write_all_at(&rec, a.offset)?;
        let t = std::time::Instant::now();
        a.file.sync_data()?;
        let m = &crate::metrics::METRICS;
        crate::metrics::inc(&m.spool_syncs);
        m.spool_sync_micros.fetch_add(
            t.elapsed().as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let at = Location {
            seq: a.seq,
            offset: a.offset + (HEADER + id.len()) as u64,
            len: payload.len(),
        };
        a.offset += rec.len() as u64;
        // Counted before the active lock is released, so `forget` never sees
        // this segment empty while it holds the record.
        let mut live = self.live.lock().expect("wal live lock");
        live.records.insert(id.to_string(), at);
        let file = a.file.clone();
        live.segments
            .entry(a.seq)
            .or_insert(Segment {
                file,
                live: 0,
                pinned: false,
            })
            .live += 1;
        live.publish();
        Ok(())
    }

    /// The payload of a record not yet done; `None` when the log has no
    /// such record (not logged, or already done).
    pub fn read(&self, id: &str) -> std::io::Result<Option<Vec<u8>>> {
        let (at, file) = {
            let live = self.live.lock().expect("wal live lock");
            let Some(at) = live.records.get(id).copied() else {
                return Ok(None);
            };
            (at, live.segments[&at.seq].file.clone())
        };
        let mut buf = vec![0u8; at.len];
        file.read_exact_at(&mut buf, at.offset)?;
        Ok(Some(buf))
    }

    /// Seal the active segment and continue in the prepared one.
    fn rotate(&self, a: &mut Active) -> std::io::Result<()> {
        let seq = a.seq + 1;
        let file = match a.next.take().map(|h| h.join()) {
            Some(Ok(Ok(f))) => Arc::new(f),
            Some(Ok(Err(e))) => return Err(e),
            _ => Arc::new(prepare(&segment_path(&self.dir, seq))?),
        };
        sync_dir(&self.dir)?;
        *a = Active {
            seq,
            file,
            offset: 0,
            next: Some(prepare_in_background(segment_path(&self.dir, seq + 1))),
        };
        Ok(())
    }

    /// Record in sled that these ids are done. Not flushed here: the caller
    /// flushes the database after the outputs are durable.
    pub fn mark_done(&self, ids: &[String]) -> Result<()> {
        let live = self.live.lock().expect("wal live lock");
        for id in ids {
            if let Some(at) = live.records.get(id) {
                self.done.insert(done_key(at.seq, id), &[])?;
            }
        }
        Ok(())
    }

    /// After the done marks are flushed: forget these records and delete
    /// the sealed segments with no record left.
    pub fn forget(&self, ids: &[String]) -> Result<()> {
        let mut empty = Vec::new();
        {
            // Lock order: active, then live (as in `append`).
            let a = self.active.lock().expect("wal lock");
            let mut live = self.live.lock().expect("wal live lock");
            for id in ids {
                if let Some(at) = live.records.remove(id) {
                    if let Some(seg) = live.segments.get_mut(&at.seq) {
                        seg.live -= 1;
                    }
                }
            }
            // Includes segments emptied while they were still active.
            empty.extend(
                live.segments
                    .iter()
                    .filter(|(s, seg)| seg.live == 0 && **s != a.seq && !seg.pinned)
                    .map(|(s, _)| *s),
            );
            for s in &empty {
                live.segments.remove(s);
            }
            live.publish();
        }
        for seq in empty {
            retire(&self.dir, &self.done, seq)?;
        }
        Ok(())
    }

    /// Flush the done marks now (otherwise the key store's flush does).
    pub fn flush(&self) -> Result<()> {
        self.done
            .flush()
            .context("cannot flush the spool log marks")?;
        Ok(())
    }

    /// Whether `id` is a record not yet forgotten: its done mark may not be
    /// durable yet, so a crash would replay it.
    pub fn is_live(&self, id: &str) -> bool {
        self.live
            .lock()
            .expect("wal live lock")
            .records
            .contains_key(id)
    }

    /// Ids of the records not yet done.
    pub fn live_ids(&self) -> Vec<String> {
        let live = self.live.lock().expect("wal live lock");
        live.records.keys().cloned().collect()
    }

    /// Records not yet done (for the status page and tests).
    pub fn live(&self) -> usize {
        self.live.lock().expect("wal live lock").records.len()
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.seg"))
}

fn done_key(seq: u64, id: &str) -> Vec<u8> {
    format!("{seq:016}/{id}").into_bytes()
}

/// Segment numbers in `dir`, ascending (temp files of a killed preparer
/// are removed).
fn segments(dir: &Path) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = name.strip_suffix(".seg").and_then(|s| s.parse().ok()) {
            out.push(seq);
        } else if name.ends_with(".tmp") {
            std::fs::remove_file(dir.join(name.as_ref())).ok();
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Delete a segment, make that durable, then drop its done marks.
fn retire(dir: &Path, done: &sled::Tree, seq: u64) -> Result<()> {
    let path = segment_path(dir, seq);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot delete {}", path.display())),
    }
    sync_dir(dir)?;
    let prefix = format!("{seq:016}/");
    for key in done.scan_prefix(prefix.as_bytes()).keys() {
        done.remove(key?)?;
    }
    Ok(())
}

/// A DGW2 record. The header has its own CRC so that replay, resuming after
/// damage, never trusts a length it cannot verify, and so that a record
/// whose payload alone is damaged still names its id and extent.
fn encode(id: &str, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let too_big = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "record too large");
    let id_len = u16::try_from(id.len()).map_err(|_| too_big())?;
    let len = u32::try_from(payload.len()).map_err(|_| too_big())?;
    let mut rec = Vec::with_capacity(HEADER + id.len() + payload.len());
    rec.extend_from_slice(&MAGIC);
    rec.extend_from_slice(&id_len.to_le_bytes());
    rec.extend_from_slice(&len.to_le_bytes());
    rec.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    rec.extend_from_slice(&head_crc(&rec, id.as_bytes()).to_le_bytes());
    rec.extend_from_slice(id.as_bytes());
    rec.extend_from_slice(payload);
    Ok(rec)
}

/// The DGW2 header CRC: the fixed fields before it and the id.
fn head_crc(fixed: &[u8], id: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&fixed[..HEADER - 4]);
    crc.update(id);
    crc.finalize()
}

fn le_u16(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The record that starts at `at`, in either format.
fn parse_at(data: &[u8], at: usize) -> Parsed {
    match data.get(at..at + 4) {
        Some(m) if m == MAGIC => parse_v2(data, at),
        Some(m) if m == MAGIC_V1 => parse_v1(data, at),
        _ => Parsed::NoRecord,
    }
}

/// A DGW2 record: the header CRC is checked before any length is used.
fn parse_v2(data: &[u8], at: usize) -> Parsed {
    let Some(head) = data.get(at..at + HEADER) else {
        return Parsed::NoRecord;
    };
    let (id_len, len) = (le_u16(head, 4), le_u32(head, 6) as usize);
    let id_at = at + HEADER;
    let Some(id) = data.get(id_at..id_at + id_len) else {
        return Parsed::NoRecord;
    };
    if head_crc(head, id) != le_u32(head, 14) {
        return Parsed::NoRecord;
    }
    let Ok(id) = String::from_utf8(id.to_vec()) else {
        return Parsed::NoRecord;
    };
    let start = id_at + id_len;
    let end = start + len;
    match data.get(start..end) {
        Some(p) if crc32fast::hash(p) == le_u32(head, 10) => {
            let rec = Record {
                id,
                offset: start as u64,
                len,
            };
            Parsed::Intact(rec, end)
        }
        _ => Parsed::BadPayload(id, end.min(data.len())),
    }
}

/// A DGW1 record: one CRC over id and payload, so a bad record says nothing
/// about its id or extent.
fn parse_v1(data: &[u8], at: usize) -> Parsed {
    let Some(head) = data.get(at..at + HEADER_V1) else {
        return Parsed::NoRecord;
    };
    let (id_len, len) = (le_u16(head, 4), le_u32(head, 6) as usize);
    let start = at + HEADER_V1;
    let end = start + id_len + len;
    let Some(body) = data.get(start..end) else {
        return Parsed::NoRecord;
    };
    if crc32fast::hash(body) != le_u32(head, 10) {
        return Parsed::NoRecord;
    }
    let Ok(id) = String::from_utf8(body[..id_len].to_vec()) else {
        return Parsed::NoRecord;
    };
    let rec = Record {
        id,
        offset: (start + id_len) as u64,
        len,
    };
    Parsed::Intact(rec, end)
}

/// Where the next record might start after `from` (a magic of either format).
fn next_magic(data: &[u8], from: usize) -> Option<usize> {
    let rest = data.get(from..)?;
    rest.windows(4)
        .position(|w| w == MAGIC || w == MAGIC_V1)
        .map(|p| from + p)
}

/// Every intact record of a segment image, and the regions that hold none.
/// After a bad record the scan resumes at the next offset where a record
/// parses, so one damaged record does not hide the ones after it.
fn scan(data: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut open: Option<Region> = None;
    let mut at = 0;
    while at < data.len() {
        match parse_at(data, at) {
            Parsed::Intact(rec, end) => {
                out.damaged.extend(close(open.take(), at));
                out.records.push(rec);
                at = end;
            }
            Parsed::BadPayload(id, end) => {
                out.damaged.extend(close(open.take(), at));
                open = Some(Region {
                    offset: at as u64,
                    len: 0,
                    id: Some(id),
                });
                at = end;
            }
            Parsed::NoRecord => {
                if open.is_none() && data[at..].iter().all(|&b| b == 0) {
                    break; // the zero-filled rest: the normal end
                }
                open.get_or_insert(Region {
                    offset: at as u64,
                    len: 0,
                    id: None,
                });
                match next_magic(data, at + 1) {
                    Some(next) => at = next,
                    None => break,
                }
            }
        }
    }
    out.tail = open.and_then(|r| torn_tail(data, r));
    out
}

/// A region that ends where the next intact record starts.
fn close(open: Option<Region>, at: usize) -> Option<Region> {
    open.map(|r| Region {
        len: at as u64 - r.offset,
        ..r
    })
}

/// The non-zero part of what follows the last intact record; `None` when
/// it is all zeros.
fn torn_tail(data: &[u8], r: Region) -> Option<Region> {
    let start = r.offset as usize;
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    (end > start).then(|| Region {
        len: (end - start) as u64,
        ..r
    })
}

/// Read and scan segment `seq`: its intact records, and whether it must be
/// kept in place (damaged, and no copy could be kept).
fn replay_segment(dir: &Path, seq: u64, done: &sled::Tree) -> Result<(Vec<Record>, bool)> {
    let path = segment_path(dir, seq);
    let data = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let scan = scan(&data);
    if let Some(t) = &scan.tail {
        tracing::info!(
            segment = seq,
            offset = t.offset,
            bytes = t.len,
            "dropped a torn record at the end of a spool log segment (never acknowledged)"
        );
    }
    let pinned = !scan.damaged.is_empty() && !report_damage(dir, seq, &data, &scan, done);
    Ok((scan.records, pinned))
}

/// Count and log the damaged regions of a segment and keep a copy of it;
/// returns whether the copy is kept.
fn report_damage(dir: &Path, seq: u64, data: &[u8], scan: &Scan, done: &sled::Tree) -> bool {
    let m = &crate::metrics::METRICS;
    let n = scan.damaged.len();
    m.spool_damaged_records
        .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    let regions = describe(seq, &scan.damaged, done);
    let report = report_text(&segment_path(dir, seq), data.len(), scan, &regions);
    match keep_copy(dir, seq, data, &report) {
        Ok(copy) => {
            tracing::error!(
                segment = seq,
                damaged_records = n,
                intact_records = scan.records.len(),
                regions = %regions.join("; "),
                kept = %copy.display(),
                "spool log segment has damaged records: instances acknowledged there may be lost; the intact records after them are replayed and a copy of the segment is kept"
            );
            true
        }
        Err(e) => {
            tracing::error!(
                segment = seq,
                damaged_records = n,
                intact_records = scan.records.len(),
                regions = %regions.join("; "),
                error = %format!("{e:#}"),
                "spool log segment has damaged records and no copy could be kept: the segment is left in place"
            );
            false
        }
    }
}

/// One line per damaged region: offset, extent and, when the header was
/// intact, the spool id (never patient data) and whether it was done.
fn describe(seq: u64, regions: &[Region], done: &sled::Tree) -> Vec<String> {
    regions
        .iter()
        .map(|r| {
            let what = match &r.id {
                Some(id) if done.contains_key(done_key(seq, id)).unwrap_or(false) => {
                    format!("record {id}, already processed")
                }
                Some(id) => format!("record {id}, not processed: lost"),
                None => "header unreadable".to_string(),
            };
            format!(
                "offset {} to {} ({} bytes, {what})",
                r.offset,
                r.offset + r.len,
                r.len
            )
        })
        .collect()
}

/// The `<seq>.txt` kept next to a damaged segment's copy.
fn report_text(path: &Path, size: usize, scan: &Scan, regions: &[String]) -> String {
    let mut t = format!(
        "deidgate spool log: damaged segment found at replay on {}\n\
         segment: {} ({size} bytes)\n\
         intact records replayed: {}\n\
         damaged regions: {}\n",
        chrono::Local::now().to_rfc3339(),
        path.display(),
        scan.records.len(),
        regions.len(),
    );
    for r in regions {
        t.push_str(&format!("  {r}\n"));
    }
    t
}

/// Copy a damaged segment to `damaged/<seq>.seg` with its report, once:
/// an identical copy already there is reused, a different one (an older
/// log with the same numbers) gets `<seq>-<n>.seg`.
fn keep_copy(dir: &Path, seq: u64, data: &[u8], report: &str) -> Result<PathBuf> {
    let kept = dir.join(DAMAGED_DIR);
    crate::runtime::create_private_dir(&kept)?;
    for n in 0..1000 {
        let stem = match n {
            0 => format!("{seq:016}"),
            n => format!("{seq:016}-{n}"),
        };
        let copy = kept.join(format!("{stem}.seg"));
        match std::fs::read(&copy) {
            Ok(old) if old == data => return Ok(copy),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let txt = kept.join(format!("{stem}.txt"));
                super::output::write_atomic(&txt, report.as_bytes(), true)?;
                super::output::write_atomic(&copy, data, true)?;
                return Ok(copy);
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", copy.display())),
        }
    }
    anyhow::bail!(
        "no free name for a copy of segment {seq} in {}",
        kept.display()
    )
}

/// Set the gauge of damaged segment copies kept (so it survives restarts).
fn publish_damaged_segments(dir: &Path) {
    let n = std::fs::read_dir(dir.join(DAMAGED_DIR))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.ends_with(".seg") && !name.starts_with('.')
                })
                .count()
        })
        .unwrap_or(0);
    crate::metrics::METRICS
        .spool_damaged_segments
        .store(n as u64, std::sync::atomic::Ordering::Relaxed);
}

/// Create a zero-filled, fsync'd segment at `path` (via a temp name, so a
/// half-made segment is never mistaken for one).
fn prepare(path: &Path) -> std::io::Result<File> {
    let tmp = path.with_extension("seg.tmp");
    let made = zero_filled(&tmp).and_then(|f| std::fs::rename(&tmp, path).map(|()| f));
    made.map_err(|e| {
        // A full disk must not also leave a 16 MiB temp file behind.
        let _ = std::fs::remove_file(&tmp);
        std::io::Error::new(
            e.kind(),
            format!("cannot prepare spool log segment {}: {e}", path.display()),
        )
    })
}

/// A new file of [`SEGMENT_BYTES`] zeros, written and fsync'd.
fn zero_filled(tmp: &Path) -> std::io::Result<File> {
    let mut f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)?;
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..SEGMENT_BYTES / zeros.len() as u64 {
        f.write_all(&zeros)?;
    }
    f.sync_all()?;
    Ok(f)
}

fn prepare_in_background(path: PathBuf) -> JoinHandle<std::io::Result<File>> {
    std::thread::Builder::new()
        .name("spool-wal-prepare".into())
        .spawn(move || prepare(&path))
        .expect("cannot start the spool log preparer")
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(dir: &Path) -> sled::Db {
        sled::Config::new().path(dir.join("db")).open().unwrap()
    }

    #[test]
    fn replays_what_is_not_done_and_drops_a_torn_tail() {
        let tmp = tempfile::tempdir().unwrap();
        let db = db(tmp.path());
        let dir = tmp.path().join("wal");
        let (wal, replay) = Wal::open(&dir, &db).unwrap();
        assert!(replay.is_empty());
        wal.append("a", b"first").unwrap();
        wal.append("b", b"second").unwrap();
        wal.append("c", b"third").unwrap();
        wal.mark_done(&["b".to_string()]).unwrap();
        db.flush().unwrap();
        let seq = wal.active.lock().unwrap().seq;
        drop(wal);
        // A torn record after c: header says 100 bytes, only 3 are there.
        let path = segment_path(&dir, seq);
        let f = File::options().write(true).open(&path).unwrap();
        let off = 3 * HEADER as u64 + 3 + 5 + 6 + 5;
        let mut torn = encode("d", &[7u8; 100]).unwrap();
        torn.truncate(HEADER + 4);
        f.write_all_at(&torn, off).unwrap();
        drop(f);
        let (wal, replay) = Wal::open(&dir, &db).unwrap();
        assert_eq!(replay, vec!["a", "c"]);
        assert_eq!(wal.read("a").unwrap().unwrap(), b"first");
        assert_eq!(wal.read("c").unwrap().unwrap(), b"third");
        assert_eq!(wal.read("b").unwrap(), None, "done");
        assert_eq!(wal.read("d").unwrap(), None, "torn");
        assert_eq!(wal.live(), 2);
    }

    #[test]
    fn a_segment_whose_records_are_done_is_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let db = db(tmp.path());
        let dir = tmp.path().join("wal");
        let (wal, _) = Wal::open(&dir, &db).unwrap();
        let big = vec![1u8; (SEGMENT_BYTES / 2) as usize];
        wal.append("x", &big).unwrap();
        wal.append("y", &big).unwrap(); // does not fit: a second segment
        let first = segment_path(&dir, 1);
        assert!(first.exists());
        let ids = vec!["x".to_string()];
        wal.mark_done(&ids).unwrap();
        db.flush().unwrap();
        wal.forget(&ids).unwrap();
        assert!(!first.exists(), "sealed and done: deleted");
        assert!(segment_path(&dir, 2).exists(), "active segment stays");
        assert_eq!(db.open_tree(DONE_TREE).unwrap().len(), 0);
        drop(wal);
        let (wal, replay) = Wal::open(&dir, &db).unwrap();
        assert_eq!(replay, vec!["y"]);
        assert_eq!(wal.read("y").unwrap().unwrap(), big);
    }

    /// A record in the first format, as a gateway before DGW2 wrote it.
    fn encode_v1(id: &str, payload: &[u8]) -> Vec<u8> {
        let mut crc = crc32fast::Hasher::new();
        crc.update(id.as_bytes());
        crc.update(payload);
        let mut rec = MAGIC_V1.to_vec();
        rec.extend_from_slice(&(id.len() as u16).to_le_bytes());
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc.finalize().to_le_bytes());
        rec.extend_from_slice(id.as_bytes());
        rec.extend_from_slice(payload);
        rec
    }

    /// Ids and payloads of `n` records; payloads are pseudo-random (no magic
    /// by chance) and a few KiB, like small instances.
    fn records(n: usize) -> Vec<(String, Vec<u8>)> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|i| {
                let payload = (0..2000 + 37 * i)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                (format!("rec-{i:03}"), payload)
            })
            .collect()
    }

    /// Write `recs` into a fresh log (one segment) and close it; returns
    /// that segment's path and each record's start offset and length.
    fn logged(dir: &Path, db: &sled::Db, recs: &[(String, Vec<u8>)]) -> (PathBuf, Vec<(u64, u64)>) {
        let (wal, _) = Wal::open(dir, db).unwrap();
        let seq = wal.active.lock().unwrap().seq;
        let mut at = 0;
        let mut extents = Vec::new();
        for (id, p) in recs {
            wal.append(id, p).unwrap();
            let len = (HEADER + id.len() + p.len()) as u64;
            extents.push((at, len));
            at += len;
        }
        drop(wal);
        (segment_path(dir, seq), extents)
    }

    fn flip(path: &Path, at: u64, n: usize) {
        let f = File::options().read(true).write(true).open(path).unwrap();
        let mut b = vec![0u8; n];
        f.read_exact_at(&mut b, at).unwrap();
        b.iter_mut().for_each(|x| *x ^= 0xa5);
        f.write_all_at(&b, at).unwrap();
    }

    fn damaged_copies(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.join(DAMAGED_DIR))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Corrupt 16 bytes at `within` bytes into record `k` of 40, reopen:
    /// every other record replays with its payload, one region is damaged,
    /// and the segment is copied once with its report.
    fn middle_damage_is_reported_and_skipped(within: impl Fn(u64) -> u64, id_known: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let db = db(tmp.path());
        let dir = tmp.path().join("wal");
        let recs = records(40);
        let (seg, extents) = logged(&dir, &db, &recs);
        let k = 31;
        let (start, len) = extents[k];
        flip(&seg, start + within(len), 16);
        let scan = scan(&std::fs::read(&seg).unwrap());
        assert_eq!(scan.damaged.len(), 1, "{:?}", scan.damaged);
        let region = &scan.damaged[0];
        assert_eq!((region.offset, region.len), (start, len));
        assert_eq!(region.id.as_deref(), id_known.then_some("rec-031"));
        assert_eq!(scan.tail, None);

        let before = crate::metrics::METRICS
            .spool_damaged_records
            .load(std::sync::atomic::Ordering::Relaxed);
        let (wal, replay) = Wal::open(&dir, &db).unwrap();
        let want: Vec<&str> = recs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != k)
            .map(|(_, (id, _))| id.as_str())
            .collect();
        assert_eq!(replay, want);
        for (i, (id, p)) in recs.iter().enumerate() {
            let got = wal.read(id).unwrap();
            assert_eq!(got.as_ref(), (i != k).then_some(p), "{id}");
        }
        let after = crate::metrics::METRICS
            .spool_damaged_records
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(after > before, "counted");
        let stem = seg.file_stem().unwrap().to_string_lossy().to_string();
        let kept = dir.join(DAMAGED_DIR).join(format!("{stem}.seg"));
        assert_eq!(std::fs::read(&kept).unwrap(), std::fs::read(&seg).unwrap());
        let report = std::fs::read_to_string(kept.with_extension("txt")).unwrap();
        assert!(
            report.contains(&format!("offset {start} to {}", start + len)),
            "{report}"
        );
        assert!(report.contains("intact records replayed: 39"), "{report}");
        // The survivors are done: the segment goes, its copy stays; a
        // restart before that reuses the copy instead of making another.
        drop(wal);
        let (wal, _) = Wal::open(&dir, &db).unwrap();
        assert_eq!(damaged_copies(&dir).len(), 2, "{:?}", damaged_copies(&dir));
        wal.mark_done(&want.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        db.flush().unwrap();
        wal.forget(&want.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        assert!(!seg.exists(), "retired once its intact records are done");
        assert!(kept.exists(), "the copy is kept");
    }

    #[test]
    fn a_damaged_payload_in_the_middle_is_reported_and_the_rest_replays() {
        middle_damage_is_reported_and_skipped(|len| len / 2, true);
    }

    #[test]
    fn a_damaged_header_in_the_middle_is_reported_and_the_rest_replays() {
        middle_damage_is_reported_and_skipped(|_| 2, false);
    }

    #[test]
    fn a_damaged_first_record_is_reported_and_the_rest_replays() {
        let recs = records(3);
        let mut data: Vec<u8> = recs
            .iter()
            .flat_map(|(i, p)| encode(i, p).unwrap())
            .collect();
        data.resize(data.len() + 4096, 0);
        data[0] = b'X';
        let scan = scan(&data);
        let ids: Vec<&str> = scan.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["rec-001", "rec-002"]);
        assert_eq!(scan.damaged.len(), 1);
        assert_eq!(scan.damaged[0].offset, 0);
    }

    #[test]
    fn a_torn_tail_is_dropped_without_a_report() {
        let tmp = tempfile::tempdir().unwrap();
        let db = db(tmp.path());
        let dir = tmp.path().join("wal");
        let recs = records(5);
        let (seg, extents) = logged(&dir, &db, &recs[..4]);
        // The fifth append was cut off after a third of its bytes.
        let (at, len) = extents[3];
        let mut torn = encode(&recs[4].0, &recs[4].1).unwrap();
        torn.truncate(torn.len() / 3);
        let f = File::options().write(true).open(&seg).unwrap();
        f.write_all_at(&torn, at + len).unwrap();
        drop(f);
        let scan = scan(&std::fs::read(&seg).unwrap());
        assert!(scan.damaged.is_empty());
        let tail = scan.tail.as_ref().expect("a torn tail");
        assert_eq!((tail.offset, tail.len), (at + len, torn.len() as u64));
        let (wal, replay) = Wal::open(&dir, &db).unwrap();
        assert_eq!(replay, ["rec-000", "rec-001", "rec-002", "rec-003"]);
        assert_eq!(wal.read("rec-004").unwrap(), None);
        assert!(damaged_copies(&dir).is_empty(), "no copy for a torn tail");
    }

    #[test]
    fn a_zero_filled_rest_is_the_normal_end() {
        let recs = records(3);
        let mut data: Vec<u8> = recs
            .iter()
            .flat_map(|(i, p)| encode(i, p).unwrap())
            .collect();
        data.resize(SEGMENT_BYTES as usize, 0);
        let scan = scan(&data);
        assert_eq!(scan.records.len(), 3);
        assert!(scan.damaged.is_empty() && scan.tail.is_none());
    }

    #[test]
    fn a_huge_bogus_length_in_a_damaged_header_is_not_followed() {
        let recs = records(3);
        let mut data: Vec<u8> = recs
            .iter()
            .flat_map(|(i, p)| encode(i, p).unwrap())
            .collect();
        data.resize(data.len() + 4096, 0);
        // Record 0 claims 4 GiB; record 1 must still be found.
        data[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
        let scan = scan(&data);
        let ids: Vec<&str> = scan.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["rec-001", "rec-002"]);
        assert_eq!(scan.damaged.len(), 1);
    }

    #[test]
    fn dgw1_segments_from_before_the_upgrade_still_replay() {
        let tmp = tempfile::tempdir().unwrap();
        let db = db(tmp.path());
        let dir = tmp.path().join("wal");
        std::fs::create_dir_all(&dir).unwrap();
        let recs = records(6);
        let mut data = Vec::new();
        let mut starts = Vec::new();
        for (id, p) in &recs {
            starts.push(data.len());
            data.extend(encode_v1(id, p));
        }
        // Record 2's payload damaged, record 5 torn.
        let mid = starts[2] + 500;
        data[mid..mid + 16].iter_mut().for_each(|b| *b ^= 0xff);
        data.truncate(starts[5] + 30);
        data.resize(SEGMENT_BYTES as usize, 0);
        std::fs::write(segment_path(&dir, 7), &data).unwrap();
        let (wal, replay) = Wal::open(&dir, &db).unwrap();
        assert_eq!(replay, ["rec-000", "rec-001", "rec-003", "rec-004"]);
        assert_eq!(wal.read("rec-003").unwrap().unwrap(), recs[3].1);
        assert_eq!(
            damaged_copies(&dir),
            ["0000000000000007.seg", "0000000000000007.txt"]
        );
        // New records go to a fresh segment, in the new format.
        wal.append("new", b"payload").unwrap();
        let seq = wal.active.lock().unwrap().seq;
        assert!(seq > 7);
        drop(wal);
        let head = std::fs::read(segment_path(&dir, seq)).unwrap();
        assert_eq!(head[..4], MAGIC);
        let (_, replay) = Wal::open(&dir, &db).unwrap();
        assert_eq!(replay, ["rec-000", "rec-001", "rec-003", "rec-004", "new"]);
    }
}
