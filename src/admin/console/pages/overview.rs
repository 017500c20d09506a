//! The overview page.

use super::reviews::review_table;
use super::{esc, seg, text};
use serde_json::Value;
use std::fmt::Write;

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
