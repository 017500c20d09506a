//! Drift references: the bins of a reference sample (quantile edges for a
//! numeric feature, categories plus `other` for a categorical one), the
//! reference's counts in them, and drift KPIs of current counts against
//! them.

use std::collections::HashMap;

use super::FeatureValue;
use super::drift::{Ks, bin_index, js_distance, ks, psi, quantile_edges};
use super::error::KpiError;

/// Parts for the PSI and JS bins: edges at the reference's deciles.
// SPEC: "PSI/JS edges: q(k/10) for k = 1..9"
pub const PSI_JS_PARTS: u32 = 10;

/// Parts for the KS edges: the reference's percentiles.
// SPEC: "KS edges: q(k/100) for k = 1..99, with duplicates dropped"
pub const KS_PARTS: u32 = 100;

/// The name of the categorical bucket for values the reference lacks.
pub const OTHER_BUCKET: &str = "other";

/// Counts of one sample per bin: `bins` for PSI and JS, `ks_bins` for KS
/// (empty for a categorical feature).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BinCounts {
    /// Per PSI/JS bin (numeric) or bucket (categorical, `other` last).
    pub bins: Vec<u64>,
    /// Per KS bin: `ks_edges.len() + 1` of them; empty if categorical.
    pub ks_bins: Vec<u64>,
}

impl BinCounts {
    fn zeroed(bins: usize, ks_bins: usize) -> Self {
        BinCounts {
            bins: vec![0; bins],
            ks_bins: vec![0; ks_bins],
        }
    }

    /// Values counted.
    pub fn total(&self) -> u64 {
        self.bins.iter().sum()
    }

    pub(super) fn add(&mut self, bin: Bin) {
        // INVARIANT: a `Bin` comes from the reference these counts were
        // zeroed for, so its indices are in range.
        self.bins[bin.bin] += 1;
        if let Some(ks_bin) = bin.ks_bin {
            self.ks_bins[ks_bin] += 1;
        }
    }

    pub(super) fn remove(&mut self, bin: Bin) {
        // INVARIANT: only a bin added before is removed.
        self.bins[bin.bin] -= 1;
        if let Some(ks_bin) = bin.ks_bin {
            self.ks_bins[ks_bin] -= 1;
        }
    }
}

/// Where one value falls: its PSI/JS bin (or bucket) and its KS bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bin {
    pub(super) bin: usize,
    pub(super) ks_bin: Option<usize>,
}

/// Drift KPIs of a current sample against a reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftKpis {
    /// Population stability index ([`super::psi`]).
    pub psi: f64,
    /// Jensen-Shannon distance, base 2 ([`super::js_distance`]).
    pub js: f64,
    /// KS at the reference's percentiles ([`super::ks`]); `None` for a
    /// categorical feature.
    pub ks: Option<Ks>,
}

/// The reference of a numeric feature.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericReference {
    edges: Vec<f64>,
    ks_edges: Vec<f64>,
    counts: BinCounts,
}

impl NumericReference {
    /// Bins a reference sample. Refuses an empty sample and any NaN or
    /// infinite value.
    pub fn new(sample: &[f64]) -> Result<Self, KpiError> {
        if sample.is_empty() {
            return Err(KpiError::EmptyReference);
        }
        if let Some(index) = sample.iter().position(|v| !v.is_finite()) {
            return Err(KpiError::NonFiniteReference { index });
        }
        // SPEC: "sort R ascending into x[0..n-1]"
        let mut sorted = sample.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mut reference = NumericReference {
            edges: quantile_edges(&sorted, PSI_JS_PARTS),
            ks_edges: quantile_edges(&sorted, KS_PARTS),
            counts: BinCounts::default(),
        };
        reference.counts = reference.count(sample.iter().copied());
        Ok(reference)
    }

    /// The PSI/JS edges, ascending: `edges.len() + 1` bins.
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// The KS edges, ascending.
    pub fn ks_edges(&self) -> &[f64] {
        &self.ks_edges
    }

    /// The reference sample's counts.
    pub fn counts(&self) -> &BinCounts {
        &self.counts
    }

    /// Bins for a value; `None` for NaN.
    fn bin(&self, value: f64) -> Option<Bin> {
        (!value.is_nan()).then(|| Bin {
            bin: bin_index(&self.edges, value),
            ks_bin: Some(bin_index(&self.ks_edges, value)),
        })
    }

    fn zeroed(&self) -> BinCounts {
        BinCounts::zeroed(self.edges.len() + 1, self.ks_edges.len() + 1)
    }

