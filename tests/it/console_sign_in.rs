//! Signing in to the console at an identity provider (OpenID Connect
//! authorization code with PKCE), against a provider started by the test:
//! the console sends the browser there with a state and an S256
//! challenge, takes the code back, proves the verifier at the token
//! endpoint and opens a session only for an access token `[admin.jwt]`
//! accepts; a state serves once, a code for another challenge and a
//! provider's refusal open nothing.

use crate::support::{Gateway, TestUpstream, send};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::Method;
use ring::signature::KeyPair;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const ISSUER: &str = "https://login.bank.example";
const AUDIENCE: &str = "govgate-admin";
const CLIENT: &str = "govgate-console";

/// The provider: codes it issued with their challenge, and its key.
struct Provider {
    url: String,
    jwks_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _task: tokio::task::JoinHandle<()>,
}

async fn provider() -> Provider {
    provider_with(None).await
}

/// A provider; with `secret`, a confidential client's: its token endpoint
/// wants `Basic base64(client id ":" secret)`.
async fn provider_with(secret: Option<&'static str>) -> Provider {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("jwks.json");
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "idp-1", "use": "sig",
                     "x": B64.encode(pair.public_key().as_ref())});
    std::fs::write(&jwks_file, json!({ "keys": [jwk] }).to_string()).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref());
    let codes: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let authorize = {
        let codes = codes.clone();
        move |axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>| {
            let codes = codes.clone();
            async move {
                assert_eq!(query["client_id"], CLIENT);
                assert_eq!(query["response_type"], "code");
                assert_eq!(query["code_challenge_method"], "S256");
                let code = format!("code-{}", codes.lock().unwrap().len());
                codes
                    .lock()
                    .unwrap()
                    .insert(code.clone(), query["code_challenge"].clone());
                let back = format!(
                    "{}?code={code}&state={}",
                    query["redirect_uri"], query["state"]
                );
                (
                    http::StatusCode::FOUND,
                    [(http::header::LOCATION, back)],
                    "",
                )
            }
        }
    };
    let token =
        move |headers: http::HeaderMap,
              axum::extract::Form(form): axum::extract::Form<HashMap<String, String>>| {
            let (codes, key) = (codes.clone(), key.clone());
            async move {
                let expected = secret.map(|secret| {
                    let pair = format!("{CLIENT}:{secret}");
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    )
                });
                let sent = headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                if sent != expected {
                    return (
                        http::StatusCode::UNAUTHORIZED,
                        json!({ "error": "invalid_client" }).to_string(),
                    );
                }
                let challenge = codes.lock().unwrap().remove(&form["code"]);
                let proved = B64.encode(Sha256::digest(form["code_verifier"].as_bytes()));
                if form["grant_type"] != "authorization_code" || challenge != Some(proved) {
                    return (
                        http::StatusCode::BAD_REQUEST,
                        json!({ "error": "invalid_grant" }).to_string(),
                    );
                }
                let now = jsonwebtoken::get_current_timestamp();
                let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "u-17", "iat": now,
                                "exp": now + 300, "preferred_username": "dana",
                                "groups": ["ai-officers"]});
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
                header.kid = Some("idp-1".to_owned());
                let access = jsonwebtoken::encode(&header, &claims, &key).unwrap();
                (
                    http::StatusCode::OK,
                    json!({ "access_token": access, "token_type": "Bearer" }).to_string(),
                )
            }
        };
    let app = axum::Router::new()
        .route("/authorize", axum::routing::get(authorize))
        .route("/token", axum::routing::post(token));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Provider {
        url,
        jwks_file,
        _dir: dir,
        _task: task,
    }
}

fn config(upstream: &str, idp: &Provider) -> String {
    format!(
        "[[models]]\nname = \"chat\"\nprotocol = \"openai\"\n\
         [[models.versions]]\nversion = \"v1\"\nupstream = \"{upstream}\"\n\
         [admin.jwt]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"{}\"\n\
         principal_claim = \"preferred_username\"\nroles_claim = \"groups\"\n\
         [admin.jwt.roles]\n\"ai-officers\" = [\"approver:ai_officer\"]\n\
         [admin.jwt.sign_in]\nauthorization_endpoint = \"{}/authorize\"\n\
         token_endpoint = \"{}/token\"\nclient_id = \"{CLIENT}\"\n\
         redirect_url = \"https://console.bank.example/console/sign-in/callback\"\n",
        idp.jwks_file.display(),
        idp.url,
        idp.url
    )
}

