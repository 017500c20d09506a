//! People on the admin API (`[admin.jwt]`): a JWT from the identity
//! provider names a person by `principal_claim` with the roles its groups
//! map to; approvals and review verdicts record the principal and the
//! issuer, and both verifiers accept those entries; two tokens of one
//! person are one approver; an expired token is 401 `token_expired`, one
//! whose groups map to no role 403 `no_role`; a reviewer who is the same
//! JWT identity (issuer and `sub`) as a held request's caller may not
//! decide it, whatever the names.

use crate::support::governance::admin_call;
use crate::support::{Gateway, TestUpstream, send};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::Method;
use ring::signature::KeyPair;
use serde_json::{Value, json};

const ISSUER: &str = "https://login.bank.example";
const AUDIENCE: &str = "govgate-admin";

/// The identity provider's Ed25519 signing key and its JWKS file.
struct Idp {
    encoding: jsonwebtoken::EncodingKey,
    _dir: tempfile::TempDir,
    jwks_file: std::path::PathBuf,
}

impl Idp {
    fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "idp-1", "use": "sig",
                         "x": B64.encode(pair.public_key().as_ref())});
        let dir = tempfile::tempdir().unwrap();
        let jwks_file = dir.path().join("idp-jwks.json");
        std::fs::write(&jwks_file, json!({"keys": [jwk]}).to_string()).unwrap();
        Idp {
            encoding: jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
            _dir: dir,
            jwks_file,
        }
    }

    /// A token for `sub` with `extra` claims (over the defaults: this
    /// issuer and audience, valid five minutes, a fresh `jti`).
    fn token(&self, sub: &str, extra: Value) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now,
                                "exp": now + 300, "jti": format!("{sub}-{}", rand_suffix())});
        if let (Some(base), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            base.extend(extra);
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some("idp-1".to_owned());
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap()
    }

    /// A person's token: `sub`, `preferred_username` and `groups`.
    fn person(&self, sub: &str, name: &str, groups: &[&str]) -> String {
        self.token(sub, json!({"preferred_username": name, "groups": groups}))
    }

    /// `[admin.jwt]` naming people by `preferred_username`.
    fn admin_jwt(&self) -> String {
        format!(
            "\n[admin.jwt]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"{}\"\n\
             principal_claim = \"preferred_username\"\nroles_claim = \"groups\"\n\
             [admin.jwt.roles]\n\"ai-officers\" = [\"approver:ai_officer\"]\n\
             \"risk\" = [\"approver:security_officer\"]\n\"reviewers\" = [\"reviewer\"]\n",
            self.jwks_file.display()
        )
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// An admin call with a person's bearer token.
async fn as_person(
    gateway: &Gateway,
    token: &str,
    method: Method,
    path: &str,
    body: &str,
) -> crate::support::client::Reply {
    let bearer = format!("Bearer {token}");
    send(
        method,
        &format!("{}{path}", gateway.admin),
        &[("authorization", &bearer)],
        body.to_owned(),
    )
    .await
}

/// `chat` with version `v1` (activated by the harness); `v2` is proposed
/// by `ops` in the tests.
fn chat(upstream: &str) -> String {
    format!(
        "[governance.approval]\napprovers = 2\nrequired_roles = [\"ai_officer\"]\n\
         [[models]]\nname = \"chat\"\nprotocol = \"openai\"\ndefault_version = \"v1\"\n\
         [[models.versions]]\nversion = \"v1\"\nupstream = \"{upstream}\"\n"
    )
}

async fn propose_v2(gateway: &Gateway, upstream: &str) {
    let body = json!({"version": "v2", "upstream": upstream, "risk_class": "limited",
                      "change_ref": "CHG-9", "description": "a test"});
    let proposed = admin_call(
        &gateway.admin,
        Some("ops"),
        Method::POST,
        "/admin/models/chat/versions",
        &body.to_string(),
    )
    .await;
    assert_eq!(proposed.status, 201, "{}", proposed.text());
}

const APPROVE: &str = "/admin/models/chat/versions/v2/approve";

fn version_approved(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| e["kind"] == "version_approved" && e["version"] == "v2")
        .collect()
}

