//! Failures to inject into the write-ahead store, for tests: record
//! writes, fdatasyncs, and applies to (failing or panicking) and flushes
//! of the store behind.

use crate::ledger::store::StoreError;
use std::sync::atomic::{AtomicU64, Ordering};

/// Failures to inject, each counted down as it is used.
#[derive(Default)]
pub struct Faults {
    writes: AtomicU64,
    syncs: AtomicU64,
    applies: AtomicU64,
    flushes: AtomicU64,
    panics: AtomicU64,
}

fn take_one(counter: &AtomicU64) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok()
}

impl Faults {
    /// The next `n` record writes fail.
    pub fn fail_writes(&self, n: u64) {
        self.writes.store(n, Ordering::Release);
    }

    /// The next `n` fdatasyncs fail (after their record is written).
    pub fn fail_syncs(&self, n: u64) {
        self.syncs.store(n, Ordering::Release);
    }

    /// The next `n` applies of a batch to the store fail.
    pub fn fail_applies(&self, n: u64) {
        self.applies.store(n, Ordering::Release);
    }

    /// The next `n` flushes of the store behind fail (after their batches
    /// were applied), as a failed fsync would.
    pub fn fail_flushes(&self, n: u64) {
        self.flushes.store(n, Ordering::Release);
    }

    /// The next `n` applies of a batch to the store panic, as a bug in the
    /// store behind would.
    pub fn panic_applies(&self, n: u64) {
        self.panics.store(n, Ordering::Release);
    }

    pub(super) fn write(&self) -> std::io::Result<()> {
        match take_one(&self.writes) {
            true => Err(std::io::Error::other("injected write failure")),
            false => Ok(()),
        }
    }

    pub(super) fn sync(&self) -> std::io::Result<()> {
        match take_one(&self.syncs) {
            true => Err(std::io::Error::other("injected fdatasync failure")),
            false => Ok(()),
        }
    }

    pub(super) fn apply(&self) -> Result<(), StoreError> {
        if take_one(&self.panics) {
            panic!("injected panic in an apply");
        }
        match take_one(&self.applies) {
            true => Err(StoreError::Engine("injected apply failure".to_owned())),
            false => Ok(()),
        }
    }

    pub(super) fn flush(&self) -> Result<(), StoreError> {
        match take_one(&self.flushes) {
            true => Err(StoreError::Engine("injected flush failure".to_owned())),
            false => Ok(()),
        }
    }
}
