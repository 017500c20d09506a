//! Evidence from a running gateway: `govgate export --admin-url` downloads
//! a bundle (`GET /admin/ledger/export`, a tar archive) while requests keep
//! flowing without a single failure; both verifiers accept it, and it is
//! the bundle the offline export writes of the same range once the gateway
//! has stopped. A role that may not export is refused, one export at a
//! time runs (another is 429 `export_busy`), a client that leaves midway
//! leaves the gateway healthy, and shutdown does not wait for an export.

use crate::models;
use crate::support::audit::{both_accept_bundle, rust_bundle, said};
use crate::support::governance::{admin_call, token};
use crate::support::{Gateway, TestUpstream, open, send};
use crate::verification::Load;
use http::Method;
use http_body_util::BodyExt;
use std::path::Path;
use std::time::Duration;

/// `govgate export --admin-url ADMIN --out OUT ARGS` as `principal`, off
/// the async workers (the gateway and the load share them).
async fn export_online(
    gateway: &Gateway,
    principal: &'static str,
    out: &Path,
    args: &[&str],
) -> std::process::Output {
    let mut all: Vec<String> = vec![
        "export".into(),
        "--admin-url".into(),
        gateway.admin.clone(),
        "--out".into(),
        out.to_str().unwrap().into(),
    ];
    all.extend(args.iter().map(|arg| (*arg).to_owned()));
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
            .args(&all)
            .env("GOVGATE_TOKEN", token(principal))
            .env_remove("GOVGATE_PROGRESS_EVERY")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// `from..to` of a summary line `wrote DIR: entries FROM..TO, ...`.
fn range_said(output: &std::process::Output) -> (u64, u64) {
    let text = String::from_utf8_lossy(&output.stdout);
    let range = text
        .split("entries ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap_or_else(|| panic!("no range in {text:?}"));
    let (from, to) = range.split_once("..").unwrap();
    (from.parse().unwrap(), to.parse().unwrap())
}

/// Every file of bundle `a` is in `b` with the same bytes, and no more.
fn same_bundle(a: &Path, b: &Path) {
    let names = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(a), names(b), "{} vs {}", a.display(), b.display());
    for name in names(a) {
        assert!(
            std::fs::read(a.join(&name)).unwrap() == std::fs::read(b.join(&name)).unwrap(),
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_export_under_steady_load_is_the_offline_export_of_its_range_and_both_verifiers_accept_it()
 {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&format!(
        "verify_every_secs = 0\n{}",
        models(&upstream.url())
    ))
    .await;
    for _ in 0..30 {
        assert_eq!(gateway.infer(r#"{"inputs":[1]}"#).await.status, 200);
    }
    let load = Load::start(&gateway.url("/v2/models/scorer/infer"));
    let root = gateway.dir.path().to_path_buf();
    let range = root.join("online-range");
    let exported = export_online(
        &gateway,
        "auditor",
        &range,
        &["--from", "5", "--to", "20", "--payloads"],
    )
    .await;
    assert!(exported.status.success(), "{}", said(&exported));
    let (from, range_to) = range_said(&exported);
    assert_eq!(from, 5);
    assert!(
        range_to >= 20,
        "cut at the checkpoint covering 19: {range_to}"
    );
    assert!(!root.join("online-range.partial").exists());

    let whole = root.join("online-whole");
    let exported = export_online(&gateway, "auditor", &whole, &["--payloads"]).await;
    assert!(exported.status.success(), "{}", said(&exported));
    let (_, whole_to) = range_said(&exported);
    let served = load.stop_all_served().await;
    assert!(
        whole_to > 30,
        "the whole log at the export's start: {whole_to}"
    );
    let lines = std::fs::read_to_string(whole.join("entries.jsonl"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(lines, whole_to);
    // The log went on growing: the bundle is cut where it started.
    assert!(
        gateway.entries().await.len() as u64 > whole_to,
        "served {served} during the exports"
    );

    for bundle in [&range, &whole] {
        let (rust, python) = both_accept_bundle(&gateway.vkey, bundle);
        assert!(rust.contains("bundle ok"), "{rust}");
        assert!(!python.is_empty());
    }

    // Stopped: the offline export of the same ranges writes the same bundles.
    assert!(gateway.stop().await.success());
    for (online, from, to, name) in [
        (&range, 5, range_to, "offline-range"),
        (&whole, 0, whole_to, "offline-whole"),
    ] {
        let offline = root.join(name);
        let done = gateway.cli(&[
            "export",
            "--payloads",
            "--out",
            offline.to_str().unwrap(),
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
        ]);
        assert!(done.status.success(), "{}", said(&done));
        same_bundle(online, &offline);
    }
}

/// Enough decisions with large captured bodies that the archive (with
/// payloads) is far larger than the sockets' buffers: a client that does
/// not read holds its export.
async fn fill_large(gateway: &Gateway) {
    let pad = "x".repeat(400 * 1024);
    for _ in 0..30 {
        let body = format!(r#"{{"inputs":[1],"pad":"{pad}"}}"#);
        assert_eq!(gateway.infer(body).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_export_refuses_other_roles_runs_one_at_a_time_and_survives_a_client_that_leaves() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&format!(
        "verify_every_secs = 0\n[limits]\ncapture_bytes = 1048576\n{}",
        models(&upstream.url())
    ))
    .await;
    fill_large(&gateway).await;
    let url = format!("{}/admin/ledger/export?payloads=true", gateway.admin);

    let path = "/admin/ledger/export";
    let anonymous = admin_call(&gateway.admin, None, Method::GET, path, "").await;
    assert_eq!(anonymous.status, 401);
    let reviewer = admin_call(&gateway.admin, Some("rita"), Method::GET, path, "").await;
    assert_eq!(reviewer.status, 403, "{}", reviewer.text());
    assert_eq!(reviewer.error_code(), "forbidden");
    let refused = export_online(&gateway, "rita", &gateway.dir.path().join("no"), &[]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(said(&refused).contains("forbidden"), "{}", said(&refused));
    assert!(!gateway.dir.path().join("no").exists());
    assert!(!gateway.dir.path().join("no.partial").exists());
    let bad = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        "/admin/ledger/export?from=100000",
        "",
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(bad.error_code(), "export_range");

    // A client that reads the head and a little, then stops reading.
    let bearer = format!("Bearer {}", token("auditor"));
    let auth = [("authorization", bearer.as_str())];
    let held = open(Method::GET, &url, &auth, "").await;
    assert_eq!(held.status(), 200);
    assert_eq!(held.headers()["content-type"], "application/x-tar");
    let length: u64 = held.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(length > 20 << 20, "the archive is large: {length}");
    let mut body = held.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());

    // Meanwhile another export is refused, as documented.
    let busy = admin_call(&gateway.admin, Some("ops"), Method::GET, path, "").await;
    assert_eq!(busy.status, 429, "{}", busy.text());
    assert_eq!(busy.error_code(), "export_busy");
    assert!(busy.headers.contains_key("retry-after"));
    // The request path is not held up by it.
    assert_eq!(gateway.infer(r#"{"inputs":[1]}"#).await.status, 200);

    // The client leaves midway: the export stops and the next one works.
    drop(body);
    let again = gateway.dir.path().join("after-leaving");
    let mut exported = export_online(&gateway, "auditor", &again, &["--from", "3"]).await;
    for _ in 0..100 {
        if exported.status.success() {
            break;
        }
        assert!(
            said(&exported).contains("export_busy"),
            "{}",
            said(&exported)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        exported = export_online(&gateway, "auditor", &again, &["--from", "3"]).await;
    }
    assert!(exported.status.success(), "{}", said(&exported));
    let verified = rust_bundle(&gateway.vkey, &again);
    assert!(verified.status.success(), "{}", said(&verified));
    let ready = send(Method::GET, &format!("{}/readyz", gateway.admin), &[], "").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let metrics = gateway
        .metrics_when(r#"govgate_ledger_exports_total{result="sent"} 1"#)
        .await;
    // Busy at least once (the retries above may add more).
    assert!(
        !metrics.contains(r#"govgate_ledger_exports_total{result="busy"} 0"#),
        "{metrics}"
    );
    for counted in [
        r#"govgate_ledger_exports_total{result="client_left"} 1"#,
        r#"govgate_ledger_exports_total{result="refused"} 1"#,
        "govgate_ledger_exports_running 0",
    ] {
        assert!(metrics.contains(counted), "{counted} in {metrics}");
    }

    // Shutdown cuts a held export rather than wait out the grace (30 s:
    // `stop` gives up after 20).
    let held = open(Method::GET, &url, &auth, "").await;
    assert_eq!(held.status(), 200);
    let mut body = held.into_body();
    let _ = body.frame().await.unwrap().unwrap();
    // The client stops reading: the socket's buffers and the export's
    // queue fill, so no chunk the export could still queue gets through.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut gateway = gateway;
    assert!(gateway.stop().await.success());
    let mut rest = 0usize;
    let cut = loop {
        match body.frame().await {
            Some(Ok(frame)) => rest += frame.into_data().map_or(0, |data| data.len()),
            Some(Err(_)) => break true,
            None => break false,
        }
    };
    assert!(
        cut,
        "the cut archive never looks complete ({rest} more bytes)"
    );
}

/// One export at a time, but a client that has read a whole archive may
/// start the next at once: the slot is free before the last byte leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_asked_right_after_the_last_byte_of_another_is_not_busy() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    for _ in 0..5 {
        assert_eq!(gateway.infer(r#"{"inputs":[1]}"#).await.status, 200);
    }
    for round in 0..40 {
        let answer = admin_call(
            &gateway.admin,
            Some("auditor"),
            Method::GET,
            "/admin/ledger/export?from=0",
            "",
        )
        .await;
        assert_eq!(answer.status, 200, "round {round}: {}", answer.text());
        let length: usize = answer.headers["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(answer.body.len(), length);
    }
}
