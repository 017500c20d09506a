//! Tests of the shipped policies in `policies/` and of loading errors.

use super::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn shipped() -> PolicySet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    PolicySet::load(&dir).unwrap()
}

/// A decision id whose sample is at least 0.05 (not audited) or below it.
fn id_with_sample(audited: bool) -> String {
    (0u64..)
        .map(|i| format!("{i:032x}"))
        .find(|id| (sample_of(id) < 0.05) == audited)
        .unwrap()
}

fn credit_request(caller: &str, risk: &str) -> PolicyInput {
    PolicyInput::request(
        "credit-scoring",
        "v3",
        risk,
        caller,
        id_with_sample(false),
        json!({"inputs": [{"name": "applicant", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]}),
    )
}

fn kserve_scores(scores: &[f64]) -> Value {
    json!({"model_name": "credit-scoring", "outputs": [{"name": "score", "shape": [scores.len()], "datatype": "FP32", "data": scores}]})
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn shipped_policies_load_with_hashes() {
    use sha2::Digest;
    let set = shipped();
    let hashes = set.content_hashes();
    let names: Vec<_> = hashes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "audit_sample.rego",
            "caller_groups.rego",
            "credit_borderline.rego",
            "high_risk_review.rego"
        ]
    );
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for (name, hash) in hashes {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        let want: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hash, want, "{name}");
    }
}

#[test]
fn caller_outside_group_is_denied_at_request() {
    let v = shipped().evaluate(&credit_request("alice", "low")).unwrap();
    assert_eq!(v.action, Action::Deny);
    assert_eq!(v.reasons.len(), 1);
    assert!(v.reasons[0].contains("caller alice"), "{:?}", v.reasons);
}

#[test]
fn service_caller_is_allowed_at_request() {
    let v = shipped()
        .evaluate(&credit_request("svc-loans", "high"))
        .unwrap();
    assert_eq!(v.action, Action::Allow);
    assert!(v.reasons.is_empty());
    // Other models are open to every caller.
    let mut other = credit_request("alice", "low");
    other.model = "sentiment".into();
    assert_eq!(shipped().evaluate(&other).unwrap().action, Action::Allow);
}

#[test]
fn borderline_score_is_held() {
    let set = shipped();
    for score in [0.45, 0.5, 0.55] {
        let input = credit_request("svc-loans", "low").into_response(200, kserve_scores(&[score]));
        let v = set.evaluate(&input).unwrap();
        assert_eq!(v.action, Action::Hold, "score {score}");
        assert!(v.reasons[0].starts_with("borderline credit score"));
    }
    // One borderline score among several is enough.
    let input =
        credit_request("svc-loans", "low").into_response(200, kserve_scores(&[0.1, 0.5, 0.9]));
    assert_eq!(set.evaluate(&input).unwrap().action, Action::Hold);
}

#[test]
fn clear_scores_and_other_shapes_are_not_held() {
    let set = shipped();
    for body in [
        kserve_scores(&[0.44]),
        kserve_scores(&[0.56, 0.9]),
        json!({"outputs": [{"name": "label", "data": ["0.5"]}]}),
        json!({"choices": []}),
        Value::Null,
    ] {
        let input = credit_request("svc-loans", "low").into_response(200, body.clone());
        assert_eq!(
            set.evaluate(&input).unwrap().action,
            Action::Allow,
            "{body}"
        );
    }
    // The same borderline score from a model that is not a credit model.
    let mut input = credit_request("svc-loans", "low").into_response(200, kserve_scores(&[0.5]));
    input.model = "churn".into();
    assert_eq!(set.evaluate(&input).unwrap().action, Action::Allow);
}

#[test]
fn high_risk_listed_model_is_held_at_response_only() {
    let set = shipped();
    let request = credit_request("svc-loans", "high");
    assert_eq!(set.evaluate(&request).unwrap().action, Action::Allow);
    let v = set
        .evaluate(&request.into_response(200, kserve_scores(&[0.9])))
        .unwrap();
    assert_eq!(v.action, Action::Hold);
    assert_eq!(
        v.reasons,
        ["credit-scoring version v3 is high risk: every answer is reviewed"]
    );
}

#[test]
fn high_risk_unlisted_model_is_not_held() {
    let mut input = credit_request("svc-loans", "high").into_response(200, kserve_scores(&[0.9]));
    input.model = "churn".into();
    assert_eq!(shipped().evaluate(&input).unwrap().action, Action::Allow);
}

#[test]
fn audit_sample_is_flagged_at_response() {
    let set = shipped();
    let mut request = credit_request("svc-loans", "low");
    request.decision_id = id_with_sample(true);
    request.sample = sample_of(&request.decision_id);
    assert_eq!(set.evaluate(&request).unwrap().action, Action::Allow);
    let v = set
        .evaluate(&request.into_response(200, kserve_scores(&[0.9])))
        .unwrap();
    assert_eq!(v.action, Action::Flag);
    assert_eq!(v.reasons, ["audit sample (rate 0.05)"]);
}

