//! `deidgate check`: the configuration is valid (it was loaded), every pixel
//! route loads its model, the data directory and folder destinations are
//! writable and DICOM destinations answer a C-ECHO. One line per item on
//! stdout; the command fails when anything enabled is not ready.

use crate::config::{Config, DestinationConfig, DestinationKind, MissingWeights};
use crate::net::dimse;
use crate::routes::{PixelRoutes, RouteStatus};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Verification SOP Class (C-ECHO).
const VERIFICATION: &str = "1.2.840.10008.1.1";

/// Run the checks on `cfg`, loaded from `file` (`None`: the embedded default).
pub fn run(cfg: &Config, file: Option<&Path>) -> Result<()> {
    let mut failed = 0usize;
    let mut line = |item: String, result: Result<String, String>| match result {
        Ok(m) => println!("{item}: ready: {m}"),
        Err(m) => {
            failed += 1;
            println!("{item}: NOT READY: {m}");
        }
    };
    println!(
        "config: ok: {}",
        file.map_or("the embedded default".to_string(), |f| f
            .display()
            .to_string())
    );
    line("data_dir".to_string(), writable(cfg.data_dir()));

    // A route configured to refuse to start without its model still gets
    // a line, and the other routes theirs.
    let (routes, refusal) = match PixelRoutes::load(cfg) {
        Ok(r) => (r, None),
        Err(e) => {
            let mut relaxed = cfg.clone();
            relaxed.chest.missing_weights = MissingWeights::Quarantine;
            (PixelRoutes::load(&relaxed)?, Some(format!("{e:#}")))
        }
    };
    for s in routes.statuses() {
        if !s.enabled {
            println!("route {}: disabled: {}", s.route, s.meanwhile);
            continue;
        }
        let mut result = route(cfg, &s);
        if let (Err(m), Some(r)) = (&mut result, &refusal) {
            if s.route == "chest" {
                *m = format!("{m}; the gateway refuses to start: {r}");
            }
        }
        line(format!("route {}", s.route), result);
    }

    for d in &cfg.destinations {
        let result = match d.kind {
            DestinationKind::Folder => {
                let dir = if d.path.is_empty() {
                    cfg.data_dir().join("out")
                } else {
                    PathBuf::from(&d.path)
                };
                writable(&dir).map(|m| format!("folder {m}"))
            }
            DestinationKind::Dicom => echo(d, &cfg.node.ae_title),
            DestinationKind::Stow => crate::net::stow::Stow::new(d)
                .map_err(|e| format!("{e:#}"))
                .and_then(|s| s.probe()),
        };
        line(format!("destination {}", d.name), result);
    }
    if failed > 0 {
        bail!("{failed} item(s) not ready");
    }
    println!("all ready");
    Ok(())
}

/// One route's line: its model files and where they were found, or why it
/// cannot run (every path searched when its model is missing).
fn route(cfg: &Config, s: &RouteStatus) -> Result<String, String> {
    let models = cfg.models_of(s.route);
    let uses = cfg.describe_models(s.route);
    if s.loaded {
        return Ok(format!("{}: {uses}", s.model));
    }
    match models.iter().find(|m| !m.found) {
        Some(m) => Err(format!(
            "{} not found; searched {}; meanwhile {}",
            m.key,
            crate::config::paths::list(&m.searched),
            s.meanwhile
        )),
        None => Err(format!("{uses}: {}", s.meanwhile)),
    }
}

/// Whether files can be written in `dir`, or in the nearest existing folder
/// above it (it is created at start). Writes and removes a probe file.
fn writable(dir: &Path) -> Result<String, String> {
    let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let Some(existing) = dir.ancestors().find(|a| a.exists()) else {
        return Err(format!("{}: no existing folder above it", dir.display()));
    };
    if !existing.is_dir() {
        return Err(format!("{} is not a folder", existing.display()));
    }
    let probe = existing.join(format!(".deidgate-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| format!("{} is not writable: {e}", existing.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(if existing == dir {
        format!("{} writable", dir.display())
    } else {
        format!(
            "{} (created at start; {} is writable)",
            dir.display(),
            existing.display()
        )
    })
}

/// C-ECHO the destination's peer with the AE titles the forwarder uses.
fn echo(d: &DestinationConfig, node_ae: &str) -> Result<String, String> {
    use dicom_ul::association::client::ClientAssociationOptions;
    use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextResultReason};
    let calling = if d.calling_ae_title.is_empty() {
        node_ae
    } else {
        &d.calling_ae_title
    };
    let addr = format!("{}@{}:{}", d.ae_title, d.host, d.port);
    let fail = |m: String| format!("C-ECHO to {addr} (calling {calling}) failed: {m}");
    let timeout = Duration::from_secs(d.timeout_secs.clamp(1, 10));
    let mut assoc = ClientAssociationOptions::new()
        .calling_ae_title(calling.to_string())
        .called_ae_title(d.ae_title.clone())
        .with_abstract_syntax(VERIFICATION)
        .read_timeout(timeout)
        .write_timeout(timeout)
        .connection_timeout(timeout)
        .establish_with(&addr)
        .map_err(|e| fail(e.to_string()))?;
    let Some(pc) = assoc
        .presentation_contexts()
        .iter()
        .find(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .map(|pc| pc.id)
    else {
        let _ = assoc.abort();
        return Err(fail("the peer does not accept Verification".into()));
    };
    let sent = assoc.send(&Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: pc,
            value_type: PDataValueType::Command,
            is_last: true,
            data: echo_request(1),
        }],
    });
    if let Err(e) = sent {
        let _ = assoc.abort();
        return Err(fail(e.to_string()));
    }
    let answer = match crate::net::scu::read_response(&mut assoc, "C-ECHO-RSP") {
        Ok(a) => a,
        Err(m) => {
            let _ = assoc.abort();
            return Err(fail(m));
        }
    };
    let _ = assoc.release();
    match answer.status {
        Some(0) if answer.field == dimse::C_ECHO_RSP => Ok(format!("C-ECHO to {addr} answered")),
        status => Err(fail(format!(
            "response {:04X} with status {}",
            answer.field,
            status.map_or("none".to_string(), |s| format!("{s:04X}"))
        ))),
    }
}

/// A C-ECHO-RQ command set: Implicit VR Little Endian, group 0000.
fn echo_request(message_id: u16) -> Vec<u8> {
    fn element(out: &mut Vec<u8>, elem: u16, value: &[u8]) {
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&elem.to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    let mut uid = VERIFICATION.as_bytes().to_vec();
    if uid.len() % 2 == 1 {
        uid.push(0);
    }
    let mut body = Vec::new();
    element(&mut body, 0x0002, &uid);
    element(&mut body, 0x0100, &dimse::C_ECHO_RQ.to_le_bytes());
    element(&mut body, 0x0110, &message_id.to_le_bytes());
    element(&mut body, 0x0800, &0x0101u16.to_le_bytes());
    let mut out = Vec::new();
    element(&mut out, 0x0000, &(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_request_parses_as_one() {
        let c = dimse::parse(&echo_request(7)).unwrap();
        assert_eq!(c.field, dimse::C_ECHO_RQ);
        assert_eq!(c.message_id, 7);
        assert_eq!(c.sop_class, VERIFICATION);
        assert!(!c.has_data_set);
    }
}
