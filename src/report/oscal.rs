//! report.oscal.json: the period report as an OSCAL 1.0.6
//! `assessment-results` document, for GRC tools that import OSCAL.
//!
//! It is derived from report.json's bytes and the issue time alone, with
//! no randomness (its uuids are name-based on report.json's SHA-256), so
//! `govgate verify --report` derives it again and compares it byte for
//! byte: report.json is covered by the `report_issued` entry, and so,
//! through this derivation, is the OSCAL document. One observation and one
//! finding per control of the control map; the finding is `satisfied`
//! only when the report holds evidence for it and shows nothing against
//! it (a change approved without four eyes, a period that did not verify,
//! a section missing). Whether the evidence suffices stays the auditor's
//! judgement: the wording says what the report shows, no more.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The OSCAL version of the documents written (the schema the tests
/// validate against: tests/data/oscal/).
pub const OSCAL_VERSION: &str = "1.0.6";

/// Namespace of govgate's own props (OSCAL's own names have none).
const NS: &str = "https://govgate.example/ns/oscal";

/// report.oscal.json's bytes for report.json's `json_bytes` (parsed:
/// `report`), issued at `issued` (the `report_issued` entry's time; for a
/// report recorded nowhere, the period's end).
pub fn render(json_bytes: &[u8], report: &Value, issued: &str) -> Vec<u8> {
    let digest = hex(&Sha256::digest(json_bytes));
    let ids = Ids { digest: &digest };
    let scope = &report["scope"];
    let from = time(&scope["period"]["from"]);
    let to = time(&scope["period"]["to"]);
    let issued = time(&json!(issued));
    let origin = scope["origin"].as_str().unwrap_or_default();
    let controls = report["control_map"]["controls"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut selected = Vec::new();
    let mut observations = Vec::new();
    let mut findings = Vec::new();
    for (index, control) in controls.iter().enumerate() {
        let token = control_token(control, index);
        selected.push(json!({"control-id": token}));
        let observation = ids.uuid(&format!("observation/{index}"));
        observations.push(observe(control, &observation, &issued));
        findings.push(find(report, control, &token, &ids, index, &observation));
    }
    let mut result = json!({
        "uuid": ids.uuid("result"),
        "title": format!("Period {from} .. {to}"),
        "description": format!(
            "What the ledger of {origin} shows for the period, entries {} to {}: the evidence of each \
             control of the report's control map and whether the report shows anything against it.",
            scope["first_seq"], scope["last_seq"]
        ),
        "start": from,
        "end": to,
        "props": [
            prop("first-seq", &scope["first_seq"].to_string()),
            prop("last-seq", &scope["last_seq"].to_string()),
            prop("verification", scope["verification"]["result"].as_str().unwrap_or("unknown")),
        ],
        "reviewed-controls": {
            "description": "The controls of the report's control map (control_map.controls of report.json).",
            "control-selections": [{"include-controls": selected}],
        },
        "remarks": "Control numbers and short titles only; what each control requires is in its standard, and whether the evidence suffices is the auditor's judgement.",
    });
    if !observations.is_empty() {
        result["observations"] = json!(observations);
        result["findings"] = json!(findings);
    }
    let document = json!({
        "assessment-results": {
            "uuid": ids.uuid("assessment-results"),
            "metadata": {
                "title": format!("govgate period report of {origin}, {from} .. {to}"),
                "last-modified": issued,
                "version": report["format"].as_str().unwrap_or(super::FORMAT),
                "oscal-version": OSCAL_VERSION,
                "props": [prop("report-json-sha256", &digest)],
                "remarks": "Derived by govgate from report.json and the time of its report_issued entry; `govgate verify --report` derives it again and compares it byte for byte.",
            },
            "import-ap": {
                "href": "report.json",
                "remarks": "govgate has no separate assessment plan: the period report (report.json, beside this file) states the scope and the control map assessed.",
            },
            "results": [result],
        }
    });
    format!("{document:#}\n").into_bytes()
}

/// Name-based uuids: SHA-256 of report.json's digest and a label, shaped
/// as a version 5 UUID (the form OSCAL's schema accepts).
struct Ids<'a> {
    digest: &'a str,
}

