//! deploy/'s example configurations and manifests cannot rot: the
//! gateway's own checks accept both configurations as shipped, the stop
//! timeouts of the systemd unit and the StatefulSet cover the drain they
//! configure, and the Kubernetes configuration, rendered for two pods as
//! its init container renders it, serves ready replicas on PostgreSQL.

use crate::support::gateway::{keygen, read_ready_line};
use crate::support::postgres::Postgres;
use govgate::config::{Config, Environment};
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The data directory both examples name.
const DATA_DIR: &str = "/var/lib/govgate";

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(name)).unwrap()
}

/// `text` with `from` replaced by `to`, which must occur in it.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "no `{from}` in the example any more");
    text.replace(from, to)
}

/// deploy/kubernetes/govgate.toml as the init container renders it for
/// the pod `pod`.
fn kubernetes_config(pod: &str) -> String {
    replaced(&read("deploy/kubernetes/govgate.toml"), "@REPLICA_ID@", pod)
}

/// The example `text` with its data directory moved to `dir`, where its
/// signing key is made as the docs say (`govgate keygen`).
fn with_data_dir(text: &str, dir: &Path, origin: &str) -> String {
    let data = dir.display().to_string();
    let text = replaced(text, DATA_DIR, &data);
    keygen(&dir.join("govgate.key"), origin);
    text
}

/// The secrets both examples read from the environment.
fn secrets() -> HashMap<String, String> {
    [
        ("GOVGATE_CLUSTER_URL", "host=/run/postgresql user=govgate"),
        ("LLM_API_KEY", "sk-example"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

#[test]
fn deploy_configurations_pass_the_gateways_own_checks() {
    let examples = [
        (
            "deploy/systemd/govgate.toml",
            read("deploy/systemd/govgate.toml"),
            "govgate.example.com",
            "gw-1",
            "127.0.0.1:9090",
        ),
        (
            "deploy/kubernetes/govgate.toml",
            kubernetes_config("govgate-0"),
            "govgate.example.com",
            "govgate-0",
            "0.0.0.0:9090",
        ),
    ];
    for (name, text, origin, replica, admin) in examples {
        let dir = tempfile::tempdir().unwrap();
        let text = with_data_dir(&text, dir.path(), &format!("{origin}/{replica}"));
        let config = Config::parse(&text, name, &Environment::fixed(secrets(), dir.path()))
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(
            config.server.public_listen.to_string(),
            "0.0.0.0:8080",
            "{name}"
        );
        assert_eq!(config.server.admin_listen.to_string(), admin, "{name}");
        assert_eq!(config.server.data_dir, dir.path(), "{name}");
        assert_eq!(config.ledger.origin, origin, "{name}");
        assert_eq!(
            config.timeouts.shutdown_grace,
            Duration::from_secs(30),
            "{name}"
        );
        let cluster = config
            .cluster
            .unwrap_or_else(|| panic!("{name}: no [cluster]"));
        assert_eq!(cluster.replica_id, replica, "{name}");
        assert_eq!(cluster.url.0, secrets()["GOVGATE_CLUSTER_URL"], "{name}");
        let models: Vec<&str> = config.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(models, ["support-chat"], "{name}");
    }
}

/// The first number after `key` in `text`.
fn number_after(text: &str, key: &str) -> u64 {
    let at = text.find(key).unwrap_or_else(|| panic!("no `{key}`")) + key.len();
    let digits: String = text[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after `{key}`"))
}

/// A stop may take the grace for the requests, as long again for records
/// that wait for an unavailable ledger, then the final checkpoint and 2 s
/// to give the replica id up: the unit and the pod wait longer than that
/// (the pod after its preStop pause) before they kill.
#[test]
fn stop_timeouts_cover_the_configured_drain() {
    for name in [
        "deploy/systemd/govgate.toml",
        "deploy/kubernetes/govgate.toml",
    ] {
        assert_eq!(
            number_after(&read(name), "shutdown_grace_ms ="),
            30_000,
            "{name}"
        );
    }
    let drain_secs = 2 * 30 + 2;
    let unit = read("deploy/systemd/govgate.service");
    assert!(
        number_after(&unit, "TimeoutStopSec=") >= drain_secs + 20,
        "{unit}"
    );
    assert!(unit.contains("KillSignal=SIGTERM\n"), "{unit}");
    let pod = read("deploy/kubernetes/statefulset.yaml");
    let pre_stop = number_after(&pod, "command: [\"/bin/sleep\", \"");
    assert_eq!(pre_stop, 5);
    assert!(
        number_after(&pod, "terminationGracePeriodSeconds:") >= pre_stop + drain_secs + 20,
        "{pod}"
    );
}

/// Starts `govgate serve` on the Kubernetes configuration rendered for
/// `pod`, on loopback with free ports, its data in `dir`.
async fn start_pod(pod: &str, dir: &Path, database: &str) -> (tokio::process::Child, String) {
    let text = with_data_dir(
        &kubernetes_config(pod),
        dir,
        &format!("govgate.example.com/{pod}"),
    );
    let text = replaced(&text, "\"0.0.0.0:8080\"", "\"127.0.0.1:0\"");
    let text = replaced(&text, "\"0.0.0.0:9090\"", "\"127.0.0.1:0\"");
    let config = dir.join("govgate.toml");
    std::fs::write(&config, text).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("GOVGATE_CLUSTER_URL", database)
        .env("LLM_API_KEY", "sk-example")
        .env("GOVGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (_, admin) = read_ready_line(&mut child).await;
    (child, admin)
}

#[tokio::test]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn kubernetes_configuration_serves_ready_replicas_named_after_their_pods() {
    let postgres = Postgres::start();
    let database = postgres.url();
    let (dir0, dir1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Both at once, as podManagementPolicy: Parallel starts them.
    let ((mut pod0, admin0), (mut pod1, admin1)) = tokio::join!(
        start_pod("govgate-0", dir0.path(), &database),
        start_pod("govgate-1", dir1.path(), &database)
    );
    let http = reqwest::Client::new();
    for admin in [&admin0, &admin1] {
        // The probes of statefulset.yaml.
        for (path, body) in [("/readyz", "{\"status\":\"ok\"}"), ("/healthz", "ok\n")] {
            let reply = http.get(format!("{admin}{path}")).send().await.unwrap();
            assert_eq!(reply.status(), 200, "{admin}{path}");
            assert_eq!(reply.text().await.unwrap(), body, "{admin}{path}");
        }
    }
    // Each pod's log is named after it.
    for (admin, pod) in [(&admin0, "govgate-0"), (&admin1, "govgate-1")] {
        let note = http
            .get(format!("{admin}/ledger/checkpoint"))
            .send()
            .await
            .unwrap();
        let note = note.text().await.unwrap();
        assert!(
            note.starts_with(&format!("govgate.example.com/{pod}\n")),
            "{note}"
        );
    }
    let db = postgres.client().await;
    let replicas: Vec<String> = db
        .query(
            "SELECT replica_id FROM govgate_replicas ORDER BY replica_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(replicas, ["govgate-0", "govgate-1"]);
    for pod in [&mut pod0, &mut pod1] {
        let pid = pod.id().unwrap().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(20), pod.wait())
            .await
            .expect("stops within 20 s of SIGTERM")
            .unwrap();
        assert_eq!(status.code(), Some(0));
    }
}
