//! The model-version workflow end to end: the real admin API changes the
//! registry, the real proxy serves only what it allows, and the ledger
//! (live, after a restart, replayed, and in an export bundle) holds who
//! proposed and who approved every version a decision was served by.

use crate::support::client::Reply;
use crate::support::governance::{admin_call, token};
use crate::support::{Gateway, TestUpstream, open, send};
use http::Method;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Two officers must approve, one of each kind.
const OFFICERS_POLICY: &str = "[governance.approval]\napprovers = 2\nrequired_roles = [\"ai_officer\", \"security_officer\"]\n";

/// One OpenAI model `chat` whose versions are `(label, upstream, upstream
/// model)`; the first is the default (active once the harness approved all).
fn chat_model(versions: &[(&str, &str, &str)]) -> String {
    let mut text = format!(
        "[[models]]\nname = \"chat\"\nprotocol = \"openai\"\ndefault_version = \"{}\"\n",
        versions[0].0
    );
    for (label, upstream, upstream_model) in versions {
        text.push_str(&format!(
            "[[models.versions]]\nversion = \"{label}\"\nupstream = \"{upstream}\"\nupstream_model = \"{upstream_model}\"\n"
        ));
    }
    text
}

/// `POST /admin/models/chat/versions` as `who`.
async fn propose(
    gateway: &Gateway,
    who: &str,
    version: &str,
    upstream: &str,
    change_ref: &str,
) -> Reply {
    let body = json!({
        "version": version,
        "upstream": upstream,
        "upstream_model": format!("chat-{version}"),
        "risk_class": "limited",
        "change_ref": change_ref,
        "description": "proposed in a test",
    });
    admin_call(
        &gateway.admin,
        Some(who),
        Method::POST,
        "/admin/models/chat/versions",
        &body.to_string(),
    )
    .await
}

/// `POST /admin/models/chat/versions/{version}/{action}` as `who`.
async fn act(gateway: &Gateway, who: &str, version: &str, action: &str, body: &str) -> Reply {
    let path = format!("/admin/models/chat/versions/{version}/{action}");
    admin_call(&gateway.admin, Some(who), Method::POST, &path, body).await
}

/// `GET path` on the admin API as the auditor, which must succeed.
async fn read(gateway: &Gateway, path: &str) -> Value {
    let reply = admin_call(&gateway.admin, Some("auditor"), Method::GET, path, "").await;
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.text());
    reply.json()
}

/// Asserts a refused admin call: status and JSON error code.
fn assert_refused(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.error_code(), code, "{}", reply.text());
    assert_eq!(reply.headers["content-type"], "application/json");
}

/// A chat completion for `chat`, naming `version` in the version header if given.
async fn chat(gateway: &Gateway, version: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = version
        .map(|v| vec![("govgate-model-version", v)])
        .unwrap_or_default();
    send(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &headers,
        r#"{"model":"chat","messages":[]}"#,
    )
    .await
}

/// The `model` member of the last request `upstream` received.
fn last_upstream_model(upstream: &TestUpstream) -> String {
    let seen = upstream.seen();
    let last = seen.last().expect("the upstream saw a request");
    let body: Value = serde_json::from_slice(&last.body).unwrap();
    body["model"].as_str().unwrap().to_owned()
}

/// Registry entries (kind `version_*`) for `chat`/`version` of `kind`.
fn registry_entries<'a>(entries: &'a [Value], kind: &str, version: &str) -> Vec<&'a Value> {
    entries
        .iter()
        .filter(|e| e["kind"] == kind && e["model"] == "chat" && e["version"] == version)
        .collect()
}

