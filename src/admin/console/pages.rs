//! The console's pages as HTML: server-rendered from the admin API's
//! answers, no inline script or style (the content rules forbid both), a
//! stable URL per page.

use super::session::Session;
pub(crate) use crate::report::html::esc;
use serde_json::Value;
use std::fmt::Write;

/// A path segment made safe for a URL (percent-encoded).
pub(crate) fn seg(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// A whole page: `title`, the navigation for `session`, a notice, `body`.
pub(crate) fn page(
    title: &str,
    session: Option<&Session>,
    notice: Option<&Notice>,
    body: &str,
) -> String {
    let mut html = String::with_capacity(body.len() + 2048);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · govgate console</title><link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
         <script src=\"/console/assets/console.js\" defer></script></head><body>",
        esc(title)
    );
    html.push_str("<header><a class=\"brand\" href=\"/console/\">govgate</a>");
    if let Some(session) = session {
        html.push_str(
            "<nav aria-label=\"Sections\"><a href=\"/console/\">Overview</a>\
             <a href=\"/console/models\">Models</a><a href=\"/console/reviews\">Reviews</a>\
             <a href=\"/console/kpis\">KPIs</a><a href=\"/console/decisions\">Decisions</a>\
             <a href=\"/console/evidence\">Evidence</a></nav>",
        );
        let _ = write!(
            html,
            "<form class=\"who\" method=\"post\" action=\"/console/sign-out\">\
             <span id=\"principal\">{} ({})</span>{}<button type=\"submit\">Sign out</button></form>",
            esc(&session.caller.principal),
            esc(&session.caller.roles.join(", ")),
            csrf_field(session)
        );
    }
    html.push_str("</header><main>");
    if let Some(notice) = notice {
        let (class, role) = match notice {
            Notice::Done(_) => ("notice done", "status"),
            Notice::Problem(_) => ("notice problem", "alert"),
        };
        let _ = write!(
            html,
            "<p class=\"{class}\" role=\"{role}\" id=\"notice\">{}</p>",
            esc(notice.text())
        );
    }
    let _ = writeln!(html, "<h1>{}</h1>{body}</main></body></html>", esc(title));
    html
}

/// What a change led to, shown on the page it returns to.
pub(crate) enum Notice {
    Done(String),
    Problem(String),
}

impl Notice {
    fn text(&self) -> &str {
        match self {
            Notice::Done(text) | Notice::Problem(text) => text,
        }
    }
}

/// The hidden field every form of `session` carries.
pub(crate) fn csrf_field(session: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&session.csrf)
    )
}

/// The sign-in form; with `provider`, the way to the identity provider.
pub(crate) fn sign_in(problem: Option<&str>, provider: bool) -> String {
    let notice = problem.map(|problem| Notice::Problem(problem.to_owned()));
    let mut body = String::new();
    if provider {
        body.push_str(
            "<p><a class=\"button\" id=\"sign-in-provider\" href=\"/console/sign-in/provider\">\
             Sign in with your organisation's account</a></p><p class=\"hint\">Or with an admin token:</p>",
        );
    }
    body.push_str(
        "<form method=\"post\" action=\"/console/sign-in\" class=\"card\">\
         <label for=\"token\">Admin token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
         <button type=\"submit\" id=\"sign-in\">Sign in</button></form>\
         <p class=\"hint\">The token the gateway's <code>[[admin.tokens]]</code> (or its identity \
         provider) gave you. Everything you do here is an admin API call made as you, recorded \
         in the ledger under your name.</p>",
    );
    page("Sign in", None, notice.as_ref(), &body)
}

/// Signed in at the identity provider: on to the overview from this page
/// (a same-site step, so the session cookie goes along).
pub(crate) fn signed_in() -> String {
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
     <meta http-equiv=\"refresh\" content=\"0; url=/console/\">\
     <title>Signed in · govgate console</title><link rel=\"icon\" href=\"data:,\"></head>\
     <body><p>Signed in. <a id=\"continue\" href=\"/console/\">Continue to the console</a>.</p></body></html>\n"
        .to_owned()
}

