//! The KPI readers of client and model bodies: the rows of a KServe V2
//! exchange, and the selectors (JSON pointers with a batch `*`, tensors).

use super::input;
use super::setup;
use crate::config::{KpiConfig, Source};
use crate::kpi::FeatureValue;
use crate::kpi::{Exchange, MAX_VALUE_BYTES, Selector, Side, extract};
use serde_json::Value;
use std::sync::OnceLock;

/// Two models' KPI sections, parsed by the real config checker: one that
/// reads KServe V2 tensors (and a header, and a value for every row), one
/// that reads labels through pointers.
const MODELS: &str = r#"
[[models]]
name = "tensors"
protocol = "kserve_v2"
[[models.versions]]
version = "1"
upstream = "http://127.0.0.1:1"
[models.kpi]
window = 50
min_group_size = 1
max_groups = 5
reference_rows = 10
[models.kpi.outcome]
tensor = "score"
threshold = 0.5
[[models.kpi.attributes]]
name = "sex"
header = true
[[models.kpi.attributes]]
name = "age_group"
tensor = "features"
column = 0
[[models.kpi.features]]
name = "amount"
kind = "numeric"
tensor = "features"
column = 1
[[models.kpi.features]]
name = "purpose"
kind = "categorical"
pointer = "/parameters/purpose"

[[models]]
name = "labels"
protocol = "kserve_v2"
[[models.versions]]
version = "1"
upstream = "http://127.0.0.1:1"
[models.kpi]
[models.kpi.outcome]
pointer = "/outputs/0/data/*"
positive = ["approved", "1"]
[[models.kpi.attributes]]
name = "region"
pointer = "/inputs/*/name"
[[models.kpi.features]]
name = "first"
kind = "numeric"
pointer = "/inputs/*/data/0"
"#;

fn configs() -> &'static [KpiConfig] {
    static CONFIGS: OnceLock<Vec<KpiConfig>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        setup::config(MODELS)
            .models
            .into_iter()
            .filter_map(|model| model.kpi)
            .collect()
    })
}

/// Reads KPI rows from one exchange: request body, `\n---\n`, response
/// body, `\n---\n`, request header lines (`x-govgate-attr-<name>: value`).
///
/// # Panics
/// When an invariant breaks: more rows than the outcome selector gives,
/// rows out of order, a row with another number of groups or features
/// than configured, a miss not named after a selector, or a value longer
/// than [`MAX_VALUE_BYTES`] kept in a row.
pub fn kserve_body(data: &[u8]) -> String {
    let parts = input::sections(data, 3);
    let headers: Vec<(String, String)> = input::header_lines(parts[2])
        .filter_map(|(name, value)| {
            let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
            Some((name, std::str::from_utf8(value).ok()?.to_owned()))
        })
        .collect();
    let exchange = Exchange {
        request: parts[0],
        response: parts[1],
        headers: &headers,
    };
    let mut label = String::new();
    for config in configs() {
        let extracted = extract(config, &exchange);
        let outcomes = outcome_count(config, parts[1]);
        assert!(
            extracted.rows.len() <= outcomes,
            "{} rows from {outcomes} outcomes",
            extracted.rows.len()
        );
        let indexes: Vec<usize> = extracted.rows.iter().map(|(index, _)| *index).collect();
        assert!(
            indexes.windows(2).all(|w| w[0] < w[1]) && indexes.iter().all(|i| *i < outcomes),
            "row indexes {indexes:?} of {outcomes}"
        );
        for (_, row) in &extracted.rows {
            assert_eq!(row.groups.len(), config.attributes.len(), "groups");
            assert_eq!(row.features.len(), config.features.len(), "features");
            assert!(row.label.is_none(), "a label from the exchange");
            let texts = row
                .groups
                .iter()
                .flatten()
                .chain(row.features.iter().filter_map(|value| match value {
                    FeatureValue::Category(text) => Some(text),
                    _ => None,
                }));
            for text in texts {
                assert!(text.len() <= MAX_VALUE_BYTES, "a {}-byte value", text.len());
            }
        }
        for miss in &extracted.misses {
            let named = miss == "outcome"
                || config
                    .attributes
                    .iter()
                    .any(|f| *miss == format!("attribute:{}", f.name))
                || config
                    .features
                    .iter()
                    .any(|f| *miss == format!("feature:{}", f.name));
            assert!(named, "miss {miss:?}");
        }
        label.push_str(&format!(
            "{}r{}m ",
            extracted.rows.len().min(3),
            extracted.misses.len()
        ));
    }
    label
}

