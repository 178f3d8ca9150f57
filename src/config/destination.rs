//! `[[destination]]` in gateway.toml: where de-identified objects go.

use serde::Deserialize;

/// `type` of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// A folder on this machine (durable copy).
    Folder,
    /// A DICOM peer (C-STORE, queued with retry).
    Dicom,
}

/// `[[destination]]` in gateway.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    pub name: String,
    /// `type = "folder"` or `"dicom"`.
    #[serde(rename = "type")]
    pub kind: DestinationKind,
    /// Folder sinks: where files go; empty means `<data_dir>/out`.
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub ae_title: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u16,
    /// Our AE title towards this peer; empty means `[node] ae_title`.
    #[serde(default)]
    pub calling_ae_title: String,
    #[serde(default = "d_retry_initial")]
    pub retry_initial_secs: u64,
    #[serde(default = "d_retry_max")]
    pub retry_max_secs: u64,
    #[serde(default = "d_max_age")]
    pub max_age_hours: u64,
    #[serde(default = "d_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Only these modalities (empty: all).
    #[serde(default)]
    pub modalities: Vec<String>,
    /// Only instances received from these calling AE titles (empty: all).
    #[serde(default)]
    pub calling_ae_titles: Vec<String>,
}

fn d_retry_initial() -> u64 {
    2
}
fn d_retry_max() -> u64 {
    300
}
fn d_max_age() -> u64 {
    72
}
fn d_timeout() -> u64 {
    30
}
fn d_batch() -> usize {
    64
}

impl DestinationConfig {
    /// Check one entry; errors name the destination and the key.
    pub fn validate(&self) -> Result<(), String> {
        let n = &self.name;
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "[[destination]] name {n:?}: expected letters, digits, - or _"
            ));
        }
        match self.kind {
            DestinationKind::Folder => Ok(()),
            DestinationKind::Dicom => {
                if self.ae_title.is_empty() || self.ae_title.len() > 16 {
                    return Err(format!(
                        "[[destination]] {n}: ae_title: expected 1 to 16 characters"
                    ));
                }
                if self.host.is_empty() || self.port == 0 {
                    return Err(format!(
                        "[[destination]] {n}: host and port are required for type = \"dicom\""
                    ));
                }
                Ok(())
            }
        }
    }

    pub fn accepts(&self, modality: &str, calling_ae: Option<&str>) -> bool {
        let m_ok = self.modalities.is_empty()
            || self
                .modalities
                .iter()
                .any(|m| m.eq_ignore_ascii_case(modality));
        let ae_ok = self.calling_ae_titles.is_empty()
            || calling_ae
                .is_some_and(|a| self.calling_ae_titles.iter().any(|x| x.trim() == a.trim()));
        m_ok && ae_ok
    }
}
