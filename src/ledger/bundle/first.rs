//! Which problem a one-pass verification reports: the one the checks made
//! one after the other (as docs/audit-format.md section 8.1 lists them)
//! would have stopped at. Every check runs over the same pass, so each
//! problem is ranked by its check, then by where in that check's own
//! order it lies, and the first by rank is kept; a check ranked after the
//! problem kept need not run any more.

use super::BundleError;

/// The checks in the order they decide, first first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Check {
    /// The manifest's file list (step 1).
    Files,
    /// Each line of `entries.jsonl` on its own.
    Parse,
    /// The manifest's `prefix`, the checkpoint's size against `to`.
    Range,
    /// Seqs `from..to`, one per line.
    Seqs,
    /// The BLAKE3 chain.
    Chain,
    /// `context.jsonl`.
    Context,
    /// `checkpoints.jsonl` read (its form).
    CheckpointLines,
    /// The key in force at `from` (bundles of the earlier form).
    StartKey,
    /// The `key_rotated` entries followed.
    Follow,
    /// `--current-vkey` against the key the bundle proves.
    Current,
    /// The carried checkpoints opened and linked; context entries proven.
    Checkpoints,
    /// The tree's root at each carried checkpoint.
    Locate,
    /// Streamed decisions and their ends.
    Streams,
    /// `signatures.jsonl`.
    Signatures,
    /// `payloads.jsonl`.
    Payloads,
    /// Signatures the log says must be there.
    SignaturesPresent,
    /// Payloads the log says must be there.
    PayloadsPresent,
}

/// A problem, or one whose message needs what only the end of the pass
/// knows.
pub(super) enum Found {
    /// Said as is.
    Ready(BundleError),
    /// A carried checkpoint's signature did not verify with the key in
    /// force; the message names the key that signed it, among all the
    /// bundle's keys.
    Unopened(super::Unopened),
    /// A `stream_ended` at `seq` names `decision_seq`, an entry of the
    /// bundle that begins no stream still open; the message says what
    /// that entry is.
    NotOpen {
        /// The `stream_ended`'s seq.
        seq: u64,
        /// The entry it names.
        decision_seq: u64,
    },
}

/// The first problem by rank.
#[derive(Default)]
pub(super) struct First {
    kept: Option<((Check, u64), Found)>,
}

impl First {
    /// Whether `check` can still change the outcome.
    pub(super) fn wants(&self, check: Check) -> bool {
        self.kept
            .as_ref()
            .is_none_or(|((kept, _), _)| check <= *kept)
    }

    /// A problem of `check`, at `at` in that check's own order.
    pub(super) fn found(&mut self, check: Check, at: u64, found: Found) {
        if self
            .kept
            .as_ref()
            .is_none_or(|(rank, _)| (check, at) < *rank)
        {
            self.kept = Some(((check, at), found));
        }
    }

    /// [`First::found`] for a ready error.
    pub(super) fn error(&mut self, check: Check, at: u64, error: BundleError) {
        self.found(check, at, Found::Ready(error));
    }

    /// Records the error of a result, if any; the value otherwise.
    pub(super) fn check<T>(
        &mut self,
        check: Check,
        at: u64,
        result: Result<T, BundleError>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.error(check, at, error);
                None
            }
        }
    }

    /// The check of the problem kept, if any.
    pub(super) fn kept(&self) -> Option<Check> {
        self.kept.as_ref().map(|((check, _), _)| *check)
    }

    /// The problem kept, if any.
    pub(super) fn take(self) -> Option<Found> {
        self.kept.map(|(_, found)| found)
    }
}
