//! The durable holding area for head MR series, in plain files:
//!
//! ```text
//! <data_dir>/series/open/<series pseudonym>/<spool id>~<frames>~<expected>~<slice>.dcm
//! <data_dir>/series/claimed/<series pseudonym>.<nanos>/...   complete, being processed
//! <data_dir>/series/done/...                                 output durable, being deleted
//! ```
//!
//! Every state change is a rename followed by an fsync of the folders
//! involved, so after `kill -9` each instance is in exactly one place. A
//! spool file is renamed in (same file system), not copied. A series is
//! claimed as a whole, so instances arriving meanwhile start a new open
//! folder instead of being deleted with the finished one. At start,
//! `done/` leftovers are removed and `claimed/` series are redone (the same
//! inputs give the same outputs).
//!
//! `<slice>` is the instance's slice key (16 hex digits, see
//! [`super::classify::slice_key`]): the completeness rule counts distinct
//! slices, so a resent copy does not count twice. It is part of the name, so
//! it is written by the same rename that makes the instance durable. Files
//! from before the key (`<spool id>~<frames>~<expected>.dcm`) each count as
//! a slice of their own.

use super::classify::HeadInstance;
use super::process::Member;
use crate::runtime::create_private_dir;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

pub struct Holding {
    open: PathBuf,
    claimed: PathBuf,
    done: PathBuf,
    /// Serializes hold and claim, so no instance is renamed into a folder
    /// that is being claimed.
    lock: Mutex<()>,
}

/// What the completeness rule needs about an open series.
#[derive(Debug, Clone)]
pub struct OpenSeries {
    pub key: String,
    pub instances: usize,
    pub frames: usize,
    /// Frames of distinct slices: copies with the same slice key count once
    /// (an instance without a key counts as its own slice).
    pub distinct: usize,
    pub expected: Option<usize>,
    /// Arrival time of the newest instance (file modification time).
    pub last: SystemTime,
    /// The spool ids of the held instances (file names up to the first `~`).
    pub ids: Vec<String>,
}

fn sync_dir(d: &Path) -> Result<()> {
    std::fs::File::open(d)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", d.display()))
}

fn is_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_digit() || c == '.')
}

fn is_slice_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 64 && k.chars().all(|c| c.is_ascii_hexdigit())
}

/// The file name of a held instance.
fn held_name(id: &str, head: &HeadInstance) -> String {
    format!(
        "{id}~{}~{}~{}.dcm",
        head.frames,
        head.expected.map_or(String::from("-"), |e| e.to_string()),
        head.slice
    )
}

/// The spool id a held file's name starts with.
fn held_id(name: &str) -> &str {
    let stem = name.strip_suffix(".dcm").unwrap_or(name);
    stem.split('~').next().unwrap_or_default()
}

/// (frames, expected, slice key) from a held file's name; `None` for a
/// name that is not a held instance.
fn parse_name(name: &str) -> Option<(usize, Option<usize>, Option<&str>)> {
    let stem = name.strip_suffix(".dcm")?;
    let mut parts = stem.split('~').skip(1);
    let frames = parts.next().and_then(|v| v.parse().ok()).unwrap_or(1);
    let expected = parts.next().and_then(|v| v.parse::<usize>().ok());
    let slice = parts.next().filter(|k| is_slice_key(k));
    Some((frames, expected, slice))
}

impl Holding {
    pub fn open(data_dir: &Path) -> Result<Holding> {
        let root = data_dir.join("series");
        let h = Holding {
            open: root.join("open"),
            claimed: root.join("claimed"),
            done: root.join("done"),
            lock: Mutex::new(()),
        };
        for d in [&root, &h.open, &h.claimed, &h.done] {
            create_private_dir(d)?;
        }
        for e in std::fs::read_dir(&h.done)?.flatten() {
            std::fs::remove_dir_all(e.path()).ok();
        }
        Ok(h)
    }