#[tokio::test]
async fn a_person_approves_with_a_jwt_and_both_verifiers_accept_the_entry_naming_principal_and_issuer()
 {
    let idp = Idp::new();
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&(chat(&upstream.url()) + &idp.admin_jwt())).await;
    propose_v2(&gateway, &upstream.url()).await;

    let dana = idp.person("00u-dana", "dana", &["ai-officers", "staff"]);
    let approved = as_person(&gateway, &dana, Method::POST, APPROVE, "").await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    let approved = admin_call(
        &gateway.admin,
        Some("plain-approver"),
        Method::POST,
        APPROVE,
        "",
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    let shown = as_person(
        &gateway,
        &dana,
        Method::GET,
        "/admin/models/chat/versions/v2",
        "",
    )
    .await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(shown.json()["state"], "approved", "{}", shown.text());

    let entries = gateway.entries().await;
    let approvals = version_approved(&entries);
    assert_eq!(approvals.len(), 2);
    assert_eq!(approvals[0]["principal"], "dana");
    assert_eq!(approvals[0]["principal_issuer"], ISSUER);
    assert_eq!(
        approvals[0]["principal_roles"],
        json!(["approver:ai_officer"])
    );
    assert_eq!(
        approvals[1]["approvals"],
        json!([
            {"principal": "dana", "roles": ["approver:ai_officer"], "issuer": ISSUER},
            {"principal": "plain-approver", "roles": ["approver"]},
        ]),
        "a configured token's approval has no issuer"
    );
    assert!(approvals[1].get("principal_issuer").is_none());

    assert!(gateway.stop().await.success());
    gateway.export_both_accept("bundle", &[]);
    // And the registry replays the entries at start.
    gateway.restart().await;
    let record = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        "/admin/models/chat/versions/v2",
        "",
    )
    .await
    .json();
    assert_eq!(record["approvals"][0]["issuer"], ISSUER, "{record}");
}

#[tokio::test]
async fn two_tokens_of_one_person_are_one_approver_and_bad_tokens_are_refused() {
    let idp = Idp::new();
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&(chat(&upstream.url()) + &idp.admin_jwt())).await;
    propose_v2(&gateway, &upstream.url()).await;

    // One person, two tokens (another jti, another group that maps to
    // another approver role): still one pair of eyes.
    let first = idp.person("00u-dana", "dana", &["ai-officers"]);
    let second = idp.person("00u-dana", "dana", &["risk"]);
    for (token, changed) in [(&first, true), (&second, false)] {
        let reply = as_person(&gateway, token, Method::POST, APPROVE, "").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["changed"], changed, "{}", reply.text());
        assert_eq!(reply.json()["version"]["state"], "proposed");
    }
    // A person whose principal is a configured token's is that principal:
    // `ops` proposed v2, so `ops` with a JWT may not approve it.
    let ops = idp.person("00u-ops", "ops", &["ai-officers"]);
    let refused = as_person(&gateway, &ops, Method::POST, APPROVE, "").await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.error_code(), "proposer_cannot_approve");
    let entries = gateway.entries().await;
    assert_eq!(version_approved(&entries).len(), 1, "one approval");

    // Expired beyond the leeway: 401 token_expired, with the RFC 6750 challenge.
    let now = jsonwebtoken::get_current_timestamp();
    let expired = idp.token(
        "00u-sam",
        json!({"preferred_username": "sam", "groups": ["ai-officers"],
               "iat": now - 3600, "exp": now - 600}),
    );
    let refused = as_person(&gateway, &expired, Method::POST, APPROVE, "").await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(refused.error_code(), "token_expired");
    assert_eq!(
        refused.headers["www-authenticate"],
        "Bearer error=\"invalid_token\", error_description=\"the token has expired\""
    );
    // Another audience: 401 invalid_token.
    let elsewhere = idp.token(
        "00u-sam",
        json!({"preferred_username": "sam", "groups": ["ai-officers"], "aud": "other"}),
    );
    let refused = as_person(&gateway, &elsewhere, Method::POST, APPROVE, "").await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(refused.error_code(), "invalid_token");
    // Verified, but no group maps to a role: 403 no_role.
    let staff = idp.person("00u-sam", "sam", &["staff", "marketing"]);
    let refused = as_person(&gateway, &staff, Method::GET, "/admin/models", "").await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.error_code(), "no_role");
    let entries = gateway.entries().await;
    assert_eq!(version_approved(&entries).len(), 1, "nothing more recorded");

    // A second person completes the four eyes.
    let lee = idp.person("00u-lee", "lee", &["risk"]);
    let reply = as_person(&gateway, &lee, Method::POST, APPROVE, "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["version"]["state"],
        "approved",
        "{}",
        reply.text()
    );
}

