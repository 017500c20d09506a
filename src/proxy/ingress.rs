//! Routes and handlers: each handler resolves model and version from its
//! protocol's request shape, then hands over to `forward`. Anything that
//! stops a request goes through `forward::refuse`, so it is recorded too.
//! A guard around every route refuses unsafe paths before routing
//! (`path.rs`) and completes answers that have no body.

use super::ProxyState;
use super::body::check as check_json;
use super::budget::BufferUse;
use super::error::{ProxyError, ServedModels};
use super::forward::{Forward, forward, refuse};
use super::headers::MODEL_VERSION_HEADER;
use super::recorder::Draft;
use super::serving::ServableVersion;
use crate::config::ModelConfig;
use crate::decision::{
    Capped, Capture, DecisionId, MAX_NAME_BYTES, MAX_PATH_BYTES, Protocol, Route,
};
use crate::listener::ConnectionAbort;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderMap, StatusCode, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;

pub(super) fn routes(state: ProxyState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/completions", post(openai_completions))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/v1/models", get(openai_models))
        .route("/v1/responses", post(openai_responses))
        .route(
            "/v1/responses/{id}",
            get(response_retrieve).delete(response_delete),
        )
        .route("/v1/responses/{id}/cancel", post(response_cancel))
        .route("/v1/responses/{id}/input_items", get(response_input_items))
        .route("/v1/messages", post(anthropic_messages))
        .route(
            "/inference.GRPCInferenceService/{method}",
            post(super::grpc::call),
        )
        .route("/v2", get(kserve_server_metadata))
        .route("/v2/health/live", get(health))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(kserve_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(kserve_metadata_versioned),
        )
        .route("/v2/models/{name}/infer", post(kserve_infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(kserve_infer_versioned),
        )
        .fallback(http_prefix)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Runs around every route: refuses a path the gateway will not forward
/// (recorded, before any handler or body read), and completes answers
/// that carry no body.
async fn guard(
    State(state): State<ProxyState>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    // CONNECT opens a tunnel: the upstream client would turn it into
    // `CONNECT host:port`, dropping the model's base path, and pass bytes
    // the ledger cannot see. No model route takes it.
    if request.method() == http::Method::CONNECT {
        let (parts, _body) = request.into_parts();
        let draft = begin(&state, &parts, Route::Unmatched);
        return refuse(&state, draft, ProxyError::MethodNotAllowed).await;
    }
    if let Err(bad) = super::path::check(request.uri().path()) {
        let (parts, _body) = request.into_parts();
        let draft = begin(&state, &parts, Route::Unmatched);
        return refuse(&state, draft, ProxyError::PathNotAllowed(bad.describe())).await;
    }
    // The bearer token is checked here, before any handler runs: a token
    // signed by a key the set in force lacks (a rotation at the issuer)
    // may wait for a fresh key set, and a signature check leaves the
    // async worker. The handler reads the result.
    if let Some(jwt) = &state.jwt
        && let Some(token) = super::jwt::bearer_jwt(request.headers())
    {
        let checked = super::jwt::TokenChecked(jwt.verify_request(token).await);
        request.extensions_mut().insert(checked);
    }
    let head = request.method() == http::Method::HEAD;
    let response = next.run(request).await;
    super::bodiless::complete(head, response).await
}

/// Starts the decision for a request: fresh id, caller identity and
/// path, each capped as the record keeps it.
pub(super) fn begin(state: &ProxyState, parts: &Parts, route: Route) -> Draft {
    let identified = identify(state, &parts.headers, &parts.extensions);
    let caller = Capped::new(
        identified.caller.as_deref().unwrap_or("anonymous"),
        MAX_NAME_BYTES,
    );
    let mut draft = Draft::start(DecisionId::random(), caller.kept, route);
    draft.caller_refusal = identified.refusal;
    draft.api_key = identified.key;
    draft.auth = identified.auth;
    draft.claims = identified.claims;
    draft.cut.caller = caller.whole_sha256;
    let path = Capped::new(parts.uri.path(), MAX_PATH_BYTES);
    draft.path = path.kept;
    draft.cut.path = path.whole_sha256;
    draft
}

/// Who is calling, from the request's headers, TCP peer, client
/// certificate and bearer token (checked by [`guard`] beforehand).
pub(super) fn identify(
    state: &ProxyState,
    headers: &HeaderMap,
    extensions: &http::Extensions,
) -> super::callers::Identified {
    super::callers::identify(
        &state.auth,
        &state.caller_header,
        headers,
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip()),
        extensions
            .get::<crate::listener::ClientCertificate>()
            .map(|certificate| certificate.0.as_ref()),
        state.jwt.as_ref().map(|auth| super::jwt::RequestToken {
            auth,
            checked: extensions.get::<super::jwt::TokenChecked>(),
        }),
        // Read only for a key with an expiry: most requests need no clock.
        || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs() as i64)
        },
    )
}

