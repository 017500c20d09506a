//! Ledger entries: what each kind holds, and the chain rule.
//!
//! An entry is a JSON object; its canonical bytes (RFC 8785) are what the
//! chain hash, the Merkle leaf and every signature cover. Common members:
//! `seq` (gap-free from 0), `time` (UTC, RFC 3339 with milliseconds),
//! `kind`, `origin` (the log's name) and `prev_hash` (the previous entry's
//! BLAKE3 hash in hex, 64 zeros at seq 0). docs/audit-format.md lists the
//! members of every kind.

mod object;

use super::canonical::CanonicalError;
use super::tree::{Hash, leaf_hash};
use crate::decision::{
    CallerAuth, Capture, Decision, Outcome, PayloadMode, PolicyRecord, StageVerdict, StreamEnd,
};
use object::{CanonicalObject, Member};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// `prev_hash` of the entry at seq 0.
pub const GENESIS_PREV_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// The kind-specific part of an entry, before sequencing.
#[derive(Debug, Clone)]
pub enum EntryBody {
    /// One request's decision.
    Decision(Box<Decision>),
    /// The gateway started serving.
    GatewayStarted {
        /// Gateway version.
        version: String,
    },
    /// The gateway stopped cleanly.
    GatewayStopped,
    /// The log's signing key changes: this entry is committed under the
    /// old key; every later batch is signed by the new one.
    KeyRotated {
        /// Verifier key of the key that signs up to and including this entry.
        old_vkey: String,
        /// Verifier key of the key that signs every later batch.
        new_vkey: String,
        /// Who asked for it on the admin API; `None` for the offline
        /// command (whoever ran it held the store and the key file).
        by: Option<ActedBy>,
    },
    /// A governance event (a model version proposed, approved, activated,
    /// ...): its kind and members, as the module that owns the event
    /// defines them. Members may not reuse the common member names.
    Governance {
        /// The entry's `kind`.
        kind: &'static str,
        /// The kind's members.
        members: serde_json::Map<String, Value>,
    },
    /// The first entry of a new log: the gateway found its ledger damaged
    /// (it does not verify) and moved it aside on the operator's explicit
    /// instruction, or the signing key's previous log (under another
    /// origin) was left.
    LedgerRestarted {
        /// Directory name the damaged ledger was moved to (beside this
        /// one), when there was one.
        damaged_store: Option<String>,
        /// Why the old log was left: the first bad seq and what is wrong,
        /// or the store the previous origin's log is missing from.
        reason: String,
        /// The previous log's last checkpoint the key signed (signed
        /// note, verbatim), when the key has a recorded history.
        previous_checkpoint: Option<String>,
    },
    /// How a streamed decision's answer ended (its decision's outcome is
    /// `streaming`).
    StreamEnded(Box<StreamEnd>),
    /// The running gateway verified its own log (the background check, or
    /// one asked for on the admin API): which range, how, and the result.
    LedgerVerified {
        /// `full` (the whole log) or `incremental` (from the last verified
        /// checkpoint).
        mode: &'static str,
        /// First seq checked.
        from_seq: u64,
        /// The checkpoint size verified up to (entries `from_seq..to_size`).
        to_size: u64,
        /// `ok` or `failed`.
        result: &'static str,
        /// On failure: the first bad seq and what is wrong.
        failure: Option<(u64, String)>,
    },
    /// A decision's payload (salts and captures) was erased; its
    /// commitments stay in its entry and everything still verifies.
    PayloadErased {
        /// The decision whose payload is gone.
        decision_id: String,
        /// That decision's seq.
        erased_seq: u64,
        /// Why (a ticket, a data-subject request).
        reason: String,
        /// Who asked for it on the admin API; `None` for the offline
        /// command.
        by: Option<ActedBy>,
    },
}

