//! What a decision's ledger entry must be whatever the client sent:
//! canonical JSON, client-chosen text within its documented cap (with the
//! whole value's digest when cut), and the whole entry within a size that
//! no request can raise.

use crate::decision::{Decision, PayloadMode};
use crate::ledger::canonical::{parse_strict, to_canonical};
use crate::ledger::entry::{EntryBody, Salts, seal};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::UNIX_EPOCH;

/// The origin the targets' entries are sealed with (as in `setup`).
const ORIGIN: &str = "fuzz.example/gateway";

/// Caps of docs/audit-format.md ("Cut values"), written out here rather
/// than taken from the code under test: `caller`, `model` and `version`
/// keep at most 128 bytes, `path` at most 256.
const NAME_CAP: usize = 128;
const PATH_CAP: usize = 256;

/// Most bytes RFC 8785 writes for one byte of a string: a control
/// character (one byte) becomes `\u00xx`; anything else takes at most two
/// bytes per byte (`\"`, `\\`, `\n`) or is copied.
const MAX_ESCAPE: usize = 6;

/// Bytes of a decision entry besides its four client-chosen strings, at
/// most: member names and punctuation, the origin, numbers (each at most
/// 20 characters), hashes and ids of fixed length, the static route,
/// outcome and error code, the four `<member>_sha256` digests, the
/// `subject` hash (a keyed hash, whatever the subject id's length), the
/// `auth` member (at its widest a certificate's 64-digit fingerprint; a key
/// id and a header's network come from the configuration, and the targets
/// configure no JWT), and the two payload members. Those hold the body's length, the captured length and
/// a 64-digit commitment, never the captured bytes (they go to the payload
/// store), so the entry's size does not depend on `capture_bytes`.
/// `policy` is null: the targets configure no policies, and a policy's
/// reasons come from its rules, not from the client. `fixed_part_fits`
/// below measures the widest such entry (about 1420 bytes).
const FIXED_BYTES: usize = 1460;

/// The most bytes a decision entry may take, whatever the request:
/// 1460 + 6 x (3 x 128 + 256) = 5 300 bytes. Before the caps, one long path,
/// header or model name went into the entry whole.
const MAX_ENTRY_BYTES: usize = FIXED_BYTES + MAX_ESCAPE * (3 * NAME_CAP + PATH_CAP);

/// Seals `decision` as the ledger would and checks its entry.
///
/// `client_path` is the request's path as the client sent it: the entry
/// keeps it whole, or its first bytes and the digest of all of it.
///
/// # Panics
/// When the entry does not seal, is not canonical I-JSON, keeps a member
/// longer than its cap, has a digest where nothing was cut (or none where
/// something was), or is larger than [`MAX_ENTRY_BYTES`].
pub(super) fn check_entry(decision: &Decision, client_path: &str) {
    let canonical = sealed(decision);
    let reparsed = std::str::from_utf8(&canonical)
        .ok()
        .and_then(|text| parse_strict(text).ok());
    let Some(reparsed) = reparsed else {
        panic!("the entry's bytes are not I-JSON");
    };
    assert_eq!(
        to_canonical(&reparsed).ok().as_deref(),
        Some(canonical.as_slice()),
        "the entry's bytes are not canonical"
    );
    let Ok(entry) = serde_json::from_slice::<Value>(&canonical) else {
        panic!("the entry does not parse");
    };
    for (member, cap) in [
        ("caller", NAME_CAP),
        ("model", NAME_CAP),
        ("version", NAME_CAP),
        ("path", PATH_CAP),
    ] {
        let kept = entry[member].as_str().unwrap_or_default();
        assert!(
            kept.len() <= cap,
            "`{member}` keeps {} bytes (cap {cap})",
            kept.len()
        );
    }
    check_path(&entry, client_path);
    assert!(
        canonical.len() <= MAX_ENTRY_BYTES,
        "a decision entry of {} bytes (at most {MAX_ENTRY_BYTES})",
        canonical.len()
    );
}

