//! The evidence page and a report job.

use super::{csrf_field, esc, seg, text};
use crate::admin::console::session::Session;
use serde_json::Value;
use std::fmt::Write;

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
