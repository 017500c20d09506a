//! Forwarding one resolved request upstream and releasing the answer only
//! after its decision is recorded.

use super::ProxyState;
use super::error::ProxyError;
use super::headers::{self, DECISION_ID_HEADER, RECEIPT_HEADER};
use super::recorder::{Draft, Ending};
use super::serving::ServableVersion;
use super::stream::{OnRecorded, RecordingBody};
use crate::decision::{Capture, DecisionId, Outcome};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, header};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::net::IpAddr;
use std::sync::Arc;

/// A request that passed every check and is ready to go upstream.
pub(super) struct Forward {
    /// The version that serves it.
    pub version: Arc<ServableVersion>,
    /// Upstream path and query, starting with `/` (base path not included).
    pub path_and_query: String,
    /// Method as received.
    pub method: Method,
    /// Client headers as received.
    pub headers: HeaderMap,
    /// The client's address, for `X-Forwarded-For`.
    pub client_ip: Option<IpAddr>,
    /// The (possibly rewritten) body.
    pub body: Bytes,
}

/// Answers a refused request: logs it, records its decision, releases the
/// JSON error only after the record is acknowledged.
pub(super) async fn refuse(state: &ProxyState, draft: Draft, err: ProxyError) -> Response {
    let id = decision_header(&draft);
    err.log(&draft.id.to_string());
    let outcome = if matches!(err, ProxyError::PolicyDenied { .. }) {
        Outcome::Denied
    } else if err.is_governance_refusal() {
        Outcome::Blocked
    } else {
        Outcome::Error
    };
    let status = err.status().as_u16();
    let code = err.code();
    let body = Bytes::from(err.body());
    let mut response = err.into_response();
    let ending = Ending {
        outcome,
        status,
        error_code: Some(code),
        response: Capture::of_complete(&body, state.limits.capture_bytes),
    };
    if let Err(sink_err) = state.recorder.record(draft, ending).await {
        response = sink_err.into_response();
    }
    set_decision_headers(&mut response, id);
    response
}

/// Sends the request upstream and builds the client's response. With
/// policies, the request stage judges first (a denial never reaches the
/// upstream) and `oversight::answer` judges and releases the answer.
pub(super) async fn forward(state: &ProxyState, mut draft: Draft, forward: Forward) -> Response {
    let model = draft.model.clone().unwrap_or_default();
    let version = forward.version.clone();
    let credential = version.credential.as_ref();
    let kpi = kpi_capture(state, &draft, &forward);
    let judged = match &state.oversight {
        Some(oversight) => match oversight.judge_request(&mut draft, &forward) {
            Ok(judged) => Some(judged),
            Err(denied) => return refuse(state, draft, denied).await,
        },
        None => None,
    };
    let request = match build_request(forward) {
        Ok(request) => request,
        Err(err) => return refuse(state, draft, err).await,
    };
    draft.mark_upstream_sent();
    let response = match state.client.send(request, &model).await {
        Ok(response) => response,
        Err(err) => return refuse(state, draft, err).await,
    };
    draft.mark_upstream_head();
    let (mut parts, body) = response.into_parts();
    parts.headers = headers::to_client(parts.headers, credential);
    if let Some(judged) = judged {
        return super::oversight::answer(state, draft, judged, parts, body, kpi).await;
    }
    if is_bufferable(state, &parts.headers) {
        let bytes = match read_whole(body, state.timeouts.idle, &model, usize::MAX).await {
            Ok(bytes) => bytes,
            Err(err) => return refuse(state, draft, err).await,
        };
        draft.mark_upstream_done();
        let id = draft.id;
        let kpi = readable_kpi(state, kpi, &parts);
        let (response, ack) = release_whole(state, draft, parts, bytes.clone()).await;
        if ack.is_some() {
            observe_kpi(state, kpi, id, bytes);
        }
        response
    } else {
        release_stream(state, draft, parts, body, None, kpi)
    }
}

