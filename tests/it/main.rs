//! Integration tests: the real gateway binary between real HTTP clients and
//! real upstream servers, all on 127.0.0.1 with ephemeral ports.

// The harness is private to this test binary; `pub` inside it only shares
// items between its modules.
#![allow(unreachable_pub)]

mod admin_people;
mod anthropic;
mod audit;
mod audit_sample;
mod bundle_evidence;
mod callers;
mod chunked_export;
mod chunked_parallel;
mod chunked_verify;
mod cli;
mod cluster;
mod connections;
mod console;
mod console_browser;
mod console_overview;
mod console_sign_in;
mod decisions;
mod deploy;
mod edges;
mod erasure;
mod errors;
mod export;
mod export_scale;
mod failclosed;
mod fleet;
mod fleet_bundle;
mod fleet_kpi;
mod fleet_kpi_reference;
mod fleet_policies;
mod fleet_reviews;
mod fleet_risk;
mod full_disk;
mod governance;
mod grpc;
mod history;
mod http2;
mod jwt;
mod keys;
mod kpi;
mod kpi_golden;
mod kpi_report;
mod kpi_snapshots;
mod ledger;
mod ledger_faults;
mod listener_tls;
mod models_cli;
mod newcomer;
mod offline;
mod online_export;
mod operations;
mod outlive;
mod policies;
mod policy_changes;
mod policy_memory;
mod policy_stages;
mod policy_threads;
mod policy_tools;
mod prometheus_live;
mod promtool;
mod python_chunked;
mod readme;
mod report;
mod report_browser;
mod report_kpi_trends;
mod report_online;
mod report_oscal;
mod report_pipeline;
mod report_risks;
mod responses;
mod retention;
mod review_limits;
mod reviews;
mod reviews_cli;
mod risks;
mod streaming;
mod support;
mod tiles;
mod tls;
mod transparency;
mod upgrade;
mod verification;
mod wal;
mod witness;

/// Models every test gateway serves, all pointing at `upstream`.
pub fn models(upstream: &str) -> String {
    format!(
        r#"
[[models]]
name = "chat"
protocol = "openai"
[[models.versions]]
version = "v1"
upstream = "{upstream}"

[[models]]
name = "chat-renamed"
protocol = "openai"
[models.credential]
env = "TEST_UPSTREAM_KEY"
[[models.versions]]
version = "v1"
upstream = "{upstream}"
upstream_model = "llama-upstream"

[[models]]
name = "scorer"
protocol = "kserve_v2"
default_version = "2"
[[models.versions]]
version = "1"
upstream = "{upstream}"
upstream_model = "scorer-one"
[[models.versions]]
version = "2"
upstream = "{upstream}"
upstream_model = "scorer-two"

[[models]]
name = "raw"
protocol = "http"
path_prefix = "/m"
[models.credential]
env = "TEST_UPSTREAM_KEY"
[[models.versions]]
version = "1"
upstream = "{upstream}/base"
"#
    )
}
