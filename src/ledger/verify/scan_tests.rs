//! The canonical-form scanner accepts exactly canonical bytes it can vouch
//! for, and what it extracts agrees with the parse-and-reserialize path.

use super::facts::{EntryFacts, fast_facts, hex32, slow_facts};
use super::pass::Peaks;
use super::scan::{MAX_DEPTH, Members, Text, scan, small_u64, special_bytes};
use super::{KeyTimeline, NoteVerifier};
use crate::decision::{
    Capture, Decision, DecisionId, Outcome, PayloadMode, Protocol, Route, StreamEnd,
};
use crate::ledger::canonical::{parse_strict, to_canonical};
use crate::ledger::entry::{EntryBody, Salts, seal};
use crate::ledger::memstore::MemStore;
use crate::ledger::store::{CommitBatch, LedgerStore};
use crate::ledger::tree::Frontier;
use ed25519_dalek::SigningKey;
use std::time::{Duration, UNIX_EPOCH};

fn timeline(origin: &str) -> KeyTimeline {
    KeyTimeline {
        keys: vec![
            NoteVerifier::new(origin, SigningKey::from_bytes(&[3; 32]).verifying_key()).unwrap(),
        ],
        rotation_seqs: Vec::new(),
        checkpoint_sizes: Vec::new(),
        signature_settings: Vec::new(),
    }
}

/// What the slow path says: canonical or not.
fn slow_accepts(text: &str) -> bool {
    parse_strict(text)
        .and_then(|value| to_canonical(&value))
        .is_ok_and(|canonical| canonical == text.as_bytes())
}

#[test]
fn canonical_objects_are_accepted() {
    for text in [
        r#"{}"#,
        r#"{"a":1}"#,
        r#"{"a":[],"b":{},"c":[1,[2,{"d":null}]],"e":true,"f":false}"#,
        r#"{"a":"quote \" backslash \\ tab \t nl \n cr \r bs \b ff \f"}"#,
        "{\"a\":\"\\u0000\\u001f\\u000b é € 😀 \u{7f}\"}",
        r#"{"n":[0,-1,9007199254740992,-9007199254740992,1.5,-0.001,1e+21,5e-7]}"#,
        // UTF-16 order: U+1F600 (surrogates D83D..) sorts before U+FB01.
        "{\"a\":0,\"\u{1F600}\":1,\"\u{FB01}\":2}",
        r#"{"":0,"a":1,"aa":2,"ab":3,"b":4}"#,
    ] {
        assert!(slow_accepts(text), "test input is canonical: {text}");
        assert!(scan(text).is_some(), "{text}");
    }
}

