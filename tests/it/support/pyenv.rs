//! The Python interpreter the tests run tools/govgate_verify.py with: a
//! virtual environment under the target directory
//! (`<target>/govgate-test-python`), created by the first test that needs
//! it and filled from tools/requirements-test.txt (the verifier's
//! tools/requirements.txt and the tests' own packages, e.g. jsonschema for
//! the OSCAL check), so `cargo test` needs no pip install by hand
//! (Debian's own Python refuses one: PEP 668).
//!
//! Test processes run in parallel (nextest starts one per test), so the
//! environment is built under an exclusive file lock and marked complete by
//! a stamp holding the requirements' hash: a changed requirements file
//! rebuilds it, a half-built one (a killed run) is never used. Provisioning
//! never skips: when it fails, every test that needs the verifier fails
//! with one message saying what was tried and how to fix it.
//!
//! `GOVGATE_TEST_PYTHON=/path/to/python3` uses that interpreter instead (it
//! must have the packages of tools/requirements-test.txt), for machines that
//! cannot reach a package index.

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/requirements-test.txt");
/// The file REQUIREMENTS includes (`-r`): hashed too.
const VERIFIER_REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/requirements.txt");
const VERIFIER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/govgate_verify.py");
/// The interpreter the environment is made from.
const BASE: &str = "python3";
/// Overrides the environment with an interpreter of the user's.
const OVERRIDE: &str = "GOVGATE_TEST_PYTHON";
const STAMP: &str = "govgate-requirements.sha256";

/// The interpreter to run the verifier with, provisioned on first use in
/// this process; panics with what was tried and how to fix it when there
/// is none.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(find_or_provision) {
        Ok(python) => python.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// Where the environment lives: beside the profile directories of the
/// target directory the tests were built in (`CARGO_TARGET_DIR` or
/// `target/`), so every profile shares it and `cargo clean` removes it.
pub fn dir() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_govgate"));
    let target = binary
        .parent()
        .and_then(Path::parent)
        .expect("the binary lies in <target>/<profile>/");
    target.join("govgate-test-python")
}

