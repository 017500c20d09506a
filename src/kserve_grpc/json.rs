//! The KServe V2 REST form (JSON) of a gRPC `ModelInferRequest` or
//! `ModelInferResponse`: what the REST route's body would have been, so
//! that policies (`input.request`, `input.response`) and KPI selectors
//! (tensors by name) read a gRPC call exactly as its REST twin.
//!
//! SPEC (KServe V2 REST, "Inference Request JSON Object"): `id`,
//! `parameters`, `inputs` of `{name, shape, datatype, parameters, data}`,
//! `outputs` of `{name, parameters}`; the answer has `model_name`,
//! `model_version`, `id`, `parameters` and `outputs` with `data`. `data`
//! is given flat, in row-major order, as the REST form allows. Members
//! the gRPC message leaves empty are left out.
//!
//! SPEC (grpc_predict_v2.proto): a tensor's data is in its typed
//! `contents`, or, when `raw_input_contents` / `raw_output_contents` is
//! used, in the raw entry of the same index: little-endian values of the
//! tensor's datatype, and for BYTES each element as a 4-byte little-endian
//! length then its bytes.

use super::messages::{
    InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse,
    infer_parameter::ParameterChoice,
};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The REST form of a `ModelInferRequest`.
pub fn infer_request_json(request: &ModelInferRequest) -> Value {
    let inputs: Vec<Value> = request
        .inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let raw = request.raw_input_contents.get(index);
            tensor(
                &input.name,
                &input.datatype,
                &input.shape,
                &input.parameters,
                input.contents.as_ref(),
                raw.map(Vec::as_slice),
            )
        })
        .collect();
    let mut object = Map::new();
    optional_string(&mut object, "id", &request.id);
    parameters_member(&mut object, &request.parameters);
    object.insert("inputs".into(), inputs.into());
    if !request.outputs.is_empty() {
        let outputs: Vec<Value> = request
            .outputs
            .iter()
            .map(|output| {
                let mut object = Map::new();
                object.insert("name".into(), output.name.clone().into());
                parameters_member(&mut object, &output.parameters);
                Value::Object(object)
            })
            .collect();
        object.insert("outputs".into(), outputs.into());
    }
    Value::Object(object)
}

/// The REST form of a `ModelInferResponse`.
pub fn infer_response_json(response: &ModelInferResponse) -> Value {
    let outputs: Vec<Value> = response
        .outputs
        .iter()
        .enumerate()
        .map(|(index, output)| {
            let raw = response.raw_output_contents.get(index);
            tensor(
                &output.name,
                &output.datatype,
                &output.shape,
                &output.parameters,
                output.contents.as_ref(),
                raw.map(Vec::as_slice),
            )
        })
        .collect();
    let mut object = Map::new();
    object.insert("model_name".into(), response.model_name.clone().into());
    optional_string(&mut object, "model_version", &response.model_version);
    optional_string(&mut object, "id", &response.id);
    parameters_member(&mut object, &response.parameters);
    object.insert("outputs".into(), outputs.into());
    Value::Object(object)
}

fn optional_string(object: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        object.insert(key.into(), value.into());
    }
}

fn parameters_member(
    object: &mut Map<String, Value>,
    parameters: &BTreeMap<String, InferParameter>,
) {
    if parameters.is_empty() {
        return;
    }
    let map: Map<String, Value> = parameters
        .iter()
        .map(|(name, parameter)| {
            let value = match &parameter.parameter_choice {
                Some(ParameterChoice::BoolParam(value)) => json!(value),
                Some(ParameterChoice::Int64Param(value)) => json!(value),
                Some(ParameterChoice::StringParam(value)) => json!(value),
                None => Value::Null,
            };
            (name.clone(), value)
        })
        .collect();
    object.insert("parameters".into(), Value::Object(map));
}

