//! KServe V2 over gRPC through the gateway: a real gRPC model server and
//! a real gRPC client over HTTP/2. Message bytes pass unchanged both ways,
//! approval and policies apply as over REST (the policies and the KPIs
//! read the same REST form), refusals are gRPC statuses carrying the
//! gateway's code, and every call is in the ledger before its trailers
//! leave.

use crate::support::governance::admin_call;
use crate::support::grpc::{GrpcUpstream, call, call_framed, call_request, connect};
use crate::support::{Gateway, TestUpstream, send};
use bytes::Bytes;
use govgate::kserve_grpc::frame;
use govgate::kserve_grpc::messages::{
    InferTensorContents, ModelInferRequest, ModelInferResponse, ModelMetadataRequest,
    ModelMetadataResponse, ModelReadyRequest, ModelReadyResponse, ServerLiveRequest,
    ServerLiveResponse, ServerMetadataRequest, ServerMetadataResponse, ServerReadyRequest,
    ServerReadyResponse, model_infer_request::InferInputTensor,
};
use http::Method;
use http_body_util::BodyExt;
use prost::Message;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A gRPC model with two versions; the second one reaches the upstream
/// under another name.
fn grpc_models(upstream: &str) -> String {
    format!(
        r#"
[[models]]
name = "credit"
protocol = "kserve_v2_grpc"
default_version = "1"
[[models.versions]]
version = "1"
upstream = "{upstream}"
[[models.versions]]
version = "2"
upstream = "{upstream}"
upstream_model = "credit-upstream-two"
"#
    )
}

fn tensor(
    name: &str,
    datatype: &str,
    contents: InferTensorContents,
    rows: i64,
) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape: vec![rows],
        contents: Some(contents),
        ..Default::default()
    }
}

/// Two rows: scores, the protected attribute `sex` (raw BYTES), `amount`.
fn infer_request(model: &str, version: &str, scores: &[f32], sexes: &[&str]) -> ModelInferRequest {
    let rows = scores.len() as i64;
    let mut raw_sex = Vec::new();
    for sex in sexes {
        raw_sex.extend_from_slice(&(sex.len() as u32).to_le_bytes());
        raw_sex.extend_from_slice(sex.as_bytes());
    }
    let amounts = (1..=rows).map(|i| i * 10).collect();
    ModelInferRequest {
        model_name: model.into(),
        model_version: version.into(),
        id: "r1".into(),
        inputs: vec![
            tensor(
                "score",
                "FP32",
                InferTensorContents {
                    fp32_contents: scores.to_vec(),
                    ..Default::default()
                },
                rows,
            ),
            tensor(
                "amount",
                "INT64",
                InferTensorContents {
                    int64_contents: amounts,
                    ..Default::default()
                },
                rows,
            ),
            InferInputTensor {
                name: "sex".into(),
                datatype: "BYTES".into(),
                shape: vec![rows],
                ..Default::default()
            },
        ],
        // raw_input_contents holds every input's data when it is used.
        raw_input_contents: vec![
            scores.iter().flat_map(|v| v.to_le_bytes()).collect(),
            (1..=rows).flat_map(|i| (i * 10).to_le_bytes()).collect(),
            raw_sex,
        ],
        ..Default::default()
    }
}