/// A held request made with a JWT, and its review id.
async fn held_with_token(gateway: &Gateway, token: &str) -> String {
    let bearer = format!("Bearer {token}");
    let reply = send(
        Method::POST,
        &gateway.url("/v2/models/scorer/infer"),
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        r#"{"hold": true}"#,
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    reply.json()["review_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_reviewer_with_the_callers_jwt_identity_may_not_decide_whatever_the_names() {
    let idp = Idp::new();
    let upstream = TestUpstream::start().await;
    let policies = crate::reviews::policy_dir(&[(
        "hold.rego",
        "package govgate\n\nhold contains \"held\" if {\n\tinput.stage == \"response\"\n\tinput.response.hold == true\n}\n",
    )]);
    // The public listener takes the same issuer's tokens (for the admin
    // audience too, so one token shape serves both), the caller named by
    // `client_id`.
    let gateway = Gateway::start(&format!(
        "[auth.jwt]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"{}\"\ncaller_claim = \"client_id\"\n{}\n[review]\npolicies_dir = \"{}\"\n{}",
        idp.jwks_file.display(),
        crate::models(&upstream.url()),
        policies.path().display(),
        idp.admin_jwt()
    ))
    .await;

    // Dana calls as the service she runs a script for: caller `svc-batch`.
    let call = idp.token("00u-dana", json!({"client_id": "svc-batch"}));
    let review_id = held_with_token(&gateway, &call).await;
    let decide = format!("/admin/reviews/{review_id}/decide");
    let approve = json!({"verdict": "approve"}).to_string();

    // Dana as a reviewer: principal `dana`, not `svc-batch`, same sub.
    let dana = idp.person("00u-dana", "dana", &["reviewers"]);
    let refused = as_person(&gateway, &dana, Method::POST, &decide, &approve).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.error_code(), "own_request");

    // Rita, another subject of the same issuer, may.
    let rita = idp.person("00u-rita", "rita-jwt", &["reviewers"]);
    let decided = as_person(&gateway, &rita, Method::POST, &decide, &approve).await;
    assert_eq!(decided.status, 200, "{}", decided.text());
    let entries = gateway.entries().await;
    let closed: Vec<&Value> = entries
        .iter()
        .filter(|e| e["kind"] == "review_decided" && e["review_id"] == review_id.as_str())
        .collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["reviewer"], "rita-jwt");
    assert_eq!(closed[0]["reviewer_issuer"], ISSUER);
    let decision = entries
        .iter()
        .find(|e| e["kind"] == "decision" && e["seq"] == closed[0]["decision_seq"])
        .unwrap();
    assert_eq!(decision["caller"], "svc-batch");
    assert_eq!(decision["auth"]["subject"], "00u-dana");
}

/// Allows every request (the set a person approves below).
const ALLOW_ALL: &str = "package govgate\n\nflag contains \"seen\" if {\n\tinput.stage == \"request\"\n\tinput.caller == \"nobody-at-all\"\n}\n";

