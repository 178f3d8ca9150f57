//! What `serve` and `anonymize` share: the data directory, the secrets, the
//! key store and the de-identification engine, all from one configuration.

use crate::config::Config;
use crate::deid::Deidentifier;
use crate::keystore::{KeyStore, Secrets, SledKeyStore};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An opened data directory, ready to de-identify.
pub struct Runtime {
    pub config: Config,
    pub store: Arc<SledKeyStore>,
    pub deid: Deidentifier,
    /// Every pixel route of the registry, loaded or not.
    pub routes: crate::routes::PixelRoutes,
    /// The first patient of each SOP Instance UID (the gateway's claims).
    pub claims: crate::pipeline::duplicates::StoreClaims,
}

impl Runtime {
    /// Open (creating on first use) the data directory of `config`: mode 0700,
    /// secrets (mode 0600) and the key store.
    pub fn open(config: Config) -> Result<Runtime> {
        let dir = config.data_dir().to_path_buf();
        create_private_dir(&dir)?;
        let secrets = Secrets::load_or_init(&config.secrets_path())?;
        let store = Arc::new(open_keystore(&config, &secrets)?);
        let dyn_store: Arc<dyn KeyStore> = store.clone();
        let deid = Deidentifier::from_config(&config, secrets.pseudonym_key, Some(dyn_store))
            .map_err(|m| anyhow::anyhow!("configuration: {m}"))?;
        let routes = crate::routes::PixelRoutes::load(&config)?;
        let claims = crate::pipeline::duplicates::StoreClaims::open(
            store.db(),
            deid.pseudonymizer().clone(),
        )?;
        Ok(Runtime {
            config,
            store,
            deid,
            routes,
            claims,
        })
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        self.config.data_dir().join("quarantine")
    }
}

/// The key store `[keystore]` names: sled in the data directory, or the
/// shared PostgreSQL database (with the local sled database kept for what
/// stays on this replica: spool log, forward queues, claims).
pub fn open_keystore(config: &Config, secrets: &Secrets) -> Result<SledKeyStore> {
    let dir = keystore_dir(config.data_dir());
    match config.keystore.backend {
        crate::config::KeystoreBackend::Sled => SledKeyStore::open(&dir, secrets),
        crate::config::KeystoreBackend::Postgres => {
            let pg = crate::keystore::PgKeyStore::connect(&config.keystore, secrets)
                .context("connecting to the PostgreSQL key store")?;
            SledKeyStore::open_shared(&dir, secrets, Arc::new(pg))
        }
    }
}

/// Where the sled key store lives inside the data directory.
pub fn keystore_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keystore")
}

/// Create `dir` (and parents) readable by its owner only.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    }
    Ok(())
}
