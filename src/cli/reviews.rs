//! `govgate reviews ...`: the human review queue of a running gateway
//! (held and flagged calls), as a client of its admin API.
//!
//! Exit codes, as for `govgate models`: 0 done, 1 the API refused (its
//! code and message go to stderr), 2 the command could not be carried out
//! (usage, no token, no connection, an answer that is not the admin API's).

pub(super) mod exchange;
pub(super) mod render;
mod request;

use super::models::Failure;
use exchange::AdminOptions;
use request::{Call, Shows};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `govgate reviews`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReviewsArgs {
    #[command(flatten)]
    admin: AdminOptions,
    #[command(subcommand)]
    command: ReviewsCommand,
}

/// Which items `list` shows, as the admin API spells it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Status {
    /// Waiting for a reviewer.
    Pending,
    /// Approved, rejected, overridden or timed out.
    Decided,
    /// Both.
    All,
}

/// Kinds of review item.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Kind {
    /// The answer is held until a reviewer releases or rejects it.
    Hold,
    /// The answer went out; a reviewer looks at it afterwards.
    Flag,
}

/// A reviewer's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Verdict {
    /// Release the held answer (or accept a flagged one).
    Approve,
    /// Refuse the call (needs --reason).
    Reject,
    /// Send another answer instead (held items; needs --reason and an answer).
    Override,
}

/// The answer an override sends instead of the upstream's.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct AnswerOptions {
    /// File holding the answer body: sent as JSON if it parses as JSON and
    /// the content type is JSON or not given, else as text.
    #[arg(long, value_name = "PATH", conflicts_with = "answer_json")]
    answer_file: Option<PathBuf>,
    /// The answer body as inline JSON.
    #[arg(long, value_name = "JSON", value_parser = request::parse_json)]
    answer_json: Option<Value>,
    /// The answer's HTTP status [default: 200].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(200..=599))]
    status: Option<u16>,
    /// The answer's content type [default: application/json, or
    /// text/plain; charset=utf-8 for a file that is not JSON].
    #[arg(long, value_name = "TYPE")]
    content_type: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ReviewsCommand {
    /// Review items, oldest first (roles reviewer, admin or auditor).
    List {
        /// Which items [default: pending].
        #[arg(long, value_enum)]
        status: Option<Status>,
        /// Only this model's items.
        #[arg(long, value_name = "NAME")]
        model: Option<String>,
        /// Only held or only flagged items.
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// Only items opened at least this long ago: 90s, 10m, 2h, 1d.
        #[arg(long, value_name = "DURATION", value_parser = request::parse_duration)]
        older_than: Option<u64>,
        /// At most this many items [default: 100].
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// One item: the call, the answer, the policies that sent it to review,
    /// and the decision if any.
    Show {
        /// The review id (from `govgate reviews list`).
        review_id: String,
    },
    /// Decide an item (role reviewer; not on a call you made yourself).
    Decide {
        /// The review id.
        review_id: String,
        /// What to do with the call.
        #[arg(value_enum)]
        verdict: Verdict,
        /// Why (recorded in the ledger); required to reject or override.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        #[command(flatten)]
        answer: AnswerOptions,
    },
}

/// Runs a `govgate reviews` command; see the module docs for exit codes.
pub(crate) fn run(args: ReviewsArgs) -> ExitCode {
    exchange::exit_code(execute(&args))
}

fn execute(args: &ReviewsArgs) -> Result<(), Failure> {
    let call = request::build(&args.command)?;
    exchange::perform(
        &args.admin,
        &call.method,
        &call.path,
        call.body.as_ref(),
        |answer| render_answer(&call, answer),
    )
}

fn render_answer(call: &Call, answer: &Value) -> String {
    match call.shows {
        Shows::List => render::list(answer),
        Shows::Review => render::review(answer),
        Shows::Decided => render::decided(answer),
    }
}
