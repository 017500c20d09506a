//! Policy evaluation per decision with the shipped `policies/`: one
//! evaluation at the request stage and one at the response stage (the
//! target is under 20 us each), the input conversion through
//! `serde_json::Value` for comparison, and the ways of sharing a prepared
//! engine between threads (`sharing/...`: 8 threads each evaluating 2000
//! times on the same prebuilt input; a clone per thread as `PolicySet`
//! does, one engine behind a mutex, a fresh clone per evaluation).
//!
//! `held_bytes`: the walk that counts a document against the body budget.
//!
//! `regex_match_request`: a one-rule policy using `regex.match`, against
//! `one_rule_floor`.
//!
//! Run: `cargo bench --bench policy_eval`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use govgate::review::{Action, InputDocument, PolicyInput, PolicySet, sample_of};
use regorus::{Engine, Value};
use serde_json::json;
use std::cell::RefCell;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thread_local::ThreadLocal;

/// The gateway binary's allocator (src/main.rs), so the figures are the
/// gateway's: evaluation allocates many small values.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const THREADS: usize = 8;
const PER_THREAD: usize = 2000;

fn policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// A decision id that is not in the audit sample, so the figures are for
/// the common path.
fn unsampled_id() -> String {
    (0u64..)
        .map(|i| format!("{i:032x}"))
        .find(|id| sample_of(id) >= 0.05)
        .expect("some id is outside the sample")
}

fn request() -> PolicyInput {
    PolicyInput::request(
        "credit-scoring",
        "v3",
        "high",
        "svc-loans",
        unsampled_id(),
        json!({"inputs": [{"name": "applicant", "shape": [1, 8], "datatype": "FP32",
            "data": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}]}),
    )
}

fn response() -> PolicyInput {
    request().into_response(
        200,
        json!({"model_name": "credit-scoring", "model_version": "v3",
            "outputs": [{"name": "score", "shape": [1], "datatype": "FP32", "data": [0.51]}]}),
    )
}

fn stages(c: &mut Criterion) {
    let set = PolicySet::load(&policies()).expect("shipped policies load");
    let req = request();
    let resp = response();
    assert_eq!(set.evaluate(&req).expect("evaluates").action, Action::Allow);
    assert_eq!(set.evaluate(&resp).expect("evaluates").action, Action::Hold);
    let mut denied = request();
    denied.caller = "alice".into();
    assert_eq!(
        set.evaluate(&denied).expect("evaluates").action,
        Action::Deny
    );

    // The common answer: a clear score from a version not under mandatory review.
    let mut released = request().into_response(
        200,
        json!({"model_name": "credit-scoring", "model_version": "v3",
            "outputs": [{"name": "score", "shape": [1], "datatype": "FP32", "data": [0.91]}]}),
    );
    released.risk_class = "limited".into();
    assert_eq!(
        set.evaluate(&released).expect("evaluates").action,
        Action::Allow
    );

    let mut group = c.benchmark_group("policy_eval");
    group.bench_function("request_allow", |b| {
        b.iter(|| set.evaluate(black_box(&req)))
    });
    group.bench_function("request_deny", |b| {
        b.iter(|| set.evaluate(black_box(&denied)))
    });
    group.bench_function("response_hold", |b| {
        b.iter(|| set.evaluate(black_box(&resp)))
    });
    group.bench_function("response_allow", |b| {
        b.iter(|| set.evaluate(black_box(&released)))
    });
    // The floor: one rule that never fires, as a measure of the engine's
    // fixed cost per evaluation.
    let floor_dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        floor_dir.path().join("floor.rego"),
        "package govgate\n\ndeny contains \"never\" if {\n\tinput.caller == \"nobody\"\n}\n",
    )
    .expect("writes");
    let floor = PolicySet::load(floor_dir.path()).expect("loads");
    group.bench_function("one_rule_floor", |b| {
        b.iter(|| floor.evaluate(black_box(&resp)))
    });
    // A policy with OPA's `regex.match` (a caller pattern, as in
    // docs/policies.md): the cost of a regular expression per evaluation.
    let regex_dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        regex_dir.path().join("callers.rego"),
        "package govgate\n\ndeny contains \"caller pattern\" if {\n\tinput.stage == \"request\"\n\t\
         not regex.match(`^svc-[a-z0-9-]+$`, input.caller)\n}\n",
    )
    .expect("writes");
    let regex = PolicySet::load(regex_dir.path()).expect("loads");
    assert_eq!(
        regex.evaluate(&req).expect("evaluates").action,
        Action::Allow
    );
    assert_eq!(
        regex.evaluate(&denied).expect("evaluates").action,
        Action::Deny
    );
    group.bench_function("regex_match_request", |b| {
        b.iter(|| regex.evaluate(black_box(&req)))
    });
    // One decision as the gateway makes it: the request stage, then the
    // response stage on the same request (the policy input built from the
    // request as the proxy has it).
    let answer = json!({"model_name": "credit-scoring", "model_version": "v3",
        "outputs": [{"name": "score", "shape": [1], "datatype": "FP32", "data": [0.91]}]});
    let mut common = request();
    common.risk_class = "limited".into();
    group.bench_function("decision_both_stages", |b| {
        b.iter(|| decide(&set, black_box(&common), &answer))
    });
    // The same with a larger request body (1 000 features, about 5 KB of
    // JSON), where converting the body dominates building the document.
    let mut large = common.clone();
    large.request = json!({"inputs": [{"name": "applicant", "shape": [1, 1000], "datatype": "FP32",
        "data": (0..1000).map(|i| f64::from(i) / 1000.0).collect::<Vec<_>>()}]});
    group.bench_function("decision_both_stages_1k_features", |b| {
        b.iter(|| decide(&set, black_box(&large), &answer))
    });
    // What the proxy adds per decision to count the document against the
    // body budget (`InputDocument::held_bytes`): a walk of the parsed body.
    for (name, body) in [("held_bytes", &common), ("held_bytes_1k_features", &large)] {
        let document = InputDocument::new(body.clone());
        group.bench_function(name, |b| b.iter(|| black_box(&document).held_bytes()));
    }
    group.bench_function("input_via_serde_json", |b| {
        b.iter(|| Value::from(serde_json::to_value(black_box(&resp)).expect("serializes")))
    });
    group.finish();
}