/// The admin principal behind an entry, as the model registry's entries
/// record theirs: `principal`, `principal_roles` and, for a person signed
/// in with a JWT, `principal_issuer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActedBy {
    /// The principal's name.
    pub principal: String,
    /// Its roles when it acted.
    pub roles: Vec<String>,
    /// The issuer of its JWT; `None` for a configured admin token.
    pub issuer: Option<String>,
}

impl ActedBy {
    fn push_members<'a>(&'a self, entry: &mut CanonicalObject<'a>) {
        entry.push("principal", self.principal.as_str());
        entry.push("principal_roles", Member::Strings(&self.roles));
        if let Some(issuer) = &self.issuer {
            entry.push("principal_issuer", issuer.as_str());
        }
    }
}

/// Governance kinds that nothing replays at start and that are written
/// often (one per ground-truth label; one per model every snapshot
/// interval): kept out of the store's governance index, so a start reads
/// only the entries it replays, however many labels and snapshots the log
/// holds. Stores written before keep them in the index, which costs only
/// time at start.
const NOT_REPLAYED: &[&str] = &["feedback_received", "kpi_snapshot"];

impl EntryBody {
    /// Whether the entry is a governance event the start replays: the
    /// store indexes these, so the start finds them without a scan.
    pub fn is_governance(&self) -> bool {
        matches!(self, EntryBody::Governance { kind, .. } if !NOT_REPLAYED.contains(kind))
    }
}

/// Salts of one decision's two payload commitments.
#[derive(Debug, Clone, Copy)]
pub struct Salts {
    /// Salt of the request commitment.
    pub request: [u8; 32],
    /// Salt of the response commitment.
    pub response: [u8; 32],
}

/// A sequenced entry and its hashes.
#[derive(Debug, Clone)]
pub struct SealedEntry {
    /// Position in the log.
    pub seq: u64,
    /// RFC 8785 bytes.
    pub canonical: Vec<u8>,
    /// BLAKE3 of the canonical bytes (the next entry's `prev_hash`).
    pub entry_hash: [u8; 32],
    /// RFC 6962 leaf hash of the canonical bytes.
    pub leaf_hash: Hash,
}

/// The `(old_vkey, new_vkey)` of a `key_rotated` entry, from its canonical
/// bytes; `None` for any other entry.
pub fn key_rotation(canonical: &[u8]) -> Option<(String, String)> {
    let entry: Value = serde_json::from_slice(canonical).ok()?;
    if entry["kind"] != "key_rotated" {
        return None;
    }
    Some((
        entry["old_vkey"].as_str()?.to_owned(),
        entry["new_vkey"].as_str()?.to_owned(),
    ))
}

/// Lower-case hex, as the ledger's members spell hashes.
pub use crate::decision::hex;

/// Domain separation of per-entry signatures: no checkpoint body (which
/// starts with the origin) or other message can be mistaken for one.
pub const ENTRY_SIGNATURE_CONTEXT: &[u8] = b"govgate-entry-signature/v1\n";

/// The bytes a per-entry signature covers: the context line, then the
/// entry's canonical bytes.
pub fn entry_signature_message(canonical: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(ENTRY_SIGNATURE_CONTEXT.len() + canonical.len());
    message.extend_from_slice(ENTRY_SIGNATURE_CONTEXT);
    message.extend_from_slice(canonical);
    message
}

/// `BLAKE3(salt || bytes)`: a commitment that reveals nothing about the
/// bytes without the salt.
pub fn commitment(salt: &[u8; 32], bytes: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(salt);
    hasher.update(bytes);
    *hasher.finalize().as_bytes()
}

