//! `govgate policies ...`: the review policies a running gateway enforces,
//! as a client of its admin API. Exit codes as for `govgate models`; a
//! reload the gateway refuses (a policy does not compile) exits 1 and says
//! which policy set stays in force.

use super::models::render::text;
use super::reviews::exchange::{self, AdminOptions};
use super::reviews::render::files;
use http::Method;
use serde_json::{Value, json};
use std::process::ExitCode;

/// Options of `govgate policies`.
#[derive(Debug, clap::Args)]
pub(crate) struct PoliciesArgs {
    #[command(flatten)]
    admin: AdminOptions,
    #[command(subcommand)]
    command: PoliciesCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub(crate) enum PoliciesCommand {
    /// The policy folder, the policy set in force and its files' SHA-256
    /// (roles admin, reviewer or auditor).
    Show,
    /// Load the policy folder again (role admin). If a policy does not
    /// compile, the gateway keeps the set in force and names the file.
    Reload,
}

/// Runs a `govgate policies` command; see the module docs for exit codes.
pub(crate) fn run(args: PoliciesArgs) -> ExitCode {
    let (method, path, body) = call(args.command);
    exchange::exit_code(exchange::perform(
        &args.admin,
        &method,
        path,
        body.as_ref(),
        |answer| render(args.command, answer),
    ))
}

/// The admin API call `command` makes.
fn call(command: PoliciesCommand) -> (Method, &'static str, Option<Value>) {
    match command {
        PoliciesCommand::Show => (Method::GET, "/admin/policies", None),
        PoliciesCommand::Reload => (Method::POST, "/admin/policies/reload", Some(json!({}))),
    }
}

fn render(command: PoliciesCommand, answer: &Value) -> String {
    let heading = match command {
        PoliciesCommand::Show => format!(
            "dir              {}\npolicy set       {}\n",
            text(&answer["dir"]),
            text(&answer["set_seq"])
        ),
        PoliciesCommand::Reload => format!("loaded policy set {}\n", text(&answer["set_seq"])),
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
            call(PoliciesCommand::Show),
            (Method::GET, "/admin/policies", None)
        );
        assert_eq!(
            call(PoliciesCommand::Reload),
            (Method::POST, "/admin/policies/reload", Some(json!({})))
        );
    }

    #[test]
    fn show_prints_the_folder_set_and_files() {
        let mut answer = files_answer();
        answer["dir"] = json!("/etc/govgate/policies");
        assert_eq!(
            render(PoliciesCommand::Show, &answer),
            "dir              /etc/govgate/policies\n\
             policy set       9\n\
             FILE                    SHA256\n\
             credit_borderline.rego  ab12\n\
             pii.rego                cd34\n"
        );
    }

    #[test]
    fn reload_prints_the_new_set() {
        let text = render(PoliciesCommand::Reload, &files_answer());
        assert!(text.starts_with("loaded policy set 9\nFILE"), "{text}");
        let empty = render(
            PoliciesCommand::Reload,
            &json!({"set_seq": 10, "files": []}),
        );
        assert_eq!(empty, "loaded policy set 10\nno policy files\n");
    }
}
