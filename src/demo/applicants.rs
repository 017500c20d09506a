//! Sample credit applications for the demo's fairness and drift KPIs: a
//! fixed, seeded set (the same on every run), each applicant with the
//! protected attributes the lending service knows (sex, age group), the
//! model's three features, and whether the loan was repaid in fact.
//!
//! The first batch is like the data the model was built on; the second
//! asks for larger and longer loans, so the credit amount and duration
//! drift. The model scores age more harshly than repayment does, so the
//! younger group is selected less often and its good applicants are missed
//! more: figures worth looking at. No score falls in the borderline range
//! the demo's review policy holds, so none of these waits for a reviewer.

use super::credit_score;

/// The protected attribute sent as `x-govgate-attr-sex`.
pub const SEX_ATTRIBUTE: &str = "sex";
/// The protected attribute sent as `x-govgate-attr-age_group`.
pub const AGE_GROUP_ATTRIBUTE: &str = "age_group";

/// Applications in each of the two batches.
pub const PER_BATCH: usize = 120;

/// One sample application.
#[derive(Debug, Clone, PartialEq)]
pub struct Applicant {
    /// `female` or `male`.
    pub sex: &'static str,
    /// `under_30` or `30_plus`.
    pub age_group: &'static str,
    /// `age_years`, `credit_amount`, `duration_months`.
    pub features: [f64; 3],
    /// Whether the loan was repaid (the ground truth fed back).
    pub repaid: bool,
}

/// A small deterministic generator (SplitMix64): the same applicants on
/// every run, without a dependency.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The two batches: `drifted` false gives the applications like the
/// model's training data, true the later, larger ones.
pub fn batch(drifted: bool) -> Vec<Applicant> {
    let mut draw = Draw(if drifted { 0x5eed_0002 } else { 0x5eed_0001 });
    let mut out = Vec::with_capacity(PER_BATCH);
    while out.len() < PER_BATCH {
        let sex = if draw.unit() < 0.5 { "female" } else { "male" };
        let age = (20.0 + 40.0 * draw.unit()).round();
        let mut amount = 1_000.0 + 12_000.0 * draw.unit() * draw.unit().sqrt();
        let mut duration = (6.0 + 42.0 * draw.unit()).round();
        if drifted {
            amount *= 1.3;
            duration += 6.0;
        }
        let amount = amount.round();
        let features = [age, amount, duration];
        let score = credit_score(&features);
        // Repayment depends on age far less than the model assumes.
        let logit =
            1.2 + 0.008 * (age - 35.0) - 0.000_15 * (amount - 3_000.0) - 0.03 * (duration - 20.0);
        let repaid = draw.unit() < 1.0 / (1.0 + (-logit).exp());
        // The demo's policy holds scores within [0.45, 0.55]: leave them out.
        if (0.44..=0.56).contains(&score) {
            continue;
        }
        out.push(Applicant {
            sex,
            age_group: if age < 30.0 { "under_30" } else { "30_plus" },
            features,
            repaid,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_fixed_and_never_borderline() {
        assert_eq!(batch(false), batch(false));
        for drifted in [false, true] {
            let rows = batch(drifted);
            assert_eq!(rows.len(), PER_BATCH);
            assert!(rows.iter().all(|a| {
                let score = credit_score(&a.features);
                !(0.45..=0.55).contains(&score)
            }));
            // Every group is large enough to be compared (min_group_size 20).
            for group in ["female", "male"] {
                assert!(rows.iter().filter(|a| a.sex == group).count() >= 20);
            }
            for group in ["under_30", "30_plus"] {
                assert!(rows.iter().filter(|a| a.age_group == group).count() >= 20);
            }
        }
        // The later batch asks for more (x 1.3), for longer (+ 6 months).
        let mean = |rows: &[Applicant], column: usize| {
            rows.iter().map(|a| a.features[column]).sum::<f64>() / PER_BATCH as f64
        };
        let (first, later) = (batch(false), batch(true));
        assert!(mean(&later, 1) > 1.2 * mean(&first, 1));
        assert!(mean(&later, 2) > mean(&first, 2) + 3.0);
    }
}
