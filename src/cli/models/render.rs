//! The admin API's answers as text for a person: tables of versions, one
//! version's details and history, a change, a refusal.
//!
//! Answers are read leniently (a missing member prints as `-`): a newer
//! gateway may add or drop members, and a listing is no place to fail.

use http::StatusCode;
use serde_json::Value;
use std::fmt::Write;

/// `GET /admin/models`: one row per version of every model.
pub(super) fn list(answer: &Value) -> String {
    let models = answer["models"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if models.is_empty() {
        return "no models\n".to_owned();
    }
    let mut rows = Vec::new();
    for model in models {
        let name = text(&model["name"]);
        for (label, record) in versions(model) {
            let mut row = vec![name.clone()];
            row.extend(version_row(model, &label, record));
            rows.push(row);
        }
    }
    table(
        &[
            "MODEL",
            "VERSION",
            "STATE",
            "RISK",
            "CHANGE REF",
            "APPROVALS",
            "ACTIVE",
        ],
        &rows,
    )
}

/// `GET /admin/models/{m}`: the model's versions and activation history.
pub(super) fn model(answer: &Value) -> String {
    let mut out = String::new();
    // INVARIANT (every `writeln!` below): writing to a String cannot fail.
    let _ = writeln!(out, "model              {}", text(&answer["name"]));
    let _ = writeln!(out, "active version     {}", text(&answer["active"]));
    let previous: Vec<String> = answer["activation_history"]
        .as_array()
        .map(|labels| labels.iter().map(text).collect())
        .unwrap_or_default();
    let previous = if previous.is_empty() {
        "-".to_owned()
    } else {
        format!("{} (a rollback goes to the last)", previous.join(", "))
    };
    let _ = writeln!(out, "previously active  {previous}");
    out.push('\n');
    let rows: Vec<Vec<String>> = versions(answer)
        .into_iter()
        .map(|(label, record)| version_row(answer, &label, record))
        .collect();
    if rows.is_empty() {
        out.push_str("no versions\n");
    } else {
        out.push_str(&table(
            &[
                "VERSION",
                "STATE",
                "RISK",
                "CHANGE REF",
                "APPROVALS",
                "ACTIVE",
            ],
            &rows,
        ));
    }
    out
}

/// `GET /admin/models/{m}/versions/{v}`: details, approvals, history.
pub(super) fn version(record: &Value) -> String {
    let spec = &record["spec"];
    let mut out = String::new();
    let mut field = |name: &str, value: String| {
        let _ = writeln!(out, "{name:<16} {value}");
    };
    field("model", text(&record["model"]));
    field("version", text(&record["version"]));
    let active = if record["active"] == Value::Bool(true) {
        " (the active version)"
    } else {
        ""
    };
    field("state", format!("{}{active}", text(&record["state"])));
    let risk_class = if record["risk_class_default"] == Value::Bool(true) {
        format!(
            "{} (the configuration sets no risk_class; the default is the strictest)",
            text(&spec["risk_class"])
        )
    } else {
        text(&spec["risk_class"])
    };
    field("risk class", risk_class);
    field("change ref", text(&spec["change_ref"]));
    field("upstream", text(&spec["upstream"]));
    field("upstream model", text(&spec["upstream_model"]));
    field("artifact digest", text(&spec["artifact_digest"]));
    field("description", text(&spec["description"]));
    field(
        "proposed by",
        format!(
            "{} (ledger entry {}, {})",
            text(&record["proposer"]),
            text(&record["proposed_seq"]),
            text(&record["proposed_time"])
        ),
    );
    let approvals = record["approvals"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if approvals.is_empty() {
        field("approvals", "none yet".to_owned());
    }
    for (n, approval) in approvals.iter().enumerate() {
        let roles = list_of(&approval["roles"]);
        field(
            if n == 0 { "approvals" } else { "" },
            format!(
                "{} [{roles}] (ledger entry {}, {})",
                text(&approval["principal"]),
                text(&approval["seq"]),
                text(&approval["time"])
            ),
        );
    }
    if let Some(needed) = still_needed(record).filter(|_| record["state"] == "proposed") {
        field("still needed", needed);
    }
    // The entry every decision this version serves cites as its approval.
    field("approval entry", text(&record["approval_seq"]));
    out.push_str("\nhistory\n");
    let rows: Vec<Vec<String>> = record["history"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|event| {
            ["seq", "time", "kind", "principal", "state", "reason"]
                .iter()
                .map(|member| text(&event[*member]))
                .collect()
        })
        .collect();
    out.push_str(&table(
        &["SEQ", "TIME", "KIND", "BY", "STATE", "REASON"],
        &rows,
    ));
    out
}

/// A change's answer: what was recorded, where the version stands, and
/// what it still needs or what comes next.
pub(super) fn change(answer: &Value) -> String {
    let record = &answer["version"];
    let what = if answer["changed"] == Value::Bool(true) {
        format!(
            "{} recorded as ledger entry {}",
            text(&answer["kind"]),
            text(&answer["entry_seq"])
        )
    } else {
        // Only a repeated approval changes nothing: the first one stands.
        "already recorded, nothing changed".to_owned()
    };
    let (model, version) = (text(&record["model"]), text(&record["version"]));
    let state = text(&record["state"]);
    let mut out = format!(
        "{model} {version}: {what}\n  now {state}: {}",
        approved_by(record)
    );
    match (state.as_str(), still_needed(record)) {
        ("proposed", Some(needed)) => {
            let _ = write!(out, "; {needed}");
        }
        ("approved", _) => {
            let _ = write!(
                out,
                " (approval entry {}); the approval policy is met: \
                 make it serve calls naming no version with `govgate models activate {model} {version}`",
                text(&record["approval_seq"])
            );
        }
        ("active", _) => {
            let _ = write!(out, " (approval entry {})", text(&record["approval_seq"]));
        }
        _ => {}
    }
    out.push('\n');
    out
}

/// `approved by dana, sam`, or `no approvals yet`.
fn approved_by(record: &Value) -> String {
    let approvals: Vec<String> = record["approvals"]
        .as_array()
        .map(|all| all.iter().map(|a| text(&a["principal"])).collect())
        .unwrap_or_default();
    if approvals.is_empty() {
        "no approvals yet".to_owned()
    } else {
        format!("approved by {}", approvals.join(", "))
    }
}

/// What a proposed version still needs, from the API's `approvals_needed`
/// and `missing_roles` (`None` when the API does not say, or nothing):
/// `2 more approvals needed: role approver:ai_officer and 1 from any approver`.
fn still_needed(record: &Value) -> Option<String> {
    let needed = record["approvals_needed"].as_u64().filter(|n| *n > 0)?;
    let roles: Vec<String> = record["missing_roles"]
        .as_array()
        .map(|roles| {
            roles
                .iter()
                .map(|role| format!("role {}", text(role)))
                .collect()
        })
        .unwrap_or_default();
    let plural = if needed == 1 { "" } else { "s" };
    let none_yet = record["approvals"].as_array().is_none_or(Vec::is_empty);
    let more = if none_yet { "" } else { " more" };
    let head = format!("{needed}{more} approval{plural} needed");
    let any = needed.saturating_sub(roles.len() as u64);
    Some(match (roles.is_empty(), any) {
        (true, _) => format!("{head} (any approver but the proposer)"),
        (false, 0) => format!("{head}: {}", roles.join(", ")),
        (false, any) => format!("{head}: {} and {any} from any approver", roles.join(", ")),
    })
}

/// A version's risk class, marked when it is the configuration's default.
fn risk(record: &Value) -> String {
    let class = text(&record["spec"]["risk_class"]);
    if record["risk_class_default"] == Value::Bool(true) {
        format!("{class} (default)")
    } else {
        class
    }
}

/// A refusal's code, message and details, for stderr.
pub(super) fn refusal(status: StatusCode, error: &Value) -> String {
    let mut out = format!(
        "govgate: refused by the admin API ({} {}): {}\n",
        status.as_u16(),
        text(&error["code"]),
        text(&error["message"])
    );
    if !error["current_state"].is_null() {
        let _ = writeln!(out, "  current state: {}", text(&error["current_state"]));
    }
    if !error["missing_roles"].is_null() {
        let _ = writeln!(
            out,
            "  an approval is needed from: {}",
            list_of(&error["missing_roles"])
        );
    }
    out
}

/// A model's versions in the order they were proposed (labels are free
/// text: sorting them as strings would put `10` before `9`).
fn versions(model: &Value) -> Vec<(String, &Value)> {
    let mut versions: Vec<(String, &Value)> = model["versions"]
        .as_object()
        .map(|all| {
            all.iter()
                .map(|(label, record)| (clean(label), record))
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|(_, record)| record["proposed_seq"].as_u64().unwrap_or(u64::MAX));
    versions
}

fn version_row(model: &Value, label: &str, record: &Value) -> Vec<String> {
    let given = record["approvals"].as_array().map_or(0, Vec::len);
    // A proposed version shows how far it is: `2 of 3`.
    let approvals = match record["approvals_needed"].as_u64() {
        Some(more) if record["state"] == "proposed" => {
            format!("{given} of {}", given as u64 + more)
        }
        _ => given.to_string(),
    };
    let active = model["active"].as_str().map(clean).as_deref() == Some(label);
    vec![
        label.to_owned(),
        text(&record["state"]),
        risk(record),
        text(&record["spec"]["change_ref"]),
        approvals,
        if active { "*" } else { "" }.to_owned(),
    ]
}

/// Left-aligned columns two spaces apart, no trailing blanks.
pub(in crate::cli) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A member as text: strings without quotes, `-` for null or absent.
pub(in crate::cli) fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => clean(s),
        other => clean(&other.to_string()),
    }
}

fn list_of(value: &Value) -> String {
    value
        .as_array()
        .map(|items| items.iter().map(text).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| text(value))
}

/// Descriptions and reasons are written by other people through the API;
/// a control character in one could move the cursor or recolour this
/// terminal, so each is shown as U+FFFD.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;