fn principals(approvals: &Value) -> BTreeSet<String> {
    approvals
        .as_array()
        .expect("approvals is an array")
        .iter()
        .map(|a| a["principal"].as_str().unwrap().to_owned())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[tokio::test]
async fn four_eyes_rules_hold_from_proposal_to_serving() {
    let (one, two) = (TestUpstream::start().await, TestUpstream::start().await);
    let rest = OFFICERS_POLICY.to_owned() + &chat_model(&[("v1", &one.url(), "chat-v1")]);
    let gateway = Gateway::start(&rest).await;

    let proposed = propose(&gateway, "ops", "v2", &two.url(), "CHG-2002").await;
    assert_eq!(proposed.status, 201, "{}", proposed.text());
    let answer = proposed.json();
    assert_eq!(answer["changed"], true);
    assert_eq!(answer["kind"], "version_proposed");
    assert_eq!(answer["version"]["state"], "proposed");
    assert_eq!(answer["version"]["proposer"], "ops");

    // Proposed only: a call naming it is blocked, and the upstream never sees it.
    let blocked = chat(&gateway, Some("v2")).await;
    assert_refused(&blocked, 403, "model_version_not_approved");
    let decision = gateway.decision(&blocked.decision_id()).await;
    assert_eq!(decision["outcome"], "blocked");
    assert_eq!(decision["status"], 403);
    assert!(two.seen().is_empty());

    // The proposer holds no approver role.
    let own = act(&gateway, "ops", "v2", "approve", "").await;
    assert_refused(&own, 403, "forbidden");
    // One who may propose and approve still never approves their own proposal.
    let third = propose(&gateway, "release-manager", "v3", &two.url(), "CHG-3003").await;
    assert_eq!(third.status, 201, "{}", third.text());
    let own = act(&gateway, "release-manager", "v3", "approve", "").await;
    assert_refused(&own, 403, "proposer_cannot_approve");

    // One approval of the two required is not enough.
    let first = act(&gateway, "ai-officer", "v2", "approve", "").await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["changed"], true);
    assert_eq!(first.json()["version"]["state"], "proposed");
    assert_eq!(first.json()["version"]["approval_seq"], Value::Null);
    let blocked = chat(&gateway, Some("v2")).await;
    assert_refused(&blocked, 403, "model_version_not_approved");

    // The only slot left needs a security officer; a plain approver cannot fill it.
    let plain = act(&gateway, "plain-approver", "v2", "approve", "").await;
    assert_refused(&plain, 403, "approver_role_required");
    assert_eq!(
        plain.json()["error"]["missing_roles"],
        json!(["approver:security_officer"])
    );

    let second = act(&gateway, "security-officer", "v2", "approve", "").await;
    assert_eq!(second.status, 200, "{}", second.text());
    let completed = second.json();
    assert_eq!(completed["version"]["state"], "approved");
    let approval_seq = completed["entry_seq"].as_u64().unwrap();
    assert_eq!(completed["version"]["approval_seq"], approval_seq);
    let entries = gateway.entries().await;
    let entry = &entries[approval_seq as usize];
    assert_eq!(entry["kind"], "version_approved");
    assert_eq!(entry["state"], "approved");
    assert_eq!(
        principals(&entry["approvals"]),
        set(&["ai-officer", "security-officer"])
    );

    // Approved but not active: served when named, unversioned calls stay on v1.
    let named = chat(&gateway, Some("v2")).await;
    assert_eq!(named.status, 200, "{}", named.text());
    assert_eq!(last_upstream_model(&two), "chat-v2");
    let decision = gateway.decision(&named.decision_id()).await;
    assert_eq!(decision["outcome"], "served");
    assert_eq!(decision["version"], "v2");
    assert_eq!(decision["approval_seq"], approval_seq);
    let unversioned = chat(&gateway, None).await;
    assert_eq!(unversioned.status, 200, "{}", unversioned.text());
    assert_eq!(
        gateway.decision(&unversioned.decision_id()).await["version"],
        "v1"
    );
    assert_eq!(last_upstream_model(&one), "chat-v1");

    let activated = act(&gateway, "ops", "v2", "activate", "").await;
    assert_eq!(activated.status, 200, "{}", activated.text());
    assert_eq!(activated.json()["kind"], "version_activated");
    assert_eq!(activated.json()["version"]["active"], true);
    let served = chat(&gateway, None).await;
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!(two.seen().len(), 2);
    let decision = gateway.decision(&served.decision_id()).await;
    assert_eq!(decision["outcome"], "served");
    assert_eq!(decision["version"], "v2");
    assert_eq!(decision["approval_seq"], approval_seq);

    // The version proposed by the one who tried to approve it is still waiting.
    let v3 = read(&gateway, "/admin/models/chat/versions/v3").await;
    assert_eq!(v3["state"], "proposed");
    assert_eq!(v3["approvals"], json!([]));
}

