//! `deidgate deadletter list|show|retry|purge`: what operators do with the
//! instances a destination would not take (see
//! [`crate::pipeline::dead_letter`]). Run in the gateway over the admin
//! socket (a retry goes into the running forwarder's queue and wakes it) or
//! against the stopped gateway's database. Every command is audited with
//! its actor before it acts; the subject is the dead letter's id, whose UID
//! is the de-identified one.

use super::reply::Reply;
use crate::cli::args::DeadLetterCmd;
use crate::config::Config;
use crate::keystore::SledKeyStore;
use crate::pipeline::dead_letter::{self, format_time, DeadLetter, Retried, Target};
use anyhow::{bail, Result};
use std::fmt::Write;

pub fn run(cfg: &Config, store: &SledKeyStore, actor: &str, cmd: DeadLetterCmd) -> Result<Reply> {
    let targets = dead_letter::targets(cfg, store.db())?;
    let audit = |action: &str, subject: &str, reason: &str, outcome: &str| {
        store
            .audit()
            .append(actor, action, subject, reason, None, outcome)
    };
    let mut r = Reply::default();
    match cmd {
        DeadLetterCmd::List { destination } => {
            let shown = only(&targets, destination.as_deref())?;
            let all: Vec<(&Target, DeadLetter)> = shown
                .iter()
                .flat_map(|t| t.queue.dead_letters().into_iter().map(move |d| (*t, d)))
                .collect();
            audit(
                "deadletter.list",
                destination.as_deref().unwrap_or("*"),
                "",
                &format!("{} listed", all.len()),
            )?;
            if !all.is_empty() {
                r.stdout
                    .push_str("DESTINATION\tID\tATTEMPTS\tDEAD-LETTERED\tREASON\n");
            }
            for (t, d) in &all {
                writeln!(
                    r.stdout,
                    "{}\t{}\t{}\t{}\t{}",
                    t.name,
                    dead_letter::id(&t.name, &d.job.sop_instance),
                    d.job.attempts,
                    format_time(d.when()),
                    d.reason()
                )?;
            }
            r.stderr = match all.len() {
                1 => "1 dead letter\n".into(),
                n => format!("{n} dead letters\n"),
            };
        }
        DeadLetterCmd::Show { id } => {
            let found = resolve(&targets, &id);
            audit("deadletter.show", &id, "", outcome(found.len(), "shown"))?;
            for (t, d) in require(found, &id)? {
                r.stdout.push_str(&describe(t, &d));
            }
        }
        DeadLetterCmd::Retry {
            id,
            all: _,
            destination,
        } => {
            let (subject, found) = match &id {
                Some(id) => (id.clone(), require(resolve(&targets, id), id)?),
                None => (
                    destination.clone().unwrap_or_else(|| "*".into()),
                    only(&targets, destination.as_deref())?
                        .into_iter()
                        .flat_map(|t| t.queue.dead_letters().into_iter().map(move |d| (t, d)))
                        .collect(),
                ),
            };
            if found.is_empty() {
                audit("deadletter.retry", &subject, "", "none")?;
                r.stderr = "no dead letters to retry\n".into();
            }
            let mut failed = 0;
            for (t, d) in found {
                let id = dead_letter::id(&t.name, &d.job.sop_instance);
                audit("deadletter.retry", &id, d.reason(), "requeue")?;
                match t.retry(&d) {
                    Ok(Retried::Queued { woken: true }) => {
                        writeln!(r.stdout, "queued again: {id} (being sent now)")?
                    }
                    Ok(Retried::Queued { woken: false }) => writeln!(
                        r.stdout,
                        "queued again: {id} (sent when the gateway starts)"
                    )?,
                    Ok(Retried::Superseded) => writeln!(
                        r.stdout,
                        "{id}: a newer copy is queued already; dead letter removed"
                    )?,
                    Ok(Retried::Changed) => {
                        writeln!(r.stdout, "{id}: changed meanwhile; see list")?
                    }
                    Err(e) => {
                        failed += 1;
                        writeln!(r.stderr, "{id}: {e:#}")?;
                    }
                }
            }
            if failed > 0 {
                bail!(
                    "{}{}{failed} dead letters could not be queued again",
                    r.stdout,
                    r.stderr
                );
            }
        }
        DeadLetterCmd::Purge { id } => {
            let found = resolve(&targets, &id);
            if found.is_empty() {
                audit("deadletter.purge", &id, "", "not_found")?;
            }
            for (t, d) in require(found, &id)? {
                let id = dead_letter::id(&t.name, &d.job.sop_instance);
                audit("deadletter.purge", &id, d.reason(), "purge")?;
                if t.purge(&d)? {
                    writeln!(r.stdout, "purged {id}")?;
                } else {
                    writeln!(r.stdout, "{id}: changed meanwhile; see list")?;
                }
            }
        }
    }
    Ok(r)
}

fn outcome(found: usize, what: &'static str) -> &'static str {
    if found == 0 {
        "not_found"
    } else {
        what
    }
}

/// The targets named by `--destination`, or all.
fn only<'a>(targets: &'a [Target], name: Option<&str>) -> Result<Vec<&'a Target>> {
    let v: Vec<&Target> = targets
        .iter()
        .filter(|t| name.is_none_or(|n| t.name == n))
        .collect();
    if let (Some(n), true) = (name, v.is_empty()) {
        bail!("no DICOM destination {n:?}");
    }
    Ok(v)
}

/// `<destination>/<uid>`, or a bare UID at every destination.
fn resolve<'a>(targets: &'a [Target], id: &str) -> Vec<(&'a Target, DeadLetter)> {
    let (dest, sop) = match id.split_once('/') {
        Some((d, s)) => (Some(d), s),
        None => (None, id),
    };
    targets
        .iter()
        .filter(|t| dest.is_none_or(|d| t.name == d))
        .filter_map(|t| Some((t, t.queue.dead_letter_of(sop.trim()).ok()??)))
        .collect()
}

fn require<'a>(
    found: Vec<(&'a Target, DeadLetter)>,
    id: &str,
) -> Result<Vec<(&'a Target, DeadLetter)>> {
    if found.is_empty() {
        bail!("no dead letter {id:?} (ids as `deidgate deadletter list` prints them: <destination>/<SOP Instance UID>)");
    }
    Ok(found)
}

fn describe(t: &Target, d: &DeadLetter) -> String {
    let j = &d.job;
    let file = if j.path.exists() {
        j.path.display().to_string()
    } else {
        format!("{} (missing)", j.path.display())
    };
    let reason_file = dead_letter::reason_path(&j.path);
    let configured = if t.outbox.is_some() {
        ""
    } else {
        " (no longer configured)"
    };
    format!(
        "id:                 {}\n\
         destination:        {}{configured}\n\
         sop instance uid:   {}\n\
         sop class uid:      {}\n\
         study instance uid: {}\n\
         first queued:       {}\n\
         dead-lettered:      {}\n\
         attempts:           {}\n\
         reason:             {}\n\
         file:               {file}\n\
         reason file:        {}\n",
        dead_letter::id(&t.name, &j.sop_instance),
        t.name,
        j.sop_instance,
        j.sop_class,
        j.study_uid,
        format_time(Some(j.enqueued_at)),
        format_time(d.when()),
        j.attempts,
        d.reason(),
        reason_file.display(),
    )
}
