//! Policy sets under change control, as a pure state machine: a set is
//! proposed (its files with their text), approved under the policy
//! approval policy (four eyes, qualified roles: the registry's rules,
//! [`crate::registry::policy`]), activated, and rolled back.
//!
//! Two phases, as in the model registry: [`PolicyChanges::decide`] checks
//! a [`ChangeCommand`] and returns the [`ChangeEvent`] to record (or
//! `None` for a repeat that changes nothing); once the ledger holds it at
//! some seq, [`PolicyChanges::apply`] changes the state. Replaying the
//! ledger's events rebuilds the same state. No I/O, no clock.
//!
//! A set is named by the seq of its `policy_set_proposed` entry.

pub mod members;

use crate::registry::policy::{Assessment, assess};
use crate::registry::{ApprovalMark, ApprovalPolicy, Outstanding, Principal, Role, outstanding};
use serde::Serialize;
use std::collections::BTreeMap;

/// Most files a proposed set may hold.
pub const MAX_FILES: usize = 64;
/// Most bytes of policy text a proposed set may hold: the proposal entry
/// carries the text, and a ledger entry must stay below 64 KiB to fit a
/// C2SP entry bundle.
pub const MAX_TEXT_BYTES: usize = 48 * 1024;

/// One file of a proposed set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetFile {
    /// File name (`credit.rego`).
    pub file: String,
    /// SHA-256 of its bytes, lower-case hex.
    pub sha256: String,
    /// Its text (never shown in listings).
    #[serde(skip)]
    pub text: String,
}

/// A file of a set as the gateway keeps it in memory: its name and
/// digest. The text stays in the proposal's ledger entry, read back when
/// the set is compiled or shown ([`super::PolicyGate::set_sources`]): a
/// set holds up to 48 KiB of text, and every set ever proposed is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDigest {
    /// File name (`credit.rego`).
    pub file: String,
    /// SHA-256 of its bytes, lower-case hex.
    pub sha256: String,
}

/// Where a set stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SetState {
    /// Waiting for approvals; never evaluated.
    Proposed,
    /// Approval policy met; may be activated (again).
    Approved,
    /// The set the gateway evaluates.
    Active,
}

impl SetState {
    /// The lower-case name used in the ledger, the admin API and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            SetState::Proposed => "proposed",
            SetState::Approved => "approved",
            SetState::Active => "active",
        }
    }
}

/// One recorded approval of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetApproval {
    /// Who approved.
    pub principal: String,
    /// Their roles when they approved.
    pub roles: Vec<Role>,
    /// The issuer of their JWT; absent for a configured token (and in
    /// entries written before policy-set entries recorded issuers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Seq of the `policy_set_approved` entry.
    pub seq: u64,
}

/// One proposed policy set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProposedSet {
    /// Seq of its `policy_set_proposed` entry: the set's name.
    pub seq: u64,
    /// Time of that entry.
    pub time: String,
    /// Who proposed it (never counts as an approver).
    pub proposer: String,
    /// `folder` (read by the gateway) or `upload` (sent to the admin API).
    pub source: String,
    /// Comment of the proposal.
    pub reason: Option<String>,
    /// SHA-256 of the set ([`set_sha256`]).
    pub set_sha256: String,
    /// The files, sorted by name (their texts are in the proposal's entry).
    pub files: Vec<FileDigest>,
    /// Where it stands.
    pub state: SetState,
    /// Approvals in order, distinct principals.
    pub approvals: Vec<SetApproval>,
    /// The approval that met the policy.
    pub approval_seq: Option<u64>,
}

impl ProposedSet {
    /// `(file name, text)` pairs of `recorded` (the files its proposal's
    /// entry holds, [`ChangeEvent::Proposed`]), as
    /// [`super::PolicySet::from_sources`] takes them, once each is the
    /// file this set names with its digest.
    pub fn sources_from(&self, recorded: Vec<SetFile>) -> Option<Vec<(String, String)>> {
        let named: Vec<(String, String)> = recorded.into_iter().map(|f| (f.file, f.text)).collect();
        let hashes = file_hashes(&named);
        let same = hashes.len() == self.files.len()
            && hashes
                .iter()
                .zip(&self.files)
                .all(|((file, sha256), kept)| *file == kept.file && *sha256 == kept.sha256);
        same.then_some(named)
    }
}

