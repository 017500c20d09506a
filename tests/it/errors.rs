//! Every refusal and failure answers with its JSON error code and status,
//! and is recorded as a decision.

use crate::models;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;

const CHAT: &str = "/v1/chat/completions";

#[tokio::test]
async fn body_at_the_limit_passes_and_one_byte_over_is_413() {
    let upstream = TestUpstream::start().await;
    let rest = format!(
        "[limits]\nmax_request_body_bytes = 1024\n{}",
        models(&upstream.url())
    );
    let gateway = Gateway::start(&rest).await;
    let at_limit = vec![b'a'; 1024];
    let over = vec![b'a'; 1025];

    let reply = send(Method::POST, &gateway.url("/m/echo"), &[], at_limit.clone()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, at_limit);

    let reply = send(Method::POST, &gateway.url("/m/echo"), &[], over.clone()).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error_code(), "body_too_large");
    assert_eq!(
        upstream.seen().len(),
        1,
        "the oversized body never reached the upstream"
    );

    // Same for an OpenAI body, checked before it is parsed.
    let mut json = br#"{"model":"chat","pad":""#.to_vec();
    json.resize(1025 - 2, b'x');
    json.extend_from_slice(b"\"}");
    assert_eq!(json.len(), 1025);
    let reply = send(
        Method::POST,
        &gateway.url(CHAT),
        &[("content-type", "application/json")],
        json,
    )
    .await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error_code(), "body_too_large");
    let decision = gateway.decision(&reply.decision_id()).await;
    assert_eq!(decision["outcome"], "error");
    assert_eq!(decision["error_code"], "body_too_large");
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    let upstream = TestUpstream::start().await;
    let rest = format!(
        "[limits]\nmax_request_body_bytes = 1024\n{}",
        models(&upstream.url())
    );
    let gateway = Gateway::start(&rest).await;
    // A streamed body has no Content-Length: the limit is enforced while reading.
    let chunks: Vec<Result<bytes::Bytes, std::convert::Infallible>> = vec![
        Ok(bytes::Bytes::from(vec![b'a'; 600])),
        Ok(bytes::Bytes::from(vec![b'b'; 600])),
    ];
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|chunk| chunk.map(http_body::Frame::data)),
    ));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let request = http::Request::post(gateway.url("/m/echo"))
        .body(body)
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 413);
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn upstream_down_is_502_upstream_unreachable() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway = Gateway::start(&models(&format!("http://127.0.0.1:{port}"))).await;
    let reply = gateway.infer("{}").await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.error_code(), "upstream_unreachable");
    assert!(
        !String::from_utf8_lossy(&reply.body).contains(&port.to_string()),
        "upstream address not leaked"
    );
    let decision = gateway.decision(&reply.decision_id()).await;
    assert_eq!(
        (decision["outcome"].as_str(), decision["status"].as_u64()),
        (Some("error"), Some(502))
    );
}

#[tokio::test]
async fn upstream_too_slow_is_504_upstream_timeout() {
    let upstream = TestUpstream::start().await;
    let rest = format!(
        "[timeouts]\nfirst_byte_ms = 300\n{}",
        models(&upstream.url())
    );
    let gateway = Gateway::start(&rest).await;
    let started = std::time::Instant::now();
    let reply = gateway.get("/m/slow").await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.error_code(), "upstream_timeout");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "answered before the upstream did"
    );
}

#[tokio::test]
async fn unknown_model_and_version_are_404_and_blocked() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let cases = [
        (
            Method::POST,
            CHAT,
            r#"{"model":"gpt-nope","messages":[]}"#,
            "unknown_model",
            vec![],
        ),
        (
            Method::POST,
            "/v2/models/nope/infer",
            "{}",
            "unknown_model",
            vec![],
        ),
        // A kserve model asked for through the OpenAI API is not an OpenAI model.
        (
            Method::POST,
            CHAT,
            r#"{"model":"scorer","messages":[]}"#,
            "unknown_model",
            vec![],
        ),
        (
            Method::POST,
            "/v2/models/scorer/versions/9/infer",
            "{}",
            "unknown_model_version",
            vec![],
        ),
        (
            Method::POST,
            CHAT,
            r#"{"model":"chat"}"#,
            "unknown_model_version",
            vec![("govgate-model-version", "v9")],
        ),
    ];
    for (method, path, body, code, headers) in cases {
        let reply = send(method, &gateway.url(path), &headers, body).await;
        assert_eq!(reply.status, 404, "{path} {body}");
        assert_eq!(reply.error_code(), code, "{path} {body}");
        assert_eq!(reply.headers["content-type"], "application/json");
        assert_eq!(
            gateway.decision(&reply.decision_id()).await["outcome"],
            "blocked"
        );
    }
    assert!(upstream.seen().is_empty());
    // Requested versions that do not exist never become metric labels.
    let metrics = send(Method::GET, &format!("{}/metrics", gateway.admin), &[], "")
        .await
        .text();
    assert!(
        metrics.contains(r#"model="scorer",outcome="blocked",route="kserve_v2.infer",version="""#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"version="9""#), "{metrics}");
    assert!(!metrics.contains(r#"version="v9""#), "{metrics}");
}

#[tokio::test]
async fn malformed_openai_body_is_400() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    for body in [
        "not json",
        "[]",
        r#"{"messages":[]}"#,
        r#"{"model":42}"#,
        r#"{"model":"chat""#,
    ] {
        let reply = send(
            Method::POST,
            &gateway.url(CHAT),
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.error_code(), "malformed_body", "{body}");
        assert!(reply.json()["error"]["message"].as_str().unwrap().len() > 10);
    }
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn unmatched_path_and_wrong_method_have_codes() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let reply = gateway.get("/nowhere").await;
    assert_eq!(
        (reply.status.as_u16(), reply.error_code()),
        (404, "route_not_found".to_owned())
    );
    let reply = gateway.get(CHAT).await;
    assert_eq!(
        (reply.status.as_u16(), reply.error_code()),
        (405, "method_not_allowed".to_owned())
    );
}

#[tokio::test]
async fn required_caller_missing_is_401_and_present_is_recorded() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start_with(
        "require_caller = true\ncaller_header = \"x-user\"",
        &models(&upstream.url()),
    )
    .await;
    let body = r#"{"model":"chat","messages":[]}"#;
    let reply = send(Method::POST, &gateway.url(CHAT), &[], body).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error_code(), "caller_missing");
    let reply = send(
        Method::POST,
        &gateway.url(CHAT),
        &[("x-user", "alice@bank")],
        body,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        gateway.decision(&reply.decision_id()).await["caller"],
        "alice@bank"
    );
    assert_eq!(upstream.seen().len(), 1);
}
