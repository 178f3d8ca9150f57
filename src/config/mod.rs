//! `gateway.toml`: schema, the embedded default, and validation with errors
//! that name the file, the key and what was expected.

use crate::deid::options::Options;
use crate::deid::tagspec::{parse_private_tag, parse_tag};
use dicom_core::Tag;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod chest;
mod destination;
mod guard;
pub mod keystore;
pub mod loading;
mod mri;
pub mod paths;
mod photo;
mod text;
pub mod text_keep;

pub use chest::{ChestConfig, MissingWeights};
pub use destination::{DestinationConfig, DestinationKind, StowAuth};
pub use guard::{GuardConfig, OnHit};
pub use keystore::{Backend as KeystoreBackend, KeystoreConfig};
pub use loading::ModelLoading;
pub use mri::{MriConfig, MriModel};
pub use paths::{ModelPath, Origin};
pub use photo::{PhotoConfig, PhotoMode};
pub use text::TextConfig;

/// The embedded default configuration (config/gateway.toml).
pub const DEFAULT_TOML: &str = include_str!("../../config/gateway.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// `[keystore]`: sled (default) or a shared PostgreSQL database.
    #[serde(default)]
    pub keystore: KeystoreConfig,
    pub deid: DeidConfig,
    pub filter: FilterConfig,
    pub scp: ScpConfig,
    pub http: HttpConfig,
    pub photo: PhotoConfig,
    /// `[mri]`: the head MR face route (defaults when absent).
    #[serde(default)]
    pub mri: MriConfig,
    pub chest: ChestConfig,
    /// `[text]`: burned-in text in the pixels (defaults when absent).
    #[serde(default)]
    pub text: TextConfig,
    /// `[guard]`: the output guard (defaults when absent).
    #[serde(default)]
    pub guard: GuardConfig,
    /// `[[destination]]`: folder sinks and DICOM peers.
    #[serde(default, rename = "destination")]
    pub destinations: Vec<DestinationConfig>,
    /// How every model path was resolved (see [`paths`]); the paths in the
    /// route sections are already the resolved ones.
    #[serde(skip)]
    pub model_paths: Vec<ModelPath>,
    /// When the pixel routes load their models (set by the command).
    #[serde(skip)]
    pub model_loading: ModelLoading,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub ae_title: String,
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    /// MiB kept free on the data directory's file system: below it the
    /// receiver answers A700 and the pipeline pauses at half (0: off).
    pub disk_reserve_mb: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    #[serde(default)]
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownPublic {
    Remove,
    Keep,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeidConfig {
    pub patient_id_prefix: String,
    pub date_shift_min_days: i64,
    pub date_shift_max_days: i64,
    pub unknown_public: UnknownPublic,
    pub max_age_years: u32,
    pub options: Options,
    #[serde(default)]
    pub safe_private: Vec<SafePrivateEntry>,
    #[serde(default)]
    pub overrides: BTreeMap<String, OverrideSpec>,
}

/// One creator's private elements that Retain Safe Private keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafePrivateEntry {
    pub creator: String,
    pub tags: Vec<String>,
}

/// An override as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OverrideSpec {
    Simple(String),
    Replace { replace: String },
}

/// A validated override action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideAction {
    Keep,
    Remove,
    Empty,
    Hash,
    Replace(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub quarantine_burned_in_annotation: bool,
    /// SOP Class UIDs that always go to quarantine.
    #[serde(default)]
    pub quarantine_sop_classes: Vec<String>,
    /// Modalities (0008,0060) that always go to quarantine.
    #[serde(default)]
    pub quarantine_modalities: Vec<String>,
    /// Transfer syntax UIDs that always go to quarantine.
    #[serde(default)]
    pub quarantine_transfer_syntaxes: Vec<String>,
    /// An instance whose SOP Instance UID was already used by another
    /// patient (offline: another content).
    pub duplicate_sop_instance_uid: DuplicateUid,
}

/// What becomes of an instance whose SOP Instance UID another patient's
/// instance already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateUid {
    /// Kept back for a person to decide (released: a new UID).
    Quarantine,
    /// Delivered under a new UID keyed on the UID and the patient.
    NewUid,
}

