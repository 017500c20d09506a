//! The policy-set state machine: four eyes, activation, rollback, and
//! events surviving their ledger members.

use super::*;

fn who(name: &str, roles: &[&str]) -> Principal {
    Principal::parse(name, roles).unwrap()
}

fn files(tag: &str) -> Vec<(String, String)> {
    vec![("a.rego".to_owned(), format!("package govgate\n# {tag}\n"))]
}

/// Decides, then applies at the next seq; returns that seq (or None).
fn run(
    state: &mut PolicyChanges,
    seq: &mut u64,
    command: ChangeCommand,
    by: &Principal,
) -> Option<u64> {
    let policy = ApprovalPolicy::new(2, Vec::<String>::new());
    let event = state.decide(&command, by, &policy).unwrap()?;
    // Through the ledger's form and back, as a replay reads it.
    let members = event.to_members();
    let decoded = ChangeEvent::from_members(event.kind(), &members).unwrap();
    assert_eq!(decoded, event);
    *seq += 1;
    state.apply(&decoded, *seq, "2026-12-06T00:00:00.000Z");
    Some(*seq)
}

fn approved(state: &mut PolicyChanges, seq: &mut u64, tag: &str) -> u64 {
    let ops = who("ops", &["admin"]);
    let propose = ChangeCommand::Propose {
        source: "upload",
        files: files(tag),
        reason: None,
    };
    let set = run(state, seq, propose, &ops).unwrap();
    for approver in ["ann", "bob"] {
        let approve = ChangeCommand::Approve {
            proposal_seq: set,
            reason: None,
        };
        run(state, seq, approve, &who(approver, &["approver"])).unwrap();
    }
    set
}

#[test]
fn a_set_needs_two_distinct_approvers_other_than_its_proposer() {
    let (mut state, mut seq) = (PolicyChanges::default(), 0);
    let ops = who("ops", &["admin", "approver"]);
    let propose = ChangeCommand::Propose {
        source: "upload",
        files: files("one"),
        reason: None,
    };
    let set = run(&mut state, &mut seq, propose.clone(), &ops).unwrap();
    // The same files again change nothing.
    assert_eq!(run(&mut state, &mut seq, propose, &ops), None);
    let policy = ApprovalPolicy::new(2, Vec::<String>::new());
    let approve = ChangeCommand::Approve {
        proposal_seq: set,
        reason: None,
    };
    assert_eq!(
        state.decide(&approve, &ops, &policy),
        Err(ChangeError::ProposerCannotApprove)
    );
    let activate = ChangeCommand::Activate {
        proposal_seq: set,
        reason: None,
    };
    assert!(matches!(
        state.decide(&activate, &ops, &policy),
        Err(ChangeError::InvalidTransition { .. })
    ));
    let ann = who("ann", &["approver"]);
    run(&mut state, &mut seq, approve.clone(), &ann).unwrap();
    // Ann again: a repeat, no second approval.
    assert_eq!(run(&mut state, &mut seq, approve.clone(), &ann), None);
    assert_eq!(state.set(set).unwrap().state, SetState::Proposed);
    let bob = who("bob", &["approver"]);
    let met = run(&mut state, &mut seq, approve, &bob).unwrap();
    assert_eq!(state.set(set).unwrap().state, SetState::Approved);
    assert_eq!(state.set(set).unwrap().approval_seq, Some(met));
    let at = run(&mut state, &mut seq, activate, &ops).unwrap();
    assert_eq!(
        state.active(),
        Some(ActiveSet {
            proposal_seq: set,
            activation_seq: at
        })
    );
}

#[test]
fn rollback_goes_back_through_earlier_sets() {
    let (mut state, mut seq) = (PolicyChanges::default(), 0);
    let ops = who("ops", &["proposer"]);
    let policy = ApprovalPolicy::new(2, Vec::<String>::new());
    let rollback = ChangeCommand::RollBack { reason: None };
    assert_eq!(
        state.decide(&rollback, &ops, &policy),
        Err(ChangeError::NothingToRollBack)
    );
    let mut sets = Vec::new();
    for tag in ["one", "two", "three"] {
        let set = approved(&mut state, &mut seq, tag);
        let activate = ChangeCommand::Activate {
            proposal_seq: set,
            reason: None,
        };
        run(&mut state, &mut seq, activate, &ops).unwrap();
        sets.push(set);
    }
    run(&mut state, &mut seq, rollback.clone(), &ops).unwrap();
    assert_eq!(state.active().unwrap().proposal_seq, sets[1]);
    assert_eq!(state.set(sets[2]).unwrap().state, SetState::Approved);
    run(&mut state, &mut seq, rollback.clone(), &ops).unwrap();
    assert_eq!(state.active().unwrap().proposal_seq, sets[0]);
    assert_eq!(
        state.decide(&rollback, &ops, &policy),
        Err(ChangeError::NothingToRollBack)
    );
}

#[test]
fn roles_and_qualifiers_are_the_registrys() {
    let (mut state, mut seq) = (PolicyChanges::default(), 0);
    let propose = ChangeCommand::Propose {
        source: "upload",
        files: files("x"),
        reason: None,
    };
    let policy = ApprovalPolicy::new(2, Vec::<String>::new());
    assert!(matches!(
        state.decide(&propose, &who("rita", &["reviewer"]), &policy),
        Err(ChangeError::Forbidden { .. })
    ));
    let set = run(&mut state, &mut seq, propose, &who("ops", &["admin"])).unwrap();
    let strict = ApprovalPolicy::new(2, ["ai_officer"]);
    let approve = ChangeCommand::Approve {
        proposal_seq: set,
        reason: None,
    };
    let plain = who("p", &["approver"]);
    let first = state.decide(&approve, &plain, &strict).unwrap().unwrap();
    state.apply(&first, 10, "t");
    assert_eq!(
        state.decide(&approve, &who("q", &["approver"]), &strict),
        Err(ChangeError::RoleRequired {
            missing: vec!["ai_officer".to_owned()]
        })
    );
}

#[test]
fn file_names_and_sizes_are_bounded() {
    let ok = |name: &str| check_files(&[(name.to_owned(), String::new())]).is_ok();
    assert!(ok("credit.rego"));
    assert!(!ok("../x.rego"));
    assert!(!ok("x_test.rego"));
    assert!(!ok("x.txt"));
    assert!(check_files(&[]).is_err());
    let big = vec![("a.rego".to_owned(), "x".repeat(MAX_TEXT_BYTES + 1))];
    assert!(check_files(&big).is_err());
}