/// A caller whose claim is refused, or none where one is required. A
/// gateway API key is the gateway's: it never goes to the upstream.
pub(super) fn caller_missing(
    state: &ProxyState,
    draft: &Draft,
    parts: &mut Parts,
) -> Option<ProxyError> {
    if let Some(refusal) = draft.caller_refusal {
        return Some(ProxyError::CallerUnauthenticated(refusal));
    }
    // Whichever way the caller was named (a client certificate wins), a
    // gateway key or token stays here.
    let gateways = (!state.auth.api_keys.is_empty()
        && super::callers::gateway_key(&parts.headers).is_some())
        || (state.jwt.is_some() && super::jwt::bearer_jwt(&parts.headers).is_some());
    if gateways {
        parts.headers.remove(http::header::AUTHORIZATION);
    }
    (state.require_caller && draft.caller == "anonymous")
        .then(|| ProxyError::CallerMissing(state.caller_header.to_string()))
}

pub(super) fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

fn path_and_query(path: &str, parts: &Parts) -> String {
    match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    }
}

/// Reads the whole request body within the size limit, the body timeout
/// and the memory budget (503 `overloaded` when it is spent).
pub(super) async fn read_body(
    state: &ProxyState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ProxyError> {
    let limit = state.limits.max_request_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    let declared = declared.unwrap_or(0) as usize;
    let overloaded = || ProxyError::Overloaded {
        what: "request body",
    };
    let mut reservation = state
        .budget
        .reserve(declared, BufferUse::Request)
        .ok_or_else(overloaded)?;
    let read = async move {
        let mut body = body;
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ProxyError::RequestBodyUnreadable)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let len = buf.len() + data.len();
            if len > limit {
                return Err(ProxyError::BodyTooLarge { limit });
            }
            if len > reservation.bytes() && !reservation.grow(len - reservation.bytes()) {
                return Err(overloaded());
            }
            if buf.is_empty() && body.is_end_stream() {
                // One frame: keep it as it is, no copy.
                return Ok(reservation.attach(data));
            }
            buf.extend_from_slice(&data);
        }
        Ok(reservation.into_bytes(buf))
    };
    tokio::time::timeout(state.timeouts.request_body, read)
        .await
        .map_err(|_| ProxyError::RequestBodyTimeout(state.timeouts.request_body))?
}

/// The refusal of `name`, naming the models served under `protocol`.
fn unknown_model(state: &ProxyState, name: String, protocol: Protocol) -> ProxyError {
    let names = state
        .models
        .iter()
        .filter(|model| model.protocol == protocol)
        .map(|model| model.name.as_str());
    let listing = (protocol == Protocol::Openai).then_some("GET /v1/models");
    ProxyError::UnknownModel {
        name,
        served: Some(ServedModels::new(names, listing)),
    }
}

/// The model a request names, checked against config and protocol. A
/// name longer than any configured one is refused without a look-up and
/// recorded cut.
pub(super) fn resolve_model<'a>(
    state: &'a ProxyState,
    draft: &mut Draft,
    name: &str,
    protocol: Protocol,
) -> Result<&'a ModelConfig, ProxyError> {
    if name.len() > MAX_NAME_BYTES {
        let capped = Capped::new(name, MAX_NAME_BYTES);
        draft.model = Some(capped.kept.clone());
        draft.cut.model = capped.whole_sha256;
        return Err(unknown_model(state, capped.kept, protocol));
    }
    draft.model = Some(name.to_owned());
    let model = state
        .model(name)
        .filter(|model| model.protocol == protocol)
        .ok_or_else(|| unknown_model(state, name.to_owned(), protocol))?;
    draft.model_known = true;
    draft.protocol = Some(protocol);
    if let Some(key) = &draft.api_key
        && key
            .models
            .as_ref()
            .is_some_and(|models| !models.iter().any(|allowed| allowed == name))
    {
        return Err(ProxyError::CallerForbidden {
            model: model.name.clone(),
        });
    }
    state
        .rate
        .take(&draft.caller, &model.name)
        .map_err(|retry_after| ProxyError::RateLimited {
            model: model.name.clone(),
            retry_after,
        })?;
    Ok(model)
}

