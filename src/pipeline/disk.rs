//! The free-space reserve of the data directory. The receiver refuses an
//! instance (A700, out of resources) when storing it would leave less than
//! the reserve free, and the pipeline pauses below half of it: the key store
//! (sled keeps a write error for the life of the database handle), the
//! outputs and the quarantine always have room to finish what was
//! acknowledged.

use crate::health::{self, Fault};
use std::path::{Path, PathBuf};

/// Free space that counts as "space is back" when the reserve is off.
const MIN_ROOM: u64 = 8 << 20;

/// The reserve on one file system.
#[derive(Debug, Clone)]
pub struct Reserve {
    path: PathBuf,
    bytes: u64,
}

/// Free bytes for an unprivileged writer on the file system of `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

impl Reserve {
    /// `mb` MiB kept free on the file system of `path`; 0 disables.
    pub fn new(path: &Path, mb: u64) -> Reserve {
        Reserve {
            path: path.to_path_buf(),
            bytes: mb << 20,
        }
    }

    /// Whether `incoming` more bytes may be stored: `Err` says why not, and
    /// sets the disk-space fault. An unreadable file system counts as full.
    pub fn admit(&self, incoming: u64) -> Result<(), String> {
        self.check(self.bytes.saturating_add(incoming))
    }

    /// Whether space is back after a write error: half the reserve, and at
    /// least [`MIN_ROOM`] even with the reserve off.
    pub fn has_room(&self) -> bool {
        free_bytes(&self.path).is_ok_and(|f| f >= (self.bytes / 2).max(MIN_ROOM))
    }

    /// Whether the pipeline may go on writing (half the reserve left).
    pub fn may_work(&self) -> Result<(), String> {
        self.check(self.bytes / 2)
    }

    fn check(&self, need: u64) -> Result<(), String> {
        if self.bytes == 0 {
            return Ok(());
        }
        match free_bytes(&self.path) {
            Ok(free) if free >= need => {
                if free >= self.bytes {
                    health::clear(Fault::DiskSpace);
                }
                Ok(())
            }
            Ok(free) => {
                let why = format!(
                    "{}: {} MiB free, below the {} MiB reserve ([node] disk_reserve_mb)",
                    self.path.display(),
                    free >> 20,
                    self.bytes >> 20
                );
                health::set(Fault::DiskSpace, why.clone());
                Err(why)
            }
            Err(e) => {
                let why = format!("{}: cannot read free space: {e}", self.path.display());
                health::set(Fault::DiskSpace, why.clone());
                Err(why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_the_disk_refuses_and_zero_admits() {
        let tmp = tempfile::tempdir().unwrap();
        let free = free_bytes(tmp.path()).unwrap();
        assert!(free > 0);
        let huge = Reserve::new(tmp.path(), (free >> 20) + 1024);
        let why = huge.admit(0).unwrap_err();
        assert!(why.contains("below the") && why.contains(&tmp.path().display().to_string()));
        assert!(health::is_set(Fault::DiskSpace));
        Reserve::new(tmp.path(), 0).admit(u64::MAX / 2).unwrap();
        Reserve::new(tmp.path(), 1).admit(0).unwrap();
        assert!(
            !health::is_set(Fault::DiskSpace),
            "cleared once space is back"
        );
    }
}