/// Approves and activates version 1 only: version 2 stays proposed.
async fn approve_first_only(gateway: &Gateway) {
    for approver in ["ai-officer", "security-officer"] {
        let path = "/admin/models/credit/versions/1/approve";
        let reply = admin_call(&gateway.admin, Some(approver), Method::POST, path, "").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let path = "/admin/models/credit/versions/1/activate";
    let reply = admin_call(&gateway.admin, Some("ops"), Method::POST, path, "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn model_infer_passes_byte_exact_both_ways_and_is_recorded_before_its_trailers() {
    let upstream = GrpcUpstream::start().await;
    let gateway = Gateway::start(&grpc_models(&upstream.url())).await;
    let request = infer_request("credit", "", &[0.9, 0.1], &["f", "m"]);
    let sent = frame(&request.encode_to_vec());
    let reply = call_framed(&gateway.public, "ModelInfer", sent.clone()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/grpc");
    assert_eq!(reply.grpc("grpc-status"), "0", "{reply:?}");
    assert_eq!(reply.grpc("x-upstream-trailer"), "kept");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/inference.GRPCInferenceService/ModelInfer");
    assert!(seen[0].body == sent, "the upstream got the client's bytes");
    assert_eq!(seen[0].headers["te"], "trailers");
    assert!(
        reply.body == seen[0].answered,
        "the client got the upstream's bytes"
    );
    let answer = ModelInferResponse::decode(reply.message()).unwrap();
    assert_eq!(answer.model_name, "credit");

    let id = reply.decision_id();
    let decision = gateway.decision(&id).await;
    assert_eq!(decision["route"], "kserve_v2_grpc.infer");
    assert_eq!(decision["protocol"], "kserve_v2_grpc");
    assert_eq!(decision["model"], "credit");
    assert_eq!(decision["version"], "1");
    assert_eq!(decision["outcome"], "streaming");
    assert_eq!(decision["request"]["length"], sent.len());
    // The trailers were released after the stream's end was recorded.
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["outcome"], "served");
    assert_eq!(end["decision_seq"], decision["seq"]);
    assert_eq!(end["released_bytes"], reply.body.len());
}

#[tokio::test]
async fn the_models_own_grpc_error_reaches_the_client_unchanged_and_is_recorded() {
    let upstream = GrpcUpstream::start().await;
    let gateway = Gateway::start(&grpc_models(&upstream.url())).await;
    let mut request = infer_request("credit", "", &[0.7], &["f"]);
    request.id = "fail".into();
    let reply = call(&gateway.public, "ModelInfer", &request).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty());
    assert_eq!(reply.grpc("grpc-status"), "3", "{reply:?}");
    assert_eq!(
        reply.grpc("grpc-message"),
        "the model refuses: shape [1] expected"
    );
    assert_eq!(reply.grpc("govgate-code"), "", "not the gateway's refusal");
    let id = reply.decision_id();
    assert_eq!(gateway.decision(&id).await["outcome"], "streaming");
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["outcome"], "served");
    assert_eq!(end["released_bytes"], 0);
}

#[tokio::test]
async fn an_upstream_model_name_is_spliced_into_the_message_and_nothing_else_changes() {
    let upstream = GrpcUpstream::start().await;
    let gateway = Gateway::start(&grpc_models(&upstream.url())).await;
    let request = infer_request("credit", "2", &[0.7], &["f"]);
    let reply = call(&gateway.public, "ModelInfer", &request).await;
    assert_eq!(reply.grpc("grpc-status"), "0", "{reply:?}");
    let seen = upstream.seen();
    let forwarded = ModelInferRequest::decode(&seen[0].body[5..]).unwrap();
    assert_eq!(
        forwarded,
        ModelInferRequest {
            model_name: "credit-upstream-two".into(),
            ..request
        }
    );
    assert_eq!(gateway.decision(&reply.decision_id()).await["version"], "2");
}