/// The set in force and the entry that put it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ActiveSet {
    /// The set (its proposal seq).
    pub proposal_seq: u64,
    /// Seq of the `policy_set_activated` or `policy_set_rolled_back`
    /// entry: what every decision judged by the set cites.
    pub activation_seq: u64,
}

/// What a principal asks of the policy sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeCommand {
    /// Propose these files (sorted by name, checked to compile).
    Propose {
        /// `folder` or `upload`.
        source: &'static str,
        /// `(file name, text)`.
        files: Vec<(String, String)>,
        /// Optional comment.
        reason: Option<String>,
    },
    /// Approve a proposed set.
    Approve {
        /// The set.
        proposal_seq: u64,
        /// Optional comment.
        reason: Option<String>,
    },
    /// Make an approved set the one in force.
    Activate {
        /// The set.
        proposal_seq: u64,
        /// Optional comment.
        reason: Option<String>,
    },
    /// Put back the set in force before the current one.
    RollBack {
        /// Optional comment.
        reason: Option<String>,
    },
}

/// The set in force changing hands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSwitch {
    /// The set made active.
    pub proposal_seq: u64,
    /// Its approval that met the policy.
    pub approval_seq: u64,
    /// Its SHA-256.
    pub set_sha256: String,
    /// Its files and their SHA-256.
    pub files: Vec<(String, String)>,
    /// The set that was active (its proposal seq), now approved.
    pub deactivated: Option<u64>,
}

/// A policy-set event; its ledger kind is [`ChangeEvent::kind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeEvent {
    /// `policy_set_proposed`.
    Proposed {
        /// Who proposed.
        principal: Principal,
        /// `folder` or `upload`.
        source: String,
        /// Comment.
        reason: Option<String>,
        /// [`set_sha256`] of the files.
        set_sha256: String,
        /// The files, sorted by name, with their text.
        files: Vec<SetFile>,
    },
    /// `policy_set_approved`: one approval; `state` is `approved` when it
    /// met the policy.
    Approved {
        /// The set.
        proposal_seq: u64,
        /// The set's SHA-256.
        set_sha256: String,
        /// Who approved.
        principal: Principal,
        /// Comment.
        reason: Option<String>,
        /// Every approval so far, this one last.
        approvals: Vec<ApprovalMark>,
        /// The policy it was judged against.
        policy: ApprovalPolicy,
        /// The set's state after it.
        state: SetState,
    },
    /// `policy_set_activated`.
    Activated {
        /// Who activated.
        principal: Principal,
        /// Comment.
        reason: Option<String>,
        /// What changed hands.
        switch: SetSwitch,
    },
    /// `policy_set_rolled_back`.
    RolledBack {
        /// Who rolled back.
        principal: Principal,
        /// Comment.
        reason: Option<String>,
        /// What changed hands.
        switch: SetSwitch,
    },
}

/// Every policy-set event kind.
pub const CHANGE_KINDS: [&str; 4] = [
    "policy_set_proposed",
    "policy_set_approved",
    "policy_set_activated",
    "policy_set_rolled_back",
];

impl ChangeEvent {
    /// The ledger entry kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ChangeEvent::Proposed { .. } => CHANGE_KINDS[0],
            ChangeEvent::Approved { .. } => CHANGE_KINDS[1],
            ChangeEvent::Activated { .. } => CHANGE_KINDS[2],
            ChangeEvent::RolledBack { .. } => CHANGE_KINDS[3],
        }
    }
}

