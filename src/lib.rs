//! govgate: a governance gateway for machine-learning inference.
//!
//! A reverse proxy in front of model servers (OpenAI-compatible LLM APIs,
//! the Anthropic Messages API, KServe V2 model servers, plain HTTP models) that records one decision
//! per request before the answer is released.
//!
//! # Layout
//!
//! - [`decision`]: shared types (`Decision`, `Outcome`, `Capture`) and the
//!   `DecisionSink` seam. Uses nothing else of ours.
//! - [`config`]: TOML -> `RawConfig` -> checked `Config`; the only reader of
//!   config files, credential files and environment variables.
//! - [`proxy`]: the request path: axum ingress, upstream client, protocol
//!   adapters, decision drafts, the serving table, the policy stages and
//!   the poll for held answers. Uses `decision` and `config` values,
//!   registry snapshots, and the review gate and queue.
//! - [`kserve_grpc`]: KServe V2 over gRPC without I/O: its protobuf
//!   messages (generated from `proto/`, committed), one message's gRPC
//!   framing, the REST (JSON) form of its tensors for the policies and
//!   KPIs, gRPC status codes. Uses nothing else of ours.
//! - [`ledger`]: the signed, hash-chained, Merkle-tree decision ledger on sled,
//!   and the tally of its last day's decisions by outcome.
//! - [`metrics`]: the shared Prometheus registry.
//! - [`registry`]: model versions, approval states and the four-eyes rules;
//!   decides commands, applies ledger events, publishes snapshots; its
//!   service records every event through the ledger before applying it.
//! - [`listener`]: the HTTP/1.1 and HTTP/2 accept loop on hyper behind
//!   both listeners (h2 by ALPN, h2c by its preface): header-read and
//!   keep-alive timeouts, connection caps fitted
//!   to the open-file limit, JSON answers to unparsable heads, and the
//!   per-connection abort handle. Uses nothing else of ours.
//! - [`admin`]: the admin listener's router (`/metrics`), bearer-token
//!   authentication, the model-version API, the reviewer API, the
//!   policy-set API, decision search, the overview's figures (decisions
//!   by outcome from the ledger's in-memory tally, indicators in breach),
//!   and the governance console
//!   (`admin::console`: web pages that call that API in process as the
//!   signed-in person); the ledger adds its read routes.
//! - [`review`]: human review: the Rego policy engine (regorus) that turns
//!   a request or a response into a verdict (allow, deny, hold, flag), the
//!   policy gate (the set in force, reloads, each recorded in the ledger;
//!   under change control only a set proposed, approved and activated),
//!   and the review queue (held answers on disk, reviewers' verdicts,
//!   timeouts), which records every step through the ledger. No HTTP.
//! - [`kpi`]: fairness and drift KPIs: pure math over sliding windows of
//!   rows (per-group rates and parity, PSI, Jensen-Shannon, KS), the
//!   aggregator task, and the task that keeps their history in the ledger
//!   (`kpi_snapshot` entries, snapshot.rs and snapshot_task.rs).
//! - [`risk`]: the risk register at run time: recorded in the ledger when
//!   it changes, its KPI indicators evaluated by an owned task that records
//!   breaches and recoveries; in a fleet the register is shared through
//!   the control log (`registry::shared`, risk/fleet.rs). Reads `kpi`
//!   reports and the `metrics` registry, appends through the `ledger`.
//! - [`witness`]: sends the latest checkpoint to C2SP tlog-witnesses (on
//!   an interval and on demand, off the request path), keeps and serves
//!   their verified cosignatures. Uses the ledger's store and formats.
//! - [`report`]: the period report (`govgate report`): pure folds over a
//!   period's entries, one module per section, run on a store or a bundle
//!   (by the offline command, and by `admin` for a running gateway).
//! - [`cluster`]: one replica of a fleet whose control plane is in
//!   PostgreSQL (`[cluster]`): schema migrations, the replica id's claim,
//!   the replica's log name and its published checkpoints, the control log
//!   of registry events, the feed of KPI rows and labels the fleet's KPIs
//!   are folded from (kpi_feed.rs).
//!   Uses `config` values; off the request path.
//! - [`demo`]: the built-in sample model servers used by `govgate demo`.
//! - [`app`]: wiring and shutdown; [`cli`]: the command line.
//! - `fuzzing` (hidden, not an API): fuzz targets for the parsers a client
//!   reaches, for `tests/fuzz/` and the cargo-fuzz targets in `fuzz/`.
//!
//! Dependencies point one way: everything may use `decision` and `config`
//! values; `ledger` <- `registry` and `review` <- `proxy` and `admin`; only `app` and
//! `cli` wire them together.

pub mod admin;
pub mod app;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod decision;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod kpi;
pub mod kserve_grpc;
pub mod ledger;
pub mod listener;
pub mod metrics;
pub mod proxy;
pub mod registry;
pub mod report;
pub mod review;
pub mod risk;
pub mod witness;
