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
//!
//! Names are not all: where both the request's caller and the reviewer
//! were established by a JWT of the same issuer, the same `sub` is the
//! same person whatever the names say ([`decides_own`]).

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

/// Who decides a review, as the admin API authenticated them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewer {
    /// The principal's name (a configured token's, or a person's claim).
    pub principal: String,
    /// For a person with a JWT (`[admin.jwt]`): the token's `iss`.
    pub issuer: Option<String>,
    /// For a person with a JWT: the token's `sub`, when it has one.
    pub subject: Option<String>,
}

impl From<&str> for Reviewer {
    /// A reviewer with a configured token: a name only.
    fn from(principal: &str) -> Self {
        Reviewer {
            principal: principal.to_owned(),
            issuer: None,
            subject: None,
        }
    }
}

/// A request's caller as a verified JWT established it (the decision's
/// `auth` member: method `jwt` with an `issuer` and a `subject`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenIdentity {
    /// The token's `iss`.
    pub issuer: String,
    /// The token's `sub`.
    pub subject: String,
}

impl TokenIdentity {
    /// The JWT identity of `auth`, if a token with a subject established it.
    pub fn of(auth: &crate::decision::CallerAuth) -> Option<Self> {
        match auth {
            crate::decision::CallerAuth::Jwt {
                issuer,
                subject: Some(subject),
                ..
            } => Some(TokenIdentity {
                issuer: issuer.clone(),
                subject: subject.clone(),
            }),
            _ => None,
        }
    }
}

/// Whether `reviewer` would decide their own request, the request of
/// `caller` (its recorded name) established by `token` (docs/reviews.md):
/// - the names are the same in the compared form, however each was
///   established; or
/// - both are JWT identities of the same issuer with the same `sub`
///   (compared exactly: a subject is an opaque id, unique per issuer),
///   whatever the names. Subjects of different issuers never compare.
///
/// An API key, a client certificate or the caller header name a caller
/// by a name only, so with those (and with configured admin tokens) the
/// names decide.
pub(crate) fn decides_own(
    reviewer: &Reviewer,
    caller: &str,
    token: Option<&TokenIdentity>,
) -> bool {
    if same(&reviewer.principal, caller) {
        return true;
    }
    match (token, &reviewer.issuer, &reviewer.subject) {
        (Some(token), Some(issuer), Some(subject)) => {
            token.issuer == *issuer && token.subject == *subject
        }
        _ => false,
    }
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
    fn one_token_identity_is_one_person_whatever_the_names() {
        let person = Reviewer {
            principal: "rita".into(),
            issuer: Some("https://idp".into()),
            subject: Some("u-17".into()),
        };
        let token = |issuer: &str, subject: &str| TokenIdentity {
            issuer: issuer.into(),
            subject: subject.into(),
        };
        assert!(decides_own(
            &person,
            "svc-x",
            Some(&token("https://idp", "u-17"))
        ));
        assert!(decides_own(&person, "Rita", None), "names still count");
        assert!(!decides_own(
            &person,
            "svc-x",
            Some(&token("https://idp", "u-18"))
        ));
        assert!(
            !decides_own(&person, "svc-x", Some(&token("https://other", "u-17"))),
            "subjects of different issuers are different people"
        );
        assert!(!decides_own(
            &Reviewer::from("u-17"),
            "svc-x",
            Some(&token("https://idp", "u-17"))
        ));
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
