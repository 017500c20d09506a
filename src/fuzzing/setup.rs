//! Configuration for the targets, parsed by the real config checker from
//! TOML text, with a throw-away signing key (the checker reads one).

use crate::config::{Config, Environment};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// What every target's configuration starts with; models follow.
const HEAD: &str = r#"
[server]
public_listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
data_dir = "data"

[limits]
max_request_body_bytes = 16384
capture_bytes = 256

[ledger]
origin = "fuzz.example/gateway"
key_file = "fuzz.key"
"#;

/// The value of the `FUZZ_CREDENTIAL` variable that model credentials name.
pub(super) const CREDENTIAL: &str = "fuzz-credential";

/// Parses `HEAD` + `models` (TOML `[[models]]` tables).
///
/// # Panics
/// If the configuration is refused or the key cannot be written: the
/// targets' own setup is wrong, not the input.
pub(super) fn config(models: &str) -> Config {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "govgate-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    write_key(&dir);
    let vars = HashMap::from([("FUZZ_CREDENTIAL".to_owned(), CREDENTIAL.to_owned())]);
    let parsed = Config::parse(
        &format!("{HEAD}{models}"),
        "fuzz.toml",
        &Environment::fixed(vars, &dir),
    );
    let _ = std::fs::remove_dir_all(&dir);
    match parsed {
        Ok(config) => config,
        Err(err) => panic!("fuzz target configuration refused: {err}"),
    }
}

/// A fixed, TEST-ONLY Ed25519 key (mode 0600) as `fuzz.key` in `dir`.
fn write_key(dir: &std::path::Path) {
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        let pem =
            crate::config::keyfile::encode_pem(&ed25519_dalek::SigningKey::from_bytes(&[7; 32]))
                .map_err(std::io::Error::other)?;
        let path = dir.join("fuzz.key");
        std::fs::write(&path, pem.as_bytes())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    });
    if let Err(err) = written {
        panic!("cannot write the fuzz key in {}: {err}", dir.display());
    }
}
