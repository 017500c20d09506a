//! `opa test` for a policy folder: every rule named `test_*` (in any
//! package, usually in `*_test.rego` files beside the policies) is
//! evaluated, with the `with input as ...` mocks its body carries, and
//! passes when it is `true`; the policy lines the tests evaluated are
//! reported from regorus' coverage.

use super::engine::{Files, is_test_file, new_engine, rego_files};
use super::error::{PolicyError, locate};
use regorus::Value;
use regorus::unstable::{Expr, Rule, RuleHead};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// How one test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestOutcome {
    /// The rule is `true`.
    Pass,
    /// The rule is undefined or not `true` (what it was).
    Fail(String),
    /// The rule could not be evaluated (the engine's message).
    Error(String),
}

/// One test rule and how it ended.
#[derive(Debug, Clone)]
pub struct TestResult {
    /// The file that defines it.
    pub file: String,
    /// Its full path, e.g. `data.govgate.test_alice_is_denied`.
    pub name: String,
    /// Pass, fail or error.
    pub outcome: TestOutcome,
    /// Wall time of its evaluation.
    pub took: Duration,
}

/// The lines of one policy file (not a test file) that the tests
/// evaluated, and those they could have but did not.
#[derive(Debug, Clone)]
pub struct FileCoverage {
    /// The file name.
    pub file: String,
    /// Lines evaluated by at least one test.
    pub covered: BTreeSet<u32>,
    /// Lines holding an expression no test evaluated.
    pub not_covered: BTreeSet<u32>,
}

impl FileCoverage {
    /// The covered share of the file's lines with an expression, in percent.
    pub fn percent(&self) -> f64 {
        let all = self.covered.len() + self.not_covered.len();
        if all == 0 {
            return 100.0;
        }
        self.covered.len() as f64 * 100.0 / all as f64
    }
}

/// The results of `govgate policies test`.
#[derive(Debug, Clone)]
pub struct TestReport {
    /// Each test, in file then name order.
    pub results: Vec<TestResult>,
    /// Coverage of the policy files (test files left out), by name.
    pub coverage: Vec<FileCoverage>,
}

impl TestReport {
    /// Whether every test passed.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.outcome == TestOutcome::Pass)
    }
}

/// Why the tests of a folder could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// A file could not be read or does not parse.
    #[error(transparent)]
    Load(#[from] PolicyError),
    /// The folder holds no `test_*` rule.
    #[error("no test_* rule in {0}")]
    NoTests(std::path::PathBuf),
}

/// Loads every `*.rego` file of `dir`, tests included, and runs each
/// `test_*` rule once, collecting coverage over all of them.
pub fn run_tests(dir: &Path) -> Result<TestReport, TestError> {
    let files = rego_files(dir, Files::WithTests)?;
    let mut engine = new_engine();
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.clone(),
            source,
        })?;
        engine.add_policy(name.clone(), text).map_err(|e| {
            let (file, line, message) = locate(&format!("{e:#}"));
            PolicyError::Parse {
                file: file.unwrap_or(name),
                line,
                message,
            }
        })?;
    }
    let tests = test_rules(&mut engine);
    if tests.is_empty() {
        return Err(TestError::NoTests(dir.to_path_buf()));
    }
    engine.set_enable_coverage(true);
    let mut results = Vec::with_capacity(tests.len());
    for (file, name) in tests {
        let started = Instant::now();
        let outcome = match engine.eval_rule(name.clone()) {
            Ok(Value::Bool(true)) => TestOutcome::Pass,
            Ok(Value::Undefined) => TestOutcome::Fail("undefined".to_string()),
            Ok(other) => TestOutcome::Fail(other.to_string()),
            Err(e) => {
                let (_, _, message) = locate(&format!("{e:#}"));
                TestOutcome::Error(message)
            }
        };
        results.push(TestResult {
            file,
            name,
            outcome,
            took: started.elapsed(),
        });
    }
    let coverage = match engine.get_coverage_report() {
        Ok(report) => report
            .files
            .into_iter()
            .filter(|f| !is_test_file(&f.path))
            .map(|f| FileCoverage {
                file: f.path,
                covered: f.covered,
                not_covered: f.not_covered,
            })
            .collect(),
        // Coverage is a report on the side; the results stand without it.
        Err(_) => Vec::new(),
    };
    Ok(TestReport { results, coverage })
}

/// `(file, data.package.test_name)` of every `test_*` rule, each once,
/// sorted by file then name.
fn test_rules(engine: &mut regorus::Engine) -> Vec<(String, String)> {
    let mut out = BTreeMap::new();
    for module in engine.get_modules() {
        let Some(package) = dotted(&module.package.refr) else {
            continue;
        };
        let file = module.package.span.source.file().clone();
        for rule in &module.policy {
            let Rule::Spec { head, .. } = rule.as_ref() else {
                continue;
            };
            // A test is a plain rule: `test_x if { ... }`, not a function.
            let refr = match head {
                RuleHead::Compr { refr, .. } => refr,
                RuleHead::Set { .. } | RuleHead::Func { .. } => continue,
            };
            let Some(name) = dotted(refr) else { continue };
            if name.starts_with("test_") {
                let full = format!("data.{package}.{name}");
                out.insert((file.clone(), full), ());
            }
        }
    }
    out.into_keys().collect()
}

/// `a.b.c` of a plain dotted reference.
fn dotted(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Var { span, .. } => Some(span.text().to_string()),
        Expr::RefDot { refr, field, .. } => Some(format!("{}.{}", dotted(refr)?, field.0.text())),
        _ => None,
    }
}
