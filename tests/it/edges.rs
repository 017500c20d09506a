//! Hostile and odd input at the edges of the request path, against the
//! real binary: paths that would escape an `http` model's prefix, client
//! text too long to record whole, JSON bodies no parser should be handed,
//! header fidelity both ways, answers that carry no body, version
//! headers and revocations, and the own-request rule of reviews.
//!
//! Requests go over raw sockets where a client library would normalise
//! or refuse them, and the upstream here records every request line it
//! reads, so "never forwarded" is checked where it matters.

use crate::support::governance::admin_call;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A model server over a raw socket: records each request head as read
/// (request line first) and answers by the path's last segment.
struct RawUpstream {
    url: String,
    heads: Arc<Mutex<Vec<String>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl RawUpstream {
    async fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_raw(socket, seen.clone()));
            }
        });
        RawUpstream {
            url,
            heads,
            _task: task,
        }
    }

    /// The request lines received so far.
    fn request_lines(&self) -> Vec<String> {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .map(|head| head.lines().next().unwrap_or_default().to_owned())
            .collect()
    }
}

async fn serve_raw(socket: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut socket = BufReader::new(socket);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match socket.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let length = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if socket.read_exact(&mut body).await.is_err() {
            return;
        }
        seen.lock().unwrap().push(head.clone());
        let request_line = head.lines().next().unwrap_or_default().to_owned();
        let head_only = request_line.starts_with("HEAD ");
        let path = request_line.split(' ').nth(1).unwrap_or_default();
        let answer: &[u8] = match path.rsplit('/').next().unwrap_or_default() {
            "nocontent" => b"HTTP/1.1 204 No Content\r\nx-upstream: yes\r\n\r\n",
            "notmodified" => b"HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\n\r\n",
            "notmodified-sized" => {
                b"HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\ncontent-length: 1234\r\n\r\n"
            }
            "forge" => {
                b"HTTP/1.1 200 OK\r\ngovgate-review-id: forged\r\ngovgate-decision-id: forged\r\nGovGate-Receipt: /forged\r\ngovgate-anything: forged\r\nx-upstream: yes\r\ncontent-length: 2\r\n\r\nok"
            }
            "chunked" if head_only => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            "chunked" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            "sized" if head_only => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
            _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        };
        if socket.get_mut().write_all(answer).await.is_err() {
            return;
        }
    }
}

/// A response as read off the socket.
struct RawReply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawReply {
    /// The value of the first header named `name`.
    fn header(&self, name: &str) -> Option<String> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_owned())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!("not JSON ({err}): {}", String::from_utf8_lossy(&self.body))
        })
    }
}

/// Sends `request` as written to the gateway's public port (the
/// connection closes after one answer) and reads the whole answer.
async fn raw(gateway: &Gateway, request: &[u8]) -> RawReply {
    let addr = gateway.public.trim_start_matches("http://");
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut bytes))
        .await
        .expect("the gateway answers and closes within 10 s")
        .unwrap();
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {}", String::from_utf8_lossy(&bytes)));
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    RawReply {
        status,
        head,
        body: bytes[split + 4..].to_vec(),
    }
}

/// `METHOD target` with a Host header and `Connection: close`.
async fn raw_request(gateway: &Gateway, method: &str, target: &str) -> RawReply {
    let request = format!("{method} {target} HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n");
    raw(gateway, request.as_bytes()).await
}

