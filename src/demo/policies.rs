//! The review policies `govgate demo` enforces: the example policies
//! shipped in the repository's `policies/` folder, built into the binary
//! and written to the demo's data directory, so the demo runs anywhere.
//!
//! `high_risk_review.rego` is left out: it holds every answer of a
//! high-risk `credit-scoring` version, and the demo's versions are high
//! risk (the default), so it would hold every credit score and leave
//! nothing for the other policies to show.

use std::path::Path;

/// `(file name, contents)` of each policy the demo enforces.
pub const DEMO_POLICIES: [(&str, &str); 3] = [
    (
        "caller_groups.rego",
        include_str!("../../policies/caller_groups.rego"),
    ),
    (
        "credit_borderline.rego",
        include_str!("../../policies/credit_borderline.rego"),
    ),
    (
        "audit_sample.rego",
        include_str!("../../policies/audit_sample.rego"),
    ),
];

/// A caller the demo's `caller_groups.rego` lets use `credit-scoring`.
pub const LENDING_CALLER: &str = "svc-loans";

/// Writes the demo's policies into `dir`, unless `dir` already exists: a
/// policy edited there (to try a reload) is kept when the demo restarts
/// on the same data directory.
pub fn write_policies(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    for (name, text) in DEMO_POLICIES {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{CREDIT_MODEL, credit_score};
    use crate::review::{Action, PolicyInput, PolicySet};
    use serde_json::json;

    /// The verdict of the demo's policies on one credit-scoring call.
    fn verdict(set: &PolicySet, caller: &str, row: [f64; 3]) -> Action {
        let request = json!({"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": row}]});
        // A decision id outside the 5 % audit sample, so only the rules under test fire.
        let id = (0u32..)
            .map(|n| format!("{n:032x}"))
            .find(|id| crate::review::sample_of(id) >= 0.05)
            .unwrap();
        let input = PolicyInput::request(CREDIT_MODEL, "1", "high", caller, id, request);
        let asked = set.evaluate(&input).unwrap();
        if asked.action == Action::Deny {
            return asked.action;
        }
        let answer = json!({"model_name": CREDIT_MODEL, "outputs": [
            {"name": "score", "datatype": "FP32", "shape": [1, 1], "data": [credit_score(&row)]}]});
        set.evaluate(&input.into_response(200, answer))
            .unwrap()
            .action
    }

    #[test]
    fn the_tour_calls_get_the_verdicts_it_announces() {
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies");
        write_policies(&policies).unwrap();
        let set = PolicySet::load(&policies).unwrap();
        assert_eq!(set.content_hashes().len(), DEMO_POLICIES.len());
        // The tour's calls: the first batch's rows, the receipt call, the
        // held borderline applicant, and the same call from outside lending.
        for row in [
            [45.0, 1500.0, 12.0],
            [23.0, 12000.0, 48.0],
            [30.0, 4000.0, 24.0],
        ] {
            assert_eq!(verdict(&set, LENDING_CALLER, row), Action::Allow, "{row:?}");
        }
        assert_eq!(
            verdict(&set, LENDING_CALLER, [28.0, 5000.0, 30.0]),
            Action::Hold
        );
        assert_eq!(verdict(&set, "alice", [30.0, 4000.0, 24.0]), Action::Deny);
    }

    #[test]
    fn an_existing_policy_folder_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mine.rego"), "package govgate\n").unwrap();
        write_policies(dir.path()).unwrap();
        assert!(!dir.path().join("caller_groups.rego").exists());
    }
}
