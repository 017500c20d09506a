//! The OpenAI body's `model` member: found without re-serializing and,
//! for a version whose upstream knows the model by another name, replaced
//! byte for byte. Driven through the public router to an upstream in the
//! same process that answers with the body it received. A body is
//! forwarded exactly when an upstream's JSON parser can take it: valid
//! UTF-8, nested at most [`MAX_DEPTH`](super::json::MAX_DEPTH) levels, with a string `model`.

use super::gateway::{Gateway, runtime};
use super::json::forwardable;
use super::setup;
use axum::Router;
use bytes::Bytes;
use http::{Request, header};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::OnceLock;

/// The name `renamed`'s upstream knows it by.
const UPSTREAM_NAME: &str = "up-chat.v2";

fn models(upstream: &str) -> String {
    format!(
        r#"
[[models]]
name = "renamed"
protocol = "openai"
[[models.versions]]
version = "1"
upstream = "{upstream}"
upstream_model = "{UPSTREAM_NAME}"

[[models]]
name = "same"
protocol = "openai"
[[models.versions]]
version = "1"
upstream = "{upstream}"
"#
    )
}

/// A gateway whose two models' upstream echoes each request body.
fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let runtime = runtime();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"));
        let (listener, addr) = match listener.and_then(|l| Ok((l.local_addr()?, l))) {
            Ok((addr, listener)) => (listener, addr),
            Err(err) => panic!("echo upstream: {err}"),
        };
        let echo = Router::new().fallback(|body: Bytes| async move {
            ([(header::CONTENT_TYPE, "application/json")], body)
        });
        runtime.spawn(async move {
            let _ = axum::serve(listener, echo).await;
        });
        let config = setup::config(&models(&format!("http://{addr}")));
        Gateway::new(runtime, &config)
    })
}

/// An independent reading of the body: the `model` member's raw text.
#[derive(Deserialize)]
struct Oracle<'a> {
    #[serde(borrow)]
    model: &'a RawValue,
}

/// The model name and the byte range of its value, or `None` when the
/// body is not a JSON object with one string `model` member.
fn oracle(body: &[u8]) -> Option<(String, std::ops::Range<usize>)> {
    let Oracle { model } = serde_json::from_slice(body).ok()?;
    let name: String = serde_json::from_str(model.get()).ok()?;
    let start = (model.get().as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    Some((name, start..start + model.get().len()))
}

/// `limits.max_request_body_bytes` of the targets' configuration (`setup`).
const BODY_LIMIT: usize = 16 * 1024;

/// Posts `data` as an OpenAI chat body and checks what the upstream got.
///
/// # Panics
/// When an invariant breaks: a body without a string `model` member was
/// forwarded; a forwarded body is not UTF-8 or nests deeper than
/// [`MAX_DEPTH`](super::json::MAX_DEPTH); a body within the limit, UTF-8, within that depth and
/// with a configured `model` was refused; a forwarded body differs from
/// the client's in any byte but the model value (renamed) or at all (not
/// renamed); the forwarded body does not name the upstream's model; or
/// the status is not 200 or a client error (400, 404, 413).
pub fn openai_splice(data: &[u8]) -> String {
    let request = Request::post("/v1/chat/completions")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, data.len())
        .body(axum::body::Body::from(data.to_vec()));
    let Ok(request) = request else {
        return "unbuildable".to_owned();
    };
    let answer = gateway().send(request);
    let status = answer.parts.status.as_u16();
    let expected = oracle(data);
    if status != 200 {
        assert!(matches!(status, 400 | 404 | 413), "status {status}");
        if status == 404 {
            let name = expected.as_ref().map(|(name, _)| name);
            assert!(
                name.is_some_and(|name| name != "renamed" && name != "same"),
                "404 for a configured model"
            );
        }
        let configured = expected
            .as_ref()
            .is_some_and(|(name, _)| name == "renamed" || name == "same");
        assert!(
            !(configured && data.len() <= BODY_LIMIT && forwardable(data).is_ok()),
            "refused a body an upstream can parse ({status})"
        );
        // What the oracle's parser makes of it: one label per kind of refusal.
        let kind = serde_json::from_slice::<Oracle<'_>>(data).err();
        return format!("{status} {:?}", kind.map(|err| err.classify()));
    }
    let Some((name, span)) = expected else {
        panic!("forwarded a body without a string `model` member");
    };
    let Some(forwarded) = answer.body else {
        panic!("the echoed body broke off");
    };
    if let Err(why) = forwardable(&forwarded) {
        panic!("forwarded a body {why}");
    }
    let value_text = serde_json::from_slice::<String>(&data[span.clone()]).ok();
    assert_eq!(
        value_text.as_deref(),
        Some(name.as_str()),
        "span of `model`"
    );
    match name.as_str() {
        "same" => assert!(forwarded == data, "the body changed on the way up"),
        "renamed" => {
            let mut spliced = data[..span.start].to_vec();
            spliced.extend_from_slice(format!("\"{UPSTREAM_NAME}\"").as_bytes());
            spliced.extend_from_slice(&data[span.end..]);
            assert!(forwarded == spliced, "bytes besides `model` changed");
            same_but_model(data, &forwarded);
        }
        other => panic!("forwarded a call to unknown model {other:?}"),
    }
    format!("200 {name}")
}

/// The forwarded body, parsed, is the client's with `model` renamed.
fn same_but_model(sent: &[u8], forwarded: &[u8]) {
    let Ok(Value::Object(mut sent)) = serde_json::from_slice::<Value>(sent) else {
        return;
    };
    let Ok(Value::Object(mut forwarded)) = serde_json::from_slice::<Value>(forwarded) else {
        panic!("the forwarded body does not parse as the sent one did");
    };
    assert_eq!(
        forwarded.remove("model"),
        Some(Value::String(UPSTREAM_NAME.to_owned())),
        "the forwarded model"
    );
    sent.remove("model");
    assert!(sent == forwarded, "members besides `model` changed");
}
