//! Forwarding one resolved request upstream and releasing the answer only
//! after its decision is recorded.

use super::ProxyState;
use super::backlog::Detached;
use super::budget::{BodyBudget, BufferUse, Reservation};
use super::error::{ErrorShape, ProxyError};
use super::headers::{self, DECISION_ID_HEADER, RECEIPT_HEADER};
use super::recorder::{Draft, Ending, Forwarded, StreamDraft, as_refusal, sink_error};
use super::responses::{StoredResponse, answer_id};
use super::serving::ServableVersion;
use super::stream::{Abort, OnRecorded, RecordingBody};
use crate::decision::{Ack, Capture, DecisionId, Outcome, RecordFuture, Route, SinkError};
use crate::listener::ConnectionAbort;
use axum::body::Body;
use axum::response::Response;
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
    /// Resets the client connection (a stream cut before its end).
    pub abort: Option<ConnectionAbort>,
    /// The (possibly rewritten) body.
    pub body: Bytes,
    /// What the policies and KPIs read as the request body when it is
    /// not `body` itself: the REST (JSON) form of a gRPC message.
    pub document: Option<Bytes>,
}

impl Forward {
    /// The request body as the policies and KPIs read it.
    pub(super) fn readable_body(&self) -> &Bytes {
        self.document.as_ref().unwrap_or(&self.body)
    }
}

/// Answers a refused request: logs it, records its decision, releases the
/// JSON error only after the record is acknowledged.
pub(super) async fn refuse(state: &ProxyState, draft: Draft, err: ProxyError) -> Response {
    refuse_as(state, draft, err, Forwarding::NotYet).await
}

/// [`refuse`] for a request that was forwarded: if the ledger cannot take
/// the decision now, it is recorded once it can (the model was called).
pub(super) async fn refuse_forwarded(
    state: &ProxyState,
    draft: Draft,
    err: ProxyError,
) -> Response {
    refuse_as(state, draft, err, Forwarding::Done).await
}

/// Whether the upstream was called for a request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Forwarding {
    NotYet,
    Done,
}

async fn refuse_as(
    state: &ProxyState,
    draft: Draft,
    err: ProxyError,
    forwarding: Forwarding,
) -> Response {
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
    let shape = ErrorShape::of(draft.route);
    let body = Bytes::from(err.body_as(shape));
    let mut response = err.response_as(shape);
    let ending = Ending {
        outcome,
        status,
        error_code: Some(code),
        response: Capture::of_complete(&body, state.limits.capture_bytes),
    };
    let recorded = match forwarding {
        Forwarding::NotYet => state.recorder.record(draft, ending).await,
        Forwarding::Done => state.recorder.record_forwarded(draft, ending).await,
    };
    if let Err(sink_err) = recorded {
        response = sink_err.response_as(shape);
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
        Some(oversight) => {
            let policies = oversight.gate.for_request().await;
            match oversight
                .judge_request(&mut draft, &forward, policies, &state.budget)
                .await
            {
                Ok(judged) => Some(judged),
                Err(denied) => return refuse(state, draft, denied).await,
            }
        }
        None => None,
    };
    // While the ledger cannot commit, the model is not called: its answer
    // could not be released anyway.
    if state.recorder.refuses_unlogged() && !state.ready() {
        return refuse(state, draft, ProxyError::LedgerUnavailable).await;
    }
    let abort = forward.abort.clone();
    let http = forward.version.http;
    let request = match build_request(forward) {
        Ok(request) => request,
        Err(err) => return refuse(state, draft, err).await,
    };
    draft.mark_upstream_sent();
    // From here the model is called: the decision is recorded whatever
    // the client does, even if this future is dropped at an await.
    let mut forwarded = Forwarded::new(draft, state.recorder.clone(), abort);
    let response = match state.client.send(request, &model, http).await {
        Ok(response) => response,
        Err(err) => return refuse_forwarded(state, forwarded.take(), err).await,
    };
    forwarded.draft().mark_upstream_head();
    let (mut parts, body) = response.into_parts();
    parts.headers = headers::to_client(parts.headers, credential);
    if let Some(judged) = judged {
        return super::oversight::answer(state, forwarded, judged, parts, body, kpi).await;
    }
    let Some(reservation) = buffer_reservation(state, &parts.headers) else {
        return release_stream(state, forwarded, parts, body, None, kpi).await;
    };
    let bytes = match read_whole(body, state.timeouts.idle, &model, usize::MAX, reservation).await {
        Ok(bytes) => bytes,
        Err(err) => return refuse_forwarded(state, forwarded.take(), err).await,
    };
    forwarded.draft().mark_upstream_done();
    let draft = forwarded.take();
    let id = draft.id;
    let kpi = readable_kpi(state, kpi, &parts);
    let (response, ack) = release_whole(state, draft, parts, bytes.clone()).await;
    if ack.is_some() {
        observe_kpi(state, kpi, id, bytes);
    }
    response
}

