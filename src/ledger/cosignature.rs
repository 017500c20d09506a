//! Witness cosignatures on checkpoints, and the policy a verifier applies
//! to them (k of n named witnesses). Pure: no I/O.
//!
//! SPEC (C2SP tlog-cosignature, Ed25519 `cosignature/v1`):
//! - key ID = `SHA-256(name || 0x0a || 0x04 || public key)[0..4]`; a
//!   verifier key is a signed-note vkey with signature type 0x04;
//! - the signature line is `U+2014 SP name SP base64(key ID || timestamp || signature)`,
//!   the timestamp a big-endian u64 of POSIX seconds (at most 2^63 - 1);
//! - the signed message is `cosignature/v1\n`, `time <timestamp>\n`, then
//!   the whole checkpoint body (including its final newline, without any
//!   signature lines).
//!
//! A cosignature says: as of its time, the largest consistent tree the
//! witness has seen for this origin has this root.

use super::checkpoint::NoteError;
use super::entry::hex;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature type byte of Ed25519 `cosignature/v1` keys.
const COSIGNATURE_TYPE: u8 = 0x04;
/// Key ID, timestamp, Ed25519 signature.
const BLOB_LEN: usize = 4 + 8 + 64;

/// The message a `cosignature/v1` signs for checkpoint `body` at `timestamp`.
pub fn signed_message(body: &str, timestamp: u64) -> String {
    // SPEC: two newline-terminated lines, then the whole note body.
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', COSIGNATURE_TYPE]);
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        Err(NoteError::InvalidName(name.to_owned()))
    } else {
        Ok(())
    }
}

/// A note split into its body (with its final newline) and its signature lines.
pub fn split_note(note: &str) -> Result<(&str, Vec<&str>), NoteError> {
    let split = note.find("\n\n").ok_or(NoteError::Malformed(
        "a note has a blank line before its signatures",
    ))?;
    let signatures = &note[split + 2..];
    if signatures.is_empty() || !signatures.ends_with('\n') {
        return Err(NoteError::Malformed("signature lines end with a newline"));
    }
    Ok((&note[..split + 1], signatures.lines().collect()))
}

/// A witness's public key: checks its cosignatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignerKey {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

/// What a signature line is, for one cosigner key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineCheck {
    /// Not this key's line (another name or key ID): ignored.
    Other,
    /// This key's valid cosignature, made at this POSIX time.
    Valid(u64),
    /// This key's line, but it does not verify.
    Invalid(&'static str),
}

impl CosignerKey {
    /// Parses a vkey `name+hexid+base64(0x04 || key)`.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        // SPEC: split on the first two `+` only; base64 may contain `+`.
        let mut parts = vkey.trim().splitn(3, '+');
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
        let Some((&kind, key_bytes)) = raw.split_first() else {
            return Err(NoteError::Malformed("verifier key is empty"));
        };
        if kind != COSIGNATURE_TYPE {
            return Err(NoteError::Malformed(
                "not a cosignature/v1 key (signature type 0x04)",
            ));
        }
        let key_bytes = <[u8; 32]>::try_from(key_bytes)
            .map_err(|_| NoteError::Malformed("verifier key is not an Ed25519 key"))?;
        let key = VerifyingKey::from_bytes(&key_bytes)
            .map_err(|_| NoteError::Malformed("invalid Ed25519 key"))?;
        let cosigner = Self::new(name, key)?;
        if hex(&cosigner.id) != id_hex {
            return Err(NoteError::Malformed(
                "verifier key ID does not match the key",
            ));
        }
        Ok(cosigner)
    }

    /// The cosigner key of `name` and `key`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, &key),
            key,
        })
    }

    /// The key name (the name on its signature lines).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The vkey text.
    pub fn vkey(&self) -> String {
        let mut raw = vec![COSIGNATURE_TYPE];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex(&self.id), BASE64.encode(raw))
    }

    /// Checks one signature line (without its newline) against checkpoint `body`.
    pub fn check_line(&self, body: &str, line: &str) -> LineCheck {
        let Some((name, blob)) = line
            .strip_prefix("\u{2014} ")
            .and_then(|rest| rest.split_once(' '))
        else {
            return LineCheck::Other;
        };
        if name != self.name {
            return LineCheck::Other;
        }
        let Ok(blob) = BASE64.decode(blob) else {
            return LineCheck::Other;
        };
        // SPEC: lines whose name or key ID do not match are ignored.
        if blob.len() < 4 || blob[..4] != self.id {
            return LineCheck::Other;
        }
        if blob.len() != BLOB_LEN {
            return LineCheck::Invalid("a cosignature is 76 bytes");
        }
        let mut time = [0u8; 8];
        time.copy_from_slice(&blob[4..12]);
        let timestamp = u64::from_be_bytes(time);
        if timestamp > i64::MAX as u64 {
            return LineCheck::Invalid("timestamp beyond 2^63 - 1");
        }
        let Ok(signature) = Signature::from_slice(&blob[12..]) else {
            return LineCheck::Invalid("malformed signature");
        };
        match self
            .key
            .verify(signed_message(body, timestamp).as_bytes(), &signature)
        {
            Ok(()) => LineCheck::Valid(timestamp),
            Err(_) => LineCheck::Invalid("signature does not verify"),
        }
    }

    /// This key's valid cosignature among `lines`, with its time, if any.
    pub fn find(&self, body: &str, lines: &[&str]) -> Option<(String, u64)> {
        lines
            .iter()
            .find_map(|line| match self.check_line(body, line) {
                LineCheck::Valid(time) => Some(((*line).to_owned(), time)),
                _ => None,
            })
    }
}

