//! Which admin API call each `govgate reviews` command makes, and the
//! checks made before making it.

use super::{AnswerOptions, ReviewsCommand, Verdict};
use crate::cli::models::request::segment;
use anyhow::Context;
use http::Method;
use serde_json::{Map, Value, json};

/// What the answer holds, and so how to print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shows {
    /// `{reviews: [...]}`.
    List,
    /// One review item in full.
    Review,
    /// `{review_id, decision_id, status, entry_seq}` after a decision.
    Decided,
}

/// One admin API call.
#[derive(Debug, PartialEq)]
pub(super) struct Call {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) body: Option<Value>,
    pub(super) shows: Shows,
}

/// The call `command` makes, or why it cannot be made.
pub(super) fn build(command: &ReviewsCommand) -> anyhow::Result<Call> {
    Ok(match command {
        ReviewsCommand::List {
            status,
            model,
            kind,
            older_than,
            limit,
        } => {
            // Absent options are left out: the API has the defaults.
            let query: Vec<String> = [
                ("status", status.map(name)),
                ("model", model.clone()),
                ("kind", kind.map(name)),
                ("older_than", older_than.map(|s| s.to_string())),
                ("limit", limit.map(|n| n.to_string())),
            ]
            .into_iter()
            .filter_map(|(key, value)| Some(format!("{key}={}", segment(&value?))))
            .collect();
            let mut path = "/admin/reviews".to_owned();
            if !query.is_empty() {
                path = format!("{path}?{}", query.join("&"));
            }
            Call {
                method: Method::GET,
                path,
                body: None,
                shows: Shows::List,
            }
        }
        ReviewsCommand::Show { review_id } => Call {
            method: Method::GET,
            path: review_path(review_id),
            body: None,
            shows: Shows::Review,
        },
        ReviewsCommand::Decide {
            review_id,
            verdict,
            reason,
            answer,
        } => Call {
            method: Method::POST,
            path: format!("{}/decide", review_path(review_id)),
            body: Some(decision(*verdict, reason.as_deref(), answer)?),
            shows: Shows::Decided,
        },
    })
}

/// The body of `decide`: the verdict, the reason (required to reject or
/// override), and for an override the answer to send instead.
fn decision(
    verdict: Verdict,
    reason: Option<&str>,
    answer: &AnswerOptions,
) -> anyhow::Result<Value> {
    let mut body = Map::new();
    body.insert("verdict".into(), json!(name(verdict)));
    match reason {
        Some(reason) => {
            body.insert("reason".into(), json!(reason));
        }
        None if verdict != Verdict::Approve => anyhow::bail!(
            "to {} you must give --reason TEXT (it is recorded in the ledger)",
            name(verdict)
        ),
        None => {}
    }
    if verdict == Verdict::Override {
        body.insert("answer".into(), override_answer(answer)?);
    } else {
        anyhow::ensure!(
            answer.answer_file.is_none()
                && answer.answer_json.is_none()
                && answer.status.is_none()
                && answer.content_type.is_none(),
            "--answer-file, --answer-json, --status and --content-type are only for override"
        );
    }
    Ok(Value::Object(body))
}

/// `{status, content_type, body}` of an override.
fn override_answer(answer: &AnswerOptions) -> anyhow::Result<Value> {
    let content_type = answer.content_type.as_deref();
    let (body, default_type) = match (&answer.answer_file, &answer.answer_json) {
        (Some(path), _) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read the answer file {}", path.display()))?;
            file_body(&bytes, content_type)
                .with_context(|| format!("the answer file {}", path.display()))?
        }
        (None, Some(value)) => (value.clone(), JSON),
        (None, None) => anyhow::bail!(
            "an override needs the answer to send instead: --answer-file PATH or --answer-json JSON"
        ),
    };
    Ok(json!({
        "status": answer.status.unwrap_or(200),
        "content_type": content_type.unwrap_or(default_type),
        "body": body,
    }))
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// A file's answer body and its default content type: its JSON value when
/// it parses and the content type is JSON or not given, else its text.
fn file_body(bytes: &[u8], content_type: Option<&str>) -> anyhow::Result<(Value, &'static str)> {
    if content_type.is_none_or(is_json)
        && let Ok(value) = serde_json::from_slice(bytes)
    {
        return Ok((value, JSON));
    }
    let text = std::str::from_utf8(bytes)
        .context("is neither JSON nor UTF-8 text; the API takes a JSON value or a string")?;
    Ok((Value::String(text.to_owned()), TEXT))
}

/// `application/json` or `application/<anything>+json`, parameters aside.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let essence = essence.to_ascii_lowercase();
    essence == JSON || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn review_path(review_id: &str) -> String {
    format!("/admin/reviews/{}", segment(review_id))
}

/// A value's name on the command line, which is the API's.
fn name(value: impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|value| value.get_name().to_owned())
        .unwrap_or_default()
}

/// `--answer-json`: any JSON value.
pub(super) fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|err| format!("not JSON: {err}"))
}

/// `--older-than`: a whole number of seconds, minutes, hours or days
/// (`90s`, `10m`, `2h`, `1d`), as seconds.
pub(super) fn parse_duration(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!("expected a whole number and a unit s, m, h or d (90s, 10m, 2h, 1d), not {text:?}")
    };
    let unit = text.chars().last().ok_or_else(invalid)?;
    let number = &text[..text.len() - unit.len_utf8()];
    let scale: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 60 * 60,
        'd' => 24 * 60 * 60,
        _ => return Err(invalid()),
    };
    if number.is_empty() || !number.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid());
    }
    number
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(scale))
        .ok_or_else(|| format!("{text:?} is too long a duration"))
}

#[cfg(test)]
mod tests;
