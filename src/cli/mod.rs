//! Command-line interface: arguments in [`args`], commands in the modules
//! named after them.

pub mod args;
mod check;
pub mod eval;
mod keys;
pub mod store_cmds;
pub mod train;

pub use args::*;

use crate::admin::commands::StoreCmd;
use crate::config::Config;
use crate::runtime::Runtime;
use anyhow::{bail, Result};

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
        Command::Check => check::run(&cfg, cli.config.as_deref()),
        Command::Anonymize {
            input,
            output,
            jobs,
        } => anonymize(cfg, &input, &output, jobs),
        Command::Keys { cmd } => keys::run(cfg, cmd),
        Command::Reid { cmd } => store_cmds::run(&cfg, StoreCmd::Reid(absolute_paths(cmd)?)),
        Command::Audit { cmd } => store_cmds::run(&cfg, StoreCmd::Audit(cmd)),
        Command::Quarantine { cmd } => quarantine(&cfg, cmd),
        Command::Deadletter { cmd } => store_cmds::run(&cfg, StoreCmd::DeadLetter(cmd)),
        Command::Users { cmd } => store_cmds::run(&cfg, StoreCmd::Users(cmd)),
        Command::Train { cmd } => train::run(cmd),
        Command::Eval { cmd } => eval::run(cmd),
    }
}

/// File paths are resolved here: a running gateway may execute the command
/// from another working directory.
fn absolute_paths(cmd: ReidCmd) -> Result<ReidCmd> {
    Ok(match cmd {
        ReidCmd::Photo {
            uid,
            input,
            output,
            why,
        } => ReidCmd::Photo {
            uid,
            input: std::path::absolute(input)?,
            output: std::path::absolute(output)?,
            why,
        },
        other => other,
    })
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
        QuarantineCmd::Release { id, reason } => {
            return store_cmds::run(cfg, StoreCmd::Release { id, reason })
        }
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
    mut cfg: Config,
    input: &std::path::Path,
    output: &std::path::Path,
    jobs: usize,
) -> Result<()> {
    // A folder without radiographs never pays for the chest model.
    cfg.model_loading = crate::config::ModelLoading::OnFirstUse;
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
