//! The association acceptor: TCP listener, association negotiation with
//! dicom-ul's async server API, and the P-DATA loop for C-ECHO and C-STORE.
//!
//! The first PDU is peeked (not read) before dicom-ul negotiates, so that the
//! presentation contexts can be matched against the DICOM dictionary, a
//! garbage or oversized first PDU is refused before anything is buffered, and
//! an A-ASSOCIATE-RQ larger than our maximum P-DATA length is still accepted
//! (the maximum only binds P-DATA). After negotiation PDUs are read strictly
//! against the announced maximum.

use super::access::{Gate, IpRule};
use super::dimse::{self, Command};
use super::presentation::{is_accepted, trim_uid, TRANSFER_SYNTAXES};
use super::socket::{peek_request, quick_ack, PeekError};
use super::store::{Incoming, Sink};
use crate::config::{NodeConfig, ScpConfig};
use crate::deid::pseudonym::Pseudonymizer;
use anyhow::{Context, Result};
use dicom_dictionary_std::uids;
use dicom_ul::association::server::{AsyncServerAssociation, AsyncTlsStream, DefaultNegotiation};
use dicom_ul::association::{read_pdu_from_wire_async, Association, AsyncAssociation};
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJSource, AssociationRQ, PDataValue, PDataValueType,
    PresentationContextResultReason, MAXIMUM_PDU_SIZE,
};
use dicom_ul::{Pdu, ServerAssociationOptions};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

