//! Every action from every state: allowed moves succeed, the rest are
//! `InvalidTransition` naming the state the version is in.

use super::*;

const STATES: [VersionState; 6] = [
    VersionState::Proposed,
    VersionState::Approved,
    VersionState::Active,
    VersionState::Retired,
    VersionState::Rejected,
    VersionState::Revoked,
];

fn allowed(action: Action, state: VersionState) -> bool {
    use VersionState::*;
    match action {
        Action::Approve | Action::Reject => state == Proposed,
        Action::Activate => state == Approved,
        Action::Retire => matches!(state, Approved | Active),
        Action::Revoke => state != Revoked,
        Action::Propose | Action::RollBack => unreachable!("not a per-version action"),
    }
}

/// A model holding one version in `state`, labelled after the state.
fn world_with(state: VersionState) -> (World, String) {
    let mut world = World::new(&["m"], simple_policy());
    let proposer = who("paula", &["proposer"]);
    let approver = who("bob", &["approver"]);
    let admin = who("root", &["admin"]);
    let label = state.as_str().to_owned();
    world.ok(propose("m", &label, RiskClass::Minimal), &proposer);
    match state {
        VersionState::Proposed => {}
        VersionState::Rejected => {
            world.ok(reject("m", &label, "no"), &approver);
        }
        VersionState::Revoked => {
            world.ok(revoke("m", &label, "withdrawn"), &admin);
        }
        _ => {
            world.ok(approve("m", &label), &approver);
            if state == VersionState::Active {
                world.ok(activate("m", &label), &proposer);
            }
            if state == VersionState::Retired {
                world.ok(retire("m", &label), &admin);
            }
        }
    }
    assert_eq!(world.state("m", &label), state);
    (world, label)
}

fn command(action: Action, version: &str) -> Command {
    match action {
        Action::Approve => approve("m", version),
        Action::Reject => reject("m", version, "not good enough"),
        Action::Activate => activate("m", version),
        Action::Retire => retire("m", version),
        Action::Revoke => revoke("m", version, "incident 7"),
        Action::Propose | Action::RollBack => unreachable!(),
    }
}

#[test]
fn every_invalid_transition_names_the_current_state() {
    // Holds every role needed, but is neither proposer nor prior approver.
    let actor = who("zed", &["admin", "proposer", "approver"]);
    let actions = [
        Action::Approve,
        Action::Reject,
        Action::Activate,
        Action::Retire,
        Action::Revoke,
    ];
    let mut checked = 0;
    for state in STATES {
        for action in actions {
            let (mut world, label) = world_with(state);
            let before = world.registry.clone();
            let result = world.run(command(action, &label), &actor);
            if action == Action::Activate && state == VersionState::Active {
                assert_eq!(
                    result,
                    Ok(None),
                    "activating the active version is a repeat"
                );
                assert_eq!(world.registry, before, "a repeat changes nothing");
                continue;
            }
            if allowed(action, state) {
                let event = result.unwrap().unwrap();
                assert_ne!(event.head().state, state, "{action} from {state}");
                continue;
            }
            let err = result.unwrap_err();
            assert_eq!(
                err,
                RegistryError::InvalidTransition {
                    current: state,
                    action
                },
                "{action} from {state}"
            );
            assert_eq!(err.code(), "invalid_transition");
            assert!(err.to_string().contains(state.as_str()), "{err}");
            assert_eq!(world.registry, before, "a refusal changes nothing");
            checked += 1;
        }
    }
    // 6 states x 5 actions, 10 of them allowed, 1 a repeat.
    assert_eq!(checked, 19);
}

#[test]
fn rollback_skips_versions_no_longer_approved() {
    let mut world = World::new(&["m"], simple_policy());
    let paula = who("paula", &["proposer"]);
    let bob = who("bob", &["approver"]);
    let root = who("root", &["admin"]);
    for label in ["1", "2", "3", "4"] {
        world.ok(propose("m", label, RiskClass::Minimal), &paula);
        world.ok(approve("m", label), &bob);
        world.ok(activate("m", label), &paula);
    }
    assert_eq!(
        world.registry.model("m").unwrap().activation_history,
        ["1", "2", "3"]
    );
    world.ok(retire("m", "3"), &root);
    world.ok(revoke("m", "2", "bias found"), &bob);
    world.ok(roll_back("m"), &paula);
    assert_eq!(
        world.registry.model("m").unwrap().active.as_deref(),
        Some("1")
    );
    assert_eq!(world.state("m", "4"), VersionState::Approved);
    // 4 is not pushed by a rollback: rolling back again goes further back, not forth.
    assert_eq!(
        world.run(roll_back("m"), &paula).unwrap_err().code(),
        "nothing_to_roll_back"
    );

    // Re-activating a version takes it out of the history: no cycles.
    world.ok(activate("m", "4"), &paula);
    world.ok(activate("m", "1"), &paula);
    assert_eq!(world.registry.model("m").unwrap().activation_history, ["4"]);
}

