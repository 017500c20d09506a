//! The risk register of a fleet (`[cluster]`): a domain of the fleet's
//! control log (`crate::registry::shared`) of kind `risk_register_set`.
//!
//! A replica that caught up with the control log at start appends its
//! configured register when it differs (by SHA-256) from the fleet's
//! latest, so the replica started last wins, as a rolling upgrade of the
//! configuration expects. Every replica records each such event in its own
//! ledger with its `control_seq` and evaluates that register from then on
//! (the task takes it through a watch channel). Outside a fleet the
//! register in force is the configured one and never changes.

use super::RiskError;
use super::register::{REGISTER_SET, entry_members};
use crate::config::RiskRegister;
use crate::ledger::entry::EntryBody;
use crate::ledger::sequencer::Ledger;
use crate::registry::service::RegistryService;
use crate::registry::shared::{
    CONTROL_SEQ_MEMBER, LogFuture, SharedDomain, SharedEvent, SharedLogError,
};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

/// The kinds of the risk register's control events.
const KINDS: [&str; 1] = [REGISTER_SET];

/// The register in force and, in a fleet, how it changes; cheap to clone.
#[derive(Clone)]
pub struct Registers {
    inner: Arc<Inner>,
}

struct Inner {
    in_force: watch::Sender<Arc<RiskRegister>>,
    /// The configured register and its SHA-256.
    configured: RiskRegister,
    configured_sha256: String,
    /// SHA-256 of the fleet's latest register as this replica recorded it.
    fleet: Mutex<Option<String>>,
    /// The configured register was proposed: a register recorded from
    /// now on that differs from it is worth a warning (one applied while
    /// catching up at start is followed by the configured one).
    proposed: AtomicBool,
    ledger: Ledger,
}

impl Registers {
    /// The configured `register` (of SHA-256 `sha256`) in force; `fleet`
    /// the SHA-256 of the fleet's latest register the ledger records.
    pub(super) fn new(
        register: RiskRegister,
        sha256: String,
        fleet: Option<String>,
        ledger: Ledger,
    ) -> Self {
        let (in_force, _) = watch::channel(Arc::new(register.clone()));
        Self {
            inner: Arc::new(Inner {
                in_force,
                configured: register,
                configured_sha256: sha256,
                fleet: Mutex::new(fleet),
                proposed: AtomicBool::new(false),
                ledger,
            }),
        }
    }

    /// The register in force, changing as the fleet's does.
    pub fn in_force(&self) -> watch::Receiver<Arc<RiskRegister>> {
        self.inner.in_force.subscribe()
    }

    /// The domain applying the fleet's `risk_register_set` events, for
    /// [`RegistryService::with_domain`].
    pub fn domain(&self) -> Arc<dyn SharedDomain> {
        Arc::new(RiskDomain(self.clone()))
    }

    fn fleet_sha256(&self) -> Option<String> {
        self.inner
            .fleet
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Appends the configured register to the fleet's control log unless
    /// it is the fleet's latest already (none yet: unless it is empty),
    /// and records it; `registry` has caught up with the log. Nothing
    /// outside a fleet.
    pub async fn propose_at_start(&self, registry: &RegistryService) -> Result<(), RiskError> {
        let proposed = self.propose(registry).await;
        self.inner.proposed.store(true, Ordering::Release);
        proposed
    }

    async fn propose(&self, registry: &RegistryService) -> Result<(), RiskError> {
        let Some(mut turn) = registry.control_turn().await? else {
            return Ok(());
        };
        let members = entry_members(&self.inner.configured)?;
        loop {
            let wanted = match self.fleet_sha256() {
                Some(fleet) => fleet != self.inner.configured_sha256,
                None => !self.inner.configured.risks.is_empty(),
            };
            if !wanted {
                return Ok(());
            }
            let Some(control_seq) = turn.append(REGISTER_SET, &members).await? else {
                // Another change came first: apply it and look again.
                turn.catch_up().await?;
                continue;
            };
            // Were this to fail, the next catch-up records it.
            self.record(self.inner.configured.clone(), members, control_seq)
                .await?;
            turn.applied(control_seq);
            tracing::info!(
                control_seq,
                sha256 = %self.inner.configured_sha256,
                "the configured risk register is the fleet's from now on"
            );
            return Ok(());
        }
    }

    /// Records the fleet's register (the `control_seq`-th control event,
    /// `members` as the log holds them) and puts it in force.
    async fn record(
        &self,
        register: RiskRegister,
        mut members: Map<String, Value>,
        control_seq: u64,
    ) -> Result<(), RiskError> {
        let sha256 = members
            .get("sha256")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        members.insert(CONTROL_SEQ_MEMBER.to_owned(), control_seq.into());
        let ack = self
            .inner
            .ledger
            .append(EntryBody::Governance {
                kind: REGISTER_SET,
                members,
            })
            .await
            .map_err(RiskError::Append)?;
        if sha256 != self.inner.configured_sha256 && self.inner.proposed.load(Ordering::Acquire) {
            tracing::warn!(
                fleet = %sha256,
                configured = %self.inner.configured_sha256,
                control_seq,
                "the fleet's risk register differs from this replica's configuration; the fleet's is evaluated"
            );
        }
        tracing::info!(seq = ?ack.seq, control_seq, sha256, risks = register.risks.len(), "the fleet's risk register recorded");
        *self
            .inner
            .fleet
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(sha256);
        self.inner.in_force.send_replace(Arc::new(register));
        Ok(())
    }
}

/// The register a control event shares, checked against its `sha256`.
fn shared_register(event: &SharedEvent) -> Result<RiskRegister, RiskError> {
    let bad = |problem: String| RiskError::Shared {
        control_seq: event.control_seq,
        problem,
    };
    let origin = format!("control event {}", event.control_seq);
    let register = crate::config::recorded_register(&event.members, &origin)
        .map_err(|err| bad(err.to_string()))?;
    let sha256 = super::register_sha256(&register)?;
    let said = event.members.get("sha256").and_then(Value::as_str);
    if said != Some(sha256.as_str()) {
        return Err(bad(format!(
            "its sha256 {said:?} is not its register's ({sha256}): written by another version of govgate?"
        )));
    }
    Ok(register)
}

/// The fleet's `risk_register_set` events, as the registry hands them over.
struct RiskDomain(Registers);

impl SharedDomain for RiskDomain {
    fn kinds(&self) -> &'static [&'static str] {
        &KINDS
    }

    fn apply<'a>(&'a self, event: &'a SharedEvent) -> LogFuture<'a, ()> {
        Box::pin(async move {
            let register = shared_register(event).map_err(|err| SharedLogError(Box::new(err)))?;
            self.0
                .record(register, event.members.clone(), event.control_seq)
                .await
                .map_err(|err| SharedLogError(Box::new(err)))
        })
    }
}

#[cfg(test)]
mod tests;
