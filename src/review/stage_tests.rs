//! Tests of skipping a stage the policies have no rule for: which stages
//! the analysis finds, and that skipping gives and records exactly what
//! evaluating gives.

use super::gate::evaluation;
use super::*;
use serde_json::{Value, json};
use std::path::Path;

fn load(files: &[(&str, &str)]) -> PolicySet {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    PolicySet::load(dir.path()).unwrap()
}

/// Only request-stage rules; the later statements would fail with an
/// error on some inputs if they ran at the response stage.
const REQUEST_ONLY: &str = r#"package govgate

deny contains "caller not allowed" if {
	input.stage == "request"
	not startswith(input.caller, "svc-")
}

hold contains "priority above 5" if {
	"request" == input.stage
	to_number(input.request.priority) > 5
}

flag contains reason if {
	input.stage == "request"
	p := to_number(input.request.priority)
	p > 3
	reason := sprintf("priority %v", [p])
}
"#;

fn inputs(caller: &str, request: Value) -> Vec<PolicyInput> {
    let asked = PolicyInput::request(
        "m",
        "v1",
        "high",
        caller,
        "65a1b2c3d4e5f60718293a4b5c6d7e8f",
        request,
    );
    let mut out = vec![asked.clone()];
    for (status, answer) in [
        (200, json!({"outputs": [{"name": "score", "data": [0.5]}]})),
        (200, json!({"priority": "not a number"})),
        (502, Value::Null),
    ] {
        out.push(asked.clone().into_response(status, answer));
    }
    out
}

#[test]
fn shipped_policies_evaluate_deny_at_request_and_hold_flag_at_response() {
    let set = PolicySet::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap();
    assert!(set.judges(Stage::Request) && set.judges(Stage::Response));
    assert_eq!(set.sets_at(Stage::Request), [true, false, false]);
    assert_eq!(set.sets_at(Stage::Response), [false, true, true]);
}

/// A set with request-stage rules only: the response stage is skipped,
/// and its verdict and the decision's recorded `policy.response` are the
/// ones evaluating every rule gives, on inputs where the rules fire at the
/// request stage and where their later statements would fail.
#[test]
fn a_skipped_stage_gives_and_records_what_evaluating_gives() {
    let set = load(&[("request_only.rego", REQUEST_ONLY)]);
    assert!(set.judges(Stage::Request));
    assert!(!set.judges(Stage::Response));
    let allowed = json!({"action": "allow", "deny": [], "hold": [], "flag": [], "error": null});
    let mut fired = 0;
    for (caller, request) in [
        ("svc-a", json!({"priority": 9})),
        ("alice", json!({"priority": 4})),
        ("svc-b", json!({"priority": "urgent"})),
        ("svc-c", Value::Null),
    ] {
        for input in inputs(caller, request.clone()) {
            let evaluated = set.evaluate_unskipped(&input);
            let skipped = set.evaluate(&input);
            let document = InputDocument::new(input.clone());
            let documented = set.evaluate_document(&document);
            match (&evaluated, &skipped) {
                (Ok(evaluated), Ok(skipped)) => {
                    assert_eq!(evaluated, skipped, "{input:?}");
                    assert_eq!(documented.as_ref().ok(), Some(evaluated), "{input:?}");
                    let want = serde_json::to_value(evaluation(evaluated.clone()).record).unwrap();
                    let got = serde_json::to_value(evaluation(skipped.clone()).record).unwrap();
                    assert_eq!(want, got);
                    if input.stage == Stage::Response {
                        assert_eq!(got, allowed, "{input:?}");
                    } else if skipped.action != Action::Allow {
                        fired += 1;
                    }
                }
                // A request-stage error stays an error either way.
                (Err(a), Err(b)) => {
                    assert_eq!(input.stage, Stage::Request);
                    assert_eq!(a.to_string(), b.to_string());
                }
                other => panic!("{input:?}: {other:?}"),
            }
        }
    }
    assert!(fired >= 2, "the rules fire at the request stage");
}

/// Rules the analysis cannot limit to one stage keep both stages evaluated.
#[test]
fn rules_not_limited_by_their_first_statement_count_at_both_stages() {
    let cases = [
        // The stage test is not the first statement.
        "deny contains \"x\" if {\n\tinput.caller == \"eve\"\n\tinput.stage == \"request\"\n}\n",
        // The stage test carries a `with`.
        "deny contains \"x\" if {\n\tinput.stage == \"request\" with input.stage as \"request\"\n}\n",
        // Negated.
        "deny contains \"x\" if {\n\tnot input.stage == \"response\"\n\tinput.caller == \"eve\"\n}\n",
        // Inequality.
        "deny contains \"x\" if {\n\tinput.stage != \"response\"\n\tinput.caller == \"eve\"\n}\n",
        // A second body without the test.
        "deny contains \"x\" if {\n\tinput.stage == \"request\"\n\tinput.caller == \"eve\"\n}\n\ndeny contains \"y\" if {\n\tinput.caller == \"mallory\"\n}\n",
        // An else body without the test.
        "deny := {\"x\"} if {\n\tinput.stage == \"request\"\n\tinput.caller == \"eve\"\n} else := {\"y\"} if {\n\tinput.caller == \"mallory\"\n}\n",
        // A default value.
        "default flag := set()\n",
        // No body at all.
        "flag contains \"always\"\n",
        // A reference the analysis does not follow.
        "stage := input.stage\n\ndeny contains \"x\" if {\n\tstage == \"request\"\n\tinput.caller == \"eve\"\n}\n",
    ];
    for text in cases {
        let set = load(&[("p.rego", &format!("package govgate\n\n{text}"))]);
        assert!(set.judges(Stage::Request), "{text}");
        assert!(set.judges(Stage::Response), "{text}");
    }
    // Rules in packages below `govgate` do not add to its sets.
    let set = load(&[
        (
            "p.rego",
            "package govgate\n\ndeny contains \"x\" if {\n\tinput.stage == \"request\"\n\tdata.govgate.lib.bad\n}\n",
        ),
        (
            "lib.rego",
            "package govgate.lib\n\nflag contains \"y\" if {\n\tinput.caller == \"eve\"\n}\n\nbad if input.caller == \"eve\"\n",
        ),
    ]);
    assert!(set.judges(Stage::Request));
    assert!(!set.judges(Stage::Response));
}
