//! Getting the sled store working again after a failed commit: reopening
//! the database in place, probing it with a write that changes nothing,
//! and discarding what a failed commit left on disk after all.

use super::index::DECISION;
use super::{
    CHECKPOINT, Engine, FORMAT, FORMAT_KEY, GOVERNANCE, NODES, SIGNATURES, SUBJECT, SledStore,
    remove_packs_from, tagged_key,
};
use crate::ledger::store::StoreError;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

/// Closes the database and opens it again from disk; returns the size of
/// the latest checkpoint stored. Reads stay bounded by what was visible.
pub(super) fn reopen(store: &SledStore) -> Result<u64, StoreError> {
    // sled locks its data file, so the old database must be gone before
    // the directory opens again: take it out first. A reader still holding
    // it finishes on it; until then the open fails, and is tried again.
    let old = store
        .engine
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    // Dropping it flushes nothing more after an I/O error: sled keeps the
    // error and refuses to write.
    drop(old);
    let engine = Engine::open(&store.dir, store.cache_bytes)?;
    let stored = engine.stored_size()?;
    // Less than before means acknowledged entries are gone: show what is
    // there. More is a failed batch that reached the disk: the writer
    // decides, and until it does nobody reads it.
    store.visible.fetch_min(stored, Ordering::AcqRel);
    *store.engine.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(engine));
    Ok(stored)
}

/// Rewrites the format mark with its own value and syncs: a write sled
/// must log and flush, which changes no content.
pub(super) fn probe(store: &SledStore) -> Result<(), StoreError> {
    let engine = store.engine()?;
    engine.main.insert(FORMAT_KEY, FORMAT)?;
    engine.sync(&store.dir)
}

/// Removes every entry above `size` and all its commits wrote. The
/// `ledger` rows go in one atomic batch with the checkpoints that mark
/// the commits, so a crash in between leaves either all of them or only
/// packs above the latest checkpoint, which opening removes.
pub(super) fn discard_above(store: &SledStore, size: u64) -> Result<u64, StoreError> {
    let engine = store.engine()?;
    let stored = engine.stored_size()?;
    if stored <= size {
        return Ok(0);
    }
    if size > 0 && engine.main.get(tagged_key(CHECKPOINT, size))?.is_none() {
        return Err(StoreError::Corrupt(format!(
            "no checkpoint of size {size} to go back to"
        )));
    }
    let mut rows = sled::Batch::default();
    for tag in [NODES, SIGNATURES, GOVERNANCE] {
        for row in engine
            .main
            .range(tagged_key(tag, size)..=tagged_key(tag, u64::MAX))
        {
            rows.remove(row?.0);
        }
    }
    for row in engine
        .main
        .range(tagged_key(CHECKPOINT, size + 1)..=tagged_key(CHECKPOINT, u64::MAX))
    {
        rows.remove(row?.0);
    }
    // Index rows are keyed by id second first: every one is looked at.
    // This runs only after a failed commit reached the disk after all.
    for row in engine.main.scan_prefix([DECISION]) {
        let (key, _) = row?;
        let first_seq = key
            .get(5..13)
            .and_then(|seq| <[u8; 8]>::try_from(seq).ok())
            .map(u64::from_be_bytes);
        if first_seq.is_some_and(|first| first >= size) {
            rows.remove(key);
        }
    }
    for row in engine.main.scan_prefix([SUBJECT]) {
        let (key, _) = row?;
        let seq = key
            .get(33..41)
            .and_then(|seq| <[u8; 8]>::try_from(seq).ok())
            .map(u64::from_be_bytes);
        if seq.is_some_and(|seq| seq >= size) {
            rows.remove(key);
        }
    }
    engine.main.apply_batch(rows)?;
    remove_packs_from(&engine.entries, size)?;
    remove_packs_from(&engine.payloads, size)?;
    engine.sync(&store.dir)?;
    store.visible.fetch_min(size, Ordering::AcqRel);
    store.recent.forget_from(size);
    Ok(stored - size)
}
