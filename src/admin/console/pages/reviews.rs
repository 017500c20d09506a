//! The review queue and one review.

use super::{csrf_field, entry_link, esc, seg, text, texts};
use crate::admin::console::session::Session;
use serde_json::Value;
use std::fmt::Write;

/// The review queue's rows.
pub(crate) fn review_table(items: &[Value]) -> String {
    let mut body = String::from(
        "<table id=\"queue\"><thead><tr><th scope=\"col\">Review</th><th scope=\"col\">Kind</th><th scope=\"col\">Model</th><th scope=\"col\">Caller</th><th scope=\"col\">Why</th><th scope=\"col\">Waiting</th><th scope=\"col\">Deadline</th></tr></thead><tbody>",
    );
    for item in items {
        let id = item["review_id"].as_str().unwrap_or("");
        let reasons: Vec<String> = texts(&item["reasons"]);
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/reviews/{}\">{}</a></td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{} s</td><td>{}</td></tr>",
            seg(id),
            esc(&id[..id.len().min(12)]),
            esc(&text(&item["review_kind"])),
            esc(&text(&item["model"])),
            esc(&text(&item["version"])),
            esc(&text(&item["caller"])),
            esc(&reasons.join("; ")),
            esc(&text(&item["age_seconds"])),
            esc(&text(&item["deadline"]))
        );
    }
    body.push_str("</tbody></table>");
    body
}

/// The queue's filters as asked.
pub(crate) struct QueueFilters<'a> {
    pub(crate) model: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) reason: &'a str,
    /// Seconds waited at least.
    pub(crate) older_than: &'a str,
}

/// `<option>`s of `choices` (value, label), the one equal to `chosen`
/// selected.
fn options(choices: &[(&str, &str)], chosen: &str) -> String {
    let mut out = String::new();
    for (value, label) in choices {
        let selected = if *value == chosen { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{value}\"{selected}>{label}</option>");
    }
    out
}

/// The queue with its filters.
pub(crate) fn reviews(items: &[Value], filters: &QueueFilters, fingerprint: &str) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/console/reviews\" class=\"filters\">\
         <label for=\"model\">Model</label><input id=\"model\" name=\"model\" value=\"{}\">\
         <label for=\"kind\">Kind</label><select id=\"kind\" name=\"kind\">{}</select>\
         <label for=\"reason\">Reason contains</label><input id=\"reason\" name=\"reason\" value=\"{}\">\
         <label for=\"older_than\">Waiting</label><select id=\"older_than\" name=\"older_than\">{}</select>\
         <button type=\"submit\">Filter</button></form>\
         <p class=\"hint\" id=\"queue-state\" data-fingerprint=\"{}\">{} waiting, oldest first; this page updates when the queue changes.</p>",
        esc(filters.model),
        options(
            &[("", "all"), ("hold", "hold"), ("flag", "flag")],
            filters.kind
        ),
        esc(filters.reason),
        options(
            &[
                ("", "any time"),
                ("60", "over 1 minute"),
                ("300", "over 5 minutes"),
                ("900", "over 15 minutes"),
                ("3600", "over 1 hour"),
            ],
            filters.older_than
        ),
        esc(fingerprint),
        items.len()
    );
    body.push_str(&review_table(items));
    body
}

/// A body of the review as people read it: chat messages as a
/// conversation, JSON indented, anything else as text.
fn readable(captured: &Value) -> String {
    let body = &captured["body"];
    if let Value::String(raw) = body {
        return format!("<pre tabindex=\"0\">{}</pre>", esc(raw));
    }
    if body.is_null() {
        return "<p class=\"hint\">not kept</p>".to_owned();
    }
    // A chat request's messages, or a chat completion's choices.
    let messages: Option<Vec<&Value>> = body["messages"]
        .as_array()
        .map(|messages| messages.iter().collect())
        .or_else(|| {
            body["choices"]
                .as_array()
                .map(|choices| choices.iter().map(|choice| &choice["message"]).collect())
        });
    if let Some(messages) = messages {
        let mut out = String::from("<ol class=\"chat\">");
        for message in messages {
            let _ = write!(
                out,
                "<li><strong>{}</strong> {}</li>",
                esc(&text(&message["role"])),
                esc(&text(&message["content"]))
            );
        }
        out.push_str("</ol>");
        return out;
    }
    // KServe V2 tensors: one row per tensor.
    if let Some(tensors) = body["inputs"].as_array().or(body["outputs"].as_array())
        && tensors.iter().all(|tensor| tensor["name"].is_string())
    {
        let mut out = String::from(
            "<table class=\"tensors\"><thead><tr><th scope=\"col\">Tensor</th><th scope=\"col\">Type</th>\
             <th scope=\"col\">Shape</th><th scope=\"col\">Data</th></tr></thead><tbody>",
        );
        for tensor in tensors {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&text(&tensor["name"])),
                esc(&text(&tensor["datatype"])),
                esc(&text(&tensor["shape"])),
                esc(&text(&tensor["data"]))
            );
        }
        out.push_str("</tbody></table>");
        return out;
    }
    let pretty = serde_json::to_string_pretty(body).unwrap_or_default();
    format!("<pre tabindex=\"0\">{}</pre>", esc(&pretty))
}

