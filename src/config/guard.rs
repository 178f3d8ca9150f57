//! `[guard]` in gateway.toml: the output guard (see `crate::pipeline::guard`).

use serde::Deserialize;

/// What the guard does with an object whose output still holds one of its
/// own original identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnHit {
    /// Keep it back in quarantine with the reason (the default).
    Quarantine,
    /// Deliver it, count it and log a warning: for a site that has reviewed
    /// its overrides and accepts what they keep.
    Warn,
}

/// The output guard: before an object is handed to any sink its encoded
/// bytes are scanned for the object's own original identifiers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    pub enabled: bool,
    pub on_hit: OnHit,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            enabled: true,
            on_hit: OnHit::Quarantine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn on_by_default_quarantining_and_warn_is_a_choice() {
        let c = Config::embedded();
        assert!(c.guard.enabled);
        assert_eq!(c.guard.on_hit, OnHit::Quarantine);
        let c = Config::parse("[guard]\non_hit = \"warn\"\n", "s.toml").unwrap();
        assert_eq!(c.guard.on_hit, OnHit::Warn);
        assert!(c.guard.enabled);
        let e = Config::parse("[guard]\non_hit = \"pass\"\n", "s.toml").unwrap_err();
        assert!(e.to_string().contains("warn"), "{e}");
        let e = Config::parse("[guard]\nscan_pixels = true\n", "s.toml").unwrap_err();
        assert!(e.to_string().contains("scan_pixels"), "{e}");
    }
}
