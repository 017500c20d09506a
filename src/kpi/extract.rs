//! From one served exchange (request body, response body, attribute
//! headers) to the model's KPI rows, as its `[models.kpi]` says. Pure.
//!
//! The outcome selector decides how many rows an exchange has (one per
//! outcome value). An attribute or feature selector must give as many
//! values, or exactly one (a value for every row, as a header does).
//! Whatever does not match is a miss, named by its selector and counted
//! by the caller; the rest of the row is still used.

use super::selector::Side;
use super::{Class, FeatureValue, Row};
use crate::config::{FeatureKind, KpiConfig, KpiField, OutcomeRule, Source};
use serde_json::Value;

/// What one exchange gave.
#[derive(Debug, Default, PartialEq)]
pub struct Extracted {
    /// `(row index within the exchange, row)`; rows whose outcome could
    /// not be read are left out, so indexes may skip.
    pub rows: Vec<(usize, Row)>,
    /// The selectors that did not match: `outcome`, `attribute:<name>`,
    /// `feature:<name>`.
    pub misses: Vec<String>,
}

/// One exchange, as the proxy saw it.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The request body as forwarded.
    pub request: &'a [u8],
    /// The response body as released.
    pub response: &'a [u8],
    /// The `x-govgate-attr-*` headers of the request: lower-case name, value.
    pub headers: &'a [(String, String)],
}

struct Bodies {
    request: Value,
    response: Value,
}

impl Bodies {
    fn of(&self, side: Side) -> &Value {
        match side {
            Side::Request => &self.request,
            Side::Response => &self.response,
        }
    }
}

/// The longest text, in bytes, that a row keeps as a group or a category,
/// or reads as a number; a longer value counts as not found (like a value
/// of the wrong type). Groups become metric labels, and a single value (a
/// header, a pointer without `*`) is read for every row: without a bound,
/// one long header times many rows would be unbounded work and memory.
pub const MAX_VALUE_BYTES: usize = 256;

/// One field's values for the rows of an exchange.
enum Column {
    /// One value per row.
    PerRow(Vec<Value>),
    /// One value for every row (kept once, not copied per row).
    Every(Value),
}

impl Column {
    fn get(&self, row: usize) -> Option<&Value> {
        match self {
            Column::PerRow(values) => values.get(row),
            Column::Every(value) => Some(value),
        }
    }
}

/// The values a source gives for `rows` rows; `None` on a miss.
fn values(
    source: &Source,
    bodies: &Bodies,
    exchange: &Exchange<'_>,
    rows: usize,
) -> Option<Column> {
    let mut found = match source {
        Source::Header(name) => {
            let value = exchange.headers.iter().find(|(n, _)| n == name)?;
            vec![Value::String(value.1.clone())]
        }
        Source::Body { side, selector } => selector.select(*side, bodies.of(*side)).ok()?,
    };
    match found.len() {
        n if n == rows => Some(Column::PerRow(found)),
        1 => found.pop().map(Column::Every),
        _ => None,
    }
}

fn class(rule: &OutcomeRule, value: &Value) -> Option<Class> {
    let positive = match rule {
        OutcomeRule::Score { threshold } => number(value)? >= *threshold,
        OutcomeRule::Label { positive } => positive.contains(&text(value)?),
    };
    Some(if positive {
        Class::Positive
    } else {
        Class::Negative
    })
}

pub(super) fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()),
        Value::String(s) if s.len() <= MAX_VALUE_BYTES => {
            s.trim().parse::<f64>().ok().filter(|x| x.is_finite())
        }
        _ => None,
    }
}

pub(super) fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if s.len() <= MAX_VALUE_BYTES => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

fn feature(kind: FeatureKind, value: &Value) -> FeatureValue {
    match kind {
        FeatureKind::Numeric => number(value).map_or(FeatureValue::Missing, FeatureValue::Number),
        FeatureKind::Categorical => {
            text(value).map_or(FeatureValue::Missing, FeatureValue::Category)
        }
    }
}

