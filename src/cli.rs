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
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create the secrets file (mode 0600). Refuses to overwrite one.
    Init,
    /// Print the key id of the encryption key (never the key).
    Id,
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
    let store = open_store(&cfg)?;
    let (action, subject, why) = match &cmd {
        ReidCmd::Patient { pseudonym, why } => ("reid.patient", pseudonym.clone(), why),
        ReidCmd::Uid { uid, why } => ("reid.uid", uid.clone(), why),
        ReidCmd::Accession { pseudonym, why } => ("reid.accession", pseudonym.clone(), why),
    };
    if why.reason.trim().is_empty() {
        bail!("--reason must say why the re-identification is needed");
    }
    let found: Option<String> = match &cmd {
        ReidCmd::Patient { pseudonym, .. } => store.get_patient(pseudonym)?.map(|p| {
            format!(
                "PatientID: {}\nIssuerOfPatientID: {}\nPatientName: {}\nPatientBirthDate: {}",
                p.patient_id,
                p.issuer.unwrap_or_default(),
                p.name.unwrap_or_default(),
                p.birth_date.unwrap_or_default()
            )
        }),
        ReidCmd::Uid { uid, .. } => store.get_uid(uid)?.map(|u| format!("UID: {u}")),
        ReidCmd::Accession { pseudonym, .. } => store
            .get_accession(pseudonym)?
            .map(|a| format!("AccessionNumber: {a}")),
    };
    let outcome = if found.is_some() {
        "revealed"
    } else {
        "not_found"
    };
    // The lookup is audited before anything is shown.
    store.audit().append(
        &actor(),
        action,
        &subject,
        &why.reason,
        why.ticket.as_deref(),
        outcome,
    )?;
    match found {
        Some(text) => {
            println!("{text}");
            Ok(())
        }
        None => bail!("no record for {subject}"),
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
