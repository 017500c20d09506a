//! The proxy's one error enum and the one place that turns it into an HTTP
//! answer. Messages shown to clients never carry upstream addresses,
//! credentials or internal details; those go to the log only.

use crate::decision::Route;
use crate::kserve_grpc::{Code, encode_message};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use std::time::Duration;

/// Whose fault an error is: decides the log level and the decision outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The caller sent something we refuse.
    Client,
    /// The model server failed or was too slow.
    Upstream,
    /// The gateway itself (or its decision log) failed.
    Gateway,
}

/// The models served under one protocol, named in an `unknown_model`
/// answer so that a caller who mistyped a name sees the right one: at
/// most [`ServedModels::LISTED`] names (the answer stays small whatever
/// the configuration), and how many more there are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServedModels {
    /// The first names, in configuration order.
    pub names: Vec<String>,
    /// How many more are served.
    pub more: usize,
    /// The protocol's listing route (`GET /v1/models`), if it has one.
    pub listing: Option<&'static str>,
}

impl ServedModels {
    /// How many names an answer lists.
    pub const LISTED: usize = 20;

    /// The first [`Self::LISTED`] of `names`, and the count of the rest.
    pub fn new<'a>(names: impl Iterator<Item = &'a str>, listing: Option<&'static str>) -> Self {
        let mut served = ServedModels {
            listing,
            ..ServedModels::default()
        };
        for name in names {
            if served.names.len() < Self::LISTED {
                served.names.push(name.to_owned());
            } else {
                served.more += 1;
            }
        }
        served
    }
}

impl std::fmt::Display for ServedModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.names.is_empty() {
            f.write_str("no model is served here under this protocol")?;
        } else {
            write!(f, "served here: {}", self.names.join(", "))?;
            if self.more > 0 {
                write!(f, " and {} more", self.more)?;
            }
        }
        if let Some(listing) = self.listing {
            write!(f, " (`{listing}` lists them)")?;
        }
        Ok(())
    }
}