#[test]
fn all_sets_are_reported_under_the_winner() {
    let mut input = credit_request("svc-loans", "high").into_response(200, kserve_scores(&[0.5]));
    input.decision_id = id_with_sample(true);
    input.sample = sample_of(&input.decision_id);
    let v = shipped().evaluate(&input).unwrap();
    assert_eq!(v.action, Action::Hold);
    assert_eq!(v.reasons.len(), 2);
    assert!(v.reasons.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(v.all.flag.len(), 1);
    assert!(v.all.deny.is_empty());
}

#[test]
fn evaluation_from_many_threads_agrees() {
    let set = std::sync::Arc::new(shipped());
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let set = set.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let caller = if (t + i) % 2 == 0 { "svc-a" } else { "bob" };
                    let want = if caller == "bob" {
                        Action::Deny
                    } else {
                        Action::Allow
                    };
                    let v = set.evaluate(&credit_request(caller, "low")).unwrap();
                    assert_eq!(v.action, want);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn parse_error_names_file_and_line() {
    let dir = dir_with(&[
        (
            "good.rego",
            "package govgate\n\nflag contains \"x\" if { input.sample < 0 }\n",
        ),
        (
            "bad.rego",
            "package govgate\n\ndeny contains reason if {\n  reason := \n}\n",
        ),
    ]);
    let err = PolicySet::load(dir.path()).unwrap_err();
    match &err {
        PolicyError::Parse { file, line, .. } => {
            assert_eq!(file, "bad.rego");
            assert!(matches!(line, Some(4 | 5)), "{err}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().starts_with("bad.rego:"), "{err}");
}

#[test]
fn foreign_package_is_refused() {
    let dir = dir_with(&[("other.rego", "# note\npackage example\n\nallow := true\n")]);
    let err = PolicySet::load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, PolicyError::Parse { file, line: Some(2), .. } if file == "other.rego"),
        "{err}"
    );
}

#[test]
fn trial_evaluation_error_names_file_and_line() {
    // A string plus a number is a type error on every input.
    let dir = dir_with(&[(
        "typo.rego",
        "package govgate\n\nhold contains reason if {\n  x := input.model + 1\n  reason := sprintf(\"%v\", [x])\n}\n",
    )]);
    let err = PolicySet::load(dir.path()).unwrap_err();
    match &err {
        PolicyError::Trial { file, line, .. } => {
            assert_eq!(file, "typo.rego", "{err}");
            assert_eq!(*line, Some(4), "{err}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn rule_that_is_not_a_set_is_refused() {
    let dir = dir_with(&[("bool.rego", "package govgate\n\ndeny := true\n")]);
    let err = PolicySet::load(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("must be a set of strings"),
        "{err}"
    );
}

#[test]
fn empty_folder_is_refused() {
    let dir = dir_with(&[("README.md", "no policies")]);
    assert!(matches!(
        PolicySet::load(dir.path()),
        Err(PolicyError::Empty(_))
    ));
}

#[test]
fn runtime_error_is_an_eval_error() {
    // Fine on the trial inputs, fails when the request carries a string.
    let dir = dir_with(&[(
        "div.rego",
        "package govgate\n\nflag contains \"big\" if {\n  is_object(input.request)\n  input.request.n / 2 > 1\n}\n",
    )]);
    let set = PolicySet::load(dir.path()).unwrap();
    let mut input = credit_request("svc-a", "low");
    input.request = json!({"n": 4});
    assert_eq!(set.evaluate(&input).unwrap().action, Action::Flag);
    input.request = json!({"n": "four"});
    assert!(matches!(
        set.evaluate(&input),
        Err(EvalError::Engine { .. })
    ));
}

#[test]
fn test_files_are_not_served_and_run_as_tests() {
    let dir = dir_with(&[
        (
            "p.rego",
            "package govgate\n\ndeny contains \"x\" if {\n\tinput.caller == \"x\"\n}\n\nflag contains \"y\" if {\n\tinput.caller == \"z\"\n\tinput.sample < 2\n}\n",
        ),
        (
            "p_test.rego",
            "package govgate_test\n\nimport data.govgate\n\ntest_x if {\n\tgovgate.deny == {\"x\"} with input as {\"caller\": \"x\"}\n}\n\ntest_wrong if {\n\tgovgate.deny == {\"x\"} with input as {\"caller\": \"y\"}\n}\n\ntest_error if {\n\t1 / 0 == 1\n}\n",
        ),
    ]);
    let set = PolicySet::load(dir.path()).unwrap();
    let names: Vec<_> = set.content_hashes().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["p.rego"]);

    let report = run_tests(dir.path()).unwrap();
    let outcomes: Vec<_> = report
        .results
        .iter()
        .map(|r| (r.name.as_str(), r.outcome.clone()))
        .collect();
    assert_eq!(outcomes[0].0, "data.govgate_test.test_error");
    assert!(
        matches!(outcomes[0].1, TestOutcome::Error(_)),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes[1..],
        [
            (
                "data.govgate_test.test_wrong",
                TestOutcome::Fail("undefined".into())
            ),
            ("data.govgate_test.test_x", TestOutcome::Pass),
        ]
    );
    assert!(!report.passed());
    // Only the policy file is covered: no test got past the flag rule's
    // first statement.
    assert_eq!(report.coverage.len(), 1);
    let file = &report.coverage[0];
    assert_eq!(file.file, "p.rego");
    assert!(file.covered.contains(&4), "{file:?}");
    // A rule head counts as covered once the rule produced a value.
    assert_eq!(file.not_covered, [7, 9].into(), "{file:?}");
}
