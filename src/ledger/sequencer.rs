//! The ledger's single writer: signed group commit.
//!
//! Requests enqueue entries on a bounded channel (a full queue answers
//! `Overloaded` at once). The writer takes everything queued (up to the
//! batch limit), assigns gap-free seqs, seals each entry onto the chain,
//! extends the Merkle tree, signs one checkpoint for the batch, commits
//! the batch to the store (which fsyncs), and only then acknowledges every
//! entry in it. Sealing the next batch overlaps the commit of the current
//! one ([`writer`]). A failed commit acknowledges its batch, and the one
//! sealed on top of it, with an error and rolls the head back, so nothing
//! unlogged is ever served and the next batch reuses the same seqs.
//!
//! The writer is two threads, not tasks: the fsync blocks for milliseconds.
//!
//! A failed commit stops the ledger until the store works again: appends
//! are refused at once (`Unavailable`) while the committer retries with
//! backoff and resumes by itself ([`recovery`]); [`LedgerStatus`] says
//! which, for readiness checks.

mod recovery;
mod rotation;
mod status;
mod writer;

pub use rotation::KeyInForce;
pub use status::{LedgerStatus, Outage};

use super::checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
use super::entry::{EntryBody, Salts};
use super::metrics::LedgerMetrics;
use super::store::{LedgerStore, StoreError, StoreNodes};
use super::tree::{Frontier, NodeSource, leaf_hash};
use crate::decision::{
    Ack, Capture, Decision, DecisionSink, EntrySignatures, PayloadMode, RecordFuture, SinkError,
    StreamEnd,
};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Why the ledger cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored log does not verify against its latest checkpoint.
    #[error("the ledger does not verify at seq {seq}: {reason}")]
    Corrupt {
        /// The first seq found bad (or the size, for a checkpoint mismatch).
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// The writer thread could not be started.
    #[error("cannot start the ledger writer: {0}")]
    Thread(std::io::Error),
    /// The log's last entry rotated to another key than the one configured.
    #[error(
        "the ledger's last entry (seq {seq}) rotates its signing key to {new_vkey}, but \
         ledger.key_file holds the key it rotated from: point ledger.key_file at the new key \
         (after an interrupted online rotation it is in KEYFILE.next)"
    )]
    RotatedAway {
        /// The rotation's seq.
        seq: u64,
        /// The key in force after it.
        new_vkey: String,
    },
}

/// Settings of the sequencer.
pub struct SequencerConfig {
    /// The log's origin (checkpoint first line, key name).
    pub origin: String,
    /// Signs checkpoints.
    pub signer: NoteSigner,
    /// What decision entries commit to.
    pub payload_mode: PayloadMode,
    /// Whether each entry is signed on its own too.
    pub entry_signatures: EntrySignatures,
    /// Entries that may wait for the writer.
    pub queue_len: usize,
    /// Most entries in one commit.
    pub max_batch: usize,
    /// Where commits are counted.
    pub metrics: LedgerMetrics,
}

#[cfg(test)]
impl SequencerConfig {
    /// The settings tests use: full payloads, a metrics registry of its own.
    pub(crate) fn for_tests(
        origin: &str,
        key: &ed25519_dalek::SigningKey,
        entry_signatures: EntrySignatures,
        queue_len: usize,
        max_batch: usize,
    ) -> Self {
        SequencerConfig {
            origin: origin.into(),
            // INVARIANT: tests use valid origins.
            signer: NoteSigner::new(origin, key.clone()).expect("a valid test origin"),
            payload_mode: PayloadMode::Full,
            entry_signatures,
            queue_len,
            max_batch,
            // INVARIANT: a fresh registry has no families to clash with.
            metrics: LedgerMetrics::new().expect("metrics"),
        }
    }
}

type Job = (EntryBody, oneshot::Sender<Result<Ack, SinkError>>);

/// The appending half; implements [`DecisionSink`].
#[derive(Clone)]
pub struct Ledger {
    queue: mpsc::Sender<Job>,
    metrics: LedgerMetrics,
    status: LedgerStatus,
    keys: Arc<rotation::KeySwitch>,
}

/// Why a key rotation is refused before anything is appended.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// Another rotation has not completed yet.
    #[error("another key rotation is in progress")]
    InProgress,
    /// The new key is the key in force.
    #[error("the new key is the key in force")]
    SameKey,
}

