//! Command-line arguments (clap). The commands themselves live next door.

use clap::{Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
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
    /// Validate the configuration, load every pixel route and check every
    /// destination: one line each, ready or not and why. Exits non-zero
    /// when anything enabled is not ready.
    Check,
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
    /// Instances a DICOM destination refused for good or never took within
    /// max_age_hours: list, show, retry or purge them (audited).
    #[command(name = "deadletter", visible_alias = "dead-letter")]
    Deadletter {
        #[command(subcommand)]
        cmd: DeadLetterCmd,
    },
    /// Users and API tokens of the HTTP API (stored in the key store).
    Users {
        #[command(subcommand)]
        cmd: UsersCmd,
    },
    /// Train a pixel model from data.
    Train {
        #[command(subcommand)]
        cmd: super::train::TrainCmd,
    },
    /// Evaluate or benchmark a trained pixel model.
    Eval {
        #[command(subcommand)]
        cmd: super::eval::EvalCmd,
    },
}

#[derive(Subcommand, Debug, Serialize, Deserialize)]
pub enum UsersCmd {
    /// Create a user and print its API token (shown only this once).
    Add {
        name: String,
        /// reid, auditor, operator or reviewer; repeat for several.
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
    /// Copy the sled key store into the PostgreSQL database of `[keystore]
    /// url` and verify the copy (counts, every record opens, audit chain).
    /// Stop the gateway first; rerunning after an interruption is safe.
    Migrate {
        /// The backend to copy to.
        #[arg(long, value_enum)]
        to: MigrateTarget,
    },
}

/// Where `keys migrate` copies to.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrateTarget {
    Postgres,
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
    pub fn read(&self) -> anyhow::Result<String> {
        match &self.passphrase_file {
            Some(p) => Ok(std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?
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

#[derive(Subcommand, Debug, Serialize, Deserialize)]
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
    /// Restore the original pixels a route replaced: the faces of a
    /// photograph, the burned-in text of an image.
    Photo {
        /// The de-identified instance's SOP Instance UID.
        uid: String,
        /// The de-identified file.
        #[arg(long)]
        input: PathBuf,
        /// Where to write the restored file (refuses to overwrite).
        #[arg(long)]
        output: PathBuf,
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

#[derive(clap::Args, Debug, Serialize, Deserialize)]
pub struct Why {
    /// Why this re-identification is needed (required, audited).
    #[arg(long)]
    pub reason: String,
    /// Ticket or IRB number.
    #[arg(long)]
    pub ticket: Option<String>,
}

#[derive(Subcommand, Debug, Serialize, Deserialize)]
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
    /// Send one object back through the pipeline without the [filter] rules
    /// that held it (it is still de-identified). Audited; needs a reason.
    Release {
        id: String,
        /// Why the object may pass, e.g. "pixels reviewed: no burned-in text".
        #[arg(long)]
        reason: String,
    },
    /// Delete quarantined objects (they hold PHI): one id, or --all.
    Purge {
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

/// `deidgate deadletter`. An ID is `<destination>/<SOP Instance UID>` as
/// `list` prints it (the de-identified UID); a bare UID means that instance
/// at every destination.
#[derive(Subcommand, Debug, Serialize, Deserialize)]
pub enum DeadLetterCmd {
    /// Destination, id, attempts, when and why, one line each.
    List {
        /// Only this destination.
        #[arg(long)]
        destination: Option<String>,
    },
    /// The whole record and the path of the kept file.
    Show { id: String },
    /// Queue again (attempts and age reset); a running gateway sends it at
    /// once, a stopped one when it starts.
    Retry {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every dead letter (of --destination, if given).
        #[arg(long)]
        all: bool,
        /// With --all: only this destination.
        #[arg(long, requires = "all")]
        destination: Option<String>,
    },
    /// Delete the record and the kept file.
    Purge { id: String },
}