fn tensor(
    name: &str,
    datatype: &str,
    shape: &[i64],
    parameters: &BTreeMap<String, InferParameter>,
    contents: Option<&InferTensorContents>,
    raw: Option<&[u8]>,
) -> Value {
    let data = match raw {
        Some(raw) => raw_data(datatype, raw).map_or(Value::Null, Value::Array),
        None => Value::Array(
            contents
                .map(|c| typed_data(datatype, c))
                .unwrap_or_default(),
        ),
    };
    let mut object = Map::new();
    object.insert("name".into(), name.into());
    object.insert("shape".into(), shape.to_vec().into());
    object.insert("datatype".into(), datatype.into());
    parameters_member(&mut object, parameters);
    object.insert("data".into(), data);
    Value::Object(object)
}

/// A 32-bit float as the REST form writes it: its shortest decimal (so
/// `0.9f32` is `0.9`, not `0.8999999761581421`); not finite is null.
fn float32(value: f32) -> Value {
    if !value.is_finite() {
        return Value::Null;
    }
    value
        .to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn float64(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

fn text(bytes: &[u8]) -> Value {
    String::from_utf8_lossy(bytes).into_owned().into()
}

/// The typed contents field that holds `datatype`'s values.
fn typed_data(datatype: &str, contents: &InferTensorContents) -> Vec<Value> {
    match datatype {
        "BOOL" => contents.bool_contents.iter().map(|v| json!(v)).collect(),
        "INT8" | "INT16" | "INT32" => contents.int_contents.iter().map(|v| json!(v)).collect(),
        "INT64" => contents.int64_contents.iter().map(|v| json!(v)).collect(),
        "UINT8" | "UINT16" | "UINT32" => contents.uint_contents.iter().map(|v| json!(v)).collect(),
        "UINT64" => contents.uint64_contents.iter().map(|v| json!(v)).collect(),
        // FP16 and BF16 have no field of their own; fp32_contents holds them.
        "FP16" | "BF16" | "FP32" => contents
            .fp32_contents
            .iter()
            .copied()
            .map(float32)
            .collect(),
        "FP64" => contents
            .fp64_contents
            .iter()
            .copied()
            .map(float64)
            .collect(),
        "BYTES" => contents.bytes_contents.iter().map(|v| text(v)).collect(),
        _ => Vec::new(),
    }
}

/// Little-endian values of `datatype`, or none when the bytes do not
/// split into whole elements (or the datatype is unknown).
fn raw_data(datatype: &str, raw: &[u8]) -> Option<Vec<Value>> {
    fn each<const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> Value) -> Option<Vec<Value>> {
        let (chunks, rest) = raw.as_chunks::<N>();
        rest.is_empty()
            .then(|| chunks.iter().map(|chunk| f(*chunk)).collect())
    }
    match datatype {
        "BOOL" => each::<1>(raw, |[b]| json!(b != 0)),
        "UINT8" => each::<1>(raw, |[b]| json!(b)),
        "INT8" => each::<1>(raw, |b| json!(i8::from_le_bytes(b))),
        "UINT16" => each::<2>(raw, |b| json!(u16::from_le_bytes(b))),
        "INT16" => each::<2>(raw, |b| json!(i16::from_le_bytes(b))),
        "UINT32" => each::<4>(raw, |b| json!(u32::from_le_bytes(b))),
        "INT32" => each::<4>(raw, |b| json!(i32::from_le_bytes(b))),
        "UINT64" => each::<8>(raw, |b| json!(u64::from_le_bytes(b))),
        "INT64" => each::<8>(raw, |b| json!(i64::from_le_bytes(b))),
        "FP16" => each::<2>(raw, |b| float32(half_to_f32(u16::from_le_bytes(b)))),
        "BF16" => each::<2>(raw, |b| {
            float32(f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16))
        }),
        "FP32" => each::<4>(raw, |b| float32(f32::from_le_bytes(b))),
        "FP64" => each::<8>(raw, |b| float64(f64::from_le_bytes(b))),
        "BYTES" => {
            let mut values = Vec::new();
            let mut rest = raw;
            while let Some((len, tail)) = rest.split_first_chunk::<4>() {
                let len = u32::from_le_bytes(*len) as usize;
                let element = tail.get(..len)?;
                values.push(text(element));
                rest = &tail[len..];
            }
            rest.is_empty().then_some(values)
        }
        _ => None,
    }
}