/// Owns the writer thread; `close` drains it.
pub struct LedgerWriter {
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The in-memory head: what the next entry builds on.
#[derive(Clone)]
struct Head {
    next_seq: u64,
    prev_hash: [u8; 32],
    frontier: Frontier,
    /// Signs the next batch (a key rotation changes it); shared, as
    /// heads are copied per batch.
    signer: Arc<NoteSigner>,
}

impl Ledger {
    /// Opens the ledger on `store`: checks that the stored tail matches the
    /// latest checkpoint (signature, size, root, chain link), then starts
    /// the writer thread.
    pub fn open(
        store: Arc<dyn LedgerStore>,
        config: SequencerConfig,
    ) -> Result<(Ledger, LedgerWriter), LedgerError> {
        let head = load_head(
            store.as_ref(),
            &config.origin,
            &Arc::new(config.signer.clone()),
        )?;
        let keys = Arc::new(rotation::KeySwitch::new(config.signer.verifier()));
        let metrics = config.metrics.clone();
        metrics.observe_open(
            head.next_seq,
            last_entry_unix_seconds(store.as_ref(), head.next_seq),
        );
        if let Some(bytes) = store.disk_bytes() {
            metrics.set_store_bytes(bytes);
        }
        metrics.set_torn_tail(store.torn_tail_bytes());
        let (queue, jobs) = mpsc::channel(config.queue_len.max(1));
        let status = LedgerStatus::default();
        let writer_status = status.clone();
        let writer_keys = keys.clone();
        let thread = std::thread::Builder::new()
            .name("govgate-ledger".to_owned())
            .spawn(move || writer::run(store, config, head, writer_status, writer_keys, jobs))
            .map_err(LedgerError::Thread)?;
        Ok((
            Ledger {
                queue,
                metrics,
                status,
                keys,
            },
            LedgerWriter {
                thread: Some(thread),
            },
        ))
    }

    /// Enqueues an entry now (so entries are sequenced in call order) and
    /// returns a future that resolves once it is durable.
    pub fn append(&self, body: EntryBody) -> RecordFuture {
        self.submit(body)
    }

    /// Rotates the signing key between two batches: appends `key_rotated`
    /// (committed in a batch the key in force signs); every later batch is
    /// signed by `new`. `by` is the admin principal who asked, recorded in
    /// the entry. The future resolves once the entry is durable; on an
    /// error nothing was switched.
    pub fn rotate_key(
        &self,
        new: NoteSigner,
        by: Option<crate::ledger::entry::ActedBy>,
    ) -> Result<RecordFuture, RotateError> {
        let old_vkey = self.keys.in_force().vkey();
        let new_vkey = new.verifier().vkey();
        if old_vkey == new_vkey {
            return Err(RotateError::SameKey);
        }
        if !self.keys.park(new) {
            return Err(RotateError::InProgress);
        }
        let appended = self.submit(EntryBody::KeyRotated {
            old_vkey,
            new_vkey,
            by,
        });
        let keys = self.keys.clone();
        Ok(Box::pin(async move {
            let acked = appended.await;
            // Sealed and switched, or failed and rolled back: either way
            // nothing is parked any more (a no-op after the switch).
            keys.clear();
            acked
        }))
    }

    /// The key signing the log now (changed by [`Ledger::rotate_key`]).
    pub fn key_in_force(&self) -> NoteVerifier {
        self.keys.in_force()
    }

    /// A view of the key in force that holds no ledger handle.
    pub fn keys(&self) -> KeyInForce {
        KeyInForce(self.keys.clone())
    }

    /// Whether the ledger commits, for readiness checks.
    pub fn status(&self) -> LedgerStatus {
        self.status.clone()
    }

    fn submit(&self, body: EntryBody) -> RecordFuture {
        // Nothing queues for a writer that cannot commit.
        if let Err(reason) = self.status.check() {
            return Box::pin(std::future::ready(Err(SinkError::Unavailable(
                reason.to_string(),
            ))));
        }
        let (ack, acked) = oneshot::channel();
        // The entries ahead of this one, read on every append, so a
        // stalled disk shows as a growing queue.
        self.metrics
            .set_queue_depth(self.queue.max_capacity() - self.queue.capacity());
        let queued = self.queue.try_send((body, ack));
        if let Err(mpsc::error::TrySendError::Full(_)) = queued {
            self.metrics.count_overloaded();
        }
        Box::pin(async move {
            match queued {
                Ok(()) => acked.await.unwrap_or_else(|_| {
                    Err(SinkError::Unavailable("ledger writer stopped".to_owned()))
                }),
                Err(mpsc::error::TrySendError::Full(_)) => Err(SinkError::Overloaded),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    Err(SinkError::Unavailable("ledger is closed".to_owned()))
                }
            }
        })
    }
}

impl DecisionSink for Ledger {
    fn record(&self, decision: Decision) -> RecordFuture {
        self.submit(EntryBody::Decision(Box::new(decision)))
    }

    fn record_end(&self, end: StreamEnd) -> RecordFuture {
        self.submit(EntryBody::StreamEnded(Box::new(end)))
    }
}

impl LedgerWriter {
    /// Waits until every queued entry is committed. Every [`Ledger`]
    /// handle must be dropped first.
    pub fn close(mut self) {
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("ledger writer panicked");
        }
    }
}

