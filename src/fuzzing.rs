//! Fuzz targets for the parsers an unauthenticated client reaches. Not part
//! of the gateway's API: `tests/fuzz/` (stable Rust) and the cargo-fuzz
//! targets in `fuzz/` call them; docs/fuzzing.md says how to run both.
//!
//! Each target takes arbitrary bytes, drives one parser through the real
//! code and asserts its invariants: a broken invariant panics, which is
//! what a fuzzer reports. Each returns a short label of what the input
//! did (a status and an error code, say); the stable harness keeps inputs
//! that reach a label it has not seen yet, a cheap stand-in for coverage.
//!
//! | target | parser | input |
//! | --- | --- | --- |
//! | [`routing`] | the public router: path checks and matching, model and version resolution, what upstreams receive, decision entries | a request: `METHOD target`, header lines, blank line, body |
//! | [`openai_splice`] | the OpenAI body's checks and `model` member, renamed for the upstream | a request body |
//! | [`kserve_body`] | KPI rows from a KServe V2 exchange | request body, `\n---\n`, response body, `\n---\n`, header lines |
//! | [`selector`] | KPI selectors (JSON pointers with `*`, tensors) | a pointer (or tensor name) line, then a JSON body |
//! | [`grpc_message`] | a gRPC `ModelInfer` body: framing, the request (and answer) messages, their REST form, the model name's splice | the framed message |
//! | [`jcs`] | RFC 8785 canonical JSON, as the ledger writes entries | JSON text |
//!
//! Seed inputs for each are in `fuzz/corpus/<target>/`.

mod entry;
mod forwarded;
mod gateway;
mod grpc;
mod input;
mod jcs;
mod json;
mod kpi;
mod openai;
mod routing;
mod setup;
mod upstream;

pub use grpc::grpc_message;
pub use jcs::jcs;
pub use kpi::{kserve_body, selector};
pub use openai::openai_splice;
pub use routing::routing;

/// A fuzz target: bytes in, a label of what they did out.
pub type Target = fn(&[u8]) -> String;

/// Every target by name (the names of `fuzz/fuzz_targets/*.rs` and of the
/// corpus directories).
pub const TARGETS: &[(&str, Target)] = &[
    ("routing", routing),
    ("openai_splice", openai_splice),
    ("kserve_body", kserve_body),
    ("selector", selector),
    ("jcs", jcs),
    ("grpc_message", grpc_message),
];
