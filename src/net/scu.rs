//! The C-STORE SCU that forwards de-identified instances to a destination.
//!
//! One association carries a batch (typically one study). For each SOP class
//! we propose two presentation contexts, the file's own transfer syntax alone
//! and the uncompressed ones, so the peer can keep the original encoding or
//! ask for uncompressed data; when it asks, the data set is re-encoded.

use super::dimse;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::meta::FileMetaTable;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::association::client::ClientAssociationOptions;
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceUserReason, AssociationRJSource,
    PDataValue, PDataValueType, Pdu, PresentationContextResultReason,
};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";

/// Where to send.
#[derive(Debug, Clone)]
pub struct Peer {
    pub ae_title: String,
    pub host: String,
    pub port: u16,
    pub calling_ae_title: String,
    pub timeout: Duration,
    /// DICOM TLS: never falls back to plain TCP.
    pub tls: Option<PeerTls>,
}

/// The TLS side of a peer: who signs its certificate (and our client
/// certificate), and the name its certificate must carry.
#[derive(Debug, Clone)]
pub struct PeerTls {
    pub config: std::sync::Arc<rustls::ClientConfig>,
    pub server_name: String,
}

/// The TCP socket under an association's stream (for socket options).
trait Tcp: std::io::Read + std::io::Write + dicom_ul::association::CloseSocket {
    fn tcp(&self) -> &std::net::TcpStream;
}

impl Tcp for std::net::TcpStream {
    fn tcp(&self) -> &std::net::TcpStream {
        self
    }
}

impl Tcp for dicom_ul::association::client::TlsStream {
    fn tcp(&self) -> &std::net::TcpStream {
        &self.sock
    }
}

/// One instance to send, as stored in the outbox.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub path: PathBuf,
    pub sop_class: String,
    pub sop_instance: String,
}

/// What became of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success (0000) or a warning (0001, Bxxx): delivered.
    Delivered { status: u16 },
    /// Out of resources (A7xx), network trouble: try again later.
    Retry(String),
    /// Refused for good (A9xx, Cxxx, no usable presentation context).
    DeadLetter(String),
}

/// Marks a retry of the instance that was being sent when the association
/// failed; after `MAX_ABORTS_ON_INSTANCE` of them it is dead-lettered.
pub const ABORTED_ON_INSTANCE: &str = "association failed while sending this instance";
pub const MAX_ABORTS_ON_INSTANCE: u32 = 5;

/// How a C-STORE-RSP status is treated (PS3.4 B.2.3).
pub fn classify(status: u16) -> Outcome {
    match status {
        0x0000 | 0x0001 | 0x0107 | 0x0116 => Outcome::Delivered { status },
        s if s & 0xF000 == 0xB000 => Outcome::Delivered { status },
        s if s & 0xFF00 == 0xA700 => Outcome::Retry(format!("peer out of resources ({s:04X})")),
        s => Outcome::DeadLetter(format!("peer refused the instance with status {s:04X}")),
    }
}

/// The dead-letter reason of an A-ASSOCIATE-RJ that no retry can change
/// (PS3.8 9.3.4): rejected-permanent by the service-user because it does not
/// know the called or the calling AE title, or not our application context.
/// `None`: rejected-transient, or a reason that may clear (no reason given,
/// congestion, a local limit): retried.
pub fn permanent_rejection(rj: &AssociationRJ, peer: &Peer) -> Option<String> {
    use AssociationRJServiceUserReason as R;
    if rj.result != AssociationRJResult::Permanent {
        return None;
    }
    let AssociationRJSource::ServiceUser(reason) = &rj.source else {
        return None;
    };
    let detail = match reason {
        R::CalledAETitleNotRecognized => format!(
            "the peer does not know the called AE title {:?} (ae_title of the destination)",
            peer.ae_title
        ),
        R::CallingAETitleNotRecognized => format!(
            "the peer does not know our calling AE title {:?} (calling_ae_title, or [node] ae_title)",
            peer.calling_ae_title
        ),
        R::ApplicationContextNameNotSupported => {
            "the peer does not support the DICOM application context".to_string()
        }
        R::NoReasonGiven | R::Reserved(_) => return None,
    };
    Some(format!(
        "association rejected permanently: {reason}: {detail}"
    ))
}

