//! The models, a model and a version.

use super::{csrf_field, entry_link, esc, seg, text, texts};
use crate::admin::console::session::Session;
use serde_json::Value;
use std::fmt::Write;

/// The models and every version's state.
/// (`register`: `GET /admin/risks`, or null when it cannot be read.)
pub(crate) fn models(models: &Value, register: &Value) -> String {
    let mut body = String::new();
    for model in models["models"].as_array().into_iter().flatten() {
        let name = model["name"].as_str().unwrap_or("");
        let _ = write!(
            body,
            "<section><h2><a href=\"/console/models/{}\">{}</a></h2>",
            seg(name),
            esc(name)
        );
        body.push_str(&versions_table(name, model, register));
        body.push_str("</section>");
    }
    body
}

/// A model: its versions, and the proposal and roll-back forms the
/// person's roles allow.
pub(crate) fn model(
    name: &str,
    model: &Value,
    register: &Value,
    session: &Session,
    may_propose: bool,
    may_roll_back: bool,
) -> String {
    let mut body = versions_table(name, model, register);
    if may_roll_back {
        let back_to = model["activation_history"]
            .as_array()
            .and_then(|history| history.last())
            .map(text)
            .unwrap_or_default();
        let _ = write!(
            body,
            "<h2>Roll back</h2><form method=\"post\" action=\"/console/models/{}/rollback\" class=\"card\" id=\"form-rollback\">{}\
             <p>To version {} (the previously active version that is still approved).</p>\
             <label for=\"reason-rollback\">Reason</label><input id=\"reason-rollback\" name=\"reason\" type=\"text\">\
             <button type=\"submit\" id=\"do-rollback\">Roll back</button></form>",
            seg(name),
            csrf_field(session),
            esc(&back_to)
        );
    }
    if may_propose {
        let _ = write!(
            body,
            "<h2>Propose a version</h2><form method=\"post\" action=\"/console/models/{}/propose\" class=\"card\" id=\"form-propose\">{}\
             <label for=\"p-version\">Version label</label><input id=\"p-version\" name=\"version\" required>\
             <label for=\"p-upstream\">Upstream URL</label><input id=\"p-upstream\" name=\"upstream\" type=\"url\" required>\
             <label for=\"p-risk\">Risk class</label><select id=\"p-risk\" name=\"risk_class\">\
             <option>minimal</option><option>limited</option><option selected>high</option></select>\
             <label for=\"p-change\">Change reference (ticket)</label><input id=\"p-change\" name=\"change_ref\" required>\
             <label for=\"p-description\">Description</label><input id=\"p-description\" name=\"description\">\
             <label for=\"p-reason\">Reason</label><input id=\"p-reason\" name=\"reason\">\
             <button type=\"submit\" id=\"do-propose\">Propose</button></form>",
            seg(name),
            csrf_field(session)
        );
    }
    body
}

/// One model's versions.
pub(crate) fn versions_table(name: &str, model: &Value, register: &Value) -> String {
    let mut body = String::from(
        "<table><thead><tr><th scope=\"col\">Version</th><th scope=\"col\">State</th><th scope=\"col\">Risk class</th><th scope=\"col\">Approvals</th><th scope=\"col\">Proposed</th><th scope=\"col\">Linked risks</th></tr></thead><tbody>",
    );
    for (label, version) in model["versions"].as_object().into_iter().flatten() {
        let approvals: Vec<String> = version["approvals"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| text(&a["principal"]))
            .collect();
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/models/{}/versions/{}\">{}</a></td><td class=\"state-{}\">{}</td><td>{}</td><td>{}</td><td>{} by {}</td><td>{}</td></tr>",
            seg(name),
            seg(label),
            esc(label),
            esc(&text(&version["state"])),
            esc(&text(&version["state"])),
            esc(&text(&version["spec"]["risk_class"])),
            esc(&approvals.join(", ")),
            esc(&text(&version["proposed_time"])),
            esc(&text(&version["proposer"])),
            esc(&linked_risks(register, name, label)
                .iter()
                .map(|risk| text(&risk["id"]))
                .collect::<Vec<_>>()
                .join(", "))
        );
    }
    body.push_str("</tbody></table>");
    body
}

/// An action a version page offers: its path segment, its label, whether
/// the API requires a reason.
pub(crate) struct Offer {
    pub(crate) action: &'static str,
    pub(crate) label: &'static str,
    pub(crate) reason_required: bool,
}