/// Both stages of one decision as the proxy makes them: the document is
/// built once from the request (cloned in, as the proxy builds it per
/// request) and the response stage reuses it.
fn decide(set: &PolicySet, request: &PolicyInput, answer: &serde_json::Value) -> Action {
    let document = InputDocument::new(request.clone());
    let asked = set.evaluate_document(&document).expect("evaluates").action;
    let answered = set
        .evaluate_document(&document.into_response(200, answer.clone()))
        .expect("evaluates")
        .action;
    asked.max(answered)
}

/// A prepared engine with the shipped policies, as `PolicySet` keeps it.
fn prepared() -> Engine {
    let mut engine = Engine::new();
    let mut files: Vec<_> = std::fs::read_dir(policies())
        .expect("policies folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rego"))
        // The tests are not served (PolicySet skips them too).
        .filter(|p| !p.to_string_lossy().ends_with("_test.rego"))
        .collect();
    files.sort();
    for path in files {
        engine.add_policy_from_file(&path).expect("parses");
    }
    engine.set_input(Value::new_object());
    engine
        .eval_rule("data.govgate.hold".to_string())
        .expect("prepares");
    engine
}

fn eval_all(engine: &mut Engine, input: &Value) {
    engine.set_input(input.clone());
    for rule in [
        "data.govgate.deny",
        "data.govgate.hold",
        "data.govgate.flag",
    ] {
        black_box(engine.eval_rule(rule.to_string()).expect("evaluates"));
    }
}

/// Runs `work` on THREADS threads, PER_THREAD times each, and returns the
/// wall time per evaluation for `iters` rounds.
fn threaded(iters: u64, work: Arc<dyn Fn() + Send + Sync>) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let work = work.clone();
                std::thread::spawn(move || {
                    for _ in 0..PER_THREAD {
                        work();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        total += start.elapsed() / (THREADS * PER_THREAD) as u32;
    }
    total
}

fn sharing(c: &mut Criterion) {
    let input = Value::from(serde_json::to_value(response()).expect("serializes"));
    let mut group = c.benchmark_group("sharing");
    group.sample_size(10);

    let template = Arc::new(prepared());
    let locals: Arc<ThreadLocal<RefCell<Engine>>> = Arc::new(ThreadLocal::new());
    group.bench_function("per_thread_clone", |b| {
        b.iter_custom(|iters| {
            let (template, locals, input) = (template.clone(), locals.clone(), input.clone());
            threaded(
                iters,
                Arc::new(move || {
                    let cell = locals.get_or(|| RefCell::new(Engine::clone(&template)));
                    eval_all(&mut cell.borrow_mut(), &input);
                }),
            )
        })
    });

    let shared = Arc::new(Mutex::new(prepared()));
    group.bench_function("one_engine_mutex", |b| {
        b.iter_custom(|iters| {
            let (shared, input) = (shared.clone(), input.clone());
            threaded(
                iters,
                Arc::new(move || {
                    let mut engine = shared.lock().expect("not poisoned");
                    eval_all(&mut engine, &input);
                }),
            )
        })
    });

    group.bench_function("clone_per_eval", |b| {
        b.iter_custom(|iters| {
            let (template, input) = (template.clone(), input.clone());
            threaded(
                iters,
                Arc::new(move || {
                    let mut engine = Engine::clone(&template);
                    eval_all(&mut engine, &input);
                }),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, stages, sharing);
criterion_main!(benches);
