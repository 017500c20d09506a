//! Registry tests: a small harness that decides and applies commands the
//! way the admin API will, recording the events as the ledger would.

mod lifecycle;
mod members;
mod replay;
mod service;
pub(crate) mod shared;
mod transitions;

use super::*;

/// A registry with its ledger of events.
pub(super) struct World {
    pub(super) registry: Registry,
    pub(super) policy: PolicySet,
    pub(super) events: Vec<(u64, String, Event)>,
    next_seq: u64,
}

impl World {
    pub(super) fn new(models: &[&str], policy: PolicySet) -> Self {
        World {
            registry: Registry::new(models.iter().copied()),
            policy,
            events: Vec::new(),
            // Other entries precede registry events in a real ledger.
            next_seq: 7,
        }
    }

    /// Decides and, when there is an event, applies it at the next seq.
    pub(super) fn run(
        &mut self,
        command: Command,
        by: &Principal,
    ) -> Result<Option<Event>, RegistryError> {
        let event = self.registry.decide(&command, by, &self.policy)?;
        if let Some(event) = &event {
            let seq = self.next_seq;
            let time = time_of(seq);
            self.registry.apply(event, seq, &time);
            self.events.push((seq, time, event.clone()));
            self.next_seq += 3;
        }
        Ok(event)
    }

    /// Runs a command that must produce an event; returns its seq.
    pub(super) fn ok(&mut self, command: Command, by: &Principal) -> u64 {
        match self.run(command.clone(), by) {
            Ok(Some(_)) => self.next_seq - 3,
            other => panic!("{command:?} by {} gave {other:?}", by.name),
        }
    }

    pub(super) fn state(&self, model: &str, version: &str) -> VersionState {
        self.registry.version(model, version).unwrap().state
    }
}

pub(super) fn time_of(seq: u64) -> String {
    format!("2026-03-01T10:{:02}:{:02}.000Z", (seq / 60) % 60, seq % 60)
}

pub(super) fn who(name: &str, roles: &[&str]) -> Principal {
    Principal::parse(name, roles).unwrap()
}

pub(super) fn spec(risk: RiskClass) -> VersionSpec {
    VersionSpec {
        upstream: "scoring".to_owned(),
        upstream_model: Some("fraud-xgb".to_owned()),
        artifact_digest: Some("sha256:ab12".to_owned()),
        risk_class: risk,
        change_ref: "CHG-1042".to_owned(),
        description: "retrained on Q1 data".to_owned(),
    }
}

pub(super) fn propose(model: &str, version: &str, risk: RiskClass) -> Command {
    Command::Propose {
        model: model.to_owned(),
        version: version.to_owned(),
        spec: spec(risk),
        reason: None,
    }
}

pub(super) fn approve(model: &str, version: &str) -> Command {
    Command::Approve {
        model: model.to_owned(),
        version: version.to_owned(),
        reason: Some("looks good".to_owned()),
    }
}

pub(super) fn reject(model: &str, version: &str, reason: &str) -> Command {
    Command::Reject {
        model: model.to_owned(),
        version: version.to_owned(),
        reason: reason.to_owned(),
    }
}

pub(super) fn activate(model: &str, version: &str) -> Command {
    Command::Activate {
        model: model.to_owned(),
        version: version.to_owned(),
        reason: None,
    }
}

pub(super) fn roll_back(model: &str) -> Command {
    Command::RollBack {
        model: model.to_owned(),
        reason: Some("error rate".to_owned()),
    }
}

pub(super) fn retire(model: &str, version: &str) -> Command {
    Command::Retire {
        model: model.to_owned(),
        version: version.to_owned(),
        reason: None,
    }
}

pub(super) fn revoke(model: &str, version: &str, reason: &str) -> Command {
    Command::Revoke {
        model: model.to_owned(),
        version: version.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Two approvers, one of them an AI officer; high-risk versions need
/// three, among them an AI officer and a security officer.
pub(super) fn officers_policy() -> PolicySet {
    PolicySet {
        default: ApprovalPolicy::new(2, ["ai_officer"]),
        high_risk: Some(ApprovalPolicy::new(3, ["ai_officer", "security_officer"])),
    }
}

/// One approver, nothing else.
pub(super) fn simple_policy() -> PolicySet {
    PolicySet {
        default: ApprovalPolicy::new(1, Vec::<String>::new()),
        high_risk: None,
    }
}

/// Small deterministic generator (xorshift64*), so failures reproduce.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }

    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[test]
fn snapshots_are_shareable_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<std::sync::Arc<Snapshot>>();
    shareable::<Registry>();
}
