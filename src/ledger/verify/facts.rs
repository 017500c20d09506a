//! What one entry shows on its own: canonical form, its seq and origin, its
//! per-entry signature, its decision index row, and its hashes.
//!
//! The fast path reads the bytes once with [`scan`]; anything it cannot
//! vouch for, including every kind of damage, goes to the slow path, which
//! parses and re-serializes and names the reason. So a bad entry is
//! reported the same way whichever path saw it first.

use super::scan::{Members, Text, scan, small_u64};
use super::streams::{StreamFact, StreamNames, stream_fact};
use super::{KeyTimeline, VerifyError, bad};
use crate::ledger::canonical::{parse_strict, to_canonical};
use crate::ledger::store::{LedgerStore, StoreError};
use crate::ledger::tree::{Hash, leaf_hash};

/// What checking one entry needs besides its bytes: its per-entry
/// signature and the decision index. A store answers one lookup at a time;
/// a verification pass answers from what it read for a whole range.
pub(super) trait Lookups {
    /// The per-entry signature of `seq`.
    fn signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError>;
    /// The seq the decision index holds for `id`.
    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError>;
}

impl<S: LedgerStore + ?Sized> Lookups for S {
    fn signature(&self, seq: u64) -> Result<Option<[u8; 64]>, StoreError> {
        self.entry_signature(seq)
    }
    fn decision_seq(&self, id: &[u8; 16]) -> Result<Option<u64>, StoreError> {
        LedgerStore::decision_seq(self, id)
    }
}

/// The bytes every `key_rotated` entry holds: entries without them are not
/// rotations (a quote inside a string is always escaped).
const ROTATION_MARK: &[u8] = br#""kind":"key_rotated""#;

fn contains_rotation_mark(bytes: &[u8]) -> bool {
    bytes
        .windows(ROTATION_MARK.len())
        .any(|w| w == ROTATION_MARK)
}

/// `false` only for entries `entry::key_rotation` says are no rotation; for
/// canonical ones from their top-level `kind` alone, which is much cheaper
/// than searching the bytes for [`ROTATION_MARK`].
pub(super) fn may_be_rotation(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes).ok().and_then(scan) {
        Some(members) => match Text::of(members.kind) {
            Text::Plain(kind) => kind == "key_rotated",
            Text::NotString => false,
            Text::Escaped => contains_rotation_mark(bytes),
        },
        None => contains_rotation_mark(bytes),
    }
}

/// What the sequential pass needs from one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EntryFacts {
    /// `prev_hash` decoded; `None` if it is not 64 lower-case hex digits,
    /// which no entry hash is written as.
    pub(super) prev_hash: Option<[u8; 32]>,
    /// BLAKE3 of the bytes: the next entry's `prev_hash`.
    pub(super) entry_hash: [u8; 32],
    /// RFC 6962 leaf hash of the bytes.
    pub(super) leaf: Hash,
    /// The entry may be a key rotation (never `false` for one that is).
    pub(super) rotation: bool,
    /// A stream's begin or end, for the link checked in seq order.
    pub(super) stream: Option<StreamFact>,
}

/// Everything about entry `seq` (`bytes`) that needs no other entry.
pub(super) fn entry_facts(
    lookups: &(impl Lookups + ?Sized),
    seq: u64,
    origin: &str,
    timeline: &KeyTimeline,
    bytes: &[u8],
) -> Result<EntryFacts, VerifyError> {
    match fast_facts(lookups, seq, origin, timeline, bytes)? {
        Some(facts) => Ok(facts),
        None => slow_facts(lookups, seq, origin, timeline, bytes),
    }
}

/// The facts of a canonical, consistent entry; `None` for anything else.
/// Returns `Some` only where [`slow_facts`] returns the same facts.
pub(super) fn fast_facts(
    lookups: &(impl Lookups + ?Sized),
    seq: u64,
    origin: &str,
    timeline: &KeyTimeline,
    bytes: &[u8],
) -> Result<Option<EntryFacts>, VerifyError> {
    let Some(members) = std::str::from_utf8(bytes).ok().and_then(scan) else {
        return Ok(None);
    };
    if small_u64(members.seq) != Some(seq) || Text::of(members.origin) != Text::Plain(origin) {
        return Ok(None);
    }
    let (prev_hash, kind, decision_id) = match (
        Text::of(members.prev_hash),
        Text::of(members.kind),
        Text::of(members.decision_id),
    ) {
        (Text::Escaped, _, _) | (_, Text::Escaped, _) | (_, _, Text::Escaped) => return Ok(None),
        (prev_hash, kind, decision_id) => (prev_hash, kind, decision_id),
    };
    match lookups.signature(seq)? {
        Some(signature) if !timeline.key_at(seq).verify_entry(bytes, &signature) => {
            return Ok(None);
        }
        None if timeline.must_sign(seq).is_some() => return Ok(None),
        _ => {}
    }
    if let (Text::Plain("decision"), Text::Plain(id)) = (kind, decision_id)
        && indexed_seq(lookups, id)? != Some(seq)
    {
        return Ok(None);
    }
    let Some(stream) = fast_stream_fact(kind, &members) else {
        return Ok(None);
    };
    Ok(Some(EntryFacts {
        prev_hash: match prev_hash {
            Text::Plain(text) => hex32(text),
            _ => None,
        },
        entry_hash: *blake3::hash(bytes).as_bytes(),
        leaf: leaf_hash(bytes),
        rotation: kind == Text::Plain("key_rotated"),
        stream,
    }))
}

