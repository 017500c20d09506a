//! The JSON-lines files of a bundle: entries (canonical form, common
//! members, the BLAKE3 chain), per-entry signatures and payloads.

use super::fields::{LineObject, Member, Side, Spans, scan_line};
use super::keys::KeySchedule;
use super::{BundleError, bad, bad_seq};
use crate::ledger::canonical::{parse_strict, to_canonical};
use crate::ledger::entry::{GENESIS_PREV_HASH, commitment, hex};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

/// One line of `entries.jsonl`, checked on its own.
#[derive(Clone)]
pub(crate) struct BundleEntry {
    /// Its `seq`.
    pub(crate) seq: u64,
    /// Its exact bytes (the line without its LF).
    /// A slice of the block it was read in, or its own copy.
    pub(crate) bytes: Bytes,
    /// Parsed whole; `null` when read by the scan (`spans`), whose
    /// accessors (`fields`) the checks of the one-pass verification use.
    pub(crate) value: Value,
    /// BLAKE3 of the bytes, lower-case hex (the next entry's `prev_hash`).
    pub(crate) hash: String,
    /// Where the members the checks read lie in `bytes`, when the scan
    /// read the line (`fields::read_entry_scanned`).
    pub(crate) spans: Option<Spans>,
}

/// Lines of a JSON-lines file; each ends with LF (the last one may omit it).
pub(crate) fn split_jsonl(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    if lines.last().is_some_and(|last| last.is_empty()) {
        lines.pop();
    }
    lines
}

/// Standard base64 with padding, refused unless it re-encodes to `text`
/// (so one value has one spelling).
pub(crate) fn base64_exact(text: &str) -> Option<Vec<u8>> {
    base64_bytes_exact(text.as_bytes())
}

/// [`base64_exact`] of text given as its bytes (what it decodes is ASCII).
pub(crate) fn base64_bytes_exact(text: &[u8]) -> Option<Vec<u8>> {
    // `STANDARD` decodes only canonical text (padding required and
    // canonical, trailing bits zero), so what it decodes re-encodes to
    // `text`; the length check says so without writing it out again.
    let raw = BASE64.decode(text).ok()?;
    (base64::encoded_len(raw.len(), true) == Some(text.len())).then_some(raw)
}

/// Every line of `entries.jsonl`: canonical (RFC 8785), with the common
/// members, `origin` the checkpoint's.
pub(crate) fn read_entries(bytes: &[u8], origin: &str) -> Result<Vec<BundleEntry>, BundleError> {
    split_jsonl(bytes)
        .into_iter()
        .enumerate()
        .map(|(i, line)| read_entry_line(Bytes::copy_from_slice(line), i, origin))
        .collect()
}

/// Line `index` (from 0) of `entries.jsonl`, checked on its own.
pub(crate) fn read_entry_line(
    line: Bytes,
    index: usize,
    origin: &str,
) -> Result<BundleEntry, BundleError> {
    match read_entry(&line, origin) {
        Ok(entry) => Ok(BundleEntry {
            bytes: line,
            ..entry
        }),
        Err(reason) => Err(name_line(&line, index, reason)),
    }
}

/// Names a bad line by the seq it claims, when it can be read at all.
fn name_line(line: &[u8], index: usize, reason: String) -> BundleError {
    let seq = serde_json::from_slice::<Value>(line)
        .ok()
        .and_then(|value| value["seq"].as_u64());
    let reason = format!("entries.jsonl line {}: {reason}", index + 1);
    match seq {
        Some(seq) => bad_seq(seq, reason),
        None => bad("entries", reason),
    }
}

fn read_entry(line: &[u8], origin: &str) -> Result<BundleEntry, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let value = parse_strict(text).map_err(|err| format!("not JSON: {err}"))?;
    // One scan vouches for almost every line; writing the value back out
    // decides (and names why) for the rest.
    if !crate::ledger::verify::vouched_canonical(text)
        && to_canonical(&value).map_err(|err| err.to_string())? != line
    {
        return Err("bytes are not RFC 8785 canonical JSON".to_owned());
    }
    let seq = value["seq"]
        .as_u64()
        .ok_or("seq is missing or not a non-negative integer")?;
    for name in ["time", "kind", "origin", "prev_hash"] {
        if !value[name].is_string() {
            return Err(format!("{name} is missing or not a string"));
        }
    }
    let prev = value["prev_hash"].as_str().unwrap_or_default();
    if prev.len() != 64 || !prev.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("prev_hash is not 64 lower-case hex digits".to_owned());
    }
    if value["origin"] != origin {
        return Err(format!(
            "origin {} is not the checkpoint origin {origin:?}",
            value["origin"]
        ));
    }
    Ok(BundleEntry {
        seq,
        hash: hex(blake3::hash(line).as_bytes()),
        bytes: Bytes::new(),
        value,
        spans: None,
    })
}

