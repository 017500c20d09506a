//! Shared types of the request path: [`Decision`], [`Outcome`], [`Capture`]
//! and the [`DecisionSink`] seam that makes a decision durable before its
//! answer is released.
//!
//! This module uses nothing else of the crate, so every other module may
//! depend on it.

mod auth;
mod capture;
#[cfg(test)]
pub mod fixture;
mod id;
mod sink;
mod subject;
mod text;

pub use auth::{CallerAuth, Sender};
pub use capture::{Capture, CaptureBuilder, hex};
pub use id::DecisionId;
pub use sink::{Ack, DecisionSink, NotReady, Readiness, RecordFuture, SinkError};
pub use subject::{SubjectHash, SubjectKey};
pub use text::{Capped, CutDigests, MAX_NAME_BYTES, MAX_PATH_BYTES};

use serde::Serialize;

/// Which wire protocol a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// OpenAI-compatible LLM API (`/v1/chat/completions`, ...).
    Openai,
    /// KServe V2 / Open Inference Protocol (`/v2/models/{name}/infer`).
    KserveV2,
    /// Plain HTTP: a path prefix maps to a model, the body is opaque.
    Http,
    /// Anthropic Messages API (`/v1/messages`).
    Anthropic,
    /// KServe V2 over gRPC (`inference.GRPCInferenceService`), to an
    /// upstream gRPC server over HTTP/2.
    KserveV2Grpc,
}

impl Protocol {
    /// The name used in config, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Openai => "openai",
            Protocol::KserveV2 => "kserve_v2",
            Protocol::Http => "http",
            Protocol::Anthropic => "anthropic",
            Protocol::KserveV2Grpc => "kserve_v2_grpc",
        }
    }
}

/// The route template a request matched: a bounded set, safe as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Route {
    /// `POST /v1/chat/completions`
    #[serde(rename = "openai.chat_completions")]
    OpenaiChatCompletions,
    /// `POST /v1/completions`
    #[serde(rename = "openai.completions")]
    OpenaiCompletions,
    /// `POST /v1/embeddings`
    #[serde(rename = "openai.embeddings")]
    OpenaiEmbeddings,
    /// `POST /v1/responses` (OpenAI Responses API: creates a response)
    #[serde(rename = "openai.responses")]
    OpenaiResponses,
    /// `GET /v1/responses/{id}`: a response created through the gateway
    #[serde(rename = "openai.responses.retrieve")]
    OpenaiResponsesRetrieve,
    /// `DELETE /v1/responses/{id}`
    #[serde(rename = "openai.responses.delete")]
    OpenaiResponsesDelete,
    /// `POST /v1/responses/{id}/cancel`
    #[serde(rename = "openai.responses.cancel")]
    OpenaiResponsesCancel,
    /// `GET /v1/responses/{id}/input_items`
    #[serde(rename = "openai.responses.input_items")]
    OpenaiResponsesInputItems,
    /// `POST /v1/messages` (Anthropic)
    #[serde(rename = "anthropic.messages")]
    AnthropicMessages,
    /// `POST /v2/models/{name}[/versions/{v}]/infer`
    #[serde(rename = "kserve_v2.infer")]
    KserveInfer,
    /// `GET /v2/models/{name}[/versions/{v}]`
    #[serde(rename = "kserve_v2.metadata")]
    KserveMetadata,
    /// gRPC `inference.GRPCInferenceService/ModelInfer`
    #[serde(rename = "kserve_v2_grpc.infer")]
    KserveGrpcInfer,
    /// gRPC `inference.GRPCInferenceService/ModelMetadata`
    #[serde(rename = "kserve_v2_grpc.metadata")]
    KserveGrpcMetadata,
    /// gRPC `inference.GRPCInferenceService/ModelReady`
    #[serde(rename = "kserve_v2_grpc.ready")]
    KserveGrpcReady,
    /// Any other path under `/inference.GRPCInferenceService/` (refused
    /// as unimplemented)
    #[serde(rename = "kserve_v2_grpc.other")]
    KserveGrpcOther,
    /// A configured `http` path prefix.
    #[serde(rename = "http")]
    Http,
    /// No route matched.
    #[serde(rename = "unmatched")]
    Unmatched,
}

impl Route {
    /// The route's stable name (also its serialized form).
    pub fn as_str(self) -> &'static str {
        match self {
            Route::OpenaiChatCompletions => "openai.chat_completions",
            Route::OpenaiCompletions => "openai.completions",
            Route::OpenaiEmbeddings => "openai.embeddings",
            Route::OpenaiResponses => "openai.responses",
            Route::OpenaiResponsesRetrieve => "openai.responses.retrieve",
            Route::OpenaiResponsesDelete => "openai.responses.delete",
            Route::OpenaiResponsesCancel => "openai.responses.cancel",
            Route::OpenaiResponsesInputItems => "openai.responses.input_items",
            Route::AnthropicMessages => "anthropic.messages",
            Route::KserveInfer => "kserve_v2.infer",
            Route::KserveMetadata => "kserve_v2.metadata",
            Route::KserveGrpcInfer => "kserve_v2_grpc.infer",
            Route::KserveGrpcMetadata => "kserve_v2_grpc.metadata",
            Route::KserveGrpcReady => "kserve_v2_grpc.ready",
            Route::KserveGrpcOther => "kserve_v2_grpc.other",
            Route::Http => "http",
            Route::Unmatched => "unmatched",
        }
    }
}

