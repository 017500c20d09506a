//! Random command sequences from several principals: the state reached
//! live equals the state replayed from the events, directly and through
//! ledger members; invariants hold after every step.

use super::*;
use crate::registry::policy::is_met;
use std::collections::BTreeMap;

const MODELS: [&str; 2] = ["fraud", "chat"];
const LABELS: [&str; 5] = ["1", "2", "3", "4", "5"];

fn principals() -> Vec<Principal> {
    vec![
        who("root", &["admin"]),
        who("paula", &["proposer"]),
        who("pete", &["proposer", "approver"]),
        who("bob", &["approver"]),
        who("carol", &["approver"]),
        who("erin", &["approver:ai_officer"]),
        who("sam", &["approver:security_officer"]),
        who(
            "olga",
            &["approver:ai_officer", "approver:security_officer"],
        ),
        who("ann", &["auditor", "reviewer"]),
    ]
}

fn random_command(rng: &mut Rng) -> Command {
    let model = rng.pick(&MODELS).to_string();
    let version = rng.pick(&LABELS).to_string();
    let reason = |rng: &mut Rng| match rng.below(3) {
        0 => None,
        1 => Some(String::new()),
        _ => Some("because".to_owned()),
    };
    match rng.below(16) {
        0..=2 => {
            let risk = *rng.pick(&[RiskClass::Minimal, RiskClass::Limited, RiskClass::High]);
            let mut spec = spec(risk);
            spec.description = format!("{model} {version}");
            Command::Propose {
                model,
                version,
                spec,
                reason: reason(rng),
            }
        }
        3..=7 => Command::Approve {
            model,
            version,
            reason: reason(rng),
        },
        8 => Command::Reject {
            model,
            version,
            reason: reason(rng).unwrap_or_default(),
        },
        9..=11 => Command::Activate {
            model,
            version,
            reason: reason(rng),
        },
        12 | 13 => Command::RollBack {
            model,
            reason: reason(rng),
        },
        14 => Command::Retire {
            model,
            version,
            reason: reason(rng),
        },
        _ => Command::Revoke {
            model,
            version,
            reason: reason(rng).unwrap_or_default(),
        },
    }
}

/// Mostly someone whose roles allow the action, sometimes anyone.
fn suitable<'a>(rng: &mut Rng, people: &'a [Principal], action: Action) -> &'a Principal {
    if rng.below(8) == 0 {
        return rng.pick(people);
    }
    let fits = |p: &&Principal| match action {
        Action::Propose | Action::Activate | Action::RollBack => {
            p.has(&Role::Admin) || p.has(&Role::Proposer)
        }
        Action::Approve | Action::Reject => p.is_approver(),
        Action::Retire => p.has(&Role::Admin),
        Action::Revoke => p.has(&Role::Admin) || p.is_approver(),
    };
    let fitting: Vec<&Principal> = people.iter().filter(fits).collect();
    fitting[rng.below(fitting.len())]
}

fn check_invariants(registry: &Registry, policy: &PolicySet) {
    for (name, model) in registry.models() {
        let active: Vec<&String> = model
            .versions
            .iter()
            .filter(|(_, v)| v.state == VersionState::Active)
            .map(|(label, _)| label)
            .collect();
        assert!(active.len() <= 1, "{name}: {active:?}");
        assert_eq!(model.active.as_ref(), active.first().copied(), "{name}");
        for label in &model.activation_history {
            assert_eq!(
                model.versions[label].state,
                VersionState::Approved,
                "{name} {label}"
            );
        }
        for (label, version) in &model.versions {
            let mut names: Vec<&str> = version
                .approvals
                .iter()
                .map(|a| a.principal.as_str())
                .collect();
            assert!(
                !names.contains(&version.proposer.as_str()),
                "{name} {label}"
            );
            names.sort();
            names.dedup();
            assert_eq!(names.len(), version.approvals.len(), "{name} {label}");
            let roles: Vec<&[Role]> = version
                .approvals
                .iter()
                .map(|a| a.roles.as_slice())
                .collect();
            let met = is_met(policy.for_risk(version.spec.risk_class), &roles);
            let approved = version.approval_seq.is_some();
            assert_eq!(met, approved, "{name} {label}");
            if version.state.is_servable() {
                assert!(approved, "{name} {label}");
            }
            // The served decision cites the approval that completed it.
            if let Some(seq) = version.approval_seq {
                assert_eq!(version.approvals.last().map(|a| a.seq), Some(seq));
            }
        }
    }
}

