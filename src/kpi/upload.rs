//! A drift reference uploaded through the admin API: CSV with a header
//! row, or a JSON array of objects, one row each, with a column (member)
//! per configured drift feature; other columns are ignored. Uploads are
//! kept as sent in the reference folder and read again at start.

use super::FeatureValue;
use super::extract::{number, text};
use crate::config::{FeatureKind, KpiConfig};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Rows accepted in one reference.
pub const MAX_REFERENCE_ROWS: usize = 1_000_000;

/// The two accepted forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceFormat {
    /// Comma-separated, a header row first, no quoted fields.
    Csv,
    /// `[{"feature": value, ...}, ...]`.
    Json,
}

impl ReferenceFormat {
    /// The file extension it is stored under.
    pub fn extension(self) -> &'static str {
        match self {
            ReferenceFormat::Csv => "csv",
            ReferenceFormat::Json => "json",
        }
    }
}

/// Why an uploaded drift reference cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnusableReference {
    /// It is not a reference of the model's features: what is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The model has no `[models.kpi]` here.
    #[error("model `{0}` has no [models.kpi]")]
    NoKpis(String),
    /// The KPI aggregator has stopped (the gateway is stopping).
    #[error("the KPI aggregator has stopped")]
    AggregatorStopped,
    /// The blocking thread that read it failed.
    #[error("reading the reference failed: {0}")]
    Lost(String),
}

fn value(kind: FeatureKind, raw: &Value) -> FeatureValue {
    match kind {
        FeatureKind::Numeric => number(raw).map_or(FeatureValue::Missing, FeatureValue::Number),
        FeatureKind::Categorical => text(raw)
            .filter(|t| !t.is_empty())
            .map_or(FeatureValue::Missing, FeatureValue::Category),
    }
}

/// The rows of an upload, each with one value per configured feature in
/// the configured order.
pub fn parse_reference(
    config: &KpiConfig,
    format: ReferenceFormat,
    body: &[u8],
) -> Result<Vec<Vec<FeatureValue>>, UnusableReference> {
    let rows = match format {
        ReferenceFormat::Csv => parse_csv(config, body),
        ReferenceFormat::Json => parse_json(config, body),
    }
    .map_err(UnusableReference::Invalid)?;
    if rows.is_empty() {
        return Err(UnusableReference::Invalid(
            "the reference has no row".to_owned(),
        ));
    }
    if rows.len() > MAX_REFERENCE_ROWS {
        return Err(UnusableReference::Invalid(format!(
            "at most {MAX_REFERENCE_ROWS} rows"
        )));
    }
    Ok(rows)
}

fn parse_csv(config: &KpiConfig, body: &[u8]) -> Result<Vec<Vec<FeatureValue>>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the CSV is not UTF-8".to_owned())?;
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("the CSV has no header row")?
        .split(',')
        .map(str::trim)
        .collect();
    let columns: Vec<usize> = config
        .features
        .iter()
        .map(|f| {
            header
                .iter()
                .position(|h| *h == f.name)
                .ok_or_else(|| format!("the CSV has no column `{}`", f.name))
        })
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.contains('"') {
            return Err(format!("row {}: quoted fields are not supported", n + 1));
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != header.len() {
            return Err(format!(
                "row {}: {} fields, the header has {}",
                n + 1,
                fields.len(),
                header.len()
            ));
        }
        let row = config
            .features
            .iter()
            .zip(&columns)
            .map(|(f, c)| value(f.kind, &Value::String(fields[*c].to_owned())))
            .collect();
        rows.push(row);
    }
    Ok(rows)
}

fn parse_json(config: &KpiConfig, body: &[u8]) -> Result<Vec<Vec<FeatureValue>>, String> {
    let parsed: Value =
        serde_json::from_slice(body).map_err(|err| format!("the body is not JSON: {err}"))?;
    let Value::Array(items) = parsed else {
        return Err("expected a JSON array of objects, one per row".to_owned());
    };
    items
        .iter()
        .enumerate()
        .map(|(n, item)| {
            let Value::Object(members) = item else {
                return Err(format!("row {n}: not an object"));
            };
            Ok(config
                .features
                .iter()
                .map(|f| {
                    members
                        .get(&f.name)
                        .map_or(FeatureValue::Missing, |v| value(f.kind, v))
                })
                .collect())
        })
        .collect()
}