/// The entry's `path` is the client's path, or its first bytes and the
/// SHA-256 of all of it in `path_sha256`.
fn check_path(entry: &Value, client_path: &str) {
    let kept = entry["path"].as_str().unwrap_or_default();
    let digest = entry.get("path_sha256").and_then(Value::as_str);
    if kept == client_path {
        assert!(digest.is_none(), "`path_sha256` for a path kept whole");
        return;
    }
    assert!(
        client_path.starts_with(kept),
        "`path` is not the start of the client's path"
    );
    let whole: String = Sha256::digest(client_path.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(digest, Some(whole.as_str()), "`path_sha256` of a cut path");
}

/// The entry's canonical bytes, in the mode that writes the most (`full`:
/// lengths and commitments).
fn sealed(decision: &Decision) -> Vec<u8> {
    let salts = Salts {
        request: [1; 32],
        response: [2; 32],
    };
    let body = EntryBody::Decision(Box::new(decision.clone()));
    match seal(
        u64::MAX,
        UNIX_EPOCH,
        ORIGIN,
        &[0; 32],
        &body,
        PayloadMode::Full,
        Some(&salts),
    ) {
        Ok(sealed) => sealed.canonical,
        Err(err) => panic!("the decision does not seal: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Capture, CutDigests, DecisionId, Outcome, Protocol, Route, Timings};
    use bytes::Bytes;

    /// A decision whose every member not chosen by the client is as long as
    /// it can be, and whose client-chosen strings are empty.
    fn widest_fixed_part() -> Decision {
        let digest = Some("f".repeat(64));
        let body = Bytes::from(vec![b'x'; 1000]);
        Decision {
            id: DecisionId::random(),
            caller: String::new(),
            route: Route::OpenaiChatCompletions,
            protocol: Some(Protocol::KserveV2),
            model: Some(String::new()),
            version: Some(String::new()),
            path: String::new(),
            cut: CutDigests {
                caller: digest.clone(),
                model: digest.clone(),
                version: digest.clone(),
                path: digest,
            },
            subject: Some(crate::decision::SubjectHash([0xff; 32])),
            auth: crate::decision::CallerAuth::Mtls {
                cert_sha256: [0xff; 32],
            },
            approval_seq: Some(u64::MAX),
            policy: None,
            outcome: Outcome::Released,
            status: 999,
            error_code: Some("held_answer_too_large"),
            timings: Timings {
                received_unix_ms: u64::MAX,
                upstream_head_us: Some(u64::MAX),
                complete_us: u64::MAX,
            },
            request: Capture::of_complete(&body, usize::MAX),
            response: Capture::of_complete(&body, usize::MAX),
        }
    }

    #[test]
    fn fixed_part_fits() {
        // The four payload lengths have 4 digits here, at most 20.
        let size = sealed(&widest_fixed_part()).len() + 4 * 16;
        assert!(size <= FIXED_BYTES, "{size} bytes");
    }

    #[test]
    fn the_bound_is_reached_only_by_escapes() {
        let mut decision = widest_fixed_part();
        decision.caller = "\u{1}".repeat(NAME_CAP);
        decision.model = Some("\u{1}".repeat(NAME_CAP));
        decision.version = Some("\u{1}".repeat(NAME_CAP));
        decision.path = "\u{1}".repeat(PATH_CAP);
        let size = sealed(&decision).len() + 4 * 16;
        assert!(size <= MAX_ENTRY_BYTES, "{size} bytes");
        // A capture's size does not count, only its length's digits (4 to 7
        // here): the entry holds lengths and commitments, not bytes.
        let before = sealed(&decision).len();
        decision.request = Capture::of_complete(&Bytes::from(vec![b'x'; 1 << 20]), usize::MAX);
        assert_eq!(sealed(&decision).len(), before + 2 * 3);
    }
}
