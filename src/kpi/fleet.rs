//! Fleet KPIs (`[cluster]`, docs/kpis.md "Fleet KPIs"): what a replica
//! shares of its KPI traffic, and how it is written down.
//!
//! Every row the aggregator extracts, and every label it joins to one of
//! this replica's rows, goes to the fleet's feed (a table in PostgreSQL,
//! written by `crate::cluster::kpi_feed`) through a bounded queue: the
//! aggregator never waits for the database, and an event the full queue
//! cannot take is dropped and counted. The feed's seq is the fleet's one
//! order of rows and labels; every replica folds the feed in that order
//! into a second set of windows with the same code as its own, so the
//! fleet figures are those one gateway would compute on the same rows in
//! the same order. A drift reference uploaded to any replica takes its
//! place in that order too (written by the replica that first applies its
//! control event), so the fleet's windows change reference where one
//! gateway's would.

use super::{Class, FeatureValue, Row};
use prometheus::{IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

/// Events waiting for the feed's writer; beyond this they are dropped.
pub const FEED_QUEUE: usize = 16_384;

/// One row of one decision, as a replica extracted it (unlabeled).
#[derive(Debug, Clone, PartialEq)]
pub struct SharedRow {
    /// The model.
    pub model: String,
    /// The version that answered.
    pub version: String,
    /// The decision, 32 hex digits.
    pub decision_id: String,
    /// The row's index within its request.
    pub index: usize,
    /// Groups, prediction and features; `label` is always `None`.
    pub row: Row,
}

/// One ground-truth label of one row of one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLabel {
    /// The model of the decision.
    pub model: String,
    /// The decision, 32 hex digits.
    pub decision_id: String,
    /// The row's index within its request.
    pub index: usize,
    /// Whether the actual outcome was positive.
    pub label: bool,
}

/// A drift reference uploaded through some replica: from its place in
/// the feed on, the version's reference (its window starts empty).
#[derive(Debug, Clone, PartialEq)]
pub struct SharedReference {
    /// The model.
    pub model: String,
    /// The version whose reference it is.
    pub version: String,
    /// The control event of the upload (`kpi_reference_set`).
    pub control_seq: u64,
    /// SHA-256 (hex) of the uploaded bytes.
    pub sha256: String,
    /// Feature values in the configured order, one row each.
    pub rows: Vec<Vec<FeatureValue>>,
}

/// What the feed holds, in the fleet's order.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// A row served by some replica.
    Row(SharedRow),
    /// A label fed back through some replica.
    Label(SharedLabel),
    /// A drift reference uploaded through some replica.
    Reference(SharedReference),
}

impl FeedEvent {
    /// The feed's `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            FeedEvent::Row(_) => KIND_ROW,
            FeedEvent::Label(_) => KIND_LABEL,
            FeedEvent::Reference(_) => KIND_REFERENCE,
        }
    }

    /// The feed's model, version, decision and row-index columns (a
    /// reference: the constant [`REFERENCE_DECISION`] and its control seq,
    /// which keeps one entry per upload).
    pub fn key(&self) -> (&str, &str, &str, i64) {
        let index = |i: usize| i64::try_from(i).unwrap_or(i64::MAX);
        match self {
            FeedEvent::Row(row) => (&row.model, &row.version, &row.decision_id, index(row.index)),
            FeedEvent::Label(label) => (&label.model, "", &label.decision_id, index(label.index)),
            FeedEvent::Reference(reference) => (
                &reference.model,
                &reference.version,
                REFERENCE_DECISION,
                i64::try_from(reference.control_seq).unwrap_or(i64::MAX),
            ),
        }
    }
}

/// `kind` of a row in the feed.
pub const KIND_ROW: &str = "row";
/// `kind` of a label in the feed.
pub const KIND_LABEL: &str = "label";
/// `kind` of an uploaded drift reference in the feed.
pub const KIND_REFERENCE: &str = "reference";
/// The `decision_id` column of a reference (which has no decision).
pub const REFERENCE_DECISION: &str = "control";

/// A feed entry that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum FeedFormatError {
    /// The payload is not the JSON this build writes.
    #[error("malformed payload: {0}")]
    Payload(#[from] serde_json::Error),
    /// A feature value is neither a number, a string nor null.
    #[error("feature {0} is neither a number, a string nor null")]
    Feature(usize),
    /// The kind is none of `row`, `label` and `reference`.
    #[error("unknown kind `{0}`")]
    Kind(String),
    /// The row index is negative.
    #[error("row index {0} is negative")]
    Index(i64),
}

/// The payload of a row: JSON, numbers as JSON numbers (written in their
/// shortest exact form, so they read back to the same double), categories
/// as strings, a missing value as `null`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RowPayload {
    groups: Vec<Option<String>>,
    predicted: bool,
    features: Vec<Value>,
}

/// The payload of a label.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelPayload {
    label: bool,
}

