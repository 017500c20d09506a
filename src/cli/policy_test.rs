//! `govgate policies test DIR`: runs the folder's `test_*` rules as
//! `opa test` does and prints each result and the policy lines covered.
//! Exit 0: every test passed; 1: a test failed or errored; 2: the folder
//! does not load or holds no test.

use super::print_out;
use crate::review::{TestError, TestOutcome, TestReport, run_tests};
use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

/// Runs the tests of `dir`; see the module docs for exit codes.
pub(super) fn run(dir: &Path) -> ExitCode {
    match run_tests(dir) {
        Ok(report) => {
            print_out(&render(&report));
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            let hint = match err {
                TestError::Load(_) => "",
                TestError::NoTests(_) => {
                    " (tests are rules named test_*, usually in *_test.rego files)"
                }
            };
            eprintln!("govgate: error: {err}{hint}");
            ExitCode::from(2)
        }
    }
}

/// The report as printed: one line per test, a summary, then coverage.
fn render(report: &TestReport) -> String {
    let mut out = String::new();
    let (mut passed, mut failed, mut errors) = (0, 0, 0);
    for result in &report.results {
        let (word, detail) = match &result.outcome {
            TestOutcome::Pass => {
                passed += 1;
                ("PASS ", String::new())
            }
            TestOutcome::Fail(got) => {
                failed += 1;
                ("FAIL ", format!(": {got}"))
            }
            TestOutcome::Error(message) => {
                errors += 1;
                ("ERROR", format!(": {message}"))
            }
        };
        let _ = writeln!(
            out,
            "{word} {}: {}{detail} ({:.1} ms)",
            result.file,
            result.name,
            result.took.as_secs_f64() * 1000.0
        );
    }
    let _ = writeln!(
        out,
        "{} tests: {passed} passed, {failed} failed, {errors} errors",
        report.results.len()
    );
    if !report.coverage.is_empty() {
        out.push_str("coverage of the policy lines:\n");
    }
    for file in &report.coverage {
        let lines = file.covered.len() + file.not_covered.len();
        let _ = write!(
            out,
            "  {:<28} {:5.1}% ({} of {lines} lines)",
            file.file,
            file.percent(),
            file.covered.len()
        );
        if !file.not_covered.is_empty() {
            let list: Vec<String> = file.not_covered.iter().map(u32::to_string).collect();
            let _ = write!(out, ", not covered: {}", list.join(", "));
        }
        out.push('\n');
    }
    out
}
