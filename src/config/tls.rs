//! `[server.public_tls]` and `[server.admin_tls]`: a listener's certificate
//! chain and private key, as PEM files. The running gateway reads them
//! again when they change or on SIGHUP, so this is where they are read,
//! at start and at every reload.

use super::raw::RawTls;
use super::validate::Checker;
use super::{ConfigError, Environment};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default pause between two looks at the files for a change.
const DEFAULT_RELOAD_CHECK_SECS: u64 = 10;

/// Where one listener's certificate and key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the leaf certificate first, then its intermediates.
    pub cert_file: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// How often the files are looked at for a change (`None`: only on
    /// SIGHUP).
    pub reload_check: Option<Duration>,
}

/// A certificate chain and its key, as read from the files.
pub struct TlsIdentity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

/// Why the files do not hold a usable chain and key.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    /// A file cannot be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// A file is not PEM of the expected kind.
    #[error("`{path}` is not {what}: {reason}")]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
        /// What the PEM reader said.
        reason: String,
    },
    /// The certificate file holds no certificate.
    #[error("`{0}` holds no PEM certificate")]
    NoCertificate(PathBuf),
}

impl TlsFiles {
    /// Reads the chain and the key.
    pub fn read(&self) -> Result<TlsIdentity, TlsFileError> {
        let cert_pem = read(&self.cert_file)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| TlsFileError::NotPem {
                path: self.cert_file.clone(),
                what: "a PEM certificate chain",
                reason: err.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsFileError::NoCertificate(self.cert_file.clone()));
        }
        let key_pem = read(&self.key_file)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| TlsFileError::NotPem {
            path: self.key_file.clone(),
            what: "a PEM private key (PKCS#8, PKCS#1 or SEC1)",
            reason: err.to_string(),
        })?;
        Ok(TlsIdentity { chain, key })
    }

    /// Changes whenever either file is replaced or rewritten (its inode,
    /// size or modification time); `None` while one cannot be looked at.
    pub fn stamp(&self) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for path in [&self.cert_file, &self.key_file] {
            // Not symlink_metadata: a Kubernetes secret volume swaps the
            // target of a link, and the target is what changes.
            let meta = std::fs::metadata(path).ok()?;
            (meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec()).hash(&mut hasher);
        }
        Some(hasher.finish())
    }

    /// Both paths, for messages.
    pub fn describe(&self) -> String {
        format!(
            "certificate `{}`, key `{}`",
            self.cert_file.display(),
            self.key_file.display()
        )
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The paths and the reload interval of one `[server.*_tls]` table; the
/// files are read by [`check_files`].
pub(super) fn check(
    checker: &Checker<'_>,
    key: &str,
    raw: Option<RawTls>,
    env: &Environment,
) -> Result<Option<TlsFiles>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    for (name, path) in [("cert_file", &raw.cert_file), ("key_file", &raw.key_file)] {
        if path.as_os_str().is_empty() {
            return Err(checker.error(format!("{key}.{name}"), "must not be empty"));
        }
    }
    Ok(Some(TlsFiles {
        cert_file: env.base_dir().join(&raw.cert_file),
        key_file: env.base_dir().join(&raw.key_file),
        reload_check: match raw.reload_check_secs.unwrap_or(DEFAULT_RELOAD_CHECK_SECS) {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        },
    }))
}

/// Reads the files once, so a configuration whose certificate or key
/// cannot be used (unreadable, not PEM, a key of another certificate) is
/// refused when it is checked, not at the first client.
pub(super) fn check_files(
    checker: &Checker<'_>,
    key: &str,
    files: Option<&TlsFiles>,
) -> Result<(), ConfigError> {
    let Some(files) = files else {
        return Ok(());
    };
    let identity = files
        .read()
        .map_err(|err| checker.error(key, err.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(identity.chain, identity.key, &provider).map_err(
        |err| {
            checker.error(
                key,
                format!(
                    "the key does not fit the certificate, or is of an unsupported type ({}): {err}",
                    files.describe()
                ),
            )
        },
    )?;
    Ok(())
}
