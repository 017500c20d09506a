//! Rendering of answers shaped like the admin API's review answers.

use super::*;
use serde_json::json;

fn summary(kind: &str, status: &str, age: u64) -> Value {
    json!({
        "review_id": "3f9c0d1e2a3b4c5d6e7f8091a2b3c4d5",
        "decision_id": "0123456789abcdef0123456789abcdef",
        "decision_seq": 17, "review_kind": kind, "status": status,
        "model": "credit-scoring", "version": "v3", "caller": "svc-loans",
        "stage": "response", "reasons": ["score borderline", "amount > 50k"],
        "opened_at": "2026-11-27T15:31:26.123Z", "age_seconds": age,
        "deadline": "2026-11-27T16:31:26.123Z", "on_timeout": "reject",
    })
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn the_queue_is_a_table_with_ages_and_reasons() {
    let mut flag = summary("flag", "approved", 86_400 * 2 + 3600 * 5 + 7);
    flag["reasons"] = json!([]);
    flag["version"] = Value::Null;
    let answer = json!({"reviews": [summary("hold", "pending", 192), flag]});
    let text = list(&answer);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(
        words(lines[0]),
        [
            "REVIEW", "KIND", "STATUS", "MODEL", "VERSION", "CALLER", "AGE", "REASONS"
        ]
    );
    assert_eq!(
        words(lines[1]),
        [
            "3f9c0d1e2a3b4c5d6e7f8091a2b3c4d5",
            "hold",
            "pending",
            "credit-scoring",
            "v3",
            "svc-loans",
            "3m12s",
            "score",
            "borderline;",
            "amount",
            ">",
            "50k"
        ]
    );
    assert!(
        lines[1].ends_with("3m12s  score borderline; amount > 50k"),
        "{text}"
    );
    assert!(
        lines[2].ends_with("credit-scoring  -        svc-loans  2d05h  -"),
        "{text}"
    );
    assert!(text.lines().all(|line| line == line.trim_end()));
    assert_eq!(list(&json!({"reviews": []})), "no reviews\n");
    assert_eq!(list(&json!({})), "no reviews\n");
}

#[test]
fn ages_show_two_units_at_most() {
    for (seconds, shown) in [
        (0, "0s"),
        (59, "59s"),
        (60, "1m00s"),
        (192, "3m12s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (7500, "2h05m"),
        (86_399, "23h59m"),
        (86_400, "1d00h"),
        (86_400 * 40 + 3600 * 23, "40d23h"),
    ] {
        assert_eq!(age(seconds), shown, "{seconds}");
    }
}

fn full(decision: Value) -> Value {
    let mut item = summary("hold", "pending", 12);
    item["request"] = json!({"length": 27, "content_type": "application/json",
        "body_format": "json", "body": {"amount": 60000, "note": "a\u{1b}[2J"}});
    item["response"] = json!({"status": 200, "length": 14, "content_type": "text/plain",
        "body_format": "text", "body": "score: 0.51\r\nok\u{7}\n"});
    item["policy"] = json!({"set_seq": 5, "files": [
        {"file": "credit_borderline.rego", "sha256": "9f86d081884c7d65"}]});
    item["decision"] = decision;
    item
}

#[test]
fn an_item_shows_the_call_its_answer_and_the_policies() {
    let text = review(&full(Value::Null));
    let expected = "\
review           3f9c0d1e2a3b4c5d6e7f8091a2b3c4d5
decision         0123456789abcdef0123456789abcdef (ledger entry 17)
kind             hold
status           pending
model            credit-scoring v3
caller           svc-loans
stage            response
reasons          score borderline; amount > 50k
opened           2026-11-27T15:31:26.123Z (12s ago)
deadline         2026-11-27T16:31:26.123Z (on timeout: reject)
policy set       5
FILE                    SHA256
credit_borderline.rego  9f86d081884c7d65

request          27 bytes, application/json
  {
    \"amount\": 60000,
    \"note\": \"a\\u001b[2J\"
  }

response         200, 14 bytes, text/plain
  score: 0.51
  ok\u{FFFD}

decision         none yet
";
    assert_eq!(text, expected);
}

#[test]
fn a_decided_item_shows_the_verdict() {
    let text = review(&full(json!({
        "verdict": "override", "reviewer": "rita", "reason": "cap the score",
        "decided_at": "2026-11-27T15:40:00.000Z", "entry_seq": 42,
        "override_sha256": "e3b0c442"})));
    assert!(
        text.ends_with(
            "\nverdict          override by rita\n\
             decided at       2026-11-27T15:40:00.000Z\n\
             ledger entry     42\n\
             reason           cap the score\n\
             override sha256  e3b0c442\n"
        ),
        "{text}"
    );
    let timeout = review(&full(json!({
        "verdict": "timeout", "reviewer": null, "reason": null,
        "decided_at": "2026-11-27T16:31:26.200Z", "entry_seq": 50, "override_sha256": null})));
    assert!(
        timeout.contains("\nverdict          timeout\n"),
        "{timeout}"
    );
    assert!(timeout.ends_with("reason           -\n"), "{timeout}");
}

#[test]
fn bodies_in_hex_or_missing_and_answers_not_yet_there() {
    let mut item = full(Value::Null);
    item["request"] = json!({"length": 40, "content_type": null,
        "body_format": "hex", "body": "00".repeat(40)});
    item["response"] = Value::Null;
    item["deadline"] = Value::Null;
    item["on_timeout"] = Value::Null;
    let text = review(&item);
    assert!(text.contains("deadline         -\n"), "{text}");
    let hex = format!(
        "\nrequest          40 bytes, -\n  {}\n  {}\n",
        "0".repeat(64),
        "0".repeat(16)
    );
    assert!(text.contains(&hex), "{text}");
    assert!(text.contains("\nresponse         none\n"), "{text}");
    let bare = json!({"length": 0, "content_type": null, "body": null});
    assert_eq!(body(&bare), "(no body)");
    let null_json = json!({"body_format": "json", "body": null});
    assert_eq!(body(&null_json), "null");
}

#[test]
fn a_decision_names_the_item_status_and_entry() {
    let answer = json!({"review_id": "3f9c", "decision_id": "0123",
        "status": "overridden", "entry_seq": 42});
    assert_eq!(
        decided(&answer),
        "review 3f9c overridden (ledger entry 42)\n"
    );
}

#[test]
fn policy_files_are_a_table() {
    assert_eq!(files(&json!([])), "no policy files\n");
    assert_eq!(
        files(&json!([{"file": "a.rego", "sha256": "ab"}])),
        "FILE    SHA256\na.rego  ab\n"
    );
}