    /// Counts a sample into this reference's bins, from scratch. NaN values
    /// are skipped.
    pub fn count(&self, values: impl IntoIterator<Item = f64>) -> BinCounts {
        let mut counts = self.zeroed();
        for bin in values.into_iter().filter_map(|v| self.bin(v)) {
            counts.add(bin);
        }
        counts
    }

    /// PSI, JS and KS of current counts (from [`Self::count`] or a
    /// window); `None` if they hold no value.
    pub fn drift(&self, current: &BinCounts) -> Option<DriftKpis> {
        Some(DriftKpis {
            psi: psi(&self.counts.bins, &current.bins)?,
            js: js_distance(&self.counts.bins, &current.bins)?,
            ks: Some(ks(&self.ks_edges, &self.counts.ks_bins, &current.ks_bins)?),
        })
    }
}

/// The reference of a categorical feature.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoricalReference {
    categories: Vec<String>,
    index: HashMap<String, usize>,
    counts: BinCounts,
}

impl CategoricalReference {
    /// Buckets a reference sample. Refuses an empty sample.
    pub fn new<S: AsRef<str>>(sample: &[S]) -> Result<Self, KpiError> {
        if sample.is_empty() {
            return Err(KpiError::EmptyReference);
        }
        // SPEC: "Buckets: the distinct values of R sorted by byte order,
        // then one bucket named `other` last."
        let mut categories: Vec<String> = sample.iter().map(|s| s.as_ref().to_owned()).collect();
        categories.sort_unstable();
        categories.dedup();
        let index = categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        let mut reference = CategoricalReference {
            categories,
            index,
            counts: BinCounts::default(),
        };
        reference.counts = reference.count(sample.iter().map(AsRef::as_ref));
        Ok(reference)
    }

    /// The reference's categories in byte order; bucket `i` is category
    /// `i`, and the [`OTHER_BUCKET`] follows them at index `len()`. (A
    /// category may itself be called `other`: it is still a separate
    /// bucket.)
    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// The reference sample's counts (`other` holds 0).
    pub fn counts(&self) -> &BinCounts {
        &self.counts
    }

    fn bin(&self, value: &str) -> Bin {
        // SPEC: "A current value falls in its own bucket if it occurs in R,
        // otherwise in `other`."
        let bin = self
            .index
            .get(value)
            .copied()
            .unwrap_or(self.categories.len());
        Bin { bin, ks_bin: None }
    }

    fn zeroed(&self) -> BinCounts {
        // SPEC: "The `other` bucket is always listed, with reference count
        // 0."
        BinCounts::zeroed(self.categories.len() + 1, 0)
    }

    /// Counts a sample into this reference's buckets, from scratch.
    pub fn count<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> BinCounts {
        let mut counts = self.zeroed();
        for value in values {
            counts.add(self.bin(value));
        }
        counts
    }

    /// PSI and JS of current counts; `None` if they hold no value.
    pub fn drift(&self, current: &BinCounts) -> Option<DriftKpis> {
        // SPEC: "PSI and JS as above over the bucket proportions (count /
        // sample size). There is no KS."
        Some(DriftKpis {
            psi: psi(&self.counts.bins, &current.bins)?,
            js: js_distance(&self.counts.bins, &current.bins)?,
            ks: None,
        })
    }
}

/// The reference of one drift feature.
#[derive(Debug, Clone, PartialEq)]
pub enum Reference {
    /// A numeric feature.
    Numeric(NumericReference),
    /// A categorical feature.
    Categorical(CategoricalReference),
}

impl Reference {
    /// Where a row's value falls; `None` if it is missing, NaN, or of the
    /// other kind.
    pub(super) fn bin(&self, value: &FeatureValue) -> Option<Bin> {
        match (self, value) {
            (Reference::Numeric(r), FeatureValue::Number(v)) => r.bin(*v),
            (Reference::Categorical(r), FeatureValue::Category(c)) => Some(r.bin(c)),
            _ => None,
        }
    }

    /// Zero counts shaped for this reference.
    pub fn zeroed(&self) -> BinCounts {
        match self {
            Reference::Numeric(r) => r.zeroed(),
            Reference::Categorical(r) => r.zeroed(),
        }
    }

    /// The reference sample's counts.
    pub fn counts(&self) -> &BinCounts {
        match self {
            Reference::Numeric(r) => r.counts(),
            Reference::Categorical(r) => r.counts(),
        }
    }

    /// Drift KPIs of current counts; `None` if they hold no value.
    pub fn drift(&self, current: &BinCounts) -> Option<DriftKpis> {
        match self {
            Reference::Numeric(r) => r.drift(current),
            Reference::Categorical(r) => r.drift(current),
        }
    }
}
