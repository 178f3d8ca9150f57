//! When the pixel routes load their models. Not read from gateway.toml: the
//! command decides (the gateway at start, offline runs on first use).

/// When a route loads its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelLoading {
    /// At start: a model that does not load is reported before the first
    /// association, and no instance waits for a load (`serve`, `check`).
    #[default]
    AtStart,
    /// When the route first claims an object: an offline run over a folder
    /// without radiographs never pays for the chest model (`anonymize`).
    OnFirstUse,
}