/// What the KPIs need of a request, taken before it is forwarded (the
/// attribute headers are stripped on the way).
pub(super) struct KpiCapture {
    model: String,
    version: String,
    request: Bytes,
    headers: Vec<(String, String)>,
}

/// The capture for a model with `[models.kpi]`, when KPIs run.
fn kpi_capture(state: &ProxyState, draft: &Draft, forward: &Forward) -> Option<KpiCapture> {
    state.kpi.as_ref()?;
    let model = draft.model.as_deref()?;
    state.model(model)?.kpi.as_ref()?;
    let headers = forward
        .headers
        .iter()
        .filter(|(name, _)| {
            name.as_str()
                .starts_with(crate::config::ATTRIBUTE_HEADER_PREFIX)
        })
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    Some(KpiCapture {
        model: model.to_owned(),
        version: forward.version.version.clone(),
        request: forward.body.clone(),
        headers,
    })
}

impl KpiCapture {
    fn observation(self, id: DecisionId, response: Bytes) -> crate::kpi::Observation {
        crate::kpi::Observation {
            model: self.model,
            version: self.version,
            decision_id: id.to_string(),
            request: self.request,
            response,
            headers: self.headers,
        }
    }
}

/// The capture, if the KPIs can read this answer: a 2xx answer (an error
/// is no prediction, and no selector miss either) that is not an event
/// stream (not one JSON document; counted as unread).
pub(super) fn readable_kpi(
    state: &ProxyState,
    capture: Option<KpiCapture>,
    parts: &http::response::Parts,
) -> Option<KpiCapture> {
    let capture = capture?;
    if !parts.status.is_success() {
        return None;
    }
    if is_event_stream(&parts.headers) {
        if let Some(recorder) = &state.kpi {
            recorder.count_unread(&capture.model, "event_stream");
        }
        return None;
    }
    Some(capture)
}

/// Hands an answer read whole to the KPI aggregator (never waits): a
/// released one, or one held for review (the model's answer, whatever the
/// reviewer decides). `capture` comes from [`readable_kpi`].
pub(super) fn observe_kpi(
    state: &ProxyState,
    capture: Option<KpiCapture>,
    id: DecisionId,
    response: Bytes,
) {
    if let (Some(recorder), Some(capture)) = (&state.kpi, capture) {
        recorder.observe(capture.observation(id, response));
    }
}

/// Feeds a streamed answer to the KPIs once its decision is recorded: the
/// whole answer when it is one document within the buffering limit;
/// event streams and larger answers are counted as unread.
fn observe_kpi_streamed(
    state: &ProxyState,
    capture: Option<KpiCapture>,
    id: DecisionId,
    parts: &http::response::Parts,
    body: RecordingBody,
) -> RecordingBody {
    let (Some(recorder), Some(capture)) = (state.kpi.clone(), readable_kpi(state, capture, parts))
    else {
        return body;
    };
    let limit = state.limits.max_buffered_response_bytes;
    if content_length(&parts.headers).is_some_and(|len| len > limit as u64) {
        // Declared too long: no copy that would be thrown away.
        recorder.count_unread(&capture.model, "too_large");
        return body;
    }
    body.on_whole(
        limit,
        Box::new(move |whole| match whole {
            Some(bytes) => recorder.observe(capture.observation(id, bytes)),
            None => recorder.count_unread(&capture.model, "too_large"),
        }),
    )
}

/// Whether an answer is read whole before release: a declared length
/// within the buffering limit, and not an event stream.
pub(super) fn is_bufferable(state: &ProxyState, headers: &HeaderMap) -> bool {
    content_length(headers)
        .is_some_and(|len| len <= state.limits.max_buffered_response_bytes as u64)
        && !is_event_stream(headers)
}

