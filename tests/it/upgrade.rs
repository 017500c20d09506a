//! Ledgers written by earlier versions verify unchanged with today's code:
//! the bundles in tests/data/upgrade/ (their README says how they were
//! made), by both verifiers.

use crate::support::audit::both_accept_bundle;
use std::path::PathBuf;

/// Bundles written by the code before streamed decisions had two entries.
fn before_stream_entries(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/upgrade/v0.1-a2c4271")
        .join(name)
}

fn vkey() -> String {
    format!("@{}", before_stream_entries("log.vkey").display())
}

#[test]
fn bundles_from_before_stream_entries_verify_with_both_verifiers() {
    let (rust, python) = both_accept_bundle(&vkey(), &before_stream_entries("bundle-full"));
    assert!(
        rust.contains("bundle ok: origin govgate.demo/local, entries 0..21 (21 checked), checkpoint of size 21, 7 payloads"),
        "{rust}"
    );
    assert!(!rust.contains("open streams"), "{rust}");
    assert!(
        python.starts_with("OK bundle origin=govgate.demo/local from=0 to=21 payloads=7"),
        "{python}"
    );

    let (rust, python) =
        both_accept_bundle(&vkey(), &before_stream_entries("bundle-model-support-chat"));
    assert!(
        rust.contains("sparse bundle (model=support-chat) ok: origin govgate.demo/local, entries 0..21 (7 checked), checkpoint of size 21, 3 payloads"),
        "{rust}"
    );
    assert!(
        python.starts_with("OK sparse bundle origin=govgate.demo/local from=0 to=21 size=21 entries=7 filter=[model=support-chat] payloads=3"),
        "{python}"
    );
}

#[test]
fn the_whole_old_log_verifies_as_a_log_with_the_independent_verifier() {
    let bundle = before_stream_entries("bundle-full");
    let output = crate::support::python_verifier(&[
        "log".as_ref(),
        "--vkey".as_ref(),
        vkey().as_ref(),
        "--entries".as_ref(),
        bundle.join("entries.jsonl").as_os_str(),
        "--checkpoint".as_ref(),
        bundle.join("checkpoint.txt").as_os_str(),
    ]);
    let said = crate::support::audit::said(&output);
    assert!(output.status.success(), "{said}");
    assert_eq!(
        said,
        "OK log origin=govgate.demo/local size=21 entries=21 rotations=0\n"
    );
}
