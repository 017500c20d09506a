//! Auditing a fleet on a real PostgreSQL (a throwaway cluster per test):
//! each replica signs its own log, named `<ledger.origin>/<replica_id>`;
//! after the replicas served, `govgate export --fleet` gathers every
//! replica's bundle with the checkpoint it published, and the independent
//! Python verifier, run as a separate process, accepts it, and refuses a
//! fleet bundle with an altered entry or a missing replica, naming the
//! replica. A gateway whose ledger was written before it joined the
//! fleet keeps its log's name.

use crate::support::audit::said;
use crate::support::gateway::TEST_ORIGIN;
use crate::support::governance::token;
use crate::support::postgres::Postgres;
use crate::support::{Gateway, TestUpstream, python_verifier, send};
use http::Method;
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// Model `chat` v1 on `upstream`; `[cluster]` on the database in
/// `url_file`. A lease of 30 s: the checkpoint is published every 10 s,
/// so what a test sends after a publication stays unpublished for a while.
fn replica_config(upstream: &str, url_file: &Path, replica_id: &str) -> String {
    format!("{}{}", model(upstream), cluster_table(url_file, replica_id))
}

fn model(upstream: &str) -> String {
    format!(
        "[[models]]\nname = \"chat\"\nprotocol = \"openai\"\n\
         [[models.versions]]\nversion = \"v1\"\nupstream = \"{upstream}\"\nupstream_model = \"chat-v1\"\n"
    )
}

fn cluster_table(url_file: &Path, replica_id: &str) -> String {
    format!(
        "[cluster]\nurl = {{ file = \"{}\" }}\nreplica_id = \"{replica_id}\"\nlease_secs = 30\n",
        url_file.display()
    )
}

async fn chat(replica: &Gateway) -> http::StatusCode {
    send(
        Method::POST,
        &replica.url("/v1/chat/completions"),
        &[],
        r#"{"model":"chat","messages":[]}"#,
    )
    .await
    .status
}

/// The note `replica` serves at `/ledger/checkpoint`.
async fn served_checkpoint(replica: &Gateway) -> String {
    send(
        Method::GET,
        &format!("{}/ledger/checkpoint", replica.admin),
        &[],
        "",
    )
    .await
    .text()
}

