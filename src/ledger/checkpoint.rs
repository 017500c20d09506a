//! Checkpoints and receipts in the C2SP formats, so standard
//! transparency-log tooling can check them.
//!
//! SPEC (C2SP signed-note, Ed25519 signature type 0x01):
//! - key ID = `SHA-256(key name || 0x0a || 0x01 || public key)[0..4]`;
//! - a note is `body || 0x0a || signature lines`, each line
//!   `U+2014 SP name SP base64(key ID || signature) LF`, the signature over
//!   the body including its final newline;
//! - a verifier key is `name + "+" + hex(key ID) + "+" + base64(0x01 || public key)`.
//!
//! SPEC (C2SP tlog-checkpoint): the body is three lines, origin, tree size
//! in decimal, base64 of the RFC 6962 SHA-256 root; no extension lines here.
//!
//! SPEC (C2SP tlog-proof@v1): `c2sp.org/tlog-proof@v1`, `index N`, one
//! base64 hash per line (the leaf's sibling first), an empty line, then the
//! signed checkpoint verbatim. No `extra` line is written.

use super::entry::hex;
use super::tree::Hash;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// Ed25519's signature type byte in signed notes.
const ED25519_TYPE: u8 = 0x01;
/// The first line of a tlog-proof.
const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Why a note, checkpoint or proof text is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key name with spaces, `+` or newlines, or empty.
    #[error("invalid key name `{0}`: it must be non-empty, without spaces, `+` or newlines")]
    InvalidName(String),
    /// The text does not have the format the spec requires.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// No signature line from the expected key.
    #[error("no signature by key {0}")]
    NotSignedBy(String),
    /// A signature line from the expected key that does not verify.
    #[error("signature by key {0} does not verify")]
    BadSignature(String),
}

/// The 4-byte key ID of an Ed25519 signed-note key.
pub fn key_id(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ED25519_TYPE]);
    hasher.update(public.as_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn check_name(name: &str) -> Result<(), NoteError> {
    let bad = name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+');
    if bad {
        Err(NoteError::InvalidName(name.to_owned()))
    } else {
        Ok(())
    }
}

/// Signs note bodies under a key name.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    id: [u8; 4],
}

impl NoteSigner {
    /// A signer for `name` with an Ed25519 key.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        check_name(name)?;
        let id = key_id(name, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key,
            id,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier for this signer's signatures.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs an entry on its own (see `entry::entry_signature_message`).
    pub fn sign_entry(&self, canonical: &[u8]) -> [u8; 64] {
        self.key
            .sign(&super::entry::entry_signature_message(canonical))
            .to_bytes()
    }

    /// Signs `body` (which must end with a newline) and returns the whole note.
    pub fn sign(&self, body: &str) -> Result<String, NoteError> {
        if !body.ends_with('\n') || body.ends_with("\n\n") {
            return Err(NoteError::Malformed(
                "a note body ends with exactly one newline",
            ));
        }
        let signature = self.key.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.id);
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{body}\n\u{2014} {} {}\n",
            self.name,
            BASE64.encode(blob)
        ))
    }
}

