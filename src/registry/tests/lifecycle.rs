//! A version's whole life under the four-eyes policy, as the proxy sees it.

use super::*;

#[test]
fn full_lifecycle_with_four_eyes_and_rollback() {
    let mut world = World::new(&["fraud", "chat"], officers_policy());
    let alice = who("alice", &["proposer", "approver"]);
    let bob = who("bob", &["approver"]);
    let carol = who("carol", &["approver"]);
    let dave = who("dave", &["admin"]);
    let erin = who("erin", &["approver:ai_officer"]);
    let limited = RiskClass::Limited;

    world.ok(propose("fraud", "1.0", limited), &alice);
    assert_eq!(
        world.registry.resolve("fraud", Some("1.0")),
        Resolution::NotApproved {
            state: Some(VersionState::Proposed)
        }
    );
    assert_eq!(
        world.registry.resolve("fraud", None),
        Resolution::NotApproved { state: None }
    );

    // The proposer's own approval is refused, even with the approver role.
    let refused = world.run(approve("fraud", "1.0"), &alice).unwrap_err();
    assert_eq!(refused, RegistryError::ProposerCannotApprove);
    assert_eq!(refused.code(), "proposer_cannot_approve");

    // An admin is not an approver.
    let refused = world.run(approve("fraud", "1.0"), &dave).unwrap_err();
    assert!(matches!(
        refused,
        RegistryError::Forbidden {
            action: Action::Approve,
            ..
        }
    ));

    // One approval of the two required is not enough.
    let event = world.run(approve("fraud", "1.0"), &bob).unwrap().unwrap();
    assert_eq!(event.kind(), "version_approved");
    assert_eq!(event.head().state, VersionState::Proposed);
    assert!(matches!(
        world.registry.resolve("fraud", Some("1.0")),
        Resolution::NotApproved { .. }
    ));

    // The last open approval must come from an AI officer.
    let refused = world.run(approve("fraud", "1.0"), &carol).unwrap_err();
    assert_eq!(
        refused,
        RegistryError::RoleRequired {
            missing: vec!["ai_officer".to_owned()]
        }
    );
    assert_eq!(refused.code(), "approver_role_required");
    assert!(refused.to_string().contains("approver:ai_officer"));

    let approved_at = world.ok(approve("fraud", "1.0"), &erin);
    let record = world.registry.version("fraud", "1.0").unwrap();
    assert_eq!(record.state, VersionState::Approved);
    assert_eq!(record.approval_seq, Some(approved_at));
    let approvers: Vec<&str> = record
        .approvals
        .iter()
        .map(|a| a.principal.as_str())
        .collect();
    assert_eq!(approvers, ["bob", "erin"]);

    // Approved: served when asked for, but not yet for unversioned calls.
    assert!(matches!(
        world.registry.resolve("fraud", Some("1.0")),
        Resolution::Serve { version: "1.0", approval_seq, .. } if approval_seq == approved_at
    ));
    assert_eq!(
        world.registry.resolve("fraud", None),
        Resolution::NotApproved { state: None }
    );

    world.ok(activate("fraud", "1.0"), &alice);
    let before_second = world.registry.snapshot();
    match before_second.resolve("fraud", None) {
        Resolution::Serve {
            version,
            approval_seq,
            spec: served,
        } => {
            assert_eq!(version, "1.0");
            assert_eq!(approval_seq, approved_at);
            assert_eq!(served, &spec(limited));
        }
        other => panic!("not served: {other:?}"),
    }

    // A second version replaces the first, which goes back to approved.
    world.ok(propose("fraud", "2.0", limited), &alice);
    world.ok(approve("fraud", "2.0"), &erin);
    let second_approval = world.ok(approve("fraud", "2.0"), &bob);
    let event = world.run(activate("fraud", "2.0"), &dave).unwrap().unwrap();
    match &event {
        Event::Activated { switch, .. } => {
            assert_eq!(switch.deactivated.as_deref(), Some("1.0"));
            assert_eq!(switch.approval_seq, second_approval);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(world.state("fraud", "1.0"), VersionState::Approved);
    assert_eq!(
        world.registry.model("fraud").unwrap().activation_history,
        ["1.0"]
    );
    assert!(matches!(
        world.registry.resolve("fraud", None),
        Resolution::Serve { version: "2.0", approval_seq, .. } if approval_seq == second_approval
    ));
    // A snapshot taken earlier is unchanged.
    assert!(matches!(
        before_second.resolve("fraud", None),
        Resolution::Serve { version: "1.0", .. }
    ));

    // Rollback puts 1.0 back in one call.
    world.ok(roll_back("fraud"), &alice);
    assert_eq!(world.state("fraud", "1.0"), VersionState::Active);
    assert_eq!(world.state("fraud", "2.0"), VersionState::Approved);
    assert!(matches!(
        world.registry.resolve("fraud", None),
        Resolution::Serve { version: "1.0", approval_seq, .. } if approval_seq == approved_at
    ));
    let refused = world.run(roll_back("fraud"), &alice).unwrap_err();
    assert_eq!(refused.code(), "nothing_to_roll_back");

    // Revoking the active version blocks it at once, versioned or not.
    let refused = world.run(revoke("fraud", "1.0", "  "), &erin).unwrap_err();
    assert_eq!(refused.code(), "reason_required");
    world.ok(revoke("fraud", "1.0", "training data leak"), &erin);
    assert_eq!(
        world.registry.resolve("fraud", Some("1.0")),
        Resolution::Revoked
    );
    assert_eq!(
        world.registry.resolve("fraud", None),
        Resolution::Revoked,
        "calls naming no version are told the active one was revoked"
    );
    assert_eq!(world.registry.model("fraud").unwrap().active, None);

    // Retiring takes 2.0 out of service; only an admin may.
    let refused = world.run(retire("fraud", "2.0"), &alice).unwrap_err();
    assert_eq!(refused.code(), "forbidden");
    world.ok(retire("fraud", "2.0"), &dave);
    assert_eq!(
        world.registry.resolve("fraud", Some("2.0")),
        Resolution::NotApproved {
            state: Some(VersionState::Retired)
        }
    );

    // Unknown names.
    assert_eq!(
        world.registry.resolve("nope", None),
        Resolution::UnknownModel
    );
    assert_eq!(
        world.registry.resolve("fraud", Some("9.9")),
        Resolution::UnknownVersion
    );
    assert_eq!(
        world.run(approve("nope", "1.0"), &bob).unwrap_err().code(),
        "unknown_model"
    );
    assert_eq!(
        world.run(approve("fraud", "9.9"), &bob).unwrap_err().code(),
        "unknown_version"
    );

    // The history of 1.0 tells the whole story, including being put back
    // to approved by 2.0's activation.
    let kinds: Vec<(&str, VersionState)> = world
        .registry
        .version("fraud", "1.0")
        .unwrap()
        .history
        .iter()
        .map(|h| (h.kind, h.state))
        .collect();
    assert_eq!(
        kinds,
        [
            ("version_proposed", VersionState::Proposed),
            ("version_approved", VersionState::Proposed),
            ("version_approved", VersionState::Approved),
            ("version_activated", VersionState::Active),
            ("version_activated", VersionState::Approved),
            ("version_rolled_back", VersionState::Active),
            ("version_revoked", VersionState::Revoked),
        ]
    );
}

#[test]
fn high_risk_versions_need_more_approvers_and_both_officers() {
    let mut world = World::new(&["fraud"], officers_policy());
    let proposer = who("paula", &["proposer"]);
    let plain = [who("bob", &["approver"]), who("carol", &["approver"])];
    let ai = who("erin", &["approver:ai_officer"]);
    let sec = who("sam", &["approver:security_officer"]);

    world.ok(propose("fraud", "3.0", RiskClass::High), &proposer);
    world.ok(approve("fraud", "3.0"), &plain[0]);
    world.ok(approve("fraud", "3.0"), &ai);
    // Two approvals would meet the default policy, not the high-risk one.
    assert_eq!(world.state("fraud", "3.0"), VersionState::Proposed);
    let refused = world.run(approve("fraud", "3.0"), &plain[1]).unwrap_err();
    assert_eq!(
        refused,
        RegistryError::RoleRequired {
            missing: vec!["security_officer".to_owned()]
        }
    );
    let event = world.run(approve("fraud", "3.0"), &sec).unwrap().unwrap();
    assert_eq!(event.head().state, VersionState::Approved);
    assert_eq!(event.head().approvals.len(), 3);
    match event {
        Event::Approved { policy, .. } => assert_eq!(policy.approvers, 3),
        other => panic!("{other:?}"),
    }

    // The same approvers on a limited-risk version: done after two.
    world.ok(propose("fraud", "3.1", RiskClass::Limited), &proposer);
    world.ok(approve("fraud", "3.1"), &plain[0]);
    world.ok(approve("fraud", "3.1"), &ai);
    assert_eq!(world.state("fraud", "3.1"), VersionState::Approved);
}

#[test]
fn one_principal_cannot_cover_two_required_roles() {
    let mut world = World::new(&["fraud"], officers_policy());
    let proposer = who("paula", &["proposer"]);
    let both = who(
        "olga",
        &["approver:ai_officer", "approver:security_officer"],
    );
    let ai = who("erin", &["approver:ai_officer"]);
    world.ok(propose("fraud", "4.0", RiskClass::High), &proposer);
    world.ok(approve("fraud", "4.0"), &both);
    world.ok(approve("fraud", "4.0"), &ai);
    // olga now covers security, erin AI; one more approver of any kind.
    assert_eq!(world.state("fraud", "4.0"), VersionState::Proposed);
    world.ok(approve("fraud", "4.0"), &who("bob", &["approver"]));
    assert_eq!(world.state("fraud", "4.0"), VersionState::Approved);
}

#[test]
fn repeated_approval_is_a_no_op() {
    let mut world = World::new(&["fraud"], officers_policy());
    let proposer = who("paula", &["proposer"]);
    let bob = who("bob", &["approver"]);
    let erin = who("erin", &["approver:ai_officer"]);
    world.ok(propose("fraud", "1.0", RiskClass::Minimal), &proposer);
    world.ok(approve("fraud", "1.0"), &bob);
    let events = world.events.len();
    assert_eq!(world.run(approve("fraud", "1.0"), &bob), Ok(None));
    assert_eq!(world.events.len(), events);
    assert_eq!(
        world
            .registry
            .version("fraud", "1.0")
            .unwrap()
            .approvals
            .len(),
        1
    );

    // Also after the version moved on: a retry never fails.
    world.ok(approve("fraud", "1.0"), &erin);
    world.ok(activate("fraud", "1.0"), &proposer);
    assert_eq!(world.run(approve("fraud", "1.0"), &erin), Ok(None));
    assert_eq!(world.state("fraud", "1.0"), VersionState::Active);
    // A new approver on an active version is a conflict, not a no-op.
    let refused = world.run(approve("fraud", "1.0"), &who("zoe", &["approver"]));
    assert!(matches!(
        refused,
        Err(RegistryError::InvalidTransition {
            current: VersionState::Active,
            action: Action::Approve
        })
    ));
}

#[test]
fn proposals_need_a_known_model_a_new_label_and_a_proposer() {
    let mut world = World::new(&["fraud"], simple_policy());
    let paula = who("paula", &["proposer"]);
    world.ok(propose("fraud", "1.0", RiskClass::Minimal), &paula);
    let again = world.run(propose("fraud", "1.0", RiskClass::Minimal), &paula);
    assert_eq!(again.unwrap_err().code(), "already_exists");
    // Rejected labels stay taken.
    world.ok(
        reject("fraud", "1.0", "wrong data"),
        &who("bob", &["approver"]),
    );
    let again = world.run(propose("fraud", "1.0", RiskClass::Minimal), &paula);
    assert_eq!(again.unwrap_err().code(), "already_exists");

    let unknown = world.run(propose("chat", "1.0", RiskClass::Minimal), &paula);
    assert_eq!(unknown.unwrap_err().code(), "unknown_model");
    let forbidden = world.run(
        propose("fraud", "2.0", RiskClass::Minimal),
        &who("ann", &["auditor"]),
    );
    assert_eq!(forbidden.unwrap_err().code(), "forbidden");
    world.ok(
        propose("fraud", "2.0", RiskClass::Minimal),
        &who("root", &["admin"]),
    );

    for bad in ["", "a b", "../x", "..", "v/1", &"9".repeat(129)] {
        let refused = world.run(propose("fraud", bad, RiskClass::Minimal), &paula);
        assert_eq!(
            refused.unwrap_err().code(),
            "invalid_argument",
            "label {bad:?}"
        );
    }
    let mut no_ticket = propose("fraud", "3.0", RiskClass::Minimal);
    if let Command::Propose { spec, .. } = &mut no_ticket {
        spec.change_ref = " ".to_owned();
    }
    assert_eq!(
        world.run(no_ticket, &paula).unwrap_err().code(),
        "invalid_argument"
    );
    let nameless = Principal::parse("", ["proposer"]).unwrap();
    let refused = world.run(propose("fraud", "3.0", RiskClass::Minimal), &nameless);
    assert_eq!(refused.unwrap_err().code(), "invalid_argument");
}

#[test]
fn roles_parse_strictly() {
    let parsed: Vec<Role> = [
        "admin",
        "proposer",
        "approver",
        "approver:ai_officer",
        "reviewer",
        "auditor",
    ]
    .iter()
    .map(|text| text.parse().unwrap())
    .collect();
    assert_eq!(parsed[3], Role::QualifiedApprover("ai_officer".to_owned()));
    for (role, text) in parsed.iter().zip([
        "admin",
        "proposer",
        "approver",
        "approver:ai_officer",
        "reviewer",
        "auditor",
    ]) {
        assert_eq!(role.to_string(), text);
    }
    for bad in [
        "Admin",
        "approver:",
        "approver:AI",
        "approver:a b",
        "root",
        "approver:x:y",
        "",
    ] {
        let err = bad.parse::<Role>().unwrap_err();
        assert_eq!(err.code(), "invalid_role", "{bad:?}");
    }
    assert!(Principal::parse("x", ["approver", "superuser"]).is_err());
    let json = serde_json::to_string(&parsed).unwrap();
    assert_eq!(serde_json::from_str::<Vec<Role>>(&json).unwrap(), parsed);
}
