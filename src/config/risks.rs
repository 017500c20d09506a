//! `[[risks]]` (or the file `risk_register.file` names): the risk register, each
//! risk with the models it concerns, its controls and the KPI indicators
//! the gateway watches for it; checked against the models and their
//! `[models.kpi]` so an indicator can only name a KPI the gateway computes.

use super::ConfigError;
use super::kpi::FeatureKind;
use super::validate::{Checker, Environment};
use super::{KpiConfig, ModelConfig};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// Most risks in a register.
pub const MAX_RISKS: usize = 64;
/// Most indicators of one risk.
pub const MAX_INDICATORS: usize = 16;
/// Most models one risk names.
const MAX_RISK_MODELS: usize = 16;
/// Most controls one risk lists.
const MAX_CONTROLS: usize = 32;
/// Longest title, owner or control text, in bytes.
const MAX_TEXT_BYTES: usize = 1_024;
/// Longest risk id (it is a metric label value).
const MAX_ID_BYTES: usize = 64;
/// Longest `for_secs` (a week).
const MAX_FOR_SECS: u64 = 7 * 86_400;
/// Most evaluation rounds one rate window spans (bounds the samples kept).
const MAX_ROUNDS_PER_WINDOW: u64 = 1_000;

/// `[[risks]]` as written (also the tables of `risk_register.file`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRisk {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) owner: String,
    pub(crate) models: Vec<String>,
    #[serde(default)]
    pub(crate) controls: Vec<String>,
    #[serde(default)]
    pub(crate) indicators: Vec<RawIndicator>,
}

/// `[[risks.indicators]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIndicator {
    pub(crate) kpi: String,
    #[serde(default)]
    pub(crate) attribute: Option<String>,
    #[serde(default)]
    pub(crate) feature: Option<String>,
    pub(crate) threshold: f64,
    pub(crate) direction: String,
    #[serde(default)]
    pub(crate) for_secs: Option<u64>,
    #[serde(default)]
    pub(crate) min_count: Option<u64>,
}

/// The file `risk_register.file` names: `[[risks]]` tables only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRisksFile {
    #[serde(default)]
    risks: Vec<RawRisk>,
}

/// The checked register and how it is evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskRegister {
    /// The risks, in file order.
    pub risks: Vec<Risk>,
    /// How often every indicator is evaluated (`risk_register.eval_every_secs`, default 30).
    pub eval_every: Duration,
    /// The traffic a rate or latency indicator covers (`risk_register.window_secs`, default 300).
    pub window: Duration,
}

/// One risk.
#[derive(Debug, Clone, PartialEq)]
pub struct Risk {
    /// Unique id (a metric label value).
    pub id: String,
    /// What the risk is.
    pub title: String,
    /// Who answers for it.
    pub owner: String,
    /// The models (and versions) it concerns.
    pub models: Vec<RiskModel>,
    /// The controls that treat it (free text, references to a control catalogue).
    pub controls: Vec<String>,
    /// What the gateway watches.
    pub indicators: Vec<Indicator>,
}

/// A model a risk concerns: `credit` or `credit@v2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskModel {
    /// A configured model.
    pub model: String,
    /// One version of it; `None`: every version.
    pub version: Option<String>,
}

impl std::fmt::Display for RiskModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            Some(version) => write!(f, "{}@{version}", self.model),
            None => f.write_str(&self.model),
        }
    }
}

/// The KPI an indicator watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RiskKpi {
    /// The fairness window's demographic parity difference for an attribute.
    DemographicParityDifference {
        /// The protected attribute.
        attribute: String,
    },
    /// The fairness window's equal opportunity difference for an attribute.
    EqualOpportunityDifference {
        /// The protected attribute.
        attribute: String,
    },
    /// A feature's population stability index.
    Psi {
        /// The drift feature.
        feature: String,
    },
    /// A feature's Jensen-Shannon distance.
    Js {
        /// The drift feature.
        feature: String,
    },
    /// A numeric feature's KS statistic.
    Ks {
        /// The drift feature.
        feature: String,
    },
    /// Holds among the request-stage policy verdicts.
    HoldRate,
    /// Overridden holds among the decided holds.
    OverrideRate,
    /// Requests with outcome `error` among all requests.
    ErrorRate,
    /// The 95th percentile of the upstream's time to its response head, in ms.
    LatencyP95Ms,
}

