//! Command-line interface: argument definitions and the offline commands.

use crate::config::Config;
use crate::keystore::{KeyStore, Secrets, SledKeyStore};
use crate::runtime::{keystore_dir, Runtime};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "deidgate", version, about = "DICOM de-identification gateway")]
pub struct Cli {
    /// Configuration file; the embedded config/gateway.toml when absent.
    #[arg(long, global = true, env = "DEIDGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Override [node] data_dir (key store, secrets, quarantine).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (DICOM storage destination).
    Serve,
    /// De-identify a file or a folder tree into OUT, as the gateway would.
    Anonymize {
        input: PathBuf,
        output: PathBuf,
        /// Worker threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        jobs: usize,
    },
    /// Manage the site secrets.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Authorized reverse lookup of a pseudonym (audited).
    Reid {
        #[command(subcommand)]
        cmd: ReidCmd,
    },
    /// The audit log of re-identifications.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Objects kept back because they could not be de-identified safely.
    Quarantine {
        #[command(subcommand)]
        cmd: QuarantineCmd,
    },
    /// Users and API tokens of the HTTP API (stored in the key store).
    Users {
        #[command(subcommand)]
        cmd: UsersCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum UsersCmd {
    /// Create a user and print its API token (shown only this once).
    Add {
        name: String,
        /// reid, auditor or operator; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<crate::auth::Role>,
    },
    /// List users, roles and whether they are revoked (never tokens).
    List,
    /// Revoke a user: its token stops working at once.
    Revoke { name: String },
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create the secrets file (mode 0600). Refuses to overwrite one.
    Init,
    /// Print the key id of the encryption key (never the key).
    Id,
    /// Re-encrypt the key store under a new encryption key; pseudonyms do not
    /// change. Stop the gateway first. Resumable if interrupted.
    RotateEncryption,
    /// Write an encrypted backup (records, users, audit log and the
    /// pseudonym key) sealed with a passphrase.
    Backup {
        /// Output file (refuses to overwrite).
        output: PathBuf,
        #[command(flatten)]
        pass: Passphrase,
    },
    /// Restore a backup into a new, empty data directory (--data-dir).
    Restore {
        input: PathBuf,
        #[command(flatten)]
        pass: Passphrase,
    },
}

/// Where the backup passphrase comes from (never the command line: it would
/// show in the process list and the shell history).
#[derive(clap::Args, Debug)]
pub struct Passphrase {
    /// File whose first line is the passphrase; otherwise the environment
    /// variable DEIDGATE_BACKUP_PASSPHRASE.
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

impl Passphrase {
    fn read(&self) -> Result<String> {
        match &self.passphrase_file {
            Some(p) => Ok(std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()),
            None => std::env::var("DEIDGATE_BACKUP_PASSPHRASE").map_err(|_| {
                anyhow::anyhow!("give --passphrase-file or set DEIDGATE_BACKUP_PASSPHRASE")
            }),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ReidCmd {
    /// Patient pseudonym -> original PatientID, issuer, name, birth date.
    Patient {
        pseudonym: String,
        #[command(flatten)]
        why: Why,
    },
    /// De-identified UID -> original UID.
    Uid {
        uid: String,
        #[command(flatten)]
        why: Why,
    },
    /// Hashed accession number -> original.
    Accession {
        pseudonym: String,
        #[command(flatten)]
        why: Why,
    },
}

#[derive(clap::Args, Debug)]
pub struct Why {
    /// Why this re-identification is needed (required, audited).
    #[arg(long)]
    pub reason: String,
    /// Ticket or IRB number.
    #[arg(long)]
    pub ticket: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Check the hash chain; fails on any edited or removed record.
    Verify,
    /// Write the audit log as JSON lines to stdout.
    Export,
}

#[derive(Subcommand, Debug)]
pub enum QuarantineCmd {
    /// List quarantined objects with their reasons.
    List,
    /// Print the reason file of one quarantined object.
    Show { id: String },
    /// Delete quarantined objects (they hold PHI): one id, or --all.
    Purge {
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

/// Load the configuration with the command-line overrides applied.
pub fn load_config(cli: &Cli) -> Result<Config> {
    let mut cfg = Config::load(cli.config.as_deref())?;
    if let Some(d) = &cli.data_dir {
        cfg.node.data_dir = d.clone();
    }
    Ok(cfg)
}

/// Run an offline command.
pub fn run(cli: Cli) -> Result<()> {
    let cfg = load_config(&cli)?;
    match cli.command {
        Command::Serve => crate::serve::run(cfg),
        Command::Anonymize {
            input,
            output,
            jobs,
        } => anonymize(cfg, &input, &output, jobs),
        Command::Keys { cmd } => keys(cfg, cmd),
        Command::Reid { cmd } => reid(cfg, cmd),
        Command::Audit { cmd } => audit(cfg, cmd),
        Command::Quarantine { cmd } => quarantine(&cfg, cmd),
        Command::Users { cmd } => users(&cfg, cmd),
    }
}

fn quarantine(cfg: &Config, cmd: QuarantineCmd) -> Result<()> {
    let q = crate::pipeline::quarantine::Quarantine::new(cfg.data_dir().join("quarantine"));
    match cmd {
        QuarantineCmd::List => {
            for (id, reason) in q.list()? {
                println!("{id}\t{reason}");
            }
        }
        QuarantineCmd::Show { id } => print!("{}", q.reason(&id)?),
        QuarantineCmd::Purge {
            id: Some(id),
            all: false,
        } => {
            q.purge(&id)?;
            println!("purged {id}");
        }
        QuarantineCmd::Purge {
            id: None,
            all: true,
        } => {
            let ids = q.list()?;
            for (id, _) in &ids {
                q.purge(id)?;
            }
            println!("purged {} objects", ids.len());
        }
        QuarantineCmd::Purge { .. } => bail!("give one quarantine id, or --all"),
    }
    Ok(())
}

fn anonymize(
    cfg: Config,
    input: &std::path::Path,
    output: &std::path::Path,
    jobs: usize,
) -> Result<()> {
    let rt = Runtime::open(cfg)?;
    let t = std::time::Instant::now();
    let s = crate::pipeline::batch::run(&rt, input, output, jobs)?;
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "{} files: {} written, {} quarantined in {:.2} s ({:.0} files/s)",
        s.files,
        s.written,
        s.quarantined,
        secs,
        s.files as f64 / secs.max(1e-9)
    );
    let r = &s.report;
    eprintln!(
        "elements: {} kept, {} removed, {} emptied, {} dummy, {} cleaned, {} replaced; {} UIDs replaced, {} dates shifted; private: {} removed, {} kept",
        r.kept, r.removed, r.emptied, r.dummied, r.cleaned, r.replaced, r.uids_replaced, r.dates_shifted, r.private_removed, r.private_kept
    );
    if r.unknown_total() > 0 {
        let list: Vec<String> = r
            .unknown_removed
            .iter()
            .map(|((g, e), n)| format!("({g:04X},{e:04X})x{n}"))
            .collect();
        eprintln!(
            "unknown public elements removed: {} [{}]",
            r.unknown_total(),
            list.join(" ")
        );
    }
    for (reason, n) in &s.reasons {
        eprintln!("quarantined x{n}: {reason}");
    }
    if s.quarantined > 0 {
        eprintln!("quarantine: {}", rt.quarantine_dir().display());
    }
    Ok(())
}

fn keys(cfg: Config, cmd: KeysCmd) -> Result<()> {
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
        KeysCmd::RotateEncryption => rotate_encryption(&cfg)?,
        KeysCmd::Backup { output, pass } => {
            let passphrase = pass.read()?;
            let secrets = Secrets::load(&path)?;
            let store = SledKeyStore::open(&keystore_dir(cfg.data_dir()), &secrets)?;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&output)
                .with_context(|| format!("creating {}", output.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let s = crate::keystore::backup::write(&store, &secrets, &passphrase, &mut w)?;
            w.into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()
                .context("syncing the backup")?;
            println!(
                "backup written to {}: {} sealed records, {} users/audit entries",
                output.display(),
                s.sealed,
                s.raw
            );
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
    }
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

fn users(cfg: &Config, cmd: UsersCmd) -> Result<()> {
    // Users may be created before the first start: create the data dir then.
    crate::runtime::create_private_dir(cfg.data_dir())?;
    let secrets = Secrets::load_or_init(&cfg.secrets_path())?;
    let store = SledKeyStore::open(&keystore_dir(cfg.data_dir()), &secrets)?;
    let users = crate::auth::UserStore::open(store.db())?;
    match cmd {
        UsersCmd::Add { name, roles } => {
            let (user, token) = users.add(&name, &roles)?;
            let roles: Vec<_> = user.roles.iter().map(|r| r.as_str()).collect();
            eprintln!(
                "created user {} with roles {}; its token (shown only now):",
                user.name,
                roles.join(",")
            );
            println!("{}", token.reveal());
        }
        UsersCmd::List => {
            for u in users.list()? {
                let roles: Vec<_> = u.roles.iter().map(|r| r.as_str()).collect();
                println!(
                    "{}\t{}\tcreated {}\t{}",
                    u.name,
                    roles.join(","),
                    u.created,
                    u.revoked
                        .map(|t| format!("revoked {t}"))
                        .unwrap_or_else(|| "active".into())
                );
            }
        }
        UsersCmd::Revoke { name } => {
            let u = users.revoke(&name)?;
            println!("revoked {} at {}", u.name, u.revoked.unwrap_or_default());
        }
    }
    Ok(())
}

fn open_store(cfg: &Config) -> Result<SledKeyStore> {
    let secrets =
        Secrets::load(&cfg.secrets_path()).context("re-identification needs the secrets file")?;
    SledKeyStore::open(&keystore_dir(cfg.data_dir()), &secrets)
}

/// Who is asking: the operating-system user (the CLI runs with local access).
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    format!("cli:{}", if user.is_empty() { "unknown" } else { &user })
}

fn reid(cfg: Config, cmd: ReidCmd) -> Result<()> {
    use crate::reid::{Justification, Lookup};
    let store = open_store(&cfg)?;
    let (what, why) = match cmd {
        ReidCmd::Patient { pseudonym, why } => (Lookup::Patient(pseudonym), why),
        ReidCmd::Uid { uid, why } => (Lookup::Uid(uid), why),
        ReidCmd::Accession { pseudonym, why } => (Lookup::Accession(pseudonym), why),
    };
    let why = Justification {
        reason: why.reason,
        ticket: why.ticket,
    };
    match crate::reid::reveal(&store, &actor(), &what, &why)? {
        Some(found) => {
            println!("{}", crate::reid::describe(&found));
            Ok(())
        }
        None => bail!("no record for {}", what.subject()),
    }
}

fn audit(cfg: Config, cmd: AuditCmd) -> Result<()> {
    let store = open_store(&cfg)?;
    let log = store.audit();
    match cmd {
        AuditCmd::Verify => {
            let n = log
                .verify()
                .map_err(|e| anyhow::anyhow!("audit chain broken: {e}"))?;
            println!("audit chain intact: {n} records");
        }
        AuditCmd::Export => {
            log.export_jsonl(std::io::stdout().lock())?;
        }
    }
    Ok(())
}