/// Makes `cosignature/v1` lines (a witness's side; the tests' fixtures).
pub struct Cosigner {
    key: SigningKey,
    public: CosignerKey,
}

impl Cosigner {
    /// A cosigner named `name`.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        let public = CosignerKey::new(name, key.verifying_key())?;
        Ok(Self { key, public })
    }

    /// Its public key.
    pub fn public(&self) -> &CosignerKey {
        &self.public
    }

    /// The signature line (with its newline) over checkpoint `body` at `timestamp`.
    pub fn cosign(&self, body: &str, timestamp: u64) -> String {
        let signature = self.key.sign(signed_message(body, timestamp).as_bytes());
        let mut blob = Vec::with_capacity(BLOB_LEN);
        blob.extend_from_slice(&self.public.id);
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        format!("\u{2014} {} {}\n", self.public.name, BASE64.encode(blob))
    }
}

/// Why a note does not meet a witness policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not a signed note.
    #[error("not a cosigned checkpoint: {0}")]
    Note(#[from] NoteError),
    /// Fewer valid cosignatures than the threshold.
    #[error(
        "witness policy not met: {valid} of the {needed} required valid cosignatures{}{}",
        if cosigned.is_empty() { String::new() } else { format!(" (valid: {})", cosigned.join(", ")) },
        if problems.is_empty() { String::new() } else { format!("; {}", problems.join("; ")) }
    )]
    NotMet {
        /// Valid cosignatures found.
        valid: usize,
        /// The threshold.
        needed: usize,
        /// The witnesses whose cosignature verified.
        cosigned: Vec<String>,
        /// Lines of configured witnesses that did not verify.
        problems: Vec<String>,
    },
}

/// Which witnesses a verifier trusts, and how many must have cosigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessPolicy {
    witnesses: Vec<(String, CosignerKey)>,
    threshold: usize,
}

/// A witness's valid cosignature, as a policy check found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The label the policy gives the witness.
    pub witness: String,
    /// The cosignature's POSIX time.
    pub time: u64,
}

/// A witness threshold that no cosignatures could meet, or that any
/// would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a witness threshold must be between 1 and the number of witnesses ({witnesses}), not {threshold}"
)]
pub struct ThresholdError {
    /// Witnesses named.
    pub witnesses: usize,
    /// The threshold asked for.
    pub threshold: usize,
}

impl WitnessPolicy {
    /// `threshold` of `witnesses` (label, key). A threshold of 0 or above
    /// the number of witnesses is refused.
    pub fn new(
        witnesses: Vec<(String, CosignerKey)>,
        threshold: usize,
    ) -> Result<Self, ThresholdError> {
        if threshold == 0 || threshold > witnesses.len() {
            return Err(ThresholdError {
                witnesses: witnesses.len(),
                threshold,
            });
        }
        Ok(Self {
            witnesses,
            threshold,
        })
    }