/// One stored upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReference {
    /// The model.
    pub model: String,
    /// The version.
    pub version: String,
    /// CSV or JSON.
    pub format: ReferenceFormat,
    /// The upload as sent.
    pub bytes: Vec<u8>,
}

/// Where uploads are kept: `<dir>/<model>/<version>.<csv|json>`.
#[derive(Debug, Clone)]
pub struct ReferenceFiles {
    dir: PathBuf,
}

impl ReferenceFiles {
    /// Uses `dir` (created on the first upload).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// Stores an upload durably, replacing an earlier one of the version.
    pub fn save(
        &self,
        model: &str,
        version: &str,
        format: ReferenceFormat,
        body: &[u8],
    ) -> std::io::Result<()> {
        use std::io::Write;
        let dir = self.dir.join(model);
        std::fs::create_dir_all(&dir)?;
        for other in ["csv", "json"] {
            let _ = std::fs::remove_file(dir.join(format!("{version}.{other}")));
        }
        let path = dir.join(format!("{version}.{}", format.extension()));
        let tmp = dir.join(format!("{version}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(body)?;
        file.sync_data()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    }

    /// Every stored upload.
    pub fn load_all(&self) -> std::io::Result<Vec<StoredReference>> {
        let mut found = Vec::new();
        let Ok(models) = std::fs::read_dir(&self.dir) else {
            return Ok(found);
        };
        for model in models {
            let model = model?.path();
            let Some(model_name) = model.file_name().map(|n| n.to_string_lossy().into_owned())
            else {
                continue;
            };
            for file in std::fs::read_dir(&model)? {
                let path = file?.path();
                let format = match path.extension().and_then(|e| e.to_str()) {
                    Some("csv") => ReferenceFormat::Csv,
                    Some("json") => ReferenceFormat::Json,
                    _ => continue,
                };
                let Some(version) = path.file_stem().map(|s| s.to_string_lossy().into_owned())
                else {
                    continue;
                };
                found.push(StoredReference {
                    model: model_name.clone(),
                    version,
                    format,
                    bytes: std::fs::read(&path)?,
                });
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KpiField, OutcomeRule, Source};
    use crate::kpi::{Selector, Side};

    fn config() -> KpiConfig {
        let field = |name: &str, kind| KpiField {
            name: name.into(),
            source: Source::Body {
                side: Side::Request,
                selector: Selector::pointer(&format!("/{name}")).unwrap(),
            },
            kind,
        };
        KpiConfig {
            window: 10,
            min_group_size: 1,
            max_groups: 10,
            reference_rows: 5,
            snapshot_every: None,
            outcome: field("score", FeatureKind::Numeric).source,
            outcome_rule: OutcomeRule::Score { threshold: 0.5 },
            attributes: Vec::new(),
            features: vec![
                field("amount", FeatureKind::Numeric),
                field("purpose", FeatureKind::Categorical),
            ],
        }
    }

    #[test]
    fn csv_and_json_give_the_same_rows() {
        let csv = b"purpose,extra,amount\ncar,x,1500\nradio_tv,y,\n";
        let json = br#"[{"amount": 1500, "purpose": "car"}, {"purpose": "radio_tv"}]"#;
        let from_csv = parse_reference(&config(), ReferenceFormat::Csv, csv).unwrap();
        let from_json = parse_reference(&config(), ReferenceFormat::Json, json).unwrap();
        assert_eq!(from_csv, from_json);
        assert_eq!(
            from_csv[0],
            vec![
                FeatureValue::Number(1500.0),
                FeatureValue::Category("car".into())
            ]
        );
        assert_eq!(from_csv[1][0], FeatureValue::Missing);
    }

    #[test]
    fn bad_uploads_say_what_is_wrong() {
        for (format, body, needle) in [
            (
                ReferenceFormat::Csv,
                &b"amount\n1\n"[..],
                "no column `purpose`",
            ),
            (ReferenceFormat::Csv, b"amount,purpose\n1\n", "1 fields"),
            (
                ReferenceFormat::Csv,
                b"amount,purpose\n1,\"a,b\"\n",
                "quoted",
            ),
            (ReferenceFormat::Csv, b"amount,purpose\n", "no row"),
            (ReferenceFormat::Json, b"{}", "array"),
            (ReferenceFormat::Json, b"[1]", "not an object"),
        ] {
            let err = parse_reference(&config(), format, body).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
