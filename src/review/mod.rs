//! Human review, first part: the policy engine that turns a request or a
//! response into a [`Verdict`].
//!
//! Policies are Rego files in package `govgate`, evaluated in-process with
//! `regorus`. Each file may add reasons to three sets, conftest-style:
//!
//! ```rego
//! package govgate
//!
//! deny contains reason if { ... }
//! hold contains reason if { ... }
//! flag contains reason if { ... }
//! ```
//!
//! The verdict's action is the strongest non-empty set: deny > hold >
//! flag > allow. Rust does the mechanics (loading, hashing, evaluating,
//! picking the action); the Rego files decide. A refusal is a verdict,
//! never an error: [`EvalError`] means the policy itself could not be
//! evaluated and the caller applies its configured default.
//!
//! This module is pure: no HTTP, no ledger, no file reads outside
//! [`PolicySet::load`], which the caller points at the configured folder.

pub mod change;
mod document;
mod engine;
mod error;
mod files;
mod gate;
mod identity;
mod input;
mod item;
mod metrics;
mod queue;
mod recorded;
mod replay;
pub mod shared;
mod stages;
mod testing;
mod verdict;

#[cfg(test)]
mod builtin_tests;
#[cfg(test)]
mod queue_tests;
#[cfg(test)]
mod sample_tests;
#[cfg(test)]
mod stage_tests;
#[cfg(test)]
mod tests;

pub use document::InputDocument;
pub use engine::PolicySet;
pub use engine::read_sources;
pub use error::{EvalError, PolicyError};
pub use files::{FileError, ReviewFiles};
pub use gate::{
    ChangeDone, ChangeFailure, Evaluation, FOLDER_PRINCIPAL, LoadedPolicies, PolicyDomain,
    PolicyGate, RecordedChanges, ReloadError, Reloaded, ReplayError as ChangeReplayError,
    SourcesError, StartError, policy_set_entry, recorded_changes, recorded_proposals,
};
pub use identity::{Reviewer, TokenIdentity};
pub use input::{PolicyInput, SAMPLE_DOMAIN, Stage, sample_of};
pub use item::{
    Closing, OnTimeoutName, ReviewItem, ReviewKind, ReviewState, ReviewVerdict, StoredAnswer,
    StoredBody, now_unix_ms, rfc3339,
};
pub use metrics::ReviewMetrics;
pub use queue::{
    DecideError, ListFilter, NewReview, PreparedHold, QueueError, QueueFull, ReviewQueue,
};
pub use recorded::{NotReplayable, RecordedInput, recorded_input};
pub use replay::{LedgerReview, ledger_reviews};
pub use testing::{FileCoverage, TestError, TestOutcome, TestReport, TestResult, run_tests};
pub use verdict::{Action, ReasonSets, Verdict};
