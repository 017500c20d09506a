//! A decision for unit tests of the modules that record, verify, export
//! and erase decisions: one place that names every field, so a test says
//! only what it varies (`Decision { outcome, ..fixture::streamed_chat() }`).

use super::{Capture, Decision, DecisionId, Outcome, Route, Timings};

/// A served chat completion by `alice` of `chat` version 1, request `{}`
/// and no response captured.
pub fn streamed_chat() -> Decision {
    Decision {
        id: DecisionId::random(),
        caller: "alice".into(),
        route: Route::OpenaiChatCompletions,
        protocol: None,
        model: Some("chat".into()),
        version: Some("1".into()),
        approval_seq: None,
        path: "/m/x".into(),
        cut: Default::default(),
        subject: None,
        auth: Default::default(),
        policy: None,
        outcome: Outcome::Served,
        status: 200,
        error_code: None,
        timings: Timings::default(),
        request: Capture::of_complete(&bytes::Bytes::from_static(b"{}"), 64),
        response: Capture::default(),
    }
}

/// A capture of `bytes`, whole.
pub fn captured(bytes: &'static [u8]) -> Capture {
    Capture::of_complete(&bytes::Bytes::from_static(bytes), 64)
}