/// Send `items` in one association, reporting each outcome to `done` as soon
/// as its response is in (so a crash resends as little as possible). An `Err`
/// means the association itself failed (refused, rejected, dropped): every
/// item not yet reported should be retried.
pub fn send_batch(
    peer: &Peer,
    items: &[Outgoing],
    done: impl FnMut(usize, Outcome),
) -> Result<(), String> {
    let mut metas = Vec::with_capacity(items.len());
    for it in items {
        metas.push(read_meta(it).map_err(|e| format!("outbox file unreadable: {e}"))?);
    }
    let mut opts = ClientAssociationOptions::new()
        .calling_ae_title(peer.calling_ae_title.clone())
        .called_ae_title(peer.ae_title.clone())
        .read_timeout(peer.timeout)
        .write_timeout(peer.timeout)
        .connection_timeout(peer.timeout);
    let contexts: BTreeSet<(String, String)> = items
        .iter()
        .zip(&metas)
        .map(|(it, (m, _))| (it.sop_class.clone(), ts_of(m)))
        .collect();
    for (class, ts) in &contexts {
        opts = opts.with_presentation_context(class.clone(), vec![ts.clone()]);
        opts = opts.with_presentation_context(
            class.clone(),
            vec![EXPLICIT_LE.to_string(), IMPLICIT_LE.to_string()],
        );
    }
    let addr = format!("{}@{}:{}", peer.ae_title, peer.host, peer.port);
    match &peer.tls {
        None => {
            let established = opts.establish_with(&addr);
            transfer(peer, items, &metas, established, done)
        }
        Some(tls) => {
            let established = opts
                .tls_config(tls.config.clone())
                .server_name(&tls.server_name)
                .establish_with_tls(&addr);
            transfer(peer, items, &metas, established, done)
        }
    }
}

/// The rest of `send_batch`, over plain TCP or TLS.
fn transfer<S: Tcp>(
    peer: &Peer,
    items: &[Outgoing],
    metas: &[(FileMetaTable, usize)],
    established: Result<
        dicom_ul::association::client::ClientAssociation<S>,
        dicom_ul::association::Error,
    >,
    mut done: impl FnMut(usize, Outcome),
) -> Result<(), String> {
    let mut assoc = match established {
        Ok(a) => a,
        // The peer takes none of these SOP classes: retrying cannot help.
        Err(dicom_ul::association::Error::NoAcceptedPresentationContexts { .. }) => {
            for i in 0..items.len() {
                done(
                    i,
                    Outcome::DeadLetter(
                        "the peer accepts no presentation context for this SOP class".into(),
                    ),
                );
            }
            return Ok(());
        }
        // Rejected for good (the peer does not know our AE titles): retrying
        // for days cannot help, an operator must fix the configuration.
        Err(dicom_ul::association::Error::Rejected { association_rj, .. }) => {
            let Some(why) = permanent_rejection(&association_rj, peer) else {
                return Err(format!(
                    "association rejected ({:?}): {}",
                    association_rj.result, association_rj.source
                ));
            };
            for i in 0..items.len() {
                done(i, Outcome::DeadLetter(why.clone()));
            }
            return Ok(());
        }
        // Refused, unreachable, or a TLS failure (untrusted certificate,
        // wrong name): retried, never sent in clear instead.
        Err(e) => return Err(format!("association failed: {}", with_causes(&e))),
    };
    assoc.inner_stream().tcp().set_nodelay(true).ok();
    let accepted: Vec<(u8, String, String)> = assoc
        .presentation_contexts()
        .iter()
        .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .map(|pc| {
            (
                pc.id,
                pc.abstract_syntax.clone(),
                pc.transfer_syntax.clone(),
            )
        })
        .collect();
    for (i, (it, (meta, offset))) in items.iter().zip(metas).enumerate() {
        let file_ts = ts_of(meta);
        let same = accepted
            .iter()
            .find(|(_, a, t)| *a == it.sop_class && *t == file_ts);
        let other = accepted.iter().find(|(_, a, _)| *a == it.sop_class);
        let Some((pc_id, _, ts)) = same.or(other) else {
            done(
                i,
                Outcome::DeadLetter(
                    "the peer accepts no presentation context for this SOP class".into(),
                ),
            );
            continue;
        };
        let data = if *ts == file_ts {
            match std::fs::read(&it.path) {
                Ok(mut b) => b.split_off(*offset),
                Err(e) => {
                    done(i, Outcome::Retry(format!("outbox file unreadable: {e}")));
                    continue;
                }
            }
        } else {
            match reencode(it, ts) {
                Ok(b) => b,
                Err(e) => {
                    done(i, Outcome::DeadLetter(e));
                    continue;
                }
            }
        };
        let msg_id = (i % 0xFFFF) as u16 + 1;
        let cmd = dimse::store_request(&it.sop_class, &it.sop_instance, msg_id);
        let sent = assoc
            .send(&Pdu::PData {
                data: vec![PDataValue {
                    presentation_context_id: *pc_id,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: cmd,
                }],
            })
            .map_err(|e| e.to_string())
            .and_then(|_| {
                let mut w = assoc.send_pdata(*pc_id);
                w.write_all(&data).map_err(|e| e.to_string())?;
                w.finish().map_err(|e| e.to_string())
            });
        let status = sent
            .map_err(|e| format!("sending failed: {e}"))
            .and_then(|_| {
                super::socket::quick_ack(assoc.inner_stream().tcp());
                read_status(&mut assoc)
            });
        match status {
            Ok(s) => done(i, classify(s)),
            Err(e) => {
                // This instance was on the wire when the association broke:
                // if that keeps happening, the peer is refusing it.
                done(i, Outcome::Retry(format!("{ABORTED_ON_INSTANCE}: {e}")));
                return Err(e);
            }
        }
    }
    assoc.release().ok();
    Ok(())
}

