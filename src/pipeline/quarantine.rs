//! Quarantine: objects that cannot be de-identified safely are kept, with a
//! reason, inside the data directory (which already holds PHI and is 0700),
//! never in the research output.

use super::output::write_durable;
use anyhow::Result;
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
    pub fn put(&self, bytes: &[u8], reason: &str, origin: &str) -> Result<String> {
        let digest = hex::encode(Sha256::digest(bytes));
        let id = digest[..16].to_string();
        let d = self.dir.join(&id);
        crate::runtime::create_private_dir(&self.dir)?;
        write_durable(&d.join("object.dcm"), bytes)?;
        let text = format!(
            "reason: {reason}\norigin: {origin}\nbytes: {}\nsha256: {}\ntime: {}\n",
            bytes.len(),
            digest,
            chrono::Utc::now().to_rfc3339()
        );
        write_durable(&d.join("reason.txt"), text.as_bytes())?;
        Ok(id)
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

    /// Delete one object and its reason.
    pub fn purge(&self, id: &str) -> Result<()> {
        Ok(std::fs::remove_dir_all(self.entry(id)?)?)
    }

    /// (id, first line of reason) for every quarantined object.
    pub fn list(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Ok(out);
        };
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().to_string();
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