#[tokio::test]
async fn rollback_and_revocation_take_effect_for_the_next_request() {
    let (one, two) = (TestUpstream::start().await, TestUpstream::start().await);
    let rest = OFFICERS_POLICY.to_owned()
        + &chat_model(&[("v1", &one.url(), "chat-v1"), ("v2", &two.url(), "chat-v2")]);
    // Both declared versions approved, v1 active.
    let gateway = Gateway::start(&rest).await;
    let v1_approval = read(&gateway, "/admin/models/chat/versions/v1").await["approval_seq"]
        .as_u64()
        .expect("v1 is approved");

    let activated = act(&gateway, "ops", "v2", "activate", "").await;
    assert_eq!(activated.status, 200, "{}", activated.text());
    assert_eq!(chat(&gateway, None).await.status, 200);
    assert_eq!((one.seen().len(), two.seen().len()), (0, 1));

    let rolled = admin_call(
        &gateway.admin,
        Some("ops"),
        Method::POST,
        "/admin/models/chat/rollback",
        r#"{"reason":"v2 answers too slowly"}"#,
    )
    .await;
    assert_eq!(rolled.status, 200, "{}", rolled.text());
    let rolled = rolled.json();
    assert_eq!(rolled["kind"], "version_rolled_back");
    assert_eq!(rolled["version"]["version"], "v1");
    assert_eq!(rolled["version"]["state"], "active");
    let after = chat(&gateway, None).await;
    assert_eq!(after.status, 200, "{}", after.text());
    assert_eq!((one.seen().len(), two.seen().len()), (1, 1));
    assert_eq!(last_upstream_model(&one), "chat-v1");
    let decision = gateway.decision(&after.decision_id()).await;
    assert_eq!(decision["version"], "v1");
    assert_eq!(decision["approval_seq"], v1_approval);

    // A stream on v1 is under way when v1 is revoked.
    let response = open(
        Method::POST,
        &gateway.url("/v1/chat/completions"),
        &[],
        r#"{"model":"chat","stream":true,"messages":[]}"#,
    )
    .await;
    assert_eq!(response.status(), 200);
    let stream_id = response.headers()["govgate-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first event arrives")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "data: first\n\n");

    let revoked = act(
        &gateway,
        "security-officer",
        "v1",
        "revoke",
        r#"{"reason":"prompt injection found"}"#,
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    assert_eq!(revoked.json()["version"]["state"], "revoked");
    assert_eq!(revoked.json()["version"]["active"], false);

    // The next request naming v1 is refused as revoked, and so is one
    // naming no version (v1 was the active one); both are blocked decisions.
    let upstream_calls = one.seen().len();
    let named = chat(&gateway, Some("v1")).await;
    assert_refused(&named, 403, "model_version_revoked");
    let unversioned = chat(&gateway, None).await;
    assert_refused(&unversioned, 403, "model_version_revoked");
    for reply in [&named, &unversioned] {
        let decision = gateway.decision(&reply.decision_id()).await;
        assert_eq!(decision["outcome"], "blocked");
        assert_eq!(decision["approval_seq"], Value::Null);
    }
    assert_eq!(one.seen().len(), upstream_calls, "nothing reached v1");

    // The stream that began before the revocation ends intact, on v1's approval.
    one.state.release.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .expect("stream completes")
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "data: second\n\ndata: [DONE]\n\n");
    let decision = gateway.decision(&stream_id).await;
    assert_eq!(decision["outcome"], "streaming");
    assert_eq!(decision["version"], "v1");
    assert_eq!(decision["approval_seq"], v1_approval);
    let end = gateway.wait_for_stream_end(&stream_id).await;
    assert_eq!(end["outcome"], "served");
    assert_eq!(end["version"], "v1");
}