/// Seals an entry: adds the common members, canonicalizes and hashes.
pub fn seal(
    seq: u64,
    time: SystemTime,
    origin: &str,
    prev_hash: &[u8; 32],
    body: &EntryBody,
    mode: PayloadMode,
    salts: Option<&Salts>,
) -> Result<SealedEntry, CanonicalError> {
    let mut entry = CanonicalObject::with_capacity(24);
    entry.push("seq", seq);
    entry.push("time", rfc3339_millis(time));
    entry.push("origin", origin);
    entry.push(
        "prev_hash",
        if seq == 0 {
            GENESIS_PREV_HASH.to_owned()
        } else {
            hex(prev_hash)
        },
    );
    match body {
        EntryBody::Decision(decision) => {
            entry.push("kind", "decision");
            decision_members(&mut entry, decision, mode, salts);
        }
        EntryBody::GatewayStarted { version } => {
            entry.push("kind", "gateway_started");
            entry.push("gateway_version", version.as_str());
        }
        EntryBody::GatewayStopped => {
            entry.push("kind", "gateway_stopped");
        }
        EntryBody::KeyRotated {
            old_vkey,
            new_vkey,
            by,
        } => {
            entry.push("kind", "key_rotated");
            entry.push("old_vkey", old_vkey.as_str());
            entry.push("new_vkey", new_vkey.as_str());
            if let Some(by) = by {
                by.push_members(&mut entry);
            }
        }
        EntryBody::Governance { kind, members } => {
            entry.push("kind", *kind);
            for (name, value) in members {
                entry.push(name, value);
            }
        }
        EntryBody::StreamEnded(end) => {
            entry.push("kind", "stream_ended");
            stream_end_members(&mut entry, end, mode, salts);
        }
        EntryBody::LedgerRestarted {
            damaged_store,
            reason,
            previous_checkpoint,
        } => {
            entry.push("kind", "ledger_restarted");
            if let Some(damaged_store) = damaged_store {
                entry.push("damaged_store", damaged_store.as_str());
            }
            entry.push("reason", reason.as_str());
            if let Some(previous) = previous_checkpoint {
                entry.push("previous_checkpoint", previous.as_str());
            }
        }
        EntryBody::LedgerVerified {
            mode,
            from_seq,
            to_size,
            result,
            failure,
        } => {
            entry.push("kind", "ledger_verified");
            entry.push("mode", *mode);
            entry.push("from_seq", *from_seq);
            entry.push("to_size", *to_size);
            entry.push("result", *result);
            if let Some((seq, reason)) = failure {
                entry.push("bad_seq", *seq);
                entry.push("reason", reason.as_str());
            }
        }
        EntryBody::PayloadErased {
            decision_id,
            erased_seq,
            reason,
            by,
        } => {
            entry.push("kind", "payload_erased");
            entry.push("decision_id", decision_id.as_str());
            entry.push("erased_seq", *erased_seq);
            entry.push("reason", reason.as_str());
            if let Some(by) = by {
                by.push_members(&mut entry);
            }
        }
    }
    let mut canonical = Vec::with_capacity(768);
    entry.write(&mut canonical)?;
    Ok(SealedEntry {
        seq,
        entry_hash: *blake3::hash(&canonical).as_bytes(),
        leaf_hash: leaf_hash(&canonical),
        canonical,
    })
}

/// The `request` or `response` member: length, and unless mode `none` the
/// captured length and the salted commitment.
fn payload_member(
    capture: &Capture,
    mode: PayloadMode,
    salt: Option<&[u8; 32]>,
) -> CanonicalObject<'static> {
    let mut member = CanonicalObject::with_capacity(3);
    member.push("length", capture.total_len());
    if mode != PayloadMode::None {
        member.push("captured", capture.bytes().len() as u64);
        if let Some(salt) = salt {
            member.push("commitment", hex(&commitment(salt, capture.bytes())));
        }
    }
    member
}

