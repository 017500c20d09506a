//! The ledger as a C2SP tlog-tiles log: tile addresses, and the bytes of a
//! hash tile or an entry bundle read from the store. The HTTP side (routes,
//! caching, the served checkpoint) is in [`serve`].
//!
//! SPEC (C2SP tlog-tiles, <https://c2sp.org/tlog-tiles>):
//! - tiles are `tile/<L>/<N>[.p/<W>]`, entry bundles `tile/entries/<N>[.p/<W>]`;
//!   `<L>` is decimal 0 to 63 without leading zeroes; `<N>` is zero-padded
//!   3-digit path elements, all but the last prefixed with `x`
//!   (1234067 is `x001/x234/067`); `<W>` is decimal 1 to 255 without
//!   leading zeroes, present only for partial tiles;
//! - "the n-th tile at level l [...] is the sequence of the following
//!   Merkle Tree Hashes, with i from 0 to 255:
//!   MTH(D[(n * 256 + i) * 256**l : (n * 256 + i + 1) * 256**l])";
//! - "Entry bundles are sequences of big-endian uint16 length-prefixed log
//!   entries. Each entry in a bundle hashes to the corresponding entry in
//!   the corresponding level 0 Merkle Tree tile."
//!
//! Here a log entry is an entry's canonical bytes (RFC 8785), exactly the
//! leaf input of the tree the checkpoints sign (`leaf = SHA-256(0x00 ||
//! canonical bytes)`, docs/audit-format.md section 3), so every tile hashes
//! to the signed root. Payloads and per-entry signatures are not in bundles.
//!
//! Deviations: none in format. An entry longer than 65,535 bytes cannot be
//! length-prefixed; its bundle is refused ([`TileError::EntryTooLarge`]).

pub mod cache;
pub mod metrics;
pub mod serve;

use super::store::{LedgerStore, StoreError};
use std::ops::ControlFlow;

/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// Tree levels one tile spans: `log2(TILE_WIDTH)`.
const TILE_HEIGHT: u32 = 8;
/// The highest `<L>` the spec allows.
const MAX_LEVEL: u8 = 63;
/// Path elements of the longest `<N>` (`u64::MAX` has 20 digits).
const MAX_INDEX_ELEMENTS: usize = 7;

/// What a tile holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileKind {
    /// Merkle tree hashes at tile level `level` (tree level `8 * level`).
    Hashes {
        /// `<L>`.
        level: u8,
    },
    /// An entry bundle (the leaves of level 0 tile `<N>`).
    Entries,
}

/// One tile or entry bundle, as its URL names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileRef {
    /// Hashes or entries.
    pub kind: TileKind,
    /// `<N>`.
    pub index: u64,
    // INVARIANT: 1..=TILE_WIDTH; TILE_WIDTH is a full tile.
    width: u16,
}

/// Why a tile cannot be produced.
#[derive(Debug, thiserror::Error)]
pub enum TileError {
    /// The store failed or holds something it should not (ours).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An entry too long for a uint16 length prefix (ours: the format's limit).
    #[error("entry {seq} is {len} bytes, more than an entry bundle can hold (65535)")]
    EntryTooLarge {
        /// The entry's seq.
        seq: u64,
        /// Its length.
        len: usize,
    },
}

impl TileRef {
    /// A full tile.
    pub fn full(kind: TileKind, index: u64) -> Self {
        Self {
            kind,
            index,
            width: TILE_WIDTH as u16,
        }
    }

    /// A tile of `width` hashes (1 to 256; 256 is the full tile).
    pub fn with_width(kind: TileKind, index: u64, width: u64) -> Option<Self> {
        let width = u16::try_from(width)
            .ok()
            .filter(|w| (1..=TILE_WIDTH as u16).contains(w))?;
        Some(Self { kind, index, width })
    }

    /// Hashes or entries it holds.
    pub fn width(&self) -> u64 {
        u64::from(self.width)
    }

    /// Whether it is a full tile (immutable, and never deleted).
    pub fn is_full(&self) -> bool {
        self.width() == TILE_WIDTH
    }

    /// The tree level of its hashes (0 for leaves and entry bundles).
    fn tree_level(&self) -> u32 {
        match self.kind {
            TileKind::Hashes { level } => u32::from(level) * TILE_HEIGHT,
            TileKind::Entries => 0,
        }
    }

    /// The index, at its tree level, of its first hash.
    fn first(&self) -> Option<u64> {
        self.index.checked_mul(TILE_WIDTH)
    }

    /// Leaves the tree must have for every hash of this tile to exist:
    /// `(index * 256 + width) * 256**level`; `None` if no tree that large
    /// can exist.
    pub fn leaves_needed(&self) -> Option<u64> {
        let end = self.first()?.checked_add(self.width())?;
        let shift = self.tree_level();
        // checked_shl only refuses shifts >= 64; the bits shifted out matter.
        (shift < 64 && end.leading_zeros() >= shift).then(|| end << shift)
    }

