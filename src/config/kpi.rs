//! `[models.kpi]`: where a model's rows are, what counts as a positive
//! outcome, its protected attributes and drift features, and the window.

use super::ConfigError;
use super::raw::{RawKpi, RawKpiField, RawOutcome};
use super::validate::Checker;
use crate::kpi::{Selector, Side};

/// Request header prefix of a protected attribute sent beside the body;
/// the gateway strips these headers before forwarding.
pub const ATTRIBUTE_HEADER_PREFIX: &str = "x-govgate-attr-";

/// Groups tracked per protected attribute, at most.
const MAX_GROUPS: usize = 10_000;

/// Rows a KPI window may hold: a window lives in memory, once per model
/// and once per version served.
const MAX_WINDOW_ROWS: usize = 1_000_000;

/// Where one value of each row is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// In the request or response body.
    Body {
        /// Which body.
        side: Side,
        /// Where in it.
        selector: Selector,
    },
    /// In the request header `x-govgate-attr-<name>`, one value for every
    /// row of the request.
    Header(String),
}

/// How a row's outcome is read.
#[derive(Debug, Clone, PartialEq)]
pub enum OutcomeRule {
    /// A number; positive iff `score >= threshold`.
    Score {
        /// The cut-off.
        threshold: f64,
    },
    /// A label; positive iff it is one of these.
    Label {
        /// The positive labels.
        positive: Vec<String>,
    },
}

/// A drift feature's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    /// Binned at the reference's quantiles (PSI, JS, KS).
    Numeric,
    /// One bucket per reference category plus `other` (PSI, JS).
    Categorical,
}

/// A named value of each row.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiField {
    /// The name (a metric label value).
    pub name: String,
    /// Where it is.
    pub source: Source,
    /// For drift features, the kind.
    pub kind: FeatureKind,
}

/// The checked `[models.kpi]`.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiConfig {
    /// Rows in the sliding window (default 10 000).
    pub window: usize,
    /// Groups smaller than this are left out of the aggregates (default 30).
    pub min_group_size: u64,
    /// Distinct groups tracked per attribute (default 50).
    pub max_groups: usize,
    /// The first rows a version serves form its drift reference (default 1000).
    pub reference_rows: usize,
    /// Seconds between `kpi_snapshot` ledger entries (default 3600); `None`
    /// (configured as 0): only at version changes and at a clean stop.
    pub snapshot_every: Option<std::time::Duration>,
    /// Where the outcome is (always in the response).
    pub outcome: Source,
    /// How it is read.
    pub outcome_rule: OutcomeRule,
    /// Protected attributes.
    pub attributes: Vec<KpiField>,
    /// Drift features.
    pub features: Vec<KpiField>,
}

fn side(
    checker: &Checker<'_>,
    key: &str,
    from: Option<&str>,
    default: Side,
) -> Result<Side, ConfigError> {
    match from {
        None => Ok(default),
        Some("request") => Ok(Side::Request),
        Some("response") => Ok(Side::Response),
        Some(other) => Err(checker.error(key, format!("`{other}` is not request or response"))),
    }
}

/// A body selector from `pointer`, or `tensor` and `column`.
fn selector(
    checker: &Checker<'_>,
    key: &str,
    pointer: Option<String>,
    tensor: Option<String>,
    column: Option<u64>,
) -> Result<Selector, ConfigError> {
    match (pointer, tensor, column) {
        (Some(pointer), None, None) => Selector::pointer(&pointer)
            .map_err(|err| checker.error(format!("{key}.pointer"), err.to_string())),
        (None, Some(name), column) => Ok(Selector::Tensor {
            name,
            column: column.map(|c| c as usize),
        }),
        (Some(_), Some(_), _) => Err(checker.error(key, "give `pointer` or `tensor`, not both")),
        (Some(_), None, Some(_)) => {
            Err(checker.error(format!("{key}.column"), "`column` goes with `tensor`"))
        }
        (None, None, _) => Err(checker.error(
            key,
            "needs `pointer` (a JSON pointer) or `tensor` (a KServe V2 tensor name)",
        )),
    }
}

fn field(
    checker: &Checker<'_>,
    key: &str,
    raw: RawKpiField,
    attribute: bool,
) -> Result<KpiField, ConfigError> {
    let name_ok = !raw.name.is_empty()
        && raw.name.len() <= 64
        && raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    if !name_ok {
        return Err(checker.error(
            format!("{key}.name"),
            "use letters, digits, `_` and `-` (at most 64)",
        ));
    }
    let source = if raw.header == Some(true) {
        if raw.pointer.is_some() || raw.tensor.is_some() || raw.from.is_some() {
            return Err(checker.error(
                key,
                "a header attribute takes no `pointer`, `tensor` or `from`",
            ));
        }
        Source::Header(format!(
            "{ATTRIBUTE_HEADER_PREFIX}{}",
            raw.name.to_ascii_lowercase()
        ))
    } else {
        Source::Body {
            side: side(
                checker,
                &format!("{key}.from"),
                raw.from.as_deref(),
                Side::Request,
            )?,
            selector: selector(checker, key, raw.pointer, raw.tensor, raw.column)?,
        }
    };
    let kind = match (attribute, raw.kind.as_deref()) {
        (true, None) => FeatureKind::Categorical,
        (true, Some(_)) => {
            return Err(checker.error(
                format!("{key}.kind"),
                "protected attributes are always categorical",
            ));
        }
        (false, Some("numeric")) => FeatureKind::Numeric,
        (false, Some("categorical")) => FeatureKind::Categorical,
        (false, other) => {
            return Err(checker.error(
                format!("{key}.kind"),
                format!("is {other:?}; expected \"numeric\" or \"categorical\""),
            ));
        }
    };
    Ok(KpiField {
        name: raw.name,
        source,
        kind,
    })
}

