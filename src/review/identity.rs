//! One form of a caller identity for the rule "nobody decides their own
//! request": two names that a person reads as the same must compare
//! equal, or a reviewer could approve their own call by sending it as
//! `SVC-ALICE`, `svc-alice.` or `svc‐alice` (U+2010).
//!
//! The form (docs/reviews.md): Unicode NFKC (fullwidth letters, ligatures
//! and other compatibility forms folded), default-ignorable code points
//! removed (zero-width spaces and joiners, soft hyphens), every character
//! with the Unicode `Dash` property made `-`, lower case, and white space
//! at both ends and full stops at the end trimmed. It is used only to
//! compare; records keep the raw names.

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::CodePointSetData;
use icu_properties::props::{Dash, DefaultIgnorableCodePoint};

/// The form two identities are compared in.
pub(crate) fn normalized(identity: &str) -> String {
    let nfkc = ComposingNormalizerBorrowed::new_nfkc().normalize(identity);
    let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
    let dash = CodePointSetData::new::<Dash>();
    let mapped: String = nfkc
        .chars()
        .filter(|&c| !ignorable.contains(c))
        .map(|c| if dash.contains(c) { '-' } else { c })
        .flat_map(char::to_lowercase)
        .collect();
    mapped
        .trim_start()
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
        .to_owned()
}

/// Whether two identities name the same principal.
pub(crate) fn same(a: &str, b: &str) -> bool {
    normalized(a) == normalized(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_name_are_the_same() {
        for variant in [
            "svc-alice",
            "SVC-ALICE",
            "Svc-Alice",
            "svc-alice.",
            "svc-alice. ",
            " svc-alice",
            "svc\u{2010}alice",
            "svc\u{2011}alice",
            "svc\u{2212}alice",
            "svc\u{FF0D}alice",
            "svc-al\u{200B}ice",
            "svc-al\u{AD}ice",
            "\u{FF53}\u{FF56}\u{FF43}-alice",
        ] {
            assert!(same("svc-alice", variant), "{variant:?}");
        }
    }

    #[test]
    fn different_names_stay_different() {
        for other in [
            "svc-alicia",
            "svc_alice",
            "svcalice",
            "svc-alice2",
            "svc.alice",
            "",
        ] {
            assert!(!same("svc-alice", other), "{other:?}");
        }
    }
}