/// Why a policy-set command was refused; every one is the caller's doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// No proposal at that seq.
    #[error("no policy set was proposed at seq {0}")]
    UnknownSet(u64),
    /// The principal lacks every role that allows the action.
    #[error("to {action} a policy set, one of these roles is needed: {needed}")]
    Forbidden {
        /// What was attempted.
        action: &'static str,
        /// The roles that would allow it.
        needed: &'static str,
    },
    /// The set's state does not allow the action.
    #[error("cannot {action} a policy set that is {}", current.as_str())]
    InvalidTransition {
        /// The set's state.
        current: SetState,
        /// What was attempted.
        action: &'static str,
    },
    /// Four eyes: the proposer never approves their own set.
    #[error("the proposer of a policy set may not approve it")]
    ProposerCannotApprove,
    /// This approval cannot help meet the policy.
    #[error("an approver holding one of these roles is needed: {}", .missing.iter().map(|q| format!("approver:{q}")).collect::<Vec<_>>().join(", "))]
    RoleRequired {
        /// Qualifiers that could help.
        missing: Vec<String>,
    },
    /// No earlier set to go back to.
    #[error("no policy set was in force before the current one")]
    NothingToRollBack,
    /// The files are not a set the gateway would accept.
    #[error("{0}")]
    InvalidFiles(String),
}

impl ChangeError {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            ChangeError::UnknownSet(_) => "unknown_policy_set",
            ChangeError::Forbidden { .. } => "forbidden",
            ChangeError::InvalidTransition { .. } => "invalid_transition",
            ChangeError::ProposerCannotApprove => "proposer_cannot_approve",
            ChangeError::RoleRequired { .. } => "approver_role_required",
            ChangeError::NothingToRollBack => "nothing_to_roll_back",
            ChangeError::InvalidFiles(_) => "invalid_policy_set",
        }
    }
}

/// The SHA-256 naming a set: of its files' lines `NAME SP SHA256 LF`,
/// sorted by name, lower-case hex. Equal sets have equal digests.
pub fn set_sha256(files: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (file, sha256) in files {
        hasher.update(file.as_bytes());
        hasher.update(b" ");
        hasher.update(sha256.as_bytes());
        hasher.update(b"\n");
    }
    crate::decision::hex(&hasher.finalize())
}

/// `(name, SHA-256 hex)` of each `(name, text)`.
pub fn file_hashes(files: &[(String, String)]) -> Vec<(String, String)> {
    use sha2::{Digest, Sha256};
    files
        .iter()
        .map(|(name, text)| {
            (
                name.clone(),
                crate::decision::hex(&Sha256::digest(text.as_bytes())),
            )
        })
        .collect()
}

/// Checks the shape of proposed files: 1 to [`MAX_FILES`] plain `*.rego`
/// names (no test files, no path), distinct, at most [`MAX_TEXT_BYTES`]
/// of text in all. Whether they compile is the caller's to check.
pub fn check_files(files: &[(String, String)]) -> Result<(), ChangeError> {
    let bad = |m: String| Err(ChangeError::InvalidFiles(m));
    if files.is_empty() || files.len() > MAX_FILES {
        return bad(format!("a policy set holds 1 to {MAX_FILES} files"));
    }
    let total: usize = files.iter().map(|(_, text)| text.len()).sum();
    if total > MAX_TEXT_BYTES {
        return bad(format!(
            "the files hold {total} bytes; a policy set holds at most {MAX_TEXT_BYTES}"
        ));
    }
    for (i, (name, _)) in files.iter().enumerate() {
        let plain = name.len() <= 128
            && name.ends_with(".rego")
            && name.len() > ".rego".len()
            && !name.ends_with("_test.rego")
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            && !name.starts_with('.');
        if !plain {
            return bad(format!(
                "file name {name:?} is not a plain *.rego name (letters, digits, _ - .; no *_test.rego)"
            ));
        }
        if files[..i].iter().any(|(other, _)| other == name) {
            return bad(format!("file {name:?} is listed twice"));
        }
    }
    Ok(())
}

/// Every proposed set and which one is in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyChanges {
    sets: BTreeMap<u64, ProposedSet>,
    active: Option<ActiveSet>,
    /// Sets previously in force, most recent last; each still approved.
    history: Vec<u64>,
}

impl PolicyChanges {
    /// Every set by proposal seq.
    pub fn sets(&self) -> &BTreeMap<u64, ProposedSet> {
        &self.sets
    }

    /// One set.
    pub fn set(&self, proposal_seq: u64) -> Option<&ProposedSet> {
        self.sets.get(&proposal_seq)
    }

    /// The set in force, if any was ever activated.
    pub fn active(&self) -> Option<ActiveSet> {
        self.active
    }