/// Checks signed notes against one Ed25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses a verifier key `name+hexid+base64(0x01 || key)`.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        // SPEC: split on the first two `+` only; base64 may contain `+`.
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::Malformed(
                "a verifier key has three `+`-separated parts",
            ));
        };
        check_name(name)?;
        let raw = BASE64
            .decode(key_b64)
            .map_err(|_| NoteError::Malformed("verifier key is not base64"))?;
        let (Some(&ED25519_TYPE), Ok(key_bytes)) =
            (raw.first(), <[u8; 32]>::try_from(&raw[1.min(raw.len())..]))
        else {
            return Err(NoteError::Malformed("verifier key is not an Ed25519 key"));
        };
        let key = VerifyingKey::from_bytes(&key_bytes)
            .map_err(|_| NoteError::Malformed("invalid Ed25519 key"))?;
        let id = key_id(name, &key);
        if hex(&id) != id_hex {
            return Err(NoteError::Malformed(
                "verifier key ID does not match the key",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// A verifier for a known public key.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, &key),
            key,
        })
    }

    /// A verifier for the same public key under another key name (the
    /// origin of a log the key signed before).
    pub fn renamed(&self, name: &str) -> Result<Self, NoteError> {
        Self::new(name, self.key)
    }

    /// The verifier key text.
    pub fn vkey(&self) -> String {
        let mut raw = vec![ED25519_TYPE];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex(&self.id), BASE64.encode(raw))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `signature` is this key's per-entry signature of `canonical`.
    pub fn verify_entry(&self, canonical: &[u8], signature: &[u8; 64]) -> bool {
        let message = super::entry::entry_signature_message(canonical);
        self.key
            .verify(&message, &Signature::from_bytes(signature))
            .is_ok()
    }

    /// Verifies `note` and returns its body. Signature lines from other
    /// keys are ignored; one valid line from this key is required.
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let split = note.find("\n\n").ok_or(NoteError::Malformed(
            "a note has a blank line before its signatures",
        ))?;
        let body = &note[..split + 1];
        let signatures = &note[split + 2..];
        if signatures.is_empty() || !signatures.ends_with('\n') {
            return Err(NoteError::Malformed("signature lines end with a newline"));
        }
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(NoteError::Malformed(
                    "a signature line starts with an em dash and a space",
                ));
            };
            let Some((name, blob)) = rest.split_once(' ') else {
                return Err(NoteError::Malformed(
                    "a signature line has a name and a signature",
                ));
            };
            let blob = BASE64
                .decode(blob)
                .map_err(|_| NoteError::Malformed("signature is not base64"))?;
            if name != self.name || blob.len() != 68 || blob[..4] != self.id {
                continue;
            }
            let signature = Signature::from_slice(&blob[4..])
                .map_err(|_| NoteError::Malformed("bad signature"))?;
            return match self.key.verify(body.as_bytes(), &signature) {
                Ok(()) => Ok(body),
                Err(_) => Err(NoteError::BadSignature(self.vkey())),
            };
        }
        Err(NoteError::NotSignedBy(self.vkey()))
    }
}

