//! The fuzz targets of `govgate::fuzzing` on stable Rust, one test each:
//! every seed in `fuzz/corpus/<target>/`, then mutations of the seeds
//! (and of inputs that reached a new behaviour) from a fixed-seed PRNG for
//! `GOVGATE_FUZZ_SECONDS` per target (default 2).
//!
//! A failing input is printed as hex and written to
//! `target/fuzz-crashes/<target>-<hash>.bin`; `GOVGATE_FUZZ_INPUT=<file>`
//! runs just that file. An input that runs longer than
//! `GOVGATE_FUZZ_HANG_SECONDS` (default 30) is written the same way and
//! the process aborts. docs/fuzzing.md has the details.

mod mutate;

use govgate::fuzzing::{TARGETS, Target};
use mutate::{Mutator, Rng};
use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// The longest input the mutator makes (above the fuzz gateway's 16 KiB
/// body limit, so `body_too_large` is reached).
const MAX_LEN: usize = 24 * 1024;

/// Inputs kept for reaching a new label, at most.
const MAX_POOL: usize = 4096;

#[test]
fn routing() {
    run("routing");
}

#[test]
fn openai_splice() {
    run("openai_splice");
}

#[test]
fn kserve_body() {
    run("kserve_body");
}

#[test]
fn selector() {
    run("selector");
}

#[test]
fn jcs() {
    run("jcs");
}

#[test]
fn grpc_message() {
    run("grpc_message");
}

#[test]
fn every_target_has_a_test_and_a_corpus() {
    let tested = [
        "routing",
        "openai_splice",
        "kserve_body",
        "selector",
        "jcs",
        "grpc_message",
    ];
    let names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, tested);
    for name in names {
        assert!(!corpus(name).is_empty(), "no seeds for {name}");
        let cargo_fuzz = root().join("fuzz/fuzz_targets").join(format!("{name}.rs"));
        assert!(cargo_fuzz.is_file(), "no {}", cargo_fuzz.display());
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn env_number(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text} is not a number")),
        Err(_) => default,
    }
}

/// The seeds of a target, in file-name order.
fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = root().join("fuzz/corpus").join(name);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

fn run(name: &str) {
    let target = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, target)| *target)
        .unwrap_or_else(|| panic!("no target {name}"));
    catch_panics();
    if let Ok(path) = std::env::var("GOVGATE_FUZZ_INPUT") {
        let input = std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
        if let Err(message) = execute(target, &input) {
            fail(name, &input, &message);
        }
        return;
    }
    let budget = Duration::from_secs_f64(env_number("GOVGATE_FUZZ_SECONDS", 2.0));
    let hang = Duration::from_secs_f64(env_number("GOVGATE_FUZZ_HANG_SECONDS", 30.0));
    let seed: u64 = match std::env::var("GOVGATE_FUZZ_SEED") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("GOVGATE_FUZZ_SEED={text} is not a whole number")),
        Err(_) => 0,
    };
    let watchdog = Watchdog::start(name, hang);
    let mut pool = corpus(name);
    let mut labels = HashSet::new();
    for input in &pool {
        labels.insert(watchdog.run(name, target, input));
    }
    let seeds = pool.len();
    let mut rng = Rng::new(seed ^ fnv(name.as_bytes()));
    let mutator = Mutator { max_len: MAX_LEN };
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < budget {
        let input = mutator.mutate(&mut rng, &pool);
        let label = watchdog.run(name, target, &input);
        runs += 1;
        if labels.insert(label) && pool.len() < MAX_POOL {
            pool.push(input);
        }
    }
    watchdog.stop();
    eprintln!(
        "fuzz {name}: {seeds} seeds, {runs} mutated inputs in {:.1} s, {} labels, {} inputs kept",
        start.elapsed().as_secs_f64(),
        labels.len(),
        pool.len() - seeds
    );
}

thread_local! {
    /// The first panic on this thread since the last input began: the
    /// target's own, or one in a task its runtime ran (which tokio catches).
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Notes every panic for the thread it happens on, then reports it as usual.
fn catch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANIC.with(|slot| {
                let mut slot = slot.borrow_mut();
                if slot.is_none() {
                    *slot = Some(info.to_string());
                }
            });
            previous(info);
        }));
    });
}

/// Runs one input; `Err` with the panic's message if anything panicked.
fn execute(target: Target, input: &[u8]) -> Result<String, String> {
    PANIC.with(|slot| slot.borrow_mut().take());
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| target(input)));
    let panicked = PANIC.with(|slot| slot.borrow_mut().take());
    match (result, panicked) {
        (Ok(label), None) => Ok(label),
        (_, Some(message)) => Err(message),
        (Err(_), None) => Err("panicked".to_owned()),
    }
}

/// Writes the input where `docs/fuzzing.md` says, and fails the test.
fn fail(name: &str, input: &[u8], message: &str) -> ! {
    let path = save_crash(name, input);
    panic!(
        "fuzz target {name} failed: {message}\ninput ({} bytes, saved as {}):\n{}",
        input.len(),
        path.display(),
        hex(input)
    );
}

fn save_crash(name: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap_or(Path::new("target"))
        .join("fuzz-crashes");
    let path = dir.join(format!("{name}-{:016x}.bin", fnv(input)));
    if let Err(err) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input)) {
        eprintln!("cannot save {}: {err}", path.display());
    }
    path
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// FNV-1a, for file names and per-target seeds.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The input being run and when it began.
type Running = Option<(Instant, Vec<u8>)>;

/// Aborts the process if one input runs longer than the hang limit: a
/// stuck thread cannot be stopped, but its input can be kept.
struct Watchdog {
    current: Arc<Mutex<Running>>,
    done: Arc<AtomicBool>,
}

impl Watchdog {
    fn start(name: &str, hang: Duration) -> Self {
        let current: Arc<Mutex<Running>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let (watched, stopped, name) = (current.clone(), done.clone(), name.to_owned());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let guard = watched.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((began, input)) = guard.as_ref()
                    && began.elapsed() > hang
                {
                    let path = save_crash(&name, input);
                    eprintln!(
                        "fuzz target {name}: an input ran over {hang:?} (saved as {}):\n{}",
                        path.display(),
                        hex(input)
                    );
                    std::process::abort();
                }
            }
        });
        Self { current, done }
    }

    fn run(&self, name: &str, target: Target, input: &[u8]) -> String {
        *self.current.lock().unwrap() = Some((Instant::now(), input.to_vec()));
        let result = execute(target, input);
        *self.current.lock().unwrap() = None;
        result.unwrap_or_else(|message| {
            self.stop();
            fail(name, input, &message)
        })
    }

    fn stop(&self) {
        self.done.store(true, Ordering::Relaxed);
    }
}