/// What happened to a request, as the ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Forwarded; the upstream's answer (whatever its status) reached the client.
    Served,
    /// Refused by governance before forwarding (unknown or unapproved model).
    Blocked,
    /// Refused by a policy rule.
    Denied,
    /// Held for a human reviewer.
    Held,
    /// Released after review.
    Released,
    /// Failed: bad request, upstream failure, gateway fault or client abort.
    Error,
    /// The answer is released as a stream: this decision was recorded
    /// before its first byte left; how the stream ended is in a
    /// [`StreamEnd`] that names this decision.
    Streaming,
}

impl Outcome {
    /// The outcome's stable name (also its serialized form).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Served => "served",
            Outcome::Blocked => "blocked",
            Outcome::Denied => "denied",
            Outcome::Held => "held",
            Outcome::Released => "released",
            Outcome::Error => "error",
            Outcome::Streaming => "streaming",
        }
    }
}

/// How much of a decision's payloads the ledger commits to and keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadMode {
    #[default]
    /// Salted commitments in the entry; salts and captures in the erasable payload store.
    Full,
    /// Salted commitments only; the salts are not kept, so nobody can open them.
    Digest,
    /// Lengths only.
    None,
}

impl PayloadMode {
    /// The mode's name in entries and config.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadMode::Full => "full",
            PayloadMode::Digest => "digest",
            PayloadMode::None => "none",
        }
    }
}

/// Whether the ledger signs every entry on its own, besides the signed
/// checkpoint that covers each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EntrySignatures {
    /// Checkpoints only (the default).
    #[default]
    Off,
    /// Every entry gets its own Ed25519 signature too.
    On,
}

/// Timings of one request, in microseconds since it was received.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Wall-clock time the request was received, in Unix milliseconds (UTC).
    pub received_unix_ms: u64,
    /// Until the upstream's response head arrived (none if never forwarded).
    pub upstream_head_us: Option<u64>,
    /// Until the last response byte was ready for release, before recording.
    pub complete_us: u64,
}

/// One request's decision record, proxied or refused.
///
/// Built by the proxy, handed to a [`DecisionSink`] before the answer (or
/// the end of a stream) is released.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Unguessable id (a second, then 96 random bits), also sent to the client.
    pub id: DecisionId,
    /// Caller identity (from the configured header), or `anonymous`; at
    /// most [`MAX_NAME_BYTES`] (see [`Capped`]).
    pub caller: String,
    /// How the caller was established (the entry's `auth` member).
    #[serde(skip)]
    pub auth: CallerAuth,
    /// Route template the request matched.
    pub route: Route,
    /// Protocol of the model, once known.
    pub protocol: Option<Protocol>,
    /// Model name as the client asked for it, once known; at most [`MAX_NAME_BYTES`].
    pub model: Option<String>,
    /// Model version that served (or would have served) the request; at
    /// most [`MAX_NAME_BYTES`].
    pub version: Option<String>,
    /// The request path as received, without the query (which may carry
    /// secrets); at most [`MAX_PATH_BYTES`].
    pub path: String,
    /// Digests of the whole values of members cut to their caps.
    pub cut: CutDigests,
    /// The keyed hash of the data subject the request names, when its
    /// model has a subject selector and the request carries a subject.
    pub subject: Option<SubjectHash>,
    /// Seq of the ledger entry whose approval made `version` servable.
    pub approval_seq: Option<u64>,
    /// The policy verdicts, when the gateway runs with policies.
    pub policy: Option<PolicyRecord>,
    /// What happened.
    pub outcome: Outcome,
    /// HTTP status the client received (or was receiving, for a stream).
    pub status: u16,
    /// Stable error code when the gateway refused or failed the request.
    pub error_code: Option<&'static str>,
    /// Timings.
    pub timings: Timings,
    /// Bounded capture of the request body.
    pub request: Capture,
    /// Bounded capture of the response body.
    pub response: Capture,
}

/// How a streamed answer ended: the second record of a decision whose
/// outcome is [`Outcome::Streaming`], written once the stream is over
/// (or cut), linked to the decision by its seq.
#[derive(Debug, Clone)]
pub struct StreamEnd {
    /// The decision whose stream this ends.
    pub decision_id: DecisionId,
    /// The seq of that decision's entry.
    pub decision_seq: u64,
    /// The decision's model, as recorded there (so exports by model keep both).
    pub model: Option<String>,
    /// The decision's version, as recorded there.
    pub version: Option<String>,
    /// `Served` when the whole answer went out, `Error` when it was cut.
    pub outcome: Outcome,
    /// Why it was cut (`client_disconnected`, `upstream_failed`,
    /// `upstream_timeout`, `ledger_unavailable`), none when served whole.
    pub error_code: Option<&'static str>,
    /// Bytes of the answer's body handed to the client connection.
    pub released_bytes: u64,
    /// Microseconds from the request's arrival to the stream's end.
    pub complete_us: u64,
    /// Bounded capture of the response body as received from the upstream.
    pub response: Capture,
}

/// The policy verdicts behind one decision, as the ledger records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyRecord {
    /// Seq of the `policy_set_loaded` entry of the policies that judged it.
    pub set_seq: u64,
    /// The request stage's verdict.
    pub request: StageVerdict,
    /// The response stage's verdict; none when the request never got an
    /// upstream answer (denied at the request stage, upstream failure).
    pub response: Option<StageVerdict>,
}

/// One stage's verdict: the winning action and every rule set's reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageVerdict {
    /// `allow`, `flag`, `hold` or `deny`.
    pub action: &'static str,
    /// Reasons of `deny` rules, sorted.
    pub deny: Vec<String>,
    /// Reasons of `hold` rules, sorted.
    pub hold: Vec<String>,
    /// Reasons of `flag` rules, sorted.
    pub flag: Vec<String>,
    /// Why the evaluation failed (then `action` is the configured default
    /// and the sets are empty).
    pub error: Option<String>,
}
