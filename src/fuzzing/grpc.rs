//! A gRPC call's body as the gateway reads it: one length-prefixed
//! message, decoded as a `ModelInferRequest` (or a `ModelInferResponse`,
//! as the KPIs read answers), its REST form, and the model's name spliced
//! in for an upstream that knows the model by another name. Pure: no
//! gateway, no sockets.

use crate::kserve_grpc::messages::{ModelInferRequest, ModelInferResponse};
use crate::kserve_grpc::{infer_request_json, infer_response_json, replace_model_name, unframe};
use prost::Message;

/// The name spliced in.
const UPSTREAM_NAME: &str = "up-credit.v2";

/// The target: `data` is the body of a `ModelInfer` call (and, read as a
/// message, an answer).
pub fn grpc_message(data: &[u8]) -> String {
    let message = match unframe(data) {
        Ok(message) => message,
        Err(err) => return format!("unframed: {err:?}"),
    };
    if let Ok(answer) = ModelInferResponse::decode(message) {
        let json = infer_response_json(&answer);
        assert_eq!(json["model_name"], answer.model_name.as_str());
        let outputs = json["outputs"].as_array().map_or(0, Vec::len);
        assert_eq!(outputs, answer.outputs.len(), "one REST output per tensor");
    }
    let request = match ModelInferRequest::decode(message) {
        Ok(request) => request,
        Err(_) => return "not a ModelInferRequest".to_owned(),
    };
    let json = infer_request_json(&request);
    let inputs = json["inputs"].as_array().map_or(0, Vec::len);
    assert_eq!(inputs, request.inputs.len(), "one REST input per tensor");
    assert!(
        serde_json::to_vec(&json).is_ok(),
        "the REST form is serializable"
    );
    let replaced = match replace_model_name(message, UPSTREAM_NAME) {
        Ok(replaced) => replaced,
        // prost skips unknown groups; the splice refuses them.
        Err(err) => return format!("decoded, not spliced: {err:?}"),
    };
    let spliced = match ModelInferRequest::decode(&replaced[..]) {
        Ok(spliced) => spliced,
        Err(err) => panic!("a spliced request no longer decodes: {err}"),
    };
    assert!(
        spliced.model_name == UPSTREAM_NAME || spliced.model_name == request.model_name,
        "the name is the upstream's, or there was none to replace"
    );
    // Compared by their encodings: a NaN in the tensors is not equal to itself.
    let named = spliced.model_name == UPSTREAM_NAME;
    let unnamed = ModelInferRequest {
        model_name: request.model_name.clone(),
        ..spliced
    };
    assert!(
        unnamed.encode_to_vec() == request.encode_to_vec(),
        "only the name changes"
    );
    format!("spliced (renamed: {named}, inputs: {})", inputs.min(4))
}
