//! Where model files are found, whatever the working directory.
//!
//! - An absolute path is used as written.
//! - A relative path written in a config file resolves against that file's
//!   folder.
//! - A relative path of the embedded default (`models/...`) is searched, in
//!   order, under: `$DEIDGATE_MODELS` (a folder that plays the role of
//!   `models/`), the install layout beside the executable
//!   (`<exe dir>/../share/deidgate/models`), `<exe dir>/models`, and the
//!   source tree the binary was built from. The first folder that holds the
//!   model wins; when none does, the first candidate is kept and every path
//!   searched is reported.

use std::path::{Path, PathBuf};

/// The environment variable naming a folder used as `models/`.
pub const MODELS_ENV: &str = "DEIDGATE_MODELS";

/// Where a model path came from and how it was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An absolute path, as configured.
    Absolute,
    /// Relative in a config file: against the file's folder.
    ConfigFile,
    /// Relative, given without a file to resolve against: the working
    /// directory (as before).
    WorkingDir,
    /// The embedded default, found under `$DEIDGATE_MODELS`.
    Env,
    /// The embedded default, found in `<exe dir>/../share/deidgate/models`.
    Install,
    /// The embedded default, found in `<exe dir>/models`.
    BesideExe,
    /// The embedded default, found in the source tree it was built from.
    SourceTree,
    /// The embedded default, found nowhere.
    NotFound,
}

impl Origin {
    /// A few words for the log and `deidgate check`.
    pub fn describe(&self) -> &'static str {
        match self {
            Origin::Absolute => "absolute path from the config",
            Origin::ConfigFile => "relative to the config file",
            Origin::WorkingDir => "relative to the working directory",
            Origin::Env => "embedded default, found under $DEIDGATE_MODELS",
            Origin::Install => "embedded default, found in the install layout",
            Origin::BesideExe => "embedded default, found beside the executable",
            Origin::SourceTree => "embedded default, found in the source tree",
            Origin::NotFound => "embedded default, found nowhere",
        }
    }
}

/// One configured model path, resolved.
#[derive(Debug, Clone)]
pub struct ModelPath {
    /// The route it belongs to ("chest", "mri", "photo", "text").
    pub route: &'static str,
    /// The config key, e.g. `[chest] weights`.
    pub key: &'static str,
    /// The resolved path (absolute unless [`Origin::WorkingDir`]).
    pub path: PathBuf,
    pub origin: Origin,
    /// Every path looked at, in order.
    pub searched: Vec<PathBuf>,
    /// Whether the model is there (its marker file, or the path itself).
    pub found: bool,
    /// Whether the route needs it under this configuration (enabled, and
    /// the mode or model that reads it).
    pub used: bool,
}

/// A model path key of a route's config section, offered for resolution.
pub struct ModelKey<'a> {
    pub route: &'static str,
    /// Section and key in the TOML, e.g. ("chest", "weights").
    pub section: &'static str,
    pub name: &'static str,
    /// `[chest] weights` as the log and `deidgate check` write it.
    pub key: &'static str,
    pub path: &'a mut PathBuf,
    /// A file inside the folder that must exist for the model to count as
    /// there; `None` when the path is the model file itself.
    pub marker: Option<&'static str>,
    pub used: bool,
}

/// The folders that play the role of `models/` for the embedded default,
/// in search order, with how each is described.
pub fn search_roots() -> Vec<(PathBuf, Origin)> {
    let mut roots = Vec::new();
    if let Some(env) = std::env::var_os(MODELS_ENV).filter(|v| !v.is_empty()) {
        let env = PathBuf::from(env);
        roots.push((std::path::absolute(&env).unwrap_or(env), Origin::Env));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        if let Some(prefix) = dir.parent() {
            roots.push((prefix.join("share/deidgate/models"), Origin::Install));
        }
        roots.push((dir.join("models"), Origin::BesideExe));
    }
    roots.push((
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
        Origin::SourceTree,
    ));
    roots
}

/// Whether the model at `path` is there.
pub fn present(path: &Path, marker: Option<&str>) -> bool {
    match marker {
        Some(m) => path.join(m).is_file(),
        None => path.exists(),
    }
}

