//! regorus' compiled VM (`rvm` feature) against the interpreter the
//! gateway uses, on the shipped `policies/`: the three rule sets evaluated
//! on the same prebuilt input (`interpreter/...` on a prepared engine as
//! `PolicySet` keeps it, `vm/...` on a loaded program). At start it prints
//! what each gives for a deny rule whose body fails with an error, which
//! is why the gateway does not use the VM.
//!
//! Run: `cargo bench --bench policy_vm --features rvm-bench`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use govgate::review::{PolicyInput, sample_of};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::RegoVM;
use regorus::{Engine, Rc, Value};
use serde_json::json;
use std::hint::black_box;
use std::path::{Path, PathBuf};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RULES: [&str; 3] = [
    "data.govgate.deny",
    "data.govgate.hold",
    "data.govgate.flag",
];

fn engine_of(dir: &Path) -> Engine {
    let mut engine = Engine::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("policies folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rego"))
        .collect();
    files.sort();
    for path in files {
        engine.add_policy_from_file(&path).expect("parses");
    }
    engine
}

fn vm_of(engine: &mut Engine, rules: &[&str]) -> RegoVM {
    let policy = engine
        .compile_with_entrypoint(&Rc::from(rules[0]))
        .expect("compiles");
    let program = Compiler::compile_from_policy(&policy, rules).expect("compiles to a program");
    let mut vm = RegoVM::new();
    vm.load_program(program);
    vm.set_data(Value::new_object()).expect("data");
    vm
}

fn interpret(engine: &mut Engine, input: &Value) -> Vec<Value> {
    engine.set_input(input.clone());
    RULES
        .iter()
        .map(|rule| engine.eval_rule(rule.to_string()).expect("evaluates"))
        .collect()
}

fn run_vm(vm: &mut RegoVM, input: &Value) -> Vec<Value> {
    vm.set_input(input.clone());
    RULES
        .iter()
        .map(|rule| vm.execute_entry_point_by_name(rule).expect("executes"))
        .collect()
}

fn inputs() -> (Value, Value) {
    let id = (0u64..)
        .map(|i| format!("{i:032x}"))
        .find(|id| sample_of(id) >= 0.05)
        .expect("an id outside the sample");
    let request = PolicyInput::request(
        "credit-scoring",
        "v3",
        "high",
        "svc-loans",
        id,
        json!({"inputs": [{"name": "applicant", "shape": [1, 8], "datatype": "FP32",
            "data": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}]}),
    );
    let response = request.clone().into_response(
        200,
        json!({"model_name": "credit-scoring", "model_version": "v3",
            "outputs": [{"name": "score", "shape": [1], "datatype": "FP32", "data": [0.51]}]}),
    );
    let value = |input: &PolicyInput| Value::from(serde_json::to_value(input).expect("json"));
    (value(&request), value(&response))
}

/// What each engine gives for a deny rule that fails with an error.
fn erroring_deny() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("boom.rego"),
        "package govgate\n\ndeny contains \"boom\" if {\n\tinput.request.zero == 0\n\t1 / input.request.zero > 0\n}\n\ndeny contains \"to_number\" if {\n\tto_number(input.request.priority) > 5\n}\n",
    )
    .expect("writes");
    let input = Value::from(json!({"request": {"zero": 0, "priority": "high"}}));
    let mut engine = engine_of(dir.path());
    engine.set_input(input.clone());
    let interpreted = engine.eval_rule("data.govgate.deny".to_string());
    let mut vm = vm_of(&mut engine_of(dir.path()), &RULES[..1]);
    vm.set_input(input);
    let executed = vm.execute_entry_point_by_name("data.govgate.deny");
    let show = |result: anyhow::Result<Value>| match result {
        Ok(value) => format!("{value}"),
        Err(err) => {
            let text = format!("{err:#}");
            format!("error: {}", text.lines().last().unwrap_or_default())
        }
    };
    eprintln!(
        "a deny rule whose body fails: interpreter -> {}; vm -> {}",
        show(interpreted),
        show(executed.map_err(anyhow::Error::from))
    );
}

fn engines(c: &mut Criterion) {
    erroring_deny();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let (request, response) = inputs();
    let mut engine = engine_of(&dir);
    let mut vm = vm_of(&mut engine_of(&dir), &RULES);
    for input in [&request, &response] {
        assert_eq!(interpret(&mut engine, input), run_vm(&mut vm, input));
    }
    let mut group = c.benchmark_group("policy_vm");
    for (name, input) in [("request", &request), ("response_hold", &response)] {
        group.bench_function(format!("interpreter/{name}"), |b| {
            b.iter(|| interpret(&mut engine, black_box(input)))
        });
        group.bench_function(format!("vm/{name}"), |b| {
            b.iter(|| run_vm(&mut vm, black_box(input)))
        });
    }
    group.finish();
}

criterion_group!(benches, engines);
criterion_main!(benches);
