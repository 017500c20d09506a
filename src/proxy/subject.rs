//! The data subject a request names (`[models.subject]`): read from a
//! header or a JSON pointer into the body, hashed under the subject key
//! into the draft. The id itself goes nowhere (not the record, not the
//! log); a request that names none is recorded without and counted.

use super::ProxyState;
use super::recorder::Draft;
use crate::config::ModelConfig;
use crate::config::subject::{MAX_SUBJECT_BYTES, SubjectSelector};
use crate::kpi::Selector;
use http::HeaderMap;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// Sets `draft.subject` when `model` has a subject selector and the
/// request names a subject; counts the request otherwise. `body` is the
/// request body's JSON part.
pub(super) fn note(
    state: &ProxyState,
    draft: &mut Draft,
    model: &ModelConfig,
    headers: &HeaderMap,
    body: &[u8],
) {
    let (Some(selector), Some(key)) = (&model.subject, &state.subject_key) else {
        return;
    };
    let id = match selector {
        SubjectSelector::Header(name) => headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        SubjectSelector::Body(Selector::Pointer(tokens)) => at_pointer(body, tokens),
        SubjectSelector::Body(Selector::Tensor { .. }) => None,
    };
    match id.filter(|id| !id.is_empty() && id.len() <= MAX_SUBJECT_BYTES) {
        Some(id) => draft.subject = Some(key.hash(&id)),
        None => state.recorder.metrics().count_subject_missing(&model.name),
    }
}

/// The string (or number, as written) at `tokens` in the JSON `body`.
/// Each level is read as borrowed raw values, so nothing below the path
/// is built.
fn at_pointer(body: &[u8], tokens: &[Option<String>]) -> Option<String> {
    let mut at: &RawValue = serde_json::from_slice(body).ok()?;
    for token in tokens {
        // INVARIANT: the config refuses `*` in a subject pointer.
        let token = token.as_deref()?;
        let text = at.get();
        at = if text.starts_with('{') {
            let members: HashMap<String, &RawValue> = serde_json::from_str(text).ok()?;
            members.get(token).copied()?
        } else if text.starts_with('[') {
            let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
            // SPEC: RFC 6901 section 4: an array index is 0 or digits without a leading 0.
            if token.len() > 1 && token.starts_with('0') {
                return None;
            }
            items.get(token.parse::<usize>().ok()?).copied()?
        } else {
            return None;
        };
    }
    let text = at.get();
    if text.starts_with('"') {
        serde_json::from_str::<String>(text).ok()
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Some(text.to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(text: &str) -> Vec<Option<String>> {
        match Selector::pointer(text).unwrap() {
            Selector::Pointer(tokens) => tokens,
            Selector::Tensor { .. } => unreachable!(),
        }
    }

    #[test]
    fn a_pointer_finds_strings_and_numbers_and_nothing_else() {
        let body =
            br#"{"user":{"id":"cust-7","n":42,"x":null},"list":[{"a~b":"first"}],"s":"\u00e9"}"#;
        assert_eq!(
            at_pointer(body, &pointer("/user/id")).as_deref(),
            Some("cust-7")
        );
        assert_eq!(at_pointer(body, &pointer("/user/n")).as_deref(), Some("42"));
        assert_eq!(
            at_pointer(body, &pointer("/list/0/a~0b")).as_deref(),
            Some("first")
        );
        assert_eq!(at_pointer(body, &pointer("/s")).as_deref(), Some("\u{e9}"));
        for missing in [
            "/user/x",
            "/user",
            "/list/1",
            "/list/00",
            "/nope",
            "/user/id/deeper",
        ] {
            assert_eq!(at_pointer(body, &pointer(missing)), None, "{missing}");
        }
        assert_eq!(at_pointer(b"not json", &pointer("/a")), None);
    }
}