/// Resolve `rel`, a path of the embedded default, against `roots`. A
/// leading `models/` is what each root stands for.
pub fn resolve_default(
    rel: &Path,
    marker: Option<&str>,
    roots: &[(PathBuf, Origin)],
) -> (PathBuf, Origin, Vec<PathBuf>) {
    if rel.is_absolute() {
        return (rel.to_path_buf(), Origin::Absolute, vec![rel.to_path_buf()]);
    }
    let sub = rel.strip_prefix("models").unwrap_or(rel);
    let searched: Vec<(PathBuf, Origin)> = roots
        .iter()
        .map(|(root, origin)| (root.join(sub), *origin))
        .collect();
    let hit = searched.iter().find(|(p, _)| present(p, marker)).cloned();
    let all = searched.iter().map(|(p, _)| p.clone()).collect();
    match hit {
        Some((p, origin)) => (p, origin, all),
        None => (
            searched
                .first()
                .map(|(p, _)| p.clone())
                .unwrap_or_else(|| rel.to_path_buf()),
            Origin::NotFound,
            all,
        ),
    }
}

/// Resolve `p`, written in a config file whose folder is `base` (`None`:
/// no file, so the working directory, as before).
pub fn resolve_in_file(p: &Path, base: Option<&Path>) -> (PathBuf, Origin) {
    if p.is_absolute() {
        (p.to_path_buf(), Origin::Absolute)
    } else if let Some(base) = base {
        (base.join(p), Origin::ConfigFile)
    } else {
        (p.to_path_buf(), Origin::WorkingDir)
    }
}

/// Resolve one key in place and return its record. `from_file`: the key
/// was written in the user's config file (whose folder is `base`), rather
/// than taken from the embedded default.
pub fn resolve(
    key: ModelKey<'_>,
    from_file: bool,
    base: Option<&Path>,
    roots: &[(PathBuf, Origin)],
) -> ModelPath {
    let (path, origin, searched) = if key.path.as_os_str().is_empty() {
        (PathBuf::new(), Origin::WorkingDir, Vec::new())
    } else if from_file {
        let (p, o) = resolve_in_file(key.path, base);
        (p.clone(), o, vec![p])
    } else {
        resolve_default(key.path, key.marker, roots)
    };
    let found = !path.as_os_str().is_empty() && present(&path, key.marker);
    *key.path = path.clone();
    ModelPath {
        route: key.route,
        key: key.key,
        path,
        origin,
        searched,
        found,
        used: key.used,
    }
}

/// "a, b, c" for a list of paths.
pub fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_root_holding_the_model_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
        );
        std::fs::create_dir_all(a.join("chest")).unwrap();
        std::fs::create_dir_all(b.join("chest")).unwrap();
        std::fs::write(b.join("chest/generator.safetensors"), b"").unwrap();
        std::fs::create_dir_all(c.join("chest")).unwrap();
        std::fs::write(c.join("chest/generator.safetensors"), b"").unwrap();
        let roots = vec![
            (a.clone(), Origin::Env),
            (b.clone(), Origin::Install),
            (c.clone(), Origin::SourceTree),
        ];
        // `a` has the folder but not the model: it does not count.
        let (p, o, searched) = resolve_default(
            Path::new("models/chest"),
            Some("generator.safetensors"),
            &roots,
        );
        assert_eq!((p, o), (b.join("chest"), Origin::Install));
        assert_eq!(
            searched,
            vec![a.join("chest"), b.join("chest"), c.join("chest")]
        );
        // Found nowhere: the first candidate, every path searched.
        let (p, o, searched) = resolve_default(Path::new("models/photo/x.bin"), None, &roots);
        assert_eq!((p, o), (a.join("photo/x.bin"), Origin::NotFound));
        assert_eq!(searched.len(), 3);
        // Absolute paths are used as written.
        let (p, o, _) = resolve_default(&c.join("chest"), None, &roots);
        assert_eq!((p, o), (c.join("chest"), Origin::Absolute));
    }

    #[test]
    fn a_file_relative_path_resolves_against_the_files_folder() {
        let base = Path::new("/etc/deidgate");
        assert_eq!(
            resolve_in_file(Path::new("models/chest"), Some(base)),
            (
                PathBuf::from("/etc/deidgate/models/chest"),
                Origin::ConfigFile
            )
        );
        assert_eq!(
            resolve_in_file(Path::new("/opt/m"), Some(base)),
            (PathBuf::from("/opt/m"), Origin::Absolute)
        );
        assert_eq!(
            resolve_in_file(Path::new("m"), None),
            (PathBuf::from("m"), Origin::WorkingDir)
        );
    }
}