/// The BLAKE3 chain between every two entries with consecutive seqs (all
/// of them in a contiguous bundle), and the zero hash at seq 0. When the
/// link into seq `s` breaks, the next link says which side changed: if
/// `s + 1` still records the hash of `s`, then `s - 1` was altered.
pub(crate) fn check_chain(entries: &[BundleEntry]) -> Result<(), BundleError> {
    for (i, entry) in entries.iter().enumerate() {
        let prev_hash = entry.prev_hash();
        if entry.seq == 0 {
            if prev_hash != GENESIS_PREV_HASH {
                return Err(bad_seq(0, "prev_hash must be 64 zeros at seq 0"));
            }
            continue;
        }
        let Some(prev) = i
            .checked_sub(1)
            .and_then(|p| entries.get(p))
            .filter(|prev| prev.seq + 1 == entry.seq)
        else {
            continue; // the first line, or a gap in a sparse bundle: taken as given
        };
        if prev_hash == prev.hash {
            continue;
        }
        let next = entries.get(i + 1).filter(|next| next.seq == entry.seq + 1);
        let records = next.map(|next| next.prev_hash() == entry.hash.as_str());
        return Err(broken_link(
            prev.seq, &prev.hash, prev_hash, entry.seq, records,
        ));
    }
    Ok(())
}

/// The link into seq `s` (whose `prev_hash` is `prev_hash`) from seq `p`
/// (whose BLAKE3 hash is `p_hash`) is broken; `records`: whether seq
/// `s + 1` records the hash of `s` (`None` when it is not there).
pub(crate) fn broken_link(
    p: u64,
    p_hash: &str,
    prev_hash: &str,
    s: u64,
    records: Option<bool>,
) -> BundleError {
    match records {
        Some(true) => bad_seq(
            p,
            format!(
                "entry altered: its BLAKE3 hash {p_hash} is not the prev_hash {prev_hash} that seq {s} records"
            ),
        ),
        Some(false) => bad_seq(
            s,
            format!(
                "entry altered: its prev_hash is not the BLAKE3 hash of seq {p} and seq {} does not record its hash either",
                s + 1
            ),
        ),
        None => bad_seq(
            p,
            format!("hash chain broken between seq {p} and seq {s} (one of them altered)"),
        ),
    }
}

fn by_seq(entries: &[BundleEntry]) -> BTreeMap<u64, &BundleEntry> {
    entries.iter().map(|entry| (entry.seq, entry)).collect()
}

fn bad_line(file: &str, number: usize, reason: impl Into<String>) -> BundleError {
    bad(&format!("{file} line {number}"), reason)
}

/// The `seq` member of a line's object, and the object: read by the scan
/// when it vouches for the line, else parsed whole (which names why a line
/// is bad).
fn line_object<'a>(
    file: &str,
    number: usize,
    raw: &'a [u8],
    members: &[&str],
) -> Result<(u64, LineObject<'a>), BundleError> {
    if let Some(scanned) = scan_line(raw, members) {
        return Ok(scanned);
    }
    let (seq, object) = parsed_line_object(file, number, raw, members)?;
    Ok((seq, LineObject::Parsed(object)))
}

/// [`line_object`] parsed whole, owning its members.
fn parsed_line_object(
    file: &str,
    number: usize,
    raw: &[u8],
    members: &[&str],
) -> Result<(u64, serde_json::Map<String, Value>), BundleError> {
    let text = std::str::from_utf8(raw).map_err(|_| bad_line(file, number, "not UTF-8"))?;
    let Ok(Value::Object(object)) = parse_strict(text) else {
        return Err(bad_line(file, number, "not a JSON object"));
    };
    if let Some(missing) = members.iter().find(|m| !object.contains_key(**m)) {
        return Err(bad_line(file, number, format!("member {missing} missing")));
    }
    let seq = object["seq"]
        .as_u64()
        .ok_or_else(|| bad_line(file, number, "seq is not a non-negative integer"))?;
    Ok((seq, object))
}

