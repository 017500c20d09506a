//! An entry or line read by the scan answers every question the checks
//! ask as the same line parsed whole does, and a line the scan must not
//! vouch for (escapes, an odd member, another kind) is parsed whole.

use super::fields::{LineObject, Member, Side, read_entry_scanned, scan_line};
use super::lines::{BundleEntry, read_entry_line};
use crate::ledger::canonical::to_canonical;
use serde_json::{Value, json};

const ORIGIN: &str = "test.example/fields";

fn canonical(value: &Value) -> Vec<u8> {
    to_canonical(value).unwrap()
}

fn decision() -> Value {
    json!({
        "seq": 7, "time": "2026-12-06T00:00:00.000Z", "kind": "decision",
        "origin": ORIGIN, "prev_hash": "ab".repeat(32), "outcome": "served",
        "payload_mode": "full", "decision_id": "0f".repeat(16), "model": "m",
        "version": "2", "status": 200, "timings": {"complete_us": 9},
        "request": {"captured": 3, "commitment": "cd".repeat(32), "length": 3},
        "response": {"captured": 4, "commitment": "ef".repeat(32), "length": 9},
    })
}

/// Every question the one-pass checks ask of an entry.
fn answers(entry: &BundleEntry) -> Vec<String> {
    let members = [
        Member::Kind,
        Member::Outcome,
        Member::PayloadMode,
        Member::DecisionId,
        Member::Model,
        Member::Version,
        Member::DecisionSeq,
    ];
    let mut out = vec![
        format!("{} {:?} {}", entry.seq, entry.bytes, entry.hash),
        entry.prev_hash().to_owned(),
        format!("{:?} {}", entry.decision_seq(), entry.is_streaming()),
        entry.stream_names().to_string(),
    ];
    for member in members {
        out.push(format!(
            "{:?} {:?} {:?} {}",
            member,
            entry.text(member),
            entry.get(member),
            entry.json(member)
        ));
    }
    for side in [Side::Request, Side::Response] {
        out.push(format!(
            "{:?} {:?} {:?} {}",
            entry.commitment(side),
            entry.captured(side),
            side,
            entry.captured_json(side)
        ));
    }
    out
}

#[test]
fn a_scanned_entry_answers_as_the_parsed_one() {
    let mut streaming = decision();
    streaming["outcome"] = json!("streaming");
    streaming["response"] = json!({"captured": 0, "length": 0});
    let mut end = decision();
    end["kind"] = json!("stream_ended");
    end["decision_seq"] = json!(3);
    end["outcome"] = json!("error");
    end.as_object_mut().unwrap().remove("request");
    let mut escaped = decision();
    escaped["model"] = json!("a\"b");
    let mut odd = decision();
    odd["outcome"] = json!(5);
    odd["response"] = json!("none");
    let mut big = end.clone();
    big["decision_seq"] = json!(1u64 << 60);
    let mut rotation = decision();
    rotation["kind"] = json!("key_rotated");
    let mut escaped_kind = decision();
    escaped_kind["payload_mode"] = json!("fu\nll");
    // A capture's members are read in the entry's own scan: an escaped
    // commitment, a count that is no small integer, members nested
    // deeper or in an array are what the capture scanned alone gave.
    let mut escaped_commitment = decision();
    escaped_commitment["request"]["commitment"] = json!("c\"d");
    let mut big_captured = decision();
    big_captured["response"]["captured"] = json!(1u64 << 60);
    let mut deeper = decision();
    deeper["request"] = json!({"inner": {"captured": 3, "commitment": "cd"}, "length": 3});
    let mut in_array = decision();
    in_array["response"] = json!([{"captured": 4, "commitment": "ef"}]);
    let mut number_commitment = decision();
    number_commitment["response"]["commitment"] = json!(12);
    // (entry, read by the scan)
    let cases = [
        (decision(), true),
        (streaming, true),
        (end, true),
        (escaped, false),
        (odd, true),
        (big, false),
        (rotation, false),
        (escaped_kind, false),
        (escaped_commitment, false),
        (big_captured, false),
        (deeper, true),
        (in_array, true),
        (number_commitment, true),
    ];
    for (i, (value, scanned)) in cases.into_iter().enumerate() {
        let line = canonical(&value);
        let fast = read_entry_scanned(line.clone().into(), 6, ORIGIN).unwrap();
        let whole = read_entry_line(line.into(), 6, ORIGIN).unwrap();
        assert_eq!(fast.spans.is_some(), scanned, "case {i}");
        assert!(whole.spans.is_none());
        assert_eq!(answers(&fast), answers(&whole), "case {i}");
    }
}

#[test]
fn a_bad_entry_is_named_as_before() {
    let mut other_origin = decision();
    other_origin["origin"] = json!("elsewhere");
    let mut short_hash = decision();
    short_hash["prev_hash"] = json!("ab");
    let mut no_time = decision();
    no_time.as_object_mut().unwrap().remove("time");
    let not_canonical = br#"{"seq":7, "kind":"decision"}"#.to_vec();
    let lines = [
        canonical(&other_origin),
        canonical(&short_hash),
        canonical(&no_time),
        not_canonical,
    ];
    for line in lines {
        let fast = read_entry_scanned(line.clone().into(), 0, ORIGIN)
            .err()
            .unwrap();
        let whole = read_entry_line(line.into(), 0, ORIGIN).err().unwrap();
        assert_eq!(fast.to_string(), whole.to_string());
    }
}

#[test]
fn a_scanned_line_answers_as_the_parsed_one() {
    let payload = json!({
        "seq": 7, "request": "YWJj", "request_salt": "01".repeat(32),
        "response": "", "response_salt": "02".repeat(32),
    });
    let members = [
        "seq",
        "request_salt",
        "response_salt",
        "request",
        "response",
    ];
    let line = canonical(&payload);
    let (seq, scanned) = scan_line(&line, &members).unwrap();
    assert_eq!(seq, 7);
    assert!(matches!(scanned, LineObject::Scanned(..)));
    let Value::Object(object) = payload else {
        unreachable!()
    };
    let parsed = LineObject::Parsed(object);
    for name in members.iter().chain(&["signature", "other"]) {
        assert_eq!(scanned.str(name), parsed.str(name), "{name}");
    }
    // Escapes, a missing member, or a seq that is no small integer: the
    // line is parsed whole.
    let refused = [
        json!({"seq": 7, "request": "YW\nJj", "request_salt": "", "response": "", "response_salt": ""}),
        json!({"seq": 7, "request": "", "request_salt": "", "response": ""}),
        json!({"seq": -7, "request": "", "request_salt": "", "response": "", "response_salt": ""}),
    ];
    for value in refused {
        assert!(scan_line(&canonical(&value), &members).is_none(), "{value}");
    }
}
