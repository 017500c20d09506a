//! The register as recorded: its canonical JSON and SHA-256, the
//! `risk_register_set` entry, and what the ledger already says (the last
//! register recorded, the breaches still open) read back at start.

use super::RiskError;
use crate::config::{Indicator, Risk, RiskRegister};
use crate::ledger::entry::{EntryBody, hex};
use crate::ledger::store::LedgerStore;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Kind of the entry recording the register.
pub const REGISTER_SET: &str = "risk_register_set";
/// Kind of the entry recording an indicator's breach.
pub const BREACHED: &str = "risk_indicator_breached";
/// Kind of the entry recording its recovery.
pub const RECOVERED: &str = "risk_indicator_recovered";

/// An indicator as recorded in every entry about it.
pub(super) fn indicator_json(indicator: &Indicator) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("kpi".into(), json!(indicator.kpi.name()));
    if let Some(attribute) = indicator.kpi.attribute() {
        out.insert("attribute".into(), json!(attribute));
    }
    if let Some(feature) = indicator.kpi.feature() {
        out.insert("feature".into(), json!(feature));
    }
    out.insert("threshold".into(), json!(indicator.threshold));
    out.insert("direction".into(), json!(indicator.direction.as_str()));
    out.insert("for_secs".into(), json!(indicator.for_secs));
    out.insert("min_count".into(), json!(indicator.min_count));
    out
}

fn risk_json(risk: &Risk) -> Value {
    json!({
        "id": risk.id,
        "title": risk.title,
        "owner": risk.owner,
        "models": risk.models.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "controls": risk.controls,
        "indicators": risk.indicators.iter().map(indicator_json).collect::<Vec<_>>(),
    })
}

/// The register's members (what its SHA-256 covers): `risks`,
/// `eval_every_secs`, `window_secs`.
fn register_members(register: &RiskRegister) -> Map<String, Value> {
    let mut members = Map::new();
    members.insert(
        "risks".into(),
        Value::Array(register.risks.iter().map(risk_json).collect()),
    );
    members.insert(
        "eval_every_secs".into(),
        json!(register.eval_every.as_secs()),
    );
    members.insert("window_secs".into(), json!(register.window.as_secs()));
    members
}

/// Hex SHA-256 of the register's members as one RFC 8785 canonical object.
pub fn register_sha256(register: &RiskRegister) -> Result<String, RiskError> {
    sha256_of(&register_members(register))
}

fn sha256_of(members: &Map<String, Value>) -> Result<String, RiskError> {
    let bytes = crate::ledger::canonical::to_canonical(&Value::Object(members.clone()))
        .map_err(|err| RiskError::Canonical(err.to_string()))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// The register in force as the admin API shows it: the members of its
/// `risk_register_set` entry and `sha256`.
pub fn register_json(register: &RiskRegister) -> Result<Value, RiskError> {
    let mut members = register_members(register);
    let sha256 = sha256_of(&members)?;
    members.insert("sha256".into(), json!(sha256));
    Ok(Value::Object(members))
}

/// The `risk_register_set` entry: the register's members and `sha256`.
pub fn register_entry(register: &RiskRegister) -> Result<EntryBody, RiskError> {
    Ok(EntryBody::Governance {
        kind: REGISTER_SET,
        members: entry_members(register)?,
    })
}

/// The members of the register's `risk_register_set` entry (as the
/// fleet's control log holds them too).
pub(super) fn entry_members(register: &RiskRegister) -> Result<Map<String, Value>, RiskError> {
    let mut members = register_members(register);
    let sha256 = sha256_of(&members)?;
    members.insert("sha256".into(), json!(sha256));
    Ok(members)
}

/// An indicator's KPI with its attribute or feature: `error_rate`,
/// `demographic_parity_difference:sex`.
pub(super) fn identity(kpi: &str, subject: Option<&str>) -> String {
    match subject {
        Some(subject) => format!("{kpi}:{subject}"),
        None => kpi.to_owned(),
    }
}

/// [`identity`] of a configured indicator.
pub(super) fn identity_of(indicator: &Indicator) -> String {
    identity(
        indicator.kpi.name(),
        indicator.kpi.attribute().or(indicator.kpi.feature()),
    )
}

/// The `indicator` label of the risk metrics: `<index>:<kpi>[:<attribute
/// or feature>]`.
pub fn indicator_label(index: usize, indicator: &Indicator) -> String {
    format!("{index}:{}", identity_of(indicator))
}

/// Identifies an indicator on one model: risk id, indicator index, model
/// (as named in the register, `credit` or `credit@v2`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndicatorKey {
    /// The risk's id.
    pub risk: String,
    /// The indicator's index in the risk.
    pub indicator: usize,
    /// The model as the register names it.
    pub model: String,
}

/// A breach the ledger records as not yet recovered.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenBreach {
    /// Seq of its `risk_indicator_breached` entry.
    pub seq: u64,
    /// That entry's time, in seconds since the epoch.
    pub unix_seconds: f64,
    /// Its KPI with the attribute or feature (`psi:amount`): an indicator
    /// whose KPI changed is another one.
    pub kpi: String,
}

/// What the ledger already says about the register.
#[derive(Debug, Default)]
pub struct Recorded {
    /// SHA-256 of the last `risk_register_set`, if any.
    pub register_sha256: Option<String>,
    /// SHA-256 of the last `risk_register_set` recording the fleet's
    /// register (with a `control_seq`), if any.
    pub fleet_register_sha256: Option<String>,
    /// Breaches with no recovery after them.
    pub open: BTreeMap<IndicatorKey, OpenBreach>,
}

/// Reads every governance entry once (blocking: run off the async workers).
pub fn read_recorded(store: &dyn LedgerStore) -> Result<Recorded, RiskError> {
    let mut recorded = Recorded::default();
    for seq in store.governance_seqs()? {
        let Some(bytes) = store.entry(seq)? else {
            continue;
        };
        let entry: Map<String, Value> =
            serde_json::from_slice(&bytes).map_err(|err| RiskError::Replay {
                seq,
                problem: err.to_string(),
            })?;
        let kind = entry.get("kind").and_then(Value::as_str).unwrap_or("");
        let text = |name: &str| entry.get(name).and_then(Value::as_str);
        match kind {
            REGISTER_SET => {
                recorded.register_sha256 = text("sha256").map(str::to_owned);
                if entry.contains_key(crate::registry::shared::CONTROL_SEQ_MEMBER) {
                    recorded.fleet_register_sha256 = recorded.register_sha256.clone();
                }
            }
            BREACHED | RECOVERED => {
                let (Some(risk), Some(indicator), Some(model)) = (
                    text("risk"),
                    entry.get("indicator").and_then(Value::as_u64),
                    text("model"),
                ) else {
                    return Err(RiskError::Replay {
                        seq,
                        problem: "risk, indicator or model missing".to_owned(),
                    });
                };
                let key = IndicatorKey {
                    risk: risk.to_owned(),
                    indicator: usize::try_from(indicator).unwrap_or(usize::MAX),
                    model: model.to_owned(),
                };
                if kind == RECOVERED {
                    recorded.open.remove(&key);
                    continue;
                }
                let unix_seconds = text("time")
                    .and_then(|t| crate::ledger::export::UtcTime::parse(t).ok())
                    .map_or(0.0, |t| t.unix_seconds());
                recorded.open.insert(
                    key,
                    OpenBreach {
                        seq,
                        unix_seconds,
                        kpi: identity(
                            text("kpi").unwrap_or(""),
                            text("attribute").or(text("feature")),
                        ),
                    },
                );
            }
            _ => {}
        }
    }
    Ok(recorded)
}
