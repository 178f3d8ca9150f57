//! DICOM TLS (PS3.15 B.1, the "BCP 195" profiles) with rustls and the ring
//! provider, as on the HTTP side: the receiver's server configuration
//! (optionally requiring a client certificate signed by `tls_client_ca`) and
//! a forwarder's client configuration (the peer's certificate is verified
//! against the destination's `ca` and its server name).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM file; at least one.
pub fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path}: no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The (first) private key of a PEM file: PKCS#8, PKCS#1 or SEC1.
pub fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{path}: no usable private key: {e}"))
}

fn roots(path: &str) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    for c in load_certs(path)? {
        store
            .add(c)
            .map_err(|e| format!("{path}: not a usable CA certificate: {e}"))?;
    }
    Ok(store)
}

/// The receiver's TLS configuration. With `client_ca`, a peer must present a
/// certificate signed by it (mutual TLS); without, any peer may connect.
pub fn server_config(
    cert: &str,
    key: &str,
    client_ca: &str,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if client_ca.is_empty() {
        builder.with_no_client_auth()
    } else {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots(client_ca)?),
            provider(),
        )
        .build()
        .map_err(|e| format!("{client_ca}: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    };
    let cfg = builder
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| format!("{cert} / {key}: {e}"))?;
    Ok(Arc::new(cfg))
}

/// A forwarder's TLS configuration: the peer is verified against `ca` (no
/// system roots: DICOM peers are signed by a hospital or project CA), and
/// we present `client_cert` when given.
pub fn client_config(
    ca: &str,
    client_cert: &str,
    client_key: &str,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(ca)?);
    let cfg = if client_cert.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder
            .with_client_auth_cert(load_certs(client_cert)?, load_key(client_key)?)
            .map_err(|e| format!("{client_cert} / {client_key}: {e}"))?
    };
    Ok(Arc::new(cfg))
}

/// Whether `name` can be checked against a certificate (a DNS name or an
/// IP address).
pub fn valid_server_name(name: &str) -> bool {
    ServerName::try_from(name.to_string()).is_ok()
}