impl RiskKpi {
    /// The KPI's name as configured and recorded.
    pub fn name(&self) -> &'static str {
        match self {
            RiskKpi::DemographicParityDifference { .. } => "demographic_parity_difference",
            RiskKpi::EqualOpportunityDifference { .. } => "equal_opportunity_difference",
            RiskKpi::Psi { .. } => "psi",
            RiskKpi::Js { .. } => "js",
            RiskKpi::Ks { .. } => "ks",
            RiskKpi::HoldRate => "hold_rate",
            RiskKpi::OverrideRate => "override_rate",
            RiskKpi::ErrorRate => "error_rate",
            RiskKpi::LatencyP95Ms => "latency_p95_ms",
        }
    }

    /// The protected attribute, for a fairness KPI.
    pub fn attribute(&self) -> Option<&str> {
        match self {
            RiskKpi::DemographicParityDifference { attribute }
            | RiskKpi::EqualOpportunityDifference { attribute } => Some(attribute),
            _ => None,
        }
    }

    /// The drift feature, for a drift KPI.
    pub fn feature(&self) -> Option<&str> {
        match self {
            RiskKpi::Psi { feature } | RiskKpi::Js { feature } | RiskKpi::Ks { feature } => {
                Some(feature)
            }
            _ => None,
        }
    }
}

/// When an indicator's value counts as a breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Breached when the value is above the threshold.
    Above,
    /// Breached when the value is below the threshold.
    Below,
}

impl Direction {
    /// `above` or `below`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Above => "above",
            Direction::Below => "below",
        }
    }

    /// Whether `value` is beyond `threshold` this way (equal is within).
    pub fn beyond(self, value: f64, threshold: f64) -> bool {
        match self {
            Direction::Above => value > threshold,
            Direction::Below => value < threshold,
        }
    }
}

/// One indicator of a risk.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicator {
    /// What it watches.
    pub kpi: RiskKpi,
    /// The limit.
    pub threshold: f64,
    /// Which side of the limit is a breach.
    pub direction: Direction,
    /// How long the value must stay beyond the limit before it is a breach.
    pub for_secs: u64,
    /// The fewest requests, decided holds or window rows the value must
    /// come from (fewer: the indicator is unknown, never breached).
    pub min_count: u64,
}

/// Default `min_count`.
const DEFAULT_MIN_COUNT: u64 = 10;

/// `[risk_register]` as written: where the `[[risks]]` tables are, if
/// not in the main file, and how often and over what span they are
/// evaluated.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRiskSettings {
    #[serde(default)]
    pub(crate) file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) eval_every_secs: Option<u64>,
    #[serde(default)]
    pub(crate) window_secs: Option<u64>,
}