/// The budget for reading an answer whole, when it should be: a declared
/// length within the buffering limit, not an event stream, and room in
/// the memory budget (else it streams).
pub(super) fn buffer_reservation(state: &ProxyState, headers: &HeaderMap) -> Option<Reservation> {
    if !is_bufferable(state, headers) {
        return None;
    }
    let len = content_length(headers)? as usize;
    state.budget.reserve(len, BufferUse::Answer)
}

/// What the KPIs need of a request, taken before it is forwarded (the
/// attribute headers are stripped on the way).
pub(super) struct KpiCapture {
    model: String,
    version: String,
    request: Bytes,
    headers: Vec<(String, String)>,
    answer: AnswerForm,
    /// Where a gRPC answer's REST form reserves its bytes while it waits
    /// for the aggregator.
    budget: Arc<BodyBudget>,
}

/// How the KPIs read an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnswerForm {
    /// As it is (JSON).
    Json,
    /// A gRPC `ModelInferResponse`, read in its REST form.
    GrpcInfer,
}

/// The capture for a model with `[models.kpi]`, when KPIs run.
fn kpi_capture(state: &ProxyState, draft: &Draft, forward: &Forward) -> Option<KpiCapture> {
    state.kpi.as_ref()?;
    // A stored response fetched again is no new prediction.
    if matches!(
        draft.route,
        Route::OpenaiResponsesRetrieve
            | Route::OpenaiResponsesDelete
            | Route::OpenaiResponsesCancel
            | Route::OpenaiResponsesInputItems
            | Route::KserveGrpcMetadata
            | Route::KserveGrpcReady
    ) {
        return None;
    }
    let answer = match draft.route {
        Route::KserveGrpcInfer => AnswerForm::GrpcInfer,
        _ => AnswerForm::Json,
    };
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
        request: forward.readable_body().clone(),
        headers,
        answer,
        budget: state.budget.clone(),
    })
}

impl KpiCapture {
    /// The exchange for the KPIs, or why its answer cannot be read.
    fn observation(
        self,
        id: DecisionId,
        response: Bytes,
    ) -> Result<crate::kpi::Observation, (String, &'static str)> {
        let response = match self.answer {
            AnswerForm::Json => response,
            AnswerForm::GrpcInfer => match super::grpc::answer_json(&response) {
                // Several times the tensors' bytes: counted like a copy.
                Some(json) => match self.budget.reserve(json.len(), BufferUse::Kpi) {
                    Some(reservation) => reservation.attach(json),
                    None => return Err((self.model, "over_budget")),
                },
                None => return Err((self.model, "grpc_undecodable")),
            },
        };
        Ok(crate::kpi::Observation {
            model: self.model,
            version: self.version,
            decision_id: id.to_string(),
            request: self.request,
            response,
            headers: self.headers,
        })
    }
}