/// Waits until the database holds the checkpoint `replica_id` serves
/// (published with a renewal, every 10 s); its size.
async fn published(db: &tokio_postgres::Client, replica: &Gateway, replica_id: &str) -> u64 {
    for _ in 0..150 {
        let served = served_checkpoint(replica).await;
        let row = db
            .query_opt(
                "SELECT note, size FROM govgate_checkpoints WHERE replica_id = $1",
                &[&replica_id],
            )
            .await
            .unwrap();
        if let Some(row) = row
            && row.get::<_, String>(0) == served
        {
            return u64::try_from(row.get::<_, i64>(1)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{replica_id} did not publish the checkpoint it serves within 30 s");
}

/// `govgate export --fleet --config CONFIG --replica ... --out OUT` as the auditor.
fn export_fleet(config: &Path, replicas: &[(&str, &str)], out: &Path) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_govgate"));
    command
        .args(["export", "--fleet", "--quiet", "--config"])
        .arg(config)
        .env("GOVGATE_TOKEN", token("auditor"));
    for (id, admin) in replicas {
        command.arg("--replica").arg(format!("{id}={admin}"));
    }
    command.arg("--out").arg(out).output().unwrap()
}

/// tools/govgate_verify.py fleet --vkey ... DIR.
fn python_fleet(vkeys: &[&str], dir: &Path) -> Output {
    let mut args = vec!["fleet".to_owned()];
    for vkey in vkeys {
        args.push("--vkey".to_owned());
        args.push((*vkey).to_owned());
    }
    args.push(dir.display().to_string());
    python_verifier(&args)
}

/// `govgate verify --fleet DIR --vkey ...`.
fn rust_fleet(vkeys: &[&str], dir: &Path) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_govgate"));
    command.args(["verify", "--fleet"]).arg(dir);
    for vkey in vkeys {
        command.args(["--vkey", vkey]);
    }
    command.output().unwrap()
}

/// `govgate vkey --config` of a replica (offline: the key's record names
/// the log), which must be what it serves at `/ledger/key`.
async fn replica_vkey(replica: &Gateway) -> String {
    let offline = replica.cli(&["vkey"]);
    assert!(offline.status.success(), "{}", said(&offline));
    let offline = String::from_utf8(offline.stdout).unwrap().trim().to_owned();
    let served = send(
        Method::GET,
        &format!("{}/ledger/key", replica.admin),
        &[],
        "",
    )
    .await
    .text();
    assert_eq!(offline, served.trim());
    offline
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn a_fleet_bundle_of_replicas_that_served_is_verified_by_the_python_verifier() {
    let postgres = Postgres::start();
    let urls = tempfile::tempdir().unwrap();
    let url = postgres.url_file(urls.path());
    let upstream = TestUpstream::start().await;
    // r1 approves the declared v1 for the fleet; r2 joins and applies it.
    let r1 = Gateway::start_with("", &replica_config(&upstream.url(), &url, "r1")).await;
    let r2 = Gateway::start_pending("", &replica_config(&upstream.url(), &url, "r2")).await;
    for replica in [&r1, &r1, &r1, &r2, &r2] {
        assert_eq!(chat(replica).await, 200);
    }
    let db = postgres.client().await;
    let published_r1 = published(&db, &r1, "r1").await;
    let published_r2 = published(&db, &r2, "r2").await;
    // Two more decisions on r1, not published yet when the export reads
    // the database: its bundle extends the published checkpoint.
    assert_eq!(chat(&r1).await, 200);
    assert_eq!(chat(&r1).await, 200);

    let out = tempfile::tempdir().unwrap();
    let bundle = out.path().join("fleet");
    let config = r1.dir.path().join("govgate.toml");
    let exported = export_fleet(&config, &[("r2", &r2.admin), ("r1", &r1.admin)], &bundle);
    assert!(exported.status.success(), "{}", said(&exported));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("fleet.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "govgate-fleet/1");
    let replicas = manifest["replicas"].as_array().unwrap();
    let ids: Vec<&str> = replicas
        .iter()
        .map(|r| r["replica_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["r1", "r2"]);
    let origins: Vec<&str> = replicas
        .iter()
        .map(|r| r["origin"].as_str().unwrap())
        .collect();
    let (o1, o2) = (format!("{TEST_ORIGIN}/r1"), format!("{TEST_ORIGIN}/r2"));
    assert_eq!(origins, [o1.as_str(), o2.as_str()]);
    assert_eq!(replicas[0]["published"]["size"], published_r1);
    assert_eq!(replicas[0]["size"], published_r1 + 2);
    assert!(
        !replicas[0]["consistency"].as_array().unwrap().is_empty(),
        "a proof from {published_r1} to {}",
        published_r1 + 2
    );
    assert_eq!(replicas[1]["published"]["size"], published_r2);
    assert_eq!(replicas[1]["size"], published_r2);
    assert_eq!(replicas[1]["consistency"], serde_json::json!([]));
    let said_export = String::from_utf8_lossy(&exported.stdout).into_owned();
    assert!(
        said_export.contains(&format!(
            "  r1: log {o1}, entries 0..{}, published checkpoint of size {published_r1}\n",
            published_r1 + 2
        )),
        "{said_export}"
    );

    // Each decision is in its replica's log only: r1 recorded 5, r2 2.
    for (replica, decisions) in [("r1", 5), ("r2", 2)] {
        let entries =
            std::fs::read_to_string(bundle.join(format!("replicas/{replica}/entries.jsonl")))
                .unwrap();
        let count = entries
            .lines()
            .filter(|line| line.contains(r#""kind":"decision""#))
            .count();
        assert_eq!(count, decisions, "{replica}");
    }

    // The auditor's keys: each replica's, named after its log.
    let (k1, k2) = (replica_vkey(&r1).await, replica_vkey(&r2).await);
    assert!(k1.starts_with(&format!("{o1}+")), "{k1}");
    let verified = python_fleet(&[&k1, &k2], &bundle);
    assert!(verified.status.success(), "{}", said(&verified));
    let stdout = String::from_utf8_lossy(&verified.stdout).into_owned();
    assert!(
        stdout.starts_with(&format!(
            "OK replica r1: OK bundle origin={o1} from=0 to={}",
            published_r1 + 2
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "(size {published_r1})\nOK replica r2: OK bundle origin={o2} from=0 to={published_r2}"
        )),
        "{stdout}"
    );
    // Both replicas recorded every change of the fleet (the version's
    // proposal, approvals and activation), alike and in order.
    let changes = r1
        .entries()
        .await
        .iter()
        .filter_map(|e| e["control_seq"].as_u64())
        .max()
        .expect("r1 recorded the fleet's changes");
    assert!(changes >= 3, "{changes}");
    let recorded = format!(
        "control events 1..{changes} recorded alike, in order, by each replica up to its last\n"
    );
    assert!(
        stdout.ends_with(&format!(
            "OK fleet: 2 replicas, each log verified and consistent with the checkpoint it \
             published; {recorded}"
        )),
        "{stdout}"
    );

    let rust = rust_fleet(&[&k1, &k2], &bundle);
    assert!(rust.status.success(), "{}", said(&rust));
    assert!(
        String::from_utf8_lossy(&rust.stdout).ends_with(&format!(
            "fleet ok: 2 replicas, each log verified and consistent with the checkpoint it \
             published; {recorded}"
        )),
        "{}",
        said(&rust)
    );

    // The fleet's period report: each replica's report, checkable alone,
    // and the fleet's figures: decisions summed, each change once.
    let report = out.path().join("report");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .args(["report", "--quiet", "--fleet"])
        .arg(&bundle)
        .args(["--vkey", &k1, "--vkey", &k2])
        .args([
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
            "--out",
        ])
        .arg(&report)
        .env("GOVGATE_LOG", "warn")
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", said(&made));
    let summary: Value =
        serde_json::from_slice(&std::fs::read(report.join("fleet-report.json")).unwrap()).unwrap();
    assert_eq!(summary["format"], "govgate-fleet-report/1");
    assert_eq!(summary["traffic"]["decisions"], 7, "{summary}");
    let changes: i64 = db
        .query_one("SELECT count(*) FROM govgate_control_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(summary["changes"]["fleet_changes"], changes, "{summary}");
    assert_eq!(summary["changes"]["local_changes"], 0, "{summary}");
    assert_eq!(summary["replicas"][1]["decisions"], 2);
    for (replica, key) in [("r1", &k1), ("r2", &k2)] {
        let checked = std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
            .args(["verify", "--report"])
            .arg(report.join("replicas").join(replica))
            .args(["--vkey", key])
            .output()
            .unwrap();
        assert!(checked.status.success(), "{replica}: {}", said(&checked));
    }

    // An entry of r2's changed: refused, naming r2.
    let altered = out.path().join("altered");
    copy_dir(&bundle, &altered);
    let entries_path = altered.join("replicas/r2/entries.jsonl");
    let entries = std::fs::read_to_string(&entries_path).unwrap();
    assert!(entries.contains(r#""status":200"#));
    std::fs::write(
        &entries_path,
        entries.replacen(r#""status":200"#, r#""status":201"#, 1),
    )
    .unwrap();
    let refused = python_fleet(&[&k1, &k2], &altered);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    let stdout = String::from_utf8_lossy(&refused.stdout).into_owned();
    let fails: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert!(!fails.is_empty(), "{stdout}");
    assert!(
        fails.iter().all(|l| l.starts_with("FAIL replica r2: ")),
        "{stdout}"
    );
    let rust = rust_fleet(&[&k1, &k2], &altered);
    assert_eq!(rust.status.code(), Some(1), "{}", said(&rust));
    assert!(
        String::from_utf8_lossy(&rust.stderr)
            .starts_with("govgate: fleet bundle does NOT verify: replica r2: bundle: "),
        "{}",
        said(&rust)
    );

    // r1's published checkpoint not proven by its bundle (a proof hash
    // changed, as if the replica's log had been rewritten): refused.
    let forked = out.path().join("forked");
    copy_dir(&bundle, &forked);
    let mut fleet_json = manifest.clone();
    fleet_json["replicas"][0]["consistency"][0] =
        Value::String("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned());
    std::fs::write(forked.join("fleet.json"), fleet_json.to_string()).unwrap();
    let inconsistent = format!(
        "replica r1: the checkpoint it published (size {published_r1}) and its bundle's (size {}) \
         are not consistent",
        published_r1 + 2
    );
    let refused = python_fleet(&[&k1, &k2], &forked);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    let stdout = String::from_utf8_lossy(&refused.stdout).into_owned();
    assert!(
        stdout.starts_with(&format!("FAIL {inconsistent}: ")),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let rust = rust_fleet(&[&k1, &k2], &forked);
    assert_eq!(rust.status.code(), Some(1), "{}", said(&rust));
    assert!(
        String::from_utf8_lossy(&rust.stderr).starts_with(&format!(
            "govgate: fleet bundle does NOT verify: {inconsistent}: "
        )),
        "{}",
        said(&rust)
    );

    // A replica's bundle left out: refused, naming it.
    let partial = out.path().join("partial");
    copy_dir(&bundle, &partial);
    std::fs::remove_dir_all(partial.join("replicas/r1")).unwrap();
    let refused = python_fleet(&[&k1, &k2], &partial);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert_eq!(
        String::from_utf8_lossy(&refused.stdout),
        "FAIL replica r1: missing: no replicas/r1 in the fleet bundle\n"
    );
    let rust = rust_fleet(&[&k1, &k2], &partial);
    assert_eq!(rust.status.code(), Some(1), "{}", said(&rust));
    assert_eq!(
        String::from_utf8_lossy(&rust.stderr),
        "govgate: fleet bundle does NOT verify: replica r1: missing: no replicas/r1 in the fleet bundle\n"
    );

    // The exporter itself: every replica of the database, each the one named.
    let refused = export_fleet(&config, &[("r1", &r1.admin)], &out.path().join("one"));
    assert_eq!(refused.status.code(), Some(2), "{}", said(&refused));
    assert!(
        said(&refused).contains(
            "every replica that published a checkpoint goes into the fleet bundle; give \
             --replica ID=ADMIN_URL for r2"
        ),
        "{}",
        said(&refused)
    );
    let refused = export_fleet(
        &config,
        &[("r1", &r2.admin), ("r2", &r1.admin)],
        &out.path().join("swapped"),
    );
    assert_eq!(refused.status.code(), Some(2), "{}", said(&refused));
    assert!(
        said(&refused).contains(&format!(
            "the gateway at {} is not replica `r1`: its log is `{o2}`",
            r2.admin
        )),
        "{}",
        said(&refused)
    );
    assert!(!out.path().join("swapped").exists());
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn a_gateway_that_joins_a_fleet_keeps_its_logs_name() {
    let postgres = Postgres::start();
    let urls = tempfile::tempdir().unwrap();
    let url = postgres.url_file(urls.path());
    let upstream = TestUpstream::start().await;
    let mut alone = Gateway::start_with("", &model(&upstream.url())).await;
    assert_eq!(chat(&alone).await, 200);
    assert!(alone.stop().await.success());
    // The same data directory, now as replica r1.
    let config = alone.dir.path().join("govgate.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&cluster_table(&url, "r1"));
    std::fs::write(&config, text).unwrap();
    alone.restart().await;
    let served = served_checkpoint(&alone).await;
    assert!(served.starts_with(&format!("{TEST_ORIGIN}\n")), "{served}");
    let db = postgres.client().await;
    published(&db, &alone, "r1").await;
    // Offline commands name it the same way.
    assert_eq!(replica_vkey(&alone).await, alone.vkey);

    // Its log moved aside, it starts a new one under the replica's name,
    // citing the old log's last checkpoint; the same key signs it.
    assert!(alone.stop().await.success());
    let data = alone.dir.path().join("data");
    std::fs::rename(data.join("ledger"), data.join("ledger.alone")).unwrap();
    alone.restart().await;
    let served = served_checkpoint(&alone).await;
    assert!(
        served.starts_with(&format!("{TEST_ORIGIN}/r1\n")),
        "{served}"
    );
    let first = &alone.entries().await[0];
    assert_eq!(first["kind"], "ledger_restarted", "{first}");
    assert!(
        first["previous_checkpoint"]
            .as_str()
            .is_some_and(|note| note.starts_with(&format!("{TEST_ORIGIN}\n"))),
        "{first}"
    );
    let public_key = |vkey: &str| vkey.splitn(3, '+').nth(2).unwrap().to_owned();
    let renamed = replica_vkey(&alone).await;
    assert!(
        renamed.starts_with(&format!("{TEST_ORIGIN}/r1+")),
        "{renamed}"
    );
    assert_eq!(public_key(&renamed), public_key(&alone.vkey));
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn replicas_that_recorded_different_changes_under_one_control_seq_do_not_verify_as_a_fleet() {
    // Two fleets of one replica each, on two databases: the version is
    // approved in one and rejected in the other, so their second control
    // events differ. Each log is sound and signed; put together as one
    // fleet's, they are not the same fleet's changes.
    let (one, two) = (Postgres::start(), Postgres::start());
    let (urls_one, urls_two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (url_one, url_two) = (one.url_file(urls_one.path()), two.url_file(urls_two.path()));
    let upstream = TestUpstream::start().await;
    let r1 = Gateway::start_with("", &replica_config(&upstream.url(), &url_one, "r1")).await;
    let r2 = Gateway::start_pending("", &replica_config(&upstream.url(), &url_two, "r2")).await;
    let rejected = crate::support::governance::admin_call(
        &r2.admin,
        Some("ai-officer"),
        Method::POST,
        "/admin/models/chat/versions/v1/reject",
        r#"{"reason":"not this one"}"#,
    )
    .await;
    assert_eq!(rejected.status, 200, "{}", rejected.text());
    let (db_one, db_two) = (one.client().await, two.client().await);
    published(&db_one, &r1, "r1").await;
    published(&db_two, &r2, "r2").await;

    // Each fleet's bundle, then the two replicas in one fleet bundle.
    let out = tempfile::tempdir().unwrap();
    let (first, second, joined) = (
        out.path().join("first"),
        out.path().join("second"),
        out.path().join("joined"),
    );
    for (replica, id, dir) in [(&r1, "r1", &first), (&r2, "r2", &second)] {
        let config = replica.dir.path().join("govgate.toml");
        let exported = export_fleet(&config, &[(id, &replica.admin)], dir);
        assert!(exported.status.success(), "{}", said(&exported));
    }
    let manifest = |dir: &Path| -> Value {
        serde_json::from_slice(&std::fs::read(dir.join("fleet.json")).unwrap()).unwrap()
    };
    let mut fleet = manifest(&first);
    let other = manifest(&second)["replicas"][0].clone();
    fleet["replicas"].as_array_mut().unwrap().push(other);
    copy_dir(&first, &joined);
    copy_dir(&second.join("replicas/r2"), &joined.join("replicas/r2"));
    std::fs::write(joined.join("fleet.json"), fleet.to_string()).unwrap();

    let (k1, k2) = (replica_vkey(&r1).await, replica_vkey(&r2).await);
    let python = python_fleet(&[&k1, &k2], &joined);
    assert_eq!(python.status.code(), Some(1), "{}", said(&python));
    let stdout = String::from_utf8_lossy(&python.stdout).into_owned();
    assert!(
        stdout.contains(
            "FAIL control event 2 is 'version_approved' on replica r1 and 'version_rejected' on \
             replica r2"
        ),
        "{stdout}"
    );
    let rust = rust_fleet(&[&k1, &k2], &joined);
    assert_eq!(rust.status.code(), Some(1), "{}", said(&rust));
    let stderr = String::from_utf8_lossy(&rust.stderr).into_owned();
    assert!(
        stderr.contains(
            "govgate: fleet bundle does NOT verify: control event 2 is \"version_approved\" on \
             replica r1 and \"version_rejected\" on replica r2"
        ),
        "{stderr}"
    );
    // Each fleet's own bundle verifies.
    for (key, dir) in [(&k1, &first), (&k2, &second)] {
        let alone = rust_fleet(&[key], dir);
        assert!(alone.status.success(), "{}", said(&alone));
    }
}
