//! Drift math between a reference sample R (n values) and a current
//! sample C (m values) of one feature, on bin counts: quantile edges, PSI,
//! Jensen-Shannon distance and KS. Pure; [`super::NumericReference`] and
//! [`super::CategoricalReference`] build the bins.
//!
//! With `p_i = ref_i / n` and `q_i = cur_i / m` per bin:
//!
//! ```text
//! PSI = sum_i (q'_i - p'_i) * ln(q'_i / p'_i),  p'_i = max(p_i, 1e-4), q'_i = max(q_i, 1e-4)
//! JS  = sqrt(D),  D = 1/2 sum_{p_i>0} p_i log2(p_i / M_i) + 1/2 sum_{q_i>0} q_i log2(q_i / M_i),
//!                 M_i = (p_i + q_i) / 2,  D clamped at 0
//! KS  = max over the KS edges e of |F_R(e) - F_C(e)|,  F_X(e) = #{x in X : x <= e} / |X|
//! ```
//!
//! Edges are numpy's default (`linear`) quantiles of R:
//! `h = (n-1) p, lo = floor(h), hi = min(lo+1, n-1),
//! q(p) = x[lo] + (h - lo) (x[hi] - x[lo])` over R sorted ascending, at
//! `p = k/10` (PSI and JS) or `k/100` (KS), duplicates dropped. A value v
//! falls in bin "number of edges < v", so bins are `(-inf, e1], (e1, e2],
//! ..., (eK, +inf)`.

/// The floor under each proportion in PSI.
// SPEC: "p'_i = max(p_i, 1e-4) and q'_i = max(q_i, 1e-4)"
pub const PSI_EPSILON: f64 = 1e-4;

/// numpy's `linear` quantile of an ascending sample, for `p` in `[0, 1]`;
/// `None` for an empty sample.
pub fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    // SPEC: "h = (n−1)·p, lo = floor(h), hi = min(lo+1, n−1), q(p) = x[lo]
    // + (h − lo)·(x[hi] − x[lo])"
    let h = last as f64 * p;
    let lo = h.floor();
    // `as` saturates: a p below 0 or above 1 is held to the sample's ends.
    let lo_index = (lo as usize).min(last);
    let hi_index = (lo_index + 1).min(last);
    let (a, b) = (sorted[lo_index], sorted[hi_index]);
    Some(a + (h - lo) * (b - a))
}

/// The quantiles `k / parts` for `k = 1..parts`, of an ascending sample,
/// each kept only if above the one kept before it. Empty for an empty
/// sample.
pub fn quantile_edges(sorted: &[f64], parts: u32) -> Vec<f64> {
    let mut edges: Vec<f64> = Vec::new();
    for k in 1..parts {
        // SPEC: "p is computed as k/10 or k/100 by f64 division."
        let p = f64::from(k) / f64::from(parts);
        let Some(edge) = quantile(sorted, p) else {
            break;
        };
        // SPEC: "dropping any edge equal to the previous one" (and, for
        // safety, one below it: the quantiles never step back except by
        // rounding).
        if edges.last().is_none_or(|last| edge > *last) {
            edges.push(edge);
        }
    }
    edges
}

/// The bin of `value` among ascending `edges`: the number of edges below
/// it, so a value equal to an edge falls in the bin that edge closes. The
/// caller keeps NaN out.
pub fn bin_index(edges: &[f64], value: f64) -> usize {
    // SPEC: "A value v falls in bin i = the number of edges < v; a value
    // equal to an edge belongs to the bin that edge closes."
    edges.partition_point(|edge| *edge < value)
}

/// Proportions `count / total` of one sample's bins; `None` for no value.
fn proportions(counts: &[u64]) -> Option<Vec<f64>> {
    let total: u64 = counts.iter().sum();
    // SPEC: "p_i = (reference count in bin i) / n, q_i = (current count in
    // bin i) / m"
    (total > 0).then(|| counts.iter().map(|c| *c as f64 / total as f64).collect())
}

/// The population stability index of the current bins against the
/// reference bins (same bins, same order); `None` if either is empty.
pub fn psi(reference: &[u64], current: &[u64]) -> Option<f64> {
    let p = proportions(reference)?;
    let q = proportions(current)?;
    let mut total = 0.0;
    for (p, q) in p.into_iter().zip(q) {
        // SPEC: "PSI = Σ_i (q'_i − p'_i) · ln(q'_i / p'_i), where p'_i =
        // max(p_i, 1e-4) and q'_i = max(q_i, 1e-4). Nothing is
        // renormalised." A bin empty in both gives (e - e) ln 1 = 0.
        let p = p.max(PSI_EPSILON);
        let q = q.max(PSI_EPSILON);
        total += (q - p) * (q / p).ln();
    }
    Some(total)
}

/// The Jensen-Shannon distance (base 2, in `[0, 1]`) between the reference
/// and the current bins; `None` if either is empty.
pub fn js_distance(reference: &[u64], current: &[u64]) -> Option<f64> {
    let p = proportions(reference)?;
    let q = proportions(current)?;
    // SPEC: "M_i = (p_i + q_i)/2. It uses the unsmoothed proportions
    // (0·log 0 = 0)."
    let m: Vec<f64> = p.iter().zip(&q).map(|(p, q)| (p + q) / 2.0).collect();
    let kl = |a: &[f64]| -> f64 {
        let mut sum = 0.0;
        for (a, m) in a.iter().zip(&m) {
            if *a > 0.0 {
                sum += a * (a / m).log2();
            }
        }
        sum
    };
    let divergence = 0.5 * kl(&p) + 0.5 * kl(&q);
    // SPEC: "If rounding makes D slightly negative, clamp it to 0 before
    // the square root."
    Some(divergence.max(0.0).sqrt())
}

/// The KS statistic evaluated at the KS edges, and the first edge where it
/// peaks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ks {
    /// `max |F_R(e) - F_C(e)|` over the edges.
    pub statistic: f64,
    /// The first edge where the maximum is reached; `None` when the
    /// statistic is 0.
    pub at_edge: Option<f64>,
}

/// KS from per-bin counts over the KS edges (`edges.len() + 1` bins each,
/// binned by [`bin_index`]); `None` if either sample is empty.
pub fn ks(edges: &[f64], reference: &[u64], current: &[u64]) -> Option<Ks> {
    let n: u64 = reference.iter().sum();
    let m: u64 = current.iter().sum();
    if n == 0 || m == 0 {
        return None;
    }
    let mut result = Ks {
        statistic: 0.0,
        at_edge: None,
    };
    let (mut below_r, mut below_c) = (0u64, 0u64);
    // Values at or below edge j are exactly those in bins 0..=j.
    for ((edge, r), c) in edges.iter().zip(reference).zip(current) {
        below_r += r;
        below_c += c;
        // SPEC: "KS = max over the KS edges e of |F_R(e) − F_C(e)|, where
        // F_X(e) = (number of x in X with x ≤ e) / |X|."
        let d = (below_r as f64 / n as f64 - below_c as f64 / m as f64).abs();
        if d > result.statistic {
            result = Ks {
                statistic: d,
                at_edge: Some(*edge),
            };
        }
    }
    Some(result)
}