    /// Move the durable spool file `src` into its series' open folder, or,
    /// when there is no such file (the instance is in the spool log), write
    /// `bytes` there. When this returns the instance survives a crash in its
    /// new place.
    pub fn hold(&self, id: &str, src: &Path, bytes: &[u8], head: &HeadInstance) -> Result<()> {
        anyhow::ensure!(is_key(&head.key), "bad series key");
        anyhow::ensure!(is_slice_key(&head.slice), "bad slice key");
        anyhow::ensure!(!id.contains(['~', '/']), "bad spool id");
        let _g = self.lock.lock().expect("holding lock");
        let dir = self.open.join(&head.key);
        let fresh = !dir.exists();
        create_private_dir(&dir)?;
        if fresh {
            sync_dir(&self.open)?;
        }
        let dst = dir.join(held_name(id, head));
        match std::fs::rename(src, &dst) {
            Ok(()) => {}
            // A replayed record may find its earlier copy here: that copy is
            // replaced by rename, never truncated and rewritten in place (a
            // kill mid-write would leave a torn member under a good name).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::pipeline::output::write_durable(&dst, bytes)?;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot move {} into the holding area", src.display())
                })
            }
        }
        sync_dir(&dir)?;
        if let Some(from) = src.parent() {
            sync_dir(from)?;
        }
        Ok(())
    }

    /// The open series with their counts.
    pub fn open_series(&self) -> Result<Vec<OpenSeries>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.open)?.flatten() {
            let key = e.file_name().to_string_lossy().to_string();
            let mut s = OpenSeries {
                key,
                instances: 0,
                frames: 0,
                distinct: 0,
                expected: None,
                last: SystemTime::UNIX_EPOCH,
                ids: Vec::new(),
            };
            // Frames per slice key (the most any copy has).
            let mut slices = std::collections::HashMap::<String, usize>::new();
            for f in std::fs::read_dir(e.path())?.flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                let Some((frames, exp, slice)) = parse_name(&name) else {
                    continue;
                };
                s.instances += 1;
                s.frames += frames;
                s.ids.push(held_id(&name).to_string());
                match slice {
                    Some(k) => {
                        let n = slices.entry(k.to_string()).or_default();
                        *n = (*n).max(frames);
                    }
                    None => s.distinct += frames,
                }
                s.expected = s.expected.max(exp);
                if let Ok(t) = f.metadata().and_then(|m| m.modified()) {
                    s.last = s.last.max(t);
                }
            }
            s.distinct += slices.values().sum::<usize>();
            out.push(s);
        }
        out.sort_by_key(|s| s.last);
        Ok(out)
    }

    /// Take a complete series out of `open/`; returns its claimed folder.
    pub fn claim(&self, key: &str) -> Result<PathBuf> {
        anyhow::ensure!(is_key(key), "bad series key");
        let _g = self.lock.lock().expect("holding lock");
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dst = self.claimed.join(format!("{key}.{nanos}"));
        std::fs::rename(self.open.join(key), &dst).context("cannot claim a held series")?;
        sync_dir(&self.claimed)?;
        sync_dir(&self.open)?;
        Ok(dst)
    }

    /// Claimed series not yet finished (after a restart), oldest first.
    pub fn claimed(&self) -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.claimed)?
            .flatten()
            .map(|e| e.path())
            .collect();
        v.sort();
        Ok(v)
    }

    /// The instances of a claimed series, in file-name (arrival) order.
    pub fn members(dir: &Path) -> Result<Vec<Member>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                let id = held_id(&name);
                Ok(Member {
                    origin: format!("scp spool {id} (head MR series)"),
                    bytes: std::fs::read(&p)
                        .with_context(|| format!("cannot read {}", p.display()))?,
                })
            })
            .collect()
    }

    /// The series' outputs are durable: drop its instances. The rename into
    /// `done/` is the commit point; deleting is only cleanup.
    pub fn finish(&self, claimed: &Path) -> Result<()> {
        let name = claimed.file_name().context("claimed folder without name")?;
        let dst = self.done.join(name);
        std::fs::rename(claimed, &dst).context("cannot retire a finished series")?;
        sync_dir(&self.done)?;
        sync_dir(&self.claimed)?;
        std::fs::remove_dir_all(&dst).ok();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_claim_finish_and_late_arrivals() {
        let tmp = tempfile::tempdir().unwrap();
        let h = Holding::open(tmp.path()).unwrap();
        let head = |slice: &str| HeadInstance {
            key: "2.25.1".into(),
            frames: 1,
            expected: Some(2),
            slice: slice.into(),
        };
        for (id, slice) in [("a", "0a"), ("b", "0b")] {
            let src = tmp.path().join(format!("{id}.dcm"));
            std::fs::write(&src, id).unwrap();
            h.hold(id, &src, b"unused", &head(slice)).unwrap();
            assert!(!src.exists());
        }
        let open = h.open_series().unwrap();
        assert_eq!(
            (open[0].instances, open[0].frames, open[0].distinct),
            (2, 2, 2)
        );
        assert_eq!(open[0].ids, ["a", "b"]);
        assert_eq!(open[0].expected, Some(2));
        let head = head("0c");
        let c = h.claim("2.25.1").unwrap();
        // A late instance opens a new folder; the claimed one is untouched.
        // An instance from the spool log has no file: its bytes are written.
        let late = tmp.path().join("c.dcm");
        h.hold("c", &late, b"c", &head).unwrap();
        let m = Holding::members(&c).unwrap();
        assert_eq!(
            m.iter().map(|m| m.bytes.clone()).collect::<Vec<_>>(),
            [b"a", b"b"]
        );
        // Reopening keeps claimed work for a redo.
        drop(h);
        let h = Holding::open(tmp.path()).unwrap();
        assert_eq!(h.claimed().unwrap(), vec![c.clone()]);
        h.finish(&c).unwrap();
        assert!(h.claimed().unwrap().is_empty());
        assert_eq!(h.open_series().unwrap()[0].instances, 1);
        let late = h.claim("2.25.1").unwrap();
        assert_eq!(Holding::members(&late).unwrap()[0].bytes, b"c");
    }

    #[test]
    fn a_replayed_copy_replaces_the_held_one_by_rename() {
        let tmp = tempfile::tempdir().unwrap();
        let h = Holding::open(tmp.path()).unwrap();
        let head = HeadInstance {
            key: "2.25.3".into(),
            frames: 1,
            expected: None,
            slice: "0a".into(),
        };
        let none = tmp.path().join("none.dcm");
        h.hold("a", &none, b"first", &head).unwrap();
        let dir = tmp.path().join("series/open/2.25.3");
        let held = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        // A second name for the held file's inode: an in-place rewrite (which
        // a kill could tear) would change what it reads.
        let other = tmp.path().join("other-name");
        std::fs::hard_link(&held, &other).unwrap();
        h.hold("a", &none, b"again", &head).unwrap();
        assert_eq!(std::fs::read(&held).unwrap(), b"again");
        assert_eq!(std::fs::read(&other).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temp left");
    }

    fn hold(h: &Holding, dir: &Path, id: &str, slice: &str) {
        let head = HeadInstance {
            key: "2.25.7".into(),
            frames: 1,
            expected: Some(2),
            slice: slice.into(),
        };
        let src = dir.join(format!("{id}.dcm"));
        std::fs::write(&src, id).unwrap();
        h.hold(id, &src, b"unused", &head).unwrap();
    }

    #[test]
    fn copies_of_one_slice_count_once() {
        use super::super::complete::is_complete;
        let tmp = tempfile::tempdir().unwrap();
        let h = Holding::open(tmp.path()).unwrap();
        let (quiet, now) = (std::time::Duration::from_secs(3600), SystemTime::now());
        hold(&h, tmp.path(), "a", "00ff");
        // The same slice again (a resend): two instances, one slice.
        hold(&h, tmp.path(), "b", "00ff");
        let s = &h.open_series().unwrap()[0];
        assert_eq!((s.instances, s.frames, s.distinct), (2, 2, 1));
        assert!(!is_complete(s, quiet, now), "a resend completed the series");
        hold(&h, tmp.path(), "c", "0100");
        let s = &h.open_series().unwrap()[0];
        assert_eq!((s.instances, s.distinct), (3, 2));
        assert!(is_complete(s, quiet, now));
        // Members keep every copy (the route shares one output per SOP UID).
        let c = h.claim("2.25.7").unwrap();
        assert_eq!(Holding::members(&c).unwrap().len(), 3);
    }

    #[test]
    fn files_named_before_slice_keys_count_as_slices() {
        let tmp = tempfile::tempdir().unwrap();
        let h = Holding::open(tmp.path()).unwrap();
        let dir = tmp.path().join("series/open/2.25.9");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("1~1~3.dcm"), b"x").unwrap();
        std::fs::write(dir.join("2~1~3.dcm"), b"y").unwrap();
        hold(&h, tmp.path(), "3", "0abc");
        hold(&h, tmp.path(), "4", "0abc");
        let open = h.open_series().unwrap();
        let s = open.iter().find(|s| s.key == "2.25.9");
        assert_eq!(s.map(|s| (s.instances, s.distinct)), Some((2, 2)));
        let s = open.iter().find(|s| s.key == "2.25.7").unwrap();
        assert_eq!((s.instances, s.distinct), (2, 1));
        assert_eq!(parse_name("1~1~3.dcm"), Some((1, Some(3), None)));
        assert_eq!(
            parse_name("5~12~-~beef.dcm"),
            Some((12, None, Some("beef")))
        );
        assert_eq!(parse_name("x.tmp"), None);
    }
}
