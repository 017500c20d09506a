//! Errors of the KPI module: a window or a reference that cannot be built
//! as asked, or a row that does not fit its window.

/// Why a KPI window or reference could not be built, or a row not fed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KpiError {
    /// A window of 0 rows was asked for (the operator's configuration).
    #[error("a KPI window must hold at least 1 row")]
    ZeroWindow,
    /// `max_groups` of 0 would track no group (the operator's
    /// configuration).
    #[error("a KPI attribute must track at least 1 group")]
    ZeroMaxGroups,
    /// A row with the wrong number of values for its window (ours: the
    /// aggregator built it from another configuration).
    #[error("row has {got} {what}, the window expects {expected}")]
    RowShape {
        /// Which part of the row: group values or feature values.
        what: &'static str,
        /// How many the window was built for.
        expected: usize,
        /// How many the row has.
        got: usize,
    },
    /// A reference sample with no value (whoever supplied the reference).
    #[error("the reference sample holds no value")]
    EmptyReference,
    /// A numeric reference sample with a NaN or infinite value, which has
    /// no place among quantiles (whoever supplied the reference).
    #[error("the reference sample's value {index} is not a finite number")]
    NonFiniteReference {
        /// Its position in the sample.
        index: usize,
    },
}

/// `Ok` if a row's part has the length the window expects.
pub(super) fn check_shape(what: &'static str, expected: usize, got: usize) -> Result<(), KpiError> {
    if expected == got {
        Ok(())
    } else {
        Err(KpiError::RowShape {
            what,
            expected,
            got,
        })
    }
}