fn find_or_provision() -> Result<PathBuf, String> {
    if let Some(python) = std::env::var_os(OVERRIDE) {
        let python = PathBuf::from(python);
        let mut tried = Vec::new();
        return match run(&mut tried, &python, &[VERIFIER, "selftest"]) {
            Ok(_) => Ok(python),
            Err(()) => Err(failure(
                &tried,
                &format!(
                    "{OVERRIDE} names an interpreter that cannot run the verifier: install the \
                     packages into it ({} -m pip install -r tools/requirements-test.txt), or unset \
                     {OVERRIDE} to let the tests build their own environment",
                    python.display()
                ),
            )),
        };
    }
    let dir = dir();
    let lock_path = dir.with_extension("lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| format!("cannot open {}: {err}", lock_path.display()))?;
    // Held until this function returns: one process builds, the others
    // wait here and then find the stamp. (File::lock is Rust 1.89, newer
    // than the manifest's rust-version, but Cargo.lock's dependencies
    // already need Rust 1.95.)
    #[allow(clippy::incompatible_msrv)]
    lock.lock()
        .map_err(|err| format!("cannot lock {}: {err}", lock_path.display()))?;
    let python = dir.join("bin").join("python");
    let wanted = requirements_hash()?;
    if is_ready(&dir, &python, &wanted) {
        return Ok(python);
    }
    provision(&dir, &python)?;
    std::fs::write(dir.join(STAMP), &wanted)
        .map_err(|err| format!("cannot write {}: {err}", dir.join(STAMP).display()))?;
    Ok(python)
}

fn requirements_hash() -> Result<String, String> {
    let mut hash = Sha256::new();
    for file in [REQUIREMENTS, VERIFIER_REQUIREMENTS] {
        let text = std::fs::read(file).map_err(|err| format!("{file}: {err}"))?;
        hash.update(Sha256::digest(&text));
    }
    let mut hex = String::with_capacity(64);
    for byte in hash.finalize() {
        let _ = write!(hex, "{byte:02x}");
    }
    Ok(hex)
}

/// The stamp matches and the interpreter still starts (a venv breaks when
/// the Python it was made from is removed or upgraded).
fn is_ready(dir: &Path, python: &Path, wanted: &str) -> bool {
    std::fs::read_to_string(dir.join(STAMP)).is_ok_and(|stamp| stamp == wanted)
        && Command::new(python)
            .args(["-c", ""])
            .output()
            .is_ok_and(|output| output.status.success())
}

/// Builds the environment from scratch. Tries `python3 -m venv` (with pip,
/// from ensurepip); where ensurepip is missing (Debian without
/// python3-venv), an environment without pip filled by the base
/// interpreter's own pip (`pip --python`).
fn provision(dir: &Path, python: &Path) -> Result<(), String> {
    let mut tried = Vec::new();
    let dir_arg = dir.to_str().ok_or("the target directory is not UTF-8")?;
    let requirements = ["install", "--no-input", "--disable-pip-version-check", "-r"];
    remove(dir)?;
    let installed = if run(&mut tried, Path::new(BASE), &["-m", "venv", dir_arg]).is_ok() {
        let mut args = vec!["-m", "pip"];
        args.extend(requirements);
        args.push(REQUIREMENTS);
        run(&mut tried, python, &args)
    } else {
        remove(dir)?;
        let bare = ["-m", "venv", "--without-pip", dir_arg];
        if run(&mut tried, Path::new(BASE), &bare).is_err() {
            return Err(failure(&tried, &fix()));
        }
        let python_arg = python.to_str().ok_or("the target directory is not UTF-8")?;
        let mut args = vec!["-m", "pip", "--python", python_arg];
        args.extend(requirements);
        args.push(REQUIREMENTS);
        run(&mut tried, Path::new(BASE), &args)
    };
    if installed.is_err() || run(&mut tried, python, &[VERIFIER, "selftest"]).is_err() {
        return Err(failure(&tried, &fix()));
    }
    Ok(())
}

fn remove(dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {err}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Runs `program args`, noting the command and, when it fails, why, in
/// `tried`.
fn run(tried: &mut Vec<String>, program: &Path, args: &[&str]) -> Result<Output, ()> {
    let command = format!("{} {}", program.display(), args.join(" "));
    match Command::new(program).args(args).output() {
        Ok(output) if output.status.success() => {
            tried.push(format!("{command}: ok"));
            Ok(output)
        }
        Ok(output) => {
            let said = String::from_utf8_lossy(&output.stderr).into_owned()
                + &String::from_utf8_lossy(&output.stdout);
            tried.push(format!("{command}: {}\n{}", output.status, tail(&said)));
            Err(())
        }
        Err(err) => {
            tried.push(format!("{command}: cannot run: {err}"));
            Err(())
        }
    }
}

/// The last lines of `text`, indented: where pip and venv say what went
/// wrong.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let from = lines.len().saturating_sub(12);
    lines[from..]
        .iter()
        .map(|line| format!("      {line}\n"))
        .collect()
}

fn fix() -> String {
    format!(
        "python3 (Python 3.11 or later) with its venv module and pip is needed: on Debian, \
         `apt-get install python3-venv python3-pip`; the package index must be reachable for \
         tools/requirements-test.txt. Or point {OVERRIDE} at a python3 that has those packages."
    )
}

fn failure(tried: &[String], fix: &str) -> String {
    let mut message = format!(
        "the Python verifier's environment ({}) could not be set up for the tests that run \
         tools/govgate_verify.py.\ntried:\n",
        dir().display()
    );
    for step in tried {
        let _ = writeln!(message, "  {step}");
    }
    let _ = write!(message, "fix: {fix}");
    message
}