#[tokio::test]
async fn concurrent_approvals_are_both_recorded_and_repeats_change_nothing() {
    let upstream = TestUpstream::start().await;
    // The default policy: two approvers, any roles.
    let gateway = Gateway::start_pending("", &chat_model(&[("v1", &upstream.url(), "m")])).await;

    let (a, b) = tokio::join!(
        act(&gateway, "ai-officer", "v1", "approve", ""),
        act(&gateway, "security-officer", "v1", "approve", ""),
    );
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (200, 200));
    let (a, b) = (a.json(), b.json());
    assert_eq!(
        (a["changed"].clone(), b["changed"].clone()),
        (json!(true), json!(true))
    );
    // Each answer shows the version as it is when answered, which may
    // already include the other approval; the entries show the order.
    let version = read(&gateway, "/admin/models/chat/versions/v1").await;
    assert_eq!(version["state"], "approved");
    assert_eq!(
        principals(&version["approvals"]),
        set(&["ai-officer", "security-officer"])
    );
    let entries = gateway.entries().await;
    let approvals = registry_entries(&entries, "version_approved", "v1");
    assert_eq!(approvals.len(), 2);
    let seqs: BTreeSet<u64> = approvals
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let answered: BTreeSet<u64> = [&a, &b]
        .iter()
        .map(|r| r["entry_seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, answered);
    // Ordered one after the other: the first left it proposed, the second
    // saw the first and completed it; that one is what decisions cite.
    let (earlier, later) = (approvals[0], approvals[1]);
    assert_eq!(earlier["state"], "proposed");
    assert_eq!(earlier["approvals"].as_array().unwrap().len(), 1);
    assert_eq!(later["state"], "approved");
    assert_eq!(
        principals(&later["approvals"]),
        set(&["ai-officer", "security-officer"])
    );
    assert_eq!(version["approval_seq"], later["seq"]);

    // The same approver again: answered with the state as it is, nothing recorded.
    let count = entries.len();
    let registry = read(&gateway, "/admin/models").await;
    let again = act(&gateway, "ai-officer", "v1", "approve", "").await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["changed"], false);
    assert_eq!(again.json()["entry_seq"], Value::Null);
    assert_eq!(again.json()["version"]["state"], "approved");
    assert_eq!(gateway.entries().await.len(), count);
    assert_eq!(read(&gateway, "/admin/models").await, registry);

    // Two activations at once, then a third: one entry in all.
    let (x, y) = tokio::join!(
        act(&gateway, "ops", "v1", "activate", ""),
        act(&gateway, "ops", "v1", "activate", ""),
    );
    for reply in [&x, &y] {
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["version"]["state"], "active");
    }
    let changed: Vec<_> = [&x, &y]
        .iter()
        .map(|r| r.json()["changed"].clone())
        .collect();
    assert!(
        changed == [json!(true), json!(false)] || changed == [json!(false), json!(true)],
        "{changed:?}"
    );
    let count = gateway.entries().await.len();
    let registry = read(&gateway, "/admin/models").await;
    let again = act(&gateway, "ops", "v1", "activate", "").await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["changed"], false);
    assert_eq!(again.json()["entry_seq"], Value::Null);
    assert_eq!(again.json()["kind"], Value::Null);
    let entries = gateway.entries().await;
    assert_eq!(entries.len(), count);
    assert_eq!(
        registry_entries(&entries, "version_activated", "v1").len(),
        1
    );
    assert_eq!(read(&gateway, "/admin/models").await, registry);
    assert_eq!(chat(&gateway, None).await.status, 200);
}

