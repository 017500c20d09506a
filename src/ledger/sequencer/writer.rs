//! The two writer threads: the sealer and the committer, in a pipeline.
//!
//! The sealer takes what is queued, seals it onto the chain, extends the
//! tree and signs the batch's checkpoint; the committer writes and fsyncs
//! sealed batches and acknowledges them. While batch N is being fsynced,
//! batch N+1 is sealed, so the CPU work and the disk wait overlap. At most
//! one sealed batch waits for the committer (a channel of one), which
//! bounds what a failure can take down with it.
//!
//! Failure: batch N+1 was sealed on top of N, so when N fails, N+1 must
//! fail too. Every sealed batch carries the epoch it was sealed in; a
//! failed commit starts a new epoch and publishes the head of the last
//! durable batch. The committer fails batches of an older epoch unseen;
//! the sealer, on seeing the new epoch, restarts from the published head,
//! reusing the failed seqs.
//!
//! After a failed commit the ledger is not committing ([`LedgerStatus`]):
//! the sealer fails what it takes without sealing it, the committer fails
//! what reaches it, and between those it tries to resume ([`recovery`]),
//! with backoff. Resuming starts a new epoch too, so the sealer goes back
//! to the durable head whatever it sealed meanwhile.

use super::recovery::{Backoff, Stuck, try_resume};
use super::rotation::KeySwitch;
use super::{Head, Job, LedgerStatus, SequencerConfig};
use crate::decision::{Ack, EntrySignatures, PayloadMode, SinkError};
use crate::ledger::checkpoint::{Checkpoint, NoteSigner};
use crate::ledger::entry::{EntryBody, Salts, seal};
use crate::ledger::metrics::Committed;
use crate::ledger::store::{CommitBatch, LedgerStore};
use crate::ledger::tally::Tallied;
use rand::RngCore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// How often at most the committer asks the store for its size on disk
/// (a directory listing and a `stat` per file).
const DISK_BYTES_EVERY: Duration = Duration::from_secs(1);
/// How often an idle committer asks the store whether it failed in the
/// background.
const FAILURE_CHECK_EVERY: Duration = Duration::from_secs(1);

/// What the committer tells the sealer.
pub(super) struct Durable {
    /// Bumped by every failed commit, and again on resuming.
    epoch: AtomicU64,
    /// The head after the last durable batch.
    head: Mutex<Head>,
    /// Whether commits can happen at all.
    status: LedgerStatus,
}

impl Durable {
    pub(super) fn new(head: Head, status: LedgerStatus) -> Self {
        Self {
            epoch: AtomicU64::new(0),
            head: Mutex::new(head),
            status,
        }
    }