/// The overview: models and their active versions, reviews waiting, the
/// ledger's latest checkpoint.
pub(crate) fn overview(
    models: &Value,
    reviews: Option<&Value>,
    checkpoint: Option<&str>,
    verification: Option<&Value>,
    recent: &[(&str, u64)],
) -> String {
    let mut body = String::from(
        "<section><h2>Models</h2><table><thead><tr><th scope=\"col\">Model</th><th scope=\"col\">Active version</th><th scope=\"col\">Versions</th><th scope=\"col\">Waiting for approval</th></tr></thead><tbody>",
    );
    for model in models["models"].as_array().into_iter().flatten() {
        let name = model["name"].as_str().unwrap_or("");
        let versions = model["versions"].as_object();
        let waiting = versions
            .into_iter()
            .flatten()
            .filter(|(_, version)| version["state"] == "proposed")
            .count();
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/models/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            seg(name),
            esc(name),
            esc(&text(&model["active"])),
            versions.map_or(0, |v| v.len()),
            waiting
        );
    }
    body.push_str("</tbody></table></section>");
    if let Some(reviews) = reviews {
        let items = reviews["reviews"].as_array().cloned().unwrap_or_default();
        let _ = write!(
            body,
            "<section><h2>Reviews waiting</h2><p id=\"waiting\">{} waiting</p>",
            items.len()
        );
        body.push_str(&review_table(&items));
        body.push_str("</section>");
    }
    if let Some(note) = checkpoint {
        let mut lines = note.lines();
        let origin = lines.next().unwrap_or("");
        let size = lines.next().unwrap_or("");
        let _ = write!(
            body,
            "<section><h2>Ledger</h2><dl class=\"facts\"><dt>Origin</dt><dd>{}</dd><dt>Entries under the latest signed checkpoint</dt><dd id=\"ledger-size\">{}</dd>",
            esc(origin),
            esc(size)
        );
        for (label, count) in recent {
            let _ = write!(
                body,
                "<dt>Entries recorded in the last {}</dt><dd id=\"recent-{}\">{}</dd>",
                esc(label),
                esc(label),
                count
            );
        }
        if let Some(verification) = verification {
            let last = &verification["last"];
            let shown = if last.is_null() {
                "none yet".to_owned()
            } else {
                format!(
                    "{} ({} of entries {}..{}, finished {})",
                    text(&last["result"]),
                    text(&last["mode"]),
                    text(&last["from_seq"]),
                    text(&last["to_size"]),
                    text(&last["finished_at"])
                )
            };
            let _ = write!(
                body,
                "<dt>Last verification in the background</dt><dd id=\"last-verification\">{}</dd>",
                esc(&shown)
            );
        }
        body.push_str("</dl></section>");
    }
    body
}

/// The models and every version's state.
pub(crate) fn models(models: &Value) -> String {
    let mut body = String::new();
    for model in models["models"].as_array().into_iter().flatten() {
        let name = model["name"].as_str().unwrap_or("");
        let _ = write!(
            body,
            "<section><h2><a href=\"/console/models/{}\">{}</a></h2>",
            seg(name),
            esc(name)
        );
        body.push_str(&versions_table(name, model));
        body.push_str("</section>");
    }
    body
}