/// Each line of `signatures.jsonl`, when present, is a valid per-entry
/// signature (section 10) of a bundled entry at or after `from` by the key
/// in force for its batch (before `from`, which a model-filtered sparse
/// bundle may reach, the bundle does not say which key was in force).
/// Returns the seqs whose signatures were checked.
pub(crate) fn check_signatures(
    dir: &Path,
    entries: &[BundleEntry],
    schedule: &KeySchedule,
    from: u64,
) -> Result<std::collections::BTreeSet<u64>, BundleError> {
    let Some(mut lines) = super::digest::Lines::open(dir, SIGNATURES)? else {
        return Ok(Default::default());
    };
    let entries = by_seq(entries);
    let mut seen = BTreeMap::new();
    while let Some((number, raw)) = lines.next_line()? {
        let (seq, object) = signature_line(number, &raw)?;
        let signature = signature_of(seq, number, &object)?;
        if let Some(first) = seen.insert(seq, number) {
            return Err(bad_seq(
                seq,
                format!("{SIGNATURES} line {number} repeats the signature of line {first}"),
            ));
        }
        check_signature(
            seq,
            number,
            &signature,
            entries.get(&seq).copied(),
            schedule,
            from,
        )?;
    }
    Ok(seen.into_keys().collect())
}

const SIGNATURES: &str = "signatures.jsonl";
const PAYLOADS: &str = "payloads.jsonl";
const PAYLOAD_MEMBERS: [&str; 5] = [
    "seq",
    "request_salt",
    "response_salt",
    "request",
    "response",
];

/// Line `number` of `signatures.jsonl`: its seq and its object.
pub(crate) fn signature_line(
    number: usize,
    raw: &[u8],
) -> Result<(u64, LineObject<'_>), BundleError> {
    line_object(SIGNATURES, number, raw, &["seq", "signature"])
}

/// The signature a `signatures.jsonl` line holds.
pub(crate) fn signature_of(
    seq: u64,
    number: usize,
    object: &LineObject<'_>,
) -> Result<[u8; 64], BundleError> {
    object
        .str("signature")
        .and_then(base64_exact)
        .and_then(|raw| <[u8; 64]>::try_from(raw).ok())
        .ok_or_else(|| {
            bad_seq(
                seq,
                format!(
                    "{SIGNATURES} line {number}: signature is not canonical base64 of 64 bytes"
                ),
            )
        })
}

/// A signature line's rules past its form: `entry` (the bundled entry of
/// its seq, if any) is there, at or after `from`, and signed by the key
/// in force for its batch.
pub(crate) fn check_signature(
    seq: u64,
    number: usize,
    signature: &[u8; 64],
    entry: Option<&BundleEntry>,
    schedule: &KeySchedule,
    from: u64,
) -> Result<(), BundleError> {
    const FILE: &str = SIGNATURES;
    let entry = entry.ok_or_else(|| {
        bad_seq(
            seq,
            format!("{FILE} line {number}: a signature for an entry that is not in the bundle"),
        )
    })?;
    if seq < from {
        return Err(bad_seq(
            seq,
            format!(
                "{FILE} line {number}: a signature for an entry before from ({from}), \
                 where the bundle does not say which key was in force"
            ),
        ));
    }
    if !schedule
        .entry_key(seq)
        .verify_entry(&entry.bytes, signature)
    {
        return Err(bad_seq(
            seq,
            format!("per-entry signature does not verify ({FILE} line {number})"),
        ));
    }
    Ok(())
}

/// `payloads.jsonl` is present exactly when the manifest says so, and every
/// line opens its entry's commitments (a decision's, or a `stream_ended`'s
/// response), the captures no commitment covers being empty. Returns the
/// seqs whose payloads were checked.
pub(crate) fn check_payloads(
    dir: &Path,
    entries: &[BundleEntry],
    declared: bool,
) -> Result<std::collections::BTreeSet<u64>, BundleError> {
    let lines = super::digest::Lines::open(dir, PAYLOADS)?;
    if !payloads_declared(lines.is_some(), declared)? {
        return Ok(Default::default());
    }
    let Some(mut lines) = lines else {
        return Ok(Default::default());
    };
    let entries = by_seq(entries);
    let mut seen = BTreeMap::new();
    while let Some((number, raw)) = lines.next_line()? {
        let (seq, object) = payload_line(number, &raw)?;
        if let Some(first) = seen.insert(seq, number) {
            return Err(bad_seq(
                seq,
                format!("payload ({PAYLOADS} line {number}): repeats the payload of line {first}"),
            ));
        }
        check_payload(seq, number, &object, entries.get(&seq).copied())?;
    }
    Ok(seen.into_keys().collect())
}

