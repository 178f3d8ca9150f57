//! The CLI side of the admin command set: send a key-store command to the
//! running gateway over its admin socket, or, when none serves, open the
//! store and the spool directly and run the same code
//! ([`crate::admin::commands`]).

use crate::admin::commands::{execute, ReleaseSink, StoreCmd};
use crate::config::Config;
use crate::keystore::{Secrets, SledKeyStore};
use anyhow::{Context, Result};

/// The spool of a stopped gateway.
struct OfflineSpool(crate::pipeline::spool::Spool);

impl ReleaseSink for OfflineSpool {
    fn release(&self, bytes: &[u8]) -> Result<String> {
        self.0.release(bytes)
    }
}

/// Runs `cmd` in the gateway if it is serving, else against the store.
pub fn run(cfg: &Config, cmd: StoreCmd) -> Result<()> {
    let actor = actor();
    let reply = match crate::admin::send(cfg.data_dir(), &actor, &cmd)? {
        Some(reply) => reply?,
        None => {
            let store = open_direct(cfg, &cmd)?;
            // The key store is ours, so no gateway runs: the spool is ours too.
            let spool = OfflineSpool(crate::pipeline::spool::Spool::open(cfg.data_dir())?);
            execute(cfg, &store, &spool, &actor, cmd)?
        }
    };
    eprint!("{}", reply.stderr);
    print!("{}", reply.stdout);
    Ok(())
}

fn open_direct(cfg: &Config, cmd: &StoreCmd) -> Result<SledKeyStore> {
    let secrets = if matches!(cmd, StoreCmd::Users(_)) {
        // Users may be created before the first start.
        crate::runtime::create_private_dir(cfg.data_dir())?;
        Secrets::load_or_init(&cfg.secrets_path())?
    } else {
        Secrets::load(&cfg.secrets_path()).context("the key store needs the secrets file")?
    };
    crate::runtime::open_keystore(cfg, &secrets)
}

/// Who is asking: the operating-system user (the CLI runs with local access).
pub fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    format!("cli:{}", if user.is_empty() { "unknown" } else { &user })
}