/// Checks the register against the checked models.
pub(crate) fn check(
    checker: &Checker<'_>,
    risks: Vec<RawRisk>,
    settings: RawRiskSettings,
    models: &[ModelConfig],
    env: &Environment,
) -> Result<RiskRegister, ConfigError> {
    let eval_every_secs = settings.eval_every_secs.unwrap_or(30);
    if !(1..=3_600).contains(&eval_every_secs) {
        return Err(checker.error(
            "risk_register.eval_every_secs",
            "must be between 1 and 3600 seconds",
        ));
    }
    let window_secs = settings.window_secs.unwrap_or(300);
    if window_secs < eval_every_secs || window_secs > eval_every_secs * MAX_ROUNDS_PER_WINDOW {
        return Err(checker.error(
            "risk_register.window_secs",
            format!(
                "must be between eval_every_secs ({eval_every_secs}) and {} times it",
                MAX_ROUNDS_PER_WINDOW
            ),
        ));
    }
    // Errors about the tables name the file they are in.
    let (risks, file_name) = match (settings.file, risks.is_empty()) {
        (Some(_), false) => {
            return Err(checker.error(
                "risk_register.file",
                "give [[risks]] tables or risk_register.file, not both",
            ));
        }
        (Some(path), true) => {
            let path = env.base_dir().join(path);
            let text = std::fs::read_to_string(&path).map_err(|err| {
                checker.error(
                    "risk_register.file",
                    format!("cannot read {}: {err}", path.display()),
                )
            })?;
            let name = path.display().to_string();
            let file: RawRisksFile = super::validate::parse_raw_as(&text, &name)?;
            (file.risks, name)
        }
        (None, _) => (risks, checker.file().to_owned()),
    };
    let checker = Checker::for_file(&file_name);
    let prefix = "risks";
    if risks.len() > MAX_RISKS {
        return Err(checker.error(prefix, format!("at most {MAX_RISKS} risks")));
    }
    let mut ids = HashSet::new();
    let mut checked = Vec::with_capacity(risks.len());
    for (index, risk) in risks.into_iter().enumerate() {
        let key = format!("{prefix}[{index}]");
        let risk = check_risk(&checker, &key, risk, Some(models))?;
        if !ids.insert(risk.id.clone()) {
            return Err(checker.error(
                format!("{key}.id"),
                format!("risk `{}` is declared twice", risk.id),
            ));
        }
        checked.push(risk);
    }
    Ok(RiskRegister {
        risks: checked,
        eval_every: Duration::from_secs(eval_every_secs),
        window: Duration::from_secs(window_secs),
    })
}

/// A register as another gateway of the fleet recorded it (the members of
/// its `risk_register_set`: `risks`, `eval_every_secs`, `window_secs`),
/// checked as a configured one except against the models: this gateway
/// may not know every model the fleet's register names (an indicator on
/// a model it lacks stays unknown here). `origin` names it in errors.
pub fn recorded_register(
    members: &serde_json::Map<String, serde_json::Value>,
    origin: &str,
) -> Result<RiskRegister, ConfigError> {
    let checker = Checker::for_file(origin);
    let count = |name: &str| {
        members
            .get(name)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| checker.error(name, "missing or not a whole number"))
    };
    let eval_every = count("eval_every_secs")?;
    let window = count("window_secs")?;
    let risks: Vec<RawRisk> = members
        .get("risks")
        .map(|risks| serde_json::from_value(risks.clone()))
        .transpose()
        .map_err(|err| checker.error("risks", err.to_string()))?
        .ok_or_else(|| checker.error("risks", "missing"))?;
    if risks.len() > MAX_RISKS {
        return Err(checker.error("risks", format!("at most {MAX_RISKS} risks")));
    }
    if eval_every == 0 || window < eval_every {
        return Err(checker.error(
            "window_secs",
            "eval_every_secs must be positive and window_secs at least it",
        ));
    }
    let mut ids = HashSet::new();
    let mut checked = Vec::with_capacity(risks.len());
    for (index, risk) in risks.into_iter().enumerate() {
        let risk = check_risk(&checker, &format!("risks[{index}]"), risk, None)?;
        if !ids.insert(risk.id.clone()) {
            return Err(checker.error("risks", format!("risk `{}` twice", risk.id)));
        }
        checked.push(risk);
    }
    Ok(RiskRegister {
        risks: checked,
        eval_every: Duration::from_secs(eval_every),
        window: Duration::from_secs(window),
    })
}

fn text(checker: &Checker<'_>, key: &str, value: String) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        return Err(checker.error(key, "must not be empty"));
    }
    if value.len() > MAX_TEXT_BYTES || value.chars().any(char::is_control) {
        return Err(checker.error(
            key,
            format!("at most {MAX_TEXT_BYTES} bytes, no control characters"),
        ));
    }
    Ok(value)
}

