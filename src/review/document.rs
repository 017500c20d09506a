//! [`InputDocument`]: a [`PolicyInput`] together with its form as the
//! engine's value, built once per request so that the response stage
//! reuses the request stage's conversion.

use super::error::EvalError;
use super::input::{PolicyInput, Stage};
use regorus::Value;
use std::collections::BTreeMap;

/// The input of one stage and the engine's value of it. The request body
/// is converted once, at the request stage; the response stage shares that
/// converted body and converts only the answer. Read-only: changing the
/// input means building a new document, so the two cannot disagree.
#[derive(Debug, Clone)]
pub struct InputDocument {
    input: PolicyInput,
    /// The converted document, or why it could not be converted (reported
    /// by each evaluation, as converting per evaluation did).
    value: Result<Value, String>,
}

impl InputDocument {
    /// Converts `input` for the engine.
    pub fn new(input: PolicyInput) -> Self {
        let value = to_value(&input).map_err(|e| e.to_string());
        Self { input, value }
    }

    /// The input as the policies see it.
    pub fn input(&self) -> &PolicyInput {
        &self.input
    }

    /// The response-stage document that follows this one (see
    /// [`PolicyInput::into_response`]): `stage`, `status` and `response`
    /// replaced, everything else shared with this document's value.
    pub fn into_response(self, status: u16, response: serde_json::Value) -> Self {
        let value = self.value.and_then(|mut value| {
            let answer = body(&response).map_err(|e| e.to_string())?;
            let map = value.as_object_mut().map_err(|e| e.to_string())?;
            map.insert(Value::from("stage"), Value::from(Stage::Response.as_str()));
            map.insert(Value::from("status"), Value::from(u64::from(status)));
            map.insert(Value::from("response"), answer);
            Ok(value)
        });
        Self {
            input: self.input.into_response(status, response),
            value,
        }
    }

    /// About how many bytes of memory the document holds: the parsed
    /// request body twice (as JSON values and as the engine's values,
    /// alike in size), which can be many times the body's own bytes (each
    /// number of an array is a value of its own). Counted against the body
    /// budget while the document waits for the answer.
    pub fn held_bytes(&self) -> usize {
        const FIXED: usize = 1024;
        FIXED + 2 * json_bytes(&self.input.request)
    }

    /// The engine's value of the document.
    pub(super) fn value(&self) -> Result<&Value, EvalError> {
        self.value
            .as_ref()
            .map_err(|message| EvalError::Input(message.clone()))
    }
}

/// About how many bytes `value` takes in memory: its own slot and what it
/// owns on the heap. Recursive: parsed JSON is at most 128 levels deep.
fn json_bytes(value: &serde_json::Value) -> usize {
    const SLOT: usize = std::mem::size_of::<serde_json::Value>();
    /// A map entry's key and links besides its value's slot.
    const ENTRY: usize = std::mem::size_of::<String>() + 3 * std::mem::size_of::<usize>();
    SLOT + match value {
        serde_json::Value::String(text) => text.capacity(),
        serde_json::Value::Array(items) => {
            (items.capacity() - items.len()) * SLOT + items.iter().map(json_bytes).sum::<usize>()
        }
        serde_json::Value::Object(members) => members
            .iter()
            .map(|(name, item)| ENTRY + name.capacity() + json_bytes(item))
            .sum(),
        _ => 0,
    }
}

fn body(value: &serde_json::Value) -> Result<Value, EvalError> {
    use serde::Deserialize;
    Value::deserialize(value).map_err(|e| EvalError::Input(e.to_string()))
}

/// The input document as the engine's value: the same document as
/// `PolicyInput`'s JSON serialization, built directly (half the cost of
/// going through `serde_json::Value`).
pub(super) fn to_value(input: &PolicyInput) -> Result<Value, EvalError> {
    let mut map = BTreeMap::new();
    let mut put = |key: &str, value: Value| {
        map.insert(Value::from(key), value);
    };
    put("stage", Value::from(input.stage.as_str()));
    put("model", Value::from(input.model.as_str()));
    put("version", Value::from(input.version.as_str()));
    put("risk_class", Value::from(input.risk_class.as_str()));
    put("caller", Value::from(input.caller.as_str()));
    put("decision_id", Value::from(input.decision_id.as_str()));
    put("sample", Value::from(input.sample));
    put("request", body(&input.request)?);
    put("response", body(&input.response)?);
    put("claims", body(&input.claims)?);
    put(
        "status",
        input
            .status
            .map_or(Value::Null, |s| Value::from(u64::from(s))),
    );
    Ok(Value::from(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request() -> PolicyInput {
        PolicyInput::request(
            "credit-scoring",
            "v3",
            "high",
            "svc-loans",
            "65a1b2c3d4e5f60718293a4b5c6d7e8f",
            json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 1.0]}]}),
        )
    }

    #[test]
    fn engine_value_equals_the_serialized_document() {
        let answer = json!({"outputs": [{"name": "score", "data": [0.5]}]});
        for input in [request(), request().into_response(200, answer)] {
            let direct = to_value(&input).unwrap();
            let via_json = Value::from(serde_json::to_value(&input).unwrap());
            assert_eq!(direct, via_json, "{:?}", input.stage);
        }
    }

    /// The response stage must see its own stage, status and answer, not
    /// the request stage's values it shares the document with.
    #[test]
    fn the_response_document_is_the_response_input_converted_afresh() {
        let asked = InputDocument::new(request());
        let before = asked.value().unwrap().clone();
        for (status, answer) in [
            (200, json!({"outputs": [{"name": "score", "data": [0.51]}]})),
            (502, serde_json::Value::Null),
        ] {
            let answered = asked.clone().into_response(status, answer.clone());
            let fresh = request().into_response(status, answer);
            assert_eq!(answered.input(), &fresh);
            assert_eq!(answered.value().unwrap(), &to_value(&fresh).unwrap());
        }
        // The request stage's document is untouched by deriving the response's.
        assert_eq!(asked.value().unwrap(), &before);
        assert_eq!(before["stage"], Value::from("request"));
    }

    #[test]
    fn a_document_holds_many_times_the_text_of_an_array_of_small_numbers() {
        let with_body = |body| {
            InputDocument::new(PolicyInput::request(
                "m",
                "1",
                "high",
                "svc",
                "65a1b2c3d4e5f60718293a4b5c6d7e8f",
                body,
            ))
        };
        let text = format!("[{}0]", "0,".repeat(99_999));
        let numbers = with_body(serde_json::from_str(&text).unwrap()).held_bytes();
        let slot = std::mem::size_of::<serde_json::Value>();
        assert!(numbers >= 2 * 100_000 * slot, "{numbers}");
        assert!(
            numbers > 20 * text.len(),
            "{numbers} for {} bytes",
            text.len()
        );
        // A long string is about its length, twice.
        let string = with_body(json!("x".repeat(100_000))).held_bytes();
        assert!((200_000..210_000).contains(&string), "{string}");
        let object = with_body(json!({"a": 1, "bb": [true, null]})).held_bytes();
        assert!(object > 1024 + 2 * 5 * slot, "{object}");
    }
}