/// The requested version (path or header), else the model's active one,
/// if the serving table allows it. A label longer than any version can
/// be is refused without a look-up and recorded cut.
pub(super) fn resolve_version(
    state: &ProxyState,
    model: &ModelConfig,
    draft: &mut Draft,
    requested: Option<&str>,
) -> Result<Arc<ServableVersion>, ProxyError> {
    // Only a label over the cap needs cutting (and its digest).
    if let Some(label) = requested.filter(|label| label.len() > MAX_NAME_BYTES) {
        let capped = Capped::new(label, MAX_NAME_BYTES);
        draft.version = Some(capped.kept.clone());
        draft.cut.version = capped.whole_sha256;
        return Err(ProxyError::UnknownModelVersion {
            model: model.name.clone(),
            version: capped.kept,
        });
    }
    if let Err(err) = state.serving.check_fresh() {
        draft.version = requested.map(str::to_owned);
        return Err(err);
    }
    let version = match state.serving.current().resolve(&model.name, requested) {
        Ok(version) => version,
        Err(err) => {
            // The refusal's decision names the version that was asked for,
            // or the revoked one an unversioned call would have reached.
            draft.version = match (&err, requested) {
                (ProxyError::VersionRevoked { version, .. }, None) => Some(version.clone()),
                _ => requested.map(str::to_owned),
            };
            return Err(err);
        }
    };
    draft.version = Some(version.version.clone());
    draft.approval_seq = version.approval_seq;
    Ok(version)
}

/// The version a `govgate-model-version` header asks for. One header of
/// visible ASCII, or none: anything else is refused rather than ignored
/// (ignoring it would serve the active version to a caller who asked for
/// another), and recorded as received (lossily decoded, capped).
fn version_header<'a>(parts: &'a Parts, draft: &mut Draft) -> Result<Option<&'a str>, ProxyError> {
    let mut values = parts.headers.get_all(MODEL_VERSION_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(label) if values.next().is_none() => Ok(Some(label)),
        _ => {
            let capped = Capped::new(&String::from_utf8_lossy(value.as_bytes()), MAX_NAME_BYTES);
            draft.version = Some(capped.kept);
            draft.cut.version = capped.whole_sha256;
            Err(ProxyError::InvalidModelVersion)
        }
    }
}

/// The JSON checks every OpenAI and KServe V2 body passes (`body.rs`).
fn check_json_body(body: &[u8]) -> Result<(), ProxyError> {
    check_json(body).map_err(|bad| ProxyError::MalformedBody(bad.to_string()))
}

// ---- openai ----

async fn openai_chat(State(state): State<ProxyState>, request: Request) -> Response {
    openai(state, Route::OpenaiChatCompletions, request).await
}

async fn openai_completions(State(state): State<ProxyState>, request: Request) -> Response {
    openai(state, Route::OpenaiCompletions, request).await
}

async fn openai_embeddings(State(state): State<ProxyState>, request: Request) -> Response {
    openai(state, Route::OpenaiEmbeddings, request).await
}

/// `POST /v1/responses`: the OpenAI Responses API, model from the body as
/// for chat completions; the answer's response id is remembered
/// (`responses.rs`) for the calls below.
async fn openai_responses(State(state): State<ProxyState>, request: Request) -> Response {
    openai(state, Route::OpenaiResponses, request).await
}

async fn response_retrieve(
    State(state): State<ProxyState>,
    id: Named<String>,
    request: Request,
) -> Response {
    stored_response(state, Route::OpenaiResponsesRetrieve, id, request).await
}

async fn response_delete(
    State(state): State<ProxyState>,
    id: Named<String>,
    request: Request,
) -> Response {
    stored_response(state, Route::OpenaiResponsesDelete, id, request).await
}

async fn response_cancel(
    State(state): State<ProxyState>,
    id: Named<String>,
    request: Request,
) -> Response {
    stored_response(state, Route::OpenaiResponsesCancel, id, request).await
}

async fn response_input_items(
    State(state): State<ProxyState>,
    id: Named<String>,
    request: Request,
) -> Response {
    stored_response(state, Route::OpenaiResponsesInputItems, id, request).await
}