    fn head(&self) -> Head {
        self.head
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A batch ready to be written.
pub(super) struct Sealed {
    epoch: u64,
    /// Shared with the store, which may keep it in memory.
    batch: Arc<CommitBatch>,
    acks: Vec<oneshot::Sender<Result<Ack, SinkError>>>,
    /// The head once this batch is durable.
    head: Head,
    /// The time its entries carry.
    time: SystemTime,
    /// Its decisions, for the tally once durable.
    decided: Vec<Tallied>,
}

/// Seals queued entries batch by batch until the queue closes.
pub(super) fn seal_loop(
    config: &SequencerConfig,
    mut head: Head,
    durable: &Durable,
    keys: &KeySwitch,
    mut jobs: mpsc::Receiver<Job>,
    sealed: SyncSender<Sealed>,
) {
    let mut epoch = 0;
    let mut batch: Vec<Job> = Vec::with_capacity(config.max_batch);
    while let Some(job) = jobs.blocking_recv() {
        fill_batch(
            &mut batch,
            job,
            &mut jobs,
            config.max_batch,
            MAX_BATCH_CAPTURE_BYTES,
        );
        // Status before epoch: the committer bumps the epoch before it
        // reports that it commits again.
        if let Err(reason) = durable.status.check() {
            let acks: Vec<_> = batch.drain(..).map(|(_, ack)| ack).collect();
            fail(acks, &reason.to_string());
            continue;
        }
        let current = durable.epoch.load(Ordering::Acquire);
        if current != epoch {
            head = durable.head();
            epoch = current;
            keys.set_in_force(head.signer.verifier());
        }
        let before = head.clone();
        let (bodies, acks): (Vec<EntryBody>, Vec<_>) = batch.drain(..).unzip();
        let time = SystemTime::now();
        match seal_batch(config, &mut head, &bodies, time) {
            Ok(commit) => {
                switch_key(keys, &mut head, &bodies);
                let next = Sealed {
                    epoch,
                    batch: Arc::new(commit),
                    acks,
                    head: head.clone(),
                    time,
                    decided: tallied(config, &bodies),
                };
                if sealed.send(next).is_err() {
                    return;
                }
            }
            Err(err) => {
                tracing::error!(error = %err, entries = acks.len(), "ledger batch cannot be sealed; answers withheld");
                head = before;
                fail(acks, &err);
            }
        }
    }
}

/// Where the tally counts the batch's decisions (none without a tally).
fn tallied(config: &SequencerConfig, bodies: &[EntryBody]) -> Vec<Tallied> {
    let Some(tally) = config.metrics.tally() else {
        return Vec::new();
    };
    bodies
        .iter()
        .filter_map(|body| match body {
            EntryBody::Decision(decision) => {
                Some(tally.key(decision.model.as_deref(), decision.outcome))
            }
            _ => None,
        })
        .collect()
}

/// Whether the batch's last job is a key rotation.
/// Capture bytes after which a batch takes no more entries. A batch is one
/// write-ahead record, whose lengths are 32-bit: with captures of at most
/// 64 MiB (`limits.capture_bytes`), two to a decision, a record stays
/// below 512 MiB whatever `ledger.max_batch` is.
const MAX_BATCH_CAPTURE_BYTES: usize = 256 << 20;

/// Puts `first` and what is queued behind it into `batch`: at most
/// `max_batch` entries, and none more once their captures reach
/// `max_bytes`. A key rotation ends its batch: the checkpoint the old key
/// signs last then ends with it, as the log's readers expect.
fn fill_batch(
    batch: &mut Vec<Job>,
    first: Job,
    jobs: &mut mpsc::Receiver<Job>,
    max_batch: usize,
    max_bytes: usize,
) {
    let mut bytes = captured_bytes(&first.0);
    batch.push(first);
    while batch.len() < max_batch && bytes < max_bytes && !ends_batch(batch) {
        match jobs.try_recv() {
            Ok(job) => {
                bytes += captured_bytes(&job.0);
                batch.push(job);
            }
            Err(_) => break,
        }
    }
}

/// The captured body bytes an entry carries into its payload.
fn captured_bytes(body: &EntryBody) -> usize {
    match body {
        EntryBody::Decision(decision) => {
            decision.request.bytes().len() + decision.response.bytes().len()
        }
        EntryBody::StreamEnded(end) => end.response.bytes().len(),
        _ => 0,
    }
}

fn ends_batch(batch: &[Job]) -> bool {
    matches!(batch.last(), Some((EntryBody::KeyRotated { .. }, _)))
}

/// After sealing a batch that rotates the key: later batches are signed
/// by the new key.
fn switch_key(keys: &KeySwitch, head: &mut Head, bodies: &[EntryBody]) {
    if let Some(EntryBody::KeyRotated { new_vkey, .. }) = bodies.last()
        && let Some(signer) = keys.take(new_vkey)
    {
        keys.set_in_force(signer.verifier());
        head.signer = Arc::new(signer);
    }
}

/// Writes sealed batches and acknowledges them until the sealer stops.
pub(super) fn commit_loop(
    store: &dyn LedgerStore,
    config: &SequencerConfig,
    durable: &Durable,
    sealed: Receiver<Sealed>,
) {
    let mut disk_bytes_read: Option<Instant> = None;
    // `Some` while not committing.
    let mut stopped: Option<Backoff> = None;
    loop {
        // Stopped, a retry is due after `wait`; committing, or given up
        // (failing whatever still comes), nothing is due.
        let received = match (stopped.as_ref(), stopped.as_ref().and_then(Backoff::wait)) {
            (_, Some(wait)) => sealed.recv_timeout(wait),
            (None, None) => sealed.recv_timeout(FAILURE_CHECK_EVERY),
            (Some(_), None) => sealed.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let next = match (received, stopped.as_mut()) {
            (Err(RecvTimeoutError::Disconnected), _) => return,
            (Err(RecvTimeoutError::Timeout), Some(backoff)) => {
                if retry(store, config, durable, backoff) {
                    stopped = None;
                }
                continue;
            }
            (Err(RecvTimeoutError::Timeout), None) => {
                // Idle: a store failing in the background stops the
                // ledger now, not at the next request, so readiness says
                // so and recovery starts without waiting for traffic.
                if let Some(reason) = store.failure() {
                    tracing::error!(%reason, "ledger store failed in the background; answers withheld; retrying");
                    durable.epoch.fetch_add(1, Ordering::AcqRel);
                    durable.status.stop(reason);
                    config.metrics.set_committing(false);
                    stopped = Some(Backoff::new());
                }
                continue;
            }
            (Ok(next), stopped) => {
                if next.epoch != durable.epoch.load(Ordering::Acquire) {
                    fail(next.acks, "an earlier ledger commit failed");
                    continue;
                }
                if stopped.is_some() {
                    let reason = durable
                        .status
                        .check()
                        .err()
                        .map(|reason| reason.to_string())
                        .unwrap_or_default();
                    fail(next.acks, &reason);
                    continue;
                }
                next
            }
        };
        let entries = next.acks.len();
        let started = std::time::Instant::now();
        let result = store.commit_shared(&next.batch);
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                config.metrics.observe_commit(&committed(&next), seconds);
                let first_seq = next.head.next_seq - entries as u64;
                *durable.head.lock().unwrap_or_else(PoisonError::into_inner) = next.head;
                for (index, ack) in next.acks.into_iter().enumerate() {
                    // A requester that went away no longer needs its ack.
                    let _ = ack.send(Ok(Ack {
                        seq: Some(first_seq + index as u64),
                        time: Some(next.time),
                    }));
                }
                // After the acks: no answer waits for the tally's lock or
                // the directory walk.
                if let Some(tally) = config.metrics.tally() {
                    tally.add(next.time, &next.decided);
                }
                if disk_bytes_read.is_none_or(|at| at.elapsed() >= DISK_BYTES_EVERY) {
                    disk_bytes_read = Some(Instant::now());
                    if let Some(bytes) = store.disk_bytes() {
                        config.metrics.set_store_bytes(bytes);
                    }
                }
            }
            Err(err) => {
                config.metrics.observe_failed_commit(seconds);
                tracing::error!(error = %err, entries, "ledger commit failed; answers withheld; retrying");
                // The durable head is unchanged; a new epoch sends the
                // sealer back to it.
                durable.epoch.fetch_add(1, Ordering::AcqRel);
                durable.status.stop(err.to_string());
                config.metrics.set_committing(false);
                fail(next.acks, &err.to_string());
                stopped = Some(Backoff::new());
            }
        }
    }
}

/// One try at resuming; `true` once the ledger commits again.
fn retry(
    store: &dyn LedgerStore,
    config: &SequencerConfig,
    durable: &Durable,
    backoff: &mut Backoff,
) -> bool {
    match try_resume(store, config, &durable.head()) {
        Ok(()) => {
            // Whatever the sealer sealed meanwhile was failed: a new epoch
            // sends it back to the durable head, before it may seal again.
            durable.epoch.fetch_add(1, Ordering::AcqRel);
            durable.status.resume();
            config.metrics.set_committing(true);
            config.metrics.count_recovery();
            tracing::warn!(size = durable.head().next_seq, "ledger commits again");
            true
        }
        Err(Stuck::Retry(err)) => {
            backoff.failed();
            tracing::warn!(error = %err, retry_in = ?backoff.wait().unwrap_or_default(), "ledger store still failing");
            durable.status.stop(err.to_string());
            false
        }
        Err(Stuck::GiveUp(reason)) => {
            backoff.give_up();
            tracing::error!(%reason, "CRITICAL: the ledger cannot resume; it stays stopped until the store is checked");
            durable.status.stop(reason);
            false
        }
    }
}

/// What a sealed batch adds to the ledger's metrics once durable.
fn committed(sealed: &Sealed) -> Committed {
    let bytes = |records: &[(u64, Vec<u8>)]| records.iter().map(|(_, b)| b.len() as u64).sum();
    Committed {
        entries: sealed.acks.len(),
        size: sealed.head.next_seq,
        time: sealed.time,
        entry_bytes: bytes(&sealed.batch.entries),
        payload_bytes: bytes(&sealed.batch.payloads),
    }
}

fn fail(acks: Vec<oneshot::Sender<Result<Ack, SinkError>>>, reason: &str) {
    for ack in acks {
        let _ = ack.send(Err(SinkError::Unavailable(reason.to_owned())));
    }
}

/// Seals and signs one batch onto `head`.
fn seal_batch(
    config: &SequencerConfig,
    head: &mut Head,
    bodies: &[EntryBody],
    now: SystemTime,
) -> Result<CommitBatch, String> {
    let mut batch = CommitBatch {
        entries: Vec::with_capacity(bodies.len()),
        ..CommitBatch::default()
    };
    for body in bodies {
        let seq = head.next_seq;
        let salts = (config.payload_mode != PayloadMode::None).then(random_salts);
        let sealed = seal(
            seq,
            now,
            &config.origin,
            &head.prev_hash,
            body,
            config.payload_mode,
            salts.as_ref(),
        )
        .map_err(|err| format!("entry {seq}: {err}"))?;
        batch.nodes.extend(head.frontier.push(sealed.leaf_hash));
        if body.is_governance() {
            batch.governance.push(seq);
        }
        match (body, config.payload_mode, &salts) {
            (EntryBody::Decision(decision), mode, salts) => {
                batch.decisions.push((*decision.id.as_bytes(), seq));
                if let Some(subject) = &decision.subject {
                    batch.subjects.push((subject.0, seq));
                }
                if let (PayloadMode::Full, Some(salts)) = (mode, salts) {
                    batch
                        .payloads
                        .push((seq, super::payload_record(salts, decision)));
                }
            }
            (EntryBody::StreamEnded(end), PayloadMode::Full, Some(salts)) => {
                batch
                    .payloads
                    .push((seq, super::stream_end_payload_record(salts, end)));
            }
            _ => {}
        }
        head.prev_hash = sealed.entry_hash;
        head.next_seq += 1;
        batch.entries.push((seq, sealed.canonical));
    }
    if config.entry_signatures == EntrySignatures::On {
        batch.signatures = sign_entries(&head.signer, &batch.entries)?;
    }
    let checkpoint = Checkpoint {
        origin: config.origin.clone(),
        size: head.next_seq,
        root: head.frontier.root(),
    };
    let note = head
        .signer
        .sign(&checkpoint.body())
        .map_err(|err| err.to_string())?;
    batch.checkpoint = (checkpoint.size, note);
    Ok(batch)
}

/// Batches at least this large are signed on several threads.
const PARALLEL_SIGNING_FROM: usize = 32;

/// Per-entry signatures of a batch, in order. An Ed25519 signature costs
/// about ten times the sealing of an entry, so a large batch is split
/// across the available cores (the chain is already sealed; signatures
/// depend on nothing but their entry).
fn sign_entries(signer: &NoteSigner, entries: &[(u64, Vec<u8>)]) -> Result<Vec<[u8; 64]>, String> {
    let sign = |part: &[(u64, Vec<u8>)]| -> Vec<[u8; 64]> {
        part.iter()
            .map(|(_, entry)| signer.sign_entry(entry))
            .collect()
    };
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if workers < 2 || entries.len() < PARALLEL_SIGNING_FROM {
        return Ok(sign(entries));
    }
    let parts: Vec<&[(u64, Vec<u8>)]> = entries.chunks(entries.len().div_ceil(workers)).collect();
    std::thread::scope(|scope| {
        // This thread signs the first part; the others get a thread each,
        // or are signed here too if no thread can be started.
        let others: Vec<_> = parts[1..]
            .iter()
            .map(|part| {
                std::thread::Builder::new()
                    .name("govgate-ledger-sign".to_owned())
                    .spawn_scoped(scope, move || sign(part))
                    .map_err(|_| *part)
            })
            .collect();
        let mut signatures = sign(parts[0]);
        for other in others {
            match other {
                Ok(handle) => signatures.extend(
                    handle
                        .join()
                        .map_err(|_| "a signing thread panicked".to_owned())?,
                ),
                Err(part) => signatures.extend(sign(part)),
            }
        }
        Ok(signatures)
    })
}

fn random_salts() -> Salts {
    let mut salts = Salts {
        request: [0; 32],
        response: [0; 32],
    };
    let mut rng = rand::rng();
    rng.fill_bytes(&mut salts.request);
    rng.fill_bytes(&mut salts.response);
    salts
}

/// Runs both threads: returns once the queue is closed and everything
/// sealed is committed or failed.
pub(super) fn run(
    store: Arc<dyn LedgerStore>,
    config: SequencerConfig,
    head: Head,
    status: LedgerStatus,
    keys: Arc<KeySwitch>,
    jobs: mpsc::Receiver<Job>,
) {
    let durable = Durable::new(head.clone(), status);
    let (to_committer, sealed) = std::sync::mpsc::sync_channel(1);
    std::thread::scope(|scope| {
        let committer = std::thread::Builder::new()
            .name("govgate-ledger-commit".to_owned())
            .spawn_scoped(scope, || {
                commit_loop(store.as_ref(), &config, &durable, sealed)
            });
        match committer {
            Ok(_) => seal_loop(&config, head, &durable, &keys, jobs, to_committer),
            Err(err) => {
                tracing::error!(error = %err, "cannot start the ledger committer");
            }
        }
    });
}

#[cfg(test)]
mod batch_tests {
    use super::*;
    use crate::decision::Capture;
    use crate::decision::fixture::streamed_chat;

