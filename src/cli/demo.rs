//! `govgate demo`: the gateway in front of the built-in sample models, with
//! the shipped review policies in force under four-eyes change control
//! (approved and activated through the admin API at start), fairness and
//! drift KPIs fed by a set of sample applications, and commands to try
//! printed once it is ready. The data directory goes when the demo ends,
//! unless `--keep-data`.

use crate::config::{Config, Environment};
use crate::demo;
use anyhow::Context;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

mod kpi_tour;
mod policy_change;
mod tokens;

/// Options of `govgate demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Public (proxy) listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    public_listen: SocketAddr,
    /// Admin listen address (`/metrics`).
    #[arg(long, default_value = "127.0.0.1:9090")]
    admin_listen: SocketAddr,
    /// Data directory (default: a new `govgate-demo-<unix seconds>-<pid>` in the
    /// system temp directory). The sample models listen on a new port each
    /// run and their versions are registered with it, so reuse a directory
    /// only while the same demo runs.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the data directory (ledger, keys, review files) when the demo
    /// ends; by default it is removed on Ctrl-C, SIGTERM or a failed
    /// start. A directory that held files before the demo started is
    /// always kept.
    #[arg(long)]
    keep_data: bool,
}

/// Whether the demo may remove `dir` when it ends: it did not exist, or
/// was empty, when the demo started.
fn owned_by_demo(dir: &std::path::Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(err) => err.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Removes the demo's data directory, or says where it is kept.
fn leave_data(dir: &std::path::Path, remove: bool) {
    if !remove {
        eprintln!("govgate demo: data kept in {}", dir.display());
        return;
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => eprintln!(
            "govgate demo: removed {} (pass --keep-data to keep it)",
            dir.display()
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => eprintln!("govgate demo: could not remove {}: {err}", dir.display()),
    }
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(|| {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        // The process id too: two demos started in the same second (tests
        // in parallel, two terminals) must not share a ledger.
        std::env::temp_dir().join(format!("govgate-demo-{seconds}-{}", std::process::id()))
    });
    let remove = !args.keep_data && owned_by_demo(&data_dir);
    eprintln!("govgate demo: data in {}", data_dir.display());
    let runtime = super::runtime(None)?;
    let dir = data_dir.clone();
    let result = runtime.block_on(async move {
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind the sample models' port")?;
        let upstream_addr = upstream.local_addr()?;
        tokio::spawn(async move {
            if let Err(err) = demo::serve(upstream).await {
                tracing::error!(error = %err, "sample models stopped");
            }
        });
        let key_file = data_dir.join("demo-signing.key");
        if !key_file.exists() {
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            super::keys::generate(&key_file, DEMO_ORIGIN)?;
        }
        let policies = data_dir.join(DEMO_POLICIES_DIR);
        demo::write_policies(&policies)
            .with_context(|| format!("writing the demo policies to {}", policies.display()))?;
        let issuer = tokens::Issuer::create(&data_dir, &policies)?;
        // The tour's gRPC call sends this message (a binary file: curl
        // cannot write protobuf).
        let grpc_request = data_dir.join(GRPC_REQUEST_FILE);
        std::fs::write(&grpc_request, demo::credit_request([30.0, 4000.0, 24.0]))
            .with_context(|| format!("writing {}", grpc_request.display()))?;
        // The tour's policy change; a demo without it still runs.
        let change = policy_change::write_change(&data_dir, &policies)
            .inspect_err(|err| eprintln!("govgate demo: no policy change to try: {err:#}"))
            .ok();
        let text = demo_config(
            args.public_listen,
            args.admin_listen,
            &data_dir,
            upstream_addr,
        );
        let config = Config::parse(
            &text,
            "(demo config)",
            &Environment::fixed(HashMap::new(), &data_dir),
        )
        .map_err(|err| anyhow::anyhow!("demo configuration: {err}"))?;
        super::serve_config(
            config,
            crate::app::StartOptions::default(),
            Some(Box::new(|public: &str, admin: &str| {
                let (public, admin) = (public.to_owned(), admin.to_owned());
                tokio::spawn(async move {
                    if let Err(err) = approve_samples(&admin).await {
                        eprintln!("govgate demo: approving the sample versions failed: {err:#}");
                        return;
                    }
                    if let Err(err) = policy_change::approve_folder_set(&admin).await {
                        eprintln!("govgate demo: approving the review policies failed: {err:#}");
                        return;
                    }
                    if let Err(err) = kpi_tour::run(&public, &admin, token("ops")).await {
                        eprintln!("govgate demo: feeding the KPIs failed: {err:#}");
                    }
                    print_tour(&public, &admin, &policies, &grpc_request);
                    if let Err(err) = print_token_step(&public, &admin, &issuer) {
                        eprintln!("govgate demo: minting the demo tokens failed: {err:#}");
                    }
                    if let Some(change) = &change {
                        policy_change::print_step(&public, &admin, &cli_command(), change);
                    }
                });
            })),
            super::ListenKeys::DEMO_FLAGS,
        )
        .await
    });
    // The gateway has stopped and its files are closed with the runtime.
    drop(runtime);
    leave_data(&dir, remove);
    result
}

/// The demo ledger's origin.
const DEMO_ORIGIN: &str = "govgate.demo/local";

/// The tour's framed gRPC `ModelInferRequest`, in the data directory.
const GRPC_REQUEST_FILE: &str = "credit-request.grpc";

/// The demo's policy folder, in its data directory.
const DEMO_POLICIES_DIR: &str = "policies";

/// The demo's admin identities: `(principal, roles, token)`. DEMO ONLY:
/// these tokens are printed in the docs; never use them elsewhere.
const DEMO_IDENTITIES: [(&str, &str, &str); 4] = [
    ("ops", r#"["admin", "proposer"]"#, "demo-token-ops"),
    ("dana", r#"["approver:ai_officer"]"#, "demo-token-dana"),
    ("sam", r#"["approver:security_officer"]"#, "demo-token-sam"),
    ("rita", r#"["reviewer"]"#, "demo-token-rita"),
];

fn token(principal: &str) -> &'static str {
    DEMO_IDENTITIES
        .iter()
        .find(|(name, _, _)| *name == principal)
        .map_or("", |(_, _, token)| *token)
}

/// Approves and activates every sample version through the admin API, as
/// two officers would (the gateway proposed them at start), printing each
/// step and the ledger entry that records it.
async fn approve_samples(admin: &str) -> anyhow::Result<()> {
    use super::admin_client::AdminClient;
    use http::Method;
    let samples = [
        (demo::CREDIT_MODEL, "1"),
        (demo::CHAT_MODEL, "2024-06"),
        (demo::ASSISTANT_MODEL, "2024-10"),
        (demo::CREDIT_GRPC_MODEL, "1"),
    ];
    println!("\nThe gateway proposed the sample versions; two officers approve them (four eyes):");
    for (model, version) in samples {
        let base = format!("/admin/models/{model}/versions/{version}");
        let steps = [
            ("dana", "approve", "approver:ai_officer"),
            ("sam", "approve", "approver:security_officer"),
            ("ops", "activate", "admin"),
        ];
        for (principal, action, role) in steps {
            let client = AdminClient::new(admin, token(principal));
            let body = serde_json::json!({ "reason": "demo: sample version reviewed" });
            let (status, answer) = client
                .call(Method::POST, &format!("{base}/{action}"), Some(&body))
                .await?;
            anyhow::ensure!(
                status.is_success(),
                "{action} {model} {version}: {status} {answer}"
            );
            let state = answer["version"]["state"].as_str().unwrap_or("?");
            let entry = &answer["entry_seq"];
            println!(
                "  {principal} ({role}) {action}s {model} {version}: now {state}, ledger entry {entry}"
            );
        }
    }
    Ok(())
}

fn demo_config(
    public: SocketAddr,
    admin: SocketAddr,
    data_dir: &std::path::Path,
    upstream: SocketAddr,
) -> String {
    // The data dir is a TOML string: escape it as JSON does, which TOML accepts.
    let data_dir = serde_json::Value::String(data_dir.display().to_string());
    format!(
        r#"[server]
public_listen = "{public}"
admin_listen = "{admin}"
data_dir = {data_dir}

[ledger]
origin = "{DEMO_ORIGIN}"
key_file = "demo-signing.key"

[governance.approval]
approvers = 2
required_roles = ["ai_officer", "security_officer"]

[review]
policies_dir = "{DEMO_POLICIES_DIR}"
timeout_secs = 900
on_timeout = "reject"
max_wait_secs = 30
{policy_approval}{tokens}{jwt}
[[models]]
name = "{credit}"
protocol = "kserve_v2"
[[models.versions]]
version = "1"
upstream = "http://{upstream}"
{kpi}
[[models]]
name = "{chat}"
protocol = "openai"
[[models.versions]]
version = "2024-06"
upstream = "http://{upstream}"

[[models]]
name = "{credit_grpc}"
protocol = "kserve_v2_grpc"
[[models.versions]]
version = "1"
upstream = "http://{upstream}"

[[models]]
name = "{assistant}"
protocol = "anthropic"
[[models.versions]]
version = "2024-10"
upstream = "http://{upstream}"
"#,
        credit = demo::CREDIT_MODEL,
        chat = demo::CHAT_MODEL,
        assistant = demo::ASSISTANT_MODEL,
        credit_grpc = demo::CREDIT_GRPC_MODEL,
        kpi = kpi_tour::CONFIG,
        jwt = tokens::CONFIG,
        policy_approval = policy_change::CONFIG,
        tokens = DEMO_IDENTITIES
            .iter()
            .map(|(principal, roles, token)| format!(
                "\n[[admin.tokens]]\nprincipal = \"{principal}\"\nroles = {roles}\ntoken_sha256 = \"{}\"\n",
                crate::admin::auth::token_hash_hex(token)
            ))
            .collect::<String>(),
    )
}

/// How to run this program from a shell: `govgate` when that is what
/// `PATH` finds, else its full path (quoted for the shell if need be), so
/// the printed commands work as printed after `cargo run` too.
fn cli_command() -> String {
    let Ok(this) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "govgate".to_owned();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::canonicalize(dir.join("govgate")).is_ok_and(|found| found == this))
    });
    if on_path {
        return "govgate".to_owned();
    }
    shell_quoted(&this.display().to_string())
}

/// `text` as one shell word: as it is when that is safe, else single-quoted.
fn shell_quoted(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:,@%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn print_tour(
    public: &str,
    admin: &str,
    policies: &std::path::Path,
    grpc_request: &std::path::Path,
) {
    let grpc_request = shell_quoted(&grpc_request.display().to_string());
    let credit_grpc = demo::CREDIT_GRPC_MODEL;
    let credit = demo::CREDIT_MODEL;
    let chat = demo::CHAT_MODEL;
    let assistant = demo::ASSISTANT_MODEL;
    let lending = demo::LENDING_CALLER;
    let cli = cli_command();
    let policies = policies.display();
    let files = demo::DEMO_POLICIES.map(|(name, _)| name).join(", ");
    let files = format!("{files}, {}", tokens::POLICY_FILE);
    println!(
        r#"
govgate demo is running. Sample models: `{credit}` (KServe V2; over gRPC as `{credit_grpc}`),
`{chat}` (OpenAI chat and Responses) and `{assistant}` (Anthropic Messages).
Review policies in force: {files} (in {policies}).
Try these in another terminal (Ctrl-C here stops the demo):

# 1. Score two credit applicants in one KServe V2 batch (columns: age_years, credit_amount, duration_months)
curl -si {public}/v2/models/{credit}/infer -H 'content-type: application/json' -H 'x-govgate-caller: {lending}' \
  -d '{{"inputs":[{{"name":"features","shape":[2,3],"datatype":"FP32","data":[45,1500,12,23,12000,48]}}]}}'
#    The same model over KServe V2 gRPC (`{credit_grpc}`: ModelInfer over HTTP/2; the protobuf
#    message of one applicant is in {grpc_request}): the headers, then the grpc-status trailer
curl -s --http2-prior-knowledge {public}/inference.GRPCInferenceService/ModelInfer -H 'content-type: application/grpc' \
  -H 'te: trailers' -H 'x-govgate-caller: {lending}' --data-binary @{grpc_request} -D - -o /dev/null

# 2. Ask the chat model; then the same assistant over the OpenAI Responses API (the gateway
#    remembers which model made each response, so fetching it by id needs no model name) and
#    over the Anthropic Messages API (`{assistant}`)
curl -s {public}/v1/chat/completions -H 'content-type: application/json' -H 'x-govgate-caller: bob' \
  -d '{{"model":"{chat}","messages":[{{"role":"user","content":"Is my application complete?"}}]}}'
rid=$(curl -s {public}/v1/responses -H 'content-type: application/json' -H 'x-govgate-caller: bob' \
  -d '{{"model":"{chat}","input":"Which documents do you need?"}}' | grep -o '"id":"resp_[^"]*"' | cut -d'"' -f4)
curl -s {public}/v1/responses/$rid -H 'x-govgate-caller: bob'
curl -s {public}/v1/messages -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' -H 'x-govgate-caller: bob' \
  -d '{{"model":"{assistant}","max_tokens":256,"messages":[{{"role":"user","content":"When will I hear back?"}}]}}'

# 3. The same, streamed as server-sent events (watch the words arrive)
curl -sN {public}/v1/chat/completions -H 'content-type: application/json' \
  -d '{{"model":"{chat}","stream":true,"messages":[{{"role":"user","content":"Stream this back to me"}}]}}'

# 4. A model the gateway does not serve: 404 with a JSON error code
curl -s {public}/v1/chat/completions -H 'content-type: application/json' -d '{{"model":"gpt-unknown","messages":[]}}'

# 5. Model metadata and the gateway's own health and model list
curl -s {public}/v2/models/{credit} -H 'x-govgate-caller: {lending}'
curl -s {public}/v2/health/ready
curl -s {public}/v1/models

# 6. Every request above is a signed ledger entry. Fetch a decision's entry and its receipt
#    (a C2SP tlog-proof: inclusion proof plus signed checkpoint):
id=$(curl -s -o /dev/null -D - {public}/v2/models/{credit}/infer -H 'x-govgate-caller: {lending}' -d '{{"inputs":[{{"name":"features","shape":[1,3],"datatype":"FP32","data":[30,4000,24]}}]}}' | tr -d '\r' | awk 'tolower($1)=="govgate-decision-id:" {{print $2}}')
curl -s {public}/govgate/receipts/$id/entry
curl -s {public}/govgate/receipts/$id

# 7. The log's verifier key, its latest signed checkpoint, and the requests counted in the metrics
curl -s {admin}/ledger/key
curl -s {admin}/ledger/checkpoint
curl -s {admin}/metrics | grep '^govgate_requests_total'

# 8. The credit model's versions: who proposed and approved them, and the ledger entries
curl -s {admin}/admin/models/{credit} -H 'authorization: Bearer demo-token-ops'

# 9. Human review. {credit} serves lending services only (caller_groups.rego): any other caller
#    is denied before the model is called, 403 policy_denied with the reasons
curl -s {public}/v2/models/{credit}/infer -H 'content-type: application/json' -H 'x-govgate-caller: alice' \
  -d '{{"inputs":[{{"name":"features","shape":[1,3],"datatype":"FP32","data":[30,4000,24]}}]}}'

# 10. A borderline score (credit_borderline.rego: within [0.45, 0.55]) is held for a reviewer:
#     202 with the decision id, the review id and the URL to poll; polling now gives 202 again
held=$(curl -si {public}/v2/models/{credit}/infer -H 'content-type: application/json' -H 'x-govgate-caller: {lending}' \
  -d '{{"inputs":[{{"name":"features","shape":[1,3],"datatype":"FP32","data":[28,5000,30]}}]}}')
echo "$held"
id=$(echo "$held" | tr -d '\r' | awk 'tolower($1)=="govgate-decision-id:" {{print $2}}')
review=$(echo "$held" | tr -d '\r' | awk 'tolower($1)=="govgate-review-id:" {{print $2}}')
curl -s {public}/govgate/decisions/$id

# 11. The review queue, as rita (role reviewer) sees it: on the command line and on the admin API
export GOVGATE_TOKEN=demo-token-rita GOVGATE_ADMIN_URL={admin}
{cli} reviews list
curl -s {admin}/admin/reviews -H 'authorization: Bearer demo-token-rita'
{cli} reviews show $review

# 12. rita approves (nobody may decide a request they made; rejecting or overriding needs --reason).
#     The client's poll then gets the model's answer byte for byte, with govgate-review-state: approved
{cli} reviews decide $review approve --reason 'score checked against the application file'
curl -si {public}/govgate/decisions/$id -H 'prefer: wait=10'

# 13. The held decision's ledger entry names the policy set and each stage's verdict; the policy
#     set in force (each file's SHA-256, as recorded in the ledger); verdicts in the metrics
curl -s {public}/govgate/receipts/$id/entry
{cli} policies show
curl -s {admin}/metrics | grep -E '^govgate_(policy_verdicts_total|review_verdicts_total|reviews_pending)'

# 14. Fairness and drift KPIs. One more applicant, with the protected attributes the KPIs group by
#     (x-govgate-attr-* headers, removed before the model is called), then the KPIs with the counts
#     behind them (any admin token reads them), and the same figures as Prometheus gauges
curl -s {public}/v2/models/{credit}/infer -H 'content-type: application/json' -H 'x-govgate-caller: {lending}' \
  -H 'x-govgate-attr-sex: female' -H 'x-govgate-attr-age_group: under_30' \
  -d '{{"inputs":[{{"name":"features","shape":[1,3],"datatype":"FP32","data":[26,2500,12]}}]}}'
{cli} kpis {credit}
curl -s {admin}/metrics | grep -E '^govgate_kpi_(demographic_parity_ratio|equalized_odds_difference|psi)'
"#
    );
}

/// The tour's last step: two callers with tokens the demo signed, one in
/// the lending group (served, its ledger entry names the token), one not
/// (denied by `token_groups.rego` on its `groups` claim).
fn print_token_step(public: &str, admin: &str, issuer: &tokens::Issuer) -> anyhow::Result<()> {
    let credit = demo::CREDIT_MODEL;
    let (lending, exp) = issuer.mint("svc-underwriting", &["lending"])?;
    let (marketing, _) = issuer.mint("svc-marketing", &["marketing"])?;
    let minutes = tokens::TOKEN_MINUTES;
    let until = tokens::clock(exp);
    println!(
        r#"# 15. Callers with tokens. The demo is its own identity provider: it made an Ed25519 key
#     (public half in demo-jwks.json, read by [auth.jwt]) and signed two tokens, valid for
#     {minutes} minutes (until {until}). The token's `sub` is the caller, and token_groups.rego
#     reads its `groups` claim: svc-underwriting (group lending) is served and its ledger entry
#     names the token's issuer, subject and id; svc-marketing (group marketing) is denied
id=$(curl -s -o /dev/null -D - {public}/v2/models/{credit}/infer -H 'authorization: Bearer {lending}' -d '{{"inputs":[{{"name":"features","shape":[1,3],"datatype":"FP32","data":[30,4000,24]}}]}}' | tr -d '\r' | awk 'tolower($1)=="govgate-decision-id:" {{print $2}}')
curl -s {public}/govgate/receipts/$id/entry
curl -s {public}/v2/models/{credit}/infer -H 'content-type: application/json' -H 'authorization: Bearer {marketing}'   -d '{{"inputs":[{{"name":"features","shape":[1,3],"datatype":"FP32","data":[30,4000,24]}}]}}'
curl -s {admin}/metrics | grep -E '^govgate_(jwt|jwks)_'
"#
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_only_when_the_shell_needs_it() {
        assert_eq!(
            shell_quoted("/home/me/govgate/target/release/govgate"),
            "/home/me/govgate/target/release/govgate"
        );
        assert_eq!(shell_quoted("/tmp/my dir/govgate"), "'/tmp/my dir/govgate'");
        assert_eq!(shell_quoted("/tmp/it's/govgate"), r"'/tmp/it'\''s/govgate'");
        assert_eq!(shell_quoted(""), "''");
    }
}
