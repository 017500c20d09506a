//! The risk register at run time: recorded in the ledger when it changes
//! (`risk_register_set`), and its indicators evaluated by an owned task
//! that records each breach and recovery (`risk_indicator_breached`,
//! `risk_indicator_recovered`) and publishes them as metrics.
//!
//! Reads the KPI aggregator's reports (fairness, drift) and the gateway's
//! own counters (requests, policy and review verdicts, upstream latency)
//! through the shared metrics registry; appends through the `Ledger`.
//! The register is read at start only (a SIGHUP does not reload it). In a
//! fleet (`[cluster]`) the register is the fleet's (`fleet.rs`): it
//! changes when a replica starts with another one, and the fairness and
//! drift indicators read the fleet's KPI windows.

mod fairness;
mod fleet;
mod metrics;
mod register;
mod sample;
mod task;

pub use fleet::Registers;
pub use register::{
    BREACHED, IndicatorKey, OpenBreach, RECOVERED, REGISTER_SET, Recorded, indicator_label,
    read_recorded, register_entry, register_json, register_sha256,
};
pub use task::RiskTask;

use crate::config::RiskRegister;
use crate::kpi::KpiRecorder;
use crate::ledger::sequencer::Ledger;
use crate::ledger::store::LedgerStore;
use std::sync::Arc;

/// Why the register could not be recorded or its task started.
#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    /// The store could not be read.
    #[error("reading the ledger: {0}")]
    Store(#[from] crate::ledger::store::StoreError),
    /// A recorded risk entry cannot be read back.
    #[error("risk entry {seq}: {problem}")]
    Replay {
        /// Its seq.
        seq: u64,
        /// What is wrong.
        problem: String,
    },
    /// The register has no canonical form (it always has: a bug).
    #[error("the register's canonical JSON: {0}")]
    Canonical(String),
    /// The ledger refused the register's entry.
    #[error("recording the risk register: {0}")]
    Append(crate::decision::SinkError),
    /// Metric families could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The blocking read was lost.
    #[error("reading the ledger: {0}")]
    Join(String),
    /// The fleet's control log could not take the configured register.
    #[error("sharing the risk register with the fleet: {0}")]
    Fleet(#[from] crate::registry::service::ServiceError),
    /// A register another replica shared cannot be read.
    #[error("control event {control_seq}: {problem}")]
    Shared {
        /// Its control seq.
        control_seq: u64,
        /// What is wrong.
        problem: String,
    },
}

/// Whose register and KPIs the indicators are evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A single gateway: its configured register, recorded at start when
    /// it changed, and its own KPI windows.
    Own,
    /// A replica of a fleet: the fleet's register (its control log) and
    /// the fleet's KPI windows for fairness and drift.
    Fleet,
}

/// Records the register if it differs from the last one recorded (an
/// empty register only after a non-empty one), restores the open
/// breaches, and returns the task that evaluates the indicators with the
/// handle on the register in force. In a fleet (`Scope::Fleet`) nothing
/// is recorded here: the register in force is the fleet's, recorded as
/// the replica follows the control log ([`Registers::domain`]) and
/// proposed after it caught up ([`Registers::propose_at_start`]).
pub async fn start(
    register: &RiskRegister,
    store: Arc<dyn LedgerStore>,
    ledger: Ledger,
    metrics: &crate::metrics::Metrics,
    kpi: Option<KpiRecorder>,
    scope: Scope,
) -> Result<(RiskTask, Registers), RiskError> {
    let recorded = tokio::task::spawn_blocking(move || read_recorded(store.as_ref()))
        .await
        .map_err(|err| RiskError::Join(err.to_string()))??;
    let sha256 = register_sha256(register)?;
    let changed = match &recorded.register_sha256 {
        Some(last) => last != &sha256,
        None => !register.risks.is_empty(),
    };
    if changed && scope == Scope::Own {
        let ack = ledger
            .append(register_entry(register)?)
            .await
            .map_err(RiskError::Append)?;
        tracing::info!(seq = ?ack.seq, sha256, risks = register.risks.len(), "risk register recorded");
    }
    let registers = Registers::new(
        register.clone(),
        sha256,
        recorded.fleet_register_sha256.clone(),
        ledger.clone(),
    );
    let task = RiskTask::new(registers.in_force(), recorded, ledger, metrics, kpi, scope)?;
    Ok((task, registers))
}