#[tokio::test]
async fn an_unapproved_or_unknown_version_is_refused_with_a_grpc_status_and_not_forwarded() {
    let upstream = GrpcUpstream::start().await;
    let gateway = Gateway::start_pending("", &grpc_models(&upstream.url())).await;
    approve_first_only(&gateway).await;

    let reply = call(
        &gateway.public,
        "ModelInfer",
        &infer_request("credit", "2", &[0.7], &["f"]),
    )
    .await;
    assert_eq!(reply.status, 200, "gRPC statuses travel in HTTP 200");
    assert!(reply.body.is_empty(), "a trailers-only answer");
    assert_eq!(reply.grpc("grpc-status"), "9", "FAILED_PRECONDITION");
    assert_eq!(reply.grpc("govgate-code"), "model_version_not_approved");
    assert_eq!(
        reply.grpc("grpc-message"),
        "model_version_not_approved: version `2` of model `credit` is not approved (it is proposed)"
    );
    let decision = gateway.decision(&reply.decision_id()).await;
    assert_eq!(decision["outcome"], "blocked");
    assert_eq!(decision["status"], 403);
    assert_eq!(decision["error_code"], "model_version_not_approved");
    assert_eq!(decision["route"], "kserve_v2_grpc.infer");
    assert_eq!(decision["version"], "2");

    for (method, message, status, code) in [
        (
            "ModelInfer",
            infer_request("credit", "9", &[0.7], &["f"]).encode_to_vec(),
            "5",
            "unknown_model_version",
        ),
        (
            "ModelMetadata",
            ModelMetadataRequest {
                name: "nope".into(),
                version: String::new(),
            }
            .encode_to_vec(),
            "5",
            "unknown_model",
        ),
        (
            "ModelReady",
            ModelReadyRequest {
                name: "credit".into(),
                version: "2".into(),
            }
            .encode_to_vec(),
            "9",
            "model_version_not_approved",
        ),
        ("ModelStreamInfer", Vec::new(), "12", "route_not_found"),
    ] {
        let reply = call_framed(&gateway.public, method, frame(&message)).await;
        assert_eq!(reply.grpc("grpc-status"), status, "{method}: {reply:?}");
        assert_eq!(reply.grpc("govgate-code"), code, "{method}");
        let decision = gateway.decision(&reply.decision_id()).await;
        assert_eq!(decision["error_code"], code, "{method}");
    }
    // A body that is not one uncompressed message.
    let reply = call_framed(
        &gateway.public,
        "ModelInfer",
        Bytes::from_static(b"\x01\0\0\0\x01x"),
    )
    .await;
    assert_eq!(reply.grpc("grpc-status"), "3", "INVALID_ARGUMENT");
    assert_eq!(reply.grpc("govgate-code"), "malformed_body");
    assert!(upstream.seen().is_empty(), "nothing reached the upstream");

    // The approved version serves.
    let reply = call(
        &gateway.public,
        "ModelInfer",
        &infer_request("credit", "1", &[0.7], &["f"]),
    )
    .await;
    assert_eq!(reply.grpc("grpc-status"), "0", "{reply:?}");
    assert_eq!(upstream.seen().len(), 1);
}

#[tokio::test]
async fn metadata_and_ready_are_forwarded_and_server_calls_are_the_gateways_own() {
    let upstream = GrpcUpstream::start().await;
    let gateway = Gateway::start(&grpc_models(&upstream.url())).await;
    let reply = call(
        &gateway.public,
        "ModelMetadata",
        &ModelMetadataRequest {
            name: "credit".into(),
            version: "2".into(),
        },
    )
    .await;
    assert_eq!(reply.grpc("grpc-status"), "0", "{reply:?}");
    let metadata = ModelMetadataResponse::decode(reply.message()).unwrap();
    assert_eq!(
        metadata.name, "credit-upstream-two",
        "the upstream's own answer"
    );
    let decision = gateway.decision(&reply.decision_id()).await;
    assert_eq!(decision["route"], "kserve_v2_grpc.metadata");
    assert_eq!(decision["version"], "2");

    let reply = call(
        &gateway.public,
        "ModelReady",
        &ModelReadyRequest {
            name: "credit".into(),
            version: String::new(),
        },
    )
    .await;
    assert!(ModelReadyResponse::decode(reply.message()).unwrap().ready);
    let decision = gateway.decision(&reply.decision_id()).await;
    assert_eq!(decision["route"], "kserve_v2_grpc.ready");
    assert_eq!(decision["version"], "1");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].path, "/inference.GRPCInferenceService/ModelReady");

    let live = call(&gateway.public, "ServerLive", &ServerLiveRequest {}).await;
    assert!(ServerLiveResponse::decode(live.message()).unwrap().live);
    assert_eq!(live.grpc("grpc-status"), "0");
    let ready = call(&gateway.public, "ServerReady", &ServerReadyRequest {}).await;
    assert!(ServerReadyResponse::decode(ready.message()).unwrap().ready);
    let server = call(&gateway.public, "ServerMetadata", &ServerMetadataRequest {}).await;
    assert_eq!(
        ServerMetadataResponse::decode(server.message())
            .unwrap()
            .name,
        "govgate"
    );
    assert_eq!(upstream.seen().len(), 2, "server calls stay at the gateway");
}