/// Per field, each row's value (all `None` after a miss, which is noted).
fn columns(
    fields: &[KpiField],
    prefix: &str,
    bodies: &Bodies,
    exchange: &Exchange<'_>,
    rows: usize,
    misses: &mut Vec<String>,
) -> Vec<Option<Column>> {
    fields
        .iter()
        .map(|field| {
            let found = values(&field.source, bodies, exchange, rows);
            if found.is_none() {
                misses.push(format!("{prefix}:{}", field.name));
            }
            found
        })
        .collect()
}

/// The rows of one exchange.
pub fn extract(config: &KpiConfig, exchange: &Exchange<'_>) -> Extracted {
    let parse = |bytes: &[u8]| serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let bodies = Bodies {
        request: parse(exchange.request),
        response: parse(exchange.response),
    };
    let mut extracted = Extracted::default();
    let outcomes = match &config.outcome {
        Source::Body { side, selector } => selector.select(*side, bodies.of(*side)).ok(),
        Source::Header(_) => None,
    };
    let Some(outcomes) = outcomes else {
        extracted.misses.push("outcome".to_owned());
        return extracted;
    };
    let n = outcomes.len();
    let attributes = columns(
        &config.attributes,
        "attribute",
        &bodies,
        exchange,
        n,
        &mut extracted.misses,
    );
    let features = columns(
        &config.features,
        "feature",
        &bodies,
        exchange,
        n,
        &mut extracted.misses,
    );
    let mut unreadable = false;
    for (index, outcome) in outcomes.iter().enumerate() {
        let Some(predicted) = class(&config.outcome_rule, outcome) else {
            unreadable = true;
            continue;
        };
        let groups = attributes
            .iter()
            .map(|column| column.as_ref()?.get(index).and_then(text))
            .collect();
        let features = config
            .features
            .iter()
            .zip(&features)
            .map(|(field, column)| {
                column
                    .as_ref()
                    .and_then(|column| column.get(index))
                    .map_or(FeatureValue::Missing, |value| feature(field.kind, value))
            })
            .collect();
        extracted.rows.push((
            index,
            Row {
                groups,
                predicted,
                label: None,
                features,
            },
        ));
    }
    if unreadable {
        extracted.misses.push("outcome".to_owned());
    }
    extracted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpi::Selector;

    fn body(side: Side, pointer: &str) -> Source {
        Source::Body {
            side,
            selector: Selector::pointer(pointer).unwrap(),
        }
    }

    fn config() -> KpiConfig {
        KpiConfig {
            window: 10,
            min_group_size: 1,
            max_groups: 10,
            reference_rows: 5,
            snapshot_every: None,
            outcome: body(Side::Response, "/predictions/*"),
            outcome_rule: OutcomeRule::Score { threshold: 0.5 },
            attributes: vec![
                KpiField {
                    name: "sex".into(),
                    source: Source::Header("x-govgate-attr-sex".into()),
                    kind: FeatureKind::Categorical,
                },
                KpiField {
                    name: "age_group".into(),
                    source: body(Side::Request, "/instances/*/age_group"),
                    kind: FeatureKind::Categorical,
                },
            ],
            features: vec![
                KpiField {
                    name: "amount".into(),
                    source: body(Side::Request, "/instances/*/amount"),
                    kind: FeatureKind::Numeric,
                },
                KpiField {
                    name: "purpose".into(),
                    source: body(Side::Request, "/missing/*"),
                    kind: FeatureKind::Categorical,
                },
            ],
        }
    }

    #[test]
    fn rows_come_from_bodies_and_headers_and_misses_are_named() {
        let request = br#"{"instances": [{"age_group": "young", "amount": 1500}, {"age_group": "older", "amount": "x"}]}"#;
        let response = br#"{"predictions": [0.7, 0.5]}"#;
        let headers = [("x-govgate-attr-sex".to_owned(), "female".to_owned())];
        let extracted = extract(
            &config(),
            &Exchange {
                request,
                response,
                headers: &headers,
            },
        );
        assert_eq!(extracted.misses, vec!["feature:purpose".to_owned()]);
        assert_eq!(extracted.rows.len(), 2);
        let (index, first) = &extracted.rows[0];
        assert_eq!(*index, 0);
        assert_eq!(
            first.groups,
            vec![Some("female".into()), Some("young".into())]
        );
        assert_eq!(first.predicted, Class::Positive);
        assert_eq!(
            first.features,
            vec![FeatureValue::Number(1500.0), FeatureValue::Missing]
        );
        let (_, second) = &extracted.rows[1];
        assert_eq!(second.predicted, Class::Positive, "0.5 >= threshold 0.5");
        assert_eq!(second.features[0], FeatureValue::Missing, "not a number");
    }

    #[test]
    fn no_outcome_no_rows_and_a_miss() {
        for response in [
            &b"not json"[..],
            br#"{"other": 1}"#,
            br#"{"predictions": ["a"]}"#,
        ] {
            let extracted = extract(
                &config(),
                &Exchange {
                    request: b"{}",
                    response,
                    headers: &[],
                },
            );
            assert!(extracted.rows.is_empty());
            assert!(extracted.misses.contains(&"outcome".to_owned()));
        }
    }

    #[test]
    fn values_longer_than_the_bound_are_not_found() {
        let mut config = config();
        config.features[1].source = body(Side::Request, "/purpose");
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        let request = serde_json::json!({
            "instances": [{"age_group": "y", "amount": long}, {"age_group": long, "amount": "7"}],
            "purpose": long,
        })
        .to_string();
        let headers = [("x-govgate-attr-sex".to_owned(), long.clone())];
        let extracted = extract(
            &config,
            &Exchange {
                request: request.as_bytes(),
                response: br#"{"predictions": [0.7, 0.1]}"#,
                headers: &headers,
            },
        );
        assert_eq!(extracted.rows.len(), 2);
        let (_, first) = &extracted.rows[0];
        assert_eq!(first.groups, vec![None, Some("y".into())]);
        assert_eq!(
            first.features,
            vec![FeatureValue::Missing, FeatureValue::Missing]
        );
        let (_, second) = &extracted.rows[1];
        assert_eq!(second.groups, vec![None, None]);
        assert_eq!(second.features[0], FeatureValue::Number(7.0));
        // At the bound, a value is kept, for every row.
        let kept = "k".repeat(MAX_VALUE_BYTES);
        let headers = [("x-govgate-attr-sex".to_owned(), kept.clone())];
        let extracted = extract(
            &config,
            &Exchange {
                request: br#"{"purpose": "car"}"#,
                response: br#"{"predictions": [0.7, 0.1, 0.2]}"#,
                headers: &headers,
            },
        );
        assert_eq!(extracted.rows.len(), 3);
        for (_, row) in &extracted.rows {
            assert_eq!(row.groups[0].as_deref(), Some(kept.as_str()));
            assert_eq!(row.features[1], FeatureValue::Category("car".into()));
        }
    }

    #[test]
    fn labels_decide_the_class_for_label_models() {
        let mut config = config();
        config.outcome_rule = OutcomeRule::Label {
            positive: vec!["approved".into(), "1".into()],
        };
        let extracted = extract(
            &config,
            &Exchange {
                request: b"{}",
                response: br#"{"predictions": ["approved", "declined", 1]}"#,
                headers: &[],
            },
        );
        let classes: Vec<Class> = extracted.rows.iter().map(|(_, r)| r.predicted).collect();
        assert_eq!(classes, [Class::Positive, Class::Negative, Class::Positive]);
        // A body attribute that gives two values for three rows is a miss.
        assert!(extracted.misses.contains(&"attribute:sex".to_owned()));
    }
}