/// Whether a chunked bundle's payload files are to be read: a chunk's
/// payloads file is absent when it would be empty (section 8.4), so with
/// `payloads: true` there may be none at all; with `payloads: false`
/// there must be none.
pub(crate) fn chunk_payloads_declared(present: bool, declared: bool) -> Result<bool, BundleError> {
    payloads_declared(present || declared, declared)
}

/// Whether `payloads.jsonl` is to be read: it is present exactly when the
/// manifest says `payloads: true`.
pub(crate) fn payloads_declared(present: bool, declared: bool) -> Result<bool, BundleError> {
    match (present, declared) {
        (false, false) => Ok(false),
        (false, true) => Err(bad(
            "payloads",
            "the manifest says payloads: true but payloads.jsonl is missing",
        )),
        (true, false) => Err(bad(
            "payloads",
            "the manifest says payloads: false but payloads.jsonl is present",
        )),
        (true, true) => Ok(true),
    }
}

/// Line `number` of `payloads.jsonl`: its seq and its object.
pub(crate) fn payload_line(
    number: usize,
    raw: &[u8],
) -> Result<(u64, LineObject<'_>), BundleError> {
    // The exporter's layout in one pass; any other line the general way.
    if let Some((seq, exact)) = super::payload_exact::read(raw) {
        return Ok((seq, LineObject::Exact(exact)));
    }
    line_object(PAYLOADS, number, raw, &PAYLOAD_MEMBERS)
}

/// [`payload_line`] without the exporter's layout read in one pass: the
/// way every line was read before it, to compare with.
#[cfg(test)]
pub(crate) fn payload_line_general(
    number: usize,
    raw: &[u8],
) -> Result<(u64, LineObject<'_>), BundleError> {
    line_object(PAYLOADS, number, raw, &PAYLOAD_MEMBERS)
}

/// [`payload_line`] parsed whole, for a reader that keeps the object
/// beyond the line's bytes.
pub(crate) fn payload_line_parsed(
    number: usize,
    raw: &[u8],
) -> Result<(u64, serde_json::Map<String, Value>), BundleError> {
    parsed_line_object(PAYLOADS, number, raw, &PAYLOAD_MEMBERS)
}

/// A payload line's rules past its form: `entry` (the bundled entry of
/// its seq, if any) is there and the line opens its commitments.
pub(crate) fn check_payload(
    seq: u64,
    number: usize,
    object: &LineObject<'_>,
    entry: Option<&BundleEntry>,
) -> Result<(), BundleError> {
    const FILE: &str = PAYLOADS;
    let fail = |reason: String| bad_seq(seq, format!("payload ({FILE} line {number}): {reason}"));
    let entry = entry.ok_or_else(|| fail("for an entry that is not in the bundle".to_owned()))?;
    let Some(committed) = committed_sides(entry) else {
        return Err(fail(format!(
            "entry is a {} entry, not a decision nor a stream_ended",
            entry.json(Member::Kind)
        )));
    };
    for (captured, committed) in [(Side::Request, committed.0), (Side::Response, committed.1)] {
        let side = captured.name();
        let (salt, data) = match object.opened(captured) {
            Some(opened) => (opened.salt, Cow::Borrowed(opened.data.as_slice())),
            None => {
                let salt = object
                    .str(captured.salt_name())
                    .and_then(|text| parse_hex32(text.as_bytes()))
                    .ok_or_else(|| fail(format!("{side}_salt is not 64 hex digits")))?;
                let data = object
                    .str(side)
                    .and_then(base64_exact)
                    .ok_or_else(|| fail(format!("{side} is not canonical base64")))?;
                (salt, Cow::Owned(data))
            }
        };
        if !committed {
            // Bytes no commitment covers would be unproven: refused.
            if !data.is_empty() {
                return Err(fail(format!(
                    "{side} is {} bytes, but this entry commits to no {side} \
                     (it must be empty)",
                    data.len()
                )));
            }
            continue;
        }
        let Some(expected) = entry.commitment(captured) else {
            return Err(fail(format!("the entry has no {side}.commitment")));
        };
        if !hex_is(&commitment(&salt, &data), expected) {
            return Err(fail(format!(
                "BLAKE3({side}_salt || {side}) is not the entry's {side}.commitment"
            )));
        }
        if entry.captured(captured) != Some(data.len() as u64) {
            return Err(fail(format!(
                "{side} is {} bytes, the entry's {side}.captured is {}",
                data.len(),
                entry.captured_json(captured)
            )));
        }
    }
    Ok(())
}

