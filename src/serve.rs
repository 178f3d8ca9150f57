//! `deidgate serve`: the gateway process. The receiver (tokio) writes each
//! instance durably to the spool; pipeline workers (threads) de-identify it
//! into `<data_dir>/out`. Ctrl-C or SIGTERM stops accepting, lets the
//! associations in progress finish, drains the queue and flushes the key store.

use crate::config::Config;
use crate::keystore::KeyStore;
use crate::net::scp::{self, Scp};
use crate::net::store::Sink;
use crate::pipeline::forwarder::Forwarders;
use crate::pipeline::router::Router;
use crate::pipeline::spool::Spool;
use crate::pipeline::workers::Workers;
use crate::runtime::Runtime;
use anyhow::{Context, Result};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Spool ids between the receiver and the workers. When it is full the
/// receiver waits before answering, which slows the sender to our pace.
const QUEUE_DEPTH: usize = 64;

/// Run the gateway until Ctrl-C or SIGTERM.
pub fn run(cfg: Config) -> Result<()> {
    let rt = Arc::new(Runtime::open(cfg)?);
    let spool = Arc::new(Spool::open_logged(rt.config.data_dir(), rt.store.db())?);
    // Half-written outputs of a killed run (their sources are replayed).
    let mut roots = vec![rt.config.data_dir().to_path_buf()];
    roots.extend(
        rt.config
            .destinations
            .iter()
            .filter(|d| d.kind == crate::config::DestinationKind::Folder && !d.path.is_empty())
            .map(|d| std::path::PathBuf::from(&d.path)),
    );
    let stale: usize = roots
        .iter()
        .map(|r| crate::pipeline::output::remove_stale_temps(r))
        .sum();
    if stale > 0 {
        tracing::info!(
            files = stale,
            "removed temp files left by an interrupted run"
        );
    }
    let backlog = spool.pending()?;
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("deidgate-net")
        .build()
        .context("cannot start the network runtime")?;
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let router = Arc::new(Router::new(
        &rt.config.destinations,
        rt.config.data_dir(),
        &rt.config.node.ae_title,
        rt.store.db(),
    )?);
    let forwarders = Forwarders::start(&router.dicom);
    // Head MR series: held durably, processed by their own thread.
    let holding = Arc::new(crate::pipeline::series::holding::Holding::open(
        rt.config.data_dir(),
    )?);
    let series = crate::pipeline::series::assembler::Assembler::start(
        rt.clone(),
        spool.clone(),
        holding.clone(),
        router.clone(),
    )?;
    let workers = Workers::start(
        rt.clone(),
        spool.clone(),
        backlog,
        rx,
        worker_threads(),
        router.clone(),
        Some(holding),
    )?;
    // The admin socket's sender is dropped with the network runtime, before
    // the workers are joined, so they still drain and stop.
    let admin_spool = crate::admin::LiveSpool {
        spool: spool.clone(),
        queue: tx.clone(),
    };
    let sink = Sink {
        spool,
        queue: tx,
        refused: crate::pipeline::refused::Refused::new(
            rt.config.data_dir(),
            rt.config.scp.keep_refused_mb,
        ),
        reserve: crate::pipeline::disk::Reserve::new(
            rt.config.data_dir(),
            rt.config.node.disk_reserve_mb,
        ),
    };
    let pseudo =
        (!rt.deid.profile().options().retain_uids).then(|| rt.deid.pseudonymizer().clone());
    let result = tokio_rt.block_on(async {
        // The receiver owns the only sender: when it is gone the workers
        // drain the queue and stop.
        let scp = Arc::new(Scp::new(&rt.config.node, &rt.config.scp, sink, pseudo)?);
        let listener = scp::bind(&rt.config.node).await?;
        tracing::info!(
            address = %listener.local_addr()?,
            ae_title = %rt.config.node.ae_title,
            out = %rt.config.data_dir().join("out").display(),
            "listening"
        );
        let tls_listener = scp::bind_tls(&rt.config.node, &rt.config.scp).await?;
        if let Some(l) = &tls_listener {
            tracing::info!(
                address = %l.local_addr()?,
                mutual = !rt.config.scp.tls_client_ca.is_empty(),
                "listening for DICOM TLS"
            );
        }
        crate::admin::start(rt.clone(), admin_spool);
        if !rt.config.http.listen.is_empty() {
            let state = crate::api::Shared::new(rt.clone(), router.clone())?;
            crate::api::listen::start(state).await?;
        }
        scp.serve_with_tls(listener, tls_listener, shutdown_signal())
            .await
    });
    drop(tokio_rt);
    workers.join();
    series.stop();
    forwarders.stop();
    rt.store.flush().context("flushing the key store")?;
    tracing::info!("stopped");
    result
}

fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested");
}