/// How many outcomes the response gives (0 if none can be read).
fn outcome_count(config: &KpiConfig, response: &[u8]) -> usize {
    let Ok(body) = serde_json::from_slice::<Value>(response) else {
        return 0;
    };
    match &config.outcome {
        Source::Body { side, selector } => selector.select(*side, &body).map_or(0, |v| v.len()),
        Source::Header(_) => 0,
    }
}

/// Parses a selector (the first line, as a JSON pointer and as a tensor
/// name; the line's first byte picks the tensor's column) and applies it
/// to the JSON body that follows.
///
/// # Panics
/// When an invariant breaks: a parsed pointer does not survive being
/// written back; a pointer without `*` selects anything but what
/// `serde_json`'s RFC 6901 lookup finds, or one with `*` anything but that
/// lookup for each element of the array; a tensor gives another number
/// of rows than its shape says, or a nested array as a value.
pub fn selector(data: &[u8]) -> String {
    let (line, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(line) else {
        return "not utf-8".to_owned();
    };
    let body: Option<Value> = serde_json::from_slice(body).ok();
    let mut label = match Selector::pointer(text) {
        Ok(pointer) => {
            let Selector::Pointer(tokens) = &pointer else {
                panic!("a pointer parsed as {pointer:?}");
            };
            assert_eq!(
                Selector::pointer(&write_pointer(tokens)).as_ref(),
                Ok(&pointer),
                "written back"
            );
            match &body {
                Some(body) => check_pointer(tokens, &pointer, body),
                None => "pointer, no body".to_owned(),
            }
        }
        Err(_) => "refused".to_owned(),
    };
    if let Some(body) = &body {
        let column = line.first().map(|b| usize::from(b % 4));
        for column in [None, column] {
            let tensor = Selector::Tensor {
                name: text.to_owned(),
                column,
            };
            for side in [Side::Request, Side::Response] {
                if let Ok(rows) = tensor.select(side, body) {
                    check_tensor(side, text, body, &rows);
                    label.push_str(" tensor");
                }
            }
        }
    }
    label
}

/// RFC 6901 text of parsed tokens, `*` for the batch dimension.
fn write_pointer(tokens: &[Option<String>]) -> String {
    tokens
        .iter()
        .map(|token| match token {
            None => "/*".to_owned(),
            Some(token) => format!("/{}", token.replace('~', "~0").replace('/', "~1")),
        })
        .collect()
}

fn check_pointer(tokens: &[Option<String>], pointer: &Selector, body: &Value) -> String {
    let selected = pointer.select(Side::Request, body).ok();
    let Some(star) = tokens.iter().position(Option::is_none) else {
        let want = body.pointer(&write_pointer(tokens));
        assert_eq!(
            selected.as_deref(),
            want.map(std::slice::from_ref),
            "no star"
        );
        return format!("pointer {}", selected.is_some());
    };
    let prefix = write_pointer(&tokens[..star]);
    let suffix = write_pointer(&tokens[star + 1..]);
    let want: Option<Vec<Value>> =
        body.pointer(&prefix)
            .and_then(Value::as_array)
            .and_then(|rows| {
                (0..rows.len())
                    .map(|i| body.pointer(&format!("{prefix}/{i}{suffix}")).cloned())
                    .collect()
            });
    assert_eq!(selected, want, "with star");
    format!("star {}", selected.map_or(0, |rows| rows.len().min(3)))
}

fn check_tensor(side: Side, name: &str, body: &Value, rows: &[Value]) {
    let list = match side {
        Side::Request => "inputs",
        Side::Response => "outputs",
    };
    let shape = body[list]
        .as_array()
        .and_then(|tensors| tensors.iter().find(|t| t["name"] == name))
        .and_then(|tensor| tensor["shape"].get(0))
        .and_then(Value::as_u64);
    assert_eq!(shape, Some(rows.len() as u64), "rows of tensor {name:?}");
    assert!(
        rows.iter().all(|v| !v.is_array()),
        "a nested array as a value"
    );
}
