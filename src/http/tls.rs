//! The HTTPS listener (`server.tls_listen`, default port 8531): rustls with the certificate
//! chain and private key from `server.tls_cert` / `server.tls_key` (PEM), serving the same
//! router as the plain listener. Requests that came over TLS carry an internal marker header
//! (set here, removed from anything a client sends) so services can build `https` URLs.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::Router;

/// Internal header marking a request received over TLS.
pub const TLS_MARK_HEADER: &str = "x-wsus-edge-tls";

/// Why the TLS configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// No certificate or no key in the PEM file, or rustls refused them.
    #[error("{0}")]
    Invalid(String),
}

/// Loads a PEM certificate chain and private key into an acceptor (HTTP/1.1 only).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    Ok(reloadable_acceptor(cert, key)?.0)
}

/// The certificate HTTPS serves, swapped in place by [`CertSlot::reload`] (SIGHUP): new
/// handshakes get the new certificate, open connections keep theirs.
#[derive(Debug)]
pub struct CertSlot {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        })
    }
}

impl CertSlot {
    /// Loads `cert` and `key` again; on error the certificate in use stays.
    pub fn reload(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        let k = load_certified_key(cert, key)?;
        match self.current.write() {
            Ok(mut g) => *g = k,
            Err(p) => *p.into_inner() = k,
        }
        Ok(())
    }
}

fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Io {
            path: p.display().to_string(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Invalid(format!(
            "{}: no certificate",
            cert.display()
        )));
    }
    let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsError::Invalid(format!("{}: no private key", key.display()))
        }
        e => TlsError::Invalid(format!("{}: {e}", key.display())),
    })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", key.display())))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match()
        .map_err(|e| TlsError::Invalid(format!("{} and {}: {e}", cert.display(), key.display())))?;
    Ok(Arc::new(ck))
}

/// Like [`acceptor`], also returning the slot that reloads its certificate.
pub fn reloadable_acceptor(
    cert: &Path,
    key: &Path,
) -> Result<(TlsAcceptor, Arc<CertSlot>), TlsError> {
    let slot = Arc::new(CertSlot {
        current: RwLock::new(load_certified_key(cert, key)?),
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(slot.clone());
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(cfg)), slot))
}

/// Serves HTTPS on `listener` until `shutdown` turns true (then lets requests finish, ≤ 10 s).
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Arc<Router>,
    shutdown: watch::Receiver<bool>,
) {
    let limits = router.limits;
    super::listen::accept_loop(
        listener,
        shutdown,
        "https",
        limits,
        move |stream, peer, conn, stop| {
            let router = router.clone();
            let acceptor = acceptor.clone();
            async move {
                let handshake = limits.idle_timeout + limits.header_read_timeout;
                let tls = match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                super::serve_connection(tls, router, peer, conn, true, stop).await;
            }
        },
    )
    .await
}
