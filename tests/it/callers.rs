//! Callers: the caller header believed only from `[auth.trusted_header]`
//! networks, and rate limits per caller and model (`[rate_limit]`,
//! `[models.rate_limit]`): 429 `rate_limited` with `Retry-After`, recorded
//! as a blocked decision; other callers and unlimited models unaffected.

use crate::support::{Gateway, TestUpstream, send};
use http::Method;

fn config(upstream: &str) -> String {
    format!(
        r#"
[rate_limit]
requests_per_second = 0.2
burst = 2

[[models]]
name = "scorer"
protocol = "kserve_v2"
[[models.versions]]
version = "1"
upstream = "{upstream}"

[[models]]
name = "bulk"
protocol = "kserve_v2"
[models.rate_limit]
requests_per_second = 0
[[models.versions]]
version = "1"
upstream = "{upstream}"
"#
    )
}

async fn infer(gateway: &Gateway, model: &str, caller: &str) -> crate::support::client::Reply {
    send(
        Method::POST,
        &gateway.url(&format!("/v2/models/{model}/infer")),
        &[("x-govgate-caller", caller)],
        r#"{"inputs":[1]}"#,
    )
    .await
}

#[tokio::test]
async fn a_caller_over_its_rate_gets_429_with_retry_after_and_the_refusal_is_recorded() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&config(&upstream.url())).await;

    for _ in 0..2 {
        assert_eq!(
            infer(&gateway, "scorer", "svc-a").await.status,
            200,
            "within the burst"
        );
    }
    let refused = infer(&gateway, "scorer", "svc-a").await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.error_code(), "rate_limited");
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=5).contains(&retry_after),
        "one token every 5 s: {retry_after}"
    );

    assert_eq!(
        infer(&gateway, "scorer", "svc-b").await.status,
        200,
        "each caller has its own bucket"
    );
    for _ in 0..5 {
        assert_eq!(
            infer(&gateway, "bulk", "svc-a").await.status,
            200,
            "rate 0: this model is not limited"
        );
    }
    assert_eq!(
        upstream.seen().len(),
        2 + 1 + 5,
        "the refused request never reached the model"
    );

    let entry = gateway.decision(&refused.decision_id()).await;
    assert_eq!(entry["outcome"], "blocked");
    assert_eq!(entry["error_code"], "rate_limited");
    assert_eq!(entry["status"], 429);
    assert_eq!(entry["caller"], "svc-a");
    assert_eq!(entry["model"], "scorer");
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("govgate_rate_limited_total{model=\"scorer\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("govgate_rate_limited_total{model=\"bulk\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_burst_without_a_rate_is_refused_by_check_config() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&config(&upstream.url())).await;
    gateway.stop().await;
    let path = gateway.dir.path().join("govgate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("requests_per_second = 0.2\n", "")).unwrap();
    let checked = gateway.cli(&["check-config"]);
    assert!(!checked.status.success());
    let said = String::from_utf8_lossy(&checked.stderr);
    assert!(
        said.contains("rate_limit.burst: needs rate_limit.requests_per_second"),
        "{said}"
    );
}

#[tokio::test]
async fn a_caller_header_from_outside_the_trusted_networks_is_refused_and_recorded_as_anonymous() {
    let upstream = TestUpstream::start().await;
    // The test client connects from 127.0.0.1, outside this network.
    let gateway = Gateway::start(&format!(
        "[auth.trusted_header]\nnetworks = [\"192.0.2.0/24\", \"fd00::/8\"]\n{}",
        config(&upstream.url())
    ))
    .await;
    let claimed = infer(&gateway, "bulk", "svc-loans").await;
    assert_eq!(claimed.status, 401);
    assert_eq!(claimed.error_code(), "caller_unauthenticated");
    let entry = gateway.decision(&claimed.decision_id()).await;
    assert_eq!(
        entry["caller"], "anonymous",
        "a claim not believed is not recorded as the caller"
    );
    assert_eq!(entry["error_code"], "caller_unauthenticated");
    assert!(upstream.seen().is_empty(), "nothing reached the model");
    let unnamed = send(
        Method::POST,
        &gateway.url("/v2/models/bulk/infer"),
        &[],
        r#"{"inputs":[1]}"#,
    )
    .await;
    assert_eq!(
        unnamed.status, 200,
        "no claim: served as anonymous (require_caller is off)"
    );
    let mut gateway = gateway;
    gateway.stop().await;

    let path = gateway.dir.path().join("govgate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"192.0.2.0/24\"", "\"127.0.0.0/8\"")).unwrap();
    gateway.restart().await;
    let trusted = infer(&gateway, "bulk", "svc-loans").await;
    assert_eq!(
        trusted.status, 200,
        "from a trusted network the header names the caller"
    );
    assert_eq!(
        gateway.decision(&trusted.decision_id()).await["caller"],
        "svc-loans"
    );
}

/// `govgate token --caller ...`: the key it prints and the config entry.
fn new_key(args: &[&str]) -> (String, String) {
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .arg("token")
        .args(args)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let said = String::from_utf8(made.stdout).unwrap();
    let key = said
        .lines()
        .find(|line| line.starts_with("ggk_"))
        .expect("the key")
        .to_owned();
    let entry = said
        .split_once("add to the config:\n")
        .expect("the entry")
        .1
        .to_owned();
    (key, entry)
}

async fn infer_with_key(
    gateway: &Gateway,
    model: &str,
    key: &str,
) -> crate::support::client::Reply {
    let bearer = format!("Bearer {key}");
    send(
        Method::POST,
        &gateway.url(&format!("/v2/models/{model}/infer")),
        &[("authorization", &bearer), ("x-govgate-caller", "root")],
        r#"{"inputs":[1]}"#,
    )
    .await
}

#[tokio::test]
async fn api_keys_name_the_caller_are_scoped_to_models_expire_and_never_reach_the_upstream() {
    let upstream = TestUpstream::start().await;
    let (loans, loans_entry) = new_key(&[
        "--caller",
        "svc-loans",
        "--id",
        "loans-1",
        "--models",
        "bulk",
    ]);
    let (old, old_entry) = new_key(&[
        "--caller",
        "svc-old",
        "--id",
        "old-1",
        "--expires",
        "2020-01-01T00:00:00Z",
    ]);
    let gateway = Gateway::start(&format!(
        "[auth]\nrequire_api_key = true\n{loans_entry}{old_entry}{}",
        config(&upstream.url())
    ))
    .await;

    let served = infer_with_key(&gateway, "bulk", &loans).await;
    assert_eq!(served.status, 200, "{}", served.text());
    let entry = gateway.decision(&served.decision_id()).await;
    assert_eq!(
        entry["caller"], "svc-loans",
        "the key names the caller, not the header"
    );
    let sent = upstream.only_request();
    assert!(
        sent.headers.get("authorization").is_none(),
        "the gateway's key is not forwarded: {:?}",
        sent.headers
    );

    let elsewhere = infer_with_key(&gateway, "scorer", &loans).await;
    assert_eq!(elsewhere.status, 403);
    assert_eq!(elsewhere.error_code(), "caller_forbidden");
    assert_eq!(
        gateway.decision(&elsewhere.decision_id()).await["caller"],
        "svc-loans"
    );

    for (key, said) in [
        (old.as_str(), "expired"),
        ("ggk_00000000000000000000000000000000", "not valid"),
    ] {
        let refused = infer_with_key(&gateway, "bulk", key).await;
        assert_eq!(refused.status, 401, "{key}");
        assert_eq!(refused.error_code(), "caller_unauthenticated");
        assert!(refused.text().contains(said), "{}", refused.text());
        assert_eq!(
            refused.headers["www-authenticate"],
            "Bearer realm=\"govgate\", error=\"invalid_token\""
        );
        assert_eq!(
            gateway.decision(&refused.decision_id()).await["caller"],
            "anonymous"
        );
    }
    let keyless = infer(&gateway, "bulk", "svc-loans").await;
    assert_eq!(
        keyless.status, 401,
        "require_api_key: the header alone is not enough"
    );
    assert_eq!(
        keyless.headers["www-authenticate"],
        "Bearer realm=\"govgate\""
    );
    assert_eq!(
        upstream.seen().len(),
        1,
        "only the authenticated call reached a model"
    );

    let mut gateway = gateway;
    gateway.stop().await;
    for key in [&loans, &old] {
        let found = std::process::Command::new("grep")
            .args(["-r", "-l", "-F", key.as_str()])
            .arg(gateway.dir.path().join("data"))
            .output()
            .unwrap();
        assert!(
            found.stdout.is_empty(),
            "the key is stored: {}",
            String::from_utf8_lossy(&found.stdout)
        );
    }
}

/// One request for `bulk` on a new TLS connection with extra header lines
/// (each ending in CRLF); the decision it made.
async fn bulk_over_tls(
    gateway: &Gateway,
    connector: &tokio_rustls::TlsConnector,
    headers: &str,
) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = crate::listener_tls::connect(connector, &gateway.public).await;
    let request = format!(
        "POST /v2/models/bulk/infer HTTP/1.1\r\nhost: 127.0.0.1\r\n{headers}content-length: 2\r\nconnection: close\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    gateway.decisions().await.pop().expect("a decision")
}

#[tokio::test]
async fn each_decision_records_how_its_caller_was_established_and_both_verifiers_accept_it() {
    use crate::listener_tls::{Ca, tls_section};
    use sha2::Digest;
    let upstream = TestUpstream::start().await;
    let ca = Ca::new();
    let certs = tempfile::tempdir().unwrap();
    ca.issue_into(certs.path());
    let clients = Ca::new();
    let client_ca = certs.path().join("clients.pem");
    std::fs::write(&client_ca, &clients.pem).unwrap();
    let (key, key_entry) = new_key(&["--caller", "svc-loans", "--id", "loans-1"]);
    let mut gateway = Gateway::start_with(
        &tls_section("public_tls", certs.path(), 0),
        &format!(
            "[auth.mtls]\nca_file = \"{}\"\n[auth.trusted_header]\nnetworks = [\"127.0.0.0/8\"]\n{key_entry}{}",
            client_ca.display(),
            config(&upstream.url())
        ),
    )
    .await;

    let spiffe = "spiffe://bank.example/ns/lending/sa/svc-loans";
    let identity = clients.client_identity(spiffe);
    let fingerprint = format!("{:x}", sha2::Sha256::digest(identity.0.as_ref()));
    let by_certificate =
        bulk_over_tls(&gateway, &clients.client_with_roots_of(&ca, identity), "").await;
    assert_eq!(by_certificate["caller"], spiffe);
    assert_eq!(
        by_certificate["auth"],
        serde_json::json!({"method": "mtls", "cert_sha256": fingerprint})
    );

    let plain = ca.client(&[&rustls::version::TLS13]);
    let by_key = bulk_over_tls(
        &gateway,
        &plain,
        &format!("authorization: Bearer {key}\r\nx-govgate-caller: root\r\n"),
    )
    .await;
    assert_eq!(by_key["caller"], "svc-loans");
    assert_eq!(
        by_key["auth"],
        serde_json::json!({"method": "api_key", "key_id": "loans-1"})
    );

    let by_header = bulk_over_tls(&gateway, &plain, "x-govgate-caller: svc-front\r\n").await;
    assert_eq!(by_header["caller"], "svc-front");
    assert_eq!(
        by_header["auth"],
        serde_json::json!({"method": "header", "network": "127.0.0.0/8"})
    );

    let nobody = bulk_over_tls(&gateway, &plain, "").await;
    assert_eq!(nobody["caller"], "anonymous");
    assert_eq!(nobody["auth"], serde_json::json!({"method": "none"}));

    gateway.stop().await;
    let audit = gateway.audit_offline(&[]);
    assert!(
        !audit.whole.1.is_empty(),
        "the Python verifier said nothing"
    );
}

/// Ground-truth labels move the fairness figures: with keys required,
/// `POST /govgate/feedback` takes them only from a caller with a key (401
/// `caller_unauthenticated` otherwise, nothing recorded or counted), and
/// the `feedback_received` entry names the sender and how it was
/// established, which both verifiers accept.
#[tokio::test]
async fn feedback_labels_need_an_authenticated_sender_who_is_named_in_the_entry() {
    let upstream = TestUpstream::start().await;
    let (key, key_entry) = new_key(&["--caller", "svc-backoffice", "--id", "bo-1"]);
    let mut gateway = Gateway::start(&format!(
        "[auth]\nrequire_api_key = true\n{key_entry}{}",
        crate::kpi::kpi_models(&upstream.url())
    ))
    .await;
    let bearer = format!("Bearer {key}");
    let served = send(
        Method::POST,
        &gateway.url("/v2/models/scorer/infer"),
        &[("authorization", &bearer)],
        r#"{"scores": [0.9], "sex": ["f"], "amount": [10]}"#,
    )
    .await;
    assert_eq!(served.status, 200, "{}", served.text());
    let label = format!(
        r#"{{"decision_id": "{}", "row": 0, "label": true}}"#,
        served.decision_id()
    );
    let feedback = |headers: Vec<(&'static str, String)>| {
        let url = gateway.url("/govgate/feedback");
        let body = label.clone();
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            send(Method::POST, &url, &headers, body).await
        }
    };

    for headers in [
        vec![("x-govgate-caller", "svc-backoffice".to_owned())],
        vec![(
            "authorization",
            "Bearer ggk_00000000000000000000000000000000".to_owned(),
        )],
    ] {
        let refused = feedback(headers).await;
        assert_eq!(refused.status, 401, "{}", refused.text());
        assert_eq!(refused.error_code(), "caller_unauthenticated");
        assert!(refused.headers.contains_key("www-authenticate"));
    }
    let applied = feedback(vec![("authorization", bearer.clone())]).await;
    assert_eq!(applied.status, 200, "{}", applied.text());
    assert_eq!(
        applied.json()["results"][0]["result"],
        "applied",
        "{}",
        applied.text()
    );

    let entries = gateway.entries().await;
    let received: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["kind"] == "feedback_received")
        .collect();
    assert_eq!(received.len(), 1, "the refused labels were not recorded");
    assert_eq!(received[0]["caller"], "svc-backoffice");
    assert_eq!(
        received[0]["auth"],
        serde_json::json!({"method": "api_key", "key_id": "bo-1"})
    );
    assert!(gateway.stop().await.success());
    gateway.export_both_accept("bundle", &[]);
}