/// The payload of a reference: its rows' features as a row's are written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferencePayload {
    sha256: String,
    rows: Vec<Vec<Value>>,
}

fn encode_features(features: &[FeatureValue]) -> Vec<Value> {
    features
        .iter()
        .map(|feature| match feature {
            // A non-finite number (never extracted) reads back as missing.
            FeatureValue::Number(x) => serde_json::Number::from_f64(*x)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            FeatureValue::Category(c) => Value::String(c.clone()),
            FeatureValue::Missing => Value::Null,
        })
        .collect()
}

fn decode_features(features: Vec<Value>) -> Result<Vec<FeatureValue>, FeedFormatError> {
    features
        .into_iter()
        .enumerate()
        .map(|(i, value)| match value {
            Value::Number(n) => n
                .as_f64()
                .map(FeatureValue::Number)
                .ok_or(FeedFormatError::Feature(i)),
            Value::String(c) => Ok(FeatureValue::Category(c)),
            Value::Null => Ok(FeatureValue::Missing),
            _ => Err(FeedFormatError::Feature(i)),
        })
        .collect()
}

/// The feed's `payload` column for `event`.
pub fn encode_payload(event: &FeedEvent) -> String {
    let value = match event {
        FeedEvent::Row(shared) => {
            let row = &shared.row;
            serde_json::to_value(RowPayload {
                groups: row.groups.clone(),
                predicted: row.predicted == Class::Positive,
                features: encode_features(&row.features),
            })
        }
        FeedEvent::Label(label) => serde_json::to_value(LabelPayload { label: label.label }),
        FeedEvent::Reference(reference) => serde_json::to_value(ReferencePayload {
            sha256: reference.sha256.clone(),
            rows: reference
                .rows
                .iter()
                .map(|row| encode_features(row))
                .collect(),
        }),
    };
    // INVARIANT: the payloads are plain structs of strings, bools and
    // JSON values, which always serialise.
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// The columns of one feed entry, as read back.
#[derive(Debug, Clone, Copy)]
pub struct FeedColumns<'a> {
    /// `row`, `label` or `reference`.
    pub kind: &'a str,
    /// The model.
    pub model: &'a str,
    /// The version (empty for a label).
    pub version: &'a str,
    /// The decision.
    pub decision_id: &'a str,
    /// The row's index within its request.
    pub row_index: i64,
    /// [`encode_payload`]'s text.
    pub payload: &'a str,
}

/// The event a feed entry holds.
pub fn decode(columns: FeedColumns<'_>) -> Result<FeedEvent, FeedFormatError> {
    let index = usize::try_from(columns.row_index)
        .map_err(|_| FeedFormatError::Index(columns.row_index))?;
    match columns.kind {
        KIND_ROW => {
            let payload: RowPayload = serde_json::from_str(columns.payload)?;
            let features = decode_features(payload.features)?;
            Ok(FeedEvent::Row(SharedRow {
                model: columns.model.to_owned(),
                version: columns.version.to_owned(),
                decision_id: columns.decision_id.to_owned(),
                index,
                row: Row {
                    groups: payload.groups,
                    predicted: if payload.predicted {
                        Class::Positive
                    } else {
                        Class::Negative
                    },
                    label: None,
                    features,
                },
            }))
        }
        KIND_LABEL => {
            let payload: LabelPayload = serde_json::from_str(columns.payload)?;
            Ok(FeedEvent::Label(SharedLabel {
                model: columns.model.to_owned(),
                decision_id: columns.decision_id.to_owned(),
                index,
                label: payload.label,
            }))
        }
        KIND_REFERENCE => {
            let payload: ReferencePayload = serde_json::from_str(columns.payload)?;
            let rows = payload
                .rows
                .into_iter()
                .map(decode_features)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(FeedEvent::Reference(SharedReference {
                model: columns.model.to_owned(),
                version: columns.version.to_owned(),
                control_seq: index as u64,
                sha256: payload.sha256,
                rows,
            }))
        }
        other => Err(FeedFormatError::Kind(other.to_owned())),
    }
}

/// The aggregator's end of the feed's queue; cheap to clone.
#[derive(Clone)]
pub struct FeedSender {
    tx: mpsc::Sender<FeedEvent>,
    dropped: IntCounterVec,
}

impl std::fmt::Debug for FeedSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedSender").finish_non_exhaustive()
    }
}

impl FeedSender {
    /// Queues `event` without waiting; a full queue drops it (counted as
    /// `queue_full`).
    pub fn send(&self, event: FeedEvent) {
        if self.tx.try_send(event).is_err() {
            self.dropped.with_label_values(&["queue_full"]).inc();
        }
    }
}

