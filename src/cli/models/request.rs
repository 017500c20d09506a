//! Which admin API call each `govgate models` command makes.

use super::{ModelsCommand, RiskClass, Target};
use http::Method;
use serde_json::{Map, Value, json};

/// What the answer holds, and so how to print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shows {
    /// `{models: [...]}`.
    List,
    /// One model.
    Model,
    /// One version.
    Version,
    /// `{changed, entry_seq, kind, version}` after a change.
    Change,
}

/// One admin API call.
#[derive(Debug, PartialEq)]
pub(super) struct Call {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) body: Option<Value>,
    pub(super) shows: Shows,
}

impl RiskClass {
    fn as_str(self) -> &'static str {
        match self {
            RiskClass::Minimal => "minimal",
            RiskClass::Limited => "limited",
            RiskClass::High => "high",
        }
    }
}

/// The call `command` makes.
pub(super) fn build(command: &ModelsCommand) -> Call {
    let get = |path: String, shows| Call {
        method: Method::GET,
        path,
        body: None,
        shows,
    };
    let act = |target: &Target, action: &str, reason: Option<&String>| Call {
        method: Method::POST,
        path: format!("{}/{action}", version_path(&target.model, &target.version)),
        body: Some(reason_body(reason)),
        shows: Shows::Change,
    };
    match command {
        ModelsCommand::List => get("/admin/models".to_owned(), Shows::List),
        ModelsCommand::Show {
            model,
            version: None,
        } => get(model_path(model), Shows::Model),
        ModelsCommand::Show {
            model,
            version: Some(version),
        } => get(version_path(model, version), Shows::Version),
        ModelsCommand::Propose {
            model,
            label,
            upstream,
            risk_class,
            change_ref,
            upstream_model,
            artifact_digest,
            description,
            reason,
        } => {
            let mut body = Map::new();
            body.insert("version".into(), json!(label));
            body.insert("upstream".into(), json!(upstream));
            body.insert("risk_class".into(), json!(risk_class.as_str()));
            body.insert("change_ref".into(), json!(change_ref));
            // Absent options are left out rather than sent as null: the
            // API takes `description` as a string that defaults to empty.
            let optional = [
                ("upstream_model", upstream_model),
                ("artifact_digest", artifact_digest),
                ("description", description),
                ("reason", reason),
            ];
            for (name, value) in optional {
                if let Some(value) = value {
                    body.insert(name.into(), json!(value));
                }
            }
            Call {
                method: Method::POST,
                path: format!("{}/versions", model_path(model)),
                body: Some(Value::Object(body)),
                shows: Shows::Change,
            }
        }
        ModelsCommand::Approve { target, reason } => act(target, "approve", reason.as_ref()),
        ModelsCommand::Reject { target, reason } => act(target, "reject", Some(reason)),
        ModelsCommand::Activate { target, reason } => act(target, "activate", reason.as_ref()),
        ModelsCommand::Retire { target, reason } => act(target, "retire", reason.as_ref()),
        ModelsCommand::Revoke { target, reason } => act(target, "revoke", Some(reason)),
        ModelsCommand::Rollback { model, reason } => Call {
            method: Method::POST,
            path: format!("{}/rollback", model_path(model)),
            body: Some(reason_body(reason.as_ref())),
            shows: Shows::Change,
        },
    }
}

fn reason_body(reason: Option<&String>) -> Value {
    match reason {
        Some(reason) => json!({ "reason": reason }),
        None => json!({}),
    }
}

fn model_path(model: &str) -> String {
    format!("/admin/models/{}", segment(model))
}

fn version_path(model: &str, version: &str) -> String {
    format!("{}/versions/{}", model_path(model), segment(version))
}

/// `text` as one URL path segment: every byte but the unreserved ones
/// percent-encoded, so that a name holding `/`, `?` or `#` still names
/// that model instead of another route.
pub(in crate::cli) fn segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(model: &str, version: &str) -> Target {
        Target {
            model: model.to_owned(),
            version: version.to_owned(),
        }
    }

    #[test]
    fn paths_encode_each_segment() {
        assert_eq!(segment("credit-scoring"), "credit-scoring");
        assert_eq!(segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(segment("1.0+build"), "1.0%2Bbuild");
        let call = build(&ModelsCommand::Show {
            model: "x/y".into(),
            version: Some("..".into()),
        });
        assert_eq!(call.path, "/admin/models/x%2Fy/versions/..");
    }

    #[test]
    fn actions_post_their_reason() {
        let call = build(&ModelsCommand::Revoke {
            target: target("m", "2"),
            reason: "leak".into(),
        });
        assert_eq!(call.method, Method::POST);
        assert_eq!(call.path, "/admin/models/m/versions/2/revoke");
        assert_eq!(call.body, Some(json!({"reason": "leak"})));
        let call = build(&ModelsCommand::Approve {
            target: target("m", "2"),
            reason: None,
        });
        assert_eq!(call.body, Some(json!({})));
        let call = build(&ModelsCommand::Rollback {
            model: "m".into(),
            reason: None,
        });
        assert_eq!(call.path, "/admin/models/m/rollback");
    }

    #[test]
    fn proposals_leave_out_absent_options() {
        let call = build(&ModelsCommand::Propose {
            model: "m".into(),
            label: "2".into(),
            upstream: "http://10.0.0.5:8000".into(),
            risk_class: RiskClass::Limited,
            change_ref: "CHG-1".into(),
            upstream_model: None,
            artifact_digest: Some("sha256:ab".into()),
            description: None,
            reason: None,
        });
        assert_eq!(call.path, "/admin/models/m/versions");
        assert_eq!(
            call.body,
            Some(json!({
                "version": "2",
                "upstream": "http://10.0.0.5:8000",
                "risk_class": "limited",
                "change_ref": "CHG-1",
                "artifact_digest": "sha256:ab",
            }))
        );
    }
}