/// Largest command set (a C-STORE-RQ is about 200 bytes).
const MAX_COMMAND: usize = 64 * 1024;
/// How long a new connection waits for a free association slot.
const SLOT_WAIT: Duration = Duration::from_secs(2);
/// How long shutdown waits for associations in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The receiver, shared by every connection.
pub struct Scp {
    ae_title: String,
    cfg: ScpConfig,
    ip_rules: Vec<IpRule>,
    sink: Sink,
    /// Pseudonymous SOP UIDs for log spans (None under Retain UIDs).
    pseudo: Option<Pseudonymizer>,
    slots: Arc<Semaphore>,
    /// DICOM TLS (`[scp] tls_cert`, ...), for connections on the TLS port.
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// The byte stream under an association: plain TCP or TLS over TCP.
trait Wire: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {
    fn tcp(&self) -> &TcpStream;
}

impl Wire for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Wire for AsyncTlsStream {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Listen on `[node] host:port`.
pub async fn bind(node: &NodeConfig) -> Result<TcpListener> {
    TcpListener::bind((node.host.as_str(), node.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", node.host, node.port))
}

/// Listen on `[node] host` : `[scp] tls_port` when DICOM TLS is configured.
pub async fn bind_tls(node: &NodeConfig, cfg: &ScpConfig) -> Result<Option<TcpListener>> {
    if !cfg.tls() {
        return Ok(None);
    }
    let l = TcpListener::bind((node.host.as_str(), cfg.tls_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen for DICOM TLS on {}:{} ([scp] tls_port)",
                node.host, cfg.tls_port
            )
        })?;
    Ok(Some(l))
}

impl Scp {
    pub fn new(
        node: &NodeConfig,
        cfg: &ScpConfig,
        sink: Sink,
        pseudo: Option<Pseudonymizer>,
    ) -> Result<Scp> {
        let ip_rules = cfg
            .allowed_ips
            .iter()
            .map(|s| IpRule::parse(s).map_err(|m| anyhow::anyhow!("[scp] allowed_ips {s:?}: {m}")))
            .collect::<Result<Vec<_>>>()?;
        let tls = if cfg.tls() {
            Some(
                super::tls::server_config(&cfg.tls_cert, &cfg.tls_key, &cfg.tls_client_ca)
                    .map_err(|e| anyhow::anyhow!("[scp] DICOM TLS: {e}"))?,
            )
        } else {
            None
        };
        Ok(Scp {
            tls,
            ae_title: node.ae_title.clone(),
            cfg: cfg.clone(),
            ip_rules,
            sink,
            pseudo,
            slots: Arc::new(Semaphore::new(cfg.max_associations)),
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.read_timeout_secs)
    }

    /// Accept connections until `shutdown` completes, then wait (bounded)
    /// for the associations in progress.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        self.serve_with_tls(listener, None, shutdown).await
    }

    /// `serve`, with a second listener for DICOM TLS connections.
    pub async fn serve_with_tls(
        self: Arc<Self>,
        listener: TcpListener,
        tls_listener: Option<TcpListener>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        if tls_listener.is_some() && self.tls.is_none() {
            anyhow::bail!("a DICOM TLS listener without [scp] tls_cert / tls_key");
        }
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                acc = accept_opt(tls_listener.as_ref()) => match acc {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let me = self.clone();
                        tasks.spawn(async move { me.connection_tls(stream, peer).await });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed (TLS port)");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                acc = listener.accept() => match acc {
                    Ok((stream, peer)) => {
                        // dicom-ul leaves Nagle on; small PDUs would wait for ACKs.
                        let _ = stream.set_nodelay(true);
                        let me = self.clone();
                        tasks.spawn(async move { me.connection(stream, peer).await });
                    }
                    Err(e) => {
                        // e.g. out of file descriptors: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(r) = tasks.join_next(), if !tasks.is_empty() => log_join(r),
            }
        }
        drop(listener);
        drop(tls_listener);
        if !tasks.is_empty() {
            tracing::info!(
                associations = tasks.len(),
                "stopping: waiting for associations in progress"
            );
        }
        let drain = async {
            while let Some(r) = tasks.join_next().await {
                log_join(r);
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            tracing::warn!(
                associations = tasks.len(),
                "aborting associations still open"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        Ok(())
    }

    async fn connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let (rq, rq_len) = match tokio::time::timeout(self.timeout(), peek_request(&stream)).await {
            Ok(Ok(r)) => r,
            Ok(Err(PeekError::Closed)) => {
                tracing::debug!(%peer, "connection closed before any request");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %e, "not an association request; connection closed");
                return;
            }
            Err(_) => {
                tracing::warn!(%peer, "no association request within the read timeout");
                return;
            }
        };
        let span = tracing::info_span!(
            "association",
            %peer,
            calling_ae = %rq.calling_ae_title.trim(),
            called_ae = %rq.called_ae_title.trim()
        );
        async move {
            // Slots are taken after the request is in, so idle or garbage
            // connections cannot starve real senders.
            let slot = tokio::time::timeout(SLOT_WAIT, self.slots.clone().acquire_owned())
                .await
                .ok()
                .and_then(|r| r.ok());
            match slot {
                None => {
                    crate::metrics::inc(&crate::metrics::METRICS.associations_rejected);
                    tracing::warn!(
                        max_associations = self.cfg.max_associations,
                        "association rejected: too many associations"
                    );
                    reject_busy(stream, rq_len, self.timeout()).await;
                }
                Some(_slot) => self.associate(stream, peer, rq).await,
            }
        }
        .instrument(span)
        .await
    }

    async fn associate(&self, stream: TcpStream, peer: SocketAddr, rq: AssociationRQ) {
        let mut accepted: Vec<String> = rq
            .presentation_contexts
            .iter()
            .map(|pc| trim_uid(&pc.abstract_syntax).to_string())
            .filter(|a| is_accepted(a))
            .collect();
        accepted.sort();
        accepted.dedup();
        let mut opts = self.options(peer);
        for a in &accepted {
            opts = opts.with_abstract_syntax(a.as_str());
        }
        let assoc = match opts.establish_async(stream).await {
            Ok(a) => a,
            Err(dicom_ul::association::Error::Rejected { association_rj, .. }) => {
                crate::metrics::inc(&crate::metrics::METRICS.associations_rejected);
                tracing::warn!(reason = %association_rj.source, "association rejected");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "association not established");
                return;
            }
        };
        self.session(
            assoc,
            rq.presentation_contexts.len(),
            rq.calling_ae_title.trim(),
        )
        .await;
    }

    /// The negotiation options common to both ports.
    fn options(&self, peer: SocketAddr) -> ServerAssociationOptions<'_, Gate, DefaultNegotiation> {
        let gate = Gate {
            allowed_calling: self.cfg.allowed_calling_ae_titles.clone(),
            check_called: self.cfg.check_called_ae,
            ip_allowed: self.ip_rules.is_empty()
                || self.ip_rules.iter().any(|r| r.matches(peer.ip())),
        };
        if !gate.ip_allowed {
            tracing::warn!(%peer, "peer address is not in [scp] allowed_ips");
        }
        let mut opts = ServerAssociationOptions::new()
            .ae_access_control(gate)
            .ae_title(self.ae_title.as_str())
            .max_pdu_length(self.cfg.max_pdu_length)
            .strict(false)
            .read_timeout(self.timeout())
            .write_timeout(self.timeout())
            .with_abstract_syntax(uids::VERIFICATION);
        for ts in TRANSFER_SYNTAXES {
            opts = opts.with_transfer_syntax(*ts);
        }
        opts
    }

    /// A connection on the TLS port. The request cannot be peeked under
    /// TLS, so dicom-ul negotiates every abstract syntax with a supported
    /// transfer syntax and only Verification and Storage contexts are used:
    /// P-DATA on any other accepted context ends the association. The
    /// association slot is taken after negotiation: when none frees up in
    /// time the association is aborted.
    async fn connection_tls(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let Some(tls) = self.tls.clone() else {
            return;
        };
        let opts = self.options(peer).promiscuous(true).tls_config(tls);
        // The handshake itself is not under dicom-ul's read timeout.
        let established =
            tokio::time::timeout(self.timeout(), opts.establish_tls_async(stream)).await;
        let assoc = match established {
            Err(_) => {
                tracing::warn!(%peer, tls = true, "no TLS handshake and association request within the read timeout");
                return;
            }
            Ok(Ok(a)) => a,
            Ok(Err(dicom_ul::association::Error::Rejected { association_rj, .. })) => {
                crate::metrics::inc(&crate::metrics::METRICS.associations_rejected);
                tracing::warn!(%peer, tls = true, reason = %association_rj.source, "association rejected");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(%peer, tls = true, error = %tls_error(&e), "TLS connection refused or association not established");
                return;
            }
        };
        let span = tracing::info_span!(
            "association",
            %peer,
            tls = true,
            calling_ae = %assoc.peer_ae_title().trim(),
            called_ae = %assoc.called_ae_title().trim()
        );
        async move {
            let slot = tokio::time::timeout(SLOT_WAIT, self.slots.clone().acquire_owned())
                .await
                .ok()
                .and_then(|r| r.ok());
            let Some(_slot) = slot else {
                crate::metrics::inc(&crate::metrics::METRICS.associations_rejected);
                tracing::warn!(
                    max_associations = self.cfg.max_associations,
                    "association aborted: too many associations"
                );
                let _ = assoc.abort().await;
                return;
            };
            let proposed = assoc.presentation_contexts().len();
            let calling = assoc.peer_ae_title().trim().to_string();
            self.session(assoc, proposed, &calling).await;
        }
        .instrument(span)
        .await
    }

    /// Run an established association to its end.
    async fn session<S: Wire>(
        &self,
        assoc: AsyncServerAssociation<S>,
        proposed: usize,
        calling_ae: &str,
    ) {
        crate::metrics::inc(&crate::metrics::METRICS.associations);
        let _active = crate::metrics::Active::enter();
        let contexts: HashMap<u8, (String, String)> = assoc
            .presentation_contexts()
            .iter()
            .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
            .filter(|pc| is_accepted(&pc.abstract_syntax))
            .map(|pc| {
                let a = trim_uid(&pc.abstract_syntax).to_string();
                (pc.id, (a, trim_uid(&pc.transfer_syntax).to_string()))
            })
            .collect();
        tracing::info!(proposed, accepted = contexts.len(), "association accepted");
        let mut s = Session {
            scp: self,
            calling_ae: calling_ae.to_string(),
            assoc,
            contexts,
            command: Vec::new(),
            incoming: None,
            stored: 0,
            refused: 0,
            bytes: 0,
        };
        let end = s.run().await;
        s.close(end).await;
    }

    /// A pseudonymous SOP Instance UID for logs; never the original.
    fn log_sop(&self, original: &str) -> String {
        match &self.pseudo {
            Some(p) => p.uid(original),
            None => "-".into(),
        }
    }
}

fn log_join(r: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = r {
        if e.is_panic() {
            tracing::error!("an association task panicked; the gateway keeps serving");
        }
    }
}

/// How an association ended.
enum End {
    Released,
    PeerAborted,
    /// Protocol error, timeout, vanished peer: abort with a reason for the log.
    Abort(String),
}

/// One established association.
struct Session<'a, S> {
    scp: &'a Scp,
    calling_ae: String,
    assoc: AsyncServerAssociation<S>,
    /// Accepted presentation contexts: id -> (abstract syntax, transfer syntax).
    contexts: HashMap<u8, (String, String)>,
    command: Vec<u8>,
    incoming: Option<(u8, Incoming)>,
    stored: u64,
    refused: u64,
    bytes: u64,
}

impl<S: Wire> Session<'_, S> {
    async fn run(&mut self) -> End {
        let max = self.scp.cfg.max_pdu_length.min(MAXIMUM_PDU_SIZE);
        loop {
            let read = {
                let (socket, buffer) = self.assoc.get_mut();
                quick_ack(socket.tcp());
                tokio::time::timeout(
                    self.scp.timeout(),
                    read_pdu_from_wire_async(socket, buffer, max, true),
                )
                .await
            };
            let pdu = match read {
                Err(_) => return End::Abort("idle past the read timeout".into()),
                Ok(Err(e)) => return End::Abort(receive_error(&e)),
                Ok(Ok(p)) => p,
            };
            match pdu {
                Pdu::PData { data } => {
                    for v in data {
                        if let Err(why) = self.value(v).await {
                            return End::Abort(why);
                        }
                    }
                }
                Pdu::ReleaseRQ => return End::Released,
                Pdu::AbortRQ { .. } => return End::PeerAborted,
                _ => return End::Abort("unexpected PDU type".into()),
            }
        }
    }