/// A call on a response created through the gateway: its path names no
/// model, so the model and version are those that created it, forwarded
/// only while that version may serve.
async fn stored_response(
    state: ProxyState,
    route: Route,
    id: Named<String>,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let mut draft = begin(&state, &parts, route);
    let Ok(Path(id)) = id else {
        let err = ProxyError::PathNotAllowed("a percent-encoded segment that is not UTF-8");
        return refuse(&state, draft, err).await;
    };
    match stored_response_resolve(&state, &mut draft, &mut parts, body, &id).await {
        Ok(forward_request) => forward(&state, draft, forward_request).await,
        Err(err) => refuse(&state, draft, err).await,
    }
}

async fn stored_response_resolve(
    state: &ProxyState,
    draft: &mut Draft,
    parts: &mut Parts,
    body: Body,
    id: &str,
) -> Result<Forward, ProxyError> {
    if let Some(err) = caller_missing(state, draft, parts) {
        return Err(err);
    }
    // Another caller's response is as unknown as one never created.
    let stored = state
        .responses
        .find(id)
        .filter(|stored| stored.caller == draft.caller)
        .ok_or_else(|| ProxyError::UnknownResponse(Capped::new(id, MAX_NAME_BYTES).kept))?;
    let body = read_body(state, &parts.headers, body).await?;
    draft.request = Capture::of_complete(&body, state.limits.capture_bytes);
    let model = resolve_model(state, draft, &stored.model, Protocol::Openai)?;
    let version = resolve_version(state, model, draft, Some(&stored.version))?;
    Ok(Forward {
        version,
        path_and_query: path_and_query(parts.uri.path(), parts),
        method: parts.method.clone(),
        headers: std::mem::take(&mut parts.headers),
        client_ip: client_ip(parts),
        abort: parts.extensions.get::<ConnectionAbort>().cloned(),
        body,
        document: None,
    })
}

async fn openai(state: ProxyState, route: Route, request: Request) -> Response {
    body_named(state, route, Protocol::Openai, request).await
}

/// A call of a protocol whose JSON body names the model (`openai`,
/// `anthropic`): the same resolution, the same pipeline.
async fn body_named(
    state: ProxyState,
    route: Route,
    protocol: Protocol,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let mut draft = begin(&state, &parts, route);
    match body_named_resolve(&state, &mut draft, &mut parts, body, protocol).await {
        Ok(forward_request) => forward(&state, draft, forward_request).await,
        Err(err) => refuse(&state, draft, err).await,
    }
}

async fn body_named_resolve(
    state: &ProxyState,
    draft: &mut Draft,
    parts: &mut Parts,
    body: Body,
    protocol: Protocol,
) -> Result<Forward, ProxyError> {
    if let Some(err) = caller_missing(state, draft, parts) {
        return Err(err);
    }
    let body = read_body(state, &parts.headers, body).await?;
    draft.request = Capture::of_complete(&body, state.limits.capture_bytes);
    check_json_body(&body)?;
    let (name, span) = model_field(&body)?;
    let model = resolve_model(state, draft, &name, protocol)?;
    super::subject::note(state, draft, model, &parts.headers, &body);
    let requested = version_header(parts, draft)?;
    let version = resolve_version(state, model, draft, requested)?;
    let body = match &version.upstream_model {
        Some(upstream_name) if *upstream_name != name => replace_model(&body, span, upstream_name),
        _ => body,
    };
    Ok(Forward {
        version,
        path_and_query: path_and_query(parts.uri.path(), parts),
        method: parts.method.clone(),
        headers: std::mem::take(&mut parts.headers),
        client_ip: client_ip(parts),
        abort: parts.extensions.get::<ConnectionAbort>().cloned(),
        body,
        document: None,
    })
}

#[derive(Deserialize)]
struct ModelField<'a> {
    #[serde(borrow)]
    model: &'a RawValue,
}

/// The `model` member of an OpenAI or Anthropic request body and its byte
/// range, so it can be replaced without re-serializing (the rest stays
/// byte-identical).
fn model_field(body: &[u8]) -> Result<(String, Range<usize>), ProxyError> {
    let field: ModelField<'_> = serde_json::from_slice(body).map_err(|err| {
        ProxyError::MalformedBody(format!(
            "expected a JSON object with a `model` member: {err}"
        ))
    })?;
    let raw = field.model.get();
    let name: String = serde_json::from_str(raw)
        .map_err(|_| ProxyError::MalformedBody("`model` must be a string".to_owned()))?;
    // The raw value borrows from `body`, so its address lies inside it.
    let start = (raw.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    let span = start..start + raw.len();
    if body.get(span.clone()) != Some(raw.as_bytes()) {
        return Err(ProxyError::Internal(
            "model field outside the body".to_owned(),
        ));
    }
    Ok((name, span))
}