/// Everything that can stop a request before the upstream's answer is released.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No route matches the method and path.
    #[error("no route for this method and path")]
    RouteNotFound,
    /// The path holds a dot segment, an encoded separator or a backslash.
    #[error("the request path contains {0}; the gateway does not forward such paths")]
    PathNotAllowed(&'static str),
    /// The `govgate-model-version` header is not a plain version label.
    #[error("the govgate-model-version header must be one ASCII version label")]
    InvalidModelVersion,
    /// The route exists but not for this method.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// The model is not configured (for the request's protocol).
    #[error("unknown model `{name}`{}", served.as_ref().map(|s| format!("; {s}")).unwrap_or_default())]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// What is served instead, when known.
        served: Option<ServedModels>,
    },
    /// A Responses API call names a response the gateway has no record
    /// of (never created through it, forgotten, or another caller's).
    #[error(
        "unknown response `{0}`: it was not created through this gateway by this caller, or is no longer remembered"
    )]
    UnknownResponse(String),
    /// The model exists but the requested version does not.
    #[error("model `{model}` has no version `{version}`")]
    UnknownModelVersion {
        /// Model name.
        model: String,
        /// Requested version.
        version: String,
    },
    /// The version exists but is not approved (proposed, rejected, retired).
    #[error("version `{version}` of model `{model}` is not approved (it is {state})")]
    VersionNotApproved {
        /// Model name.
        model: String,
        /// Requested version.
        version: String,
        /// Its state.
        state: String,
    },
    /// The version was revoked.
    #[error("version `{version}` of model `{model}` has been revoked")]
    VersionRevoked {
        /// Model name.
        model: String,
        /// Requested version.
        version: String,
    },
    /// No version of the model is active, and the call named none.
    #[error("model `{0}` has no active version; name an approved version or activate one")]
    NoActiveVersion(String),
    /// The body is not what the protocol requires.
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    /// The request body is larger than the configured limit.
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The client did not send its body in time.
    #[error("request body was not received within {0:?}")]
    RequestBodyTimeout(Duration),
    /// The client's body broke off.
    #[error("request body could not be read")]
    RequestBodyUnreadable,
    /// The caller sent more requests to the model than its rate limit allows.
    #[error("rate limit of model `{model}` exceeded for this caller; retry in {} s", retry_after_secs(*.retry_after))]
    RateLimited {
        /// Model name.
        model: String,
        /// Until the caller's next request would pass.
        retry_after: Duration,
    },
    /// The caller's claim is refused: a caller header from outside the
    /// trusted networks, an unknown or expired API key, or none required.
    #[error("{}", .0.describe())]
    CallerUnauthenticated(super::callers::Refusal),
    /// The API key may not call this model.
    #[error("this API key may not call model `{model}`")]
    CallerForbidden {
        /// Model name.
        model: String,
    },
    /// Config requires a caller identity and none was sent.
    #[error("caller identity header `{0}` is required")]
    CallerMissing(String),
    /// The upstream could not be connected to (refused, DNS, TLS, connect timeout).
    #[error("upstream of model `{model}` is unreachable")]
    UpstreamUnreachable {
        /// Model name (public).
        model: String,
        /// Cause, for the log only.
        detail: String,
    },
    /// The upstream accepted the request but sent no response head in time.
    #[error("upstream of model `{model}` did not answer within {after:?}")]
    UpstreamTimeout {
        /// Model name.
        model: String,
        /// The configured first-byte or idle timeout.
        after: Duration,
    },
    /// The upstream broke the exchange (connection reset, invalid response).
    #[error("upstream of model `{model}` failed")]
    UpstreamFailed {
        /// Model name.
        model: String,
        /// Cause, for the log only.
        detail: String,
    },
    /// The decision log's queue is full.
    #[error("decision log is overloaded, retry shortly")]
    LedgerOverloaded,
    /// The decision log cannot record: nothing is served (fail closed).
    #[error("decision log is unavailable")]
    LedgerUnavailable,
    /// A fleet replica has not read the fleet's approvals for longer than
    /// the bounded staleness, or lost its replica id: nothing is served
    /// (fail closed).
    #[error("{0}; retry shortly")]
    ControlPlaneUnavailable(String),
    /// A policy denied the request or its answer.
    #[error("denied by policy: {}", .reasons.join("; "))]
    PolicyDenied {
        /// The reasons of the rules that fired, sorted.
        reasons: Vec<String>,
    },
    /// A held answer is larger than `review.max_held_bytes`.
    #[error(
        "the answer of model `{model}` is larger than the {limit} bytes that can be held for review"
    )]
    HeldAnswerTooLarge {
        /// Model name.
        model: String,
        /// The configured limit.
        limit: usize,
    },
    /// The review store could not keep a held answer.
    #[error("the answer could not be held for review")]
    HoldFailed(String),
    /// The review queue is at `review.max_pending` or
    /// `review.max_kept_bytes`: an answer to hold is withheld.
    #[error("the answer could not be held for review: {0}; retry later")]
    ReviewQueueFull(crate::review::QueueFull),
    /// The memory budget for buffered bodies is spent; retry shortly.
    #[error("the gateway is at its memory limit for buffered bodies ({what}), retry shortly")]
    Overloaded {
        /// What could not be buffered: `request body` or `held answer`.
        what: &'static str,
    },
    /// A fault of the gateway itself.
    #[error("internal gateway error")]
    Internal(String),
}