/// The query members of a `Location`.
fn query_of(location: &str) -> HashMap<String, String> {
    let query = location.split_once('?').map_or("", |(_, q)| q);
    serde_urlencoded::from_str(query).unwrap()
}

/// Starts a sign-in at the console and lets the provider answer: the
/// code and state it sends back.
async fn code_and_state(gateway: &Gateway) -> (String, String) {
    let start = send(
        Method::GET,
        &format!("{}/console/sign-in/provider", gateway.admin),
        &[],
        "",
    )
    .await;
    assert_eq!(start.status, 303);
    let to_provider = start.headers["location"].to_str().unwrap().to_owned();
    let asked = query_of(&to_provider);
    assert_eq!(asked["client_id"], CLIENT);
    assert_eq!(asked["scope"], "openid");
    assert_eq!(asked["code_challenge"].len(), 43, "SHA-256, base64url");
    let answer = send(Method::GET, &to_provider, &[], "").await;
    assert_eq!(answer.status, 302);
    let back = query_of(answer.headers["location"].to_str().unwrap());
    assert_eq!(back["state"], asked["state"]);
    (back["code"].clone(), back["state"].clone())
}

async fn callback(gateway: &Gateway, query: &str) -> crate::support::client::Reply {
    send(
        Method::GET,
        &format!("{}/console/sign-in/callback?{query}", gateway.admin),
        &[],
        "",
    )
    .await
}

#[tokio::test]
async fn a_person_signs_in_at_the_identity_provider_with_pkce_and_nothing_else_opens_a_session() {
    let idp = provider().await;
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&config(&upstream.url(), &idp)).await;
    let page = send(
        Method::GET,
        &format!("{}/console/sign-in", gateway.admin),
        &[],
        "",
    )
    .await;
    assert!(page.text().contains("id=\"sign-in-provider\""));

    let (code, state) = code_and_state(&gateway).await;
    let signed_in = callback(&gateway, &format!("code={code}&state={state}")).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text());
    let set = signed_in.headers["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(signed_in.text().contains("url=/console/"));
    let cookie = set.split(';').next().unwrap();
    let overview = send(
        Method::GET,
        &format!("{}/console/", gateway.admin),
        &[("cookie", cookie)],
        "",
    )
    .await;
    assert_eq!(overview.status, 200);
    assert!(overview.text().contains("dana (approver:ai_officer)"));

    // The same state again: unknown (each serves once).
    let again = callback(&gateway, &format!("code={code}&state={state}")).await;
    assert_eq!(again.status, 401);
    assert!(again.headers.get("set-cookie").is_none());
    assert!(again.text().contains("unknown"), "{}", again.text());
    // A code issued for another sign-in's challenge: the provider refuses
    // the verifier.
    let (first_code, _first_state) = code_and_state(&gateway).await;
    let (_, second_state) = code_and_state(&gateway).await;
    let crossed = callback(&gateway, &format!("code={first_code}&state={second_state}")).await;
    assert_eq!(crossed.status, 401);
    assert!(crossed.headers.get("set-cookie").is_none());
    assert!(
        crossed.text().contains("invalid_grant"),
        "{}",
        crossed.text()
    );
    // The provider's refusal.
    let refused = callback(&gateway, "error=access_denied&state=x").await;
    assert_eq!(refused.status, 401);
    assert!(refused.text().contains("access_denied"));
}

#[tokio::test]
async fn a_confidential_client_proves_its_secret_at_the_token_endpoint() {
    let idp = provider_with(Some("s3cret-of-the-console")).await;
    let upstream = TestUpstream::start().await;
    // Without the secret the provider refuses the exchange: no session.
    let gateway = Gateway::start(&config(&upstream.url(), &idp)).await;
    let (code, state) = code_and_state(&gateway).await;
    let refused = callback(&gateway, &format!("code={code}&state={state}")).await;
    assert_ne!(refused.status, 200);
    assert!(refused.headers.get("set-cookie").is_none());
    assert!(
        refused.text().contains("invalid_client"),
        "{}",
        refused.text()
    );
    drop(gateway);

    // With it (from a file, its final line break dropped), signed in.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("console-secret");
    std::fs::write(&file, "s3cret-of-the-console\n").unwrap();
    let text = format!(
        "{}client_secret = {{ file = \"{}\" }}\n",
        config(&upstream.url(), &idp),
        file.display()
    );
    let gateway = Gateway::start(&text).await;
    let (code, state) = code_and_state(&gateway).await;
    let signed_in = callback(&gateway, &format!("code={code}&state={state}")).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text());
    assert!(
        signed_in.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly")
    );
}