fn decision_members<'a>(
    entry: &mut CanonicalObject<'a>,
    decision: &'a Decision,
    mode: PayloadMode,
    salts: Option<&Salts>,
) {
    let payload = |capture: &Capture, salt: Option<&[u8; 32]>| payload_member(capture, mode, salt);
    let timings = &decision.timings;
    let mut timing_members = CanonicalObject::with_capacity(3);
    timing_members.push("received_unix_ms", timings.received_unix_ms);
    timing_members.push("upstream_head_us", timings.upstream_head_us);
    timing_members.push("complete_us", timings.complete_us);
    entry.push("decision_id", decision.id.to_string());
    entry.push("caller", decision.caller.as_str());
    entry.push("auth", auth_member(&decision.auth));
    entry.push("route", decision.route.as_str());
    entry.push("protocol", decision.protocol.map(|p| p.as_str()));
    entry.push("model", decision.model.as_deref());
    entry.push("version", decision.version.as_deref());
    entry.push("approval_seq", decision.approval_seq);
    entry.push("path", decision.path.as_str());
    // Present only for a member cut to its cap (older entries have none).
    let cut = &decision.cut;
    for (name, digest) in [
        ("caller_sha256", &cut.caller),
        ("model_sha256", &cut.model),
        ("version_sha256", &cut.version),
        ("path_sha256", &cut.path),
    ] {
        if let Some(digest) = digest {
            entry.push(name, digest.as_str());
        }
    }
    // Present only when the model has a subject selector and the request
    // named a subject: every other entry keeps its exact bytes.
    if let Some(subject) = &decision.subject {
        entry.push("subject", subject.to_string());
    }
    entry.push(
        "policy",
        decision
            .policy
            .as_ref()
            .map_or(Member::Null, |policy| policy_member(policy).into()),
    );
    entry.push("outcome", decision.outcome.as_str());
    entry.push("status", u64::from(decision.status));
    entry.push("error_code", decision.error_code);
    entry.push("timings", timing_members);
    entry.push("payload_mode", mode.as_str());
    entry.push(
        "request",
        payload(&decision.request, salts.map(|s| &s.request)),
    );
    // A stream's answer is not known yet when its decision is recorded:
    // its `stream_ended` entry commits to it.
    entry.push(
        "response",
        if decision.outcome == Outcome::Streaming {
            Member::Null
        } else {
            payload(&decision.response, salts.map(|s| &s.response)).into()
        },
    );
}

/// The members of a `stream_ended` entry. Its payload record has the same
/// layout as a decision's, with an empty request capture (docs/audit-format.md).
fn stream_end_members<'a>(
    entry: &mut CanonicalObject<'a>,
    end: &'a StreamEnd,
    mode: PayloadMode,
    salts: Option<&Salts>,
) {
    let mut timing_members = CanonicalObject::with_capacity(1);
    timing_members.push("complete_us", end.complete_us);
    entry.push("decision_id", end.decision_id.to_string());
    entry.push("decision_seq", end.decision_seq);
    entry.push("model", end.model.as_deref());
    entry.push("version", end.version.as_deref());
    entry.push("outcome", end.outcome.as_str());
    entry.push("error_code", end.error_code);
    entry.push("released_bytes", end.released_bytes);
    entry.push("timings", timing_members);
    entry.push("payload_mode", mode.as_str());
    entry.push(
        "response",
        payload_member(&end.response, mode, salts.map(|s| &s.response)),
    );
}

/// The `auth` member of a decision entry: the method, and what names the
/// credential (a key id, a certificate fingerprint, a token's issuer,
/// subject and id), never the credential. Entries written before it have
/// no `auth` member.
fn auth_member(auth: &CallerAuth) -> CanonicalObject<'_> {
    let mut member = CanonicalObject::with_capacity(4);
    member.push("method", auth.method());
    match auth {
        CallerAuth::None => {}
        CallerAuth::Header { network } => {
            if let Some(network) = network {
                member.push("network", network.as_str());
            }
        }
        CallerAuth::ApiKey { key_id } => member.push("key_id", key_id.as_str()),
        CallerAuth::Mtls { cert_sha256 } => member.push("cert_sha256", hex(cert_sha256)),
        CallerAuth::Jwt {
            issuer,
            subject,
            jti,
        } => {
            member.push("issuer", issuer.as_str());
            if let Some(subject) = subject {
                member.push("subject", subject.as_str());
            }
            if let Some(jti) = jti {
                member.push("jti", jti.as_str());
            }
        }
    }
    member
}