/// One review: the call, the answer held, the policies' reasons, and the
/// verdict forms when it is pending and `may_decide`.
pub(crate) fn review(item: &Value, session: &Session, may_decide: bool) -> String {
    let id = item["review_id"].as_str().unwrap_or("");
    let mut body = String::new();
    let reasons: Vec<String> = texts(&item["reasons"]);
    let _ = write!(
        body,
        "<dl class=\"facts\"><dt>Status</dt><dd id=\"status\">{}</dd><dt>Kind</dt><dd>{}</dd>\
         <dt>Model</dt><dd>{} {}</dd><dt>Caller</dt><dd>{}</dd><dt>Why</dt><dd>{}</dd>\
         <dt>Decision</dt><dd><a href=\"/console/decisions/{}\">{}</a> ({})</dd><dt>Deadline</dt><dd>{}</dd></dl>",
        esc(&text(&item["status"])),
        esc(&text(&item["review_kind"])),
        esc(&text(&item["model"])),
        esc(&text(&item["version"])),
        esc(&text(&item["caller"])),
        esc(&reasons.join("; ")),
        seg(item["decision_id"].as_str().unwrap_or("")),
        esc(&text(&item["decision_id"])),
        entry_link(&item["decision_seq"]),
        esc(&text(&item["deadline"])),
    );
    let _ = write!(
        body,
        "<div class=\"pair\"><section><h2>Request</h2>{}</section><section><h2>Answer held</h2>{}</section></div>",
        readable(&item["request"]),
        readable(&item["response"])
    );
    if may_decide && item["status"] == "pending" {
        let action = format!("/console/reviews/{}/decide", seg(id));
        let _ = write!(
            body,
            "<h2>Verdict</h2><p class=\"hint\">Keys: <kbd>a</kbd> approve, <kbd>r</kbd> reject, <kbd>n</kbd> next in the queue.</p><div class=\"actions\">\
             <form method=\"post\" action=\"{action}\" class=\"card\" id=\"form-approve\">{csrf}<input type=\"hidden\" name=\"verdict\" value=\"approve\">\
             <label for=\"reason-approve\">Reason</label><input id=\"reason-approve\" name=\"reason\" type=\"text\">\
             <button type=\"submit\" id=\"do-approve\">Approve: release the answer</button></form>\
             <form method=\"post\" action=\"{action}\" class=\"card\" id=\"form-reject\">{csrf}<input type=\"hidden\" name=\"verdict\" value=\"reject\">\
             <label for=\"reason-reject\">Reason (required)</label><input id=\"reason-reject\" name=\"reason\" type=\"text\" required>\
             <button type=\"submit\" id=\"do-reject\">Reject: withhold it</button></form>\
             <form method=\"post\" action=\"{action}\" class=\"card\" id=\"form-override\">{csrf}<input type=\"hidden\" name=\"verdict\" value=\"override\">\
             <label for=\"reason-override\">Reason (required)</label><input id=\"reason-override\" name=\"reason\" type=\"text\" required>\
             <label for=\"answer-override\">Answer to send instead (JSON)</label><textarea id=\"answer-override\" name=\"answer\" rows=\"4\" required></textarea>\
             <button type=\"submit\" id=\"do-override\">Override: send this answer</button></form></div>",
            csrf = csrf_field(session)
        );
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_from_the_api_cannot_become_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(seg("a/b c?"), "a%2Fb%20c%3F");
        let html =
            readable(&json!({"body": {"messages": [{"role": "user", "content": "<b>hi</b>"}]}}));
        assert!(html.contains("&lt;b&gt;hi&lt;/b&gt;") && !html.contains("<b>hi"));
    }

    #[test]
    fn chat_bodies_read_as_conversations_and_other_json_indented() {
        let request = readable(&json!({"body": {"messages": [
            {"role": "system", "content": "be brief"}, {"role": "user", "content": "rate?"}]}}));
        assert!(request.starts_with("<ol class=\"chat\">"));
        assert!(request.contains("<strong>user</strong> rate?"));
        let answer = readable(&json!({"body": {"choices": [
            {"index": 0, "message": {"role": "assistant", "content": "4.1 %"}}]}}));
        assert!(answer.contains("<strong>assistant</strong> 4.1 %"));
        let tensors = readable(&json!({"body": {"outputs": [
            {"name": "score", "datatype": "FP32", "shape": [1], "data": [0.5]}]}}));
        assert!(
            tensors.contains("<td>score</td><td>FP32</td><td>[1]</td><td>[0.5]</td>"),
            "{tensors}"
        );
        let other = readable(&json!({"body": {"ok": true}}));
        assert!(other.starts_with("<pre tabindex=\"0\">{\n"), "{other}");
        assert_eq!(
            readable(&json!({"body": "plain text"})),
            "<pre tabindex=\"0\">plain text</pre>"
        );
        assert!(readable(&json!({"body": null})).contains("not kept"));
    }
}