    async fn close(mut self, end: End) {
        let partial = self.incoming.take().is_some();
        let (stored, refused, bytes) = (self.stored, self.refused, self.bytes);
        match end {
            End::Released => {
                let _ = self.assoc.send(&Pdu::ReleaseRP).await;
                let _ = self.assoc.inner_stream().shutdown().await;
                tracing::info!(stored, refused, bytes, "association released");
            }
            End::PeerAborted => {
                tracing::warn!(
                    stored,
                    refused,
                    bytes,
                    partial,
                    "association aborted by the peer"
                );
            }
            End::Abort(why) => {
                tracing::warn!(stored, refused, bytes, partial, reason = %why, "association aborted");
                let _ = self.assoc.abort().await;
            }
        }
    }

    /// One presentation data value (a command or data set fragment).
    async fn value(&mut self, v: PDataValue) -> Result<(), String> {
        let pc = v.presentation_context_id;
        let Some((abstract_syntax, ts)) = self.contexts.get(&pc).cloned() else {
            return Err(format!(
                "P-DATA on presentation context {pc}, which was not accepted"
            ));
        };
        self.bytes += v.data.len() as u64;
        match v.value_type {
            PDataValueType::Command => {
                if self.incoming.is_some() {
                    return Err("command fragment while a data set was in progress".into());
                }
                self.command.extend_from_slice(&v.data);
                if self.command.len() > MAX_COMMAND {
                    return Err("command set too large".into());
                }
                if v.is_last {
                    let bytes = std::mem::take(&mut self.command);
                    let cmd = dimse::parse(&bytes)?;
                    self.command(pc, cmd, &abstract_syntax, &ts).await?;
                }
            }
            PDataValueType::Data => {
                let Some((in_pc, inc)) = self.incoming.as_mut() else {
                    return Err("data set fragment without a C-STORE command".into());
                };
                if *in_pc != pc {
                    return Err("data set fragment on another presentation context".into());
                }
                inc.write(&v.data).await;
                if v.is_last {
                    let (_, inc) = self.incoming.take().expect("checked above");
                    self.finish(pc, inc).await?;
                }
            }
        }
        Ok(())
    }

