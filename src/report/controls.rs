//! The control map: which report sections evidence which controls of
//! ISO/IEC 42001, ISO/IEC 27001 and the EU AI Act. The shipped map is
//! config/control-map.toml (compiled in); a user's file extends it, a
//! control of the same framework and id replacing the shipped one. The
//! report's `control_map` links each control to its sections' evidence
//! seqs, and carries the map itself so a verifier links it again.

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The shipped map.
pub const SHIPPED: &str = include_str!("../../config/control-map.toml");

/// At most this many seqs of each section are listed for a control.
const SEQS_PER_SECTION: usize = 20;

/// Why a control map does not load.
#[derive(Debug, thiserror::Error)]
#[error("control map {source_name}: {why}")]
pub struct ControlMapError {
    source_name: String,
    why: String,
}

/// One control and the sections that evidence it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// The standard or regulation, e.g. `ISO/IEC 27001:2022 Annex A`.
    pub framework: String,
    /// The control's number, e.g. `8.15`.
    pub id: String,
    /// Its short title.
    pub title: String,
    /// Report sections (report.json keys) that evidence it.
    pub sections: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    controls: Vec<Control>,
}

/// The controls a report links, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlMap {
    controls: Vec<Control>,
}

impl ControlMap {
    /// The shipped map.
    pub fn shipped() -> Self {
        // The shipped file is checked by a unit test: it always parses.
        Self::parse("config/control-map.toml", SHIPPED).unwrap_or(Self {
            controls: Vec::new(),
        })
    }

    /// Parses a map file's text (`name` for errors).
    pub fn parse(name: &str, text: &str) -> Result<Self, ControlMapError> {
        let bad = |why: String| ControlMapError {
            source_name: name.to_owned(),
            why,
        };
        let file: File = toml::from_str(text).map_err(|err| bad(err.to_string()))?;
        for control in &file.controls {
            if control.id.trim().is_empty() || control.framework.trim().is_empty() {
                return Err(bad("a control needs a framework and an id".to_owned()));
            }
        }
        Ok(Self {
            controls: file.controls,
        })
    }

    /// This map extended by `other`: its controls replace those of the
    /// same framework and id, the others are appended.
    pub fn extended(mut self, other: ControlMap) -> Self {
        for control in other.controls {
            let same = self
                .controls
                .iter_mut()
                .find(|known| known.framework == control.framework && known.id == control.id);
            match same {
                Some(known) => *known = control,
                None => self.controls.push(control),
            }
        }
        self
    }

    /// The map a report carries (its `control_map.controls`, without the
    /// links): a verifier links the same controls again.
    pub fn from_report(report: &Value) -> Result<Self, ControlMapError> {
        let controls = report["control_map"]["controls"].clone();
        let controls: Vec<Value> =
            serde_json::from_value(controls).map_err(|err| ControlMapError {
                source_name: "report.json".to_owned(),
                why: err.to_string(),
            })?;
        let controls = controls
            .into_iter()
            .map(|control| {
                Ok(Control {
                    framework: control["framework"].as_str().unwrap_or_default().to_owned(),
                    id: control["id"].as_str().unwrap_or_default().to_owned(),
                    title: control["title"].as_str().unwrap_or_default().to_owned(),
                    sections: control["sections"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .map(|section| section["section"].as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| ControlMapError {
                            source_name: "report.json".to_owned(),
                            why: "a control's sections are not {\"section\": NAME, ...}".to_owned(),
                        })?,
                })
            })
            .collect::<Result<Vec<_>, ControlMapError>>()?;
        Ok(Self { controls })
    }

    /// The `control_map` of a report whose sections are `report`.
    pub fn link(&self, report: &Map<String, Value>) -> Value {
        let controls: Vec<Value> = self
            .controls
            .iter()
            .map(|control| {
                let sections: Vec<Value> = control
                    .sections
                    .iter()
                    .map(|name| match report.get(name) {
                        Some(section) => {
                            let seqs: Vec<Value> = section["seqs"]
                                .as_array()
                                .map(Vec::as_slice)
                                .unwrap_or_default()
                                .iter()
                                .take(SEQS_PER_SECTION)
                                .cloned()
                                .collect();
                            json!({"section": name, "in_report": true, "seqs": seqs})
                        }
                        None => json!({"section": name, "in_report": false, "seqs": []}),
                    })
                    .collect();
                let evidenced = sections.iter().any(|section| {
                    section["seqs"]
                        .as_array()
                        .is_some_and(|seqs| !seqs.is_empty())
                });
                json!({
                    "framework": control.framework,
                    "id": control.id,
                    "title": control.title,
                    "sections": sections,
                    "evidence_in_period": evidenced,
                })
            })
            .collect();
        json!({
            "controls": controls,
            "note": "control numbers and short titles only; what each control requires is in its standard",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_map_parses_and_names_the_required_controls() {
        let map = ControlMap::parse("shipped", SHIPPED).expect("shipped map parses");
        for id in [
            "A.6.2.5", "A.6.2.6", "A.6.2.8", "A.9.2", "A.5", "5.28", "5.33", "8.15", "8.16",
            "8.24", "8.32", "5.15", "5.18", "Art. 12", "Art. 14", "Art. 72",
        ] {
            assert!(map.controls.iter().any(|c| c.id == id), "{id}");
        }
        // The KPI trends evidence monitoring and post-market monitoring.
        for id in ["A.6.2.6", "Art. 72", "Art. 9", "8.16"] {
            let control = map.controls.iter().find(|c| c.id == id).unwrap();
            assert!(control.sections.iter().any(|s| s == "kpi_trends"), "{id}");
        }
    }

    #[test]
    fn an_extension_replaces_by_framework_and_id_and_appends_the_rest() {
        let extra = ControlMap::parse(
            "extra",
            "[[controls]]\nframework = \"EU AI Act\"\nid = \"Art. 14\"\ntitle = \"T\"\nsections = [\"traffic\"]\n\
             [[controls]]\nframework = \"Own\"\nid = \"X-1\"\ntitle = \"Ours\"\nsections = []\n",
        )
        .unwrap();
        let shipped = ControlMap::shipped();
        let count = shipped.controls.len();
        let map = shipped.extended(extra);
        assert_eq!(map.controls.len(), count + 1);
        let art14 = map.controls.iter().find(|c| c.id == "Art. 14").unwrap();
        assert_eq!(art14.sections, ["traffic"]);
        assert!(ControlMap::parse("bad", "[[controls]]\nid = 1\n").is_err());
    }
}