    /// Parses the part of a tile URL after `tile/`: `<L>/<N>[.p/<W>]` or
    /// `entries/<N>[.p/<W>]`. `None` for anything the spec does not allow
    /// (or does not write that way: the encoding is canonical).
    pub fn parse(path: &str) -> Option<Self> {
        let (head, rest) = path.split_once('/')?;
        let kind = if head == "entries" {
            TileKind::Entries
        } else {
            TileKind::Hashes {
                level: u8::try_from(decimal(head)?)
                    .ok()
                    .filter(|l| *l <= MAX_LEVEL)?,
            }
        };
        // SPEC: `.p/<W>` follows the last element of `<N>`.
        let (index_path, width) = match rest.split_once(".p/") {
            Some((index_path, width)) => {
                let width = decimal(width).filter(|w| (1..TILE_WIDTH).contains(w))?;
                (index_path, width)
            }
            None => (rest, TILE_WIDTH),
        };
        let index = parse_index(index_path)?;
        Self::with_width(kind, index, width)
    }

    /// The URL path below the log's prefix, e.g. `tile/0/x001/234.p/5`.
    pub fn path(&self) -> String {
        let mut path = match self.kind {
            TileKind::Hashes { level } => format!("tile/{level}/"),
            TileKind::Entries => "tile/entries/".to_owned(),
        };
        path.push_str(&index_path(self.index));
        if !self.is_full() {
            path.push_str(&format!(".p/{}", self.width));
        }
        path
    }
}

/// A decimal number without leading zeroes (and without sign or spaces).
fn decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.len() <= 20
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// `x001/x234/067` -> 1234067. The first element is not `x000` (that
/// would be a second spelling of the same index).
fn parse_index(path: &str) -> Option<u64> {
    let mut index = 0u64;
    let mut elements = path.split('/').peekable();
    let mut count = 0;
    while let Some(element) = elements.next() {
        count += 1;
        if count > MAX_INDEX_ELEMENTS {
            return None;
        }
        let last = elements.peek().is_none();
        let digits = if last {
            element
        } else {
            element.strip_prefix('x')?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: u64 = digits.parse().ok()?;
        if count == 1 && !last && value == 0 {
            return None;
        }
        index = index.checked_mul(1000)?.checked_add(value)?;
    }
    Some(index)
}

/// 1234067 -> `x001/x234/067`.
fn index_path(mut index: u64) -> String {
    let mut groups = Vec::with_capacity(MAX_INDEX_ELEMENTS);
    loop {
        groups.push(index % 1000);
        index /= 1000;
        if index == 0 {
            break;
        }
    }
    let mut path = String::with_capacity(groups.len() * 5);
    for (i, group) in groups.iter().rev().enumerate() {
        if i + 1 < groups.len() {
            path.push_str(&format!("x{group:03}/"));
        } else {
            path.push_str(&format!("{group:03}"));
        }
    }
    path
}

/// The bytes of `tile`, read from `store` (blocking). The caller checks
/// first that the tree is large enough ([`TileRef::leaves_needed`] at most
/// the size of a checkpoint the store holds); a hash or entry missing
/// below that is corruption.
pub fn read(store: &dyn LedgerStore, tile: TileRef) -> Result<Vec<u8>, TileError> {
    let first = tile
        .first()
        .ok_or_else(|| StoreError::Corrupt(format!("tile index {} too large", tile.index)))?;
    let end = first + tile.width();
    match tile.kind {
        TileKind::Hashes { .. } => {
            // INVARIANT: tree_level() <= 8 * 63 only for parsed tiles; a
            // level above 63 has no nodes and leaves_needed() refused it.
            let level = u8::try_from(tile.tree_level())
                .map_err(|_| StoreError::Corrupt("tile level beyond the tree".to_owned()))?;
            let mut bytes = Vec::with_capacity(tile.width() as usize * 32);
            for index in first..end {
                let hash = store.node(level, index)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("missing tree node ({level}, {index})"))
                })?;
                bytes.extend_from_slice(&hash);
            }
            Ok(bytes)
        }
        TileKind::Entries => {
            let mut bytes = Vec::with_capacity(tile.width() as usize * 768);
            let mut next = first;
            let mut failure = None;
            store.entries_in(first, end, &mut |seq, entry| {
                if seq != next {
                    failure = Some(TileError::Store(StoreError::Corrupt(format!(
                        "entry {next} missing"
                    ))));
                    return ControlFlow::Break(());
                }
                // SPEC: big-endian uint16 length prefix.
                let Ok(len) = u16::try_from(entry.len()) else {
                    failure = Some(TileError::EntryTooLarge {
                        seq,
                        len: entry.len(),
                    });
                    return ControlFlow::Break(());
                };
                bytes.extend_from_slice(&len.to_be_bytes());
                bytes.extend_from_slice(entry);
                next += 1;
                ControlFlow::Continue(())
            })?;
            if let Some(failure) = failure {
                return Err(failure);
            }
            if next != end {
                return Err(StoreError::Corrupt(format!("entry {next} missing")).into());
            }
            Ok(bytes)
        }
    }
}

#[cfg(test)]
mod tests;
