//! The shared key store on PostgreSQL, for gateway replicas.
//!
//! Same records as [`SledKeyStore`](super::SledKeyStore), sealed with the
//! same [`RecordCipher`] and associated data ([`Kind::aad`]), so the database
//! never holds an identity in clear and a sealed value opens only under the
//! table and key it was written for. Writes are `INSERT .. ON CONFLICT DO
//! NOTHING`: the first writer wins, whichever replica it is. The audit chain
//! is one chain for all replicas ([`audit`]).
//!
//! The client is tokio-postgres with a deadpool connection pool, on a small
//! runtime owned by the store. [`KeyStore`] is synchronous (the pipeline
//! workers are plain threads, the HTTP handlers call it from
//! `spawn_blocking`), so each call runs its query on that runtime and waits
//! for the answer on a channel: this works from any thread, including one
//! inside another runtime, where `block_on` would panic.
//!
//! While the database does not answer, every call fails after a bounded wait
//! (connect 5 s, call 30 s) and sets the `key_store` fault on `/healthz`;
//! the workers keep the instance in the spool and retry with back-off, so
//! nothing is emitted without its record. The next successful call clears it.
//!
//! The pipeline workers batch their reverse-map writes ([`batch`]): one
//! transaction per settle, before any of the settled outputs is emitted.

mod audit;
mod batch;
mod migrate;
mod schema;
mod series_claims;
mod users;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::crypto::RecordCipher;
use super::kind::Kind;
use super::secrets::Secrets;
use super::{KeyStore, KnownKeys, PatientRecord, KNOWN_KEYS_CAP};
use crate::config::KeystoreConfig;
use crate::health::{self, Fault};

pub use migrate::{migrate_from_sled, MigrateReport};
pub use series_claims::SeriesClaim;

/// Longest wait for a new connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one call (pool wait + queries).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// [`KeyStore`] backed by a PostgreSQL database shared by replicas.
pub struct PgKeyStore {
    /// `Some` until drop (a runtime must be shut down without blocking when
    /// the store is dropped inside another runtime).
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    cipher: RecordCipher,
    key_id: String,
    known: KnownKeys,
    /// Tables present and sealed with our key id (checked once, on the
    /// first call that reaches the database).
    ready: AtomicBool,
    ready_lock: Mutex<()>,
    /// Names this store in the per-thread write batches ([`batch`]).
    id: u64,
}

/// The next [`PgKeyStore::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The database's tables are sealed with another key than the secrets file's.
#[derive(Debug, thiserror::Error)]
#[error(
    "key store table {table} ({rows} records) is sealed with key id {stored}, but the loaded \
     secrets have key id {loaded}: every replica must use the same secrets file"
)]
pub struct KeyIdMismatch {
    table: &'static str,
    rows: i64,
    stored: String,
    loaded: String,
}