    /// Sets that were in force before, most recent last.
    pub fn history(&self) -> &[u64] {
        &self.history
    }

    /// What `set` still needs under `policy`.
    pub fn outstanding(set: &ProposedSet, policy: &ApprovalPolicy) -> Outstanding {
        let so_far: Vec<&[Role]> = set.approvals.iter().map(|a| a.roles.as_slice()).collect();
        outstanding(policy, &so_far)
    }

    /// Checks `command` by `by` under `policy` and returns the event to
    /// record, or `None` for a repeat that changes nothing (the same files
    /// proposed again while a set with them is open or in force, a second
    /// approval by the same principal, activating the active set).
    pub fn decide(
        &self,
        command: &ChangeCommand,
        by: &Principal,
        policy: &ApprovalPolicy,
    ) -> Result<Option<ChangeEvent>, ChangeError> {
        let admin_or_proposer = by.has(&Role::Admin) || by.has(&Role::Proposer);
        match command {
            ChangeCommand::Propose {
                source,
                files,
                reason,
            } => {
                if !admin_or_proposer {
                    return Err(forbidden("propose", "admin, proposer"));
                }
                check_files(files)?;
                let hashes = file_hashes(files);
                let digest = set_sha256(&hashes);
                if self.sets.values().any(|s| s.set_sha256 == digest) {
                    return Ok(None);
                }
                Ok(Some(ChangeEvent::Proposed {
                    principal: by.clone(),
                    source: (*source).to_owned(),
                    reason: reason.clone(),
                    set_sha256: digest,
                    files: files
                        .iter()
                        .zip(hashes)
                        .map(|((file, text), (_, sha256))| SetFile {
                            file: file.clone(),
                            sha256,
                            text: text.clone(),
                        })
                        .collect(),
                }))
            }
            ChangeCommand::Approve {
                proposal_seq,
                reason,
            } => {
                if !by.is_approver() {
                    return Err(forbidden("approve", "approver, approver:<qualifier>"));
                }
                let set = self.find(*proposal_seq)?;
                if set.approvals.iter().any(|a| a.principal == by.name) {
                    return Ok(None);
                }
                if set.state != SetState::Proposed {
                    return Err(ChangeError::InvalidTransition {
                        current: set.state,
                        action: "approve",
                    });
                }
                if set.proposer == by.name {
                    return Err(ChangeError::ProposerCannotApprove);
                }
                let so_far: Vec<&[Role]> =
                    set.approvals.iter().map(|a| a.roles.as_slice()).collect();
                let state = match assess(policy, &so_far, &by.roles) {
                    Assessment::CannotHelp { missing } => {
                        return Err(ChangeError::RoleRequired { missing });
                    }
                    Assessment::Counts { complete: true } => SetState::Approved,
                    Assessment::Counts { complete: false } => SetState::Proposed,
                };
                let mut approvals: Vec<ApprovalMark> = set
                    .approvals
                    .iter()
                    .map(|a| ApprovalMark {
                        principal: a.principal.clone(),
                        roles: a.roles.clone(),
                        issuer: a.issuer.clone(),
                    })
                    .collect();
                approvals.push(ApprovalMark {
                    principal: by.name.clone(),
                    roles: by.roles.clone(),
                    issuer: by.issuer.clone(),
                });
                Ok(Some(ChangeEvent::Approved {
                    proposal_seq: *proposal_seq,
                    set_sha256: set.set_sha256.clone(),
                    principal: by.clone(),
                    reason: reason.clone(),
                    approvals,
                    policy: policy.clone(),
                    state,
                }))
            }
            ChangeCommand::Activate {
                proposal_seq,
                reason,
            } => {
                if !admin_or_proposer {
                    return Err(forbidden("activate", "admin, proposer"));
                }
                let set = self.find(*proposal_seq)?;
                if set.state == SetState::Active {
                    return Ok(None);
                }
                if set.state != SetState::Approved {
                    return Err(ChangeError::InvalidTransition {
                        current: set.state,
                        action: "activate",
                    });
                }
                Ok(Some(ChangeEvent::Activated {
                    principal: by.clone(),
                    reason: reason.clone(),
                    switch: self.switch(set, "activate")?,
                }))
            }
            ChangeCommand::RollBack { reason } => {
                if !admin_or_proposer {
                    return Err(forbidden("roll back", "admin, proposer"));
                }
                let target = self
                    .history
                    .last()
                    .and_then(|seq| self.sets.get(seq))
                    .ok_or(ChangeError::NothingToRollBack)?;
                Ok(Some(ChangeEvent::RolledBack {
                    principal: by.clone(),
                    reason: reason.clone(),
                    switch: self.switch(target, "roll back")?,
                }))
            }
        }
    }

