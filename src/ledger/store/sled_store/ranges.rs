//! Range reads for verification: each pack or commit row is read once for
//! all the seqs it holds, where a lookup per seq would walk the sled tree
//! again every time.

use super::{Engine, NODES, SIGNATURES, be_u64, nodes_before, pack_holding, tagged_key};
use crate::ledger::store::packing::{record_count, unpack};
use crate::ledger::store::{Hash, StoreError};
use std::ops::ControlFlow;

/// Extra lookups of each row a range read returns (see [`touch`]).
const TOUCHES: usize = 15;

/// Looks `key` up [`TOUCHES`] more times, so that sled lets go of the
/// pages a long read has passed.
///
/// sled 0.34's page cache is 256 LRU shards (by page id), and it records
/// each page access in its shard's queue, applying the queue (and paging
/// out what is over capacity) only once 64 accesses are waiting there.
/// A scan touches each leaf page about once, so up to 256 x 64 pages
/// stay in memory whatever `cache_capacity` says: about 400 MB of 32 KB
/// packs, measured (heaptrack: live heap of deserialised nodes). Looking
/// the row up again fills its page's queue, so the shard applies it and
/// evicts within a few rows; the pages are then bounded by the cache
/// capacity (measured: a whole-log verify of 300 000 entries peaks at
/// 196 MB instead of 398 MB, at the same speed).
fn touch(tree: &sled::Tree, key: &[u8]) -> Result<(), StoreError> {
    for _ in 0..TOUCHES {
        tree.contains_key(key)?;
    }
    Ok(())
}

pub(super) fn entries_in(
    tree: &sled::Tree,
    from: u64,
    to: u64,
    f: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    if from >= to {
        return Ok(());
    }
    // The pack holding `from` may start below it.
    let start = pack_holding(tree, from)?.map_or(from, |(first, _)| first);
    for row in tree.range(start.to_be_bytes()..to.to_be_bytes()) {
        let (key, pack) = row?;
        touch(tree, &key)?;
        let first = be_u64(&key)?;
        for index in from.saturating_sub(first)..record_count(&pack).unwrap_or(0) {
            let seq = first + index;
            if seq >= to {
                return Ok(());
            }
            // A record that does not unpack is not there, as for `entry`.
            if let Some(bytes) = unpack(&pack, index)
                && f(seq, bytes).is_break()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The `ledger` rows `tag` that hold seqs of `from..to`, in order, each
/// with the first seq of the next row (where its own seqs end at the latest).
fn rows_for(
    store: &Engine,
    tag: u8,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, sled::IVec, u64)>, StoreError> {
    let start = store
        .row_at_or_before(tag, from)?
        .map_or(from, |(first, _)| first);
    let mut rows: Vec<(u64, sled::IVec, u64)> = Vec::new();
    for row in store
        .main
        .range(tagged_key(tag, start)..tagged_key(tag, to))
    {
        let (key, value) = row?;
        touch(&store.main, &key)?;
        let first = be_u64(&key[1..])?;
        if let Some(last) = rows.last_mut() {
            last.2 = first;
        }
        rows.push((first, value, u64::MAX));
    }
    Ok(rows)
}

pub(super) fn leaf_nodes_in(
    store: &Engine,
    from: u64,
    to: u64,
    f: &mut dyn FnMut(u64, &[Hash]),
) -> Result<(), StoreError> {
    let rows = rows_for(store, NODES, from, to)?;
    let mut rows = rows.iter().peekable();
    // A leaf finishes at most 64 nodes (levels 0 to 63).
    let mut found = [[0u8; 32]; 64];
    for leaf in from..to {
        while rows.next_if(|(_, _, next)| *next <= leaf).is_some() {}
        let mut count = 0;
        if let Some((first, nodes, _)) = rows.peek().filter(|(first, _, _)| *first <= leaf) {
            // As `node` finds them: the leaf's nodes in its commit's row.
            let start = (nodes_before(leaf) - nodes_before(*first)) as usize * 32;
            let finished = 1 + (leaf + 1).trailing_zeros() as usize;
            let stored = nodes.get(start..).unwrap_or_default().chunks_exact(32);
            for (slot, hash) in found.iter_mut().zip(stored.take(finished)) {
                slot.copy_from_slice(hash);
                count += 1;
            }
        }
        f(leaf, &found[..count]);
    }
    Ok(())
}

pub(super) fn signatures_in(
    store: &Engine,
    from: u64,
    to: u64,
    f: &mut dyn FnMut(u64, &[u8; 64]),
) -> Result<(), StoreError> {
    for (first, signatures, next) in rows_for(store, SIGNATURES, from, to)? {
        // As `entry_signature` finds them: seq in the last row at or below it.
        for (seq, signature) in (first..next.min(to)).zip(signatures.chunks_exact(64)) {
            if seq >= from
                && let Ok(signature) = <&[u8; 64]>::try_from(signature)
            {
                f(seq, signature);
            }
        }
    }
    Ok(())
}
