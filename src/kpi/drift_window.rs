//! Drift over a sliding window of the last W rows, per feature, against a
//! fixed reference, with an O(1) update per row (a binary search over at
//! most 99 edges, or one hash lookup): the entering row's bins are added,
//! the leaving row's subtracted. Cumulative bin counts are kept beside.
//!
//! A new reference means a new window: the aggregator builds one once the
//! reference is known (uploaded, or the first N rows served) and feeds it
//! the rows after.

use std::sync::Arc;

use super::Row;
use super::error::{KpiError, check_shape};
use super::reference::{Bin, BinCounts, DriftKpis, Reference};
use super::ring::{Ring, RowSeq, put};

/// One feature's drift in the window and its cumulative counts.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSnapshot {
    /// The feature.
    pub name: String,
    /// Its reference: bins, edges or categories, and reference counts.
    pub reference: Arc<Reference>,
    /// The window's values per bin.
    pub window: BinCounts,
    /// The window's rows without a usable value.
    pub window_missing: u64,
    /// Every value fed, per bin.
    pub cumulative: BinCounts,
    /// Every row fed without a usable value.
    pub cumulative_missing: u64,
    /// Drift of the window against the reference; `None` while the window
    /// holds no value of this feature.
    pub kpis: Option<DriftKpis>,
}

/// A drift window's state at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftSnapshot {
    /// Rows in the window.
    pub rows_in_window: u64,
    /// Rows fed since the window was built.
    pub rows_total: u64,
    /// Per feature, in the order given to [`DriftWindow::new`].
    pub features: Vec<FeatureSnapshot>,
}

#[derive(Debug, Clone)]
struct Feature {
    name: String,
    reference: Arc<Reference>,
    window: BinCounts,
    window_missing: u64,
    cumulative: BinCounts,
    cumulative_missing: u64,
}

impl Feature {
    fn add(&mut self, bin: Option<Bin>) {
        match bin {
            Some(bin) => {
                self.window.add(bin);
                self.cumulative.add(bin);
            }
            None => {
                self.window_missing += 1;
                self.cumulative_missing += 1;
            }
        }
    }

    fn remove(&mut self, bin: Option<Bin>) {
        match bin {
            Some(bin) => self.window.remove(bin),
            // INVARIANT: only a row added before is removed.
            None => self.window_missing -= 1,
        }
    }
}

/// Drift KPIs over the last W rows of one model version.
#[derive(Debug, Clone)]
pub struct DriftWindow {
    ring: Ring,
    features: Vec<Feature>,
    /// `features.len()` per stored row.
    slots: Vec<Option<Bin>>,
}

impl DriftWindow {
    /// An empty window over these features (in the order of
    /// [`Row::features`]) and their references. Refuses a window of 0 rows.
    pub fn new(features: Vec<(String, Reference)>, window: usize) -> Result<Self, KpiError> {
        Ok(DriftWindow {
            ring: Ring::new(window)?,
            features: features
                .into_iter()
                .map(|(name, reference)| Feature {
                    name,
                    window: reference.zeroed(),
                    cumulative: reference.zeroed(),
                    reference: Arc::new(reference),
                    window_missing: 0,
                    cumulative_missing: 0,
                })
                .collect(),
            slots: Vec::new(),
        })
    }

    /// Feeds one row's feature values, pushing out the oldest once W rows
    /// are in. O(features).
    pub fn push(&mut self, row: &Row) -> Result<RowSeq, KpiError> {
        let width = self.features.len();
        check_shape("feature values", width, row.features.len())?;
        let position = self.ring.next_position();
        if self.ring.full() {
            for (f, feature) in self.features.iter_mut().enumerate() {
                feature.remove(self.slots[position * width + f]);
            }
        }
        for (f, (feature, value)) in self.features.iter_mut().zip(&row.features).enumerate() {
            let bin = feature.reference.bin(value);
            feature.add(bin);
            put(&mut self.slots, position * width + f, bin);
        }
        Ok(self.ring.advance())
    }

    /// The KPIs now. O(features x bins).
    pub fn snapshot(&self) -> DriftSnapshot {
        DriftSnapshot {
            rows_in_window: self.ring.len(),
            rows_total: self.ring.pushed(),
            features: self
                .features
                .iter()
                .map(|f| FeatureSnapshot {
                    name: f.name.clone(),
                    reference: Arc::clone(&f.reference),
                    window: f.window.clone(),
                    window_missing: f.window_missing,
                    cumulative: f.cumulative.clone(),
                    cumulative_missing: f.cumulative_missing,
                    kpis: f.reference.drift(&f.window),
                })
                .collect(),
        }
    }
}
