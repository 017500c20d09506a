//! [`PolicySet`]: the loaded `*.rego` files, a prepared `regorus` engine and
//! one clone of it per evaluating thread.
//!
//! `regorus::Engine` is `Send + Sync` with the crate's `arc` feature, but
//! evaluation needs `&mut`. Each thread clones the prepared engine on its
//! first evaluation and then evaluates on its clone without any lock.
//! Measured (benches/policy_eval.rs, 8 threads on 2 cores): a clone per
//! thread was never slower than a fresh clone per evaluation (about 10 us
//! against 10 to 15 us per decision across runs), and about half of one
//! engine behind a mutex (about 20 us); on one thread a fresh clone per
//! evaluation adds about 1 us.
//!
//! Evaluation uses regorus' interpreter with strict builtin errors: a type
//! error in a rule is an [`EvalError`] and the caller's default applies.
//! regorus' compiled VM (`rvm` feature) measured about 4x faster, but it
//! treats an error inside a rule body as "this body did not match", so a
//! deny rule that errors would silently allow: not used.

use super::document::{InputDocument, to_value};
use super::error::{EvalError, PolicyError, locate};
use super::input::{PolicyInput, Stage};
use super::stages::{StageRules, index, stage_rules};
use super::verdict::{ReasonSets, Verdict};
use crate::decision::hex;
use regorus::{Engine, Value};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thread_local::ThreadLocal;

/// The rule sets, in precedence order.
const RULES: [(&str, Set); 3] = [
    ("data.govgate.deny", Set::Deny),
    ("data.govgate.hold", Set::Hold),
    ("data.govgate.flag", Set::Flag),
];

/// Wall-clock limit of one evaluation; a policy that runs longer fails
/// with [`EvalError::Engine`].
const EVAL_LIMIT: Duration = Duration::from_millis(100);

#[derive(Clone, Copy)]
enum Set {
    Deny,
    Hold,
    Flag,
}

/// The policies of one folder, ready to evaluate from many threads at
/// once. Reloading means loading a new `PolicySet` and swapping it in.
pub struct PolicySet {
    /// `(file name, SHA-256 hex)`, sorted by name.
    hashes: Vec<(String, String)>,
    /// Which rule sets any file declares; the others are always empty.
    #[cfg(test)]
    declared: [bool; 3],
    /// Which of those can fire at each stage; a stage where none can is
    /// not evaluated.
    stages: StageRules,
    /// The prepared engine each thread clones.
    template: Engine,
    /// Each thread's own clone.
    engines: ThreadLocal<RefCell<Engine>>,
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("files", &self.hashes)
            .finish_non_exhaustive()
    }
}

impl PolicySet {
    /// Loads every `*.rego` file of `dir` (not recursing) except the
    /// tests (`*_test.rego`, run by `govgate policies test`), parses it,
    /// checks that it is in package `govgate` (or below it), and evaluates
    /// the set once on sample inputs of both stages. Any failure names the
    /// file and line.
    pub fn load(dir: &Path) -> Result<PolicySet, PolicyError> {
        let sources = read_sources(dir)?;
        if sources.is_empty() {
            return Err(PolicyError::Empty(dir.to_path_buf()));
        }
        PolicySet::from_sources(&sources)
    }