/// An error with its chain of causes (a TLS failure names the certificate
/// problem only in its source).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let m = s.to_string();
        if !msg.contains(&m) {
            msg.push_str(": ");
            msg.push_str(&m);
        }
        src = s.source();
    }
    msg
}

/// Read the C-STORE-RSP and return its status.
fn read_status<S: Tcp>(
    assoc: &mut dicom_ul::association::client::ClientAssociation<S>,
) -> Result<u16, String> {
    let c = read_response(assoc, "C-STORE-RSP")?;
    c.status
        .ok_or_else(|| "C-STORE-RSP without a status".to_string())
}

/// Read one DIMSE response command (`what`, e.g. "C-ECHO-RSP") from the
/// peer: the command fragments up to the last one, parsed.
pub fn read_response<S>(
    assoc: &mut dicom_ul::association::client::ClientAssociation<S>,
    what: &str,
) -> Result<dimse::Command, String>
where
    S: std::io::Read + std::io::Write + dicom_ul::association::CloseSocket,
{
    let mut cmd = Vec::new();
    loop {
        match assoc.receive().map_err(|e| format!("no response: {e}"))? {
            Pdu::PData { data } => {
                let mut last = false;
                for v in data {
                    if v.value_type == PDataValueType::Command {
                        cmd.extend_from_slice(&v.data);
                        last |= v.is_last;
                    }
                }
                if last {
                    break;
                }
            }
            Pdu::AbortRQ { .. } => return Err("the peer aborted the association".into()),
            Pdu::ReleaseRQ => return Err("the peer released the association mid-transfer".into()),
            _ => return Err(format!("unexpected PDU while waiting for {what}")),
        }
    }
    dimse::parse(&cmd)
}

/// The file meta table and the offset where the data set starts. Reads
/// only the header: the file itself is read once, when it is sent.
fn read_meta(it: &Outgoing) -> Result<(FileMetaTable, usize), String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::io::BufReader::new(std::fs::File::open(&it.path).map_err(|e| e.to_string())?);
    let mut head = [0u8; 132];
    let n = f.read(&mut head).map_err(|e| e.to_string())?;
    let start = if n == 132 && &head[128..132] == b"DICM" {
        128
    } else {
        0
    };
    f.seek(SeekFrom::Start(start as u64))
        .map_err(|e| e.to_string())?;
    let meta = FileMetaTable::from_reader(f).map_err(|e| e.to_string())?;
    let offset = start + 4 + 12 + meta.information_group_length as usize;
    Ok((meta, offset))
}

fn ts_of(m: &FileMetaTable) -> String {
    m.transfer_syntax().trim_end_matches('\0').to_string()
}