/// A model: its versions, and the proposal and roll-back forms the
/// person's roles allow.
pub(crate) fn model(
    name: &str,
    model: &Value,
    session: &Session,
    may_propose: bool,
    may_roll_back: bool,
) -> String {
    let mut body = versions_table(name, model);
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
pub(crate) fn versions_table(name: &str, model: &Value) -> String {
    let mut body = String::from(
        "<table><thead><tr><th scope=\"col\">Version</th><th scope=\"col\">State</th><th scope=\"col\">Risk class</th><th scope=\"col\">Approvals</th><th scope=\"col\">Proposed</th></tr></thead><tbody>",
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
            "<tr><td><a href=\"/console/models/{}/versions/{}\">{}</a></td><td class=\"state-{}\">{}</td><td>{}</td><td>{}</td><td>{} by {}</td></tr>",
            seg(name),
            seg(label),
            esc(label),
            esc(&text(&version["state"])),
            esc(&text(&version["state"])),
            esc(&text(&version["spec"]["risk_class"])),
            esc(&approvals.join(", ")),
            esc(&text(&version["proposed_time"])),
            esc(&text(&version["proposer"]))
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
pub(crate) fn version(version: &Value, session: &Session, offers: &[Offer]) -> String {
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
        let missing: Vec<String> = version["missing_roles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        let what = match (needed, missing.is_empty()) {
            (0, _) => "no more approvals needed".to_owned(),
            (1, true) => "1 more approval".to_owned(),
            (n, true) => format!("{n} more approvals"),
            (1, false) => format!("1 more approval: {}", missing.join(", ")),
            (n, false) => format!("{n} more approvals: {}", missing.join(", ")),
        };
        let _ = write!(body, "<p id=\"needed\" class=\"needed\">{}</p>", esc(&what));
    }
    body.push_str("<h2>History</h2><table id=\"history\"><thead><tr><th scope=\"col\">Ledger entry</th><th scope=\"col\">What</th><th scope=\"col\">Who</th><th scope=\"col\">When</th><th scope=\"col\">Reason</th></tr></thead><tbody>");
    for step in version["history"].as_array().into_iter().flatten() {
        let _ = write!(
            body,
            "<tr><td>seq {}</td><td>{}</td><td class=\"principal\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&text(&step["seq"])),
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

/// The models with KPIs.
pub(crate) fn kpi_models(list: &Value) -> String {
    let mut body = String::from("<ul id=\"kpi-models\">");
    for model in list["models"].as_array().into_iter().flatten() {
        let name = model.as_str().unwrap_or("");
        let _ = write!(
            body,
            "<li><a href=\"/console/kpis/{}\">{}</a></li>",
            seg(name),
            esc(name)
        );
    }
    body.push_str("</ul>");
    if list["models"].as_array().is_none_or(Vec::is_empty) {
        body.push_str("<p class=\"hint\">No model has <code>[models.kpi]</code>.</p>");
    }
    body
}

/// A model's KPI charts (already drawn) and its current window.
pub(crate) fn kpi_model(charts: &str, current: &Value) -> String {
    let mut body = String::from(
        "<section class=\"charts\" id=\"charts\"><h2>Over time</h2><p class=\"hint\">Every \
         <code>kpi_snapshot</code> entry written since the gateway started (the latest 500), \
         each point with its ledger entry; the period report charts the whole ledger.</p>",
    );
    if charts.contains("<svg") {
        body.push_str(charts);
    } else {
        body.push_str("<p id=\"no-snapshots\">No snapshot written yet.</p>");
    }
    let _ = write!(
        body,
        "</section><section><h2>The current window</h2><pre id=\"current\">{}</pre></section>",
        esc(&serde_json::to_string_pretty(current).unwrap_or_default())
    );
    body
}

/// The evidence page: report jobs (`jobs`, or why they cannot be read),
/// the form to make a report and the one to export a bundle.
pub(crate) fn evidence(session: &Session, jobs: Option<&Value>, problem: Option<&str>) -> String {
    let mut body = String::from("<h2>Period reports</h2>");
    match (jobs, problem) {
        (Some(jobs), _) => {
            body.push_str("<table id=\"reports\"><thead><tr><th scope=\"col\">Report</th><th scope=\"col\">Period</th><th scope=\"col\">State</th><th scope=\"col\">Asked by</th><th scope=\"col\">Asked</th></tr></thead><tbody>");
            for job in jobs["reports"].as_array().into_iter().flatten() {
                let id = text(&job["id"]);
                let _ = write!(
                    body,
                    "<tr><td><a href=\"/console/evidence/reports/{}\">{}</a></td><td>{} to {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    seg(&id),
                    esc(&id),
                    esc(&text(&job["period"]["from"])),
                    esc(&text(&job["period"]["to"])),
                    esc(&text(&job["state"])),
                    esc(&text(&job["principal"])),
                    esc(&text(&job["asked"]))
                );
            }
            body.push_str("</tbody></table>");
            let _ = write!(
                body,
                "<form method=\"post\" action=\"/console/evidence/reports\" class=\"card\" id=\"form-report\">{}\
                 <label for=\"r-from\">From (RFC 3339, UTC)</label><input id=\"r-from\" name=\"from\" required placeholder=\"2026-10-01T00:00:00Z\">\
                 <label for=\"r-to\">To</label><input id=\"r-to\" name=\"to\" required placeholder=\"2027-01-01T00:00:00Z\">\
                 <button type=\"submit\" id=\"do-report\">Make the report</button></form>",
                csrf_field(session)
            );
        }
        (None, problem) => {
            let _ = write!(
                body,
                "<p class=\"hint\">Reports: {}</p>",
                esc(problem.unwrap_or("not available"))
            );
        }
    }
    body.push_str(
        "<h2>Export a bundle</h2><form method=\"get\" action=\"/console/evidence/export\" class=\"card\" id=\"form-export\">\
         <label for=\"e-from\">First seq</label><input id=\"e-from\" name=\"from\" inputmode=\"numeric\" placeholder=\"0\">\
         <label for=\"e-to\">Up to seq (not included; empty: the whole log)</label><input id=\"e-to\" name=\"to\" inputmode=\"numeric\">\
         <label for=\"e-model\">Only this model's decisions and versions (a sparse bundle)</label><input id=\"e-model\" name=\"model\">\
         <label><input type=\"checkbox\" name=\"payloads\" value=\"true\"> with the kept payloads</label>\
         <button type=\"submit\" id=\"do-export\">Download the bundle (tar)</button></form>\
         <p class=\"hint\">The bundle verifies with <code>govgate verify --bundle</code> and the independent \
         Python verifier (docs/verification.md).</p>",
    );
    body
}

/// A report job: state and progress, then its files.
pub(crate) fn report_job(job: &Value) -> String {
    let id = text(&job["id"]);
    let state = job["state"].as_str().unwrap_or("");
    let mut body = String::new();
    let _ = write!(
        body,
        "<dl class=\"facts\"><dt>Period</dt><dd>{} to {}</dd><dt>State</dt><dd id=\"report-state\" data-state=\"{}\">{}</dd>\
         <dt>Phase</dt><dd>{}</dd><dt>Asked by</dt><dd>{}</dd></dl>",
        esc(&text(&job["period"]["from"])),
        esc(&text(&job["period"]["to"])),
        esc(state),
        esc(state),
        esc(&text(&job["phase"])),
        esc(&text(&job["principal"])),
    );
    if state == "running" {
        let (done, total) = (
            job["done"].as_u64().unwrap_or(0),
            job["total"].as_u64().unwrap_or(0).max(1),
        );
        let _ = write!(
            body,
            "<label for=\"report-progress\">{} of {} entries</label>\
             <progress id=\"report-progress\" value=\"{done}\" max=\"{total}\"></progress>\
             <p class=\"hint\">This page updates itself until the report is made.</p>",
            done, total
        );
    }
    if let Some(error) = job["error"].as_object() {
        let _ = write!(
            body,
            "<p class=\"notice problem\" role=\"alert\">{}</p>",
            esc(error.get("message").and_then(Value::as_str).unwrap_or(""))
        );
    }
    if state == "done" {
        body.push_str("<h2>Files</h2><ul id=\"report-files\">");
        for file in job["files"].as_array().into_iter().flatten() {
            let name = file.as_str().unwrap_or("");
            let _ = write!(
                body,
                "<li><a href=\"/console/evidence/reports/{}/files/{}\">{}</a></li>",
                seg(&id),
                seg(name),
                esc(name)
            );
        }
        let _ = write!(
            body,
            "<li><a id=\"report-bundle\" href=\"/console/evidence/reports/{}/bundle\">the bundle that proves it (tar)</a></li></ul>\
             <p class=\"hint\">Entries {} to {}, recorded by the <code>report_issued</code> entry at seq {}. \
             <code>govgate verify --report DIR</code> recomputes every figure.</p>",
            seg(&id),
            esc(&text(&job["first_seq"])),
            esc(&text(&job["last_seq"])),
            esc(&text(&job["report_issued_seq"]))
        );
    }
    body
}

/// The decision look-up form and the search form (`pairs`: the search
/// as asked).
pub(crate) fn find_decision(pairs: &[(&str, String)]) -> String {
    let asked = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(String::new(), |(_, v)| esc(v))
    };
    let mut body = String::from(
        "<div class=\"actions\"><form method=\"get\" action=\"/console/decisions\" class=\"card\">\
         <label for=\"decision-id\">Decision id (the <code>govgate-decision-id</code> header of an answer)</label>\
         <input id=\"decision-id\" name=\"id\" required pattern=\"[0-9a-f]{32}\">\
         <button type=\"submit\" id=\"find\">Look up</button></form>",
    );
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/console/decisions\" class=\"card\" id=\"search\">\
         <label for=\"s-model\">Model</label><input id=\"s-model\" name=\"model\" value=\"{}\">\
         <label for=\"s-version\">Version</label><input id=\"s-version\" name=\"version\" value=\"{}\">\
         <label for=\"s-caller\">Caller</label><input id=\"s-caller\" name=\"caller\" value=\"{}\">\
         <label for=\"s-outcome\">Outcome</label><input id=\"s-outcome\" name=\"outcome\" value=\"{}\" placeholder=\"served, denied, held, error\">\
         <label for=\"s-from\">From (RFC 3339, UTC)</label><input id=\"s-from\" name=\"from\" value=\"{}\" placeholder=\"2026-12-01T00:00:00Z\">\
         <label for=\"s-to\">To</label><input id=\"s-to\" name=\"to\" value=\"{}\">\
         <button type=\"submit\" id=\"do-search\">Search</button></form></div>",
        asked("model"),
        asked("version"),
        asked("caller"),
        asked("outcome"),
        asked("from"),
        asked("to"),
    );
    body
}

/// A page of found decisions, newest first, and the link to older ones.
pub(crate) fn found_decisions(page: &Value, more: Option<&str>) -> String {
    let rows = page["decisions"].as_array().cloned().unwrap_or_default();
    let mut body = format!(
        "<h2>Found</h2><p class=\"hint\" id=\"found\">{} decisions, newest first (entries {}..{} searched, {} read).</p>",
        rows.len(),
        esc(&text(&page["range"]["from_seq"])),
        esc(&text(&page["range"]["to_seq"])),
        esc(&text(&page["read"]))
    );
    body.push_str("<table id=\"decisions\"><thead><tr><th scope=\"col\">Seq</th><th scope=\"col\">Time</th><th scope=\"col\">Decision</th><th scope=\"col\">Caller</th><th scope=\"col\">Model</th><th scope=\"col\">Outcome</th></tr></thead><tbody>");
    for row in &rows {
        let id = row["decision_id"].as_str().unwrap_or("");
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td><a href=\"/console/decisions/{}\">{}</a></td><td>{}</td><td>{} {}</td><td>{} ({})</td></tr>",
            esc(&text(&row["seq"])),
            esc(&text(&row["time"])),
            seg(id),
            esc(id),
            esc(&text(&row["caller"])),
            esc(&text(&row["model"])),
            esc(&text(&row["version"])),
            esc(&text(&row["outcome"])),
            esc(&text(&row["status"]))
        );
    }
    body.push_str("</tbody></table>");
    if let Some(more) = more {
        let _ = write!(
            body,
            "<p><a id=\"older\" href=\"{}\">Older decisions</a></p>",
            esc(more)
        );
    }
    body
}

/// A decision: the entry's members, links to what it cites, and the
/// receipt, entry and key in fields the page's own script checks
/// (`verify in this browser`): the signature of the checkpoint with the
/// key, the entry's inclusion under the checkpoint's root.
pub(crate) fn decision(
    id: &str,
    raw: &str,
    entry: &Value,
    proof: Option<&str>,
    vkey: &str,
) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<dl class=\"facts\"><dt>Decision</dt><dd id=\"decision-id\">{}</dd><dt>Ledger entry</dt><dd>seq {}</dd>\
         <dt>Time</dt><dd>{}</dd><dt>Caller</dt><dd>{}</dd><dt>Model</dt><dd>{}</dd><dt>Outcome</dt><dd id=\"outcome\">{} ({})</dd>",
        esc(id),
        esc(&text(&entry["seq"])),
        esc(&text(&entry["time"])),
        esc(&text(&entry["caller"])),
        match (entry["model"].as_str(), entry["version"].as_str()) {
            (Some(model), Some(version)) => format!(
                "<a href=\"/console/models/{}/versions/{}\">{} {}</a>",
                seg(model),
                seg(version),
                esc(model),
                esc(version)
            ),
            _ => esc(&text(&entry["model"])),
        },
        esc(&text(&entry["outcome"])),
        esc(&text(&entry["status"])),
    );
    let _ = write!(
        body,
        "<dt>Approval that let it serve</dt><dd>{}</dd><dt>Policy set in force</dt><dd>{}</dd></dl>",
        match entry["approval_seq"].as_u64() {
            Some(seq) => format!("ledger entry {seq}"),
            None => "-".to_owned(),
        },
        esc(&text(&entry["policy"]["set_seq"])),
    );
    let _ = write!(
        body,
        "<h2>The entry</h2><pre>{}</pre>",
        esc(&serde_json::to_string_pretty(entry).unwrap_or_default())
    );
    body.push_str(
        "<h2>Verify in this browser</h2><p class=\"hint\">This page's own script checks the \
         receipt with the browser's WebCrypto (SHA-256, Ed25519): the checkpoint's signature \
         with the key below, the entry's inclusion under the checkpoint's root, and that the \
         entry is this decision at the receipt's index. Paste the log's key as you got it from \
         its owner to depend on nothing the gateway says; the fields can be edited to check \
         any receipt.</p>",
    );
    let _ = write!(
        body,
        "<form class=\"card\" id=\"verify-form\"><label for=\"vkey\">The log's verifier key</label>\
         <input id=\"vkey\" value=\"{}\" spellcheck=\"false\">\
         <label for=\"entry-bytes\">The entry (its canonical bytes)</label>\
         <textarea id=\"entry-bytes\" rows=\"4\" spellcheck=\"false\">{}</textarea>\
         <label for=\"receipt\">The receipt (C2SP tlog-proof)</label>\
         <textarea id=\"receipt\" rows=\"10\" spellcheck=\"false\">{}</textarea>\
         <input type=\"hidden\" id=\"expected-id\" value=\"{}\">\
         <button type=\"button\" id=\"verify\">Verify in this browser</button></form>\
         <p id=\"verify-result\" role=\"status\" aria-live=\"polite\"></p>",
        esc(vkey),
        esc(raw),
        esc(proof.unwrap_or("")),
        esc(id)
    );
    body
}

