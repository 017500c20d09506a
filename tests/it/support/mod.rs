//! Test harness: real upstream servers and the real gateway binary on
//! 127.0.0.1 with ephemeral ports, a temp data directory per gateway.

pub mod audit;
pub mod client;
pub mod gateway;
pub mod governance;
pub mod upstream;

pub use client::{open, send};
pub use gateway::Gateway;
pub use upstream::TestUpstream;

/// Runs the independent Python verifier (tools/govgate_verify.py) with `args`.
pub fn python_verifier<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    let output = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tools/govgate_verify.py"
        ))
        .args(args)
        .output()
        .expect(
            "python3 runs (install the verifier's packages: pip install -r tools/requirements.txt)",
        );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "the verifier's packages are missing: pip install -r tools/requirements.txt\n{stderr}"
    );
    output
}
