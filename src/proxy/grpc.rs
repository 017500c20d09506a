//! KServe V2 over gRPC (`inference.GRPCInferenceService`) on the public
//! listener: a unary call is one HTTP/2 POST whose body is one
//! length-prefixed protobuf message. `ModelInfer`, `ModelMetadata` and
//! `ModelReady` name a model in their message; they are resolved, approved,
//! judged and recorded as the REST routes are, and forwarded to the
//! model's gRPC server over HTTP/2 with the message's bytes unchanged (the
//! name is spliced in when the version has an `upstream_model`). The
//! answer streams back as any HTTP/2 answer does: its trailers, which
//! carry the upstream's `grpc-status`, leave only once the stream's end
//! is recorded. `ServerLive`, `ServerReady` and `ServerMetadata` are the
//! gateway's own, as `/v2/health/*` and `GET /v2` are over REST. Every
//! refusal is a gRPC status (`ErrorShape::Grpc`).

use super::ProxyState;
use super::budget::BufferUse;
use super::error::{GOVGATE_CODE_HEADER, ProxyError, grpc_status_response};
use super::forward::{Forward, forward, refuse};
use super::ingress::{begin, caller_missing, client_ip, read_body, resolve_model, resolve_version};
use super::recorder::Draft;
use crate::decision::{Capture, Protocol, Route};
use crate::kserve_grpc::messages::{
    ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelReadyRequest,
    ServerLiveResponse, ServerMetadataResponse, ServerReadyResponse,
};
use crate::kserve_grpc::{
    Code, Method, SERVICE_PATH, frame, infer_request_json, infer_response_json,
    is_grpc_content_type, replace_model_name, unframe,
};
use crate::listener::ConnectionAbort;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body::Frame;
use prost::Message;

/// `POST /inference.GRPCInferenceService/{method}`.
pub(super) async fn call(State(state): State<ProxyState>, request: Request) -> Response {
    let method = request
        .uri()
        .path()
        .strip_prefix(SERVICE_PATH)
        .and_then(Method::from_name);
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_grpc_content_type);
    let (mut parts, body) = request.into_parts();
    if !grpc {
        // Not a gRPC call: answered as any unknown REST route is.
        let draft = begin(&state, &parts, Route::Unmatched);
        return refuse(&state, draft, ProxyError::RouteNotFound).await;
    }
    let route = match method {
        Some(Method::ModelInfer) => Route::KserveGrpcInfer,
        Some(Method::ModelMetadata) => Route::KserveGrpcMetadata,
        Some(Method::ModelReady) => Route::KserveGrpcReady,
        Some(Method::ServerLive) => {
            return own_answer(&ServerLiveResponse { live: true });
        }
        Some(Method::ServerReady) => {
            return own_answer(&ServerReadyResponse {
                ready: state.ready(),
            });
        }
        Some(Method::ServerMetadata) => {
            return own_answer(&ServerMetadataResponse {
                name: "govgate".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                extensions: Vec::new(),
            });
        }
        // ModelStreamInfer (not in the KServe proto) and any other name.
        None => Route::KserveGrpcOther,
    };
    let mut draft = begin(&state, &parts, route);
    let Some(method) = method else {
        return refuse(&state, draft, ProxyError::RouteNotFound).await;
    };
    let response = match resolve(&state, &mut draft, &mut parts, body, method).await {
        Ok(forward_request) => forward(&state, draft, forward_request).await,
        Err(err) => refuse(&state, draft, err).await,
    };
    held_as_status(response)
}