/// The review queue's rows.
pub(crate) fn review_table(items: &[Value]) -> String {
    let mut body = String::from(
        "<table id=\"queue\"><thead><tr><th scope=\"col\">Review</th><th scope=\"col\">Kind</th><th scope=\"col\">Model</th><th scope=\"col\">Caller</th><th scope=\"col\">Why</th><th scope=\"col\">Waiting</th><th scope=\"col\">Deadline</th></tr></thead><tbody>",
    );
    for item in items {
        let id = item["review_id"].as_str().unwrap_or("");
        let reasons: Vec<String> = item["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
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

/// The queue with its filters.
pub(crate) fn reviews(items: &[Value], model: &str, kind: &str, fingerprint: &str) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/console/reviews\" class=\"filters\">\
         <label for=\"model\">Model</label><input id=\"model\" name=\"model\" value=\"{}\">\
         <label for=\"kind\">Kind</label><select id=\"kind\" name=\"kind\">\
         <option value=\"\"{}>all</option><option value=\"hold\"{}>hold</option><option value=\"flag\"{}>flag</option></select>\
         <button type=\"submit\">Filter</button></form>\
         <p class=\"hint\" id=\"queue-state\" data-fingerprint=\"{}\">{} waiting, oldest first; this page updates when the queue changes.</p>",
        esc(model),
        if kind.is_empty() { " selected" } else { "" },
        if kind == "hold" { " selected" } else { "" },
        if kind == "flag" { " selected" } else { "" },
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
        return format!("<pre>{}</pre>", esc(raw));
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
    format!("<pre>{}</pre>", esc(&pretty))
}

/// One review: the call, the answer held, the policies' reasons, and the
/// verdict forms when it is pending and `may_decide`.
pub(crate) fn review(item: &Value, session: &Session, may_decide: bool) -> String {
    let id = item["review_id"].as_str().unwrap_or("");
    let mut body = String::new();
    let reasons: Vec<String> = item["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let _ = write!(
        body,
        "<dl class=\"facts\"><dt>Status</dt><dd id=\"status\">{}</dd><dt>Kind</dt><dd>{}</dd>\
         <dt>Model</dt><dd>{} {}</dd><dt>Caller</dt><dd>{}</dd><dt>Why</dt><dd>{}</dd>\
         <dt>Decision</dt><dd>{} (seq {})</dd><dt>Deadline</dt><dd>{}</dd></dl>",
        esc(&text(&item["status"])),
        esc(&text(&item["review_kind"])),
        esc(&text(&item["model"])),
        esc(&text(&item["version"])),
        esc(&text(&item["caller"])),
        esc(&reasons.join("; ")),
        esc(&text(&item["decision_id"])),
        esc(&text(&item["decision_seq"])),
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
        assert!(other.starts_with("<pre>{\n"), "{other}");
        assert_eq!(
            readable(&json!({"body": "plain text"})),
            "<pre>plain text</pre>"
        );
        assert!(readable(&json!({"body": null})).contains("not kept"));
    }
}