/// A tree head: origin, size, root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 SHA-256 root.
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint body (three lines, each ending in a newline).
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        )
    }

    /// Parses a checkpoint body (extension lines are refused: this log writes none).
    pub fn parse(body: &str) -> Result<Self, NoteError> {
        let mut lines = body.split_terminator('\n');
        let (Some(origin), Some(size), Some(root), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(NoteError::Malformed("a checkpoint body has three lines"));
        };
        if origin.is_empty() || !body.ends_with('\n') {
            return Err(NoteError::Malformed("checkpoint origin line"));
        }
        // SPEC: the size is decimal ASCII without leading zeros.
        if size.is_empty()
            || (size.len() > 1 && size.starts_with('0'))
            || !size.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(NoteError::Malformed("checkpoint size line"));
        }
        let size = size
            .parse()
            .map_err(|_| NoteError::Malformed("checkpoint size line"))?;
        let root = BASE64
            .decode(root)
            .ok()
            .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
            .ok_or(NoteError::Malformed("checkpoint root line"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// A parsed tlog-proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Leaf index.
    pub index: u64,
    /// Inclusion path, the leaf's sibling first.
    pub path: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub signed_checkpoint: String,
}

impl TlogProof {
    /// The tlog-proof text.
    pub fn to_text(&self) -> String {
        let mut text = format!("{TLOG_PROOF_HEADER}\nindex {}\n", self.index);
        for hash in &self.path {
            text.push_str(&BASE64.encode(hash));
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.signed_checkpoint);
        text
    }

    /// Parses a tlog-proof text (an `extra` line is refused: this log writes none).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let rest = text
            .strip_prefix(TLOG_PROOF_HEADER)
            .and_then(|rest| rest.strip_prefix('\n'))
            .ok_or(NoteError::Malformed(
                "a tlog-proof starts with its header line",
            ))?;
        let (index_line, mut rest) = rest
            .split_once('\n')
            .ok_or(NoteError::Malformed("index line"))?;
        let index = index_line
            .strip_prefix("index ")
            .and_then(|n| n.parse().ok())
            .ok_or(NoteError::Malformed("index line"))?;
        let mut path = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or(NoteError::Malformed("proof lines"))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            let hash = BASE64
                .decode(line)
                .ok()
                .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
                .ok_or(NoteError::Malformed(
                    "a proof line is a base64 SHA-256 hash",
                ))?;
            path.push(hash);
        }
        Ok(Self {
            index,
            path,
            signed_checkpoint: rest.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../../tests/data/rfc6962_sha256_vectors.json")).unwrap()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn signer(v: &serde_json::Value) -> NoteSigner {
        let seed: [u8; 32] = unhex(v["seed_hex"].as_str().unwrap()).try_into().unwrap();
        NoteSigner::new(
            v["key_name"].as_str().unwrap(),
            SigningKey::from_bytes(&seed),
        )
        .unwrap()
    }

    #[test]
    fn checkpoint_vector_is_reproduced_byte_for_byte() {
        let vectors = vectors();
        let v = &vectors["checkpoint"];
        let signer = signer(v);
        assert_eq!(
            hex(signer.verifier().key.as_bytes()),
            v["public_key_hex"].as_str().unwrap()
        );
        assert_eq!(hex(&signer.id), v["key_id_hex"].as_str().unwrap());
        assert_eq!(signer.verifier().vkey(), v["vkey"].as_str().unwrap());
        let root: Hash = unhex(v["root_hex"].as_str().unwrap()).try_into().unwrap();
        let checkpoint = Checkpoint {
            origin: v["origin"].as_str().unwrap().to_owned(),
            size: 300,
            root,
        };
        assert_eq!(checkpoint.body(), v["body"].as_str().unwrap());
        let note = signer.sign(&checkpoint.body()).unwrap();
        assert_eq!(note, v["signed_note"].as_str().unwrap());

        let verifier = NoteVerifier::parse(v["vkey"].as_str().unwrap()).unwrap();
        let body = verifier.open(&note).unwrap();
        assert_eq!(Checkpoint::parse(body).unwrap(), checkpoint);
    }

    #[test]
    fn tlog_proof_vector_is_reproduced_byte_for_byte() {
        let vectors = vectors();
        let v = &vectors["tlog_proof"];
        let path: Vec<Hash> = v["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| unhex(h.as_str().unwrap()).try_into().unwrap())
            .collect();
        let proof = TlogProof {
            index: 123,
            path,
            signed_checkpoint: vectors["checkpoint"]["signed_note"]
                .as_str()
                .unwrap()
                .to_owned(),
        };
        assert_eq!(proof.to_text(), v["text"].as_str().unwrap());
        assert_eq!(
            TlogProof::parse(v["text"].as_str().unwrap()).unwrap(),
            proof
        );
    }

    #[test]
    fn tampered_notes_are_refused() {
        let vectors = vectors();
        let v = &vectors["checkpoint"];
        let note = v["signed_note"].as_str().unwrap();
        let verifier = NoteVerifier::parse(v["vkey"].as_str().unwrap()).unwrap();
        let changed_size = note.replacen("\n300\n", "\n301\n", 1);
        assert!(matches!(
            verifier.open(&changed_size),
            Err(NoteError::BadSignature(_))
        ));
        let other =
            NoteSigner::new("govgate.example/log", SigningKey::from_bytes(&[7; 32])).unwrap();
        let foreign = other.sign(v["body"].as_str().unwrap()).unwrap();
        assert!(matches!(
            verifier.open(&foreign),
            Err(NoteError::NotSignedBy(_))
        ));
        assert!(verifier.open("no blank line\n").is_err());
        assert!(Checkpoint::parse("origin\n0300\nAAAA\n").is_err());
        assert!(Checkpoint::parse("origin\n3\n").is_err());
        assert!(
            NoteVerifier::parse("name+00000000+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4")
                .is_err()
        );
        assert!(NoteSigner::new("has space", SigningKey::from_bytes(&[1; 32])).is_err());
    }
}
