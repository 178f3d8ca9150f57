//! The learned path of the photo route (MedSem-DeID style, issue 7 item 5):
//! an identity encoder, a frozen medical-semantics encoder and a decoder that
//! renders a face from (semantic map, replacement identity). Used by
//! `[photo] mode = "generate"`, trained by `deidgate train photo`
//! (`crate::train::photo`). No trained weights ship, so generate mode
//! refuses until a site trains them; design and losses are in
//! `models/photo/MODEL.md`.

pub mod config;
pub mod crop;
pub mod decoder;
pub mod generate;
pub mod identity;
pub mod layers;
pub mod model;
pub mod semantics;

pub use config::MedSemConfig;
pub use generate::generate_faces;
pub use model::MedSem;

/// Where generate mode looks for `config.json` and the weights.
pub const DEFAULT_DIR: &str = "models/photo/medsem";