/// How a decision ended: its outcome, or for a streamed answer (outcome
/// `streaming`) the outcome of its `stream_ended` entry.
async fn final_outcome(gateway: &Gateway, decision: &Value) -> Value {
    if decision["outcome"] != "streaming" {
        return decision["outcome"].clone();
    }
    for _ in 0..100 {
        let ended = gateway.entries().await.into_iter().find(|entry| {
            entry["kind"] == "stream_ended" && entry["decision_id"] == decision["decision_id"]
        });
        if let Some(ended) = ended {
            return ended["outcome"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no stream_ended entry for {decision}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn paths_that_could_leave_a_models_prefix_are_refused_recorded_and_never_forwarded() {
    let upstream = RawUpstream::start().await;
    let gateway = Gateway::start(&crate::models(&upstream.url)).await;
    let bad = [
        "/m/../secret",
        "/m/%2e%2e/secret",
        "/m/%2E%2e/secret",
        "/m/..%2fsecret",
        "/m/..%2Fsecret",
        "/m/.%2e/secret",
        "/m/%2e./secret",
        "/m/./../secret",
        "/m/./x",
        "/m/..",
        "/m/..;/secret",
        "/m/a%2fb",
        "/m/a%5cb",
        "/m/a%5Cb",
        "/m/..\\secret",
        "/m/a\\b",
        "/m/../secret?x=1",
        "/v2/models/../infer",
        "/v1/chat/../completions",
        "/nowhere/../m/x",
    ];
    for path in bad {
        for method in ["GET", "POST", "HEAD"] {
            let reply = raw_request(&gateway, method, path).await;
            assert_eq!(reply.status, 400, "{method} {path}: {}", reply.head);
            if method != "HEAD" {
                assert_eq!(reply.json()["error"]["code"], "path_not_allowed", "{path}");
            }
            let id = reply.header("govgate-decision-id").expect("a decision id");
            let decision = gateway.decision(&id).await;
            assert_eq!(decision["error_code"], "path_not_allowed", "{path}");
            assert_eq!(decision["outcome"], "error");
            assert_eq!(decision["status"], 400);
            assert_eq!(decision["route"], "unmatched");
            let without_query = path.split('?').next().unwrap();
            assert_eq!(decision["path"], without_query);
        }
    }
    // A KServe path segment that decodes to no UTF-8 is refused as JSON
    // and recorded (axum's own answer was plain text, unrecorded).
    let reply = raw_request(&gateway, "POST", "/v2/models/%ff/infer").await;
    assert_eq!(reply.status, 400, "{}", reply.head);
    assert_eq!(reply.json()["error"]["code"], "path_not_allowed");
    let decision = gateway
        .decision(&reply.header("govgate-decision-id").unwrap())
        .await;
    assert_eq!(decision["route"], "kserve_v2.infer");
    assert_eq!(decision["path"], "/v2/models/%ff/infer");
    assert_eq!(
        upstream.request_lines(),
        Vec::<String>::new(),
        "nothing reached the upstream"
    );

    // Good paths arrive exactly as sent, after the base path: the gateway
    // normalises nothing (hyper does not either: these went over a raw socket).
    let good = [
        ("/m", "/base/"),
        ("/m/", "/base/"),
        ("/m/a.b/c", "/base/a.b/c"),
        ("/m/.../x", "/base/.../x"),
        ("/m/.hidden/..x/x..", "/base/.hidden/..x/x.."),
        ("/m//double", "/base//double"),
        (
            "/m/a%20b?q=%2e%2e/..&r=%2f",
            "/base/a%20b?q=%2e%2e/..&r=%2f",
        ),
        ("/m/%2e%2e%2e", "/base/%2e%2e%2e"),
    ];
    for (path, _) in good {
        let reply = raw_request(&gateway, "GET", path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.head);
    }
    let expected: Vec<String> = good
        .iter()
        .map(|(_, upstream_path)| format!("GET {upstream_path} HTTP/1.1"))
        .collect();
    assert_eq!(upstream.request_lines(), expected);
}

#[tokio::test]
async fn decisions_record_the_path_but_not_the_query_and_cap_what_a_client_chooses() {
    let upstream = RawUpstream::start().await;
    let mut gateway = Gateway::start(&crate::models(&upstream.url)).await;

    let reply = raw_request(&gateway, "GET", "/m/report?token=s3cret").await;
    assert_eq!(reply.status, 200);
    let id = reply.header("govgate-decision-id").unwrap();
    let line = String::from_utf8(gateway.entry_lines().await.pop().unwrap()).unwrap();
    assert!(line.contains(&id) && !line.contains("s3cret"), "{line}");
    let decision = gateway.decision(&id).await;
    assert_eq!(decision["path"], "/m/report");
    assert!(decision.get("path_sha256").is_none());

    // A 1000-byte path keeps its first 256 bytes and the digest of the whole.
    let long_path = format!("/m/{}", "p".repeat(997));
    let reply = raw_request(&gateway, "GET", &long_path).await;
    let decision = gateway
        .decision(&reply.header("govgate-decision-id").unwrap())
        .await;
    assert_eq!(decision["path"], long_path[..256]);
    assert_eq!(decision["path_sha256"], sha256_hex(long_path.as_bytes()));

    // A 100 KB model name from an unauthenticated client, and a 10 KB caller.
    let name = "n".repeat(100_000);
    let caller = "c".repeat(10_000);
    let body = json!({ "model": name, "messages": [] }).to_string();
    let reply = send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[("x-govgate-caller", &caller)],
        body,
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert_eq!(reply.error_code(), "unknown_model");
    assert!(reply.body.len() < 1024, "the answer echoes a cut name");
    let id = reply.decision_id();
    let line = gateway
        .entry_lines()
        .await
        .into_iter()
        .find(|line| String::from_utf8_lossy(line).contains(&id))
        .unwrap();
    assert!(line.len() < 2048, "the entry is {} bytes", line.len());
    let decision: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(decision["model"], name[..128]);
    assert_eq!(decision["model_sha256"], sha256_hex(name.as_bytes()));
    assert_eq!(decision["caller"], caller[..128]);
    assert_eq!(decision["caller_sha256"], sha256_hex(caller.as_bytes()));
    assert_eq!(decision["outcome"], "blocked");

    // A version label longer than any can be: refused without a look-up, cut.
    let version = "v".repeat(5_000);
    let reply = send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[("govgate-model-version", &version)],
        r#"{"model":"chat","messages":[]}"#,
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert_eq!(reply.error_code(), "unknown_model_version");
    let decision = gateway.decision(&reply.decision_id()).await;
    assert_eq!(decision["version"], version[..128]);
    assert_eq!(decision["version_sha256"], sha256_hex(version.as_bytes()));

    // Short values are kept whole, with no digest members.
    let reply = send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[("x-govgate-caller", "svc-a")],
        r#"{"model":"chat","messages":[]}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let decision = gateway.decision(&reply.decision_id()).await;
    assert_eq!(decision["path"], "/v1/chat/completions");
    assert_eq!(
        (
            &decision["caller"],
            &decision["model"],
            &decision["version"]
        ),
        (&json!("svc-a"), &json!("chat"), &json!("v1"))
    );
    for member in [
        "caller_sha256",
        "model_sha256",
        "version_sha256",
        "path_sha256",
    ] {
        assert!(decision.get(member).is_none(), "{member}");
    }

    // Both verifiers accept the ledger with its new members.
    assert!(gateway.stop().await.success());
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let said = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let export = gateway.cli(&["export", "--payloads", "--out", bundle.to_str().unwrap()]);
    assert!(export.status.success(), "{}", said(&export));
    let rust = gateway.cli(&[
        "verify",
        "--bundle",
        bundle.to_str().unwrap(),
        "--vkey",
        &gateway.vkey,
    ]);
    assert!(rust.status.success(), "{}", said(&rust));
    let python = crate::support::python_verifier(&[
        "bundle".as_ref(),
        "--vkey".as_ref(),
        gateway.vkey.as_ref(),
        bundle.as_os_str(),
    ]);
    assert!(python.status.success(), "{}", said(&python));
}

#[tokio::test]
async fn json_bodies_nested_too_deep_or_not_utf8_are_refused() {
    let upstream = RawUpstream::start().await;
    let gateway = Gateway::start(&crate::models(&upstream.url)).await;
    let deep = |levels: usize| {
        format!(
            r#"{{"model":"chat","messages":[],"x":{}{}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
        .into_bytes()
    };
    let mut not_utf8 = br#"{"model":"chat","messages":[{"role":"user","content":""#.to_vec();
    not_utf8.extend_from_slice(b"\xff\xfe");
    not_utf8.extend_from_slice(br#""}]}"#);
    let kserve_deep = format!(r#"{{"inputs":{}{}}}"#, "[".repeat(5000), "]".repeat(5000));
    let mut kserve_not_utf8 = br#"{"inputs":[{"name":""#.to_vec();
    kserve_not_utf8.extend_from_slice(b"\xc3\x28");
    kserve_not_utf8.extend_from_slice(br#""}]}"#);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("/v1/chat/completions", deep(5000)),
        ("/v1/chat/completions", deep(200)),
        ("/v1/chat/completions", not_utf8),
        ("/v2/models/scorer/infer", kserve_deep.into_bytes()),
        ("/v2/models/scorer/infer", kserve_not_utf8),
    ];
    for (path, body) in cases {
        let reply = send(Method::POST, &gateway.url(path), &[], body).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        assert_eq!(reply.error_code(), "malformed_body", "{}", reply.text());
        let decision = gateway.decision(&reply.decision_id()).await;
        assert_eq!(decision["error_code"], "malformed_body");
    }
    assert_eq!(upstream.request_lines(), Vec::<String>::new());

    // Nesting up to the limit, and binary tensor data after a JSON header, pass.
    let reply = send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[],
        deep(120),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let header = br#"{"inputs":[{"name":"x","shape":[4],"datatype":"BYTES","parameters":{"binary_data_size":4}}]}"#;
    let mut binary = header.to_vec();
    binary.extend_from_slice(b"\xff\xfe\x00\x01");
    let length = header.len().to_string();
    let reply = send(
        Method::POST,
        &gateway.url("/v2/models/scorer/infer"),
        &[("inference-header-content-length", &length)],
        binary,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(upstream.request_lines().len(), 2);
}

#[tokio::test]
async fn every_forwarded_for_line_arrives_and_upstreams_cannot_set_gateway_headers() {
    let upstream = TestUpstream::start().await;
    let raw_upstream = RawUpstream::start().await;
    let config = format!(
        "{}\n[[models]]\nname = \"forger\"\nprotocol = \"http\"\npath_prefix = \"/f\"\n[[models.versions]]\nversion = \"1\"\nupstream = \"{}\"\n",
        crate::models(&upstream.url()),
        raw_upstream.url
    );
    let gateway = Gateway::start(&config).await;
    let reply = raw(
        &gateway,
        b"GET /m/xff HTTP/1.1\r\nhost: gw\r\nx-forwarded-for: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2, 10.0.0.3\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    let seen = upstream.only_request();
    let lines: Vec<&str> = seen
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect();
    assert_eq!(lines, ["10.0.0.1", "10.0.0.2, 10.0.0.3, 127.0.0.1"]);

    let reply = raw_request(&gateway, "GET", "/f/forge").await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert_eq!(reply.body, b"ok");
    assert_eq!(reply.header("x-upstream").as_deref(), Some("yes"));
    assert!(!reply.head.contains("forged"), "{}", reply.head);
    assert_eq!(reply.head.matches("govgate-decision-id").count(), 1);
    let id = reply.header("govgate-decision-id").unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(
        reply.header("govgate-receipt"),
        Some(format!("/govgate/receipts/{id}"))
    );
    assert_eq!(gateway.decision(&id).await["outcome"], "served");
}

#[tokio::test]
async fn answers_without_a_body_get_no_invented_length_and_are_recorded_served() {
    let upstream = RawUpstream::start().await;
    let gateway = Gateway::start(&crate::models(&upstream.url)).await;
    // (method, path, status, content-length the client must see)
    let cases = [
        ("GET", "/m/nocontent", 204, None),
        ("GET", "/m/notmodified", 304, None),
        ("GET", "/m/notmodified-sized", 304, Some("1234")),
        ("HEAD", "/m/chunked", 200, None),
        ("HEAD", "/m/sized", 200, Some("5")),
        ("GET", "/m/chunked", 200, None),
    ];
    for (method, path, status, length) in cases {
        let reply = raw_request(&gateway, method, path).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.head);
        assert_eq!(
            reply.header("content-length").as_deref(),
            length,
            "{method} {path}: {}",
            reply.head
        );
        let id = reply.header("govgate-decision-id").unwrap();
        let decision = gateway.decision(&id).await;
        assert_eq!(decision["status"], status);
        assert_eq!(
            final_outcome(&gateway, &decision).await,
            "served",
            "{method} {path}: {decision}"
        );
    }
    // The chunked GET still streams its body.
    let reply = raw_request(&gateway, "GET", "/m/chunked").await;
    assert!(
        reply.body.ends_with(b"2\r\nok\r\n0\r\n\r\n"),
        "{:?}",
        reply.body
    );
}

#[tokio::test]
async fn unversioned_calls_after_a_revocation_are_told_and_bad_version_headers_refused() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&crate::models(&upstream.url())).await;
    let chat = r#"{"model":"chat","messages":[]}"#;

    // A version header that is not one ASCII label is refused, not ignored.
    let reply = raw(
        &gateway,
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ngovgate-model-version: v\u{e9}1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{chat}",
            chat.len()
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.head);
    assert_eq!(reply.json()["error"]["code"], "invalid_model_version");
    let decision = gateway
        .decision(&reply.header("govgate-decision-id").unwrap())
        .await;
    assert_eq!(decision["error_code"], "invalid_model_version");
    assert_eq!(decision["version"], "v\u{e9}1");
    let reply = raw(
        &gateway,
        b"GET /m/x HTTP/1.1\r\nhost: gw\r\ngovgate-model-version: 1\r\ngovgate-model-version: 2\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.head);
    assert_eq!(reply.json()["error"]["code"], "invalid_model_version");
    assert!(upstream.seen().is_empty(), "nothing was forwarded");

    let revoked = admin_call(
        &gateway.admin,
        Some("security-officer"),
        Method::POST,
        "/admin/models/chat/versions/v1/revoke",
        r#"{"reason":"leaks prompts"}"#,
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    for version in [None, Some("v1")] {
        let headers: Vec<(&str, &str)> = version
            .map(|v| vec![("govgate-model-version", v)])
            .unwrap_or_default();
        let reply = send(
            Method::POST,
            &gateway.url("/v1/chat/completions"),
            &headers,
            chat,
        )
        .await;
        assert_eq!(reply.status, 403, "{version:?}: {}", reply.text());
        assert_eq!(reply.error_code(), "model_version_revoked", "{version:?}");
        let decision = gateway.decision(&reply.decision_id()).await;
        assert_eq!(decision["outcome"], "blocked");
        assert_eq!(decision["version"], "v1");
    }
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn nobody_decides_their_own_request_under_another_spelling() {
    let alice_token = "test-token-svc-alice";
    let extra = format!(
        "\n[[admin.tokens]]\nprincipal = \"svc-alice\"\nroles = [\"reviewer\"]\ntoken_sha256 = \"{}\"\n",
        govgate::admin::auth::token_hash_hex(alice_token)
    );
    let (gateway, _upstream, _policies) = crate::reviews::start(&extra).await;
    let bearer = format!("Bearer {alice_token}");
    let decide = |review_id: String| {
        let (gateway_admin, bearer) = (gateway.admin.clone(), bearer.clone());
        async move {
            send(
                Method::POST,
                &format!("{gateway_admin}/admin/reviews/{review_id}/decide"),
                &[("authorization", &bearer)],
                json!({"verdict": "approve"}).to_string(),
            )
            .await
        }
    };
    for caller in [
        "svc-alice",
        "SVC-ALICE",
        "svc-alice.",
        "svc\u{2010}alice",
        "svc-al\u{200b}ice",
        "\u{ff53}vc-alice",
    ] {
        let held = crate::reviews::infer_as(&gateway, caller, r#"{"hold": true}"#).await;
        assert_eq!(held.status, 202, "{}", held.text());
        let review_id = held.json()["review_id"].as_str().unwrap().to_owned();
        let refused = decide(review_id.clone()).await;
        assert_eq!(refused.status, 403, "{caller:?}: {}", refused.text());
        assert_eq!(refused.error_code(), "own_request", "{caller:?}");
        // The record keeps the caller as sent.
        let review = crate::reviews::show_review(&gateway.admin, "rita", &review_id).await;
        assert_eq!(review.json()["caller"], caller, "{}", review.text());
    }
    // Somebody else's request, svc-alice may decide.
    let held = crate::reviews::infer_as(&gateway, "svc-bob", r#"{"hold": true}"#).await;
    let review_id = held.json()["review_id"].as_str().unwrap().to_owned();
    let decided = decide(review_id).await;
    assert_eq!(decided.status, 200, "{}", decided.text());
}