fn replace_model(body: &Bytes, span: Range<usize>, upstream_name: &str) -> Bytes {
    let quoted = serde_json::Value::String(upstream_name.to_owned()).to_string();
    let mut out = BytesMut::with_capacity(body.len() + quoted.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[span.end..]);
    out.freeze()
}

/// `GET /v1/models`: the OpenAI models this gateway serves.
async fn openai_models(State(state): State<ProxyState>) -> Response {
    let data: Vec<_> = state
        .models
        .iter()
        .filter(|model| model.protocol == Protocol::Openai)
        .map(|model| serde_json::json!({ "id": model.name, "object": "model", "created": 0, "owned_by": "govgate" }))
        .collect();
    json_response(
        StatusCode::OK,
        serde_json::json!({ "object": "list", "data": data }),
    )
}

// ---- anthropic ----

/// `POST /v1/messages`: the Anthropic Messages API. The model is named in
/// the body as for OpenAI; streamed answers are server-sent events, which
/// pass as any stream does.
async fn anthropic_messages(State(state): State<ProxyState>, request: Request) -> Response {
    body_named(
        state,
        Route::AnthropicMessages,
        Protocol::Anthropic,
        request,
    )
    .await
}

// ---- kserve v2 ----

/// A KServe route's path parameters, or why axum could not decode them.
type Named<T> = Result<Path<T>, PathRejection>;

async fn kserve_infer(
    State(state): State<ProxyState>,
    params: Named<String>,
    request: Request,
) -> Response {
    let named = params.map(|Path(name)| (name, None));
    kserve(state, Route::KserveInfer, named, request).await
}

async fn kserve_infer_versioned(
    State(state): State<ProxyState>,
    params: Named<(String, String)>,
    request: Request,
) -> Response {
    let named = params.map(|Path((name, version))| (name, Some(version)));
    kserve(state, Route::KserveInfer, named, request).await
}

async fn kserve_metadata(
    State(state): State<ProxyState>,
    params: Named<String>,
    request: Request,
) -> Response {
    let named = params.map(|Path(name)| (name, None));
    kserve(state, Route::KserveMetadata, named, request).await
}

async fn kserve_metadata_versioned(
    State(state): State<ProxyState>,
    params: Named<(String, String)>,
    request: Request,
) -> Response {
    let named = params.map(|Path((name, version))| (name, Some(version)));
    kserve(state, Route::KserveMetadata, named, request).await
}

async fn kserve(
    state: ProxyState,
    route: Route,
    named: Result<(String, Option<String>), PathRejection>,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let mut draft = begin(&state, &parts, route);
    let (name, version) = match named {
        Ok(named) => named,
        // axum's own answer would be plain text and unrecorded.
        Err(_) => {
            let err = ProxyError::PathNotAllowed("a percent-encoded segment that is not UTF-8");
            return refuse(&state, draft, err).await;
        }
    };
    match kserve_resolve(
        &state,
        &mut draft,
        &mut parts,
        body,
        &name,
        version.as_deref(),
    )
    .await
    {
        Ok(forward_request) => forward(&state, draft, forward_request).await,
        Err(err) => refuse(&state, draft, err).await,
    }
}

async fn kserve_resolve(
    state: &ProxyState,
    draft: &mut Draft,
    parts: &mut Parts,
    body: Body,
    name: &str,
    requested_version: Option<&str>,
) -> Result<Forward, ProxyError> {
    if let Some(err) = caller_missing(state, draft, parts) {
        return Err(err);
    }
    let body = read_body(state, &parts.headers, body).await?;
    draft.request = Capture::of_complete(&body, state.limits.capture_bytes);
    let model = resolve_model(state, draft, name, Protocol::KserveV2)?;
    let json = kserve_json_part(&parts.headers, &body)?;
    check_json_body(json)?;
    super::subject::note(state, draft, model, &parts.headers, json);
    let version = resolve_version(state, model, draft, requested_version)?;
    let upstream_name = version.upstream_model.as_deref().unwrap_or(&model.name);
    let path = match draft.route {
        Route::KserveInfer => format!("/v2/models/{upstream_name}/infer"),
        _ => format!("/v2/models/{upstream_name}"),
    };
    Ok(Forward {
        version,
        path_and_query: path_and_query(&path, parts),
        method: parts.method.clone(),
        headers: std::mem::take(&mut parts.headers),
        client_ip: client_ip(parts),
        abort: parts.extensions.get::<ConnectionAbort>().cloned(),
        body,
        document: None,
    })
}