fn check_risk(
    checker: &Checker<'_>,
    key: &str,
    raw: RawRisk,
    models: Option<&[ModelConfig]>,
) -> Result<Risk, ConfigError> {
    let id = raw.id;
    let id_ok = !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !id_ok {
        return Err(checker.error(
            format!("{key}.id"),
            format!("`{id}`: 1 to {MAX_ID_BYTES} letters, digits, `-`, `_` or `.`"),
        ));
    }
    let title = text(checker, &format!("{key}.title"), raw.title)?;
    let owner = text(checker, &format!("{key}.owner"), raw.owner)?;
    if raw.models.is_empty() || raw.models.len() > MAX_RISK_MODELS {
        return Err(checker.error(
            format!("{key}.models"),
            format!("name 1 to {MAX_RISK_MODELS} models (`name` or `name@version`)"),
        ));
    }
    let mut risk_models = Vec::with_capacity(raw.models.len());
    for (index, name) in raw.models.into_iter().enumerate() {
        let model_key = format!("{key}.models[{index}]");
        let (model, version) = match name.split_once('@') {
            Some((model, version)) => (model.to_owned(), Some(version.to_owned())),
            None => (name.clone(), None),
        };
        if let Some(models) = models
            && !models.iter().any(|m| m.name == model)
        {
            let known: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
            return Err(checker.error(
                model_key,
                format!("unknown model `{model}` (configured: {})", known.join(", ")),
            ));
        }
        if version
            .as_deref()
            .is_some_and(|v| v.is_empty() || v.len() > 128)
        {
            return Err(checker.error(
                model_key,
                format!("`{name}`: the version after `@` must be 1 to 128 bytes"),
            ));
        }
        let entry = RiskModel { model, version };
        if risk_models.contains(&entry) {
            return Err(checker.error(model_key, format!("`{name}` is named twice")));
        }
        risk_models.push(entry);
    }
    if raw.controls.len() > MAX_CONTROLS {
        return Err(checker.error(
            format!("{key}.controls"),
            format!("at most {MAX_CONTROLS} controls"),
        ));
    }
    let controls = raw
        .controls
        .into_iter()
        .enumerate()
        .map(|(index, control)| text(checker, &format!("{key}.controls[{index}]"), control))
        .collect::<Result<Vec<_>, _>>()?;
    if raw.indicators.len() > MAX_INDICATORS {
        return Err(checker.error(
            format!("{key}.indicators"),
            format!("at most {MAX_INDICATORS} indicators"),
        ));
    }
    let mut indicators = Vec::with_capacity(raw.indicators.len());
    for (index, indicator) in raw.indicators.into_iter().enumerate() {
        let indicator_key = format!("{key}.indicators[{index}]");
        indicators.push(check_indicator(
            checker,
            &indicator_key,
            indicator,
            &risk_models,
            models,
        )?);
    }
    Ok(Risk {
        id,
        title,
        owner,
        models: risk_models,
        controls,
        indicators,
    })
}