impl ProxyError {
    /// The stable error code (documented in docs/errors.md).
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::RouteNotFound => "route_not_found",
            ProxyError::PathNotAllowed(_) => "path_not_allowed",
            ProxyError::InvalidModelVersion => "invalid_model_version",
            ProxyError::MethodNotAllowed => "method_not_allowed",
            ProxyError::UnknownModel { .. } => "unknown_model",
            ProxyError::UnknownModelVersion { .. } => "unknown_model_version",
            ProxyError::UnknownResponse(_) => "unknown_response",
            ProxyError::VersionNotApproved { .. } | ProxyError::NoActiveVersion(_) => {
                "model_version_not_approved"
            }
            ProxyError::VersionRevoked { .. } => "model_version_revoked",
            ProxyError::RateLimited { .. } => "rate_limited",
            ProxyError::CallerUnauthenticated(_) => "caller_unauthenticated",
            ProxyError::CallerForbidden { .. } => "caller_forbidden",
            ProxyError::MalformedBody(_) => "malformed_body",
            ProxyError::BodyTooLarge { .. } => "body_too_large",
            ProxyError::RequestBodyTimeout(_) => "request_body_timeout",
            ProxyError::RequestBodyUnreadable => "request_body_unreadable",
            ProxyError::CallerMissing(_) => "caller_missing",
            ProxyError::UpstreamUnreachable { .. } => "upstream_unreachable",
            ProxyError::UpstreamTimeout { .. } => "upstream_timeout",
            ProxyError::UpstreamFailed { .. } => "upstream_failed",
            ProxyError::LedgerOverloaded => "ledger_overloaded",
            ProxyError::LedgerUnavailable => "ledger_unavailable",
            ProxyError::ControlPlaneUnavailable(_) => "control_plane_unavailable",
            ProxyError::PolicyDenied { .. } => "policy_denied",
            ProxyError::HeldAnswerTooLarge { .. } => "held_answer_too_large",
            ProxyError::HoldFailed(_) => "hold_failed",
            ProxyError::ReviewQueueFull(_) => "review_queue_full",
            ProxyError::Overloaded { .. } => "overloaded",
            ProxyError::Internal(_) => "internal_error",
        }
    }

    /// The HTTP status for the code.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::RouteNotFound
            | ProxyError::UnknownModel { .. }
            | ProxyError::UnknownModelVersion { .. }
            | ProxyError::UnknownResponse(_) => StatusCode::NOT_FOUND,
            ProxyError::VersionNotApproved { .. }
            | ProxyError::VersionRevoked { .. }
            | ProxyError::NoActiveVersion(_)
            | ProxyError::PolicyDenied { .. }
            | ProxyError::CallerForbidden { .. } => StatusCode::FORBIDDEN,
            ProxyError::HeldAnswerTooLarge { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::HoldFailed(_) | ProxyError::ReviewQueueFull(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::MalformedBody(_)
            | ProxyError::RequestBodyUnreadable
            | ProxyError::PathNotAllowed(_)
            | ProxyError::InvalidModelVersion => StatusCode::BAD_REQUEST,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::RequestBodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::CallerMissing(_) | ProxyError::CallerUnauthenticated(_) => {
                StatusCode::UNAUTHORIZED
            }
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::UpstreamUnreachable { .. } | ProxyError::UpstreamFailed { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::LedgerOverloaded
            | ProxyError::LedgerUnavailable
            | ProxyError::ControlPlaneUnavailable(_)
            | ProxyError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whose fault it is.
    pub fn fault(&self) -> Fault {
        match self {
            ProxyError::UpstreamUnreachable { .. }
            | ProxyError::UpstreamTimeout { .. }
            | ProxyError::UpstreamFailed { .. } => Fault::Upstream,
            ProxyError::LedgerOverloaded
            | ProxyError::LedgerUnavailable
            | ProxyError::ControlPlaneUnavailable(_)
            | ProxyError::HeldAnswerTooLarge { .. }
            | ProxyError::HoldFailed(_)
            | ProxyError::ReviewQueueFull(_)
            | ProxyError::Overloaded { .. }
            | ProxyError::Internal(_) => Fault::Gateway,
            _ => Fault::Client,
        }
    }

    /// Whether governance refused the request (outcome `blocked`) rather
    /// than something failing (outcome `error`).
    pub fn is_governance_refusal(&self) -> bool {
        matches!(
            self,
            ProxyError::UnknownModel { .. }
                | ProxyError::UnknownModelVersion { .. }
                | ProxyError::UnknownResponse(_)
                | ProxyError::VersionNotApproved { .. }
                | ProxyError::VersionRevoked { .. }
                | ProxyError::NoActiveVersion(_)
                | ProxyError::RateLimited { .. }
        )
    }

    /// Internal detail for the log (never sent to the client).
    fn detail(&self) -> Option<&str> {
        match self {
            ProxyError::UpstreamUnreachable { detail, .. }
            | ProxyError::UpstreamFailed { detail, .. }
            | ProxyError::HoldFailed(detail)
            | ProxyError::Internal(detail) => Some(detail),
            _ => None,
        }
    }

    /// Logs the error once, at a level that matches whose fault it is.
    pub fn log(&self, decision_id: &str) {
        let code = self.code();
        let detail = self.detail().unwrap_or("");
        match self.fault() {
            Fault::Client => tracing::debug!(decision_id, code, "{self}"),
            Fault::Upstream => tracing::warn!(decision_id, code, detail, "{self}"),
            Fault::Gateway => tracing::error!(decision_id, code, detail, "{self}"),
        }
    }
}

/// How the gateway's own error bodies look on a route: its own shape, or
/// the one the route's clients parse (docs/errors.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ErrorShape {
    /// `{"error":{"code":...,"message":...}}`.
    Gateway,
    /// Anthropic's `{"type":"error","error":{"type":...,"message":...}}`,
    /// with the gateway's members (`code`, `reasons`, ...) kept in `error`.
    Anthropic,
    /// A gRPC status: HTTP 200, no body, `grpc-status`, `grpc-message`
    /// and `govgate-code` in the head (a trailers-only answer).
    Grpc,
}

impl ErrorShape {
    /// The shape of errors on `route`.
    pub(super) fn of(route: Route) -> Self {
        match route {
            Route::AnthropicMessages => ErrorShape::Anthropic,
            Route::KserveGrpcInfer
            | Route::KserveGrpcMetadata
            | Route::KserveGrpcReady
            | Route::KserveGrpcOther => ErrorShape::Grpc,
            _ => ErrorShape::Gateway,
        }
    }
}

/// The header (in a trailers-only answer) that names the gateway's error
/// code of a gRPC refusal.
pub(super) const GOVGATE_CODE_HEADER: &str = "govgate-code";

/// A trailers-only gRPC answer: HTTP 200, `content-type:
/// application/grpc`, the status, its message and the gateway's code.
pub(super) fn grpc_status_response(code: Code, message: &str, govgate_code: &str) -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static(code.as_str()));
    // INVARIANT: percent-encoding leaves printable ASCII only.
    if let Ok(value) = HeaderValue::from_str(&encode_message(message)) {
        headers.insert("grpc-message", value);
    }
    if let Ok(value) = HeaderValue::from_str(govgate_code) {
        headers.insert(GOVGATE_CODE_HEADER, value);
    }
    response
}

