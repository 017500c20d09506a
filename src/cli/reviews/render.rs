//! Review items as text for a person: the queue as a table, one item in
//! full, a decision. Read leniently like `govgate models` (a missing member
//! prints as `-`), with the same table and cleaning of untrusted text.

use crate::cli::models::render::{table, text};
use serde_json::Value;
use std::fmt::Write;

/// `GET /admin/reviews`: one row per item, oldest first as the API sends.
pub(super) fn list(answer: &Value) -> String {
    let items = answer["reviews"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if items.is_empty() {
        return "no reviews\n".to_owned();
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            let members = [
                "review_id",
                "review_kind",
                "status",
                "model",
                "version",
                "caller",
            ];
            let mut row: Vec<String> = members.iter().map(|member| text(&item[*member])).collect();
            row.push(age_of(item));
            row.push(reasons(item));
            row
        })
        .collect();
    table(
        &[
            "REVIEW", "KIND", "STATUS", "MODEL", "VERSION", "CALLER", "AGE", "REASONS",
        ],
        &rows,
    )
}

/// `GET /admin/reviews/{id}`: the item, the call and its answer, the
/// policies that sent it to review, and the decision.
pub(super) fn review(item: &Value) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: String| {
        // INVARIANT (every `writeln!` here): writing to a String cannot fail.
        let _ = writeln!(out, "{name:<16} {value}");
    };
    field("review", text(&item["review_id"]));
    field(
        "decision",
        format!(
            "{} (ledger entry {})",
            text(&item["decision_id"]),
            text(&item["decision_seq"])
        ),
    );
    field("kind", text(&item["review_kind"]));
    field("status", text(&item["status"]));
    field(
        "model",
        format!("{} {}", text(&item["model"]), text(&item["version"])),
    );
    field("caller", text(&item["caller"]));
    field("stage", text(&item["stage"]));
    field("reasons", reasons(item));
    field(
        "opened",
        format!("{} ({} ago)", text(&item["opened_at"]), age_of(item)),
    );
    let on_timeout = match &item["on_timeout"] {
        Value::Null => String::new(),
        action => format!(" (on timeout: {})", text(action)),
    };
    field(
        "deadline",
        format!("{}{on_timeout}", text(&item["deadline"])),
    );
    field("policy set", text(&item["policy"]["set_seq"]));
    out.push_str(&files(&item["policy"]["files"]));
    out.push_str(&message("request", &item["request"], None));
    out.push_str(&message(
        "response",
        &item["response"],
        Some(&item["response"]["status"]),
    ));
    out.push('\n');
    out.push_str(&decision(&item["decision"]));
    out
}

/// A decision's answer: `review ID overridden (ledger entry 42)`.
pub(super) fn decided(answer: &Value) -> String {
    format!(
        "review {} {} (ledger entry {})\n",
        text(&answer["review_id"]),
        text(&answer["status"]),
        text(&answer["entry_seq"])
    )
}

/// Policy files and their SHA-256, as a table (`-` when there are none).
pub(in crate::cli) fn files(files: &Value) -> String {
    let rows: Vec<Vec<String>> = files
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|file| vec![text(&file["file"]), text(&file["sha256"])])
        .collect();
    if files.is_null() {
        // An earlier set: the server names it by seq only.
        return "files listed in that set's policy_set_loaded ledger entry\n".to_owned();
    }
    if rows.is_empty() {
        return "no policy files\n".to_owned();
    }
    table(&["FILE", "SHA256"], &rows)
}

/// A request or response: a heading line, then its body indented.
fn message(name: &str, part: &Value, status: Option<&Value>) -> String {
    if part.is_null() {
        return format!("\n{name:<16} none\n");
    }
    let mut heading: Vec<String> = status.map(text).into_iter().collect();
    heading.push(format!("{} bytes", text(&part["length"])));
    heading.push(text(&part["content_type"]));
    let mut out = format!("\n{name:<16} {}\n", heading.join(", "));
    for line in body(part).lines() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// A kept body as text: JSON pretty-printed (its strings escaped), text
/// with control characters but line breaks and tabs shown as U+FFFD, hex
/// in lines of 64 digits.
fn body(part: &Value) -> String {
    let body = &part["body"];
    match (part["body_format"].as_str(), body) {
        (Some("text"), Value::String(text)) => text
            .replace("\r\n", "\n")
            .chars()
            .map(|c| match c {
                '\n' | '\t' => c,
                c if c.is_control() => '\u{FFFD}',
                c => c,
            })
            .collect(),
        (Some("hex"), Value::String(_)) => {
            let digits: Vec<char> = text(body).chars().collect();
            let lines: Vec<String> = digits.chunks(64).map(String::from_iter).collect();
            lines.join("\n")
        }
        (None, Value::Null) => "(no body)".to_owned(),
        (_, json) => serde_json::to_string_pretty(json).unwrap_or_default(),
    }
}

/// The decision, or that there is none yet.
fn decision(decision: &Value) -> String {
    if decision.is_null() {
        return format!("{:<16} none yet\n", "decision");
    }
    let by = match &decision["reviewer"] {
        Value::Null => String::new(),
        reviewer => format!(" by {}", text(reviewer)),
    };
    let mut out = String::new();
    let _ = writeln!(out, "{:<16} {}{by}", "verdict", text(&decision["verdict"]));
    let _ = writeln!(
        out,
        "{:<16} {}",
        "decided at",
        text(&decision["decided_at"])
    );
    let _ = writeln!(
        out,
        "{:<16} {}",
        "ledger entry",
        text(&decision["entry_seq"])
    );
    let _ = writeln!(out, "{:<16} {}", "reason", text(&decision["reason"]));
    if !decision["override_sha256"].is_null() {
        let _ = writeln!(
            out,
            "{:<16} {}",
            "override sha256",
            text(&decision["override_sha256"])
        );
    }
    out
}

fn reasons(item: &Value) -> String {
    match item["reasons"].as_array() {
        Some(reasons) if !reasons.is_empty() => {
            reasons.iter().map(text).collect::<Vec<_>>().join("; ")
        }
        _ => "-".to_owned(),
    }
}

fn age_of(item: &Value) -> String {
    item["age_seconds"]
        .as_u64()
        .map_or_else(|| "-".to_owned(), age)
}

/// `12s`, `3m12s`, `2h05m`, `1d03h`: two units at most.
fn age(seconds: u64) -> String {
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{minutes}m{:02}s", seconds % 60),
        3600..86_400 => format!("{hours}h{:02}m", minutes % 60),
        _ => format!("{days}d{:02}h", hours % 24),
    }
}

#[cfg(test)]
mod tests;
