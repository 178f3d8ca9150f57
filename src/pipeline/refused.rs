//! Copies of instances the receiver refused with a failure status (they do
//! not parse, or do not match their C-STORE command). The sender was told
//! they failed, so they are not the gateway's to keep: a few are kept for
//! diagnosis in `<data_dir>/refused`, under a size cap with the oldest
//! dropped first, so no client can fill the disk with data it was told had
//! failed. They are not quarantined (quarantine is for acknowledged data).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The refused-copies folder and its cap.
#[derive(Debug, Clone)]
pub struct Refused {
    dir: PathBuf,
    cap: u64,
}

impl Refused {
    /// `cap_mb` MiB in `<data_dir>/refused`; 0 keeps nothing.
    pub fn new(data_dir: &Path, cap_mb: u64) -> Refused {
        Refused {
            dir: data_dir.join("refused"),
            cap: cap_mb << 20,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keep `bytes` with `reason` (no fsync: a diagnostic copy), then drop
    /// the oldest copies beyond the cap. Failures are logged, never raised:
    /// the sender already has its failure status.
    pub fn keep(&self, bytes: &[u8], reason: &str) {
        if self.cap == 0 || bytes.len() as u64 > self.cap {
            return;
        }
        if let Err(e) = self.write(bytes, reason).and_then(|()| self.prune()) {
            tracing::warn!(error = %e, "cannot keep a copy of a refused instance");
        }
    }

    fn write(&self, bytes: &[u8], reason: &str) -> std::io::Result<()> {
        crate::runtime::create_private_dir(&self.dir).map_err(std::io::Error::other)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let hash = hex::encode(&Sha256::digest(bytes)[..8]);
        let stem = self.dir.join(format!("{nanos:020}-{hash}"));
        std::fs::write(stem.with_extension("txt"), format!("reason: {reason}\n"))?;
        std::fs::write(stem.with_extension("dcm"), bytes)
    }

    /// Delete the oldest pairs until the folder is within the cap.
    fn prune(&self) -> std::io::Result<()> {
        let mut files: Vec<(PathBuf, u64)> = std::fs::read_dir(&self.dir)?
            .flatten()
            .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
            .collect();
        // Names start with the time: sorted is oldest first.
        files.sort();
        let mut total: u64 = files.iter().map(|(_, n)| n).sum();
        for (path, n) in files {
            if total <= self.cap {
                break;
            }
            std::fs::remove_file(&path)?;
            total -= n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_copies_go_first_and_the_folder_stays_under_its_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let r = Refused {
            dir: tmp.path().join("refused"),
            cap: 3000,
        };
        for i in 0..10u8 {
            r.keep(&[i; 1000], "cannot understand");
        }
        let mut names: Vec<_> = std::fs::read_dir(r.dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        let total: u64 = names
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(total <= 3000, "{total}");
        let last = names
            .iter()
            .rfind(|p| p.extension().unwrap() == "dcm")
            .unwrap();
        assert_eq!(
            std::fs::read(last).unwrap(),
            [9u8; 1000],
            "the newest stays"
        );
        Refused::new(tmp.path(), 0).keep(b"x", "r");
    }
}