/// The feed's queue and `govgate_fleet_kpi_dropped_total{reason}`, which
/// the writer also counts into (`refused`: a batch the database refused).
pub fn feed_channel(
    registry: &Registry,
) -> Result<(FeedSender, mpsc::Receiver<FeedEvent>, IntCounterVec), prometheus::Error> {
    let dropped = IntCounterVec::new(
        Opts::new(
            "govgate_fleet_kpi_dropped_total",
            "Rows and labels of this replica not shared with the fleet's KPIs: queue_full (the feed's queue was full) or refused (the database refused the batch).",
        ),
        &["reason"],
    )?;
    registry.register(Box::new(dropped.clone()))?;
    for reason in ["queue_full", "refused"] {
        dropped.with_label_values(&[reason]).inc_by(0);
    }
    let (tx, rx) = mpsc::channel(FEED_QUEUE);
    Ok((
        FeedSender {
            tx,
            dropped: dropped.clone(),
        },
        rx,
        dropped,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns<'a>(event: &'a FeedEvent, payload: &'a str) -> FeedColumns<'a> {
        let (model, version, decision_id, row_index) = event.key();
        FeedColumns {
            kind: event.kind(),
            model,
            version,
            decision_id,
            row_index,
            payload,
        }
    }

    #[test]
    fn rows_labels_and_references_read_back_as_written_to_the_bit() {
        let row = FeedEvent::Row(SharedRow {
            model: "m".into(),
            version: "1".into(),
            decision_id: "ab".repeat(16),
            index: 7,
            row: Row {
                groups: vec![Some("female".into()), None, Some("a\u{0}\"b".into())],
                predicted: Class::Positive,
                label: None,
                features: vec![
                    FeatureValue::Number(0.1 + 0.2),
                    FeatureValue::Number(-1e-300),
                    FeatureValue::Number(12_345_678.901_234_567),
                    FeatureValue::Category("radio_tv".into()),
                    FeatureValue::Missing,
                ],
            },
        });
        let label = FeedEvent::Label(SharedLabel {
            model: "m".into(),
            decision_id: "cd".repeat(16),
            index: 0,
            label: false,
        });
        let reference = FeedEvent::Reference(SharedReference {
            model: "m".into(),
            version: "2".into(),
            control_seq: 41,
            sha256: "ef".repeat(32),
            rows: vec![
                vec![
                    FeatureValue::Number(0.1 + 0.2),
                    FeatureValue::Category("car".into()),
                ],
                vec![FeatureValue::Missing, FeatureValue::Category("".into())],
            ],
        });
        for event in [row, label, reference] {
            let payload = encode_payload(&event);
            assert!(!payload.contains('\0'), "the payload is text: {payload}");
            assert_eq!(decode(columns(&event, &payload)).unwrap(), event);
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let registry = Registry::new();
        let (sender, mut queue, dropped) = feed_channel(&registry).unwrap();
        let label = |index| {
            FeedEvent::Label(SharedLabel {
                model: "m".into(),
                decision_id: "ab".repeat(16),
                index,
                label: true,
            })
        };
        for index in 0..FEED_QUEUE + 3 {
            sender.send(label(index));
        }
        assert_eq!(dropped.with_label_values(&["queue_full"]).get(), 3);
        // The first FEED_QUEUE are kept, in order.
        assert_eq!(queue.try_recv().unwrap(), label(0));
        sender.send(label(0));
        assert_eq!(dropped.with_label_values(&["queue_full"]).get(), 3);
    }

    #[test]
    fn a_non_finite_number_reads_back_as_missing() {
        let event = FeedEvent::Row(SharedRow {
            model: "m".into(),
            version: "1".into(),
            decision_id: "ab".repeat(16),
            index: 0,
            row: Row {
                groups: vec![],
                predicted: Class::Negative,
                label: None,
                features: vec![FeatureValue::Number(f64::NAN)],
            },
        });
        let payload = encode_payload(&event);
        let FeedEvent::Row(back) = decode(columns(&event, &payload)).unwrap() else {
            panic!("a row")
        };
        assert_eq!(back.row.features, vec![FeatureValue::Missing]);
    }

    #[test]
    fn malformed_entries_are_refused_not_guessed() {
        let base = FeedColumns {
            kind: KIND_ROW,
            model: "m",
            version: "1",
            decision_id: "d",
            row_index: 0,
            payload: r#"{"groups":[],"predicted":true,"features":[[1]]}"#,
        };
        assert!(matches!(decode(base), Err(FeedFormatError::Feature(0))));
        let kind = FeedColumns {
            kind: "other",
            ..base
        };
        assert!(matches!(decode(kind), Err(FeedFormatError::Kind(_))));
        let index = FeedColumns {
            row_index: -1,
            payload: r#"{"groups":[],"predicted":true,"features":[]}"#,
            ..base
        };
        assert!(matches!(decode(index), Err(FeedFormatError::Index(-1))));
        let extra = FeedColumns {
            payload: r#"{"groups":[],"predicted":true,"features":[],"x":1}"#,
            ..base
        };
        assert!(matches!(decode(extra), Err(FeedFormatError::Payload(_))));
    }
}
