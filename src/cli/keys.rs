//! `deidgate keys`: secrets, rotation of the encryption key, backups.

use super::args::KeysCmd;
use crate::config::Config;
use crate::keystore::{KeyStore, Secrets, SledKeyStore};
use crate::runtime::keystore_dir;
use anyhow::{bail, Context, Result};

pub fn run(cfg: Config, cmd: KeysCmd) -> Result<()> {
    let path = cfg.secrets_path();
    match cmd {
        KeysCmd::Init => {
            crate::runtime::create_private_dir(cfg.data_dir())?;
            let s = Secrets::init(&path)?;
            println!(
                "created {} (mode 0600), key id {}",
                path.display(),
                s.key_id
            );
            println!("Back it up: losing the pseudonym key loses longitudinal consistency, losing the encryption key makes the key store unreadable.");
        }
        KeysCmd::Id => println!("{}", Secrets::load(&path)?.key_id),
        KeysCmd::RotateEncryption => {
            if crate::admin::socket_path(cfg.data_dir()).exists()
                && std::os::unix::net::UnixStream::connect(crate::admin::socket_path(
                    cfg.data_dir(),
                ))
                .is_ok()
            {
                bail!("the gateway is running: stop it before rotating the encryption key");
            }
            rotate_encryption(&cfg)?
        }
        KeysCmd::Backup { output, pass } => {
            let output = std::path::absolute(&output)?;
            let cmd = crate::admin::commands::StoreCmd::Backup {
                output,
                passphrase: pass.read()?,
            };
            super::store_cmds::run(&cfg, cmd)?;
        }
        KeysCmd::Restore { input, pass } => {
            let passphrase = pass.read()?;
            crate::runtime::create_private_dir(cfg.data_dir())?;
            let file = std::fs::File::open(&input)
                .with_context(|| format!("opening {}", input.display()))?;
            let s = crate::keystore::backup::restore(
                std::io::BufReader::new(file),
                &passphrase,
                &path,
                &keystore_dir(cfg.data_dir()),
            )?;
            println!(
                "restored {} sealed records and {} users/audit entries into {}; new secrets in {}",
                s.sealed,
                s.raw,
                cfg.data_dir().display(),
                path.display()
            );
        }
        KeysCmd::Migrate { to: _ } => migrate_to_postgres(&cfg)?,
    }
    Ok(())
}

/// Copy the sled store into `[keystore] url` and verify the copy.
fn migrate_to_postgres(cfg: &Config) -> Result<()> {
    if cfg.keystore.url.is_empty() {
        bail!("keys migrate --to postgres: set [keystore] url (and password_file or DEIDGATE_PG_PASSWORD)");
    }
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let sled = SledKeyStore::open(&keystore_dir(cfg.data_dir()), &secrets)
        .context("opening the sled key store (is the gateway still running?)")?;
    let pg = crate::keystore::PgKeyStore::connect(&cfg.keystore, &secrets)?;
    let r = crate::keystore::postgres::migrate_from_sled(&sled, &pg)?;
    for (table, n) in &r.in_database {
        let copied = r.records.get(table).copied().unwrap_or(0);
        println!("{table}: copied {copied}, {n} in the database, all open");
    }
    println!(
        "audit: copied {} records; the database chain verifies with {} records",
        r.audit_copied, r.audit_verified
    );
    println!("verified. Set [keystore] backend = \"postgres\" on every replica.");
    Ok(())
}

/// New encryption key, same pseudonym key. The new secrets are written to
/// `secrets.toml.rotating` first and renamed over the old file only after
/// every tree is re-sealed, so a crash leaves a state a rerun completes.
fn rotate_encryption(cfg: &Config) -> Result<()> {
    use rand::RngCore;
    let path = cfg.secrets_path();
    let pending = path.with_extension("toml.rotating");
    let old = Secrets::load(&path)?;
    let new = if pending.exists() {
        let n = Secrets::load(&pending)?;
        if n.pseudonym_key != old.pseudonym_key {
            bail!(
                "{} does not carry the current pseudonym key; remove it and rerun",
                pending.display()
            );
        }
        eprintln!("resuming an interrupted rotation to key id {}", n.key_id);
        n
    } else {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let n = old.with_encryption_key(key);
        n.write_new(&pending)?;
        n
    };
    let store = SledKeyStore::open(&keystore_dir(cfg.data_dir()), &old)?;
    let count = store.rotate_encryption(&new)?;
    store.flush()?;
    drop(store);
    std::fs::rename(&pending, &path).with_context(|| format!("replacing {}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .context("syncing the secrets directory")?;
    }
    println!(
        "re-encrypted {count} records: key id {} -> {}; pseudonyms unchanged",
        old.key_id, new.key_id
    );
    Ok(())
}