/// The JSON part of a KServe V2 body: all of it, or with the binary data
/// extension the first `Inference-Header-Content-Length` bytes (the rest
/// is raw tensor data).
fn kserve_json_part<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<&'a [u8], ProxyError> {
    let Some(value) = headers.get("inference-header-content-length") else {
        return Ok(body);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .and_then(|len| body.get(..len))
        .ok_or_else(|| {
            ProxyError::MalformedBody(
                "Inference-Header-Content-Length is not a length within the body".to_owned(),
            )
        })
}

/// `GET /v2`: the gateway's own server metadata.
async fn kserve_server_metadata() -> Response {
    json_response(
        StatusCode::OK,
        serde_json::json!({ "name": "govgate", "version": env!("CARGO_PKG_VERSION"), "extensions": [] }),
    )
}

/// `GET /v2/health/live`: the gateway answers for itself.
async fn health() -> Response {
    json_response(StatusCode::OK, serde_json::json!({ "status": "ok" }))
}

/// `GET /v2/health/ready`: 503 with the reason while no decision can be
/// recorded (every model request would be refused).
async fn ready(State(state): State<ProxyState>) -> Response {
    match state.readiness.get().map_or(Ok(()), |check| check()) {
        Ok(()) => health().await,
        Err(reason) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "unavailable", "reason": reason.to_string() }),
        ),
    }
}

// ---- http prefixes, and everything unmatched ----

async fn http_prefix(State(state): State<ProxyState>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path();
    let matched = state.models.iter().find_map(|model| {
        let prefix = model.path_prefix.as_deref()?;
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then_some((model, rest))
    });
    let route = if matched.is_some() {
        Route::Http
    } else {
        Route::Unmatched
    };
    let mut draft = begin(&state, &parts, route);
    let Some((model, rest)) = matched else {
        return refuse(&state, draft, ProxyError::RouteNotFound).await;
    };
    let rest = if rest.is_empty() {
        "/".to_owned()
    } else {
        rest.to_owned()
    };
    match http_resolve(&state, &mut draft, &mut parts, body, &model.name, &rest).await {
        Ok(forward_request) => forward(&state, draft, forward_request).await,
        Err(err) => refuse(&state, draft, err).await,
    }
}

async fn http_resolve(
    state: &ProxyState,
    draft: &mut Draft,
    parts: &mut Parts,
    body: Body,
    name: &str,
    rest: &str,
) -> Result<Forward, ProxyError> {
    if let Some(err) = caller_missing(state, draft, parts) {
        return Err(err);
    }
    let model = resolve_model(state, draft, name, Protocol::Http)?;
    let body = read_body(state, &parts.headers, body).await?;
    draft.request = Capture::of_complete(&body, state.limits.capture_bytes);
    super::subject::note(state, draft, model, &parts.headers, &body);
    let requested = version_header(parts, draft)?;
    let version = resolve_version(state, model, draft, requested)?;
    Ok(Forward {
        version,
        path_and_query: path_and_query(rest, parts),
        method: parts.method.clone(),
        headers: std::mem::take(&mut parts.headers),
        client_ip: client_ip(parts),
        abort: parts.extensions.get::<ConnectionAbort>().cloned(),
        body,
        document: None,
    })
}

async fn method_not_allowed(State(state): State<ProxyState>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let draft = begin(&state, &parts, Route::Unmatched);
    refuse(&state, draft, ProxyError::MethodNotAllowed).await
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_field_span_points_at_the_value() {
        let body = br#"{"messages":[], "model" : "gpt-x" ,"n":1}"#;
        let (name, span) = model_field(body).unwrap();
        assert_eq!(name, "gpt-x");
        assert_eq!(&body[span.clone()], br#""gpt-x""#);
        let replaced = replace_model(&Bytes::from_static(body), span, "upstream-7b");
        assert_eq!(
            &replaced[..],
            br#"{"messages":[], "model" : "upstream-7b" ,"n":1}"#
        );
    }

    #[test]
    fn model_field_errors_are_malformed_body() {
        for body in [
            &b"not json"[..],
            b"[1]",
            br#"{"model": 3}"#,
            br#"{"messages": []}"#,
            br#"{"model":"a","model":"b"}"#,
        ] {
            let err = model_field(body).unwrap_err();
            assert_eq!(
                err.code(),
                "malformed_body",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