/// Anthropic's error `type` for a status, as its API documents them
/// (docs.anthropic.com, "Errors"): other 4xx are `invalid_request_error`,
/// other 5xx `api_error`. 503 (the gateway's "retry shortly") is
/// `overloaded_error`, the type Anthropic gives its own temporary overload.
fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

impl ProxyError {
    /// The members of the body's `error` object: code and message, for a
    /// policy denial the reasons, for an unknown model the (first) models
    /// served.
    fn error_members(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut members = serde_json::Map::new();
        members.insert("code".into(), self.code().into());
        members.insert("message".into(), self.to_string().into());
        match self {
            ProxyError::UnknownModel {
                served: Some(served),
                ..
            } => {
                members.insert("served_models".into(), served.names.clone().into());
                members.insert("more_served_models".into(), served.more.into());
            }
            ProxyError::PolicyDenied { reasons } => {
                members.insert("reasons".into(), reasons.clone().into());
            }
            _ => {}
        }
        members
    }

    /// The client's JSON body in `shape`.
    pub(super) fn body_as(&self, shape: ErrorShape) -> String {
        let mut error = self.error_members();
        match shape {
            ErrorShape::Gateway => serde_json::json!({ "error": error }).to_string(),
            ErrorShape::Anthropic => {
                error.insert("type".into(), anthropic_type(self.status()).into());
                serde_json::json!({ "type": "error", "error": error }).to_string()
            }
            // A gRPC refusal has no body: all of it is in the head.
            ErrorShape::Grpc => String::new(),
        }
    }

