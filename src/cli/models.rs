//! `govgate models ...`: the model-version workflow on a running gateway,
//! as a client of its admin API (docs/admin-api.md).
//!
//! Exit codes: 0 done, 1 the API refused (its code and message go to
//! stderr), 2 the command could not be carried out (usage, no token, no
//! connection, an answer that is not the admin API's).

pub(super) mod render;
pub(super) mod request;

use super::admin_client::AdminClient;
use anyhow::Context;
use http::StatusCode;
use request::Call;
use serde_json::Value;
use std::process::ExitCode;

/// The variable holding the bearer token. Read from the environment only,
/// never from an option: command lines show up in `ps` and shell history.
const TOKEN_VARIABLE: &str = "GOVGATE_TOKEN";

/// Options of `govgate models`.
#[derive(Debug, clap::Args)]
pub(crate) struct ModelsArgs {
    #[command(flatten)]
    admin: super::reviews::exchange::AdminOptions,
    #[command(subcommand)]
    command: ModelsCommand,
}

/// Risk classes, as the admin API spells them.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum RiskClass {
    /// Minimal risk.
    Minimal,
    /// Limited risk (transparency obligations).
    Limited,
    /// High risk: may need more approvers.
    High,
}

/// A version's identity on the command line.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The model.
    model: String,
    /// The version label.
    version: String,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ModelsCommand {
    /// Every model's versions: state, risk class, change reference,
    /// approvals, and which one is active.
    List,
    /// One model's versions, or one version's details and history.
    Show {
        /// The model.
        model: String,
        /// The version (default: the model's overview).
        version: Option<String>,
    },
    /// Propose a new version (roles admin or proposer). It starts
    /// `proposed` and serves nothing until approved.
    Propose {
        /// The model (as configured).
        model: String,
        /// The new version's label; never reused.
        #[arg(long = "version", value_name = "LABEL")]
        label: String,
        /// The upstream URL serving this version.
        #[arg(long, value_name = "URL")]
        upstream: String,
        /// Risk class; selects the approval policy.
        #[arg(long, value_enum)]
        risk_class: RiskClass,
        /// Change reference (ticket id).
        #[arg(long, value_name = "REF")]
        change_ref: String,
        /// Model name to send upstream, when it differs.
        #[arg(long, value_name = "NAME")]
        upstream_model: Option<String>,
        /// Digest of the model artifact (sha256:...).
        #[arg(long, value_name = "DIGEST")]
        artifact_digest: Option<String>,
        /// Free text for the approvers.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Comment recorded with the proposal.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Approve a proposed version (an approver other than its proposer).
    Approve {
        #[command(flatten)]
        target: Target,
        /// Comment recorded with the approval.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Turn down a proposed version (approvers).
    Reject {
        #[command(flatten)]
        target: Target,
        /// Why (recorded in the ledger).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Make an approved version the one answering unversioned calls
    /// (roles admin or proposer).
    Activate {
        #[command(flatten)]
        target: Target,
        /// Comment recorded with the activation.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Make the most recent previously active version that is still
    /// approved active again (roles admin or proposer).
    Rollback {
        /// The model.
        model: String,
        /// Comment recorded with the rollback.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Take an approved or active version out of service (role admin).
    Retire {
        #[command(flatten)]
        target: Target,
        /// Comment recorded with the retirement.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Withdraw a version for cause; calls naming it are refused
    /// (roles admin or approver).
    Revoke {
        #[command(flatten)]
        target: Target,
        /// Why (recorded in the ledger).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

/// Why a command did not succeed.
pub(super) enum Failure {
    /// The API answered with an error, already printed.
    Refused,
    /// The command could not be carried out.
    Trouble(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        Failure::Trouble(err)
    }
}

/// Runs a `govgate models` command; see the module docs for exit codes.
pub(crate) fn run(args: ModelsArgs) -> ExitCode {
    match execute(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused) => ExitCode::from(1),
        Err(Failure::Trouble(err)) => {
            eprintln!("govgate: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn execute(args: ModelsArgs) -> Result<(), Failure> {
    let token = token()?;
    check_admin_url(&args.admin.admin_url)?;
    let call = request::build(&args.command);
    let runtime = super::runtime(std::num::NonZeroUsize::new(1))?;
    let client = AdminClient::new(&args.admin.admin_url, &token);
    let (status, body) =
        runtime.block_on(client.call_raw(call.method.clone(), &call.path, call.body.as_ref()))?;
    let value: Option<Value> = serde_json::from_slice(&body).ok();
    if !status.is_success() {
        return Err(refusal(
            &client,
            status,
            value.as_ref(),
            &body,
            args.admin.json,
        ));
    }
    let Some(value) = value.filter(Value::is_object) else {
        return Err(not_the_api(&client, status).into());
    };
    if args.admin.json {
        super::print_out(&with_newline(&body));
    } else {
        super::print_out(&render_answer(&call, &value));
    }
    Ok(())
}

/// The token, or why there is none; its value never appears in messages.
pub(super) fn token() -> anyhow::Result<String> {
    match std::env::var(TOKEN_VARIABLE) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
        Ok(_) => anyhow::bail!("{TOKEN_VARIABLE} is empty; set it to your admin API token"),
        Err(std::env::VarError::NotPresent) => anyhow::bail!(
            "{TOKEN_VARIABLE} is not set; set it to your admin API token \
             (`govgate token` creates one)"
        ),
        Err(std::env::VarError::NotUnicode(_)) => {
            anyhow::bail!("{TOKEN_VARIABLE} is not valid UTF-8")
        }
    }
}

/// Only plain `http://` is spoken; say so rather than fail obscurely.
pub(super) fn check_admin_url(url: &str) -> anyhow::Result<()> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("--admin-url {url:?} is not a URL"))?;
    anyhow::ensure!(
        uri.scheme_str() == Some("http") && uri.host().is_some(),
        "--admin-url must be a plain http://host:port URL, not {url:?}"
    );
    Ok(())
}

/// [`refusal`] of an answer whose `body` is read here (an error body in
/// JSON, or anything else).
pub(super) fn refusal_of(client: &AdminClient, status: StatusCode, body: &[u8]) -> Failure {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    refusal(client, status, value.as_ref(), body, false)
}

/// Prints a refusal (code and message to stderr; with `--json`, the body
/// to stdout too, for scripts), or reports an answer that is not the API's.
pub(super) fn refusal(
    client: &AdminClient,
    status: StatusCode,
    value: Option<&Value>,
    body: &[u8],
    json: bool,
) -> Failure {
    // `route_not_found` is the public listener's answer to an unknown
    // path (the admin API's own unknown paths answer an empty 404): the
    // URL points at the wrong port, a usage problem, not a refusal.
    let Some(error) = value
        .map(|value| &value["error"])
        .filter(|error| error["code"].is_string() && error["code"] != "route_not_found")
    else {
        return not_the_api(client, status).into();
    };
    if json {
        super::print_out(&with_newline(body));
    }
    eprint!("{}", render::refusal(status, error));
    Failure::Refused
}

pub(super) fn not_the_api(client: &AdminClient, status: StatusCode) -> anyhow::Error {
    anyhow::anyhow!(
        "{} answered {status} without the admin API's JSON; is it the gateway's admin port?",
        client.base()
    )
}

fn render_answer(call: &Call, value: &Value) -> String {
    match call.shows {
        request::Shows::List => render::list(value),
        request::Shows::Model => render::model(value),
        request::Shows::Version => render::version(value),
        request::Shows::Change => render::change(value),
    }
}

pub(super) fn with_newline(body: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}