    fn find(&self, proposal_seq: u64) -> Result<&ProposedSet, ChangeError> {
        self.sets
            .get(&proposal_seq)
            .ok_or(ChangeError::UnknownSet(proposal_seq))
    }

    fn switch(&self, set: &ProposedSet, action: &'static str) -> Result<SetSwitch, ChangeError> {
        // An approved set always has its approval seq; one without (only a
        // damaged ledger could build it) is refused rather than activated.
        let approval_seq = set.approval_seq.ok_or(ChangeError::InvalidTransition {
            current: set.state,
            action,
        })?;
        Ok(SetSwitch {
            proposal_seq: set.seq,
            approval_seq,
            set_sha256: set.set_sha256.clone(),
            files: set
                .files
                .iter()
                .map(|f| (f.file.clone(), f.sha256.clone()))
                .collect(),
            deactivated: self.active.map(|a| a.proposal_seq),
        })
    }

    /// Applies `event`, recorded at `seq` and `time`. Never consults a
    /// policy: it sets what the event says. An event naming an unknown
    /// set (a damaged ledger) changes nothing.
    pub fn apply(&mut self, event: &ChangeEvent, seq: u64, time: &str) {
        match event {
            ChangeEvent::Proposed {
                principal,
                source,
                reason,
                set_sha256,
                files,
            } => {
                self.sets.insert(
                    seq,
                    ProposedSet {
                        seq,
                        time: time.to_owned(),
                        proposer: principal.name.clone(),
                        source: source.clone(),
                        reason: reason.clone(),
                        set_sha256: set_sha256.clone(),
                        files: files
                            .iter()
                            .map(|f| FileDigest {
                                file: f.file.clone(),
                                sha256: f.sha256.clone(),
                            })
                            .collect(),
                        state: SetState::Proposed,
                        approvals: Vec::new(),
                        approval_seq: None,
                    },
                );
            }
            ChangeEvent::Approved {
                proposal_seq,
                principal,
                state,
                ..
            } => {
                if let Some(set) = self.sets.get_mut(proposal_seq) {
                    set.approvals.push(SetApproval {
                        principal: principal.name.clone(),
                        roles: principal.roles.clone(),
                        issuer: principal.issuer.clone(),
                        seq,
                    });
                    if *state == SetState::Approved && set.state == SetState::Proposed {
                        set.state = SetState::Approved;
                        set.approval_seq = Some(seq);
                    }
                }
            }
            ChangeEvent::Activated { switch, .. } | ChangeEvent::RolledBack { switch, .. } => {
                if !self.sets.contains_key(&switch.proposal_seq) {
                    return;
                }
                let rollback = matches!(event, ChangeEvent::RolledBack { .. });
                if let Some(previous) = self.active.take() {
                    if let Some(set) = self.sets.get_mut(&previous.proposal_seq) {
                        set.state = SetState::Approved;
                    }
                    // A rollback leaves the set it replaced off the stack:
                    // rolling back twice goes further back, not forth.
                    if !rollback {
                        self.history.push(previous.proposal_seq);
                    }
                }
                self.history.retain(|s| *s != switch.proposal_seq);
                if let Some(set) = self.sets.get_mut(&switch.proposal_seq) {
                    set.state = SetState::Active;
                }
                self.active = Some(ActiveSet {
                    proposal_seq: switch.proposal_seq,
                    activation_seq: seq,
                });
            }
        }
    }
}

fn forbidden(action: &'static str, needed: &'static str) -> ChangeError {
    ChangeError::Forbidden { action, needed }
}

#[cfg(test)]
mod tests;
