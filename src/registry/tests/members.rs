//! Events to ledger members and back, for every kind.

use super::*;
use crate::ledger::canonical::{parse_strict, to_canonical};
use serde_json::{Map, Value, json};

fn head(state: VersionState, reason: Option<&str>) -> EventHead {
    EventHead {
        model: "fraud".to_owned(),
        version: "2.1.0+b7".to_owned(),
        principal: who("erin", &["approver:ai_officer", "reviewer"]),
        reason: reason.map(str::to_owned),
        change_ref: "CHG-77".to_owned(),
        risk_class: RiskClass::High,
        approvals: vec![
            ApprovalMark {
                principal: "bob".to_owned(),
                roles: vec![Role::Approver],
                issuer: None,
            },
            ApprovalMark {
                principal: "erin \u{e9}\"quoted\"".to_owned(),
                roles: vec![Role::QualifiedApprover("ai_officer".to_owned())],
                issuer: Some("https://idp.example".to_owned()),
            },
        ],
        state,
    }
}

/// Every kind, with optional members both present and absent.
fn samples() -> Vec<Event> {
    let proposal = |model: Option<&str>, digest: Option<&str>| ProposalDetail {
        upstream: "scoring".to_owned(),
        upstream_model: model.map(str::to_owned),
        artifact_digest: digest.map(str::to_owned),
        description: "line one\nline two".to_owned(),
    };
    let switch = |deactivated: Option<&str>| Switch {
        deactivated: deactivated.map(str::to_owned),
        approval_seq: 9_007_199_254_740_000,
    };
    vec![
        Event::Proposed {
            head: head(VersionState::Proposed, None),
            proposal: proposal(Some("xgb"), Some("sha256:00ff")),
        },
        Event::Proposed {
            head: head(VersionState::Proposed, Some("first cut")),
            proposal: proposal(None, None),
        },
        Event::Approved {
            head: head(VersionState::Proposed, Some("ok")),
            policy: ApprovalPolicy::new(3, ["ai_officer", "security_officer"]),
        },
        Event::Approved {
            head: head(VersionState::Approved, None),
            policy: ApprovalPolicy::new(1, Vec::<String>::new()),
        },
        Event::Rejected {
            head: head(VersionState::Rejected, Some("no fairness report")),
        },
        Event::Activated {
            head: head(VersionState::Active, None),
            switch: switch(Some("2.0.0")),
        },
        Event::Activated {
            head: head(VersionState::Active, None),
            switch: switch(None),
        },
        Event::RolledBack {
            head: head(VersionState::Active, Some("latency")),
            switch: switch(Some("2.2.0")),
        },
        Event::RolledBack {
            head: head(VersionState::Active, None),
            switch: switch(None),
        },
        Event::Retired {
            head: head(VersionState::Retired, None),
        },
        Event::Retired {
            head: EventHead {
                principal: who("erin", &["admin"])
                    .with_issuer(Some("https://idp.example".to_owned())),
                ..head(VersionState::Retired, None)
            },
        },
        Event::Revoked {
            head: head(VersionState::Revoked, Some("incident 12")),
        },
    ]
}

#[test]
fn every_kind_round_trips_through_members_and_canonical_bytes() {
    let events = samples();
    let mut kinds: Vec<&str> = events.iter().map(Event::kind).collect();
    kinds.dedup();
    assert_eq!(kinds, EVENT_KINDS);
    for event in events {
        let members = event.to_members();
        for reserved in ["seq", "time", "kind", "origin", "prev_hash"] {
            assert!(!members.contains_key(reserved), "{reserved}");
        }
        for name in members.keys() {
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
        assert_eq!(Event::from_members(event.kind(), &members).unwrap(), event);

        // As the ledger stores it: with its own members, canonical bytes.
        let mut entry = members.clone();
        entry.insert("seq".to_owned(), json!(41));
        entry.insert("time".to_owned(), json!("2026-03-01T10:00:00.000Z"));
        entry.insert("kind".to_owned(), json!(event.kind()));
        entry.insert("origin".to_owned(), json!("gw-1"));
        entry.insert("prev_hash".to_owned(), json!("00".repeat(32)));
        let bytes = to_canonical(&Value::Object(entry)).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let Value::Object(parsed) = parse_strict(&text).unwrap() else {
            panic!("not an object")
        };
        assert_eq!(Event::from_members(event.kind(), &parsed).unwrap(), event);
    }
}

#[test]
fn proposal_members_carry_the_full_spec() {
    let mut world = World::new(&["fraud"], simple_policy());
    let event = world
        .run(
            propose("fraud", "1.0", RiskClass::Limited),
            &who("paula", &["proposer"]),
        )
        .unwrap()
        .unwrap();
    let members = event.to_members();
    assert_eq!(
        Value::Object(members.clone()),
        json!({
            "model": "fraud",
            "version": "1.0",
            "principal": "paula",
            "principal_roles": ["proposer"],
            "change_ref": "CHG-1042",
            "risk_class": "limited",
            "approvals": [],
            "state": "proposed",
            "upstream": "scoring",
            "upstream_model": "fraud-xgb",
            "artifact_digest": "sha256:ab12",
            "description": "retrained on Q1 data",
        })
    );
    let back = Event::from_members("version_proposed", &members).unwrap();
    assert_eq!(back.spec(), Some(spec(RiskClass::Limited)));
}

#[test]
fn decoding_refuses_what_is_not_an_event_of_the_kind() {
    let members = samples()[4].to_members(); // version_rejected
    let refused = |kind: &str, members: &Map<String, Value>| {
        let err = Event::from_members(kind, members).unwrap_err();
        assert_eq!(err.code(), "malformed_event");
    };
    refused("decision", &members);
    let mut extra = members.clone();
    extra.insert(
        "policy".to_owned(),
        json!({"approvers": 1, "required_roles": []}),
    );
    refused("version_rejected", &extra);
    let mut unknown = members.clone();
    unknown.insert("colour".to_owned(), json!("red"));
    refused("version_rejected", &unknown);
    let mut bad_role = members.clone();
    bad_role.insert("principal_roles".to_owned(), json!(["superuser"]));
    refused("version_rejected", &bad_role);
    let mut bad_state = members.clone();
    bad_state.insert("state".to_owned(), json!("Approved"));
    refused("version_rejected", &bad_state);
    let mut no_model = members.clone();
    no_model.remove("model");
    refused("version_rejected", &no_model);
    // Members of another kind are missing.
    refused("version_activated", &members);
    refused("version_approved", &members);
    refused("version_proposed", &members);
    // An explicit null is an absent optional member.
    let mut null_reason = members.clone();
    null_reason.insert("reason".to_owned(), Value::Null);
    let event = Event::from_members("version_rejected", &null_reason).unwrap();
    assert_eq!(event.head().reason, None);
}