#[test]
fn replay_equals_live_for_random_command_sequences() {
    let people = principals();
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut refusals: BTreeMap<&'static str, usize> = BTreeMap::new();
    for seed in 1..=40 {
        let mut rng = Rng::new(seed);
        let mut world = World::new(&MODELS, officers_policy());
        for _ in 0..300 {
            let command = random_command(&mut rng);
            let by = suitable(&mut rng, &people, command.action());
            match world.run(command, by) {
                Ok(Some(event)) => *seen.entry(event.kind()).or_default() += 1,
                Ok(None) => *seen.entry("no_op").or_default() += 1,
                Err(err) => *refusals.entry(err.code()).or_default() += 1,
            }
            check_invariants(&world.registry, &world.policy);
        }

        let replayed = Registry::replay(MODELS, world.events.clone());
        assert_eq!(
            serde_json::to_string(&replayed).unwrap(),
            serde_json::to_string(&world.registry).unwrap(),
            "seed {seed}"
        );
        assert_eq!(replayed, world.registry, "seed {seed}");
        assert_eq!(
            replayed.snapshot(),
            world.registry.snapshot(),
            "seed {seed}"
        );

        // Through the ledger's form, under a different policy: replay
        // never consults one.
        let from_ledger = world.events.iter().map(|(seq, time, event)| {
            let decoded = Event::from_members(event.kind(), &event.to_members()).unwrap();
            (*seq, time.clone(), decoded)
        });
        let replayed = Registry::replay(MODELS, from_ledger);
        assert_eq!(replayed, world.registry, "seed {seed}");

        // Resolution agrees for every name asked.
        let live = world.registry.snapshot();
        let again = replayed.snapshot();
        for model in MODELS.iter().chain(&["other"]) {
            assert_eq!(live.resolve(model, None), again.resolve(model, None));
            for label in LABELS.iter().chain(&["9"]) {
                assert_eq!(
                    live.resolve(model, Some(label)),
                    again.resolve(model, Some(label))
                );
            }
        }
    }
    // The sequences are rich enough to mean something.
    for kind in EVENT_KINDS.iter().chain(&["no_op"]) {
        assert!(
            seen.get(kind).copied().unwrap_or(0) >= 20,
            "{kind}: {seen:?}"
        );
    }
    for code in [
        "invalid_transition",
        "proposer_cannot_approve",
        "approver_role_required",
        "forbidden",
        "already_exists",
        "nothing_to_roll_back",
        "reason_required",
        "unknown_version",
    ] {
        assert!(
            refusals.get(code).copied().unwrap_or(0) >= 20,
            "{code}: {refusals:?}"
        );
    }
}

#[test]
fn a_policy_change_does_not_undo_recorded_approvals() {
    let mut world = World::new(&["fraud"], simple_policy());
    let paula = who("paula", &["proposer"]);
    let bob = who("bob", &["approver"]);
    world.ok(propose("fraud", "1.0", RiskClass::Minimal), &paula);
    world.ok(approve("fraud", "1.0"), &bob);
    world.ok(activate("fraud", "1.0"), &paula);
    world.ok(propose("fraud", "2.0", RiskClass::Minimal), &paula);

    // Stricter from now on: new approvals are judged by it, the recorded
    // ones stand, and replay (which takes no policy) agrees.
    world.policy = officers_policy();
    world.ok(approve("fraud", "2.0"), &bob);
    assert_eq!(world.state("fraud", "2.0"), VersionState::Proposed);
    assert!(matches!(
        world.run(approve("fraud", "2.0"), &who("carol", &["approver"])),
        Err(RegistryError::RoleRequired { .. })
    ));
    world.ok(
        approve("fraud", "2.0"),
        &who("erin", &["approver:ai_officer"]),
    );
    assert_eq!(world.state("fraud", "2.0"), VersionState::Approved);
    assert_eq!(world.state("fraud", "1.0"), VersionState::Active);
    let replayed = Registry::replay(["fraud"], world.events.clone());
    assert_eq!(replayed, world.registry);
    assert!(matches!(
        replayed.resolve("fraud", None),
        Resolution::Serve { version: "1.0", .. }
    ));
    assert_eq!(replayed.last_seq(), world.events.last().map(|e| e.0));
    assert_eq!(replayed.snapshot().last_seq(), replayed.last_seq());
}