/// IEEE 754 binary16 to binary32 (exact: every half is a float).
fn half_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f32::from(bits & 0x3ff);
    match exponent {
        0 => sign * fraction * 2f32.powi(-24),
        0x1f if fraction == 0.0 => sign * f32::INFINITY,
        0x1f => f32::NAN,
        _ => sign * (1.0 + fraction / 1024.0) * 2f32.powi(exponent - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kserve_grpc::messages::{
        model_infer_request::{InferInputTensor, InferRequestedOutputTensor},
        model_infer_response::InferOutputTensor,
    };

    #[test]
    fn typed_and_raw_contents_give_the_rest_form() {
        let request = ModelInferRequest {
            model_name: "credit".into(),
            id: "r1".into(),
            inputs: vec![
                InferInputTensor {
                    name: "features".into(),
                    datatype: "FP32".into(),
                    shape: vec![2, 2],
                    contents: Some(InferTensorContents {
                        fp32_contents: vec![0.9, 1.5, -2.0, 0.1],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                InferInputTensor {
                    name: "group".into(),
                    datatype: "BYTES".into(),
                    shape: vec![2],
                    contents: Some(InferTensorContents {
                        bytes_contents: vec![b"a".to_vec(), b"b".to_vec()],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ],
            outputs: vec![InferRequestedOutputTensor {
                name: "score".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            infer_request_json(&request),
            json!({"id": "r1", "inputs": [
                {"name": "features", "shape": [2, 2], "datatype": "FP32", "data": [0.9, 1.5, -2.0, 0.1]},
                {"name": "group", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
            ], "outputs": [{"name": "score"}]})
        );

        let mut raw_bytes = Vec::new();
        for s in ["yes", ""] {
            raw_bytes.extend_from_slice(&(s.len() as u32).to_le_bytes());
            raw_bytes.extend_from_slice(s.as_bytes());
        }
        let response = ModelInferResponse {
            model_name: "credit".into(),
            model_version: "2".into(),
            outputs: vec![
                InferOutputTensor {
                    name: "score".into(),
                    datatype: "FP32".into(),
                    shape: vec![2],
                    ..Default::default()
                },
                InferOutputTensor {
                    name: "label".into(),
                    datatype: "BYTES".into(),
                    shape: vec![2],
                    ..Default::default()
                },
                InferOutputTensor {
                    name: "h".into(),
                    datatype: "FP16".into(),
                    shape: vec![1],
                    ..Default::default()
                },
            ],
            raw_output_contents: vec![
                [0.75f32.to_le_bytes(), 0.3f32.to_le_bytes()].concat(),
                raw_bytes,
                0x3c00u16.to_le_bytes().to_vec(),
            ],
            ..Default::default()
        };
        assert_eq!(
            infer_response_json(&response),
            json!({"model_name": "credit", "model_version": "2", "outputs": [
                {"name": "score", "shape": [2], "datatype": "FP32", "data": [0.75, 0.3]},
                {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["yes", ""]},
                {"name": "h", "shape": [1], "datatype": "FP16", "data": [1.0]},
            ]})
        );
    }

    #[test]
    fn raw_bytes_that_do_not_split_into_elements_are_null_data() {
        assert_eq!(raw_data("FP32", &[0, 0, 0]), None);
        assert_eq!(raw_data("BYTES", &[5, 0, 0, 0, b'a']), None);
        assert_eq!(raw_data("NOPE", &[]), None);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x0001), 2f32.powi(-24));
    }
}
