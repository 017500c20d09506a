//! RFC 8785 (JCS), as the ledger writes every entry: the reference
//! canonicalizer over strictly parsed JSON, the ECMAScript number form,
//! and the entry writer that builds the same bytes without a `Value`.

use crate::ledger::canonical::{parse_strict, to_canonical, write_double};
use crate::ledger::entry::{EntryBody, GENESIS_PREV_HASH, rfc3339_millis, seal};
use serde_json::{Map, Value};
use std::time::UNIX_EPOCH;

/// Members every entry has; a governance entry may not reuse them.
const COMMON: [&str; 5] = ["seq", "time", "origin", "prev_hash", "kind"];

/// Canonicalizes `data` (JSON text) and checks the result.
///
/// # Panics
/// When an invariant breaks: a strictly parsed value has no canonical
/// form; the canonical bytes do not re-parse, or re-canonicalize to other
/// bytes, or denote another value; the entry writer's bytes for an object
/// differ from the reference's; a double's ECMAScript form does not read
/// back as the same double.
pub fn jcs(data: &[u8]) -> String {
    if let Some(bits) = data.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
        double_round_trip(f64::from_bits(u64::from_le_bytes(bits)));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return "not utf-8".to_owned();
    };
    let Ok(value) = parse_strict(text) else {
        return "refused".to_owned();
    };
    assert!(
        serde_json::from_str::<Value>(text).is_ok(),
        "strict parsing accepted what serde_json refuses"
    );
    let canonical = match to_canonical(&value) {
        Ok(canonical) => canonical,
        Err(err) => panic!("a strictly parsed value has no canonical form: {err}"),
    };
    let again = std::str::from_utf8(&canonical)
        .ok()
        .and_then(|text| parse_strict(text).ok());
    let Some(again) = again else {
        panic!("canonical bytes do not re-parse");
    };
    assert!(
        to_canonical(&again).ok().as_deref() == Some(canonical.as_slice()),
        "canonicalization is not idempotent"
    );
    assert!(same(&value, &again), "canonical bytes denote another value");
    if let Value::Object(members) = value {
        entry_writer_agrees(members);
        return "object".to_owned();
    }
    match again {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        _ => "literal",
    }
    .to_owned()
}

/// Equal values, numbers compared as the doubles they denote (JCS reads
/// every number as an IEEE 754 double).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(name, v)| y.get(name).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// A governance entry with these members (less the common names) has the
/// bytes the reference canonicalizer gives for the whole entry.
fn entry_writer_agrees(mut members: Map<String, Value>) {
    for name in COMMON {
        members.remove(name);
    }
    let body = EntryBody::Governance {
        kind: "fuzz",
        members: members.clone(),
    };
    let sealed = match seal(
        0,
        UNIX_EPOCH,
        "fuzz.example/jcs",
        &[0; 32],
        &body,
        crate::decision::PayloadMode::Full,
        None,
    ) {
        Ok(sealed) => sealed,
        Err(err) => panic!("the entry writer refused: {err}"),
    };
    members.insert("seq".to_owned(), Value::from(0));
    members.insert("time".to_owned(), Value::from(rfc3339_millis(UNIX_EPOCH)));
    members.insert("origin".to_owned(), Value::from("fuzz.example/jcs"));
    members.insert("prev_hash".to_owned(), Value::from(GENESIS_PREV_HASH));
    members.insert("kind".to_owned(), Value::from("fuzz"));
    let reference = to_canonical(&Value::Object(members)).ok();
    assert!(
        reference.as_deref() == Some(sealed.canonical.as_slice()),
        "the entry writer and the reference canonicalizer differ"
    );
}

/// A finite double's canonical text reads back as the same double and is
/// its own canonical form; a NaN or an infinity is refused.
fn double_round_trip(double: f64) {
    let mut out = Vec::new();
    if write_double(&mut out, double).is_err() {
        assert!(!double.is_finite(), "{double:?} refused");
        return;
    }
    assert!(double.is_finite(), "{double:?} written");
    let text = String::from_utf8_lossy(&out);
    let back: Option<f64> = text.parse().ok();
    let want = if double == 0.0 { 0.0 } else { double };
    assert!(
        back.is_some_and(|back| back.to_bits() == want.to_bits()),
        "{double:?} written as {text}"
    );
    let recanonical = parse_strict(&text).ok().and_then(|v| to_canonical(&v).ok());
    assert!(
        recanonical.as_deref() == Some(out.as_slice()),
        "{double:?}: {text} is not its own canonical form"
    );
}
