//! Test harness: real upstream servers and the real gateway binary on
//! 127.0.0.1 with ephemeral ports, a temp data directory per gateway.

pub mod anthropic;
pub mod audit;
pub mod blocks;
pub mod client;
pub mod filled;
pub mod gateway;
pub mod governance;
pub mod grpc;
pub mod load;
pub mod postgres;
pub mod pyenv;
pub mod responses;
pub mod sse;
pub mod upstream;
pub mod webdriver;

pub use client::{open, send};
pub use gateway::Gateway;
pub use upstream::TestUpstream;

/// Runs the independent Python verifier (tools/govgate_verify.py) with
/// `args`, with the interpreter of [`pyenv::python`] (a virtual environment
/// the tests provision themselves).
pub fn python_verifier<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    let python = pyenv::python();
    let output = std::process::Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tools/govgate_verify.py"
        ))
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("{} could not run: {err}", python.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "the verifier's packages are missing from {}: {stderr}",
        python.display()
    );
    output
}

/// The target directory the tests were built in (beside the binary's
/// profile directory): where tests leave screenshots and PDFs.
pub fn target_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_BIN_EXE_govgate"))
        .parent()
        .and_then(std::path::Path::parent)
        .expect("the binary lies in <target>/<profile>/")
        .to_path_buf()
}
