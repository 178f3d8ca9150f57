//! Writing de-identified objects durably: temp file, fsync, rename, fsync dir.

use anyhow::{Context, Result};
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::DataElement;
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where an object goes: `<root>/<study>/<series>/<sop>.dcm`. The names are
/// pseudonymous UIDs, never the original file names (which often hold names).
pub fn object_path(root: &Path, study: &str, series: &str, sop: &str) -> PathBuf {
    root.join(safe(study))
        .join(safe(series))
        .join(format!("{}.dcm", safe(sop)))
}

fn safe(s: &str) -> String {
    let s: String = s
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if s.is_empty() {
        "unknown".into()
    } else {
        s
    }
}

/// Write `bytes` to `path` atomically and durably (fsync of the file and its
/// folder). Running it again with the same bytes leaves the same file.
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes, true)
}

/// Create `path` with `bytes` and fsync the file (not its folder).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Write `bytes` to `path` atomically (temp file + rename). With `durable`
/// the file and its folder are fsync'd before returning; without it the
/// caller must call [`sync_filesystem_of`] before it reports success (the
/// batch and the pipeline do, once per batch, instead of one fsync per file).
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().context("output path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Unique per write: two threads writing the same output (two copies of
    // one instance in a batch) must not share a temp file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.{n}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("obj"),
        std::process::id()
    ));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| if durable { f.sync_all() } else { Ok(()) })
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename into {}", path.display()))?;
    if durable {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    Ok(())
}

/// Remove temp files that [`write_atomic`] left under `root` when its
/// process was killed between create and rename (`.NAME.tmpPID`, PID no
/// longer running), and temp folders of the same name (a quarantine entry
/// being written, or being purged). Their content was never acknowledged
/// as written: the spool or outbox entry that produced them is replayed;
/// a purge was asked for. They may hold PHI, so they do not stay. Returns
/// the count.
pub fn remove_stale_temps(root: &Path) -> usize {
    let stale = |name: &str| {
        let Some(pid) = name
            .strip_prefix('.')
            .and_then(|n| n.rsplit_once(".tmp"))
            .and_then(|(_, pid)| pid.parse::<i32>().ok())
        else {
            return false;
        };
        // SAFETY: kill with signal 0 only checks that the process exists.
        pid != std::process::id() as i32
            && unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    };
    let mut removed = 0;
    let mut walk = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .into_iter();
    while let Some(e) = walk.next() {
        let Ok(e) = e else { continue };
        if !e.file_name().to_str().is_some_and(stale) {
            continue;
        }
        let gone = if e.file_type().is_dir() {
            walk.skip_current_dir();
            std::fs::remove_dir_all(e.path()).is_ok()
        } else {
            e.file_type().is_file() && std::fs::remove_file(e.path()).is_ok()
        };
        removed += gone as usize;
    }
    removed
}

/// Flush the file system that holds `path` (syncfs(2)): every file written
/// there so far is durable when it returns.
pub fn sync_filesystem_of(path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: syncfs takes a valid open descriptor, held by `f` for the call.
    let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
    anyhow::ensure!(
        rc == 0,
        "syncfs {} failed: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// Encode a Part 10 object. Native OW pixel data is held as 16-bit words,
/// which dicom-object writes one value at a time (a fifth of the batch's CPU
/// time); for little-endian transfer syntaxes the same bytes are written at
/// once when held as octets.
pub fn encode(mut obj: DefaultDicomObject, capacity: usize) -> Result<Vec<u8>> {
    let big_endian = obj.meta().transfer_syntax().trim_end_matches('\0') == "1.2.840.10008.1.2.2";
    let packed = match obj.get(tags::PIXEL_DATA).map(|e| (e.vr(), e.value())) {
        Some((vr, Value::Primitive(PrimitiveValue::U16(words)))) if !big_endian => Some((
            vr,
            words
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect::<Vec<u8>>(),
        )),
        _ => None,
    };
    if let Some((vr, bytes)) = packed {
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            vr,
            PrimitiveValue::U8(bytes.into()),
        ));
    }
    let mut buf = Vec::with_capacity(capacity);
    obj.write_all(&mut buf)
        .context("cannot encode the de-identified object")?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temps_of_dead_writers_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        // A PID far above any pid_max cannot be running.
        let dead = sub.join(".x.dcm.tmp2147483000");
        let mine = sub.join(format!(".y.dcm.tmp{}", std::process::id()));
        let kept = sub.join("z.dcm");
        for f in [&dead, &mine, &kept] {
            std::fs::write(f, b"x").unwrap();
        }
        // A quarantine entry a killed writer left half made (PHI inside).
        let dead_dir = d.path().join("q/.0123abcd.tmp2147483000");
        std::fs::create_dir_all(&dead_dir).unwrap();
        std::fs::write(dead_dir.join("object.dcm"), b"x").unwrap();
        assert_eq!(remove_stale_temps(d.path()), 2);
        assert!(!dead.exists() && mine.exists() && kept.exists());
        assert!(!dead_dir.exists() && d.path().join("q").exists());
    }
}
