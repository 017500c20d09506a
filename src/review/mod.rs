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

mod engine;
mod error;
mod input;
mod verdict;

#[cfg(test)]
mod sample_tests;
#[cfg(test)]
mod tests;

pub use engine::PolicySet;
pub use error::{EvalError, PolicyError};
pub use input::{PolicyInput, SAMPLE_DOMAIN, Stage, sample_of};
pub use verdict::{Action, ReasonSets, Verdict};