    /// Compiles policies given as `(file name, text)` pairs, sorted by
    /// name (a proposed set's files, as the ledger holds them), with the
    /// checks of [`PolicySet::load`]. An empty list is refused.
    pub fn from_sources(sources: &[(String, String)]) -> Result<PolicySet, PolicyError> {
        if sources.is_empty() {
            return Err(PolicyError::Empty(PathBuf::from("(policy set)")));
        }
        let mut engine = new_engine();
        let mut hashes = Vec::with_capacity(sources.len());
        let mut in_root = Vec::new();
        for (name, text) in sources {
            let (name, text) = (name.clone(), text.clone());
            hashes.push((name.clone(), hex(&Sha256::digest(text.as_bytes()))));
            let package = engine
                .add_policy(name.clone(), text.clone())
                .map_err(|e| parse_error(&name, &e))?;
            if package == "data.govgate" {
                in_root.push(name.clone());
            } else if !package.starts_with("data.govgate.") {
                return Err(PolicyError::Parse {
                    line: package_line(&text),
                    file: name,
                    message: format!(
                        "package {} is outside govgate",
                        package.trim_start_matches("data.")
                    ),
                });
            }
        }

        // Only files of package `govgate` itself can define its rule sets.
        let mut declared = [false; 3];
        for (slot, rule) in declared.iter_mut().zip(["deny", "hold", "flag"]) {
            for name in &in_root {
                let found = engine
                    .has_declared_rule_rooted_at(name, rule)
                    .map_err(|e| parse_error(name, &e))?;
                *slot |= found;
            }
        }

        let stages = stage_rules(&mut engine, declared);

        // The trials run on the template itself, which also prepares it:
        // clones of a prepared engine evaluate without preparing again.
        for trial in trial_inputs() {
            // Every declared set at both stages: a set that loads must not
            // fail however it is evaluated.
            let value = to_value(&trial);
            if let Err(e) = value.and_then(|value| eval_on(&mut engine, declared, &value)) {
                let stage = trial.stage.as_str();
                let text = match &e {
                    EvalError::Engine { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                let (file, line, message) = locate(&text);
                return Err(PolicyError::Trial {
                    file: file.unwrap_or_else(|| "*".to_string()),
                    line,
                    stage,
                    message,
                });
            }
        }
        Ok(PolicySet {
            hashes,
            #[cfg(test)]
            declared,
            stages,
            template: engine,
            engines: ThreadLocal::new(),
        })
    }

    /// `(file name, SHA-256 of its bytes as lower-case hex)` for every
    /// loaded file, sorted by name: what a ledger entry records to say
    /// which policies decided.
    pub fn content_hashes(&self) -> Vec<(String, String)> {
        self.hashes.clone()
    }

    /// Whether any rule can fire at `stage`. A stage where none can is
    /// allowed with empty sets without evaluating, which is what
    /// evaluating gives.
    pub fn judges(&self, stage: Stage) -> bool {
        self.stages[index(stage)].contains(&true)
    }

    /// Evaluates the policies on `input`. Safe to call from many threads
    /// at once; each thread evaluates on its own clone of the engine.
    pub fn evaluate(&self, input: &PolicyInput) -> Result<Verdict, EvalError> {
        if !self.judges(input.stage) {
            return Ok(Verdict::from_sets(ReasonSets::default()));
        }
        self.eval_sets(self.stages[index(input.stage)], &to_value(input)?)
    }

    /// Evaluates the policies on a document built once per request (the
    /// response stage reuses the request's conversion).
    pub fn evaluate_document(&self, document: &InputDocument) -> Result<Verdict, EvalError> {
        let stage = document.input().stage;
        if !self.judges(stage) {
            return Ok(Verdict::from_sets(ReasonSets::default()));
        }
        self.eval_sets(self.stages[index(stage)], document.value()?)
    }

    /// Which rule sets (deny, hold, flag) are evaluated at `stage`.
    #[cfg(test)]
    pub(super) fn sets_at(&self, stage: Stage) -> [bool; 3] {
        self.stages[index(stage)]
    }

    /// Evaluates every declared rule set, skipping nothing: what the
    /// stage analysis is checked against.
    #[cfg(test)]
    pub(super) fn evaluate_unskipped(&self, input: &PolicyInput) -> Result<Verdict, EvalError> {
        self.eval_sets(self.declared, &to_value(input)?)
    }

    fn eval_sets(&self, sets: [bool; 3], value: &Value) -> Result<Verdict, EvalError> {
        let cell = self.engines.get_or(|| RefCell::new(self.template.clone()));
        // INVARIANT: nothing below calls back into `evaluate`, so the
        // thread's engine is never borrowed twice; a failed borrow would be
        // a bug, reported as an error rather than a panic.
        let mut engine = cell.try_borrow_mut().map_err(|_| EvalError::Engine {
            rule: "data.govgate",
            message: "engine already in use on this thread".to_string(),
        })?;
        eval_on(&mut engine, sets, value)
    }
}

/// Which files of a policy folder [`rego_files`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Files {
    /// The policies the gateway serves: `*.rego` except `*_test.rego`.
    Serving,
    /// Those and the tests, as `govgate policies test` loads them.
    WithTests,
}

/// Whether `name` is a test file (`*_test.rego`), never served.
pub(super) fn is_test_file(name: &str) -> bool {
    name.ends_with("_test.rego")
}

/// The `*.rego` files directly in `dir` (no recursion), sorted by path.
pub(super) fn rego_files(dir: &Path, which: Files) -> Result<Vec<PathBuf>, PolicyError> {
    let read_err = |source| PolicyError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let test = name.as_deref().is_some_and(is_test_file);
        if path.extension().is_some_and(|e| e == "rego")
            && path.is_file()
            && (which == Files::WithTests || !test)
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The served `*.rego` files of `dir` as `(file name, text)`, sorted by
/// name: what [`PolicySet::from_sources`] compiles and a proposal records.
pub fn read_sources(dir: &Path) -> Result<Vec<(String, String)>, PolicyError> {
    let mut sources = Vec::new();
    for path in rego_files(dir, Files::Serving)? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read {
            path: path.clone(),
            source,
        })?;
        sources.push((name, text));
    }
    Ok(sources)
}