#[tokio::test]
async fn a_persons_policy_set_approval_erasure_and_key_rotation_name_principal_and_issuer() {
    let idp = Idp::new();
    let upstream = TestUpstream::start().await;
    let policies = crate::reviews::policy_dir(&[("allow.rego", ALLOW_ALL)]);
    let mut gateway = Gateway::start(&format!(
        "{}\n[review]\npolicies_dir = \"{}\"\n\
         policy_approval = {{ approvers = 2, required_roles = [\"ai_officer\"] }}\n{}\"admins\" = [\"admin\"]\n",
        crate::models(&upstream.url()),
        policies.path().display(),
        idp.admin_jwt()
    ))
    .await;

    // Two people approve the set proposed at start; one of them activates.
    let dana = idp.person("00u-dana", "dana", &["ai-officers"]);
    let lee = idp.person("00u-lee", "lee", &["risk", "admins"]);
    let sets = as_person(&gateway, &dana, Method::GET, "/admin/policies/sets", "").await;
    assert_eq!(sets.status, 200, "{}", sets.text());
    let set = sets.json()["sets"][0]["seq"].as_u64().unwrap();
    for person in [&dana, &lee] {
        let path = format!("/admin/policies/sets/{set}/approve");
        let approved = as_person(&gateway, person, Method::POST, &path, "").await;
        assert_eq!(approved.status, 200, "{}", approved.text());
    }
    let path = format!("/admin/policies/sets/{set}/activate");
    let activated = as_person(&gateway, &lee, Method::POST, &path, "").await;
    assert_eq!(activated.status, 200, "{}", activated.text());

    // Lee, an admin by group, erases a decision's payload and rotates the key.
    let served = gateway.infer(r#"{"inputs":[7]}"#).await;
    assert_eq!(served.status, 200, "{}", served.text());
    let id = served.decision_id();
    gateway.wait_for_decision(&id).await;
    let body = json!({"reason": "DSR-7", "decision_ids": [id]}).to_string();
    let erased = as_person(&gateway, &lee, Method::POST, "/admin/payloads/erase", &body).await;
    assert_eq!(erased.status, 200, "{}", erased.text());
    let path = "/admin/ledger/rotate-key";
    let rotated = as_person(&gateway, &lee, Method::POST, path, "").await;
    assert_eq!(rotated.status, 200, "{}", rotated.text());

    let entries = gateway.entries().await;
    let of = |kind: &str| -> Vec<Value> {
        entries
            .iter()
            .filter(|e| e["kind"] == kind)
            .cloned()
            .collect()
    };
    let approvals = of("policy_set_approved");
    assert_eq!(approvals.len(), 2);
    assert_eq!(approvals[0]["principal"], "dana");
    assert_eq!(approvals[0]["principal_issuer"], ISSUER);
    assert_eq!(
        approvals[1]["approvals"],
        json!([
            {"principal": "dana", "roles": ["approver:ai_officer"], "issuer": ISSUER},
            {"principal": "lee", "roles": ["admin", "approver:security_officer"], "issuer": ISSUER},
        ])
    );
    assert_eq!(of("policy_set_activated")[0]["principal_issuer"], ISSUER);
    for kind in ["payload_erased", "key_rotated"] {
        let entry = &of(kind)[0];
        assert_eq!(entry["principal"], "lee", "{entry}");
        assert_eq!(entry["principal_issuer"], ISSUER, "{entry}");
        assert_eq!(
            entry["principal_roles"],
            json!(["admin", "approver:security_officer"]),
            "{entry}"
        );
    }

    assert!(gateway.stop().await.success());
    gateway.export_both_accept("bundle", &[]);
    // The policy sets replay at start with their approvers' issuers.
    gateway.restart().await;
    let sets = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        "/admin/policies/sets",
        "",
    )
    .await
    .json();
    assert_eq!(sets["sets"][0]["state"], "active", "{sets}");
    assert_eq!(sets["sets"][0]["approvals"][1]["issuer"], ISSUER, "{sets}");
}