/// The stream fact from the scanned members: `Some(None)` for an entry
/// that is no stream's; `None` when the slow path must decide (a
/// `stream_ended` whose `decision_seq` is not a plain integer).
fn fast_stream_fact(kind: Text<'_>, members: &Members<'_>) -> Option<Option<StreamFact>> {
    let names = || StreamNames::of_tokens(members.decision_id, members.model, members.version);
    match kind {
        // Canonical JSON never escapes a letter: the token is exactly this.
        Text::Plain("decision") if members.outcome == Some(br#""streaming""#.as_slice()) => {
            Some(Some(StreamFact::Opened(names())))
        }
        Text::Plain("stream_ended") => Some(Some(StreamFact::Ended {
            decision_seq: small_u64(members.decision_seq)?,
            names: names(),
        })),
        _ => Some(None),
    }
}

/// Parses, re-serializes and checks each fact in turn; the first failure
/// is the reason reported.
pub(super) fn slow_facts(
    lookups: &(impl Lookups + ?Sized),
    seq: u64,
    origin: &str,
    timeline: &KeyTimeline,
    bytes: &[u8],
) -> Result<EntryFacts, VerifyError> {
    let text = std::str::from_utf8(bytes).map_err(|_| bad(seq, "entry is not UTF-8"))?;
    let entry = parse_strict(text).map_err(|err| bad(seq, format!("entry is not JSON: {err}")))?;
    if to_canonical(&entry).map_err(|err| bad(seq, err.to_string()))? != bytes {
        return Err(bad(seq, "entry bytes are not canonical (RFC 8785)"));
    }
    if entry["seq"].as_u64() != Some(seq) {
        return Err(bad(seq, format!("entry says seq {}", entry["seq"])));
    }
    if entry["origin"].as_str() != Some(origin) {
        return Err(bad(
            seq,
            format!("origin {} is not {origin}", entry["origin"]),
        ));
    }
    match lookups.signature(seq)? {
        Some(signature) if !timeline.key_at(seq).verify_entry(bytes, &signature) => {
            return Err(bad(seq, "per-entry signature does not verify"));
        }
        None => {
            if let Some(at) = timeline.must_sign(seq) {
                return Err(bad(
                    seq,
                    format!(
                        "per-entry signature missing: entry_signatures is on here (recorded at seq {at})"
                    ),
                ));
            }
        }
        _ => {}
    }
    if let (Some("decision"), Some(id)) = (entry["kind"].as_str(), entry["decision_id"].as_str())
        && indexed_seq(lookups, id)? != Some(seq)
    {
        return Err(bad(
            seq,
            format!("decision index does not point at this entry for {id}"),
        ));
    }
    Ok(EntryFacts {
        prev_hash: entry["prev_hash"].as_str().and_then(hex32),
        entry_hash: *blake3::hash(bytes).as_bytes(),
        leaf: leaf_hash(bytes),
        rotation: contains_rotation_mark(bytes),
        stream: stream_fact(seq, &entry)?,
    })
}

/// The seq the decision index holds for decision id `id` (in its text form).
fn indexed_seq(lookups: &(impl Lookups + ?Sized), id: &str) -> Result<Option<u64>, VerifyError> {
    Ok(crate::decision::DecisionId::parse(id)
        .map(|id| lookups.decision_seq(id.as_bytes()))
        .transpose()?
        .flatten())
}

/// 64 lower-case hex digits as bytes: the only form `entry::hex` writes, so
/// the only form that can equal an entry hash.
pub(super) fn hex32(text: &str) -> Option<[u8; 32]> {
    /// The value of each lower-case hex digit; 0xff for any other byte.
    /// A table rather than a `match` per digit: this runs for every entry.
    const NIBBLE: [u8; 256] = {
        let mut table = [0xff; 256];
        let mut i = 0;
        while i < 16 {
            table[b"0123456789abcdef"[i] as usize] = i as u8;
            i += 1;
        }
        table
    };
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    let mut invalid = 0u8;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (hi, lo) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
        invalid |= hi | lo;
        *byte = (hi << 4) | lo;
    }
    (invalid & 0xf0 == 0).then_some(out)
}
