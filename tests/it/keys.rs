//! The signing key file's interoperability: keygen writes PKCS#8 v1 (RFC
//! 8410), which OpenSSL 3 and pyca/cryptography load; a key made by
//! `openssl genpkey` is accepted; a key file written by earlier versions
//! (PKCS#8 v2) still loads.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_govgate");
const ORIGIN: &str = "test.govgate.example/keys";
const UPGRADE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/upgrade/keys");

fn run(command: &mut Command) -> Vec<u8> {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The raw 32-byte public key in govgate's verifier key for `key`.
fn govgate_public_key(key: &Path, origin: &str) -> Vec<u8> {
    let vkey = String::from_utf8(run(Command::new(BIN)
        .args(["vkey", "--origin", origin, "--key"])
        .arg(key)))
    .unwrap();
    let encoded = vkey.trim().splitn(3, '+').nth(2).unwrap();
    let bytes = STANDARD.decode(encoded).unwrap();
    assert_eq!(bytes[0], 1, "the Ed25519 algorithm byte");
    bytes[1..].to_vec()
}

/// The raw public key OpenSSL derives from the private key at `key`.
fn openssl_public_key(key: &Path) -> Vec<u8> {
    let der = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(key));
    // SubjectPublicKeyInfo for Ed25519: 12 bytes of header, then the key.
    assert_eq!(der.len(), 44);
    der[12..].to_vec()
}

fn new_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("govgate.key");
    let output = run(Command::new(BIN)
        .args(["keygen", "--origin", ORIGIN, "--out"])
        .arg(&key));
    let said = String::from_utf8(output).unwrap();
    let start = said.find("-----BEGIN PUBLIC KEY-----").unwrap();
    let end = said.find("-----END PUBLIC KEY-----").unwrap() + "-----END PUBLIC KEY-----".len();
    (key, format!("{}\n", &said[start..end]))
}

#[cfg(unix)]
fn chmod_600(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
#[ignore = "needs openssl (Debian package openssl); run with: cargo test -- --include-ignored"]
fn openssl_loads_a_keygen_key_and_derives_the_same_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let (key, printed_pem) = new_key(dir.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    run(Command::new("openssl")
        .args(["pkey", "-noout", "-in"])
        .arg(&key));
    let openssl_pem = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key));
    assert_eq!(String::from_utf8(openssl_pem).unwrap(), printed_pem);
    assert_eq!(openssl_public_key(&key), govgate_public_key(&key, ORIGIN));
}

#[test]
#[ignore = "needs openssl (Debian package openssl); run with: cargo test -- --include-ignored"]
fn govgate_accepts_a_key_made_by_openssl_genpkey() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("openssl.key");
    run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key));
    #[cfg(unix)]
    chmod_600(&key);
    assert_eq!(govgate_public_key(&key, ORIGIN), openssl_public_key(&key));
}

#[test]
#[ignore = "needs python3 with pyca/cryptography (Debian package python3-cryptography); \
            run with: cargo test -- --include-ignored"]
fn pyca_cryptography_loads_a_keygen_key() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = new_key(dir.path());
    let script = "import sys\n\
        from cryptography.hazmat.primitives import serialization as s\n\
        k = s.load_pem_private_key(open(sys.argv[1], 'rb').read(), password=None)\n\
        print(k.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw).hex())\n";
    let hex = run(Command::new("python3").args(["-c", script]).arg(&key));
    let expected: String = govgate_public_key(&key, ORIGIN)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(String::from_utf8(hex).unwrap().trim(), expected);
}

#[test]
fn a_key_file_from_an_earlier_keygen_still_loads() {
    // tests/data/upgrade/keys/v2.key: PKCS#8 v2, as keygen wrote it before.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("v2.key");
    std::fs::copy(Path::new(UPGRADE).join("v2.key"), &key).unwrap();
    #[cfg(unix)]
    chmod_600(&key);
    let vkey = String::from_utf8(run(Command::new(BIN)
        .args(["vkey", "--origin", "govgate.example/upgrade-key", "--key"])
        .arg(&key)))
    .unwrap();
    let recorded = std::fs::read_to_string(Path::new(UPGRADE).join("v2.vkey")).unwrap();
    assert_eq!(vkey, recorded);
}