fn check_indicator(
    checker: &Checker<'_>,
    key: &str,
    raw: RawIndicator,
    risk_models: &[RiskModel],
    models: Option<&[ModelConfig]>,
) -> Result<Indicator, ConfigError> {
    const KNOWN: [&str; 9] = [
        "demographic_parity_difference",
        "equal_opportunity_difference",
        "psi",
        "js",
        "ks",
        "hold_rate",
        "override_rate",
        "error_rate",
        "latency_p95_ms",
    ];
    if !KNOWN.contains(&raw.kpi.as_str()) {
        return Err(checker.error(
            format!("{key}.kpi"),
            format!("unknown KPI `{}` (known: {})", raw.kpi, KNOWN.join(", ")),
        ));
    }
    let fairness = matches!(
        raw.kpi.as_str(),
        "demographic_parity_difference" | "equal_opportunity_difference"
    );
    let drift = matches!(raw.kpi.as_str(), "psi" | "js" | "ks");
    let attribute = match (fairness, raw.attribute) {
        (true, Some(attribute)) => Some(attribute),
        (true, None) => {
            return Err(checker.error(
                format!("{key}.attribute"),
                format!("`{}` needs the protected attribute it is about", raw.kpi),
            ));
        }
        (false, Some(_)) => {
            return Err(checker.error(
                format!("{key}.attribute"),
                format!("`{}` takes no attribute", raw.kpi),
            ));
        }
        (false, None) => None,
    };
    let feature = match (drift, raw.feature) {
        (true, Some(feature)) => Some(feature),
        (true, None) => {
            return Err(checker.error(
                format!("{key}.feature"),
                format!("`{}` needs the drift feature it is about", raw.kpi),
            ));
        }
        (false, Some(_)) => {
            return Err(checker.error(
                format!("{key}.feature"),
                format!("`{}` takes no feature", raw.kpi),
            ));
        }
        (false, None) => None,
    };
    let kpi = match (raw.kpi.as_str(), attribute, feature) {
        ("demographic_parity_difference", Some(attribute), _) => {
            RiskKpi::DemographicParityDifference { attribute }
        }
        ("equal_opportunity_difference", Some(attribute), _) => {
            RiskKpi::EqualOpportunityDifference { attribute }
        }
        ("psi", _, Some(feature)) => RiskKpi::Psi { feature },
        ("js", _, Some(feature)) => RiskKpi::Js { feature },
        ("ks", _, Some(feature)) => RiskKpi::Ks { feature },
        ("hold_rate", ..) => RiskKpi::HoldRate,
        ("override_rate", ..) => RiskKpi::OverrideRate,
        ("error_rate", ..) => RiskKpi::ErrorRate,
        ("latency_p95_ms", ..) => RiskKpi::LatencyP95Ms,
        // Known names were matched above: only a fairness or drift KPI
        // without its attribute or feature is left, refused there too.
        (other, ..) => {
            return Err(checker.error(format!("{key}.kpi"), format!("`{other}` is incomplete")));
        }
    };
    // A register recorded elsewhere is checked without the models.
    for risk_model in risk_models {
        let Some(models) = models else { break };
        let model = models.iter().find(|m| m.name == risk_model.model);
        let kpi_config = model.and_then(|m| m.kpi.as_ref());
        check_kpi_of(checker, key, &kpi, &risk_model.model, kpi_config)?;
    }
    if !raw.threshold.is_finite() {
        return Err(checker.error(format!("{key}.threshold"), "must be a finite number"));
    }
    let direction = match raw.direction.as_str() {
        "above" => Direction::Above,
        "below" => Direction::Below,
        other => {
            return Err(checker.error(
                format!("{key}.direction"),
                format!("`{other}` is not `above` or `below`"),
            ));
        }
    };
    let for_secs = raw.for_secs.unwrap_or(0);
    if for_secs > MAX_FOR_SECS {
        return Err(checker.error(
            format!("{key}.for_secs"),
            format!("at most {MAX_FOR_SECS} seconds"),
        ));
    }
    Ok(Indicator {
        kpi,
        threshold: raw.threshold,
        direction,
        for_secs,
        min_count: raw.min_count.unwrap_or(DEFAULT_MIN_COUNT),
    })
}

/// A fairness or drift KPI needs the model's `[models.kpi]` to compute it.
fn check_kpi_of(
    checker: &Checker<'_>,
    key: &str,
    kpi: &RiskKpi,
    model: &str,
    kpi_config: Option<&KpiConfig>,
) -> Result<(), ConfigError> {
    let (what, name, fields) = match (kpi.attribute(), kpi.feature()) {
        (Some(attribute), _) => ("attribute", attribute, kpi_config.map(|c| &c.attributes)),
        (_, Some(feature)) => ("feature", feature, kpi_config.map(|c| &c.features)),
        _ => return Ok(()),
    };
    let Some(fields) = fields else {
        return Err(checker.error(
            format!("{key}.kpi"),
            format!(
                "`{}` needs [models.kpi] on model `{model}`, which has none",
                kpi.name()
            ),
        ));
    };
    let Some(field) = fields.iter().find(|f| f.name == name) else {
        let known: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        return Err(checker.error(
            format!("{key}.{what}"),
            format!(
                "model `{model}` has no {what} `{name}` in [models.kpi] (configured: {})",
                known.join(", ")
            ),
        ));
    };
    if matches!(kpi, RiskKpi::Ks { .. }) && field.kind != FeatureKind::Numeric {
        return Err(checker.error(
            format!("{key}.kpi"),
            format!("`ks` needs a numeric feature; `{name}` of model `{model}` is categorical"),
        ));
    }
    Ok(())
}
