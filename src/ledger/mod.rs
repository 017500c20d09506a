//! Where decisions are kept.
//!
//! Today this is the decision journal: one JSON line per decision, written
//! by a single writer thread with group commit, behind the [`DecisionSink`]
//! seam. It has no integrity protection yet; the hash-chained, signed
//! ledger replaces it behind the same seam.
//!
//! [`DecisionSink`]: crate::decision::DecisionSink

pub mod canonical;
pub mod checkpoint;
pub mod entry;
mod journal;
pub mod store;
pub mod tree;

pub use journal::{Journal, JournalError, JournalWriter};