fn outcome(
    checker: &Checker<'_>,
    key: &str,
    raw: RawOutcome,
) -> Result<(Source, OutcomeRule), ConfigError> {
    let side = side(
        checker,
        &format!("{key}.from"),
        raw.from.as_deref(),
        Side::Response,
    )?;
    let selector = selector(checker, key, raw.pointer, raw.tensor, raw.column)?;
    let rule = match (raw.threshold, raw.positive) {
        (Some(threshold), None) if threshold.is_finite() => OutcomeRule::Score { threshold },
        (Some(_), None) => {
            return Err(checker.error(format!("{key}.threshold"), "must be a finite number"));
        }
        (None, Some(positive)) if !positive.is_empty() => OutcomeRule::Label { positive },
        (None, Some(_)) => {
            return Err(checker.error(
                format!("{key}.positive"),
                "name at least one positive label",
            ));
        }
        _ => {
            return Err(checker.error(
                key,
                "give `threshold` (a score) or `positive` (labels), one of them",
            ));
        }
    };
    Ok((Source::Body { side, selector }, rule))
}

fn count(
    checker: &Checker<'_>,
    key: &str,
    value: Option<u64>,
    default: u64,
) -> Result<u64, ConfigError> {
    match value {
        Some(0) => Err(checker.error(key, "must be greater than 0")),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

pub(super) fn check(
    checker: &Checker<'_>,
    key: &str,
    raw: RawKpi,
) -> Result<KpiConfig, ConfigError> {
    let (outcome, outcome_rule) = outcome(checker, &format!("{key}.outcome"), raw.outcome)?;
    let mut attributes = Vec::new();
    for (i, raw) in raw.attributes.into_iter().enumerate() {
        attributes.push(field(
            checker,
            &format!("{key}.attributes[{i}]"),
            raw,
            true,
        )?);
    }
    let mut features = Vec::new();
    for (i, raw) in raw.features.into_iter().enumerate() {
        features.push(field(checker, &format!("{key}.features[{i}]"), raw, false)?);
    }
    for (what, fields) in [("attributes", &attributes), ("features", &features)] {
        for (i, f) in fields.iter().enumerate() {
            if fields[..i].iter().any(|g| g.name == f.name) {
                return Err(checker.error(
                    format!("{key}.{what}[{i}].name"),
                    format!("`{}` is named twice", f.name),
                ));
            }
        }
    }
    let too_large = |k: &str| checker.error(format!("{key}.{k}"), "is too large");
    let at_most =
        |k: &str, most: usize| checker.error(format!("{key}.{k}"), format!("is at most {most}"));
    Ok(KpiConfig {
        // Each version's drift window and the model's fairness window hold
        // this many rows, and twice as many wait for their labels.
        window: usize::try_from(count(
            checker,
            &format!("{key}.window"),
            raw.window,
            10_000,
        )?)
        .ok()
        .filter(|rows| *rows <= MAX_WINDOW_ROWS)
        .ok_or_else(|| at_most("window", MAX_WINDOW_ROWS))?,
        min_group_size: count(
            checker,
            &format!("{key}.min_group_size"),
            raw.min_group_size,
            30,
        )?,
        // Group values come from the traffic: this caps what callers can
        // make the windows and the per-group series hold.
        max_groups: usize::try_from(count(
            checker,
            &format!("{key}.max_groups"),
            raw.max_groups,
            50,
        )?)
        .ok()
        .filter(|groups| *groups <= MAX_GROUPS)
        .ok_or_else(|| at_most("max_groups", MAX_GROUPS))?,
        // The first rows of a version are held until there are this many,
        // as many as an uploaded reference may have.
        reference_rows: usize::try_from(count(
            checker,
            &format!("{key}.reference_rows"),
            raw.reference_rows,
            1000,
        )?)
        .ok()
        .filter(|rows| *rows <= crate::kpi::MAX_REFERENCE_ROWS)
        .ok_or_else(|| at_most("reference_rows", crate::kpi::MAX_REFERENCE_ROWS))?,
        snapshot_every: match raw.snapshot_every_secs.unwrap_or(3600) {
            0 => None,
            // More than a year apart is a typo, not a schedule.
            secs if secs > 366 * 24 * 3600 => return Err(too_large("snapshot_every_secs")),
            secs => Some(std::time::Duration::from_secs(secs)),
        },
        outcome,
        outcome_rule,
        attributes,
        features,
    })
}