impl FilterConfig {
    /// No configurable rule: for objects an operator released from
    /// quarantine. Parsing, the DICOMDIR refusal and de-identification still
    /// apply.
    pub fn released() -> FilterConfig {
        FilterConfig {
            quarantine_burned_in_annotation: false,
            quarantine_sop_classes: Vec::new(),
            quarantine_modalities: Vec::new(),
            quarantine_transfer_syntaxes: Vec::new(),
            duplicate_sop_instance_uid: DuplicateUid::NewUid,
        }
    }
}

/// The HTTP side (`[http]`): health, metrics, the re-identification API and
/// the operator page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `host:port`; empty disables the HTTP server.
    pub listen: String,
    /// PEM certificate chain; with `tls_key`, the server speaks HTTPS only.
    #[serde(default)]
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: String,
    /// Failed authentications per client address before it is locked out.
    pub max_auth_failures: u32,
    /// How long a locked-out address is refused (429), in seconds.
    pub lockout_secs: u64,
}

impl HttpConfig {
    /// Whether HTTPS is configured.
    pub fn tls(&self) -> bool {
        !self.tls_cert.is_empty()
    }

    fn validate(&self) -> Result<(), String> {
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            return Err("[http] tls_cert and tls_key: give both (HTTPS) or neither (HTTP)".into());
        }
        if self.max_auth_failures == 0 {
            return Err("[http] max_auth_failures: expected at least 1".into());
        }
        if self.lockout_secs == 0 {
            return Err("[http] lockout_secs: expected at least 1 second".into());
        }
        Ok(())
    }
}

/// The C-STORE receiver (`[scp]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScpConfig {
    /// Largest P-DATA PDU we announce and accept, in bytes.
    pub max_pdu_length: u32,
    pub max_associations: usize,
    /// Idle limit on a socket read or write, in seconds.
    pub read_timeout_secs: u64,
    /// Calling AE titles allowed to associate; empty allows any.
    pub allowed_calling_ae_titles: Vec<String>,
    /// Peer addresses ("10.1.2.3", "10.0.0.0/8", "::1"); empty allows any.
    pub allowed_ips: Vec<String>,
    /// Reject associations whose called AE title is not `[node] ae_title`.
    pub check_called_ae: bool,
    /// Instances refused with a failure status are kept for diagnosis in
    /// `<data_dir>/refused` up to this many MiB, oldest dropped first.
    pub keep_refused_mb: u64,
    /// DICOM TLS listener: our certificate chain and key (PEM), both or
    /// neither; empty or `tls_port = 0`: no TLS listener.
    #[serde(default)]
    pub tls_cert: String,
    #[serde(default)]
    pub tls_key: String,
    /// With a CA bundle here, a TLS peer must present a certificate it signs.
    #[serde(default)]
    pub tls_client_ca: String,
    /// The TLS port, next to the plain `[node] port`.
    #[serde(default)]
    pub tls_port: u16,
}

impl ScpConfig {
    /// Whether a DICOM TLS listener is configured.
    pub fn tls(&self) -> bool {
        self.tls_port != 0 && !self.tls_cert.is_empty()
    }

    fn validate_tls(&self) -> Result<(), String> {
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            return Err("[scp] tls_cert and tls_key: give both (DICOM TLS) or neither".into());
        }
        if self.tls_cert.is_empty() && !self.tls_client_ca.is_empty() {
            return Err("[scp] tls_client_ca needs tls_cert and tls_key".into());
        }
        if !self.tls() {
            return Ok(());
        }
        for (key, path) in [
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("tls_client_ca", &self.tls_client_ca),
        ] {
            if !path.is_empty() {
                std::fs::File::open(path)
                    .map_err(|e| format!("[scp] {key} {path:?}: cannot read: {e}"))?;
            }
        }
        crate::net::tls::server_config(&self.tls_cert, &self.tls_key, &self.tls_client_ca)
            .map_err(|e| format!("[scp] tls_cert / tls_key / tls_client_ca: {e}"))?;
        Ok(())
    }

    fn validate(&self) -> Result<(), String> {
        self.validate_tls()?;
        if !(4096..=16 << 20).contains(&self.max_pdu_length) {
            return Err(format!(
                "[scp] max_pdu_length: expected 4096 to 16777216 bytes, got {}",
                self.max_pdu_length
            ));
        }
        if self.max_associations == 0 {
            return Err("[scp] max_associations: expected at least 1".into());
        }
        if self.read_timeout_secs == 0 {
            return Err("[scp] read_timeout_secs: expected at least 1 second".into());
        }
        for ip in &self.allowed_ips {
            crate::net::access::IpRule::parse(ip)
                .map_err(|m| format!("[scp] allowed_ips: {ip:?}: {m}"))?;
        }
        for ae in &self.allowed_calling_ae_titles {
            if ae.trim().is_empty() || ae.len() > 16 || !ae.is_ascii() {
                return Err(format!(
                    "[scp] allowed_calling_ae_titles: expected 1 to 16 ASCII characters, got {ae:?}"
                ));
            }
        }
        Ok(())
    }
}