/// Re-encode a data set in another (uncompressed) transfer syntax,
/// decompressing encapsulated pixel data first (the peer accepts only
/// uncompressed data for this SOP class).
fn reencode(it: &Outgoing, ts_uid: &str) -> Result<Vec<u8>, String> {
    use dicom_pixeldata::Transcode;
    let mut obj = dicom_object::open_file(&it.path)
        .map_err(|e| format!("cannot re-read for transcoding: {e}"))?;
    let from = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    let from_ts = TransferSyntaxRegistry
        .get(&from)
        .ok_or("unknown source transfer syntax")?;
    let to = TransferSyntaxRegistry
        .get(ts_uid)
        .ok_or("unknown target transfer syntax")?;
    if to.is_encapsulated_pixel_data() {
        return Err(format!("cannot transcode {from} into compressed {ts_uid}"));
    }
    if from_ts.is_encapsulated_pixel_data() {
        // Decoding can panic inside a codec on a hostile stream: contain it
        // so one file dead-letters instead of taking the forwarder down.
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.transcode(to)))
            .map_err(|_| format!("decoding {from} pixel data panicked"))?;
        decoded.map_err(|e| {
            format!("the peer accepts only uncompressed data and {from} could not be decoded: {e}")
        })?;
    }
    let mut buf = Vec::new();
    obj.into_inner()
        .write_dataset_with_ts(&mut buf, to)
        .map_err(|e| format!("cannot re-encode: {e}"))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_ul::pdu::AssociationRJServiceProviderPresentationReason;

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(0x0000), Outcome::Delivered { status: 0 });
        assert_eq!(classify(0xB000), Outcome::Delivered { status: 0xB000 });
        assert!(matches!(classify(0xA700), Outcome::Retry(_)));
        assert!(matches!(classify(0xA702), Outcome::Retry(_)));
        assert!(matches!(classify(0xA900), Outcome::DeadLetter(_)));
        assert!(matches!(classify(0xC000), Outcome::DeadLetter(_)));
        assert!(matches!(classify(0x0122), Outcome::DeadLetter(_)));
    }

    #[test]
    fn only_permanent_ae_title_or_context_rejections_dead_letter() {
        use AssociationRJServiceProviderPresentationReason as P;
        use AssociationRJServiceUserReason as U;
        let peer = Peer {
            ae_title: "PACS".into(),
            host: "127.0.0.1".into(),
            port: 104,
            calling_ae_title: "DEIDGATE".into(),
            timeout: Duration::from_secs(1),
            tls: None,
        };
        let rj = |result, source| AssociationRJ { result, source };
        let permanent = AssociationRJResult::Permanent;
        let transient = AssociationRJResult::Transient;
        let called = permanent_rejection(
            &rj(
                permanent.clone(),
                AssociationRJSource::ServiceUser(U::CalledAETitleNotRecognized),
            ),
            &peer,
        )
        .unwrap();
        assert!(called.contains("called AE title not recognized") && called.contains("\"PACS\""));
        let calling = permanent_rejection(
            &rj(
                permanent.clone(),
                AssociationRJSource::ServiceUser(U::CallingAETitleNotRecognized),
            ),
            &peer,
        )
        .unwrap();
        assert!(calling.contains("\"DEIDGATE\""), "{calling}");
        assert!(permanent_rejection(
            &rj(
                permanent.clone(),
                AssociationRJSource::ServiceUser(U::ApplicationContextNameNotSupported)
            ),
            &peer
        )
        .is_some());
        for (result, source) in [
            (
                transient.clone(),
                AssociationRJSource::ServiceUser(U::CalledAETitleNotRecognized),
            ),
            (
                transient,
                AssociationRJSource::ServiceProviderPresentation(P::TemporaryCongestion),
            ),
            (
                permanent.clone(),
                AssociationRJSource::ServiceUser(U::NoReasonGiven),
            ),
            (
                permanent.clone(),
                AssociationRJSource::ServiceProviderPresentation(P::LocalLimitExceeded),
            ),
            (
                permanent,
                AssociationRJSource::ServiceProviderASCE(
                    dicom_ul::pdu::AssociationRJServiceProviderASCEReason::NoReasonGiven,
                ),
            ),
        ] {
            assert_eq!(permanent_rejection(&rj(result, source), &peer), None);
        }
    }
}
