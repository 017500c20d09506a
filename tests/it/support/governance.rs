//! Admin identities of every test gateway, and the approvals that make its
//! declared versions servable, made through the real admin API.

use super::client::Reply;
use http::Method;

/// `(principal, roles, token)` of every test gateway.
pub const IDENTITIES: [(&str, &str, &str); 8] = [
    ("ops", r#"["admin", "proposer"]"#, "test-token-ops"),
    ("ai-officer", r#"["approver:ai_officer"]"#, "test-token-ai"),
    (
        "security-officer",
        r#"["approver:security_officer"]"#,
        "test-token-sec",
    ),
    ("plain-approver", r#"["approver"]"#, "test-token-plain"),
    ("auditor", r#"["auditor"]"#, "test-token-auditor"),
    ("rita", r#"["reviewer"]"#, "test-token-rita"),
    ("rob", r#"["reviewer"]"#, "test-token-rob"),
    // Both proposes and approves, so four eyes must stop it approving its own proposal.
    (
        "release-manager",
        r#"["proposer", "approver"]"#,
        "test-token-release",
    ),
];

/// The bearer token of `principal`.
pub fn token(principal: &str) -> &'static str {
    IDENTITIES
        .iter()
        .find(|(name, _, _)| *name == principal)
        .map(|(_, _, token)| *token)
        .unwrap_or_else(|| panic!("no test identity {principal}"))
}

/// The `[[admin.tokens]]` tables for [`IDENTITIES`].
pub fn token_tables() -> String {
    IDENTITIES
        .iter()
        .map(|(principal, roles, token)| {
            format!(
                "\n[[admin.tokens]]\nprincipal = \"{principal}\"\nroles = {roles}\ntoken_sha256 = \"{}\"\n",
                govgate::admin::auth::token_hash_hex(token)
            )
        })
        .collect()
}

/// A call to the admin API as `principal` (no token for `None`).
pub async fn admin_call(
    admin: &str,
    principal: Option<&str>,
    method: Method,
    path: &str,
    body: &str,
) -> Reply {
    let bearer = principal.map(|p| format!("Bearer {}", token(p)));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("authorization", b)])
        .unwrap_or_default();
    super::send(method, &format!("{admin}{path}"), &headers, body.to_owned()).await
}

/// Approves every proposed version (two approvers, each one of the
/// officers) and activates each model's default version: the version named
/// `default_version` in `config`, else the model's first.
pub async fn approve_declared(admin: &str, config: &str) {
    let parsed: toml::Table = toml::from_str(config).expect("test config is TOML");
    let models = parsed
        .get("models")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    for model in models {
        let name = model["name"].as_str().unwrap().to_owned();
        let versions: Vec<String> = model["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap().to_owned())
            .collect();
        for version in &versions {
            for approver in ["ai-officer", "security-officer"] {
                let path = format!("/admin/models/{name}/versions/{version}/approve");
                let reply = admin_call(admin, Some(approver), Method::POST, &path, "").await;
                assert_eq!(reply.status, 200, "{}", reply.text());
            }
        }
        let default = model
            .get("default_version")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| versions[0].clone());
        let path = format!("/admin/models/{name}/versions/{default}/activate");
        let reply = admin_call(admin, Some("ops"), Method::POST, &path, "").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
}