fn corrupt(seq: u64, reason: impl Into<String>) -> LedgerError {
    LedgerError::Corrupt {
        seq,
        reason: reason.into(),
    }
}

/// The Unix time of the last of `size` entries, which the latest
/// checkpoint carries too (none for an empty or unreadable log: the head
/// check that follows names the problem).
fn last_entry_unix_seconds(store: &dyn LedgerStore, size: u64) -> Option<f64> {
    let bytes = store.entry(size.checked_sub(1)?).ok()??;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let time = super::export::select::UtcTime::parse(value["time"].as_str()?).ok()?;
    Some(time.unix_seconds())
}

/// Rebuilds the head from the store and checks it against the latest checkpoint.
fn load_head(
    store: &dyn LedgerStore,
    origin: &str,
    signer: &Arc<NoteSigner>,
) -> Result<Head, LedgerError> {
    let verifier = &signer.verifier();
    let size = store.size()?;
    if size == 0 {
        return Ok(Head {
            next_seq: 0,
            prev_hash: [0; 32],
            frontier: Frontier::new(),
            signer: signer.clone(),
        });
    }
    let (checkpoint_size, note) = store
        .latest_checkpoint()?
        .ok_or_else(|| corrupt(0, "entries but no checkpoint"))?;
    let last = store
        .entry(size - 1)?
        .ok_or_else(|| corrupt(size - 1, "entry missing"))?;
    // Signing on with the key the log rotated away from would leave a log
    // whose rotations do not lead to its signer.
    if let Some((old_vkey, new_vkey)) = super::entry::key_rotation(&last)
        && old_vkey == verifier.vkey()
        && new_vkey != old_vkey
    {
        return Err(LedgerError::RotatedAway {
            seq: size - 1,
            new_vkey,
        });
    }
    // Right after a key rotation, the latest checkpoint is still signed by
    // the old key, which the rotation entry names.
    let rotated_from = super::entry::key_rotation(&last)
        .filter(|(_, new_vkey)| *new_vkey == verifier.vkey())
        .and_then(|(old_vkey, _)| NoteVerifier::parse(&old_vkey).ok());
    let body = verifier
        .open(&note)
        .or_else(|err| {
            rotated_from
                .as_ref()
                .map_or(Err(err), |old| old.open(&note))
        })
        .map_err(|err| {
            corrupt(
                checkpoint_size.saturating_sub(1),
                format!("latest checkpoint: {err}"),
            )
        })?;
    let checkpoint = Checkpoint::parse(body)
        .map_err(|err| corrupt(checkpoint_size.saturating_sub(1), err.to_string()))?;
    if checkpoint.origin != origin {
        return Err(corrupt(
            size - 1,
            format!(
                "the store belongs to log `{}`, not `{origin}`",
                checkpoint.origin
            ),
        ));
    }
    if checkpoint.size != size || checkpoint_size != size {
        return Err(corrupt(
            checkpoint.size.min(size),
            format!(
                "{size} entries stored but the latest checkpoint covers {}",
                checkpoint.size
            ),
        ));
    }
    let frontier = Frontier::load(&StoreNodes(store), size)?;
    if frontier.root() != checkpoint.root {
        return Err(corrupt(
            size - 1,
            "stored tree does not match the latest checkpoint's root",
        ));
    }
    if leaf_hash(&last) != StoreNodes(store).node(0, size - 1)? {
        return Err(corrupt(
            size - 1,
            "entry bytes do not match their leaf hash",
        ));
    }
    Ok(Head {
        next_seq: size,
        prev_hash: *blake3::hash(&last).as_bytes(),
        frontier,
        signer: signer.clone(),
    })
}

/// The erasable payload record: `request salt (32) || response salt (32) ||
/// request capture length (u32 BE) || request capture || response capture`.
pub fn payload_record(salts: &Salts, decision: &Decision) -> Vec<u8> {
    payload_record_of(salts, &decision.request, &decision.response)
}

/// The payload record of a `stream_ended` entry: the same layout, with an
/// empty request capture (its request is in the decision's record).
pub fn stream_end_payload_record(salts: &Salts, end: &StreamEnd) -> Vec<u8> {
    payload_record_of(salts, &Capture::default(), &end.response)
}

fn payload_record_of(salts: &Salts, request: &Capture, response: &Capture) -> Vec<u8> {
    let request = request.bytes();
    let response = response.bytes();
    let mut record = Vec::with_capacity(68 + request.len() + response.len());
    record.extend_from_slice(&salts.request);
    record.extend_from_slice(&salts.response);
    record.extend_from_slice(&(request.len() as u32).to_be_bytes());
    record.extend_from_slice(request);
    record.extend_from_slice(response);
    record
}

#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod rotation_tests;
#[cfg(test)]
mod tests;