    /// The threshold.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Checks the cosignatures of `note` (a checkpoint with its signature
    /// lines). The log's own signature is not checked here. Each witness
    /// counts once, however many lines it has.
    pub fn check(&self, note: &str) -> Result<Vec<Cosigned>, PolicyError> {
        let (body, lines) = split_note(note)?;
        let mut cosigned = Vec::new();
        let mut problems = Vec::new();
        for (label, key) in &self.witnesses {
            let mut found = None;
            for line in &lines {
                match key.check_line(body, line) {
                    LineCheck::Valid(time) => {
                        found = Some(time);
                        break;
                    }
                    LineCheck::Invalid(why) => problems.push(format!("{label}: {why}")),
                    LineCheck::Other => {}
                }
            }
            if let Some(time) = found {
                cosigned.push(Cosigned {
                    witness: label.clone(),
                    time,
                });
            }
        }
        if cosigned.len() < self.threshold {
            return Err(PolicyError::NotMet {
                valid: cosigned.len(),
                needed: self.threshold,
                cosigned: cosigned.into_iter().map(|c| c.witness).collect(),
                problems,
            });
        }
        Ok(cosigned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "example.com/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

    fn cosigner(name: &str, seed: u8) -> Cosigner {
        Cosigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    fn note(lines: &[String]) -> String {
        format!("{BODY}\n\u{2014} example.com/log AAAA\n{}", lines.concat())
    }

    #[test]
    fn vkeys_round_trip_and_other_types_are_refused() {
        let w = cosigner("w.example/1", 1);
        let vkey = w.public().vkey();
        assert_eq!(CosignerKey::parse(&vkey).unwrap(), *w.public());
        // The log's own (type 0x01) key is not a cosigner key.
        let log = super::super::checkpoint::NoteSigner::new(
            "w.example/1",
            SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap()
        .verifier()
        .vkey();
        assert!(CosignerKey::parse(&log).is_err());
        let mut parts = vkey.splitn(3, '+');
        let (name, _, key) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
        assert!(CosignerKey::parse(&format!("{name}+00000000+{key}")).is_err());
    }

    #[test]
    fn cosignatures_verify_and_tampering_is_caught() {
        let w = cosigner("w.example/1", 1);
        let line = w.cosign(BODY, 1_700_000_000);
        let trimmed = line.trim_end();
        assert_eq!(
            w.public().check_line(BODY, trimmed),
            LineCheck::Valid(1_700_000_000)
        );
        let other_body = BODY.replace("\n3\n", "\n4\n");
        assert!(matches!(
            w.public().check_line(&other_body, trimmed),
            LineCheck::Invalid(_)
        ));
        // Another witness's line is ignored, not an error.
        assert_eq!(
            cosigner("w.example/2", 2)
                .public()
                .check_line(BODY, trimmed),
            LineCheck::Other
        );
    }

    #[test]
    fn the_policy_counts_distinct_valid_witnesses() {
        let (a, b, c) = (cosigner("a", 1), cosigner("b", 2), cosigner("c", 3));
        let keys = || {
            vec![
                ("a".to_owned(), a.public().clone()),
                ("b".to_owned(), b.public().clone()),
                ("c".to_owned(), c.public().clone()),
            ]
        };
        let two = WitnessPolicy::new(keys(), 2).unwrap();
        let both = note(&[a.cosign(BODY, 5), b.cosign(BODY, 6)]);
        assert_eq!(two.check(&both).unwrap().len(), 2);
        let twice = note(&[a.cosign(BODY, 5), a.cosign(BODY, 7)]);
        assert!(matches!(
            two.check(&twice),
            Err(PolicyError::NotMet {
                valid: 1,
                needed: 2,
                ..
            })
        ));
        let forged = note(&[a.cosign(BODY, 5), b.cosign(&BODY.replace('3', "4"), 6)]);
        let err = two.check(&forged).unwrap_err();
        assert!(
            err.to_string().contains("b: signature does not verify"),
            "{err}"
        );
        assert!(WitnessPolicy::new(keys(), 0).is_err());
        assert!(WitnessPolicy::new(keys(), 4).is_err());
    }
}