/// One version: its record, what it still needs, its history and the
/// changes `offers` lists.
pub(crate) fn version(
    version: &Value,
    register: &Value,
    session: &Session,
    offers: &[Offer],
) -> String {
    let model = version["model"].as_str().unwrap_or("");
    let label = version["version"].as_str().unwrap_or("");
    let mut body = String::new();
    let _ = write!(
        body,
        "<dl class=\"facts\"><dt>State</dt><dd id=\"state\">{}</dd><dt>Risk class</dt><dd>{}</dd>\
         <dt>Upstream</dt><dd>{}</dd><dt>Change</dt><dd>{}</dd><dt>Description</dt><dd>{}</dd></dl>",
        esc(&text(&version["state"])),
        esc(&text(&version["spec"]["risk_class"])),
        esc(&text(&version["spec"]["upstream"])),
        esc(&text(&version["spec"]["change_ref"])),
        esc(&text(&version["spec"]["description"])),
    );
    if version["state"] == "proposed" {
        let needed = version["approvals_needed"].as_u64().unwrap_or(0);
        let missing: Vec<String> = texts(&version["missing_roles"]);
        let what = match (needed, missing.is_empty()) {
            (0, _) => "no more approvals needed".to_owned(),
            (1, true) => "1 more approval".to_owned(),
            (n, true) => format!("{n} more approvals"),
            (1, false) => format!("1 more approval: {}", missing.join(", ")),
            (n, false) => format!("{n} more approvals: {}", missing.join(", ")),
        };
        let _ = write!(body, "<p id=\"needed\" class=\"needed\">{}</p>", esc(&what));
    }
    body.push_str("<h2>Linked risks</h2>");
    body.push_str(&risks_table(&linked_risks(register, model, label)));
    body.push_str("<h2>History</h2><table id=\"history\"><thead><tr><th scope=\"col\">Ledger entry</th><th scope=\"col\">What</th><th scope=\"col\">Who</th><th scope=\"col\">When</th><th scope=\"col\">Reason</th></tr></thead><tbody>");
    for step in version["history"].as_array().into_iter().flatten() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"principal\">{}</td><td>{}</td><td>{}</td></tr>",
            entry_link(&step["seq"]),
            esc(&text(&step["kind"])),
            esc(&text(&step["principal"])),
            esc(&text(&step["time"])),
            esc(&text(&step["reason"]))
        );
    }
    body.push_str("</tbody></table>");
    if !offers.is_empty() {
        body.push_str("<h2>Change</h2><div class=\"actions\">");
        for offer in offers {
            let _ = write!(
                body,
                "<form method=\"post\" action=\"/console/models/{}/versions/{}/{}\" class=\"card\" id=\"form-{}\">{}\
                 <label for=\"reason-{}\">Reason{}</label>\
                 <input id=\"reason-{}\" name=\"reason\" type=\"text\"{}>\
                 <button type=\"submit\" id=\"do-{}\">{}</button></form>",
                seg(model),
                seg(label),
                offer.action,
                offer.action,
                csrf_field(session),
                offer.action,
                if offer.reason_required {
                    " (required)"
                } else {
                    ""
                },
                offer.action,
                if offer.reason_required {
                    " required"
                } else {
                    ""
                },
                offer.action,
                offer.label
            );
        }
        body.push_str("</div>");
    }
    body
}

/// The risks of `register` (`GET /admin/risks`) that concern `model`'s
/// version `label`: named as the model (every version) or `model@label`.
pub(crate) fn linked_risks<'a>(register: &'a Value, model: &str, label: &str) -> Vec<&'a Value> {
    let exact = format!("{model}@{label}");
    register["risks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|risk| {
            risk["models"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|named| named == model || *named == exact)
        })
        .collect()
}

/// The risks a version is linked to: who owns each, its controls and
/// what the gateway watches for it.
pub(crate) fn risks_table(risks: &[&Value]) -> String {
    if risks.is_empty() {
        return "<p class=\"hint\" id=\"no-risks\">No risk of the register names this version or its model.</p>"
            .to_owned();
    }
    let mut body = String::from(
        "<table id=\"risks\"><thead><tr><th scope=\"col\">Risk</th><th scope=\"col\">Owner</th>\
         <th scope=\"col\">Controls</th><th scope=\"col\">Indicators</th></tr></thead><tbody>",
    );
    for risk in risks {
        let controls: Vec<String> = texts(&risk["controls"]);
        let indicators: Vec<String> = risk["indicators"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|indicator| {
                let subject = indicator["attribute"]
                    .as_str()
                    .or(indicator["feature"].as_str())
                    .map_or(String::new(), |s| format!(" of {s}"));
                format!(
                    "{}{subject} {} {}",
                    text(&indicator["kpi"]),
                    text(&indicator["direction"]),
                    text(&indicator["threshold"])
                )
            })
            .collect();
        let _ = write!(
            body,
            "<tr><td><strong>{}</strong> {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&text(&risk["id"])),
            esc(&text(&risk["title"])),
            esc(&text(&risk["owner"])),
            esc(&controls.join("; ")),
            esc(&indicators.join("; "))
        );
    }
    body.push_str("</tbody></table>");
    body
}