/// A configuration error: which file, which key, what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

impl Config {
    /// The embedded default.
    pub fn embedded() -> Config {
        // Parsed as an empty file over itself: every key is the default's.
        Self::parse("", "<embedded gateway.toml>").expect("embedded config is valid")
    }

    /// Load `path`, or the embedded default when `None`. Keys missing from the
    /// file keep their default values. Relative model paths written in the
    /// file resolve against the file's folder; those of the embedded default
    /// are searched for (see [`paths`]).
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Ok(Self::embedded()),
            Some(p) => {
                let name = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    file: name.clone(),
                    message: format!("cannot read: {e}"),
                })?;
                let base = std::path::absolute(p)
                    .ok()
                    .and_then(|a| a.parent().map(Path::to_path_buf));
                Self::parse_at(&text, &name, base.as_deref())
            }
        }
    }

    /// Parse `text` layered over the embedded default, then validate.
    /// Relative model paths in `text` stay relative to the working
    /// directory (there is no file folder to resolve them against).
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        Self::parse_at(text, file, None)
    }

    /// [`Config::parse`] for a file whose folder is `base`: relative model
    /// paths written in `text` resolve against it.
    pub fn parse_at(text: &str, file: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError {
            file: file.to_string(),
            message,
        };
        let mut defaults: toml::Table = DEFAULT_TOML.parse().expect("embedded config parses");
        let user: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err(e.to_string()))?;
        let in_user = |section: &str, key: &str| {
            user.get(section)
                .and_then(|s| s.as_table())
                .is_some_and(|s| s.contains_key(key))
        };
        let from_user: Vec<(&str, &str)> = [
            ("chest", "weights"),
            ("mri", "weights"),
            ("photo", "weights"),
            ("photo", "generator"),
            ("text", "weights"),
        ]
        .into_iter()
        .filter(|(s, k)| in_user(s, k))
        .collect();
        merge(&mut defaults, user);
        let mut cfg: Config = toml::Value::Table(defaults)
            .try_into()
            .map_err(|e: toml::de::Error| err(e.to_string()))?;
        cfg.validate().map_err(err)?;
        cfg.resolve_model_paths(&from_user, base);
        Ok(cfg)
    }

    /// Resolve every route's model paths in place (see [`paths`]):
    /// `from_user` lists the (section, key) pairs the user's file wrote.
    fn resolve_model_paths(&mut self, from_user: &[(&str, &str)], base: Option<&Path>) {
        let roots = paths::search_roots();
        let mut keys = self.mri.model_keys();
        keys.extend(self.photo.model_keys());
        keys.extend(self.chest.model_keys());
        keys.extend(self.text.model_keys());
        let resolved = keys
            .into_iter()
            .map(|k| {
                let from_file = from_user.contains(&(k.section, k.name));
                paths::resolve(k, from_file, base, &roots)
            })
            .collect();
        self.model_paths = resolved;
    }

    /// The resolved model paths `route` uses under this configuration.
    pub fn models_of(&self, route: &str) -> Vec<&ModelPath> {
        self.model_paths
            .iter()
            .filter(|m| m.route == route && m.used)
            .collect()
    }

    /// `route`'s model files and where each was found, on one line (the
    /// start-up report and `deidgate check`).
    pub fn describe_models(&self, route: &str) -> String {
        let models = self.models_of(route);
        if models.is_empty() {
            return "no model files".to_string();
        }
        models
            .iter()
            .map(|m| format!("{} {} ({})", m.key, m.path.display(), m.origin.describe()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn validate(&self) -> Result<(), String> {
        self.keystore.validate()?;
        if self.destinations.is_empty() {
            return Err("[[destination]]: at least one destination is needed".into());
        }
        let mut names = std::collections::HashSet::new();
        for d in &self.destinations {
            d.validate()?;
            if !names.insert(d.name.as_str()) {
                return Err(format!("[[destination]] name {:?} is used twice", d.name));
            }
        }
        self.deid
            .options
            .validate()
            .map_err(|m| format!("[deid.options]: {m}"))?;
        let d = &self.deid;
        if d.date_shift_min_days > d.date_shift_max_days {
            return Err(format!(
                "[deid] date_shift_min_days ({}) must not exceed date_shift_max_days ({})",
                d.date_shift_min_days, d.date_shift_max_days
            ));
        }
        if d.date_shift_min_days <= 0
            && d.date_shift_max_days >= 0
            && d.options.retain_longitudinal_modified_dates
        {
            return Err(
                "[deid] the date shift range must not contain 0: a zero shift keeps real dates"
                    .into(),
            );
        }
        if d.patient_id_prefix.len() > 64 - 16 || !d.patient_id_prefix.is_ascii() {
            return Err("[deid] patient_id_prefix: expected at most 48 ASCII characters".into());
        }
        let ae = &self.node.ae_title;
        if ae.is_empty() || ae.len() > 16 || !ae.is_ascii() || ae.contains('\\') {
            return Err(format!(
                "[node] ae_title: expected 1 to 16 ASCII characters, got {ae:?}"
            ));
        }
        self.scp.validate()?;
        self.http.validate()?;
        self.mri.validate()?;
        self.chest.validate()?;
        self.text.validate()?;
        self.overrides().map(|_| ())?;
        self.safe_private_tags().map(|_| ())
    }

    /// Per-tag overrides, validated.
    pub fn overrides(&self) -> Result<Vec<(Tag, OverrideAction)>, String> {
        let mut out = Vec::new();
        for (key, spec) in &self.deid.overrides {
            let tag = parse_tag(key).map_err(|m| format!("[deid.overrides] {key:?}: {m}"))?;
            let action = match spec {
                OverrideSpec::Replace { replace } => OverrideAction::Replace(replace.clone()),
                OverrideSpec::Simple(s) => match s.as_str() {
                    "keep" => OverrideAction::Keep,
                    "remove" => OverrideAction::Remove,
                    "empty" => OverrideAction::Empty,
                    "hash" => OverrideAction::Hash,
                    other => {
                        return Err(format!(
                            "[deid.overrides] {key:?}: expected \"keep\", \"remove\", \"empty\", \
                             \"hash\" or {{ replace = \"...\" }}, got {other:?}"
                        ))
                    }
                },
            };
            out.push((tag, action));
        }
        Ok(out)
    }

    /// Retain Safe Private allow-list as (creator, group, element low byte).
    pub fn safe_private_tags(&self) -> Result<Vec<(String, u16, u8)>, String> {
        let mut out = Vec::new();
        for (i, e) in self.deid.safe_private.iter().enumerate() {
            for t in &e.tags {
                let (g, el) = parse_private_tag(t)
                    .map_err(|m| format!("[[deid.safe_private]] entry {}: {t:?}: {m}", i + 1))?;
                out.push((e.creator.trim().to_string(), g, el));
            }
        }
        Ok(out)
    }

    /// The data directory (key store, secrets, spool, quarantine).
    pub fn data_dir(&self) -> &Path {
        &self.node.data_dir
    }

    /// Where the secrets file lives.
    pub fn secrets_path(&self) -> PathBuf {
        if self.secrets.path.is_empty() {
            self.node.data_dir.join("secrets.toml")
        } else {
            PathBuf::from(&self.secrets.path)
        }
    }
}

/// Deep-merge `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_the_research_profile() {
        let c = Config::embedded();
        assert_eq!(c.node.ae_title, "DEIDGATE");
        assert_eq!(c.node.port, 11112);
        assert_eq!(c.node.data_dir, PathBuf::from("./deidgate-data"));
        assert_eq!(c.deid.options, Options::default());
        assert!(c.deid.options.retain_longitudinal_modified_dates);
        assert!(c.deid.options.retain_patient_characteristics);
        assert_eq!(
            c.secrets_path(),
            PathBuf::from("./deidgate-data/secrets.toml")
        );
    }

    #[test]
    fn partial_file_keeps_defaults() {
        let c = Config::parse(
            "[node]\nport = 4000\n[deid.options]\nclean_descriptors = true\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.node.port, 4000);
        assert_eq!(c.node.ae_title, "DEIDGATE");
        assert!(c.deid.options.clean_descriptors);
        assert!(c.deid.options.retain_patient_characteristics);
    }

    #[test]
    fn errors_name_file_key_and_expectation() {
        let e = Config::parse("[node]\nport = \"eleven\"\n", "site.toml").unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with("site.toml:"), "{m}");
        assert!(m.contains("port"), "{m}");
        let e = Config::parse("[deid]\nunknown_key = 1\n", "site.toml").unwrap_err();
        assert!(e.to_string().contains("unknown_key"), "{e}");
        let e =
            Config::parse("[deid.overrides]\n\"(0008,1030)\" = \"shred\"\n", "s.toml").unwrap_err();
        assert!(e.to_string().contains("expected \"keep\""), "{e}");
        let e = Config::parse(
            "[deid.options]\nretain_longitudinal_full_dates = true\n",
            "s.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("exclude each other"), "{e}");
    }

    #[test]
    fn chest_section_defaults_and_errors() {
        let c = Config::embedded();
        assert!(c.chest.enabled);
        // The embedded default's relative folder is searched for; in a test
        // build it is found in the source tree.
        assert!(
            c.chest.weights.is_absolute(),
            "{}",
            c.chest.weights.display()
        );
        assert!(c.chest.weights.ends_with("models/chest/distilled-64"));
        assert_eq!(c.chest.missing_weights, MissingWeights::Quarantine);
        let e = Config::parse("[chest]\nmissing_weights = \"pass\"\n", "site.toml").unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with("site.toml:"), "{m}");
        assert!(
            m.contains("missing_weights") && m.contains("quarantine"),
            "{m}"
        );
        let e = Config::parse("[chest]\nweights = \"\"\n", "site.toml").unwrap_err();
        assert!(e.to_string().contains("[chest] weights: expected"), "{e}");
        let c = Config::parse("[chest]\nenabled = false\nweights = \"\"\n", "s.toml").unwrap();
        assert!(!c.chest.enabled);
    }

    #[test]
    fn model_paths_from_the_file_resolve_against_its_folder_the_rest_is_searched() {
        let c = Config::parse_at(
            "[photo]\nweights = \"w/mtcnn.safetensors\"\n[mri]\nweights = \"/abs/mri\"\n",
            "/etc/deidgate/gateway.toml",
            Some(Path::new("/etc/deidgate")),
        )
        .unwrap();
        assert_eq!(
            c.photo.weights,
            PathBuf::from("/etc/deidgate/w/mtcnn.safetensors")
        );
        assert_eq!(c.mri.weights, PathBuf::from("/abs/mri"));
        let photo = c.models_of("photo");
        assert_eq!(photo.len(), 1, "replace mode does not use the generator");
        assert_eq!(photo[0].origin, Origin::ConfigFile);
        assert_eq!(photo[0].searched, vec![c.photo.weights.clone()]);
        assert!(!photo[0].found);
        // Keys the file does not write come from the embedded default and
        // are searched for, whatever the working directory.
        let chest = c.models_of("chest")[0];
        assert!(chest.searched.len() >= 2, "{:?}", chest.searched);
        assert!(c.chest.weights.is_absolute());
        assert_eq!(c.models_of("mri")[0].origin, Origin::Absolute);
    }

    #[test]
    fn overrides_accept_keywords_and_tags() {
        let c = Config::parse(
            "[deid.overrides]\n\"StudyDescription\" = \"keep\"\n\"(0010,4000)\" = { replace = \"none\" }\n",
            "s.toml",
        )
        .unwrap();
        let o = c.overrides().unwrap();
        assert!(o.contains(&(Tag(0x0008, 0x1030), OverrideAction::Keep)));
        assert!(o.contains(&(Tag(0x0010, 0x4000), OverrideAction::Replace("none".into()))));
    }
}
