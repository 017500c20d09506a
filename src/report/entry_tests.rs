//! An entry read in place from its canonical bytes answers every member
//! as the tree parsed from the same bytes does.

use super::Entry;
use serde_json::{Map, Value, json};

/// Every accessor of `entry` against the tree of `bytes`, for `names`.
fn reads_as_the_tree(bytes: &[u8], names: &[&str]) {
    let entry = Entry::parse(7, bytes).unwrap();
    let tree: Map<String, Value> = serde_json::from_slice(bytes).unwrap();
    for name in names {
        assert_eq!(
            entry.str(name),
            tree.get(*name).and_then(Value::as_str),
            "str {name}"
        );
        assert_eq!(
            entry.u64(name),
            tree.get(*name).and_then(Value::as_u64),
            "u64 {name}"
        );
        assert_eq!(entry.get(name), tree.get(*name), "get {name}");
        assert_eq!(
            entry.value(name),
            tree.get(*name).cloned().unwrap_or(Value::Null)
        );
    }
    assert_eq!(entry.kind(), tree["kind"].as_str().unwrap_or_default());
    assert_eq!(entry.time_text(), tree["time"].as_str().unwrap());
}

const NAMES: &[&str] = &[
    "kind",
    "time",
    "caller",
    "model",
    "version",
    "outcome",
    "error_code",
    "approval_seq",
    "reason",
    "big",
    "negative",
    "fraction",
    "nested",
    "list",
    "flag",
    "missing",
    "escaped",
];

fn members() -> Value {
    json!({
        "kind": "decision",
        "time": "2026-12-06T10:00:01.250Z",
        "caller": "svc-\u{e9}",
        "model": "m",
        "version": "v1",
        "outcome": "served",
        "error_code": null,
        "approval_seq": 12,
        "reason": "a \"quoted\" line\nand a tab\t",
        "big": 9_007_199_254_740_992u64,
        "negative": -3,
        "fraction": 1.5,
        "nested": {"a": [1, {"b": "c"}], "z": "x"},
        "list": ["x", "y"],
        "flag": true,
        "escaped": "back\\slash",
    })
}

#[test]
fn a_canonical_entry_is_read_in_place_as_its_tree() {
    // serde_json writes members sorted, without spaces: canonical here.
    let bytes = serde_json::to_vec(&members()).unwrap();
    assert!(crate::ledger::verify::scan_top(std::str::from_utf8(&bytes).unwrap()).is_some());
    reads_as_the_tree(&bytes, NAMES);
    let entry = Entry::parse(7, &bytes).unwrap();
    assert_eq!(entry.time_ms, 1_796_551_201_250);
    assert_eq!(entry.seq, 7);
}

#[test]
fn an_entry_not_canonical_is_parsed_and_reads_the_same() {
    // Spaces and unsorted members: the scan does not vouch, the parse decides.
    let bytes = r#"{ "time": "2026-12-06T10:00:01.250Z", "kind": "decision", "caller": "a", "approval_seq": 3 }"#;
    reads_as_the_tree(bytes.as_bytes(), NAMES);
    assert_eq!(
        Entry::parse(7, bytes.as_bytes())
            .unwrap()
            .u64("approval_seq"),
        Some(3)
    );
}

#[test]
fn bad_entries_are_refused_as_before() {
    let no_time = serde_json::to_vec(&json!({"kind": "decision"})).unwrap();
    let bad_time = serde_json::to_vec(&json!({"kind": "decision", "time": "yesterday"})).unwrap();
    for (bytes, why) in [
        (&no_time[..], "entry 7: no valid time"),
        (&bad_time[..], "entry 7: no valid time"),
        (b"[1,2]".as_slice(), "entry 7: not a JSON object"),
        (b"{\"kind\":".as_slice(), "entry 7: not a JSON object"),
    ] {
        let err = Entry::parse(7, bytes).unwrap_err();
        assert_eq!(err.to_string(), why);
    }
}