/// An engine with the evaluation time limit every policy runs under.
pub(super) fn new_engine() -> Engine {
    let mut engine = Engine::new();
    engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
        limit: EVAL_LIMIT,
        check_interval: NonZeroU32::MIN.saturating_add(63),
    });
    engine
}

/// Evaluates the rule sets marked in `evaluated` on `engine`.
fn eval_on(engine: &mut Engine, evaluated: [bool; 3], input: &Value) -> Result<Verdict, EvalError> {
    engine.set_input(input.clone());
    let mut sets = ReasonSets::default();
    for ((rule, which), declared) in RULES.into_iter().zip(evaluated) {
        if !declared {
            continue;
        }
        let result = engine
            .eval_rule(rule.to_string())
            .map_err(|e| EvalError::Engine {
                rule,
                message: format!("{e:#}"),
            })?;
        let reasons = reasons(rule, &result)?;
        match which {
            Set::Deny => sets.deny = reasons,
            Set::Hold => sets.hold = reasons,
            Set::Flag => sets.flag = reasons,
        }
    }
    Ok(Verdict::from_sets(sets))
}

/// A rule set's value as reasons: undefined is empty, a set of strings is
/// taken as is, anything else is the policy's mistake.
fn reasons(rule: &'static str, value: &Value) -> Result<BTreeSet<String>, EvalError> {
    match value {
        Value::Undefined => Ok(BTreeSet::new()),
        Value::Set(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.to_string()),
                other => Err(EvalError::Shape {
                    rule,
                    got: format!("a set holding {}", kind(other)),
                }),
            })
            .collect(),
        other => Err(EvalError::Shape {
            rule,
            got: kind(other).to_string(),
        }),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Set(_) => "a set",
        Value::Object(_) => "an object",
        Value::Undefined => "undefined",
    }
}

fn parse_error(name: &str, err: &anyhow::Error) -> PolicyError {
    let (file, line, message) = locate(&format!("{err:#}"));
    PolicyError::Parse {
        file: file.unwrap_or_else(|| name.to_string()),
        line,
        message,
    }
}

/// The 1-based line of the `package` statement.
fn package_line(text: &str) -> Option<u32> {
    let index = text
        .lines()
        .position(|l| l.trim_start().starts_with("package"))?;
    u32::try_from(index + 1).ok()
}

/// Inputs every policy set must evaluate without error: a KServe V2 and an
/// OpenAI-style request, their answers, and bodies that are not JSON.
fn trial_inputs() -> Vec<PolicyInput> {
    use serde_json::json;
    let id = "00000000000000000000000000000000";
    let kserve = PolicyInput::request(
        "trial-model",
        "v1",
        "high",
        "trial-caller",
        id,
        json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 1.0]}]}),
    );
    let openai = PolicyInput::request(
        "trial-model",
        "v1",
        "low",
        "svc-trial",
        id,
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    );
    let opaque = PolicyInput::request("trial-model", "v1", "", "", id, serde_json::Value::Null);
    let mut out = vec![kserve.clone(), openai.clone(), opaque.clone()];
    out.push(kserve.into_response(
        200,
        json!({"model_name": "m", "outputs": [{"name": "score", "shape": [1], "datatype": "FP32", "data": [0.5]}]}),
    ));
    out.push(openai.into_response(
        200,
        json!({"choices": [{"message": {"role": "assistant", "content": "hello"}}]}),
    ));
    out.push(opaque.into_response(502, serde_json::Value::Null));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_inputs_convert_as_serialized() {
        for input in trial_inputs() {
            let direct = to_value(&input).unwrap();
            let via_json = Value::from(serde_json::to_value(&input).unwrap());
            assert_eq!(direct, via_json, "{:?}", input.stage);
        }
    }
}