/// Records the decision of a whole answer, then releases it; the ack
/// comes back too (none when recording failed and the client gets 503).
pub(super) async fn release_whole(
    state: &ProxyState,
    draft: Draft,
    parts: http::response::Parts,
    bytes: Bytes,
) -> (Response, Option<crate::decision::Ack>) {
    let decision_id = decision_header(&draft);
    let ending = Ending {
        outcome: Outcome::Served,
        status: parts.status.as_u16(),
        error_code: None,
        response: Capture::of_complete(&bytes, state.limits.capture_bytes),
    };
    let (mut response, ack) = match state.recorder.record(draft, ending).await {
        Ok(ack) => (
            Response::from_parts(parts, Body::new(Full::new(bytes))),
            Some(ack),
        ),
        Err(err) => (err.into_response(), None),
    };
    set_decision_headers(&mut response, decision_id);
    (response, ack)
}

/// Streams the answer, recording its decision before the stream's end.
pub(super) fn release_stream(
    state: &ProxyState,
    draft: Draft,
    parts: http::response::Parts,
    body: Incoming,
    on_recorded: Option<OnRecorded>,
    kpi: Option<KpiCapture>,
) -> Response {
    let decision_id = decision_header(&draft);
    let id = draft.id;
    let mut streamed = RecordingBody::new(
        body,
        content_length(&parts.headers),
        draft,
        state.recorder.clone(),
        parts.status.as_u16(),
        state.timeouts.idle,
        state.limits.capture_bytes,
    );
    if let Some(hook) = on_recorded {
        streamed = streamed.on_recorded(hook);
    }
    streamed = observe_kpi_streamed(state, kpi, id, &parts, streamed);
    let mut response = Response::from_parts(parts, Body::new(streamed));
    set_decision_headers(&mut response, decision_id);
    response
}

fn build_request(forward: Forward) -> Result<Request<Full<Bytes>>, ProxyError> {
    let upstream = &forward.version.upstream;
    let uri = http::Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(format!("{}{}", upstream.base_path, forward.path_and_query))
        .build()
        .map_err(|err| ProxyError::Internal(format!("upstream URI: {err}")))?;
    let mut request = Request::new(Full::new(forward.body));
    *request.method_mut() = forward.method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers::to_upstream(
        forward.headers,
        forward.client_ip,
        forward.version.credential.as_ref(),
    );
    Ok(request)
}

/// Names the decision and where its receipt is.
pub(super) fn set_decision_headers(response: &mut Response, id: HeaderValue) {
    let receipt = format!("/govgate/receipts/{}", id.to_str().unwrap_or_default());
    if let Ok(receipt) = HeaderValue::from_str(&receipt) {
        response.headers_mut().insert(RECEIPT_HEADER, receipt);
    }
    response.headers_mut().insert(DECISION_ID_HEADER, id);
}

/// The `govgate-decision-id` header value for a draft.
pub(super) fn decision_header(draft: &Draft) -> HeaderValue {
    let hex = draft.id.hex();
    // INVARIANT: 32 ASCII hex digits are a valid header value.
    HeaderValue::from_bytes(&hex).unwrap_or(HeaderValue::from_static("invalid"))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/event-stream"))
}

/// Reads a whole upstream body of at most `limit` bytes, with the idle
/// timeout between chunks. Cancel-safe: dropping it drops the upstream body.
pub(super) async fn read_whole(
    mut body: Incoming,
    idle: std::time::Duration,
    model: &str,
    limit: usize,
) -> Result<Bytes, ProxyError> {
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if buf.is_empty() && body.is_end_stream() && data.len() <= limit {
                        return Ok(data);
                    }
                    buf.extend_from_slice(&data);
                    if buf.len() > limit {
                        return Err(ProxyError::HeldAnswerTooLarge {
                            model: model.to_owned(),
                            limit,
                        });
                    }
                }
            }
            Ok(Some(Err(err))) => {
                return Err(ProxyError::UpstreamFailed {
                    model: model.to_owned(),
                    detail: err.to_string(),
                });
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(_) => {
                return Err(ProxyError::UpstreamTimeout {
                    model: model.to_owned(),
                    after: idle,
                });
            }
        }
    }
}