/// Who calls: nobody, a token no one holds, or a test identity.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Anonymous,
    BadToken,
    As(&'static str),
}

#[tokio::test]
async fn refused_admin_calls_answer_json_errors_and_change_nothing() {
    let upstream = TestUpstream::start().await;
    let rest = chat_model(&[("v1", &upstream.url(), "m")]);
    let gateway = Gateway::start(&rest).await;
    let waiting = propose(&gateway, "ops", "v2", &upstream.url(), "CHG-1").await;
    assert_eq!(waiting.status, 201, "{}", waiting.text());

    let approve_v2 = "/admin/models/chat/versions/v2/approve";
    let propose_path = "/admin/models/chat/versions";
    let proposal = |extra: (&str, Value)| {
        let mut body = json!({
            "version": "v9", "upstream": upstream.url(), "risk_class": "minimal",
            "change_ref": "CHG-9",
        });
        body[extra.0] = extra.1;
        body.to_string()
    };
    use Caller::{Anonymous, As, BadToken};
    let cases: Vec<(Caller, Method, String, String, u16, &str)> = vec![
        (
            Anonymous,
            Method::GET,
            "/admin/models".into(),
            String::new(),
            401,
            "unauthenticated",
        ),
        (
            Anonymous,
            Method::POST,
            approve_v2.into(),
            String::new(),
            401,
            "unauthenticated",
        ),
        (
            BadToken,
            Method::POST,
            approve_v2.into(),
            String::new(),
            401,
            "invalid_token",
        ),
        (
            BadToken,
            Method::GET,
            "/admin/models/chat".into(),
            String::new(),
            401,
            "invalid_token",
        ),
        (
            As("auditor"),
            Method::POST,
            approve_v2.into(),
            String::new(),
            403,
            "forbidden",
        ),
        (
            As("auditor"),
            Method::POST,
            propose_path.into(),
            proposal(("description", json!(""))),
            403,
            "forbidden",
        ),
        (
            As("plain-approver"),
            Method::POST,
            "/admin/models/chat/versions/v1/retire".into(),
            String::new(),
            403,
            "forbidden",
        ),
        (
            As("ai-officer"),
            Method::POST,
            "/admin/models/ghost/versions/v1/approve".into(),
            String::new(),
            404,
            "unknown_model",
        ),
        (
            As("ai-officer"),
            Method::POST,
            "/admin/models/chat/versions/v7/approve".into(),
            String::new(),
            404,
            "unknown_version",
        ),
        (
            As("auditor"),
            Method::GET,
            "/admin/models/ghost".into(),
            String::new(),
            404,
            "unknown_model",
        ),
        (
            As("auditor"),
            Method::GET,
            "/admin/models/chat/versions/v7".into(),
            String::new(),
            404,
            "unknown_version",
        ),
        (
            As("ops"),
            Method::POST,
            "/admin/models/chat/versions/v2/promote".into(),
            String::new(),
            404,
            "unknown_action",
        ),
        (
            As("ops"),
            Method::POST,
            "/admin/models/chat/versions/v2/activate".into(),
            String::new(),
            409,
            "invalid_transition",
        ),
        (
            As("plain-approver"),
            Method::POST,
            "/admin/models/chat/versions/v1/approve".into(),
            String::new(),
            409,
            "invalid_transition",
        ),
        (
            As("ops"),
            Method::POST,
            "/admin/models/chat/rollback".into(),
            String::new(),
            409,
            "nothing_to_roll_back",
        ),
        (
            As("ops"),
            Method::POST,
            propose_path.into(),
            proposal(("version", json!("v2"))),
            409,
            "already_exists",
        ),
        (
            As("ai-officer"),
            Method::POST,
            approve_v2.into(),
            r#"{"reason": "lgtm""#.into(),
            400,
            "malformed_body",
        ),
        (
            As("ops"),
            Method::POST,
            propose_path.into(),
            "version=v9".into(),
            400,
            "malformed_body",
        ),
        (
            As("ai-officer"),
            Method::POST,
            approve_v2.into(),
            r#"{"reason":"ok","by":"someone-else"}"#.into(),
            422,
            "invalid_body",
        ),
        (
            As("ai-officer"),
            Method::POST,
            approve_v2.into(),
            r#"{"reason":7}"#.into(),
            422,
            "invalid_body",
        ),
        (
            As("ops"),
            Method::POST,
            propose_path.into(),
            proposal(("approved", json!(true))),
            422,
            "invalid_body",
        ),
        (
            As("ops"),
            Method::POST,
            propose_path.into(),
            proposal(("risk_class", json!("negligible"))),
            422,
            "invalid_body",
        ),
        (
            As("ops"),
            Method::POST,
            propose_path.into(),
            proposal(("upstream", json!("not a url"))),
            422,
            "invalid_body",
        ),
        (
            As("ops"),
            Method::POST,
            propose_path.into(),
            proposal(("upstream", json!("ftp://127.0.0.1/x"))),
            422,
            "invalid_body",
        ),
        (
            As("ops"),
            Method::POST,
            propose_path.into(),
            r#"{"version":"v9","upstream":"http://127.0.0.1:9","risk_class":"high"}"#.into(),
            422,
            "invalid_body",
        ),
        (
            As("ops"),
            Method::POST,
            propose_path.into(),
            proposal(("version", json!("../v9"))),
            422,
            "invalid_argument",
        ),
        (
            As("ai-officer"),
            Method::POST,
            "/admin/models/chat/versions/v2/reject".into(),
            String::new(),
            422,
            "reason_required",
        ),
        (
            As("ai-officer"),
            Method::POST,
            "/admin/models/chat/versions/v1/revoke".into(),
            r#"{"reason":"  "}"#.into(),
            422,
            "reason_required",
        ),
    ];

    let count = gateway.entries().await.len();
    let registry = read(&gateway, "/admin/models").await;
    for (caller, method, path, body, status, code) in cases {
        let what = format!("{caller:?} {method} {path} {body}");
        let reply = match caller {
            Anonymous => admin_call(&gateway.admin, None, method, &path, &body).await,
            BadToken => {
                // A real token with one character changed.
                let bearer = format!("Bearer {}x", token("ops"));
                let url = format!("{}{path}", gateway.admin);
                send(method, &url, &[("authorization", &bearer)], body.clone()).await
            }
            As(who) => admin_call(&gateway.admin, Some(who), method, &path, &body).await,
        };
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        assert_eq!(reply.error_code(), code, "{what}: {}", reply.text());
        assert_eq!(reply.headers["content-type"], "application/json", "{what}");
        assert!(
            reply.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        if status == 401 {
            assert_eq!(reply.headers["www-authenticate"], "Bearer", "{what}");
        }
        if code == "invalid_transition" {
            let current = &reply.json()["error"]["current_state"];
            let expected = if path.contains("/v1/") {
                "active"
            } else {
                "proposed"
            };
            assert_eq!(current, expected, "{what}");
        }
        assert_eq!(
            gateway.entries().await.len(),
            count,
            "{what} recorded something"
        );
        assert_eq!(
            read(&gateway, "/admin/models").await,
            registry,
            "{what} changed the registry"
        );
    }
    // Still served as before.
    assert_eq!(chat(&gateway, None).await.status, 200);
}

/// `GET /admin/models` as the registry rebuilt from a stopped gateway's
/// store would answer it.
fn replayed_models(gateway: &Gateway, names: &[&str]) -> Value {
    use govgate::ledger::store::SledStore;
    use govgate::registry::service::replay_from_store;
    let store = SledStore::open(&gateway.dir.path().join("data/ledger")).unwrap();
    let registry = replay_from_store(&store, names.iter().map(|n| (*n).to_owned())).unwrap();
    let models: Vec<Value> = registry
        .models()
        .iter()
        .map(|(name, record)| {
            let mut value = serde_json::to_value(record).unwrap();
            value["name"] = json!(name);
            value
        })
        .collect();
    json!({ "models": models })
}

/// A `GET /admin/models` answer without the members the admin API adds to
/// each version record (docs/admin-api.md section 5).
fn without_annotations(listing: &Value) -> Value {
    let mut listing = listing.clone();
    for model in listing["models"].as_array_mut().into_iter().flatten() {
        for version in model["versions"]
            .as_object_mut()
            .into_iter()
            .flat_map(|v| v.values_mut())
        {
            if let Some(record) = version.as_object_mut() {
                for member in [
                    "approval_policy",
                    "approvals_needed",
                    "missing_roles",
                    "risk_class_default",
                ] {
                    record.remove(member);
                }
            }
        }
    }
    listing
}

#[tokio::test]
async fn restart_and_replay_give_the_same_registry() {
    let (one, two) = (TestUpstream::start().await, TestUpstream::start().await);
    let rest = OFFICERS_POLICY.to_owned() + &chat_model(&[("v1", &one.url(), "chat-v1")]);
    let mut gateway = Gateway::start(&rest).await;
    // History of every kind: proposals, approvals, a rejection, a switch,
    // a rollback, a retirement and a revocation.
    assert_eq!(
        propose(&gateway, "ops", "v2", &two.url(), "CHG-2")
            .await
            .status,
        201
    );
    assert_eq!(
        propose(&gateway, "ops", "v3", &two.url(), "CHG-3")
            .await
            .status,
        201
    );
    assert_eq!(
        propose(&gateway, "ops", "v4", &two.url(), "CHG-4")
            .await
            .status,
        201
    );
    for version in ["v2", "v4"] {
        for who in ["security-officer", "ai-officer"] {
            let reply = act(
                &gateway,
                who,
                version,
                "approve",
                r#"{"reason":"reviewed"}"#,
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
    }
    let reject = act(
        &gateway,
        "ai-officer",
        "v3",
        "reject",
        r#"{"reason":"no eval"}"#,
    )
    .await;
    assert_eq!(reject.status, 200, "{}", reject.text());
    for (who, version, action, body) in [
        ("ops", "v4", "activate", ""),
        ("ops", "v4", "retire", ""),
        ("ops", "v2", "activate", ""),
        ("plain-approver", "v1", "revoke", r#"{"reason":"leak"}"#),
    ] {
        let reply = act(&gateway, who, version, action, body).await;
        assert_eq!(reply.status, 200, "{action} {version}: {}", reply.text());
    }
    let before = chat(&gateway, None).await;
    assert_eq!(before.status, 200, "{}", before.text());
    let decision = gateway.decision(&before.decision_id()).await;
    assert_eq!(decision["version"], "v2");
    let approval_seq = decision["approval_seq"]
        .as_u64()
        .expect("served with an approval");
    let registry = read(&gateway, "/admin/models").await;
    let governance_count = |entries: &[Value]| {
        entries
            .iter()
            .filter(|e| {
                e["kind"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("version_"))
            })
            .count()
    };
    let recorded = governance_count(&gateway.entries().await);

    assert!(gateway.stop().await.success());
    // Rebuilt offline from the store alone, with no gateway running (the
    // API adds what the policy says each version still needs; the
    // registry itself does not hold that).
    assert_eq!(
        replayed_models(&gateway, &["chat"]),
        without_annotations(&registry)
    );

    gateway.restart().await;
    assert_eq!(read(&gateway, "/admin/models").await, registry);
    assert_eq!(
        governance_count(&gateway.entries().await),
        recorded,
        "a restart records no registry change"
    );
    let after = chat(&gateway, None).await;
    assert_eq!(after.status, 200, "{}", after.text());
    let decision = gateway.decision(&after.decision_id()).await;
    assert_eq!(decision["version"], "v2");
    assert_eq!(decision["approval_seq"], approval_seq);
    assert_refused(
        &chat(&gateway, Some("v1")).await,
        403,
        "model_version_revoked",
    );
    assert_refused(
        &chat(&gateway, Some("v4")).await,
        403,
        "model_version_not_approved",
    );

    // The restarted gateway keeps working on the replayed state.
    let rolled = admin_call(
        &gateway.admin,
        Some("ops"),
        Method::POST,
        "/admin/models/chat/rollback",
        "",
    )
    .await;
    // v1 was revoked and v4 retired: nothing approved to roll back to.
    assert_refused(&rolled, 409, "nothing_to_roll_back");
    let registry = read(&gateway, "/admin/models").await;
    assert!(gateway.stop().await.success());
    assert_eq!(
        replayed_models(&gateway, &["chat"]),
        without_annotations(&registry)
    );
}

fn said(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

fn bundle_entries(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("entries.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn an_auditor_follows_a_decision_to_its_approvers_in_an_export_bundle() {
    let (one, two) = (TestUpstream::start().await, TestUpstream::start().await);
    let rest = OFFICERS_POLICY.to_owned() + &chat_model(&[("v1", &one.url(), "chat-v1")]);
    let mut gateway = Gateway::start(&rest).await;
    assert_eq!(chat(&gateway, None).await.status, 200);
    let proposed = propose(&gateway, "ops", "v2", &two.url(), "CHG-4711").await;
    assert_eq!(proposed.status, 201, "{}", proposed.text());
    for who in ["security-officer", "ai-officer"] {
        let reply = act(&gateway, who, "v2", "approve", "").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let activated = act(&gateway, "release-manager", "v2", "activate", "").await;
    assert_eq!(activated.status, 200, "{}", activated.text());
    let served = chat(&gateway, None).await;
    assert_eq!(served.status, 200, "{}", served.text());
    let id = served.decision_id();
    assert!(gateway.stop().await.success());

    let out = gateway.dir.path().join("bundle");
    let export = gateway.cli(&["export", "--out", out.to_str().unwrap()]);
    assert!(export.status.success(), "export: {}", said(&export));
    let entries = bundle_entries(&out);

    // Only what the bundle holds: decision -> approval entry -> proposal.
    let decision = entries
        .iter()
        .find(|e| e["kind"] == "decision" && e["decision_id"] == id.as_str())
        .expect("the decision is in the bundle");
    assert_eq!(decision["outcome"], "served");
    let approval_seq = decision["approval_seq"]
        .as_u64()
        .expect("cites its approval");
    let approval = entries
        .iter()
        .find(|e| e["seq"] == approval_seq)
        .expect("the approval entry is in the bundle");
    assert_eq!(approval["kind"], "version_approved");
    assert_eq!(approval["state"], "approved");
    assert_eq!(approval["model"], decision["model"]);
    assert_eq!(approval["version"], decision["version"]);
    assert_eq!(
        approval["principal"], "ai-officer",
        "the approval that completed it"
    );
    assert_eq!(
        principals(&approval["approvals"]),
        set(&["ai-officer", "security-officer"])
    );
    assert_eq!(approval["change_ref"], "CHG-4711");
    let proposals: Vec<&Value> = entries
        .iter()
        .filter(|e| {
            e["kind"] == "version_proposed"
                && e["model"] == approval["model"]
                && e["version"] == approval["version"]
        })
        .collect();
    assert_eq!(proposals.len(), 1);
    let proposal = proposals[0];
    assert!(proposal["seq"].as_u64().unwrap() < approval_seq);
    assert_eq!(proposal["principal"], "ops");
    assert_eq!(proposal["change_ref"], "CHG-4711");
    assert_eq!(proposal["upstream"], two.url());
    assert!(!principals(&approval["approvals"]).contains("ops"));

    let python = crate::support::python_verifier(&[
        "bundle".as_ref(),
        "--vkey".as_ref(),
        gateway.vkey.as_ref(),
        out.as_os_str(),
    ]);
    assert!(python.status.success(), "python: {}", said(&python));
}