/// The `policy` member of a decision entry.
fn policy_member(policy: &PolicyRecord) -> CanonicalObject<'_> {
    let mut member = CanonicalObject::with_capacity(3);
    member.push("set_seq", policy.set_seq);
    member.push("request", stage_member(&policy.request));
    member.push(
        "response",
        policy
            .response
            .as_ref()
            .map_or(Member::Null, |verdict| stage_member(verdict).into()),
    );
    member
}

fn stage_member(verdict: &StageVerdict) -> CanonicalObject<'_> {
    let mut member = CanonicalObject::with_capacity(5);
    member.push("action", verdict.action);
    member.push("deny", verdict.deny.as_slice());
    member.push("hold", verdict.hold.as_slice());
    member.push("flag", verdict.flag.as_slice());
    member.push("error", verdict.error.as_deref());
    member
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC.
pub fn rfc3339_millis(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::canonical::{parse_strict, to_canonical};
    use std::time::Duration;

    #[test]
    fn blake3_chain_vector_is_reproduced() {
        let vectors: Value =
            serde_json::from_str(include_str!("../../tests/data/rfc6962_sha256_vectors.json"))
                .unwrap();
        let mut prev = GENESIS_PREV_HASH.to_owned();
        for case in vectors["blake3_chain"]["entries"].as_array().unwrap() {
            assert_eq!(case["entry"]["prev_hash"], prev.as_str());
            let canonical = to_canonical(&case["entry"]).unwrap();
            assert_eq!(
                String::from_utf8(canonical.clone()).unwrap(),
                case["canonical_utf8"].as_str().unwrap()
            );
            let entry_hash = hex(blake3::hash(&canonical).as_bytes());
            assert_eq!(entry_hash, case["entry_hash"].as_str().unwrap());
            assert_eq!(
                hex(&leaf_hash(&canonical)),
                case["merkle_leaf_hash"].as_str().unwrap()
            );
            prev = entry_hash;
        }
    }

    #[test]
    fn sealed_entries_chain_and_are_canonical() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_776_389_090);
        let first = seal(
            0,
            t,
            "o",
            &[0; 32],
            &EntryBody::GatewayStarted {
                version: "1".into(),
            },
            PayloadMode::Full,
            None,
        )
        .unwrap();
        let second = seal(
            1,
            t,
            "o",
            &first.entry_hash,
            &EntryBody::GatewayStopped,
            PayloadMode::Full,
            None,
        )
        .unwrap();
        let parsed = parse_strict(std::str::from_utf8(&second.canonical).unwrap()).unwrap();
        assert_eq!(parsed["prev_hash"], hex(&first.entry_hash));
        assert_eq!(to_canonical(&parsed).unwrap(), second.canonical);
        let first_parsed = parse_strict(std::str::from_utf8(&first.canonical).unwrap()).unwrap();
        assert_eq!(first_parsed["prev_hash"], GENESIS_PREV_HASH);
        assert_eq!(first_parsed["time"], "2026-11-27T10:46:29.090Z");
    }

    /// The entry a decision seals to, built the slow way: a `Value`
    /// through the reference canonicalizer.
    fn reference_entry(
        decision: &Decision,
        mode: PayloadMode,
        salts: Option<&Salts>,
        time: SystemTime,
    ) -> Vec<u8> {
        use serde_json::json;
        let payload = |capture: &Capture, salt: Option<&[u8; 32]>| {
            let mut member = json!({"length": capture.total_len()});
            if mode != PayloadMode::None {
                member["captured"] = json!(capture.bytes().len());
                if let Some(salt) = salt {
                    member["commitment"] = json!(hex(&commitment(salt, capture.bytes())));
                }
            }
            member
        };
        let t = &decision.timings;
        let entry = json!({
            "seq": 7, "time": rfc3339_millis(time), "origin": "o\u{1F600}\"x",
            "prev_hash": hex(&[9; 32]), "kind": "decision",
            "decision_id": decision.id.to_string(), "caller": decision.caller,
            "route": decision.route.as_str(), "protocol": decision.protocol.map(|p| p.as_str()),
            "model": decision.model, "version": decision.version, "approval_seq": decision.approval_seq,
            "policy": decision.policy,
            "outcome": decision.outcome.as_str(), "status": decision.status,
            "error_code": decision.error_code,
            "timings": {"received_unix_ms": t.received_unix_ms,
                        "upstream_head_us": t.upstream_head_us, "complete_us": t.complete_us},
            "payload_mode": mode.as_str(),
            "request": payload(&decision.request, salts.map(|s| &s.request)),
            "response": payload(&decision.response, salts.map(|s| &s.response)),
            "path": decision.path,
        });
        let mut entry = entry;
        let cut = &decision.cut;
        for (name, digest) in [
            ("caller_sha256", &cut.caller),
            ("model_sha256", &cut.model),
            ("version_sha256", &cut.version),
            ("path_sha256", &cut.path),
        ] {
            if let Some(digest) = digest {
                entry[name] = json!(digest);
            }
        }
        if let Some(subject) = &decision.subject {
            entry["subject"] = json!(subject.to_string());
        }
        entry["auth"] = match &decision.auth {
            CallerAuth::None => json!({"method": "none"}),
            CallerAuth::Header { network: None } => json!({"method": "header"}),
            CallerAuth::Header { network: Some(n) } => json!({"method": "header", "network": n}),
            CallerAuth::ApiKey { key_id } => json!({"method": "api_key", "key_id": key_id}),
            CallerAuth::Mtls { cert_sha256 } => {
                json!({"method": "mtls", "cert_sha256": hex(cert_sha256)})
            }
            CallerAuth::Jwt {
                issuer,
                subject,
                jti,
            } => {
                let mut member = json!({"method": "jwt", "issuer": issuer});
                if let Some(subject) = subject {
                    member["subject"] = json!(subject);
                }
                if let Some(jti) = jti {
                    member["jti"] = json!(jti);
                }
                member
            }
        };
        crate::ledger::canonical::to_canonical(&entry).unwrap()
    }

    #[test]
    fn decision_entries_match_the_reference_canonicalizer() {
        use crate::decision::{DecisionId, Outcome, Protocol, Route, Timings};
        use bytes::Bytes;
        let callers = [
            "svc",
            "",
            "quote\" back\\ tab\t nl\n ctl\u{1} del\u{7f}",
            "\u{e9}\u{20ac}\u{1F600}\u{FFFF}",
        ];
        let numbers = [0, 1, (1 << 53) - 1, 1 << 53, (1 << 53) + 1, u64::MAX];
        let salts = Salts {
            request: [1; 32],
            response: [2; 32],
        };
        let time = UNIX_EPOCH + Duration::from_millis(1_795_776_389_090);
        for (i, caller) in callers.iter().enumerate() {
            for (j, number) in numbers.iter().enumerate() {
                let decision = Decision {
                    id: DecisionId::random(),
                    caller: (*caller).to_owned(),
                    route: Route::KserveInfer,
                    protocol: (j % 2 == 0).then_some(Protocol::KserveV2),
                    model: (j % 3 != 0).then(|| format!("m{caller}")),
                    version: (i % 2 == 0).then(|| "2".to_owned()),
                    approval_seq: (j % 2 == 0).then_some(*number),
                    path: format!("/m/{caller}"),
                    cut: crate::decision::CutDigests {
                        caller: (j == 1).then(|| "a".repeat(64)),
                        model: (j == 2).then(|| "b".repeat(64)),
                        version: (j == 3).then(|| "c".repeat(64)),
                        path: (j % 2 == 1).then(|| "d".repeat(64)),
                    },
                    subject: (j % 2 == 0).then_some(crate::decision::SubjectHash([j as u8; 32])),
                    auth: match j {
                        0 => CallerAuth::None,
                        1 => CallerAuth::Header {
                            network: (i % 2 == 0).then(|| "10.0.0.0/8".to_owned()),
                        },
                        2 => CallerAuth::ApiKey {
                            key_id: (*caller).to_owned(),
                        },
                        3 => CallerAuth::Mtls {
                            cert_sha256: [i as u8; 32],
                        },
                        _ => CallerAuth::Jwt {
                            issuer: format!("https://{caller}"),
                            subject: (i % 2 == 0).then(|| (*caller).to_owned()),
                            jti: (j == 5).then(|| "\u{1F600}".to_owned()),
                        },
                    },
                    policy: (j % 3 == 1).then(|| PolicyRecord {
                        set_seq: *number,
                        request: StageVerdict {
                            action: "flag",
                            deny: Vec::new(),
                            hold: vec![(*caller).to_owned()],
                            flag: vec!["b".to_owned(), (*caller).to_owned()],
                            error: None,
                        },
                        response: (i % 2 == 1).then(|| StageVerdict {
                            action: "deny",
                            deny: vec![(*caller).to_owned()],
                            hold: Vec::new(),
                            flag: Vec::new(),
                            error: Some((*caller).to_owned()),
                        }),
                    }),
                    outcome: Outcome::Served,
                    status: 200 + j as u16,
                    error_code: (j == 2).then_some("upstream_timeout"),
                    timings: Timings {
                        received_unix_ms: *number,
                        upstream_head_us: (j % 2 == 1).then_some(*number),
                        complete_us: *number,
                    },
                    request: Capture::of_complete(&Bytes::from(caller.repeat(j)), 4),
                    response: Capture::of_complete(&Bytes::from_static(b"{}"), 64),
                };
                for mode in [PayloadMode::Full, PayloadMode::Digest, PayloadMode::None] {
                    for salts in [Some(&salts), None] {
                        let sealed = seal(
                            7,
                            time,
                            "o\u{1F600}\"x",
                            &[9; 32],
                            &EntryBody::Decision(Box::new(decision.clone())),
                            mode,
                            salts,
                        )
                        .unwrap();
                        assert_eq!(
                            String::from_utf8(sealed.canonical).unwrap(),
                            String::from_utf8(reference_entry(&decision, mode, salts, time))
                                .unwrap()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn governance_entries_are_canonical_and_cannot_reuse_common_names() {
        let members = |json: Value| match json {
            Value::Object(map) => map,
            _ => unreachable!("an object"),
        };
        let body = EntryBody::Governance {
            kind: "version_approved",
            members: members(serde_json::json!({
                "model": "credit", "\u{e9}t\u{e9}": 1.5, "\u{1F600}": [true, null],
                "\u{FFFF}": "x", "approvals": [{"principal": "bob", "roles": ["approver"]}],
            })),
        };
        let time = UNIX_EPOCH + Duration::from_millis(1_795_776_389_090);
        let sealed = seal(3, time, "o", &[1; 32], &body, PayloadMode::Full, None).unwrap();
        let parsed = parse_strict(std::str::from_utf8(&sealed.canonical).unwrap()).unwrap();
        assert_eq!(to_canonical(&parsed).unwrap(), sealed.canonical);
        assert_eq!(parsed["kind"], "version_approved");
        assert_eq!(parsed["approvals"][0]["principal"], "bob");
        assert!(body.is_governance());
        for kind in ["feedback_received", "kpi_snapshot"] {
            let frequent = EntryBody::Governance {
                kind,
                members: members(serde_json::json!({ "model": "m" })),
            };
            assert!(!frequent.is_governance(), "{kind} is not replayed at start");
        }

        let clash = EntryBody::Governance {
            kind: "version_approved",
            members: members(serde_json::json!({ "seq": 9 })),
        };
        assert!(seal(3, time, "o", &[1; 32], &clash, PayloadMode::Full, None).is_err());
    }

    #[test]
    fn civil_dates_are_right_at_edges() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_819), (2027, 1, 1));
    }
}
