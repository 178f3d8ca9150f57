//! Quarantine: objects that cannot be de-identified safely are kept, with a
//! reason, inside the data directory (which already holds PHI and is 0700),
//! never in the research output.

use super::output::write_durable;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A quarantine folder: `<dir>/<id>/object.dcm` and `<dir>/<id>/reason.txt`.
#[derive(Debug, Clone)]
pub struct Quarantine {
    dir: PathBuf,
}

impl Quarantine {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Quarantine { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keep `bytes` with `reason`. The id is the content hash, so the same
    /// object quarantined twice is stored once. Returns the id (safe to log).
    /// The entry appears whole or not at all: both files are written into a
    /// temp folder renamed into place, so a full disk never leaves an
    /// object without its reason.
    pub fn put(&self, bytes: &[u8], reason: &str, origin: &str) -> Result<String> {
        let digest = hex::encode(Sha256::digest(bytes));
        let id = digest[..16].to_string();
        let d = self.dir.join(&id);
        crate::runtime::create_private_dir(&self.dir)?;
        let tmp = self.dir.join(format!(".{id}.tmp{}", std::process::id()));
        let text = format!(
            "reason: {reason}\norigin: {origin}\nbytes: {}\nsha256: {}\ntime: {}\n",
            bytes.len(),
            digest,
            chrono::Utc::now().to_rfc3339()
        );
        let made = crate::runtime::create_private_dir(&tmp)
            .and_then(|()| write_durable(&tmp.join("object.dcm"), bytes))
            .and_then(|()| write_durable(&tmp.join("reason.txt"), text.as_bytes()))
            .and_then(|()| self.place(&tmp, &d));
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        made.map(|()| id)
    }

    /// Rename a complete temp entry into place (a whole entry already there
    /// is the same object: the temp one goes) and make that durable. An
    /// entry missing either file (a purge or an older version interrupted)
    /// is replaced: keeping it would drop this object.
    fn place(&self, tmp: &Path, d: &Path) -> Result<()> {
        if d.join("reason.txt").exists() && d.join("object.dcm").exists() {
            std::fs::remove_dir_all(tmp)?;
            return Ok(());
        }
        if d.exists() {
            // Left incomplete: replaced.
            std::fs::remove_dir_all(d)?;
        }
        std::fs::rename(tmp, d).with_context(|| format!("cannot rename into {}", d.display()))?;
        std::fs::File::open(&self.dir)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", self.dir.display()))
    }

    /// The folder of one id; ids are hex, so a path cannot escape the quarantine.
    fn entry(&self, id: &str) -> Result<PathBuf> {
        anyhow::ensure!(
            !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()),
            "not a quarantine id: {id:?}"
        );
        let d = self.dir.join(id);
        anyhow::ensure!(d.is_dir(), "no quarantined object {id}");
        Ok(d)
    }

    /// The quarantined object's bytes.
    pub fn object(&self, id: &str) -> Result<Vec<u8>> {
        Ok(std::fs::read(self.entry(id)?.join("object.dcm"))?)
    }

    /// The reason file of one object.
    pub fn reason(&self, id: &str) -> Result<String> {
        Ok(std::fs::read_to_string(self.entry(id)?.join("reason.txt"))?)
    }

    /// Delete one object and its reason. The entry is first renamed out of
    /// the listing, so a purge cut short leaves no half entry under its id.
    pub fn purge(&self, id: &str) -> Result<()> {
        let d = self.entry(id)?;
        // A temp name: a purge cut short is finished at the next start
        // (`output::remove_stale_temps`).
        let gone = self
            .dir
            .join(format!(".{id}.purge.tmp{}", std::process::id()));
        std::fs::rename(&d, &gone)?;
        Ok(std::fs::remove_dir_all(gone)?)
    }

    /// (id, first line of reason) for every quarantined object.
    pub fn list(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Ok(out);
        };
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().to_string();
            if id.starts_with('.') {
                continue; // an entry being written
            }
            let reason = std::fs::read_to_string(e.path().join("reason.txt"))
                .ok()
                .and_then(|t| {
                    t.lines()
                        .next()
                        .map(|l| l.trim_start_matches("reason: ").to_string())
                })
                .unwrap_or_default();
            out.push((id, reason));
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_whole_or_absent_and_stored_once() {
        let tmp = tempfile::tempdir().unwrap();
        let q = Quarantine::new(tmp.path().join("q"));
        let id = q.put(b"object", "a reason", "test").unwrap();
        assert_eq!(q.put(b"object", "again", "test").unwrap(), id);
        // A half-written entry of an older version is completed, and a
        // temp folder of a writer that died is not listed.
        std::fs::remove_file(q.dir().join(&id).join("reason.txt")).unwrap();
        std::fs::create_dir_all(q.dir().join(".0123.tmp1")).unwrap();
        q.put(b"object", "third", "test").unwrap();
        assert_eq!(q.list().unwrap(), vec![(id.clone(), "third".to_string())]);
        assert_eq!(q.object(&id).unwrap(), b"object");
        // A purge cut short after deleting the object but not the reason:
        // the same object quarantined again must be stored, not dropped.
        std::fs::remove_file(q.dir().join(&id).join("object.dcm")).unwrap();
        assert_eq!(q.put(b"object", "fourth", "test").unwrap(), id);
        assert_eq!(q.object(&id).unwrap(), b"object");
        q.purge(&id).unwrap();
        assert!(q.list().unwrap().is_empty());
        assert!(!q.dir().join(&id).exists());
        // Nowhere to write: an error, and nothing listed.
        let bad = Quarantine::new("/proc/deidgate-no-such-dir");
        assert!(bad.put(b"x", "r", "t").is_err());
        assert!(bad.list().unwrap().is_empty());
    }
}