/// Which of its payload record's captures an entry commits to: (request,
/// response). A decision commits to both, except a streamed one, whose
/// answer its `stream_ended` commits to; a `stream_ended` commits to the
/// response only (its request is its decision's). `None`: no payload.
fn committed_sides(entry: &BundleEntry) -> Option<(bool, bool)> {
    match entry.kind()? {
        "decision" if entry.is_streaming() => Some((true, false)),
        "decision" => Some((true, true)),
        "stream_ended" => Some((false, true)),
        _ => None,
    }
}

/// Whether `text` is `bytes` in lower-case hex (as `hex(bytes) == text`,
/// without allocating).
fn hex_is(bytes: &[u8; 32], text: &str) -> bool {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    text.len() == 64
        && bytes
            .iter()
            .zip(text.as_bytes().chunks_exact(2))
            .all(|(byte, pair)| {
                pair[0] == DIGITS[usize::from(byte >> 4)]
                    && pair[1] == DIGITS[usize::from(byte & 0x0f)]
            })
}

pub(crate) fn parse_hex32(text: &[u8]) -> Option<[u8; 32]> {
    // A table rather than a branch per digit: every payload line has two
    // salts, and this was a tenth of the bundle verifier's time.
    const INVALID: u8 = 0xff;
    const NIBBLES: [u8; 256] = {
        let mut table = [INVALID; 256];
        let mut i = 0;
        while i < 10 {
            table[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            table[b'a' as usize + i] = 10 + i as u8;
            table[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        table
    };
    let digits: &[u8; 64] = text.try_into().ok()?;
    let mut out = [0u8; 32];
    let mut invalid = 0u8;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (high, low) = (NIBBLES[usize::from(pair[0])], NIBBLES[usize::from(pair[1])]);
        invalid |= high | low;
        *byte = (high << 4) | (low & 0x0f);
    }
    // Valid nibbles are below 16: one invalid digit sets the high bits.
    (invalid & 0xf0 == 0).then_some(out)
}

#[cfg(test)]
mod hex_tests {
    use super::parse_hex32;

    #[test]
    fn salts_are_64_hex_digits_of_either_case() {
        let lower = "00ff10a9".repeat(8);
        let mut expected = [0u8; 32];
        for chunk in expected.chunks_exact_mut(4) {
            chunk.copy_from_slice(&[0x00, 0xff, 0x10, 0xa9]);
        }
        assert_eq!(parse_hex32(lower.as_bytes()), Some(expected));
        assert_eq!(parse_hex32(lower.to_uppercase().as_bytes()), Some(expected));
        for bad in ['g', 'G', '/', ':', '@', '`', ' ', '\u{e9}'] {
            let text: String = lower.chars().skip(1).collect::<String>();
            let text = format!("{bad}{text}");
            assert_eq!(parse_hex32(text.as_bytes()), None, "{text:?}");
        }
        assert_eq!(parse_hex32(&lower.as_bytes()[..62]), None);
        assert_eq!(parse_hex32(format!("{lower}0").as_bytes()), None);
    }
}

#[cfg(test)]
mod seq_tests {
    use super::line_object;

    /// A seq written as a fraction, with an exponent or beyond 64 bits is
    /// no seq, though JCS reads the first two as the double 6 (the Python
    /// verifier refuses the same lines).
    #[test]
    fn a_seq_is_written_as_an_integer_of_64_bits() {
        let signature = "A".repeat(86) + "==";
        let line = |seq: &str| format!(r#"{{"seq":{seq},"signature":"{signature}"}}"#);
        let members = ["seq", "signature"];
        let (seq, _) = line_object("signatures.jsonl", 2, line("6").as_bytes(), &members).unwrap();
        assert_eq!(seq, 6);
        for seq in ["6.0", "6e0", "6E0", "-6", "\"6\"", "18446744073709551616"] {
            let err = line_object("signatures.jsonl", 2, line(seq).as_bytes(), &members)
                .err()
                .unwrap_or_else(|| panic!("seq {seq} accepted"));
            assert_eq!(
                err.to_string(),
                "signatures.jsonl line 2: seq is not a non-negative integer",
                "{seq}"
            );
        }
    }
}