const DENY_POLICY: &str = r#"package govgate

import rego.v1

deny contains "a row is marked blocked" if {
	input.stage == "request"
	some tensor in input.request.inputs
	tensor.name == "sex"
	"blocked" in tensor.data
}
"#;

#[tokio::test]
async fn a_policy_denial_on_the_rest_form_of_the_tensors_is_a_permission_denied_status() {
    let upstream = GrpcUpstream::start().await;
    let policies = crate::reviews::policy_dir(&[("deny.rego", DENY_POLICY)]);
    let config = format!(
        "{}\n[review]\npolicies_dir = \"{}\"\n",
        grpc_models(&upstream.url()),
        policies.path().display()
    );
    let gateway = Gateway::start(&config).await;
    let denied = infer_request("credit", "", &[0.7, 0.2], &["f", "blocked"]);
    let reply = call(&gateway.public, "ModelInfer", &denied).await;
    assert_eq!(
        reply.grpc("grpc-status"),
        "7",
        "PERMISSION_DENIED: {reply:?}"
    );
    assert_eq!(reply.grpc("govgate-code"), "policy_denied");
    assert_eq!(
        reply.grpc("grpc-message"),
        "policy_denied: denied by policy: a row is marked blocked"
    );
    let decision = gateway.decision(&reply.decision_id()).await;
    assert_eq!(decision["outcome"], "denied");
    assert_eq!(decision["policy"]["request"]["action"], "deny");
    assert!(
        upstream.seen().is_empty(),
        "a denial never reaches the upstream"
    );

    let allowed = infer_request("credit", "", &[0.7, 0.2], &["f", "m"]);
    let reply = call(&gateway.public, "ModelInfer", &allowed).await;
    assert_eq!(reply.grpc("grpc-status"), "0", "{reply:?}");
    assert_eq!(upstream.seen().len(), 1);
}

/// The same KPIs for a gRPC model and a REST twin.
fn kpi_section() -> &'static str {
    r#"
[models.kpi]
window = 4
min_group_size = 1
reference_rows = 2
[models.kpi.outcome]
tensor = "score"
threshold = 0.5
[[models.kpi.attributes]]
name = "sex"
tensor = "sex"
[[models.kpi.features]]
name = "amount"
kind = "numeric"
tensor = "amount"
"#
}