#[test]
fn rollback_restores_service_after_the_active_version_is_revoked() {
    let mut world = World::new(&["m"], simple_policy());
    let paula = who("paula", &["proposer"]);
    let bob = who("bob", &["approver"]);
    for label in ["1", "2"] {
        world.ok(propose("m", label, RiskClass::Minimal), &paula);
        world.ok(approve("m", label), &bob);
        world.ok(activate("m", label), &paula);
    }
    world.ok(revoke("m", "2", "incident"), &bob);
    assert_eq!(world.registry.resolve("m", None), Resolution::Revoked);
    let event = world.run(roll_back("m"), &paula).unwrap().unwrap();
    match event {
        Event::RolledBack { head, switch } => {
            assert_eq!(head.version, "1");
            assert_eq!(switch.deactivated, None);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        world.registry.resolve("m", None),
        Resolution::Serve { version: "1", .. }
    ));
}

#[test]
fn role_rules_per_action() {
    let (world, label) = world_with(VersionState::Approved);
    let cases: [(&[&str], Action, bool); 12] = [
        (&["auditor"], Action::Activate, false),
        (&["reviewer"], Action::Activate, false),
        (&["approver"], Action::Activate, false),
        (&["proposer"], Action::Retire, false),
        (&["approver:ai_officer"], Action::Retire, false),
        (&["proposer"], Action::Revoke, false),
        (&["admin"], Action::Reject, false),
        (&["approver:ai_officer"], Action::Revoke, true),
        (&["admin"], Action::Revoke, true),
        (&["admin"], Action::Retire, true),
        (&["admin"], Action::Activate, true),
        (&["proposer"], Action::Activate, true),
    ];
    for (roles, action, permitted) in cases {
        let result =
            world
                .registry
                .decide(&command(action, &label), &who("x", roles), &world.policy);
        match result {
            Err(RegistryError::Forbidden {
                action: refused, ..
            }) => {
                assert!(!permitted, "{roles:?} {action}");
                assert_eq!(refused, action);
            }
            other => assert!(permitted, "{roles:?} {action}: {other:?}"),
        }
    }
    let rollback = world
        .registry
        .decide(&roll_back("m"), &who("x", &["approver"]), &world.policy);
    assert_eq!(rollback.unwrap_err().code(), "forbidden");
}

#[test]
fn error_codes_are_stable() {
    let cases = [
        (
            RegistryError::UnknownModel { model: "m".into() },
            "unknown_model",
        ),
        (
            RegistryError::UnknownVersion {
                model: "m".into(),
                version: "v".into(),
            },
            "unknown_version",
        ),
        (
            RegistryError::AlreadyExists {
                model: "m".into(),
                version: "v".into(),
            },
            "already_exists",
        ),
        (
            RegistryError::Forbidden {
                action: Action::Retire,
                needed: "admin",
            },
            "forbidden",
        ),
        (
            RegistryError::InvalidTransition {
                current: VersionState::Retired,
                action: Action::Activate,
            },
            "invalid_transition",
        ),
        (
            RegistryError::ProposerCannotApprove,
            "proposer_cannot_approve",
        ),
        (
            RegistryError::RoleRequired { missing: vec![] },
            "approver_role_required",
        ),
        (
            RegistryError::NothingToRollBack { model: "m".into() },
            "nothing_to_roll_back",
        ),
        (
            RegistryError::ReasonRequired {
                action: Action::Reject,
            },
            "reason_required",
        ),
        (
            RegistryError::InvalidRole { role: "x".into() },
            "invalid_role",
        ),
        (
            RegistryError::InvalidArgument {
                field: "version",
                problem: "empty",
            },
            "invalid_argument",
        ),
        (
            RegistryError::MalformedEvent {
                kind: "k".into(),
                problem: "p".into(),
            },
            "malformed_event",
        ),
    ];
    for (err, code) in cases {
        assert_eq!(err.code(), code);
    }
    let err = RegistryError::InvalidTransition {
        current: VersionState::Retired,
        action: Action::Activate,
    };
    assert_eq!(
        err.to_string(),
        "cannot activate a model version that is retired"
    );
}

#[test]
fn a_revoked_active_version_is_named_until_another_is_active() {
    let mut world = World::new(&["m"], simple_policy());
    let paula = who("paula", &["proposer", "admin"]);
    let bob = who("bob", &["approver"]);
    for label in ["1", "2"] {
        world.ok(propose("m", label, RiskClass::Minimal), &paula);
        world.ok(approve("m", label), &bob);
    }
    world.ok(activate("m", "1"), &paula);
    // Retiring the active version is not a revocation.
    world.ok(retire("m", "1"), &paula);
    assert_eq!(
        world.registry.resolve("m", None),
        Resolution::NotApproved { state: None }
    );
    world.ok(activate("m", "2"), &paula);
    world.ok(revoke("m", "2", "incident"), &bob);
    assert_eq!(world.registry.resolve("m", None), Resolution::Revoked);
    // A revoked version that was not active changes nothing for unversioned calls.
    world.ok(propose("m", "3", RiskClass::Minimal), &paula);
    world.ok(approve("m", "3"), &bob);
    world.ok(activate("m", "3"), &paula);
    assert!(matches!(
        world.registry.resolve("m", None),
        Resolution::Serve { version: "3", .. }
    ));
}