    async fn command(
        &mut self,
        pc: u8,
        cmd: Command,
        abstract_syntax: &str,
        ts: &str,
    ) -> Result<(), String> {
        match cmd.field {
            dimse::C_ECHO_RQ => {
                tracing::debug!("C-ECHO");
                self.respond(pc, dimse::echo_response(&cmd)).await
            }
            dimse::C_STORE_RQ if cmd.has_data_set => {
                let mut inc =
                    Incoming::start(&self.scp.sink.spool, cmd, ts, &self.calling_ae).await;
                if inc.command.sop_class != abstract_syntax {
                    inc.refuse(
                        dimse::status::SOP_CLASS_NOT_SUPPORTED,
                        "SOP class differs from the presentation context",
                    );
                }
                self.incoming = Some((pc, inc));
                Ok(())
            }
            dimse::C_STORE_RQ => Err("C-STORE-RQ without a data set".into()),
            other => Err(format!("unsupported DIMSE command 0x{other:04X}")),
        }
    }

    async fn finish(&mut self, pc: u8, inc: Incoming) -> Result<(), String> {
        let span = tracing::info_span!(
            "instance",
            msg = inc.command.message_id,
            sop = %self.scp.log_sop(&inc.command.sop_instance)
        );
        let command = inc.command.clone();
        let size = inc.bytes;
        let (status, comment) = inc.finish(&self.scp.sink).instrument(span.clone()).await;
        if status == dimse::status::SUCCESS {
            crate::metrics::inc(&crate::metrics::METRICS.instances_stored);
            self.stored += 1;
            span.in_scope(|| tracing::debug!(bytes = size, "stored in the spool"));
        } else {
            crate::metrics::inc(&crate::metrics::METRICS.instances_refused);
            self.refused += 1;
            span.in_scope(|| tracing::warn!(status = format!("{status:04X}"), "C-STORE failed"));
        }
        self.respond(pc, dimse::store_response(&command, status, comment))
            .await
    }