/// Hands one exchange to the KPIs, or counts it unread. A gRPC answer
/// without a message (the model's own error status, trailers only) is no
/// prediction, as an HTTP error answer is not: neither read nor counted.
fn hand_over(
    recorder: &crate::kpi::KpiRecorder,
    capture: KpiCapture,
    id: DecisionId,
    response: Bytes,
) {
    if capture.answer == AnswerForm::GrpcInfer && response.is_empty() {
        return;
    }
    match capture.observation(id, response) {
        Ok(observation) => recorder.observe(observation),
        Err((model, why)) => recorder.count_unread(&model, why),
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
        hand_over(recorder, capture, id, response);
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
    let Some(reservation) = state.budget.reserve(0, BufferUse::Kpi) else {
        return body;
    };
    body.on_whole(
        limit,
        reservation,
        Box::new(move |whole| match whole {
            Ok(bytes) => hand_over(&recorder, capture, id, bytes),
            Err(why) => recorder.count_unread(&capture.model, why.as_str()),
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
    let shape = ErrorShape::of(draft.route);
    let created = created_response(&draft, parts.status);
    let ending = Ending {
        outcome: Outcome::Served,
        status: parts.status.as_u16(),
        error_code: None,
        response: Capture::of_complete(&bytes, state.limits.capture_bytes),
    };
    let (mut response, ack) = match state.recorder.record_forwarded(draft, ending).await {
        Ok(ack) => {
            learn_answer(state, created, &bytes);
            (
                Response::from_parts(parts, Body::new(Full::new(bytes))),
                Some(ack),
            )
        }
        Err(err) => (err.response_as(shape), None),
    };
    set_decision_headers(&mut response, decision_id);
    (response, ack)
}

/// Who created the response an answer to `POST /v1/responses` carries,
/// when it is one (a 2xx answer on that route).
pub(super) fn created_response(draft: &Draft, status: http::StatusCode) -> Option<StoredResponse> {
    if draft.route != Route::OpenaiResponses || !status.is_success() {
        return None;
    }
    Some(StoredResponse {
        model: draft.model.clone()?,
        version: draft.version.clone()?,
        caller: draft.caller.clone(),
    })
}

/// Remembers the id of a whole answer's response, once its decision is
/// recorded and before the answer is released.
pub(super) fn learn_answer(state: &ProxyState, created: Option<StoredResponse>, bytes: &[u8]) {
    if let Some(created) = created
        && let Some(id) = answer_id(bytes)
    {
        state.responses.learn(&id, created);
    }
}

/// Streams the answer: its decision (outcome `streaming`) is recorded
/// before the first byte is released (if it cannot be, the client gets 503
/// and the upstream's answer is dropped); the stream's end is recorded
/// before the end is released.
pub(super) async fn release_stream(
    state: &ProxyState,
    forwarded: Forwarded,
    parts: http::response::Parts,
    body: Incoming,
    on_recorded: Option<OnRecorded>,
    kpi: Option<KpiCapture>,
) -> Response {
    let (draft, abort) = forwarded.take_with_abort();
    let decision_id = decision_header(&draft);
    let id = draft.id;
    let shape = ErrorShape::of(draft.route);
    let created = created_response(&draft, parts.status);
    let (head, stream) = draft.begin_stream(parts.status.as_u16());
    let refusal = as_refusal(head.clone(), &ProxyError::LedgerUnavailable);
    let record = state.recorder.submit(head, &stream.model_label);
    let mut in_flight = HeadInFlight {
        record: Some(record),
        then: Some((refusal, stream)),
        state,
    };
    let (ack, stream) = match in_flight.wait().await {
        (Ok(ack), stream) => (ack, stream),
        (Err(err), _) => {
            let mut response = sink_error(err).response_as(shape);
            set_decision_headers(&mut response, decision_id);
            return response;
        }
    };
    let recorded = ack.seq.map(|seq| (stream, seq));
    let mut streamed = RecordingBody::new(
        body,
        content_length(&parts.headers),
        recorded,
        state.recorder.clone(),
        state.timeouts.idle,
        state.limits.capture_bytes,
        abort.map(|abort| Box::new(move || abort.abort()) as Abort),
    );
    if let Some(hook) = on_recorded {
        streamed = streamed.on_recorded(hook);
    }
    if let Some(created) = created {
        streamed = streamed.watch(state.responses.watcher(created));
    }
    streamed = observe_kpi_streamed(state, kpi, id, &parts, streamed);
    let mut response = Response::from_parts(parts, Body::new(streamed));
    set_decision_headers(&mut response, decision_id);
    response
}

/// A stream's decision on its way to the ledger. If the request future is
/// dropped while it waits (the client left), what must follow is written
/// in the background: the stream's end (`client_disconnected`, nothing
/// released) once the decision is recorded, or the refusal the client
/// would have got if the ledger refuses it.
struct HeadInFlight<'a> {
    record: Option<RecordFuture>,
    then: Option<(crate::decision::Decision, StreamDraft)>,
    state: &'a ProxyState,
}

impl HeadInFlight<'_> {
    /// Waits for the decision's ack. On a refusal the client's 503 is
    /// recorded through the backlog. Cancel-safe (see the type's docs).
    async fn wait(&mut self) -> (Result<Ack, SinkError>, StreamDraft) {
        let result = match self.record.as_mut() {
            Some(record) => record.await,
            None => Err(SinkError::Unavailable("no record".to_owned())),
        };
        self.record = None;
        // INVARIANT: `then` is taken only here or in drop, each at most once.
        let Some((refusal, stream)) = self.then.take() else {
            unreachable!("a stream's decision is awaited once")
        };
        if let Err(err) = &result {
            tracing::error!(decision_id = %refusal.id, error = %err, "stream's decision not recorded; answer dropped, the refusal is recorded once the ledger takes it");
            let refusal = as_refusal(refusal, &sink_error(err.clone()));
            self.state
                .recorder
                .detach_decision(refusal, &stream.model_label);
        }
        (result, stream)
    }
}

impl Drop for HeadInFlight<'_> {
    fn drop(&mut self) {
        if let (Some(record), Some((refusal, stream))) = (self.record.take(), self.then.take()) {
            let end = move |seq| {
                stream.end(
                    seq,
                    Outcome::Error,
                    Some("client_disconnected"),
                    0,
                    Capture::default(),
                )
            };
            let instead = Detached::Decision(Box::new(refusal));
            self.state
                .recorder
                .backlog()
                .finish_head(record, instead, end);
        }
    }
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
    let te_trailers = forward.version.http == crate::config::UpstreamHttp::Http2
        && headers::asks_for_trailers(&forward.headers);
    *request.headers_mut() = headers::to_upstream(
        forward.headers,
        forward.client_ip,
        forward.version.credential.as_ref(),
    );
    if te_trailers {
        request
            .headers_mut()
            .insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
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
/// timeout between chunks, growing `reservation` as it goes (503
/// `overloaded` when the memory budget is spent). The bytes keep the
/// reservation. Cancel-safe: dropping it drops the upstream body.
pub(super) async fn read_whole(
    mut body: Incoming,
    idle: std::time::Duration,
    model: &str,
    limit: usize,
    mut reservation: Reservation,
) -> Result<Bytes, ProxyError> {
    // A declared length is reserved already: one allocation, no regrowth.
    let mut buf = BytesMut::with_capacity(reservation.bytes());
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    let len = buf.len() + data.len();
                    if len > limit {
                        return Err(ProxyError::HeldAnswerTooLarge {
                            model: model.to_owned(),
                            limit,
                        });
                    }
                    if len > reservation.bytes() && !reservation.grow(len - reservation.bytes()) {
                        return Err(ProxyError::Overloaded {
                            what: "answer to hold",
                        });
                    }
                    if buf.is_empty() && body.is_end_stream() {
                        return Ok(reservation.attach(data));
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(err))) => {
                return Err(ProxyError::UpstreamFailed {
                    model: model.to_owned(),
                    detail: err.to_string(),
                });
            }
            Ok(None) => return Ok(reservation.into_bytes(buf)),
            Err(_) => {
                return Err(ProxyError::UpstreamTimeout {
                    model: model.to_owned(),
                    after: idle,
                });
            }
        }
    }
}
