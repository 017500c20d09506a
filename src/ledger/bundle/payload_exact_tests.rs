//! A payload line read in the exporter's layout (`payload_exact`) is
//! checked as the general way checks it, and every line outside that
//! layout, or with a member the decoders refuse, is left to the general
//! way: the same lines refused, with the same problem named.

use super::fields::{LineObject, Side, read_entry_scanned};
use super::lines::{check_payload, payload_line, payload_line_general};
use super::payload_exact;
use crate::ledger::canonical::to_canonical;
use crate::ledger::entry::{commitment, hex};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

const ORIGIN: &str = "test.example/payloads";
/// Its base64 holds a `/` and ends in padding.
const REQUEST: &[u8] = b"{\"inputs\":[1]}\xff\xfe?";
const RESPONSE: &[u8] = b"{\"outputs\":[0.5]}\xff";

fn salts() -> ([u8; 32], [u8; 32]) {
    ([0x5a; 32], [0xa5; 32])
}

/// A decision committing to [`REQUEST`] and [`RESPONSE`] under [`salts`].
fn entry() -> super::lines::BundleEntry {
    let (request_salt, response_salt) = salts();
    let value = json!({
        "seq": 7, "time": "2026-12-07T00:00:00.000Z", "kind": "decision",
        "origin": ORIGIN, "prev_hash": "ab".repeat(32), "outcome": "served",
        "payload_mode": "full", "decision_id": "0f".repeat(16), "model": "m",
        "version": "2", "status": 200,
        "request": {
            "captured": REQUEST.len(),
            "commitment": hex(&commitment(&request_salt, REQUEST)),
            "length": REQUEST.len(),
        },
        "response": {
            "captured": RESPONSE.len(),
            "commitment": hex(&commitment(&response_salt, RESPONSE)),
            "length": RESPONSE.len(),
        },
    });
    read_entry_scanned(to_canonical(&value).unwrap().into(), 0, ORIGIN).unwrap()
}

/// The line `govgate export` writes (`export::payload_line`).
fn exported() -> Value {
    let (request_salt, response_salt) = salts();
    json!({
        "seq": 7,
        "request_salt": hex(&request_salt),
        "response_salt": hex(&response_salt),
        "request": BASE64.encode(REQUEST),
        "response": BASE64.encode(RESPONSE),
    })
}

/// What checking `line` against [`entry`] says, the way the verifier
/// reads it and the general way.
fn both_ways(line: &[u8]) -> (Result<u64, String>, Result<u64, String>) {
    let entry = entry();
    let check = |read: Result<(u64, LineObject<'_>), super::BundleError>| {
        let (seq, object) = read.map_err(|err| err.to_string())?;
        check_payload(seq, 3, &object, Some(&entry)).map_err(|err| err.to_string())?;
        Ok(seq)
    };
    (
        check(payload_line(3, line)),
        check(payload_line_general(3, line)),
    )
}

#[test]
fn the_exporters_line_is_read_in_one_pass_as_the_general_way_reads_it() {
    let line = serde_json::to_vec(&exported()).unwrap();
    // What `export::payload_line` writes is this canonical form.
    assert_eq!(line, to_canonical(&exported()).unwrap());
    let (seq, exact) = payload_exact::read(&line).unwrap();
    let (request_salt, response_salt) = salts();
    assert_eq!(seq, 7);
    assert_eq!(
        (exact.request.salt, exact.request.data.as_slice()),
        (request_salt, REQUEST)
    );
    assert_eq!(
        (exact.response.salt, exact.response.data.as_slice()),
        (response_salt, RESPONSE)
    );
    let (_, object) = payload_line(3, &line).unwrap();
    assert!(object.opened(Side::Request).is_some());
    assert_eq!(both_ways(&line), (Ok(7), Ok(7)));
    // Upper-case salts are hex digits both ways.
    let mut upper = exported();
    upper["request_salt"] = json!(hex(&request_salt).to_uppercase());
    let line = to_canonical(&upper).unwrap();
    assert!(payload_exact::read(&line).is_some());
    assert_eq!(both_ways(&line), (Ok(7), Ok(7)));
}

