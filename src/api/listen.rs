//! Binding and serving the HTTP application, over TLS when configured.

use super::State;
use anyhow::{Context, Result};
use axum_server::tls_rustls::RustlsConfig;
use std::net::SocketAddr;

/// Binds `[http] listen`, spawns the server and returns its address.
pub async fn start(state: State) -> Result<SocketAddr> {
    let http = state.runtime.config.http.clone();
    let listener = std::net::TcpListener::bind(&http.listen)
        .with_context(|| format!("[http] listen {}: cannot bind", http.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    super::throughput::Throughput::spawn(state.clone());
    let app = super::app(state).into_make_service_with_connect_info::<SocketAddr>();
    if http.tls() {
        // One process-wide crypto provider; a second install is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = RustlsConfig::from_pem_file(&http.tls_cert, &http.tls_key)
            .await
            .with_context(|| {
                format!(
                    "[http] tls_cert {:?} / tls_key {:?}: cannot load the certificate or key",
                    http.tls_cert, http.tls_key
                )
            })?;
        let server = axum_server::from_tcp_rustls(listener, tls);
        tokio::spawn(async move {
            if let Err(e) = server.serve(app).await {
                tracing::error!(error = %e, "HTTPS server stopped");
            }
        });
    } else {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });
    }
    tracing::info!(
        address = %addr,
        scheme = if http.tls() { "https" } else { "http" },
        "HTTP: /healthz, /metrics, operator page /, API /api"
    );
    Ok(addr)
}
