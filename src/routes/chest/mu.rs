//! `[chest] mu`: which trained model the route uses, chosen by its bound.
//! A learned field is only evaluated at the μ it was trained under, so a
//! configured μ selects a model trained at that μ (the weights folder
//! itself, or its `mu_<μ>/` subfolder as `deidgate train chest` writes
//! them); it never rescales a field to another bound. A μ with no trained
//! model is a configuration error, named with the μ that do exist.

use crate::models::chest::ChestConfig as ModelConfig;
use std::path::{Path, PathBuf};

/// Bounds closer than this are the same μ (config.json stores an f32).
const SAME: f32 = 1e-6;

/// The folder of the model trained at `mu` under `weights`. A folder whose
/// own config.json cannot be read is returned as is: the route's
/// missing-weights handling reports it.
pub fn model_for(weights: &Path, mu: f32) -> anyhow::Result<PathBuf> {
    let trained = trained_bounds(weights);
    if trained.is_empty() {
        return Ok(weights.to_path_buf());
    }
    match trained.iter().find(|(m, _)| (m - mu).abs() < SAME) {
        Some((_, dir)) => Ok(dir.clone()),
        None => {
            let have: Vec<String> = trained.iter().map(|(m, _)| m.to_string()).collect();
            anyhow::bail!(
                "[chest] mu = {mu}: no model trained at that bound under {} (trained: {}); \
                 train one with `deidgate train chest --mu {mu}`, or remove mu to use the \
                 folder's own model",
                weights.display(),
                have.join(", ")
            )
        }
    }
}

/// The μ of the model in `weights` and of each `mu_*/` subfolder holding
/// a trained model, in that order.
fn trained_bounds(weights: &Path) -> Vec<(f32, PathBuf)> {
    let mut dirs = vec![weights.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(weights) {
        let mut subs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("mu_"))
            })
            .collect();
        subs.sort();
        dirs.extend(subs);
    }
    dirs.into_iter()
        .filter(|d| d.join("generator.safetensors").is_file())
        .filter_map(|d| Some((ModelConfig::read(&d.join("config.json")).ok()?.mu, d)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(dir: &Path, mu: f32) {
        std::fs::create_dir_all(dir).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/chest/config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
        cfg["mu"] = serde_json::json!(mu);
        std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
        std::fs::write(dir.join("generator.safetensors"), b"").unwrap();
    }

    #[test]
    fn a_bound_selects_the_model_trained_at_it() {
        let tmp = tempfile::tempdir().unwrap();
        let w = tmp.path();
        model(w, 0.01);
        model(&w.join("mu_0.02"), 0.02);
        assert_eq!(model_for(w, 0.01).unwrap(), w);
        assert_eq!(model_for(w, 0.02).unwrap(), w.join("mu_0.02"));
        let e = model_for(w, 0.04).unwrap_err().to_string();
        assert!(
            e.contains("mu = 0.04") && e.contains("trained: 0.01, 0.02"),
            "{e}"
        );
        // No trained model at all: left to the missing-weights handling.
        let empty = tmp.path().join("none");
        assert_eq!(model_for(&empty, 0.04).unwrap(), empty);
    }
}
