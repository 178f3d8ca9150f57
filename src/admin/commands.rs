//! The admin command set: the commands that read or write the key store
//! (users, reid, audit, quarantine release, backup), and the dead letters
//! (whose queues live in the same database).
//!
//! sled lets one process open the database, so while `deidgate serve` runs
//! these commands are sent to it over its admin socket (see [`super`]) and
//! executed there; otherwise the CLI (`crate::cli::store_cmds`) opens the
//! store directly. Either way the same code below runs and the same audit
//! records are written.

pub use super::reply::Reply;
use crate::cli::args::{AuditCmd, DeadLetterCmd, ReidCmd, UsersCmd};
use crate::config::Config;
use crate::keystore::{Secrets, SledKeyStore};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// A key-store command, as sent over the admin socket.
#[derive(Debug, Serialize, Deserialize)]
pub enum StoreCmd {
    Users(UsersCmd),
    Reid(ReidCmd),
    Audit(AuditCmd),
    /// `deadletter ...`.
    DeadLetter(DeadLetterCmd),
    /// `quarantine release`.
    Release {
        id: String,
        reason: String,
    },
    /// `keys backup`, with the output path made absolute by the client.
    Backup {
        output: std::path::PathBuf,
        passphrase: String,
    },
}

/// Where a released object goes: the running gateway's spool and queue, or
/// (gateway stopped) the spool, which the next start works through.
pub trait ReleaseSink {
    /// Spools the object; returns its spool id.
    fn release(&self, bytes: &[u8]) -> Result<String>;
}

/// Executes `cmd` against an open store on behalf of `actor`.
pub fn execute(
    cfg: &Config,
    store: &SledKeyStore,
    sink: &dyn ReleaseSink,
    actor: &str,
    cmd: StoreCmd,
) -> Result<Reply> {
    match cmd {
        StoreCmd::Release { id, reason } => release(cfg, store, sink, actor, &id, &reason),
        StoreCmd::Users(c) => users(store, c),
        StoreCmd::Reid(c) => reid(store, actor, c),
        StoreCmd::Audit(c) => audit(store, c),
        StoreCmd::DeadLetter(c) => super::dead_letters::run(cfg, store, actor, c),
        StoreCmd::Backup { output, passphrase } => backup(cfg, store, &output, &passphrase),
    }
}

/// Sends a quarantined object back through the pipeline without the filter
/// rules; audited before anything moves. The quarantine copy is removed only
/// after the spool holds the object durably.
fn release(
    cfg: &Config,
    store: &SledKeyStore,
    sink: &dyn ReleaseSink,
    actor: &str,
    id: &str,
    reason: &str,
) -> Result<Reply> {
    if reason.trim().is_empty() {
        bail!("--reason must say why the object may pass the filter");
    }
    let q = crate::pipeline::quarantine::Quarantine::new(cfg.data_dir().join("quarantine"));
    let bytes = q.object(id)?;
    store
        .audit()
        .append(actor, "quarantine.release", id, reason, None, "released")?;
    let spool_id = sink.release(&bytes)?;
    q.purge(id)?;
    tracing::info!(quarantine_id = id, spool = %spool_id, "released from quarantine");
    Ok(Reply {
        stdout: format!(
            "released {id}: it goes through de-identification without the [filter] rules (spool {spool_id})\n"
        ),
        stderr: String::new(),
    })
}

