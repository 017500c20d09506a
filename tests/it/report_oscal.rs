//! report.oscal.json: the period report as OSCAL assessment-results. It
//! must validate against NIST's published OSCAL 1.0.6 JSON schema
//! (tests/data/oscal/, checked with Python's jsonschema in the tests'
//! environment; a document missing a required member must not), hold one
//! observation and one finding per control of the report's control map,
//! and be covered by `verify --report`, which derives it again: an edited
//! one is refused, a report without one (written before govgate made
//! them) still verifies.

use crate::report::{report_everything, run, said};
use crate::reviews::infer_as;
use crate::support::governance::admin_call;
use crate::support::{Gateway, TestUpstream};
use http::Method;
use serde_json::Value;
use std::path::{Path, PathBuf};

const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/oscal");

/// Validates `documents` against the vendored schema: (exit code, output).
fn validate(documents: &[&Path]) -> (Option<i32>, String) {
    let python = crate::support::pyenv::python();
    let output = std::process::Command::new(&python)
        .arg(format!("{SCHEMA_DIR}/validate.py"))
        .arg(format!("{SCHEMA_DIR}/oscal_assessment-results_schema.json"))
        .args(documents)
        .output()
        .unwrap();
    (output.status.code(), said(&output))
}

/// A gateway that served a few calls and changed its live version, then
/// stopped, and its report of everything: the report's directory (also
/// the browser test's report).
pub(crate) async fn a_report() -> (Gateway, PathBuf) {
    let upstream = TestUpstream::start().await;
    let config = format!(
        "[[models]]\nname = \"scorer\"\nprotocol = \"kserve_v2\"\ndefault_version = \"v1\"\n\
         [[models.versions]]\nversion = \"v1\"\nupstream = \"{0}\"\nrisk_class = \"high\"\n\
         [[models.versions]]\nversion = \"v2\"\nupstream = \"{0}\"\nrisk_class = \"high\"\n",
        upstream.url()
    );
    let mut gateway = Gateway::start(&config).await;
    for (caller, body) in [("svc-a", r#"{"n":1}"#), ("svc-b", r#"{"n":2}"#)] {
        let reply = infer_as(&gateway, caller, body).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let path = "/admin/models/scorer/versions/v2/activate";
    let reply = admin_call(&gateway.admin, Some("ops"), Method::POST, path, "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    gateway.stop().await;
    let out = report_everything(&gateway, "review");
    (gateway, out)
}

#[tokio::test]
async fn the_oscal_export_validates_against_the_oscal_schema_and_verify_report_derives_it_again() {
    let (gateway, out) = a_report().await;
    let oscal_path = out.join("report.oscal.json");
    let oscal: Value = serde_json::from_slice(&std::fs::read(&oscal_path).unwrap()).unwrap();
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();

    // What it holds: the period, the controls, one observation and one
    // finding per control, the evidence's seqs.
    let results = &oscal["assessment-results"];
    assert_eq!(results["metadata"]["oscal-version"], "1.0.6");
    assert_eq!(results["metadata"]["version"], "govgate-report/3");
    assert_eq!(results["import-ap"]["href"], "report.json");
    let issued = results["metadata"]["last-modified"].as_str().unwrap();
    assert!(
        issued.starts_with("20") && issued.ends_with('Z'),
        "{issued}"
    );
    assert_ne!(
        issued, "2100-01-01T00:00:00Z",
        "the issue time, not the period's end"
    );
    let result = &results["results"][0];
    assert_eq!(result["start"], "2000-01-01T00:00:00Z");
    assert_eq!(result["end"], "2100-01-01T00:00:00Z");
    let controls = report["control_map"]["controls"].as_array().unwrap();
    let selected = result["reviewed-controls"]["control-selections"][0]["include-controls"]
        .as_array()
        .unwrap();
    assert_eq!(selected.len(), controls.len());
    assert!(
        selected
            .iter()
            .any(|c| c["control-id"] == "eu-ai-act_art.-12")
    );
    let observations = result["observations"].as_array().unwrap();
    let findings = result["findings"].as_array().unwrap();
    assert_eq!(observations.len(), controls.len());
    assert_eq!(findings.len(), controls.len());
    for ((control, observation), finding) in controls.iter().zip(observations).zip(findings) {
        assert_eq!(
            finding["related-observations"][0]["observation-uuid"],
            observation["uuid"]
        );
        // Nothing against any control in this period: satisfied exactly
        // where the report holds evidence.
        let state = &finding["target"]["status"]["state"];
        let evidenced = control["evidence_in_period"] == true;
        assert_eq!(
            state,
            if evidenced {
                "satisfied"
            } else {
                "not-satisfied"
            },
            "{finding}"
        );
        for (section, evidence) in control["sections"]
            .as_array()
            .unwrap()
            .iter()
            .zip(observation["relevant-evidence"].as_array().unwrap())
        {
            let seqs: Vec<String> = section["seqs"]
                .as_array()
                .unwrap()
                .iter()
                .map(Value::to_string)
                .collect();
            if !seqs.is_empty() {
                assert_eq!(evidence["props"][0]["value"], seqs.join(" "), "{evidence}");
            }
        }
    }
    assert!(
        findings
            .iter()
            .any(|f| f["target"]["status"]["state"] == "satisfied")
    );

    // Valid against NIST's schema; a document without its metadata, or
    // with a uuid that is not one, is not.
    let broken = |name: &str, edit: &dyn Fn(&mut Value)| {
        let mut document = oscal.clone();
        edit(&mut document);
        let path = gateway.dir.path().join(name);
        std::fs::write(&path, serde_json::to_vec(&document).unwrap()).unwrap();
        path
    };
    let no_metadata = broken("no-metadata.json", &|d| {
        d["assessment-results"]
            .as_object_mut()
            .unwrap()
            .remove("metadata");
    });
    let bad_time = broken("bad-time.json", &|d| {
        d["assessment-results"]["results"][0]["start"] = "2000-01-01 00:00:00".into();
    });
    let (code, output) = validate(&[&oscal_path]);
    assert_eq!(code, Some(0), "{output}");
    for bad in [&no_metadata, &bad_time] {
        let (code, output) = validate(&[bad]);
        assert_eq!(code, Some(1), "{}: {output}", bad.display());
        assert!(output.contains("invalid:"), "{output}");
    }

    // verify --report derives it again: as written it verifies; edited,
    // it is refused and named; absent (an older report), the report
    // still verifies and says so.
    let vkey = gateway.vkey.clone();
    let verify = |dir: &Path| run(&["verify", "--report", dir.to_str().unwrap(), "--vkey", &vkey]);
    let checked = verify(&out);
    assert!(checked.status.success(), "{}", said(&checked));
    assert!(
        said(&checked).contains("report.oscal.json is the one derived from report.json"),
        "{}",
        said(&checked)
    );
    let copy = |name: &str, oscal: Option<&str>| {
        let dir = gateway.dir.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        for file in ["report.json", "report.html"] {
            std::fs::copy(out.join(file), dir.join(file)).unwrap();
        }
        if let Some(text) = oscal {
            std::fs::write(dir.join("report.oscal.json"), text).unwrap();
        }
        std::os::unix::fs::symlink(out.join("bundle"), dir.join("bundle")).unwrap();
        dir
    };
    let text = std::fs::read_to_string(&oscal_path).unwrap();
    let edited = text.replacen(
        "\"state\": \"not-satisfied\"",
        "\"state\": \"satisfied\"",
        1,
    );
    let edited = if edited == text {
        text.replacen(
            "\"state\": \"satisfied\"",
            "\"state\": \"not-satisfied\"",
            1,
        )
    } else {
        edited
    };
    assert_ne!(edited, text);
    let refused = verify(&copy("edited", Some(&edited)));
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(
        said(&refused).contains("report.oscal.json: line "),
        "{}",
        said(&refused)
    );
    let older = verify(&copy("older", None));
    assert!(older.status.success(), "{}", said(&older));
    assert!(
        said(&older).contains("it has no report.oscal.json"),
        "{}",
        said(&older)
    );
}
