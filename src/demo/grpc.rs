//! The sample credit model over KServe V2 gRPC (`ModelInfer` of
//! `inference.GRPCInferenceService`), for the demo's `kserve_v2_grpc`
//! model: the same scores as the REST form, as a framed
//! `ModelInferResponse` and the `grpc-status` trailer.

use super::{CREDIT_FEATURES, credit_score};
use crate::kserve_grpc::messages::model_infer_response::InferOutputTensor;
use crate::kserve_grpc::messages::{InferTensorContents, ModelInferRequest, ModelInferResponse};
use crate::kserve_grpc::{Code, frame, unframe};
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body::Frame;
use prost::Message;

/// Name of the sample credit model served over gRPC.
pub const CREDIT_GRPC_MODEL: &str = "credit-scoring-grpc";

/// The framed `ModelInferRequest` of one applicant (`age_years`,
/// `credit_amount`, `duration_months`), as a client sends it.
pub fn credit_request(row: [f32; 3]) -> Bytes {
    let request = ModelInferRequest {
        model_name: CREDIT_GRPC_MODEL.into(),
        inputs: vec![
            crate::kserve_grpc::messages::model_infer_request::InferInputTensor {
                name: "features".into(),
                datatype: "FP32".into(),
                shape: vec![1, CREDIT_FEATURES.len() as i64],
                contents: Some(InferTensorContents {
                    fp32_contents: row.to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    frame(&request.encode_to_vec())
}

/// `ModelInfer`: scores each row of the `features` tensor.
pub(super) async fn model_infer(body: Bytes) -> Response {
    let request = match unframe(&body).map(ModelInferRequest::decode) {
        Ok(Ok(request)) => request,
        _ => return status(Code::InvalidArgument, "not one ModelInferRequest"),
    };
    let Some((at, input)) = request
        .inputs
        .iter()
        .enumerate()
        .find(|(_, input)| input.name == "features")
    else {
        return status(Code::InvalidArgument, "missing input tensor `features`");
    };
    let values: Vec<f64> = match (&input.contents, request.raw_input_contents.get(at)) {
        (_, Some(raw)) => raw
            .chunks_exact(4)
            .map(|le| f64::from(f32::from_le_bytes([le[0], le[1], le[2], le[3]])))
            .collect(),
        (Some(contents), None) => contents
            .fp32_contents
            .iter()
            .map(|v| f64::from(*v))
            .collect(),
        (None, None) => Vec::new(),
    };
    let columns = CREDIT_FEATURES.len();
    if values.is_empty() || !values.len().is_multiple_of(columns) {
        return status(Code::InvalidArgument, "`features` must have N*3 values");
    }
    let scores: Vec<f32> = values
        .chunks_exact(columns)
        .map(|row| credit_score(row) as f32)
        .collect();
    let answer = ModelInferResponse {
        model_name: request.model_name,
        model_version: "1".into(),
        id: request.id,
        outputs: vec![InferOutputTensor {
            name: "score".into(),
            datatype: "FP32".into(),
            shape: vec![scores.len() as i64, 1],
            contents: Some(InferTensorContents {
                fp32_contents: scores,
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = [
        Ok::<_, std::convert::Infallible>(Frame::data(frame(&answer.encode_to_vec()))),
        Ok(Frame::trailers(trailers)),
    ];
    let body = Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )));
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// A trailers-only gRPC answer with `code` and `message`.
fn status(code: Code, message: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static(code.as_str()));
    if let Ok(message) = HeaderValue::from_str(&crate::kserve_grpc::encode_message(message)) {
        headers.insert("grpc-message", message);
    }
    response
}
