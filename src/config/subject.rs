//! `[models.subject]` (where a request names its data subject) and the
//! subject key (`ledger.subject_key_file`): reading it, and making one at
//! the first start that needs it.

use super::ConfigError;
use super::raw::RawSubject;
use super::validate::Checker;
use crate::decision::SubjectKey;
use crate::kpi::Selector;
use http::HeaderName;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a model's requests name their data subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectSelector {
    /// A request header (the first value; empty counts as none).
    Header(HeaderName),
    /// A JSON pointer (RFC 6901, no `*`) into the request body, to a
    /// string or a number.
    Body(Selector),
}

/// Subject ids longer than this are refused as no subject (and counted).
pub const MAX_SUBJECT_BYTES: usize = 1024;

/// The key file's name in `server.data_dir` when `ledger.subject_key_file`
/// is not set.
pub const DEFAULT_KEY_FILE: &str = "subject.key";

pub(super) fn check(
    checker: &Checker<'_>,
    key: &str,
    raw: RawSubject,
) -> Result<SubjectSelector, ConfigError> {
    match (raw.header, raw.pointer) {
        (Some(header), None) => {
            let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                checker.error(
                    format!("{key}.header"),
                    format!("`{header}` is not a header name"),
                )
            })?;
            Ok(SubjectSelector::Header(name))
        }
        (None, Some(pointer)) => {
            let selector = Selector::pointer(&pointer)
                .map_err(|err| checker.error(format!("{key}.pointer"), err.to_string()))?;
            match &selector {
                Selector::Pointer(tokens) if tokens.iter().any(Option::is_none) => Err(checker
                    .error(
                        format!("{key}.pointer"),
                        "a subject is one value: `*` is not allowed here",
                    )),
                _ => Ok(SubjectSelector::Body(selector)),
            }
        }
        (Some(_), Some(_)) => Err(checker.error(key, "give `header` or `pointer`, not both")),
        (None, None) => Err(checker.error(
            key,
            "needs `header` (a request header) or `pointer` (a JSON pointer into the request body)",
        )),
    }
}

/// Why the subject key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum SubjectKeyError {
    /// The file cannot be read or written.
    #[error("subject key file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds something else than a key.
    #[error(
        "subject key file {}: not a key (32 bytes, or 64 hex digits)",
        path.display()
    )]
    NotAKey {
        /// The file.
        path: PathBuf,
    },
    /// Others may read the file.
    #[error("subject key file {}: readable by others; `chmod 600` it", path.display())]
    Readable {
        /// The file.
        path: PathBuf,
    },
}

/// Where the subject key is: the configured file, or
/// `data_dir/subject.key`.
pub fn key_path(configured: Option<&Path>, data_dir: &Path) -> PathBuf {
    configured.map_or_else(|| data_dir.join(DEFAULT_KEY_FILE), Path::to_path_buf)
}

/// Reads the subject key at `path`; `None` when there is no such file.
pub fn read_key(path: &Path) -> Result<Option<SubjectKey>, SubjectKeyError> {
    let io = |source| SubjectKeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io(err)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(SubjectKeyError::Readable {
                path: path.to_path_buf(),
            });
        }
    }
    parse_key(&bytes)
        .map(Some)
        .ok_or_else(|| SubjectKeyError::NotAKey {
            path: path.to_path_buf(),
        })
}

/// 32 bytes as they are, or 64 hex digits (a final newline allowed).
fn parse_key(bytes: &[u8]) -> Option<SubjectKey> {
    if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
        return Some(SubjectKey::from_bytes(raw));
    }
    let text = std::str::from_utf8(bytes)
        .ok()?
        .trim_end_matches(['\n', '\r']);
    crate::decision::SubjectHash::parse(text).map(|hash| SubjectKey::from_bytes(hash.0))
}

/// Reads the subject key at `path`, making one (32 random bytes, mode
/// 0600, synced with its directory) when there is none yet.
pub fn read_or_create_key(path: &Path) -> Result<SubjectKey, SubjectKeyError> {
    if let Some(key) = read_key(path)? {
        return Ok(key);
    }
    let io = |source| SubjectKeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = [0u8; 32];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut bytes)
        .map_err(|err| io(std::io::Error::other(err.to_string())))?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    // Never over a file another start made meanwhile.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    drop(file);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io)?;
    tracing::info!(path = %path.display(), "subject key created (keep it with the data: without it, decisions cannot be found by subject)");
    Ok(SubjectKey::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_private_and_read_back_in_either_form() {
        let dir = std::env::temp_dir().join(format!("govgate-subject-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("subject.key");
        assert!(read_key(&path).unwrap().is_none());
        let made = read_or_create_key(&path).unwrap();
        let again = read_or_create_key(&path).unwrap();
        assert_eq!(made.hash("x"), again.hash("x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(raw.len(), 32);
        let hex_path = dir.join("hex.key");
        std::fs::write(&hex_path, format!("{}\n", crate::decision::hex(&raw))).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&hex_path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                read_key(&hex_path),
                Err(SubjectKeyError::Readable { .. })
            ));
            std::fs::set_permissions(&hex_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let from_hex = read_key(&hex_path).unwrap().unwrap();
        assert_eq!(from_hex.hash("x"), made.hash("x"));
        std::fs::write(&hex_path, b"short").unwrap();
        assert!(matches!(
            read_key(&hex_path),
            Err(SubjectKeyError::NotAKey { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
