//! One memory budget for every body the gateway holds whole: request
//! bodies, answers read before release, held answers, copies for the KPIs.
//!
//! Each buffer reserves its bytes before it grows; a reservation travels
//! with the bytes (they are handed out as [`Bytes`] that own it), so the
//! budget is given back exactly when the last copy is dropped. When the
//! budget is spent, an answer streams instead of being buffered, and what
//! cannot stream (a request body, a hold) is refused with 503 `overloaded`.

use bytes::{Bytes, BytesMut};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The budget's metric families.
#[derive(Clone)]
pub(crate) struct BudgetMetrics {
    gauge: IntGauge,
    refusals: IntCounterVec,
}

impl BudgetMetrics {
    /// Registers the families in `registry`.
    pub(crate) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = IntGauge::new(
            "govgate_buffered_body_bytes",
            "Bytes of request and response bodies held whole in memory (limits.max_buffered_total_bytes).",
        )?;
        let refusals = IntCounterVec::new(
            Opts::new(
                "govgate_buffer_budget_exhausted_total",
                "Times a body could not be buffered because the memory budget was spent, by use: answer and kpi (streamed or not copied instead), request, hold and policy (refused with 503 overloaded).",
            ),
            &["use"],
        )?;
        // Every series exists from the start, at 0.
        for usage in [
            BufferUse::Request,
            BufferUse::Answer,
            BufferUse::Hold,
            BufferUse::Kpi,
            BufferUse::Policy,
        ] {
            refusals.with_label_values(&[usage.as_str()]);
        }
        registry.register(Box::new(gauge.clone()))?;
        registry.register(Box::new(refusals.clone()))?;
        Ok(Self { gauge, refusals })
    }
}

/// The shared budget.
pub(crate) struct BodyBudget {
    limit: usize,
    used: AtomicUsize,
    gauge: IntGauge,
    refusals: IntCounterVec,
}

/// What a reservation is for (the label of refusals).
#[derive(Debug, Clone, Copy)]
pub(crate) enum BufferUse {
    /// A request body.
    Request,
    /// An answer read whole before release.
    Answer,
    /// An answer held for review.
    Hold,
    /// A copy of a streamed answer for the KPIs.
    Kpi,
    /// The parsed request the policies read, held until the answer is
    /// judged.
    Policy,
}

impl BufferUse {
    fn as_str(self) -> &'static str {
        match self {
            BufferUse::Request => "request",
            BufferUse::Answer => "answer",
            BufferUse::Hold => "hold",
            BufferUse::Kpi => "kpi",
            BufferUse::Policy => "policy",
        }
    }
}

impl BodyBudget {
    /// A budget of `limit` bytes, counted in `metrics`.
    pub(crate) fn new(limit: usize, metrics: &BudgetMetrics) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
            gauge: metrics.gauge.clone(),
            refusals: metrics.refusals.clone(),
        })
    }

    /// Reserves `bytes` for `usage`, or counts the refusal.
    pub(crate) fn reserve(self: &Arc<Self>, bytes: usize, usage: BufferUse) -> Option<Reservation> {
        let mut reservation = Reservation {
            budget: self.clone(),
            bytes: 0,
            usage,
        };
        reservation.grow(bytes).then_some(reservation)
    }

    fn take(&self, bytes: usize) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = used.checked_add(bytes).filter(|next| *next <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.gauge.add(bytes as i64);
                    return true;
                }
                Err(actual) => used = actual,
            }
        }
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.sub(bytes as i64);
    }

    /// Bytes reserved now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Bytes of the budget held by one buffer; given back on drop.
pub(crate) struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: usize,
    usage: BufferUse,
}

impl Reservation {
    /// Reserves `more` bytes on top; false (and counted) when the budget is spent.
    pub(crate) fn grow(&mut self, more: usize) -> bool {
        if self.budget.take(more) {
            self.bytes += more;
            true
        } else {
            self.budget
                .refusals
                .with_label_values(&[self.usage.as_str()])
                .inc();
            false
        }
    }

    /// The bytes reserved so far.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Freezes `buf` into [`Bytes`] that keep this reservation until the
    /// last copy of them is dropped (shrunk to the buffer's length first).
    pub(crate) fn into_bytes(self, buf: BytesMut) -> Bytes {
        self.attach(buf.freeze())
    }

    /// Like [`Reservation::into_bytes`] for bytes already frozen (no copy).
    pub(crate) fn attach(mut self, bytes: Bytes) -> Bytes {
        let excess = self.bytes.saturating_sub(bytes.len());
        if excess > 0 {
            self.budget.give_back(excess);
            self.bytes -= excess;
        }
        Bytes::from_owner(Owned {
            bytes,
            _reservation: self,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.give_back(self.bytes);
        }
    }
}

/// Bytes and the reservation that accounts for them.
struct Owned {
    bytes: Bytes,
    _reservation: Reservation,
}

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: usize) -> Arc<BodyBudget> {
        BodyBudget::new(limit, &BudgetMetrics::register(&Registry::new()).unwrap())
    }

    #[test]
    fn reservations_never_exceed_the_limit_and_come_back_on_drop() {
        let budget = budget(100);
        let mut first = budget.reserve(60, BufferUse::Answer).unwrap();
        assert!(budget.reserve(41, BufferUse::Answer).is_none());
        assert!(!first.grow(41));
        assert!(first.grow(40));
        assert_eq!(budget.used(), 100);
        drop(first);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn bytes_keep_their_reservation_until_the_last_copy_is_gone() {
        let budget = budget(100);
        let reservation = budget.reserve(80, BufferUse::Request).unwrap();
        let bytes = reservation.into_bytes(BytesMut::from(&[7u8; 50][..]));
        // Shrunk to the buffer's length.
        assert_eq!(budget.used(), 50);
        let copy = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(budget.used(), 50);
        assert_eq!(&copy[..], &[7u8; 10]);
        drop(copy);
        assert_eq!(budget.used(), 0);
    }
}