/// The message of a call that names a model, resolved to the version
/// that serves it, with the REST form the policies and KPIs read.
async fn resolve(
    state: &ProxyState,
    draft: &mut Draft,
    parts: &mut Parts,
    body: Body,
    method: Method,
) -> Result<Forward, ProxyError> {
    if let Some(err) = caller_missing(state, draft, parts) {
        return Err(err);
    }
    let body = read_body(state, &parts.headers, body).await?;
    draft.request = Capture::of_complete(&body, state.limits.capture_bytes);
    let message = unframe(&body).map_err(|err| ProxyError::MalformedBody(err.to_string()))?;
    let malformed = |err: prost::DecodeError| {
        ProxyError::MalformedBody(format!("not a {} message: {err}", message_name(method)))
    };
    let (name, requested, document) = match method {
        Method::ModelInfer => {
            let request = ModelInferRequest::decode(message).map_err(malformed)?;
            let json = serde_json::to_vec(&infer_request_json(&request))
                .map_err(|err| ProxyError::Internal(format!("REST form: {err}")))?;
            // The REST form is held with the request (for the policies
            // and the KPIs) and can be several times the tensors' bytes:
            // it is counted in the body budget too.
            let reservation = state.budget.reserve(json.len(), BufferUse::Request).ok_or(
                ProxyError::Overloaded {
                    what: "request body",
                },
            )?;
            (
                request.model_name,
                request.model_version,
                Some(reservation.attach(Bytes::from(json))),
            )
        }
        // Their REST twins are GETs without a body: the policies read null.
        Method::ModelMetadata => {
            let request = ModelMetadataRequest::decode(message).map_err(malformed)?;
            (
                request.name,
                request.version,
                Some(Bytes::from_static(b"null")),
            )
        }
        Method::ModelReady => {
            let request = ModelReadyRequest::decode(message).map_err(malformed)?;
            (
                request.name,
                request.version,
                Some(Bytes::from_static(b"null")),
            )
        }
        Method::ServerLive | Method::ServerReady | Method::ServerMetadata => {
            return Err(ProxyError::Internal("a server call names no model".into()));
        }
    };
    let model = resolve_model(state, draft, &name, Protocol::KserveV2Grpc)?;
    let readable = document.as_deref().unwrap_or_default();
    super::subject::note(state, draft, model, &parts.headers, readable);
    // SPEC: an empty version lets the server choose (here: the active one).
    let requested = (!requested.is_empty()).then_some(requested.as_str());
    let version = resolve_version(state, model, draft, requested)?;
    let body = match &version.upstream_model {
        Some(upstream_name) if *upstream_name != name => {
            let message = replace_model_name(message, upstream_name)
                .map_err(|err| ProxyError::MalformedBody(err.to_string()))?;
            frame(&message)
        }
        _ => body,
    };
    Ok(Forward {
        version,
        path_and_query: parts.uri.path().to_owned(),
        method: parts.method.clone(),
        headers: std::mem::take(&mut parts.headers),
        client_ip: client_ip(parts),
        abort: parts.extensions.get::<ConnectionAbort>().cloned(),
        body,
        document,
    })
}

fn message_name(method: Method) -> &'static str {
    match method {
        Method::ModelInfer => "ModelInferRequest",
        Method::ModelMetadata => "ModelMetadataRequest",
        Method::ModelReady => "ModelReadyRequest",
        Method::ServerLive => "ServerLiveRequest",
        Method::ServerReady => "ServerReadyRequest",
        Method::ServerMetadata => "ServerMetadataRequest",
    }
}

/// The REST form of a `ModelInferResponse` answer (one framed message),
/// for the KPIs; none when the answer holds no such message (a gRPC
/// error carries none).
pub(super) fn answer_json(answer: &[u8]) -> Option<Bytes> {
    let message = unframe(answer).ok()?;
    let response = ModelInferResponse::decode(message).ok()?;
    serde_json::to_vec(&infer_response_json(&response))
        .ok()
        .map(Bytes::from)
}

/// A gateway's own answer: the message, then `grpc-status: 0`.
fn own_answer(message: &impl Message) -> Response {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = [
        Ok::<_, std::convert::Infallible>(Frame::data(frame(&message.encode_to_vec()))),
        Ok(Frame::trailers(trailers)),
    ];
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let mut response = Response::new(Body::new(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// A held answer (the gateway's 202 and where to poll, over REST) as a
/// gRPC status: `ABORTED`, `govgate-code: held`, the decision's and the
/// review's headers kept. An upstream's own answer (gRPC) passes.
fn held_as_status(response: Response) -> Response {
    let grpc = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_grpc_content_type);
    if response.status() != StatusCode::ACCEPTED || grpc {
        return response;
    }
    let (parts, _body) = response.into_parts();
    let poll = parts
        .headers
        .get(header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let message = format!("held: the answer is held for human review; poll {poll}");
    let mut held = grpc_status_response(Code::Aborted, &message, "held");
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE
            && name != header::CONTENT_LENGTH
            && name.as_str() != GOVGATE_CODE_HEADER
        {
            held.headers_mut().insert(name.clone(), value.clone());
        }
    }
    held
}
