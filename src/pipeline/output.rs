//! Writing de-identified objects durably: temp file, fsync, rename, fsync dir.

use anyhow::{Context, Result};
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

/// Write `bytes` to `path` atomically and durably. Running it again with the
/// same bytes leaves the same file.
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("output path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("obj"),
        std::process::id()
    ));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename into {}", path.display()))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
    Ok(())
}