#[test]
fn non_canonical_variants_are_refused() {
    for text in [
        r#" {"a":1}"#,
        r#"{"a":1} "#,
        r#"{"a": 1}"#,
        r#"{"a":1,"b":2}x"#,
        r#"{"a":1}{}"#,
        r#"{"b":1,"a":2}"#,
        r#"{"a":1,"a":1}"#,
        "{\"\u{FB01}\":1,\"\u{1F600}\":2}",
        r#"{"a":"\/"}"#,
        r#"{"a":"\u0041"}"#,
        r#"{"a":"\u007f"}"#,
        r#"{"a":"\u00e9"}"#,
        r#"{"a":"\u000A"}"#,
        r#"{"a":"\u001F"}"#,
        r#"{"a":"\u000a"}"#,
        r#"{"a":"\u0009"}"#,
        "{\"a\":\"raw\ttab\"}",
        r#"{"a":01}"#,
        r#"{"a":-0}"#,
        r#"{"a":1.0}"#,
        r#"{"a":1e2}"#,
        r#"{"a":1E+21}"#,
        r#"{"a":0.10}"#,
        r#"{"a":9007199254740993}"#,
        r#"{"a":+1}"#,
        r#"{"a":tru}"#,
        r#"{"a":1,}"#,
        r#"{"a":[1,]}"#,
        r#"{"a""#,
        r#""#,
    ] {
        assert!(scan(text).is_none(), "{text}");
        assert!(!slow_accepts(text), "test input is not canonical: {text}");
    }
    // Canonical, but not an entry.
    assert!(scan(r#"["not an object"]"#).is_none());
    // Not UTF-8: refused before any scan, and by the slow path.
    let store = MemStore::new();
    let timeline = timeline("o");
    let bytes = b"{\"a\":\"\xff\"}";
    assert_eq!(fast_facts(&store, 0, "o", &timeline, bytes).unwrap(), None);
    let err = slow_facts(&store, 0, "o", &timeline, bytes).unwrap_err();
    assert_eq!(err.to_string(), "seq 0: entry is not UTF-8");
}

#[test]
fn escaped_member_names_and_deep_nesting_are_left_to_the_slow_path() {
    let escaped = r#"{"a\"b":1}"#;
    assert!(slow_accepts(escaped));
    assert!(scan(escaped).is_none());
    let nested = |depth: usize| format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
    assert!(slow_accepts(&nested(MAX_DEPTH + 1)));
    assert!(scan(&nested(MAX_DEPTH + 1)).is_none());
    let shallow = nested(MAX_DEPTH);
    assert!(scan(&shallow).is_some());
}

#[test]
fn only_top_level_members_are_extracted() {
    let text = r#"{"inner":{"seq":7},"kind":"decision","origin":"o\"x","prev_hash":null,"seq":3}"#;
    let members = scan(text).unwrap();
    assert_eq!(small_u64(members.seq), Some(3));
    assert_eq!(Text::of(members.kind), Text::Plain("decision"));
    assert_eq!(Text::of(members.origin), Text::Escaped);
    assert_eq!(Text::of(members.prev_hash), Text::NotString);
    assert_eq!(members.decision_id, None);
    assert_eq!(scan("{}"), Some(Members::default()));
}

#[test]
fn special_bytes_are_found_exactly_in_every_lane() {
    let naive = |word: [u8; 8]| -> u64 {
        (0..8)
            .filter(|&i| matches!(word[i], b'"' | b'\\' | 0x00..=0x1f))
            .map(|i| 0x80u64 << (8 * i))
            .sum()
    };
    for filler in [
        b'a', b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xa2, 0xdc, 0xff,
    ] {
        for byte in 0..=255u8 {
            for lane in 0..8 {
                let mut word = [filler; 8];
                word[lane] = byte;
                // A second special byte above it must not hide or invent one.
                word[(lane + 3) % 8] = [b'"', 0x00, filler][usize::from(byte) % 3];
                assert_eq!(
                    special_bytes(u64::from_le_bytes(word)),
                    naive(word),
                    "{word:?}"
                );
            }
        }
    }
}

#[test]
fn hex32_takes_only_lower_case_hex() {
    let lower = "00ff".repeat(16);
    assert_eq!(
        hex32(&lower),
        Some([[0x00, 0xff]; 16].concat().try_into().unwrap())
    );
    assert_eq!(hex32(&lower.to_uppercase()), None);
    assert_eq!(hex32(&lower[1..]), None);
    assert_eq!(hex32(&format!("{}g", &lower[1..])), None);
}

#[test]
fn peaks_match_the_tree_frontier() {
    let mut peaks = Peaks::default();
    let mut frontier = Frontier::new();
    for i in 0u32..300 {
        let leaf = crate::ledger::tree::leaf_hash(&i.to_be_bytes());
        let mut seen = Vec::new();
        peaks
            .push(leaf, |level, index, hash| {
                seen.push((level, index, *hash));
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(seen, frontier.push(leaf));
        assert_eq!(peaks.root(), frontier.root());
    }
}

/// Entries of every kind with awkward contents, sealed as the sequencer
/// seals them, committed to a store with their decision index rows.
fn sealed_store(origin: &str) -> (MemStore, Vec<Vec<u8>>) {
    let mut bodies = vec![
        EntryBody::GatewayStarted {
            version: "0.1.0 \"quoted\" \u{1}\n".into(),
        },
        EntryBody::KeyRotated {
            old_vkey: "a+1+b".into(),
            new_vkey: "c+2+d".into(),
            by: None,
        },
        EntryBody::PayloadErased {
            decision_id: "ab".repeat(16),
            erased_seq: 1,
            reason: "ticket \\ 42 \u{1F600}".into(),
            by: Some(crate::ledger::entry::ActedBy {
                principal: "dpo \u{e9}".into(),
                roles: vec!["admin".into(), "approver:dpo".into()],
                issuer: Some("https://id.example/\"x\"".into()),
            }),
        },
        EntryBody::GatewayStopped,
    ];
    for i in 0..200u16 {
        bodies.push(EntryBody::Decision(Box::new(Decision {
            id: DecisionId::random(),
            caller: format!("caller-{i} \u{e9}\u{FB01}\u{1F600}\t\"\\"),
            auth: Default::default(),
            route: Route::KserveInfer,
            protocol: (i % 2 == 0).then_some(Protocol::KserveV2),
            model: (i % 3 != 0).then(|| format!("model-{i}")),
            version: Some(i.to_string()),
            approval_seq: (i % 4 == 0).then_some(u64::from(i) * 7),
            path: format!("/v2/models/model-{i}/infer \u{e9}\"\\"),
            cut: crate::decision::CutDigests {
                path: (i % 7 == 0).then(|| "ab".repeat(32)),
                ..Default::default()
            },
            subject: (i % 3 == 0).then_some(crate::decision::SubjectHash([i as u8; 32])),
            policy: None,
            outcome: if i % 7 == 0 {
                Outcome::Streaming
            } else {
                Outcome::Served
            },
            status: 200 + i,
            error_code: (i % 5 == 0).then_some("upstream_timeout"),
            timings: crate::decision::Timings {
                received_unix_ms: 1_795_779_308_556 + u64::from(i),
                upstream_head_us: (i % 2 == 1).then_some(u64::from(i) * 1_000_003),
                complete_us: u64::from(i),
            },
            request: Capture::of_complete(&bytes::Bytes::from(vec![b'r'; usize::from(i)]), 64),
            response: Capture::of_complete(&bytes::Bytes::from_static(b"{}"), 64),
        })));
    }
    // Ends of some of the streamed decisions above (seq 4 + i), one with
    // escapes in its model.
    for i in (0..40u16).step_by(7) {
        bodies.push(EntryBody::StreamEnded(Box::new(StreamEnd {
            decision_id: DecisionId::random(),
            decision_seq: 4 + u64::from(i),
            model: (i % 3 != 0).then(|| format!("model-{i} \"\u{1F600}\t")),
            version: Some(i.to_string()),
            outcome: if i % 2 == 0 {
                Outcome::Served
            } else {
                Outcome::Error
            },
            error_code: (i % 2 == 1).then_some("client_disconnected"),
            released_bytes: u64::from(i) * 1000,
            complete_us: 12,
            response: Capture::of_complete(&bytes::Bytes::from_static(b"data: x"), 64),
        })));
    }
    let store = MemStore::new();
    let mut prev = [0u8; 32];
    let mut entries = Vec::new();
    let mut batch = CommitBatch::default();
    for (seq, body) in (0u64..).zip(&bodies) {
        let salts = Salts {
            request: [seq as u8; 32],
            response: [7; 32],
        };
        let time = UNIX_EPOCH + Duration::from_millis(1_795_776_389_090 + seq);
        let sealed = seal(
            seq,
            time,
            origin,
            &prev,
            body,
            PayloadMode::Full,
            Some(&salts),
        )
        .unwrap();
        if let EntryBody::Decision(decision) = body {
            batch.decisions.push((*decision.id.as_bytes(), seq));
        }
        prev = sealed.entry_hash;
        batch.entries.push((seq, sealed.canonical.clone()));
        entries.push(sealed.canonical);
    }
    store.commit(&batch).unwrap();
    (store, entries)
}

#[test]
fn fast_and_slow_paths_agree_on_real_entries() {
    let origin = "test.example/log";
    let (store, entries) = sealed_store(origin);
    let timeline = timeline(origin);
    let (mut rotations, mut streams) = (0, 0);
    for (seq, bytes) in (0u64..).zip(&entries) {
        let slow: EntryFacts = slow_facts(&store, seq, origin, &timeline, bytes).unwrap();
        let fast = fast_facts(&store, seq, origin, &timeline, bytes)
            .unwrap()
            .unwrap_or_else(|| panic!("seq {seq} took the slow path"));
        assert_eq!(fast, slow, "seq {seq}");
        rotations += usize::from(fast.rotation);
        streams += usize::from(fast.stream.is_some());
        // Facts the fast path is not sure of send it to the slow path.
        assert_eq!(
            fast_facts(&store, seq + 1, origin, &timeline, bytes).unwrap(),
            None
        );
        assert_eq!(
            fast_facts(&store, seq, "other", &timeline, bytes).unwrap(),
            None
        );
    }
    assert_eq!(rotations, 1);
    assert_eq!(streams, 29 + 6, "streamed decisions and their ends");
}

#[test]
fn a_wrong_decision_index_row_sends_the_entry_to_the_slow_path() {
    let origin = "test.example/log";
    let (store, entries) = sealed_store(origin);
    let timeline = timeline(origin);
    let seq = 10;
    let id = parse_strict(std::str::from_utf8(&entries[seq]).unwrap()).unwrap()["decision_id"]
        .as_str()
        .and_then(DecisionId::parse)
        .unwrap();
    let mut batch = CommitBatch::default();
    batch.decisions.push((*id.as_bytes(), 11));
    store.commit(&batch).unwrap();
    let seq = seq as u64;
    assert_eq!(
        fast_facts(&store, seq, origin, &timeline, &entries[10]).unwrap(),
        None
    );
    let err = slow_facts(&store, seq, origin, &timeline, &entries[10]).unwrap_err();
    assert!(err.to_string().contains("decision index"), "{err}");
}

/// Every single-byte change to a real entry that the fast path still
/// accepts is also accepted by the slow path with the same facts.
#[test]
fn altered_bytes_are_never_accepted_by_the_fast_path_alone() {
    let origin = "test.example/log";
    let (store, entries) = sealed_store(origin);
    let timeline = timeline(origin);
    for (seq, original) in (0u64..).zip(&entries).take(6) {
        for at in 0..original.len() {
            for replacement in [
                b' ', b'"', b'\\', b'0', b'1', b'a', b'A', b'}', b',', 0x01, 0xc3,
            ] {
                let mut bytes = original.clone();
                bytes[at] = replacement;
                let fast = fast_facts(&store, seq, origin, &timeline, &bytes).unwrap();
                if let Some(fast) = fast {
                    let slow = slow_facts(&store, seq, origin, &timeline, &bytes);
                    assert_eq!(
                        slow.ok(),
                        Some(fast),
                        "seq {seq} byte {at} -> {replacement}"
                    );
                }
            }
        }
    }
}

#[test]
fn rotations_are_recognised_from_their_kind_or_their_bytes() {
    let (_, entries) = sealed_store("test.example/log");
    let found: Vec<usize> = (0..entries.len())
        .filter(|&i| super::facts::may_be_rotation(&entries[i]))
        .collect();
    assert_eq!(found, [1]);
    assert!(crate::ledger::entry::key_rotation(&entries[1]).is_some());
    // Not canonical (a space): the byte search decides.
    let spaced = String::from_utf8(entries[1].clone())
        .unwrap()
        .replacen(',', ", ", 1);
    assert!(super::facts::may_be_rotation(spaced.as_bytes()));
    assert!(!super::facts::may_be_rotation(
        br#"{"kind": "key_rotated"}"#
    ));
    assert!(!super::facts::may_be_rotation(
        br#"{"x":{"kind":"key_rotated"}}"#
    ));
}

/// Random edits of real entries and of small documents: whatever the fast
/// path accepts, the slow path accepts with the same facts.
#[test]
fn randomly_edited_entries_never_pass_the_fast_path_alone() {
    const ALPHABET: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\"",
        b"\\",
        b"u",
        b"0",
        b"1",
        b"9",
        b"-",
        b".",
        b"e",
        b"E",
        b"+",
        b" ",
        b"a",
        b"n",
        b"t",
        b"f",
        b"\x01",
        b"\x7f",
        "\u{e9}".as_bytes(),
        "\u{1F600}".as_bytes(),
        b"\\u00",
        b"\\n",
        b"null",
        b"true",
        b"\"seq\":",
    ];
    let origin = "test.example/log";
    let (store, entries) = sealed_store(origin);
    let timeline = timeline(origin);
    let mut seeds: Vec<Vec<u8>> = entries.iter().take(8).cloned().collect();
    seeds.push(br#"{"a":[1,-2,3.5,{"b":"c\n"}],"seq":0}"#.to_vec());
    // xorshift64: deterministic, and enough to spread the edits.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    };
    let mut accepted = 0;
    for round in 0..20_000 {
        let seq = round % seeds.len();
        let mut bytes = seeds[seq].clone();
        for _ in 0..1 + next(3) {
            let at = next(bytes.len() + 1);
            let piece = ALPHABET[next(ALPHABET.len())];
            match next(3) {
                0 => drop(bytes.splice(at..at, piece.iter().copied())),
                1 if at < bytes.len() => drop(bytes.remove(at)),
                _ if at < bytes.len() => bytes[at] = piece[0],
                _ => {}
            }
        }
        if let Some(fast) = fast_facts(&store, seq as u64, origin, &timeline, &bytes).unwrap() {
            accepted += 1;
            let slow = slow_facts(&store, seq as u64, origin, &timeline, &bytes);
            assert_eq!(slow.ok(), Some(fast), "{}", String::from_utf8_lossy(&bytes));
        }
        if let Some(text) = std::str::from_utf8(&bytes)
            .ok()
            .filter(|t| scan(t).is_some())
        {
            assert!(slow_accepts(text), "{text}");
        }
    }
    // Some edits keep an entry canonical (a digit for a digit): the
    // comparison above did run.
    assert!(accepted > 100, "{accepted}");
}
