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
    /// A DICOMweb archive (STOW-RS, queued with retry like `dicom`).
    Stow,
}

impl DestinationKind {
    /// Destinations with an outbox, a durable queue, a forwarder and dead
    /// letters (`dicom` and `stow`).
    pub fn is_queued(self) -> bool {
        matches!(self, DestinationKind::Dicom | DestinationKind::Stow)
    }
}

/// `auth` of a `type = "stow"` destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StowAuth {
    #[default]
    None,
    /// HTTP basic: `auth_file` holds `user:password`.
    Basic,
    /// `Authorization: Bearer`: `auth_file` holds the token.
    Bearer,
}

/// `[[destination]]` in gateway.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    pub name: String,
    /// `type = "folder"`, `"dicom"` or `"stow"`.
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
    /// STOW-RS: the DICOMweb base URL (instances are POSTed to `<url>/studies`).
    #[serde(default)]
    pub url: String,
    /// STOW-RS: `none`, `basic` or `bearer`.
    #[serde(default)]
    pub auth: StowAuth,
    /// STOW-RS: the file holding `user:password` (basic) or the token
    /// (bearer); credentials never go in the config text.
    #[serde(default)]
    pub auth_file: String,
    /// STOW-RS: send over plain `http://` to a host other than loopback.
    #[serde(default)]
    pub allow_http: bool,
    /// TLS: a PEM bundle of the CAs that sign the peer's certificate (empty:
    /// the built-in web roots).
    #[serde(default)]
    pub ca: String,
    /// TLS: our client certificate (PEM chain) and its key, both or neither.
    #[serde(default)]
    pub client_cert: String,
    #[serde(default)]
    pub client_key: String,
    /// DICOM TLS for `type = "dicom"`: `ca` is required (no system roots),
    /// `client_cert`/`client_key` optional; the peer's certificate must name
    /// `tls_server_name`, or `host` when that is empty.
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub tls_server_name: String,
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
                self.validate_dicom_tls()
            }
            DestinationKind::Stow => self.validate_stow(),
        }
    }

    fn validate_stow(&self) -> Result<(), String> {
        let n = &self.name;
        let url = self.url.trim();
        let rest = if let Some(r) = url.strip_prefix("https://") {
            r
        } else if let Some(r) = url.strip_prefix("http://") {
            let host = r.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            let loopback = host.starts_with("127.")
                || host.starts_with("localhost")
                || host.starts_with("[::1]");
            if !loopback && !self.allow_http {
                return Err(format!(
                    "[[destination]] {n}: url: plain http:// to {host:?} would send the data in clear; \
                     use https:// (or allow_http = true)"
                ));
            }
            r
        } else {
            return Err(format!(
                "[[destination]] {n}: url: expected http(s)://host[:port]/path for type = \"stow\""
            ));
        };
        if rest.split('/').next().unwrap_or("").is_empty() || url.contains(['?', '#', ' ']) {
            return Err(format!(
                "[[destination]] {n}: url: expected http(s)://host[:port]/path, without query"
            ));
        }
        match (self.auth, self.auth_file.is_empty()) {
            (StowAuth::None, false) => {
                return Err(format!(
                    "[[destination]] {n}: auth_file is set but auth = \"none\""
                ))
            }
            (StowAuth::Basic | StowAuth::Bearer, true) => {
                return Err(format!(
                    "[[destination]] {n}: auth = \"basic\" or \"bearer\" needs auth_file"
                ))
            }
            _ => {}
        }
        if self.client_cert.is_empty() != self.client_key.is_empty() {
            return Err(format!(
                "[[destination]] {n}: client_cert and client_key go together"
            ));
        }
        if self.tls || !self.tls_server_name.is_empty() {
            return Err(format!(
                "[[destination]] {n}: tls and tls_server_name are for type = \"dicom\"; \
                 a STOW-RS url uses TLS with https://"
            ));
        }
        Ok(())
    }

    /// DICOM TLS keys of a `type = "dicom"` destination.
    fn validate_dicom_tls(&self) -> Result<(), String> {
        let n = &self.name;
        if !self.tls {
            if !self.ca.is_empty()
                || !self.client_cert.is_empty()
                || !self.client_key.is_empty()
                || !self.tls_server_name.is_empty()
            {
                return Err(format!(
                    "[[destination]] {n}: ca, client_cert, client_key and tls_server_name need tls = true"
                ));
            }
            return Ok(());
        }
        if self.ca.is_empty() {
            return Err(format!(
                "[[destination]] {n}: tls = true needs ca (the PEM bundle of the CA that signs the peer)"
            ));
        }
        if self.client_cert.is_empty() != self.client_key.is_empty() {
            return Err(format!(
                "[[destination]] {n}: client_cert and client_key go together"
            ));
        }
        if !crate::net::tls::valid_server_name(self.tls_name()) {
            return Err(format!(
                "[[destination]] {n}: tls_server_name {:?} is not a DNS name or IP address",
                self.tls_name()
            ));
        }
        self.dicom_tls_config()
            .map(|_| ())
            .map_err(|e| format!("[[destination]] {n}: {e}"))
    }

    /// The name the peer's certificate must carry.
    pub fn tls_name(&self) -> &str {
        if self.tls_server_name.is_empty() {
            &self.host
        } else {
            &self.tls_server_name
        }
    }

    /// The TLS client configuration of a `type = "dicom"` destination with
    /// `tls = true` (None without TLS).
    pub fn dicom_tls_config(&self) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, String> {
        if !self.tls {
            return Ok(None);
        }
        crate::net::tls::client_config(&self.ca, &self.client_cert, &self.client_key)
            .map(Some)
            .map_err(|e| format!("ca / client_cert / client_key: {e}"))
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
