//! `govgate policies ...`: the review policies a running gateway enforces,
//! as a client of its admin API (`show`, `reload`; the policy sets under
//! change control in policy_sets.rs), and two offline
//! commands on a policy folder: `test` (policy_test.rs) and `eval`
//! (policy_eval.rs). Exit codes as for `govgate models`; a reload the
//! gateway refuses (a policy does not compile) exits 1 and says which
//! policy set stays in force.

use super::models::render::text;
use super::policy_sets::{self, SetCall};
use super::reviews::exchange::{self, AdminOptions};
use super::reviews::render::files;
use super::{LedgerArgs, policy_eval, policy_test};
use http::Method;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `govgate policies`.
#[derive(Debug, clap::Args)]
pub(crate) struct PoliciesArgs {
    #[command(flatten)]
    admin: AdminOptions,
    #[command(subcommand)]
    command: PoliciesCommand,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum PoliciesCommand {
    /// The policy folder, the policy set in force and its files' SHA-256
    /// (roles admin, reviewer or auditor).
    Show,
    /// Load the policy folder again (role admin). If a policy does not
    /// compile, the gateway keeps the set in force and names the file.
    /// Under change control (review.policy_approval) the folder is only
    /// proposed.
    Reload,
    /// The proposed policy sets, their approvals and the set in force
    /// (any role).
    Sets,
    /// Propose a policy set (roles admin or proposer): the served *.rego
    /// files of DIR, uploaded, or without DIR the gateway's own folder.
    /// It judges nothing until approved and activated.
    Propose {
        /// A policy folder on this machine to upload.
        dir: Option<PathBuf>,
        /// Comment recorded with the proposal.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Approve a proposed set (an approver other than its proposer).
    Approve {
        /// The set: the seq of its proposal.
        set: u64,
        /// Comment recorded with the approval.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Put an approved set in force (roles admin or proposer).
    Activate {
        /// The set: the seq of its proposal.
        set: u64,
        /// Comment recorded with the activation.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Put the set in force before the current one back (roles admin or
    /// proposer).
    Rollback {
        /// Comment recorded with the rollback.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Offline: run the `test_*` rules of a policy folder (usually in its
    /// *_test.rego files) as `opa test` does, with the policy lines they
    /// cover. Exit 0: all pass, 1: a test failed, 2: the folder does not
    /// load or holds no test.
    Test {
        /// The policy folder.
        dir: PathBuf,
    },
    /// Offline: evaluate a policy folder, both stages, on a recorded
    /// decision of a stopped gateway's ledger (payloads kept), on an input
    /// document in a JSON file, or with --replay on a range of decisions,
    /// counting the verdicts that would change. Exit 0: evaluated, 1: an
    /// evaluation failed or the decision cannot be rebuilt, 2: usage,
    /// folder or ledger problem.
    Eval {
        /// The policy folder to evaluate (a candidate set, or the one in force).
        dir: PathBuf,
        /// The recorded decision to evaluate on.
        #[arg(long, value_name = "ID", group = "target")]
        decision: Option<String>,
        /// An input document (docs/policies.md) to evaluate on.
        #[arg(long, value_name = "FILE", group = "target")]
        input: Option<PathBuf>,
        /// Every decision of the seqs FROM..TO (TO exclusive).
        #[arg(long, value_name = "FROM..TO", group = "target", value_parser = policy_eval::parse_range)]
        replay: Option<(u64, u64)>,
        #[command(flatten)]
        ledger: LedgerArgs,
    },
}

/// The admin API commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AdminCall {
    Show,
    Reload,
}

/// Runs a `govgate policies` command; see the module docs for exit codes.
pub(crate) fn run(args: PoliciesArgs) -> ExitCode {
    let command = match args.command {
        PoliciesCommand::Show => AdminCall::Show,
        PoliciesCommand::Reload => AdminCall::Reload,
        PoliciesCommand::Test { dir } => return policy_test::run(&dir),
        PoliciesCommand::Sets => return policy_sets::run(&args.admin, SetCall::List),
        PoliciesCommand::Propose { dir, reason } => {
            let files = match dir.as_deref().map(policy_sets::read_dir).transpose() {
                Ok(files) => files,
                Err(err) => {
                    eprintln!("govgate: error: {err:#}");
                    return ExitCode::from(2);
                }
            };
            return policy_sets::run(&args.admin, SetCall::Propose { files, reason });
        }
        PoliciesCommand::Approve { set, reason } => {
            return policy_sets::run(&args.admin, SetCall::Approve { seq: set, reason });
        }
        PoliciesCommand::Activate { set, reason } => {
            return policy_sets::run(&args.admin, SetCall::Activate { seq: set, reason });
        }
        PoliciesCommand::Rollback { reason } => {
            return policy_sets::run(&args.admin, SetCall::Rollback { reason });
        }
        PoliciesCommand::Eval {
            dir,
            decision,
            input,
            replay,
            ledger,
        } => {
            let target = match (&decision, &input, replay) {
                (Some(id), _, _) => policy_eval::Target::Decision(id),
                (_, Some(path), _) => policy_eval::Target::File(path),
                (_, _, Some((from, to))) => policy_eval::Target::Replay { from, to },
                _ => {
                    eprintln!(
                        "govgate: error: say --decision ID, --input FILE or --replay FROM..TO"
                    );
                    return ExitCode::from(2);
                }
            };
            return super::exit_code(policy_eval::run(&dir, target, ledger.source()));
        }
    };
    let (method, path, body) = call(command);
    exchange::exit_code(exchange::perform(
        &args.admin,
        &method,
        path,
        body.as_ref(),
        |answer| render(command, answer),
    ))
}

/// The admin API call `command` makes.
fn call(command: AdminCall) -> (Method, &'static str, Option<Value>) {
    match command {
        AdminCall::Show => (Method::GET, "/admin/policies", None),
        AdminCall::Reload => (Method::POST, "/admin/policies/reload", Some(json!({}))),
    }
}

fn render(command: AdminCall, answer: &Value) -> String {
    let heading = match command {
        AdminCall::Show => format!(
            "dir              {}\npolicy set       {}\n",
            text(&answer["dir"]),
            text(&answer["set_seq"])
        ),
        AdminCall::Reload if answer.get("proposed").is_some() => format!(
            "proposed the policy folder as set {} ({}); it judges nothing until approved and activated\npolicy set in force {}\n",
            text(&answer["proposed"]["proposal_seq"]),
            if answer["proposed"]["changed"] == json!(true) {
                "recorded"
            } else {
                "already proposed"
            },
            text(&answer["set_seq"])
        ),
        AdminCall::Reload => format!("loaded policy set {}\n", text(&answer["set_seq"])),
    };
    heading + &files(&answer["files"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_answer() -> Value {
        json!({"set_seq": 9, "files": [
            {"file": "credit_borderline.rego", "sha256": "ab12"},
            {"file": "pii.rego", "sha256": "cd34"},
        ]})
    }

    #[test]
    fn calls_show_with_get_and_reload_with_post() {
        assert_eq!(
            call(AdminCall::Show),
            (Method::GET, "/admin/policies", None)
        );
        assert_eq!(
            call(AdminCall::Reload),
            (Method::POST, "/admin/policies/reload", Some(json!({})))
        );
    }

    #[test]
    fn show_prints_the_folder_set_and_files() {
        let mut answer = files_answer();
        answer["dir"] = json!("/etc/govgate/policies");
        assert_eq!(
            render(AdminCall::Show, &answer),
            "dir              /etc/govgate/policies\n\
             policy set       9\n\
             FILE                    SHA256\n\
             credit_borderline.rego  ab12\n\
             pii.rego                cd34\n"
        );
    }

    #[test]
    fn reload_prints_the_new_set() {
        let text = render(AdminCall::Reload, &files_answer());
        assert!(text.starts_with("loaded policy set 9\nFILE"), "{text}");
        let empty = render(AdminCall::Reload, &json!({"set_seq": 10, "files": []}));
        assert_eq!(empty, "loaded policy set 10\nno policy files\n");
    }
}
