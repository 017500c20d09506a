//! The bookkeeping of a ring buffer of the last W rows: where the next
//! row goes, which row it pushes out, and where a row still in the window
//! sits. The windows keep their own per-row storage, indexed by it.

use super::error::KpiError;

/// The sequence number of a row fed to a window: 0 for the first, counting
/// up by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowSeq(pub u64);

/// Where a row is, seen from the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Located {
    /// In the window, at this position of the storage.
    InWindow(usize),
    /// Pushed out by later rows.
    Evicted,
    /// Not fed yet.
    Unknown,
}

/// Positions in a ring of `capacity` rows.
#[derive(Debug, Clone)]
pub(super) struct Ring {
    capacity: usize,
    pushed: u64,
}

impl Ring {
    pub(super) fn new(capacity: usize) -> Result<Self, KpiError> {
        if capacity == 0 {
            return Err(KpiError::ZeroWindow);
        }
        Ok(Ring {
            capacity,
            pushed: 0,
        })
    }

    /// Rows fed so far.
    pub(super) fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Rows in the window: `min(pushed, capacity)`.
    pub(super) fn len(&self) -> u64 {
        self.pushed.min(self.capacity as u64)
    }

    /// The storage position of the next row. Below `capacity` rows it is
    /// the storage's current length (append); after that it holds the
    /// oldest row, which the next row replaces.
    pub(super) fn next_position(&self) -> usize {
        (self.pushed % self.capacity as u64) as usize
    }

    /// Whether the next row replaces (evicts) the row at `next_position`.
    pub(super) fn full(&self) -> bool {
        self.pushed >= self.capacity as u64
    }

    /// Counts the next row in and returns its sequence number.
    pub(super) fn advance(&mut self) -> RowSeq {
        self.pushed += 1;
        RowSeq(self.pushed - 1)
    }

    pub(super) fn locate(&self, seq: RowSeq) -> Located {
        if seq.0 >= self.pushed {
            Located::Unknown
        } else if self.pushed - seq.0 > self.capacity as u64 {
            Located::Evicted
        } else {
            Located::InWindow((seq.0 % self.capacity as u64) as usize)
        }
    }
}

/// Puts `value` at `position` of storage that grows one row at a time:
/// appends at the end, overwrites before it.
pub(super) fn put<T>(storage: &mut Vec<T>, position: usize, value: T) {
    if position == storage.len() {
        storage.push(value);
    } else {
        // INVARIANT: the ring hands out positions up to the storage's
        // length, so anything else is inside it.
        storage[position] = value;
    }
}
