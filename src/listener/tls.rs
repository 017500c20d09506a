//! TLS on a listener (rustls, TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`), with a
//! certificate that can be replaced while the listener serves.
//!
//! The rustls configuration is built once; its certificate resolver hands
//! out whichever certificate is current when a handshake starts. A reload
//! swaps that certificate: connections already established keep the one
//! they shook hands with, new ones get the new one. A reload whose files
//! do not make a usable certificate leaves the current one in place and
//! says why.

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::net::TcpStream;

/// Where a listener's certificate comes from; read at start and again at
/// every reload.
pub trait CertificateSource: Send + Sync + 'static {
    /// The chain (leaf first) and the leaf's key.
    fn read(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String>;
    /// A value that changes whenever the source does (`None`: cannot tell
    /// now); a reload on change compares it with the last one loaded.
    fn stamp(&self) -> Option<u64>;
    /// The source, for messages (file names).
    fn describe(&self) -> String;
}

/// Why a certificate cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The source could not be read.
    #[error("{0}")]
    Source(String),
    /// The client CA roots cannot verify anything.
    #[error("client CA roots: {0}")]
    ClientRoots(String),
    /// rustls refused the key or the chain.
    #[error("{what}: {source}")]
    Rustls {
        /// What was being done.
        what: &'static str,
        /// rustls' reason.
        source: rustls::Error,
    },
}

/// Mutual TLS: the roots client certificates must chain to.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    /// Trusted CA certificates for client certificates.
    pub roots: Vec<CertificateDer<'static>>,
    /// Refuse the handshake of a client without a certificate; else such
    /// a client is served and other ways of naming the caller apply.
    pub required: bool,
}

/// One listener's TLS: the handshake, and the certificate it presents.
pub struct ListenerTls {
    source: Arc<dyn CertificateSource>,
    acceptor: tokio_rustls::TlsAcceptor,
    current: Arc<CurrentCertificate>,
    /// The source's stamp when the current certificate was read.
    loaded_stamp: Mutex<Option<u64>>,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls")
            .field("source", &self.source.describe())
            .finish_non_exhaustive()
    }
}

impl ListenerTls {
    /// Reads the certificate and builds the TLS settings.
    pub fn new(
        source: Arc<dyn CertificateSource>,
        client_auth: Option<&ClientAuth>,
    ) -> Result<Self, TlsError> {
        let stamp = source.stamp();
        let certified = certified_key(source.as_ref())?;
        let current = Arc::new(CurrentCertificate(RwLock::new(Arc::new(certified))));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|source| TlsError::Rustls {
                what: "TLS versions",
                source,
            })?;
        let builder = match client_auth {
            None => builder.with_no_client_auth(),
            Some(client_auth) => {
                builder.with_client_cert_verifier(client_verifier(client_auth, provider)?)
            }
        };
        let mut config = builder.with_cert_resolver(current.clone());
        // The server's order decides: HTTP/2 for clients that offer it.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            source,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            current,
            loaded_stamp: Mutex::new(stamp),
        })
    }

    /// Reads the certificate again and serves it from the next handshake
    /// on; on error the current one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamp = self.source.stamp();
        let certified = certified_key(self.source.as_ref())?;
        *self
            .current
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
        *self
            .loaded_stamp
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = stamp;
        Ok(())
    }

    /// Whether the source changed since the current certificate was read.
    pub fn changed(&self) -> bool {
        let now = self.source.stamp();
        now.is_some()
            && now
                != *self
                    .loaded_stamp
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
    }

    /// The source, for messages.
    pub fn describe(&self) -> String {
        self.source.describe()
    }

    /// Shakes hands on a new connection, within `timeout`.
    pub(super) async fn accept(
        &self,
        stream: TcpStream,
        timeout: Duration,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        match tokio::time::timeout(timeout, self.acceptor.accept(stream)).await {
            Ok(accepted) => accepted,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake not finished in time",
            )),
        }
    }
}

/// Verifies client certificates against `client_auth`'s roots.
fn client_verifier(
    client_auth: &ClientAuth,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for root in &client_auth.roots {
        roots.add(root.clone()).map_err(|source| TlsError::Rustls {
            what: "a client CA certificate",
            source,
        })?;
    }
    let builder =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if client_auth.required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder
        .build()
        .map_err(|err| TlsError::ClientRoots(err.to_string()))
}

/// The certificate handed to every new handshake.
#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// The source's chain with its key, checked to belong together.
fn certified_key(source: &dyn CertificateSource) -> Result<CertifiedKey, TlsError> {
    let (chain, key) = source.read().map_err(TlsError::Source)?;
    let provider = rustls::crypto::ring::default_provider();
    let certified =
        CertifiedKey::from_der(chain, key, &provider).map_err(|source| TlsError::Rustls {
            what: "the key does not fit the certificate, or is of an unsupported type",
            source,
        })?;
    Ok(certified)
}
