//! A served KServe V2 decision with bodies of typical size (84 and 138
//! bytes). Shared by the ledger benches, `examples/fill_ledger.rs` and the
//! test suite's filled ledgers (`tests/it/support/filled.rs`), which
//! include this file by path: none of them is part of the library.

use bytes::Bytes;
use govgate::decision::{Capture, Decision, DecisionId, Outcome, Protocol, Route, Timings};

/// A decision of `model` version `version`, served with status 200.
pub(crate) fn served_decision(model: &str, version: &str) -> Decision {
    Decision {
        id: DecisionId::random(),
        caller: "svc-loan-origination".into(),
        route: Route::KserveInfer,
        protocol: Some(Protocol::KserveV2),
        model: Some(model.into()),
        version: Some(version.into()),
        approval_seq: None,
        path: format!("/v2/models/{model}/infer"),
        cut: Default::default(),
        subject: None,
        auth: Default::default(),
        policy: None,
        outcome: Outcome::Served,
        status: 200,
        error_code: None,
        timings: Timings {
            received_unix_ms: 1_795_779_308_556,
            upstream_head_us: Some(1_109),
            complete_us: 1_132,
        },
        request: Capture::of_complete(&Bytes::from_static(&[b'r'; 84]), 65_536),
        response: Capture::of_complete(&Bytes::from_static(&[b's'; 138]), 65_536),
    }
}