#[test]
fn a_line_outside_the_layout_or_with_a_refused_member_is_left_to_the_general_way() {
    let good = String::from_utf8(to_canonical(&exported()).unwrap()).unwrap();
    let request = BASE64.encode(REQUEST);
    let request_salt = hex(&salts().0);
    assert!(request.contains('/') && request.ends_with('='), "{request}");
    let swap = |from: &str, to: &str| {
        assert!(good.contains(from), "{from}");
        good.replacen(from, to, 1).into_bytes()
    };
    let mut lines: Vec<(&str, Vec<u8>)> = vec![
        // Not canonical JSON: whitespace, member order, escapes.
        ("space after {", swap("{", "{ ")),
        ("space before :", swap("\"seq\":", "\"seq\" :")),
        ("trailing space", format!("{good} ").into_bytes()),
        ("trailing LF", format!("{good}\n").into_bytes()),
        (
            "members reordered",
            format!(
                "{{\"request_salt\":\"{request_salt}\",\"request\":\"{request}\",{}",
                &good[good.find("\"response\"").unwrap()..]
            )
            .into_bytes(),
        ),
        (
            "escaped slash",
            swap(&request, &request.replacen('/', "\\/", 1)),
        ),
        (
            "escaped letter",
            swap(&request, &format!("\\u0065{}", &request[1..])),
        ),
        (
            "escaped quote",
            swap(&request, &format!("\\\"{}", &request[1..])),
        ),
        (
            "salt escaped",
            swap(&request_salt, &format!("\\u0030{}", &request_salt[1..])),
        ),
        // Number forms of seq.
        ("seq leading zero", swap("\"seq\":7", "\"seq\":07")),
        ("seq fraction", swap("\"seq\":7", "\"seq\":7.0")),
        ("seq exponent", swap("\"seq\":7", "\"seq\":7e0")),
        ("seq negative", swap("\"seq\":7", "\"seq\":-7")),
        ("seq string", swap("\"seq\":7", "\"seq\":\"7\"")),
        (
            "seq beyond 2^53",
            swap("\"seq\":7", "\"seq\":9007199254740993"),
        ),
        // Members the decoders refuse.
        (
            "base64 unpadded",
            swap(&request, request.trim_end_matches('=')),
        ),
        (
            "base64 bad letter",
            swap(&request, &format!("*{}", &request[1..])),
        ),
        (
            "base64 space",
            swap(&request, &format!(" {}", &request[1..])),
        ),
        ("salt short", swap(&request_salt, &request_salt[1..])),
        (
            "salt long",
            swap(&request_salt, &format!("{request_salt}0")),
        ),
        (
            "salt not hex",
            swap(&request_salt, &format!("g{}", &request_salt[1..])),
        ),
        // Members missing or added.
        ("no seq", swap(",\"seq\":7", "")),
        ("extra member", swap(",\"seq\":7", ",\"seq\":7,\"z\":1")),
        ("not an object", b"[1,2]".to_vec()),
        ("cut short", good.as_bytes()[..good.len() - 1].to_vec()),
    ];
    // Wrong UTF-8 inside a string, and a byte of the wrong kind in base64.
    let mut not_utf8 = good.clone().into_bytes();
    let at = good.find(&request).unwrap() + 1;
    not_utf8[at] = 0xc3;
    lines.push(("not UTF-8", not_utf8));
    // Base64 whose last digit has bits set beyond the bytes it encodes.
    let mut trailing_bits = request.clone();
    let padded = trailing_bits.trim_end_matches('=').len();
    assert!(padded < trailing_bits.len(), "{trailing_bits}");
    trailing_bits.replace_range(padded - 1..padded, "/");
    lines.push(("base64 trailing bits", swap(&request, &trailing_bits)));
    for (case, line) in &lines {
        assert!(payload_exact::read(line).is_none(), "{case}");
        let (verifier, general) = both_ways(line);
        assert_eq!(verifier, general, "{case}");
    }
    // Each of these is refused, not merely read another way (a payload
    // line is not held to the canonical form: an escape or a space that
    // leaves the same members is read the same, as before).
    for case in [
        "seq leading zero",
        "seq fraction",
        "seq negative",
        "seq string",
        "base64 unpadded",
        "base64 bad letter",
        "base64 space",
        "base64 trailing bits",
        "salt short",
        "salt long",
        "salt not hex",
        "salt escaped",
        "no seq",
        "not an object",
        "cut short",
        "not UTF-8",
    ] {
        let (_, line) = lines.iter().find(|(name, _)| *name == case).unwrap();
        assert!(both_ways(line).0.is_err(), "{case}");
    }
}

#[test]
fn a_line_read_in_one_pass_that_does_not_open_its_entry_is_refused_as_before() {
    // Another response than the one committed to, of the same length.
    let mut other = exported();
    let mut response = RESPONSE.to_vec();
    response[0] ^= 1;
    other["response"] = json!(BASE64.encode(&response));
    let line = to_canonical(&other).unwrap();
    assert!(payload_exact::read(&line).is_some());
    let (verifier, general) = both_ways(&line);
    assert_eq!(verifier, general);
    assert_eq!(
        verifier.unwrap_err(),
        "seq 7: payload (payloads.jsonl line 3): BLAKE3(response_salt || response) is not \
         the entry's response.commitment"
    );
}