    async fn respond(&mut self, pc: u8, command: Vec<u8>) -> Result<(), String> {
        let pdu = Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Command,
                is_last: true,
                data: command,
            }],
        };
        self.assoc
            .send(&pdu)
            .await
            .map_err(|e| format!("cannot send a response: {e}"))
    }
}

/// Wait for a connection on the TLS listener, forever when there is none.
async fn accept_opt(l: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// A TLS or negotiation error for the log, with its cause (a certificate
/// problem names itself there).
fn tls_error(e: &dicom_ul::association::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// A receive error for the log: the kind of failure, never PDU contents.
fn receive_error(e: &dicom_ul::association::Error) -> String {
    use dicom_ul::association::Error as E;
    match e {
        E::ConnectionClosed { .. } => "peer closed the connection mid-association".into(),
        E::ReceivePdu { source, .. } => format!("malformed PDU: {source}"),
        E::Timeout { .. } => "timed out".into(),
        _ => "receive failed".into(),
    }
}

/// Read the (already peeked) request and answer A-ASSOCIATE-RJ, transient,
/// local limit exceeded: the sender may retry later.
async fn reject_busy(mut stream: TcpStream, rq_len: usize, timeout: Duration) {
    let rj = Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    let mut out = Vec::new();
    if dicom_ul::write_pdu(&mut out, &rj).is_err() {
        return;
    }
    let _ = tokio::time::timeout(timeout, async {
        let mut rq = vec![0u8; rq_len];
        stream.read_exact(&mut rq).await?;
        stream.write_all(&out).await?;
        stream.shutdown().await
    })
    .await;
}