impl Ids<'_> {
    fn uuid(&self, label: &str) -> String {
        let hash = Sha256::digest(format!("govgate-report-oscal/{}/{label}", self.digest));
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x50;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let text = hex(&bytes);
        format!(
            "{}-{}-{}-{}-{}",
            &text[..8],
            &text[8..12],
            &text[12..16],
            &text[16..20],
            &text[20..]
        )
    }
}

/// One control's evidence: each of its sections, with the ledger seqs the
/// report lists for it.
fn observe(control: &Value, uuid: &str, issued: &str) -> Value {
    let sections = control["sections"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut evidence = Vec::new();
    for section in sections {
        let name = section["section"].as_str().unwrap_or_default();
        let seqs: Vec<String> = section["seqs"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(Value::to_string)
            .collect();
        let description = if section["in_report"] != true {
            format!("Section {name}: not in this report.")
        } else if seqs.is_empty() {
            format!("Section {name}: no ledger entry of the period.")
        } else {
            format!("Section {name}: ledger entries {}.", seqs.join(", "))
        };
        let mut item = json!({
            "href": format!("report.json#/{}", pointer(name)),
            "description": description,
        });
        if !seqs.is_empty() {
            item["props"] = json!([prop("ledger-seqs", &seqs.join(" "))]);
        }
        evidence.push(item);
    }
    let mut observation = json!({
        "uuid": uuid,
        "title": format!("{} {}", text(&control["framework"]), text(&control["id"])),
        "description": format!(
            "{}: the report sections that evidence it, and their first ledger entries.",
            text(&control["title"])
        ),
        "props": [
            prop("framework", &text(&control["framework"])),
            prop("control", &text(&control["id"])),
        ],
        "methods": ["EXAMINE"],
        "collected": issued,
    });
    if !evidence.is_empty() {
        observation["relevant-evidence"] = json!(evidence);
    }
    observation
}

/// One control's finding: satisfied when the report holds evidence and
/// shows nothing against it.
fn find(
    report: &Value,
    control: &Value,
    token: &str,
    ids: &Ids<'_>,
    index: usize,
    observation: &str,
) -> Value {
    let sections: Vec<&str> = control["sections"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|section| section["section"].as_str())
        .collect();
    let mut against = Vec::new();
    if report["scope"]["verification"]["result"] != "ok" {
        against.push("the period's entries did not verify".to_owned());
    }
    for section in control["sections"].as_array().into_iter().flatten() {
        if section["in_report"] != true {
            against.push(format!(
                "section {} is not in this report",
                text(&section["section"])
            ));
        }
    }
    if sections.contains(&"changes") {
        let four_eyes = &report["changes"]["four_eyes"];
        let (approved, compliant) = (
            four_eyes["approved_changes"].as_u64().unwrap_or(0),
            four_eyes["compliant"].as_u64().unwrap_or(0),
        );
        if compliant < approved {
            against.push(format!(
                "{} of {approved} changes approved in the period lack four eyes",
                approved - compliant
            ));
        }
    }
    let evidenced = control["evidence_in_period"] == true;
    let (state, reason, description) = if !against.is_empty() {
        (
            "not-satisfied",
            "fail",
            format!("The report shows: {}.", against.join("; ")),
        )
    } else if !evidenced {
        (
            "not-satisfied",
            "other",
            "The period holds no ledger entry evidencing this control.".to_owned(),
        )
    } else {
        (
            "satisfied",
            "pass",
            "The report holds evidence for this control and shows nothing against it.".to_owned(),
        )
    };
    json!({
        "uuid": ids.uuid(&format!("finding/{index}")),
        "title": format!(
            "{} {}: {}",
            text(&control["framework"]),
            text(&control["id"]),
            text(&control["title"])
        ),
        "description": description,
        "target": {
            "type": "objective-id",
            "target-id": token,
            "status": {"state": state, "reason": reason},
        },
        "related-observations": [{"observation-uuid": observation}],
    })
}

/// An OSCAL token (letters, digits, `.`, `-`, `_`, starting with a letter)
/// for a control: its framework and id, e.g. `iso-iec-27001-2022-annex-a_5.28`.
fn control_token(control: &Value, index: usize) -> String {
    let slug = |value: &Value| {
        let mut out = String::new();
        for c in text(value).chars() {
            if c.is_ascii_alphanumeric() || c == '.' {
                out.push(c.to_ascii_lowercase());
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        out.trim_end_matches('-').to_owned()
    };
    let (framework, id) = (slug(&control["framework"]), slug(&control["id"]));
    if framework.starts_with(|c: char| c.is_ascii_alphabetic()) && !id.is_empty() {
        format!("{framework}_{id}")
    } else {
        format!("control-{index}_{id}")
    }
}

/// A prop in govgate's namespace; OSCAL wants a value with no leading or
/// trailing whitespace.
fn prop(name: &str, value: &str) -> Value {
    let value = value.trim();
    json!({"name": name, "ns": NS, "value": if value.is_empty() { "none" } else { value }})
}

/// A string member's text, trimmed (OSCAL strings are never blank).
fn text(value: &Value) -> String {
    match value.as_str().map(str::trim) {
        Some(text) if !text.is_empty() => text.to_owned(),
        _ => "unnamed".to_owned(),
    }
}

/// An RFC 3339 time as OSCAL writes it (upper-case `T` and `Z`).
fn time(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_ascii_uppercase()
}

/// A JSON pointer token (RFC 6901), percent-encoded where a URI needs it.
fn pointer(name: &str) -> String {
    name.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_uuids_have_the_forms_oscal_accepts() {
        let control = json!({"framework": "EU AI Act", "id": "Art. 12"});
        assert_eq!(control_token(&control, 0), "eu-ai-act_art.-12");
        let control = json!({"framework": "ISO/IEC 27001:2022 Annex A", "id": "5.28"});
        assert_eq!(
            control_token(&control, 3),
            "iso-iec-27001-2022-annex-a_5.28"
        );
        let ids = Ids { digest: "ab" };
        let uuid = ids.uuid("result");
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "5");
        assert!("89ab".contains(&uuid[19..20]));
        assert_eq!(uuid, ids.uuid("result"));
        assert_ne!(uuid, ids.uuid("finding/0"));
    }

    #[test]
    fn a_change_without_four_eyes_makes_the_changes_controls_not_satisfied() {
        let report = |compliant: u64| {
            json!({
                "format": "govgate-report/1",
                "scope": {"origin": "o", "period": {"from": "2026-01-01T00:00:00Z",
                    "to": "2026-04-01T00:00:00Z"}, "first_seq": 1, "last_seq": 9,
                    "verification": {"result": "ok"}},
                "changes": {"four_eyes": {"approved_changes": 2, "compliant": compliant}},
                "control_map": {"controls": [{"framework": "Own", "id": "C-1", "title": "Four eyes",
                    "evidence_in_period": true,
                    "sections": [{"section": "changes", "in_report": true, "seqs": [3, 4]}]}]},
            })
        };
        let state = |compliant: u64| {
            let bytes = render(b"{}", &report(compliant), "2026-04-02T00:00:00Z");
            let document: Value = serde_json::from_slice(&bytes).unwrap();
            let finding = &document["assessment-results"]["results"][0]["findings"][0];
            finding["target"]["status"]["state"].clone()
        };
        assert_eq!(state(2), "satisfied");
        assert_eq!(state(1), "not-satisfied");
    }
}