    /// The gRPC status a refusal is answered with on a gRPC route
    /// (docs/errors.md lists them).
    pub(super) fn grpc_code(&self) -> Code {
        match self {
            ProxyError::RouteNotFound | ProxyError::MethodNotAllowed => Code::Unimplemented,
            ProxyError::UnknownModel { .. }
            | ProxyError::UnknownModelVersion { .. }
            | ProxyError::UnknownResponse(_) => Code::NotFound,
            ProxyError::VersionNotApproved { .. }
            | ProxyError::VersionRevoked { .. }
            | ProxyError::NoActiveVersion(_) => Code::FailedPrecondition,
            ProxyError::PolicyDenied { .. } | ProxyError::CallerForbidden { .. } => {
                Code::PermissionDenied
            }
            ProxyError::CallerMissing(_) | ProxyError::CallerUnauthenticated(_) => {
                Code::Unauthenticated
            }
            ProxyError::RateLimited { .. }
            | ProxyError::BodyTooLarge { .. }
            | ProxyError::HeldAnswerTooLarge { .. } => Code::ResourceExhausted,
            ProxyError::MalformedBody(_)
            | ProxyError::RequestBodyUnreadable
            | ProxyError::PathNotAllowed(_)
            | ProxyError::InvalidModelVersion => Code::InvalidArgument,
            ProxyError::RequestBodyTimeout(_) | ProxyError::UpstreamTimeout { .. } => {
                Code::DeadlineExceeded
            }
            ProxyError::UpstreamUnreachable { .. }
            | ProxyError::UpstreamFailed { .. }
            | ProxyError::LedgerOverloaded
            | ProxyError::LedgerUnavailable
            | ProxyError::ControlPlaneUnavailable(_)
            | ProxyError::Overloaded { .. }
            | ProxyError::HoldFailed(_)
            | ProxyError::ReviewQueueFull(_) => Code::Unavailable,
            ProxyError::Internal(_) => Code::Internal,
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        self.response_as(ErrorShape::Gateway)
    }
}

impl ProxyError {
    /// The client's answer, its body in `shape`.
    pub(super) fn response_as(self, shape: ErrorShape) -> Response {
        if shape == ErrorShape::Grpc {
            // SPEC (gRPC over HTTP/2): "Trailers-Only" carries the status
            // in the response head; the message says the gateway's code too.
            let message = format!("{}: {}", self.code(), self);
            return grpc_status_response(self.grpc_code(), &message, self.code());
        }
        let mut response = (self.status(), self.body_as(shape)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if matches!(
            self,
            ProxyError::LedgerOverloaded | ProxyError::Overloaded { .. }
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if matches!(self, ProxyError::ReviewQueueFull(_)) {
            // Room comes back when reviewers decide, not in a second.
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        }
        if let ProxyError::CallerUnauthenticated(refusal) = &self
            && refusal.is_about_keys()
        {
            let challenge = if matches!(
                refusal,
                super::callers::Refusal::NoKey | super::callers::Refusal::NoToken
            ) {
                "Bearer realm=\"govgate\""
            } else {
                "Bearer realm=\"govgate\", error=\"invalid_token\""
            };
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let ProxyError::RateLimited { retry_after, .. } = &self {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(*retry_after)),
            );
        }
        response
    }
}

/// Whole seconds for `Retry-After`, rounded up: a client that waits that
/// long finds a token.
fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn the_gateway_shape_is_unchanged() {
        let err = ProxyError::PolicyDenied {
            reasons: vec!["b".into(), "a".into()],
        };
        assert_eq!(
            err.body_as(ErrorShape::Gateway),
            r#"{"error":{"code":"policy_denied","message":"denied by policy: b; a","reasons":["b","a"]}}"#
        );
        assert_eq!(
            ErrorShape::of(Route::OpenaiChatCompletions),
            ErrorShape::Gateway
        );
        assert_eq!(ErrorShape::of(Route::Unmatched), ErrorShape::Gateway);
    }