impl std::fmt::Debug for PgKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgKeyStore")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl Drop for PgKeyStore {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl PgKeyStore {
    /// Connects as `[keystore]` says, creates the tables when missing and
    /// checks that they are sealed with `secrets`' key.
    pub fn connect(cfg: &KeystoreConfig, secrets: &Secrets) -> Result<Self> {
        Self::connect_url(&cfg.url, cfg.password()?, cfg.pool_size, secrets)
    }

    /// As [`Self::connect`], from the parts.
    pub fn connect_url(
        url: &str,
        password: Option<String>,
        pool_size: usize,
        secrets: &Secrets,
    ) -> Result<Self> {
        let mut pg: tokio_postgres::Config = url.parse().context("[keystore] url")?;
        if pg.get_password().is_some() {
            bail!("[keystore] url must not carry the password");
        }
        if let Some(pw) = password {
            pg.password(pw);
        }
        pg.connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .application_name("deidgate");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("keystore-pg")
            .enable_all()
            .build()
            .context("starting the key store's database runtime")?;
        let mgr = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _g = rt.enter();
            Pool::builder(mgr)
                .max_size(pool_size.max(1))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(CALL_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .recycle_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .context("building the key store's connection pool")?
        };
        let store = Self {
            rt: Some(rt),
            pool,
            cipher: RecordCipher::new(&secrets.encryption_key),
            key_id: secrets.key_id.clone(),
            known: KnownKeys::new(KNOWN_KEYS_CAP),
            ready: AtomicBool::new(false),
            ready_lock: Mutex::new(()),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        };
        // A database that does not answer yet is not a reason not to start
        // (the spool takes instances meanwhile and the workers hold them);
        // one sealed with another key is.
        if let Err(e) = store.ensure_ready() {
            if e.downcast_ref::<KeyIdMismatch>().is_some() {
                return Err(e);
            }
            tracing::warn!(
                error = %format!("{e:#}"),
                "the PostgreSQL key store does not answer yet; instances are held until it does"
            );
        }
        Ok(store)
    }

    /// Creates the tables and checks the key ids, once.
    fn ensure_ready(&self) -> Result<()> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let _g = self.ready_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let checked = self.create_schema().and_then(|()| self.check_key_ids());
        if let Err(e) = &checked {
            health::set(Fault::KeyStore, format!("{e:#}"));
        }
        checked?;
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Key id of the encryption key this store seals with.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Runs `fut` on the store's runtime and waits for it from this thread,
    /// once the tables are checked. A failure sets the `key_store` fault, a
    /// success clears it.
    fn call<T, F>(&self, what: &str, fut: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        self.ensure_ready()?;
        self.call_raw(what, fut)
    }

    /// [`Self::call`] without the readiness check (for the check itself).
    fn call_raw<T, F>(&self, what: &str, fut: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| anyhow!("key store closed"))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let r = match tokio::time::timeout(CALL_TIMEOUT, fut).await {
                Ok(r) => r,
                Err(_) => Err(anyhow!("no answer within {} s", CALL_TIMEOUT.as_secs())),
            };
            let _ = tx.send(r);
        });
        let r = rx
            .recv()
            .map_err(|_| anyhow!("the database task stopped"))
            .and_then(|r| r)
            .with_context(|| format!("PostgreSQL key store: {what}"));
        match &r {
            Ok(_) => health::clear(Fault::KeyStore),
            Err(e) => health::set(Fault::KeyStore, format!("{e:#}")),
        }
        r
    }

    fn create_schema(&self) -> Result<()> {
        let pool = self.pool.clone();
        self.call_raw("creating the tables", async move {
            let mut client = pool.get().await?;
            let present: i64 = client
                .query_one(
                    "SELECT count(*) FROM unnest($1::text[]) t WHERE to_regclass(t) IS NOT NULL",
                    &[&schema::TABLES.to_vec()],
                )
                .await?
                .get(0);
            if present as usize == schema::TABLES.len() {
                return Ok(());
            }
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::DDL_LOCK])
                .await?;
            tx.batch_execute(&schema::ddl()).await?;
            tx.execute(
                "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, $1) ON CONFLICT (id) DO NOTHING",
                &[&crate::keystore::audit::GENESIS_HASH],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Labels empty tables with this key id; refuses a table sealed under
    /// another one (a wrong secrets file) with both ids named.
    fn check_key_ids(&self) -> Result<()> {
        for kind in Kind::ALL {
            let pool = self.pool.clone();
            let key_id = self.key_id.clone();
            let (stored, rows) = self.call_raw("checking the key id", async move {
                let client = pool.get().await?;
                client
                    .execute(
                        "INSERT INTO keystore_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                        &[&kind.meta_key(), &key_id],
                    )
                    .await?;
                let stored: String = client
                    .query_one(
                        "SELECT value FROM keystore_meta WHERE name = $1",
                        &[&kind.meta_key()],
                    )
                    .await?
                    .get(0);
                let rows: i64 = client
                    .query_one(&schema::count_sql(kind), &[])
                    .await?
                    .get(0);
                if stored != key_id && rows == 0 {
                    client
                        .execute(
                            "UPDATE keystore_meta SET value = $2 WHERE name = $1",
                            &[&kind.meta_key(), &key_id],
                        )
                        .await?;
                    return Ok((key_id, rows));
                }
                Ok((stored, rows))
            })?;
            if stored != self.key_id {
                return Err(KeyIdMismatch {
                    table: kind.tree_name(),
                    rows,
                    stored,
                    loaded: self.key_id.clone(),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Number of records in the table of `kind`.
    pub(crate) fn count(&self, kind: Kind) -> Result<u64> {
        let pool = self.pool.clone();
        self.call("counting records", async move {
            let client = pool.get().await?;
            let n: i64 = client
                .query_one(&schema::count_sql(kind), &[])
                .await?
                .get(0);
            Ok(n as u64)
        })
    }

    /// Insert-only write; `plaintext` is only computed when the key is not
    /// known to exist.
    fn put_sealed(
        &self,
        kind: Kind,
        key: &str,
        plaintext: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<()> {
        let name = kind.tree_name();
        if key.is_empty() {
            bail!("empty key for table {name}");
        }
        if self.known.contains(name, key) {
            return Ok(());
        }
        let sealed = self.cipher.seal(&kind.aad(key.as_bytes()), &plaintext()?);
        let Some(sealed) = self.try_defer(kind, key, sealed) else {
            return Ok(());
        };
        let pool = self.pool.clone();
        let owned = key.to_string();
        self.call("writing a record", async move {
            let client = pool.get().await?;
            let stmt = client.prepare_cached(&schema::insert_sql(kind)).await?;
            client.execute(&stmt, &[&owned, &sealed]).await?;
            Ok(())
        })
        .with_context(|| format!("writing table {name}"))?;
        self.known.insert(name, key);
        Ok(())
    }

    /// The sealed value under `key`, as stored.
    fn get_sealed(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>> {
        if let Some(sealed) = self.pending(kind, key) {
            return Ok(Some(sealed));
        }
        let pool = self.pool.clone();
        let owned = key.to_string();
        self.call("reading a record", async move {
            let client = pool.get().await?;
            let stmt = client.prepare_cached(&schema::select_sql(kind)).await?;
            let row = client.query_opt(&stmt, &[&owned]).await?;
            Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
        })
        .with_context(|| format!("reading table {}", kind.tree_name()))
    }

    fn get_opened(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>> {
        let name = kind.tree_name();
        let Some(sealed) = self.get_sealed(kind, key)? else {
            return Ok(None);
        };
        let plain = self
            .cipher
            .open(&kind.aad(key.as_bytes()), &sealed)
            .with_context(|| format!("opening {name} record {key}"))?;
        Ok(Some(plain))
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, kind: Kind, key: &str) -> Result<Option<T>> {
        self.get_opened(kind, key)?
            .map(|plain| {
                serde_json::from_slice(&plain)
                    .with_context(|| format!("decoding {} record {key}", kind.tree_name()))
            })
            .transpose()
    }

    /// Every key of `kind`'s table (for the migration check).
    pub(crate) fn keys(&self, kind: Kind) -> Result<Vec<String>> {
        let pool = self.pool.clone();
        self.call("listing keys", async move {
            let client = pool.get().await?;
            let rows = client
                .query(
                    &format!("SELECT key FROM {} ORDER BY key", kind.tree_name()),
                    &[],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
        })
    }

    /// Opens the record under `key` of the table named `tree` (any kind).
    pub(crate) fn open_plain(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>> {
        self.get_opened(kind, key)
    }

    /// Seals and inserts one record exported from another store.
    pub(crate) fn import_plain(&self, kind: Kind, key: &str, plain: Vec<u8>) -> Result<()> {
        self.put_sealed(kind, key, || Ok(plain))
    }
}

impl KeyStore for PgKeyStore {
    fn put_patient(&self, pseudonym: &str, rec: &PatientRecord) -> Result<()> {
        self.put_sealed(Kind::Patient, pseudonym, || {
            serde_json::to_vec(rec).context("encoding patient record")
        })
    }

    fn put_uid(&self, new_uid: &str, original: &str) -> Result<()> {
        self.put_sealed(Kind::Uid, new_uid, || {
            serde_json::to_vec(original).context("encoding uid record")
        })
    }

    fn put_accession(&self, pseudonym: &str, original: &str) -> Result<()> {
        self.put_sealed(Kind::Accession, pseudonym, || {
            serde_json::to_vec(original).context("encoding accession record")
        })
    }

    fn get_patient(&self, pseudonym: &str) -> Result<Option<PatientRecord>> {
        self.get_json(Kind::Patient, pseudonym)
    }

    fn get_uid(&self, new_uid: &str) -> Result<Option<String>> {
        self.get_json(Kind::Uid, new_uid)
    }

    fn get_accession(&self, pseudonym: &str) -> Result<Option<String>> {
        self.get_json(Kind::Accession, pseudonym)
    }

    fn put_pixels(&self, sop_uid: &str, original: &[u8]) -> Result<()> {
        self.put_sealed(Kind::Pixels, sop_uid, || Ok(original.to_vec()))
    }

    fn get_pixels(&self, sop_uid: &str) -> Result<Option<Vec<u8>>> {
        self.get_opened(Kind::Pixels, sop_uid)
    }

    /// Every write is committed (and, with PostgreSQL's default
    /// `synchronous_commit`, durable) before `put_*` returns, except on a
    /// thread that defers its writes ([`batch`]): there this writes the
    /// thread's batch in one transaction.
    fn flush(&self) -> Result<()> {
        self.flush_batch().map(|_| ())
    }

    fn audit_event(&self, action: &str, subject: &str, reason: &str, outcome: &str) -> Result<()> {
        self.audit_append("gateway", action, subject, reason, None, outcome)
            .map(|_| ())
    }
}
