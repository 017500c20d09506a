//! `govgate policies sets|propose|approve|activate|rollback`: policy sets
//! under change control on a running gateway, as a client of its admin
//! API (`/admin/policies/sets`, docs/policies.md). Exit codes as for
//! `govgate models`.

use super::models::render::text;
use super::reviews::exchange::{self, AdminOptions};
use super::reviews::render::files;
use anyhow::Context;
use http::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::process::ExitCode;

/// One policy-set call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SetCall {
    /// List the sets and the one in force.
    List,
    /// Propose the files (`None`: the gateway's own folder).
    Propose {
        files: Option<Vec<(String, String)>>,
        reason: Option<String>,
    },
    /// Approve a set.
    Approve { seq: u64, reason: Option<String> },
    /// Activate a set.
    Activate { seq: u64, reason: Option<String> },
    /// Roll back to the set in force before.
    Rollback { reason: Option<String> },
}

/// Reads the served `*.rego` files of `dir` to upload.
pub(super) fn read_dir(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    crate::review::read_sources(dir).with_context(|| format!("reading {}", dir.display()))
}

/// Runs `call` against the gateway.
pub(super) fn run(admin: &AdminOptions, call: SetCall) -> ExitCode {
    let (method, path, body) = request(&call);
    exchange::exit_code(exchange::perform(
        admin,
        &method,
        &path,
        body.as_ref(),
        |answer| render(&call, answer),
    ))
}

/// The admin API call `call` makes.
pub(super) fn request(call: &SetCall) -> (Method, String, Option<Value>) {
    let reason_body = |reason: &Option<String>| json!({ "reason": reason });
    match call {
        SetCall::List => (Method::GET, "/admin/policies/sets".to_owned(), None),
        SetCall::Propose { files, reason } => {
            let mut body = reason_body(reason);
            if let Some(files) = files {
                body["files"] = files
                    .iter()
                    .map(|(file, text)| json!({ "file": file, "text": text }))
                    .collect();
            }
            (Method::POST, "/admin/policies/sets".to_owned(), Some(body))
        }
        SetCall::Approve { seq, reason } => (
            Method::POST,
            format!("/admin/policies/sets/{seq}/approve"),
            Some(reason_body(reason)),
        ),
        SetCall::Activate { seq, reason } => (
            Method::POST,
            format!("/admin/policies/sets/{seq}/activate"),
            Some(reason_body(reason)),
        ),
        SetCall::Rollback { reason } => (
            Method::POST,
            "/admin/policies/rollback".to_owned(),
            Some(reason_body(reason)),
        ),
    }
}

fn in_force(answer: &Value) -> String {
    let force = &answer["in_force"];
    format!(
        "in force         set {} (entry {})\n",
        text(&force["proposal_seq"]),
        text(&force["set_seq"])
    )
}

fn set_line(set: &Value) -> String {
    let approvals: Vec<String> = set["approvals"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|a| text(&a["principal"]))
        .collect();
    let outstanding = &set["outstanding"];
    let needs = match outstanding["approvals"].as_u64() {
        Some(0) | None => String::new(),
        Some(n) => format!("  needs {n} more approval(s)"),
    };
    format!(
        "{:<6} {:<9} {:<16} approvals: {}{}\n",
        text(&set["seq"]),
        text(&set["state"]),
        text(&set["proposer"]),
        if approvals.is_empty() {
            "-".to_owned()
        } else {
            approvals.join(", ")
        },
        needs
    )
}

fn render(call: &SetCall, answer: &Value) -> String {
    match call {
        SetCall::List => {
            let mut out = in_force(answer);
            out.push_str("SET    STATE     PROPOSER\n");
            for set in answer["sets"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                out.push_str(&set_line(set));
            }
            out
        }
        _ => {
            let head = if answer["changed"] == json!(true) {
                format!(
                    "recorded {} at seq {}\n",
                    text(&answer["kind"]),
                    text(&answer["entry_seq"])
                )
            } else {
                "nothing changed (already done)\n".to_owned()
            };
            let set = &answer["set"];
            let mut out = head;
            if !set.is_null() {
                out.push_str("SET    STATE     PROPOSER\n");
                out.push_str(&set_line(set));
                out.push_str(&files(&set["files"]));
            }
            out.push_str(&in_force(answer));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_go_to_the_policy_set_routes() {
        let (method, path, body) = request(&SetCall::Approve {
            seq: 7,
            reason: Some("ok".to_owned()),
        });
        assert_eq!(
            (method, path.as_str()),
            (Method::POST, "/admin/policies/sets/7/approve")
        );
        assert_eq!(body, Some(json!({"reason": "ok"})));
        let (_, path, body) = request(&SetCall::Propose {
            files: Some(vec![("a.rego".to_owned(), "package govgate".to_owned())]),
            reason: None,
        });
        assert_eq!(path, "/admin/policies/sets");
        assert_eq!(body.unwrap()["files"][0]["file"], "a.rego");
        let (_, _, folder) = request(&SetCall::Propose {
            files: None,
            reason: None,
        });
        assert!(folder.unwrap().get("files").is_none());
    }

    #[test]
    fn a_change_names_its_entry_and_the_set_in_force() {
        let answer = json!({
            "changed": true, "entry_seq": 12, "kind": "policy_set_approved",
            "set": {"seq": 9, "state": "proposed", "proposer": "ops",
                    "approvals": [{"principal": "ann"}], "outstanding": {"approvals": 1},
                    "files": [{"file": "a.rego", "sha256": "ab"}]},
            "in_force": {"set_seq": 5, "proposal_seq": 3},
        });
        let text = render(&SetCall::Rollback { reason: None }, &answer);
        assert!(
            text.starts_with("recorded policy_set_approved at seq 12\n"),
            "{text}"
        );
        assert!(text.contains("needs 1 more approval(s)"), "{text}");
        assert!(
            text.ends_with("in force         set 3 (entry 5)\n"),
            "{text}"
        );
    }
}
