//! Canonical bytes of ledger entries: RFC 8785, the JSON Canonicalization
//! Scheme (JCS).
//!
//! SPEC (RFC 8785 section 3.2):
//! - no whitespace; literals `null`, `true`, `false`;
//! - strings: UTF-8, escaping only `"`, `\` and controls below U+0020
//!   (`\b \t \n \f \r` short forms, others `\u00xx` lower-case);
//! - numbers: IEEE 754 doubles in ECMAScript `Number.prototype.toString`
//!   form (section 3.2.2.3); NaN and infinities are errors;
//! - object members sorted by their names as UTF-16 code units (3.2.3).
//!
//! Integers that serde_json holds as `u64`/`i64` are formatted as the
//! double they denote: exact below 2^53, rounded above (as JCS requires).

use serde_json::{Map, Number, Value};
use std::fmt;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// NaN or an infinity.
    #[error("number {0} is not a finite IEEE 754 double")]
    NotFinite(String),
    /// The text is not I-JSON (syntax, lone surrogate, duplicate name, overflow).
    #[error("not I-JSON: {0}")]
    Parse(String),
}

/// The canonical UTF-8 bytes of `value`.
pub fn to_canonical(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value)?;
    Ok(out)
}

/// Parses I-JSON text strictly (duplicate member names are errors, as are
/// lone surrogates and numbers beyond the double range).
pub fn parse_strict(text: &str) -> Result<Value, CanonicalError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let StrictValue(value) = serde::Deserialize::deserialize(&mut deserializer)
        .map_err(|err: serde_json::Error| CanonicalError::Parse(err.to_string()))?;
    deserializer
        .end()
        .map_err(|err| CanonicalError::Parse(err.to_string()))?;
    Ok(value)
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_number(out, number)?,
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(members) => write_object(out, members)?,
    }
    Ok(())
}

fn write_object(out: &mut Vec<u8>, members: &Map<String, Value>) -> Result<(), CanonicalError> {
    let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
    // SPEC: 3.2.3 sorts by UTF-16 code units, which differs from UTF-8
    // byte order for characters above U+FFFF against U+E000..U+FFFF.
    sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    out.push(b'{');
    for (i, (name, member)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, name);
        out.push(b':');
        write_value(out, member)?;
    }
    out.push(b'}');
    Ok(())
}

/// Largest integer below which every integer is exactly a double.
const EXACT_INTEGER_LIMIT: u64 = 1 << 53;

pub(crate) fn write_number(out: &mut Vec<u8>, number: &Number) -> Result<(), CanonicalError> {
    if let Some(unsigned) = number.as_u64().filter(|n| *n <= EXACT_INTEGER_LIMIT) {
        out.extend_from_slice(unsigned.to_string().as_bytes());
        return Ok(());
    }
    if let Some(signed) = number
        .as_i64()
        .filter(|n| n.unsigned_abs() <= EXACT_INTEGER_LIMIT)
    {
        // -0 cannot occur as an integer; negative integers print as ECMAScript does.
        out.extend_from_slice(signed.to_string().as_bytes());
        return Ok(());
    }
    let double = number
        .as_f64()
        .ok_or_else(|| CanonicalError::NotFinite(number.to_string()))?;
    write_double(out, double)
}

/// ECMAScript `Number.prototype.toString` of a finite double.
pub fn write_double(out: &mut Vec<u8>, double: f64) -> Result<(), CanonicalError> {
    if !double.is_finite() {
        return Err(CanonicalError::NotFinite(double.to_string()));
    }
    if double == 0.0 {
        // SPEC: -0 serializes as 0.
        out.push(b'0');
        return Ok(());
    }
    let mut buffer = ryu_js::Buffer::new();
    out.extend_from_slice(buffer.format_finite(double).as_bytes());
    Ok(())
}

pub(crate) fn write_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let mut start = 0;
    for (i, byte) in text.bytes().enumerate() {
        let escape: Option<&[u8]> = match byte {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x09 => Some(b"\\t"),
            0x0a => Some(b"\\n"),
            0x0c => Some(b"\\f"),
            0x0d => Some(b"\\r"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&text.as_bytes()[start..i]);
        match escape {
            Some(short) => out.extend_from_slice(short),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0x0f)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&text.as_bytes()[start..]);
    out.push(b'"');
}

/// Deserializes any JSON value, refusing duplicate member names.
struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }
    fn visit_bool<E>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Number(v.into())))
    }
    fn visit_i64<E>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Number(v.into())))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<StrictValue, E> {
        Number::from_f64(v)
            .map(|n| StrictValue(Value::Number(n)))
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v)))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(StrictValue(Value::Array(items)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            if members.insert(name.clone(), value).is_some() {
                return Err(serde::de::Error::custom(format!(
                    "duplicate member name `{name}`"
                )));
            }
        }
        Ok(StrictValue(Value::Object(members)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::hex;

    fn vectors() -> Value {
        serde_json::from_str(include_str!("../../tests/data/jcs_vectors.json")).unwrap()
    }

    #[test]
    fn every_vector_canonicalizes_byte_for_byte() {
        let vectors = vectors();
        for case in vectors["vectors"].as_array().unwrap() {
            let value = parse_strict(case["input"].as_str().unwrap()).unwrap();
            let canonical = to_canonical(&value).unwrap();
            assert_eq!(
                hex(&canonical),
                case["canonical_utf8_hex"].as_str().unwrap(),
                "{}",
                case["name"]
            );
        }
    }

    #[test]
    fn rfc8785_number_samples_from_their_bits() {
        let vectors = vectors();
        for sample in vectors["number_samples"].as_array().unwrap() {
            let bits = u64::from_str_radix(sample["ieee754_hex"].as_str().unwrap(), 16).unwrap();
            let mut out = Vec::new();
            let result = write_double(&mut out, f64::from_bits(bits));
            if sample["must_fail"] == true {
                assert!(result.is_err(), "{}", sample["comment"]);
            } else {
                result.unwrap();
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    sample["canonical"].as_str().unwrap(),
                    "{}",
                    sample["comment"]
                );
            }
        }
    }

    #[test]
    fn must_fail_inputs_are_refused() {
        let vectors = vectors();
        for case in vectors["must_fail"].as_array().unwrap() {
            let refused = parse_strict(case["input"].as_str().unwrap())
                .and_then(|value| to_canonical(&value));
            assert!(refused.is_err(), "{}", case["name"]);
        }
    }

    #[test]
    fn large_integers_are_formatted_as_doubles() {
        let value: Value = serde_json::from_str(
            "[9007199254740993, -9007199254740993, 1000000000000000000000, 12]",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(to_canonical(&value).unwrap()).unwrap(),
            "[9007199254740992,-9007199254740992,1e+21,12]"
        );
    }
}