    fn with_captures(bytes: usize) -> EntryBody {
        let body = bytes::Bytes::from(vec![b'x'; bytes]);
        EntryBody::Decision(Box::new(crate::decision::Decision {
            request: Capture::of_complete(&body, bytes),
            response: Capture::of_complete(&body, bytes),
            ..streamed_chat()
        }))
    }

    /// Batch sizes `fill_batch` makes of `sizes` (capture bytes per side)
    /// queued at once.
    fn batches(sizes: &[usize], max_batch: usize, max_bytes: usize) -> Vec<usize> {
        let (tx, mut rx) = mpsc::channel(sizes.len().max(1));
        for size in sizes {
            let (ack, _) = oneshot::channel();
            tx.try_send((with_captures(*size), ack)).ok().unwrap();
        }
        drop(tx);
        let mut made = Vec::new();
        let mut batch = Vec::new();
        while let Ok(job) = rx.try_recv() {
            fill_batch(&mut batch, job, &mut rx, max_batch, max_bytes);
            made.push(batch.len());
            batch.clear();
        }
        made
    }

    #[test]
    fn a_batch_ends_at_its_entry_count_or_once_its_captures_reach_the_limit() {
        // 2 x 10 bytes a decision: the limit of 50 is reached by the third.
        assert_eq!(batches(&[10; 7], 100, 50), [3, 3, 1]);
        assert_eq!(batches(&[10; 7], 2, 1000), [2, 2, 2, 1]);
        // One decision beyond the limit is a batch of its own.
        assert_eq!(batches(&[100, 1, 1], 100, 50), [1, 2]);
        // Entries without captures count by number only.
        assert_eq!(batches(&[0; 5], 100, 50), [5]);
    }
}