#[tokio::test]
async fn kpis_read_a_model_infer_as_they_read_its_rest_twin() {
    let grpc_upstream = GrpcUpstream::start().await;
    let rest_upstream = TestUpstream::start().await;
    let config = format!(
        r#"
[[models]]
name = "credit-grpc"
protocol = "kserve_v2_grpc"
{kpi}
[[models.versions]]
version = "1"
upstream = "{grpc}"

[[models]]
name = "credit-rest"
protocol = "kserve_v2"
{kpi}
[[models.versions]]
version = "1"
upstream = "{rest}"
"#,
        kpi = kpi_section(),
        grpc = grpc_upstream.url(),
        rest = rest_upstream.url(),
    );
    let gateway = Gateway::start(&config).await;
    // The model's own error status carries no prediction: not read, not
    // counted as unread.
    let mut failing = infer_request("credit-grpc", "", &[0.9, 0.1], &["f", "m"]);
    failing.id = "fail".into();
    let reply = call(&gateway.public, "ModelInfer", &failing).await;
    assert_eq!(reply.grpc("grpc-status"), "3", "{reply:?}");
    for (scores, sexes) in [([0.9f32, 0.1], ["f", "m"]), ([0.8, 0.7], ["f", "m"])] {
        let reply = call(
            &gateway.public,
            "ModelInfer",
            &infer_request("credit-grpc", "", &scores, &sexes),
        )
        .await;
        assert_eq!(reply.grpc("grpc-status"), "0", "{reply:?}");
        // The REST twin: the echoing test upstream answers with the
        // request, so the request carries the outputs the KPIs read.
        let body = serde_json::json!({
            "inputs": [
                {"name": "amount", "shape": [2], "datatype": "INT64", "data": [10, 20]},
                {"name": "sex", "shape": [2], "datatype": "BYTES", "data": sexes},
            ],
            "outputs": [{"name": "score", "shape": [2], "datatype": "FP32", "data": scores}],
        });
        let rest = send(
            Method::POST,
            &gateway.url("/v2/models/credit-rest/infer"),
            &[],
            body.to_string(),
        )
        .await;
        assert_eq!(rest.status, 200, "{}", rest.text());
    }
    let expected: Vec<String> = ["credit-grpc", "credit-rest"]
        .into_iter()
        .flat_map(|model| {
            [
                format!(r#"govgate_kpi_rows_total{{model="{model}"}} 4"#),
                format!(r#"govgate_kpi_selection_rate{{attribute="sex",group="f",model="{model}"}} 1"#),
                format!(
                    r#"govgate_kpi_selection_rate{{attribute="sex",group="m",model="{model}"}} 0.5"#
                ),
                format!(
                    r#"govgate_kpi_demographic_parity_difference{{attribute="sex",model="{model}"}} 0.5"#
                ),
                format!(
                    r#"govgate_kpi_outcomes_total{{attribute="sex",group="f",model="{model}",outcome="positive"}} 2"#
                ),
                format!(
                    r#"govgate_kpi_outcomes_total{{attribute="sex",group="m",model="{model}",outcome="negative"}} 1"#
                ),
            ]
        })
        .collect();
    let psi_of = |text: &str, model: &str| {
        let prefix = format!(r#"govgate_kpi_psi{{feature="amount",model="{model}",version="1"}} "#);
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
    };
    // The counters move as rows arrive; the gauges follow when the KPIs
    // are next computed: wait for both, for both models.
    let mut text = String::new();
    for _ in 0..100 {
        text = gateway.metrics().await;
        let psi_settled = matches!(
            (psi_of(&text, "credit-grpc"), psi_of(&text, "credit-rest")),
            (Some(a), Some(b)) if a == b
        );
        if psi_settled && expected.iter().all(|line| text.contains(line.as_str())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for line in &expected {
        assert!(text.contains(line.as_str()), "{line}\n{text}");
    }
    let psi =
        |model: &str| psi_of(&text, model).unwrap_or_else(|| panic!("no PSI for {model}\n{text}"));
    assert_eq!(psi("credit-grpc"), psi("credit-rest"));
    assert!(
        !text.contains(r#"govgate_kpi_selector_misses_total{model="credit-grpc""#),
        "{text}"
    );
    let unread: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with(r#"govgate_kpi_unread_answers_total{model="credit-grpc""#))
        .collect();
    assert!(!unread.is_empty(), "{text}");
    assert!(unread.iter().all(|line| line.ends_with(" 0")), "{unread:?}");
}

#[tokio::test]
async fn a_client_that_resets_mid_call_is_recorded_as_disconnected() {
    let upstream = GrpcUpstream::start().await;
    let gateway = Gateway::start(&grpc_models(&upstream.url())).await;
    let mut request = infer_request("credit", "", &[0.7], &["f"]);
    request.id = "pause".into();
    let mut send = connect(&gateway.public).await;
    send.ready().await.unwrap();
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        send.send_request(call_request(
            &gateway.public,
            "ModelInfer",
            frame(&request.encode_to_vec()),
        )),
    )
    .await
    .unwrap()
    .unwrap();
    let id = response.headers()["govgate-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.is_data(), "the message arrives before the trailers");
    // The client resets its stream (and leaves) before the trailers.
    drop(body);
    drop(send);
    let end = gateway.wait_for_stream_end(&id).await;
    assert_eq!(end["outcome"], "error");
    assert_eq!(end["error_code"], "client_disconnected");
    assert_eq!(gateway.decision(&id).await["outcome"], "streaming");
    for _ in 0..100 {
        if upstream.state.paused_dropped.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the upstream's stream was not dropped");
}

const HOLD_POLICY: &str = r#"package govgate

import rego.v1

hold contains "held for review" if {
	input.stage == "request"
	input.request.id == "hold-me"
}
"#;

#[tokio::test]
async fn a_held_answer_is_an_aborted_status_naming_where_to_poll() {
    let upstream = GrpcUpstream::start().await;
    let policies = crate::reviews::policy_dir(&[("hold.rego", HOLD_POLICY)]);
    let config = format!(
        "{}\n[review]\npolicies_dir = \"{}\"\n",
        grpc_models(&upstream.url()),
        policies.path().display()
    );
    let gateway = Gateway::start(&config).await;
    let mut request = infer_request("credit", "", &[0.7], &["f"]);
    request.id = "hold-me".into();
    let reply = call(&gateway.public, "ModelInfer", &request).await;
    assert_eq!(reply.grpc("grpc-status"), "10", "ABORTED: {reply:?}");
    assert_eq!(reply.grpc("govgate-code"), "held");
    assert!(reply.body.is_empty(), "the held answer is not released");
    let id = reply.decision_id();
    let poll = format!("/govgate/decisions/{id}");
    assert_eq!(reply.headers["location"], poll.as_str());
    assert_eq!(
        reply.grpc("grpc-message"),
        format!("held: the answer is held for human review; poll {poll}")
    );
    assert!(reply.headers.contains_key("govgate-review-id"), "{reply:?}");
    let decision = gateway.decision(&id).await;
    assert_eq!(decision["outcome"], "held");
    assert_eq!(decision["route"], "kserve_v2_grpc.infer");
    assert_eq!(
        upstream.seen().len(),
        1,
        "the model answered; the answer is held"
    );
}

#[tokio::test]
async fn a_missing_caller_and_a_spent_rate_are_unauthenticated_and_resource_exhausted() {
    let upstream = GrpcUpstream::start().await;
    let config = format!(
        "{}\n[models.rate_limit]\nrequests_per_second = 0.1\nburst = 1\n",
        grpc_models(&upstream.url())
    );
    let gateway = Gateway::start_with("require_caller = true", &config).await;
    let request = frame(&infer_request("credit", "", &[0.7], &["f"]).encode_to_vec());

    let anonymous = call_framed(&gateway.public, "ModelInfer", request.clone()).await;
    assert_eq!(
        anonymous.grpc("grpc-status"),
        "16",
        "UNAUTHENTICATED: {anonymous:?}"
    );
    assert_eq!(anonymous.grpc("govgate-code"), "caller_missing");

    let as_caller = |body: Bytes| {
        let base = gateway.public.clone();
        async move {
            let mut send = connect(&base).await;
            send.ready().await.unwrap();
            let mut request = call_request(&base, "ModelInfer", body);
            request
                .headers_mut()
                .insert("x-govgate-caller", http::HeaderValue::from_static("svc-a"));
            let response = send.send_request(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let collected = body.collect().await.unwrap();
            (parts.headers, collected.trailers().cloned())
        }
    };
    let (_, trailers) = as_caller(request.clone()).await;
    assert_eq!(trailers.expect("served")["grpc-status"], "0");
    let (headers, trailers) = as_caller(request).await;
    assert!(trailers.is_none(), "trailers-only");
    assert_eq!(headers["grpc-status"], "8", "RESOURCE_EXHAUSTED");
    assert_eq!(headers["govgate-code"], "rate_limited");
    let id = headers["govgate-decision-id"].to_str().unwrap();
    let decision = gateway.decision(id).await;
    assert_eq!(decision["outcome"], "blocked");
    assert_eq!(decision["status"], 429);
    assert_eq!(decision["caller"], "svc-a");
    assert_eq!(upstream.seen().len(), 1);
}

#[tokio::test]
async fn model_infer_over_tls_with_h2_by_alpn_is_served_and_recorded() {
    use crate::listener_tls::{Ca, tls_section};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::sync::Arc;

    let upstream = GrpcUpstream::start().await;
    let ca = Ca::new();
    let certs = tempfile::tempdir().unwrap();
    ca.issue_into(certs.path());
    let gateway = Gateway::start_with(
        &tls_section("public_tls", certs.path(), 0),
        &grpc_models(&upstream.url()),
    )
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    // SPEC (gRPC over HTTP/2): a TLS client offers h2 by ALPN.
    config.alpn_protocols = vec![b"h2".to_vec()];
    let authority = gateway.public.split_once("://").unwrap().1.to_owned();
    let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let sent = frame(&infer_request("credit", "", &[0.7], &["f"]).encode_to_vec());
    send.ready().await.unwrap();
    let response = send
        .send_request(call_request(&gateway.public, "ModelInfer", sent.clone()))
        .await
        .unwrap();
    let id = response.headers()["govgate-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().expect("trailers")["grpc-status"], "0");
    let seen = upstream.seen();
    assert!(seen[0].body == sent, "the upstream got the client's bytes");
    assert!(collected.to_bytes() == seen[0].answered);
    // The receipt, on the same h2 connection.
    send.ready().await.unwrap();
    let receipt = send
        .send_request(
            http::Request::get(gateway.url(&format!("/govgate/receipts/{id}/entry")))
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let entry = receipt.into_body().collect().await.unwrap().to_bytes();
    let entry: serde_json::Value = serde_json::from_slice(&entry).unwrap();
    assert_eq!(entry["route"], "kserve_v2_grpc.infer");
    assert_eq!(entry["outcome"], "streaming");
}

/// A standard gRPC client (tonic, over its own HTTP/2 connection) through
/// the gateway: the answer decodes as the model sent it, the decision id
/// comes as metadata, and a refusal is a `Status` with the gateway's code
/// in its metadata; nothing refused reaches the model.
#[tokio::test]
async fn a_standard_grpc_client_is_served_and_refused_with_a_status() {
    let upstream = GrpcUpstream::start().await;
    let gateway = Gateway::start_pending("", &grpc_models(&upstream.url())).await;
    approve_first_only(&gateway).await;
    let channel = tonic::transport::Endpoint::from_shared(gateway.public.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    let path =
        || http::uri::PathAndQuery::from_static("/inference.GRPCInferenceService/ModelInfer");

    client.ready().await.unwrap();
    let served: tonic::Response<ModelInferResponse> = client
        .unary(
            tonic::Request::new(infer_request("credit", "1", &[0.9, 0.1], &["f", "m"])),
            path(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect("served");
    assert_eq!(served.get_ref().model_name, "credit");
    let id = served
        .metadata()
        .get("govgate-decision-id")
        .expect("decision id")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(gateway.decision(&id).await["route"], "kserve_v2_grpc.infer");

    client.ready().await.unwrap();
    let refused = client
        .unary::<_, ModelInferResponse, _>(
            tonic::Request::new(infer_request("credit", "2", &[0.9], &["f"])),
            path(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("version 2 is not approved");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert_eq!(
        refused.metadata().get("govgate-code").unwrap(),
        "model_version_not_approved"
    );
    assert!(
        refused.message().contains("model_version_not_approved"),
        "{refused:?}"
    );
    assert_eq!(
        upstream.seen().len(),
        1,
        "only the served call reached the model"
    );
}

/// A model server on the Rust gRPC stack's own server side (tonic's
/// unary handler and prost codec on hyper's HTTP/2), answering each
/// ModelInfer with the model name it decoded; every name it got.
async fn tonic_model_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    #[derive(Clone)]
    struct EchoModel(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    impl tower_service::Service<tonic::Request<ModelInferRequest>> for EchoModel {
        type Response = tonic::Response<ModelInferResponse>;
        type Error = tonic::Status;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, request: tonic::Request<ModelInferRequest>) -> Self::Future {
            let request = request.into_inner();
            self.0.lock().unwrap().push(request.model_name.clone());
            std::future::ready(Ok(tonic::Response::new(ModelInferResponse {
                model_name: request.model_name,
                model_version: "1".into(),
                id: request.id,
                ..Default::default()
            })))
        }
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let model = EchoModel(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let model = model.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let model = model.clone();
                        async move {
                            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<
                                ModelInferResponse,
                                ModelInferRequest,
                            >::default(
                            ));
                            Ok::<_, std::convert::Infallible>(grpc.unary(model, request).await)
                        }
                    },
                );
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
            });
        }
    });
    (url, seen)
}

/// tonic on both sides of the gateway: a standard client's call reaches a
/// standard server, which decodes the message with the name the version
/// gives the model upstream; the answer comes back whole and recorded.
#[tokio::test]
async fn a_standard_grpc_server_behind_the_gateway_serves_a_standard_client() {
    let (url, seen) = tonic_model_server().await;
    let gateway = Gateway::start(&grpc_models(&url)).await;
    let channel = tonic::transport::Endpoint::from_shared(gateway.public.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    let path =
        || http::uri::PathAndQuery::from_static("/inference.GRPCInferenceService/ModelInfer");
    for (version, upstream_name) in [("1", "credit"), ("2", "credit-upstream-two")] {
        client.ready().await.unwrap();
        let served: tonic::Response<ModelInferResponse> = client
            .unary(
                tonic::Request::new(infer_request("credit", version, &[0.9, 0.1], &["f", "m"])),
                path(),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .expect("served");
        assert_eq!(served.get_ref().model_name, upstream_name);
        assert_eq!(served.get_ref().id, "r1");
        let id = served
            .metadata()
            .get("govgate-decision-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let decision = gateway.decision(&id).await;
        assert_eq!(decision["version"], version);
        assert_eq!(decision["model"], "credit");
    }
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["credit".to_owned(), "credit-upstream-two".to_owned()]
    );
}

#[tokio::test]
async fn the_rest_form_of_the_tensors_counts_against_the_body_budget() {
    let upstream = GrpcUpstream::start().await;
    let config = format!(
        "{}\n[limits]\nmax_buffered_total_bytes = 1000000\n",
        grpc_models(&upstream.url())
    );
    let gateway = Gateway::start(&config).await;
    // 720 kB of tensors fit the budget; their REST form (each number as
    // text) is larger still and does not fit beside them.
    let rows = 30_000;
    let scores: Vec<f32> = (0..rows).map(|i| i as f32 / 3.0).collect();
    let sexes = vec!["f"; rows];
    let large = frame(&infer_request("credit", "", &scores, &sexes).encode_to_vec());
    assert!(large.len() < 750_000, "{}", large.len());
    let refused = call_framed(&gateway.public, "ModelInfer", large).await;
    assert_eq!(
        refused.grpc("grpc-status"),
        "14",
        "UNAVAILABLE, not {}",
        refused.grpc("govgate-code")
    );
    assert_eq!(refused.grpc("govgate-code"), "overloaded");
    assert!(upstream.seen().is_empty(), "refused before the upstream");

    let small = frame(&infer_request("credit", "", &[0.9], &["f"]).encode_to_vec());
    let served = call_framed(&gateway.public, "ModelInfer", small).await;
    assert_eq!(
        served.grpc("grpc-status"),
        "0",
        "{}",
        served.grpc("govgate-code")
    );
}