/// Writes the encrypted backup to a new file and syncs it.
fn backup(
    cfg: &Config,
    store: &SledKeyStore,
    output: &std::path::Path,
    passphrase: &str,
) -> Result<Reply> {
    let secrets = Secrets::load(&cfg.secrets_path())?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(output)
        .with_context(|| format!("creating {}", output.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let written = crate::keystore::backup::write(store, &secrets, passphrase, &mut w);
    let synced = written.and_then(|s| {
        w.into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
            .context("syncing the backup")?;
        Ok(s)
    });
    let s = match synced {
        Ok(s) => s,
        Err(e) => {
            // Never leave a partial backup that looks like a good one.
            let _ = std::fs::remove_file(output);
            return Err(e);
        }
    };
    Ok(Reply {
        stdout: format!(
            "backup written to {}: {} sealed records, {} users/audit entries\n",
            output.display(),
            s.sealed,
            s.raw
        ),
        stderr: String::new(),
    })
}

fn users(store: &SledKeyStore, cmd: UsersCmd) -> Result<Reply> {
    let users = crate::auth::UserStore::for_store(store)?;
    let mut r = Reply::default();
    let roles_of = |u: &crate::auth::User| {
        u.roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    match cmd {
        UsersCmd::Add { name, roles } => {
            let (user, token) = users.add(&name, &roles)?;
            r.stderr = format!(
                "created user {} with roles {}; its token (shown only now):\n",
                user.name,
                roles_of(&user)
            );
            r.stdout = format!("{}\n", token.reveal());
        }
        UsersCmd::List => {
            for u in users.list()? {
                let state = u
                    .revoked
                    .as_ref()
                    .map(|t| format!("revoked {t}"))
                    .unwrap_or_else(|| "active".into());
                writeln!(
                    r.stdout,
                    "{}\t{}\tcreated {}\t{state}",
                    u.name,
                    roles_of(&u),
                    u.created
                )?;
            }
        }
        UsersCmd::Revoke { name } => {
            let u = users.revoke(&name)?;
            r.stdout = format!("revoked {} at {}\n", u.name, u.revoked.unwrap_or_default());
        }
    }
    Ok(r)
}

fn reid(store: &SledKeyStore, actor: &str, cmd: ReidCmd) -> Result<Reply> {
    use crate::reid::{Justification, Lookup};
    if let ReidCmd::Photo {
        uid,
        input,
        output,
        why,
    } = cmd
    {
        return restore_photo(store, actor, uid, &input, &output, why);
    }
    let (what, why) = match cmd {
        ReidCmd::Patient { pseudonym, why } => (Lookup::Patient(pseudonym), why),
        ReidCmd::Uid { uid, why } => (Lookup::Uid(uid), why),
        ReidCmd::Accession { pseudonym, why } => (Lookup::Accession(pseudonym), why),
        ReidCmd::Photo { .. } => unreachable!("handled above"),
    };
    let why = Justification {
        reason: why.reason,
        ticket: why.ticket,
    };
    match crate::reid::reveal(store, actor, &what, &why)? {
        Some(found) => Ok(Reply {
            stdout: format!("{}\n", crate::reid::describe(&found)),
            stderr: String::new(),
        }),
        None => bail!("no record for {}", what.subject()),
    }
}

/// Audited restore of the pixels a route replaced (a photograph's faces, an
/// image's burned-in text) into a new file.
fn restore_photo(
    store: &SledKeyStore,
    actor: &str,
    uid: String,
    input: &std::path::Path,
    output: &std::path::Path,
    why: crate::cli::args::Why,
) -> Result<Reply> {
    use crate::reid::{Justification, Lookup, Revealed};
    let mut obj =
        dicom_object::open_file(input).with_context(|| format!("reading {}", input.display()))?;
    let in_file = crate::dicom::text(&obj, dicom_dictionary_std::tags::SOP_INSTANCE_UID);
    if in_file != uid {
        bail!("{} is instance {in_file}, not {uid}", input.display());
    }
    let why = Justification {
        reason: why.reason,
        ticket: why.ticket,
    };
    let Some(Revealed::PhotoRegions { regions }) =
        crate::reid::reveal(store, actor, &Lookup::Photo(uid.clone()), &why)?
    else {
        bail!("no replaced pixels recorded for {uid}");
    };
    crate::routes::sealed::restore(&mut obj, &regions).map_err(|e| anyhow::anyhow!(e))?;
    if output.exists() {
        bail!("{} exists; choose a new file", output.display());
    }
    obj.write_to_file(output)
        .with_context(|| format!("writing {}", output.display()))?;
    Ok(Reply {
        stdout: format!(
            "restored the original pixels of {uid} into {}\n",
            output.display()
        ),
        stderr: String::new(),
    })
}

fn audit(store: &SledKeyStore, cmd: AuditCmd) -> Result<Reply> {
    let log = store.audit();
    let mut r = Reply::default();
    match cmd {
        AuditCmd::Verify => {
            let n = log
                .verify()
                .map_err(|e| anyhow::anyhow!("audit chain broken: {e}"))?;
            r.stdout = format!("audit chain intact: {n} records\n");
        }
        AuditCmd::Export => {
            let mut buf = Vec::new();
            log.export_jsonl(&mut buf)?;
            r.stdout = String::from_utf8(buf).context("audit export is not UTF-8")?;
        }
    }
    Ok(r)
}
