//! The decision ledger: every decision and governance event, in order,
//! hash-chained (BLAKE3), in an RFC 6962 Merkle tree (SHA-256), committed
//! in signed batches (C2SP checkpoints, Ed25519) and durable before any
//! answer that depends on it is released.
//!
//! - [`tree`]: pure RFC 6962 math; [`canonical`]: RFC 8785 bytes;
//! - [`entry`]: entry members and the chain rule;
//! - [`checkpoint`]: C2SP signed notes, checkpoints, tlog-proofs;
//! - [`cosignature`]: witness cosignatures (`cosignature/v1`) and witness policies;
//! - [`store`]: the storage trait and its sled implementation;
//! - [`wal`]: the write-ahead file, the commit point in front of the store;
//! - [`sequencer`]: the single writer (signed group commit), a [`DecisionSink`];
//! - [`reader`]: receipts, entries and proofs, and their HTTP routes;
//! - [`tiles`]: the log as C2SP tlog-tiles (checkpoint, tiles, entry bundles);
//! - [`export`]: writes audit bundles (into a directory, or as a tar
//!   stream from a running gateway); [`bundle`]: checks them offline;
//! - [`setting`]: the `entry_signatures` setting as the log records it;
//! - [`verify`]: checks a whole store; [`monitor`]: re-checks it while the
//!   gateway runs; [`erase`]: which payloads an erasure removes;
//! - `pace`: the pacing of long reads on a running gateway; [`seq_set`]:
//!   compact sets of seqs (erasures, absent payloads) for export and verify.
//!
//! [`DecisionSink`]: crate::decision::DecisionSink

pub mod bundle;
pub mod canonical;
pub mod checkpoint;
pub mod cosignature;
pub mod entry;
pub mod erase;
pub mod export;
pub mod history;
pub mod memstore;
pub mod metrics;
pub mod monitor;
pub(crate) mod pace;
pub mod reader;
pub mod seq_set;
pub mod sequencer;
pub mod setting;
pub mod store;
pub mod tally;
pub mod tiles;
pub mod tree;
pub mod verify;
pub mod wal;
