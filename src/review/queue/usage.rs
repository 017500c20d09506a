//! What the review queue holds in memory, against its bounds: pending
//! reviews (`review.max_pending`) and the bytes of the request and answer
//! bodies of every review it keeps (`review.max_kept_bytes`).
//!
//! A place is taken before a review is stored or recorded and given back
//! when it closes (the count) or is forgotten or abandoned (the bytes):
//! two requests that both see room cannot both take the last of it.

use super::super::item::{ReviewItem, ReviewState};

/// A bound a new review would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueFull {
    /// `review.max_pending` reviews are pending.
    #[error("{0} reviews are pending (review.max_pending)")]
    Pending(usize),
    /// Keeping its bodies would pass `review.max_kept_bytes`.
    #[error("the reviews keep {0} bytes of bodies at most (review.max_kept_bytes)")]
    Bytes(usize),
}

impl QueueFull {
    /// The setting's name, as metrics label it.
    pub fn limit(self) -> &'static str {
        match self {
            QueueFull::Pending(_) => "max_pending",
            QueueFull::Bytes(_) => "max_kept_bytes",
        }
    }
}

/// The pending count and the kept bytes, with their bounds.
#[derive(Debug)]
pub(super) struct Usage {
    max_pending: usize,
    max_bytes: usize,
    pending: usize,
    bytes: usize,
}

impl Usage {
    pub(super) fn new(max_pending: usize, max_bytes: usize) -> Self {
        Self {
            max_pending,
            max_bytes,
            pending: 0,
            bytes: 0,
        }
    }

    /// Takes a place for a new pending review keeping `bytes`.
    pub(super) fn take(&mut self, bytes: usize) -> Result<(), QueueFull> {
        if self.pending >= self.max_pending {
            return Err(QueueFull::Pending(self.max_pending));
        }
        if self.bytes.saturating_add(bytes) > self.max_bytes {
            return Err(QueueFull::Bytes(self.max_bytes));
        }
        self.pending += 1;
        self.bytes += bytes;
        Ok(())
    }

    /// Counts a review found at start, whatever the bounds: it was
    /// promised before (the next ones wait until there is room).
    pub(super) fn restored(&mut self, item: &ReviewItem) {
        if item.state == ReviewState::Pending {
            self.pending += 1;
        }
        self.bytes = self.bytes.saturating_add(kept_bytes(item));
    }

    /// A pending review closed; its bodies went from `before` to `after`
    /// bytes (a reviewer's answer is kept too).
    pub(super) fn closed(&mut self, before: usize, after: usize) {
        self.pending = self.pending.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(before).saturating_add(after);
    }

    /// A review that took a place was never opened.
    pub(super) fn abandoned(&mut self, bytes: usize) {
        self.pending = self.pending.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }

    /// A closed review was forgotten.
    pub(super) fn forgotten(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_sub(bytes);
    }

    /// Bytes kept now.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The body bytes `item` keeps in memory: the request, the answer and a
/// reviewer's answer.
pub(super) fn kept_bytes(item: &ReviewItem) -> usize {
    let overridden = item
        .closing
        .as_ref()
        .and_then(|closing| closing.override_answer.as_ref())
        .map_or(0, |answer| answer.body.len());
    item.request.bytes.len() + item.answer.body.len() + overridden
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_place_is_taken_once_and_given_back_on_close_and_forget() {
        let mut usage = Usage::new(2, 100);
        usage.take(40).unwrap();
        usage.take(40).unwrap();
        assert_eq!(usage.take(0), Err(QueueFull::Pending(2)));
        usage.closed(40, 40);
        assert_eq!(usage.take(30), Err(QueueFull::Bytes(100)), "80 + 30 > 100");
        usage.take(20).unwrap();
        usage.forgotten(40);
        usage.abandoned(20);
        assert_eq!(usage.bytes(), 40);
        usage.take(60).unwrap();
        assert_eq!(usage.bytes(), 100);
    }
}