    #[test]
    fn grpc_refusals_are_trailers_only_statuses_with_the_code() {
        for route in [
            Route::KserveGrpcInfer,
            Route::KserveGrpcMetadata,
            Route::KserveGrpcReady,
            Route::KserveGrpcOther,
        ] {
            assert_eq!(ErrorShape::of(route), ErrorShape::Grpc);
        }
        let err = ProxyError::VersionNotApproved {
            model: "credit".into(),
            version: "2".into(),
            state: "proposed".into(),
        };
        assert_eq!(err.body_as(ErrorShape::Grpc), "");
        let response = err.response_as(ErrorShape::Grpc);
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(headers["grpc-status"], "9");
        assert_eq!(headers["govgate-code"], "model_version_not_approved");
        assert_eq!(
            headers["grpc-message"],
            "model_version_not_approved: version `2` of model `credit` is not approved (it is proposed)"
        );
        let denied = ProxyError::PolicyDenied {
            reasons: vec!["100% sure".into()],
        };
        let response = denied.response_as(ErrorShape::Grpc);
        assert_eq!(response.headers()["grpc-status"], "7");
        assert_eq!(
            response.headers()["grpc-message"],
            "policy_denied: denied by policy: 100%25 sure"
        );
    }

    #[test]
    fn anthropic_errors_carry_the_type_and_keep_the_gateways_members() {
        assert_eq!(
            ErrorShape::of(Route::AnthropicMessages),
            ErrorShape::Anthropic
        );
        let err = ProxyError::UnknownModel {
            name: "x".into(),
            served: Some(ServedModels::new(["claude"].into_iter(), None)),
        };
        let body: Value = serde_json::from_str(&err.body_as(ErrorShape::Anthropic)).unwrap();
        assert_eq!(
            body,
            json!({"type": "error", "error": {
                "type": "not_found_error",
                "code": "unknown_model",
                "message": "unknown model `x`; served here: claude",
                "served_models": ["claude"],
                "more_served_models": 0,
            }})
        );
        // As docs/errors.md prints it.
        let err = ProxyError::UnknownModel {
            name: "claude-9".into(),
            served: Some(ServedModels::new(["claude"].into_iter(), None)),
        };
        assert_eq!(
            err.body_as(ErrorShape::Anthropic),
            r#"{"error":{"code":"unknown_model","message":"unknown model `claude-9`; served here: claude","more_served_models":0,"served_models":["claude"],"type":"not_found_error"},"type":"error"}"#
        );
    }

    #[test]
    fn anthropic_types_follow_the_status() {
        let cases = [
            (
                ProxyError::MalformedBody("x".into()),
                "invalid_request_error",
            ),
            (ProxyError::MethodNotAllowed, "invalid_request_error"),
            (
                ProxyError::RequestBodyTimeout(Duration::from_secs(1)),
                "invalid_request_error",
            ),
            (
                ProxyError::CallerMissing("h".into()),
                "authentication_error",
            ),
            (
                ProxyError::VersionRevoked {
                    model: "m".into(),
                    version: "v".into(),
                },
                "permission_error",
            ),
            (ProxyError::RouteNotFound, "not_found_error"),
            (ProxyError::BodyTooLarge { limit: 1 }, "request_too_large"),
            (
                ProxyError::RateLimited {
                    model: "m".into(),
                    retry_after: Duration::from_secs(1),
                },
                "rate_limit_error",
            ),
            (ProxyError::Internal("x".into()), "api_error"),
            (
                ProxyError::UpstreamTimeout {
                    model: "m".into(),
                    after: Duration::from_secs(1),
                },
                "api_error",
            ),
            (ProxyError::LedgerUnavailable, "overloaded_error"),
        ];
        for (err, kind) in cases {
            let body: Value = serde_json::from_str(&err.body_as(ErrorShape::Anthropic)).unwrap();
            assert_eq!(body["error"]["type"], kind, "{err:?}");
            assert_eq!(body["error"]["code"], err.code(), "{err:?}");
            assert_eq!(body["type"], "error");
        }
    }
}
