//! The TOML file as written: serde types that mirror it one to one.
//!
//! Every struct denies unknown fields: a typo in governance config must be
//! an error, never silently ignored.

use serde::Deserialize;
use std::path::PathBuf;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) server: RawServer,
    #[serde(default)]
    pub(crate) limits: RawLimits,
    #[serde(default)]
    pub(crate) timeouts: RawTimeouts,
    pub(crate) ledger: RawLedger,
    #[serde(default)]
    pub(crate) upstream_tls: RawUpstreamTls,
    #[serde(default)]
    pub(crate) models: Vec<RawModel>,
    #[serde(default)]
    pub(crate) admin: RawAdmin,
    #[serde(default)]
    pub(crate) governance: RawGovernance,
    #[serde(default)]
    pub(crate) review: RawReview,
    #[serde(default)]
    pub(crate) tiles: RawTiles,
    #[serde(default)]
    pub(crate) rate_limit: super::rate::RawRateLimits,
    #[serde(default)]
    pub(crate) auth: super::auth::RawAuth,
    #[serde(default)]
    pub(crate) retention: super::retention::RawRetention,
    /// `[[risks]]`: the risk register.
    #[serde(default)]
    pub(crate) risks: Vec<super::risks::RawRisk>,
    /// `[risk_register]`: the register's file and its evaluation.
    #[serde(default)]
    pub(crate) risk_register: super::risks::RawRiskSettings,
    /// `[cluster]`: one replica of a fleet.
    #[serde(default)]
    pub(crate) cluster: Option<super::cluster::RawCluster>,
}

/// `[tiles]`: the public C2SP tlog-tiles read API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTiles {
    pub(crate) enabled: bool,
    pub(crate) listen: Option<String>,
    pub(crate) max_connections: u64,
    pub(crate) cache_mb: u64,
}

impl Default for RawTiles {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
            max_connections: 1_024,
            cache_mb: 32,
        }
    }
}

/// `[review]`: the human-in-the-loop policies.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReview {
    #[serde(default)]
    pub(crate) policies_dir: Option<PathBuf>,
    #[serde(default)]
    pub(crate) on_error: Option<String>,
    #[serde(default)]
    pub(crate) timeout_secs: Option<u64>,
    #[serde(default)]
    pub(crate) on_timeout: Option<String>,
    #[serde(default)]
    pub(crate) max_wait_secs: Option<u64>,
    #[serde(default)]
    pub(crate) keep_decided_secs: Option<u64>,
    #[serde(default)]
    pub(crate) max_held_bytes: Option<u64>,
    #[serde(default)]
    pub(crate) max_pending: Option<u64>,
    #[serde(default)]
    pub(crate) max_kept_bytes: Option<u64>,
    #[serde(default)]
    pub(crate) timeouts: Vec<RawTimeoutRule>,
    #[serde(default)]
    pub(crate) policy_approval: Option<RawPolicyApproval>,
}

/// `review.policy_approval`: `"none"`, or `{ approvers, required_roles }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawPolicyApproval {
    /// A word (only `"none"` is accepted).
    Word(String),
    /// The approval policy of policy sets.
    Level(RawApprovalLevel),
}

/// `[[review.timeouts]]`: a timeout for the holds of one model and/or
/// one reason.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeoutRule {
    #[serde(default)]
    pub(crate) model: Option<String>,
    #[serde(default)]
    pub(crate) reason_prefix: Option<String>,
    pub(crate) timeout_secs: u64,
    #[serde(default)]
    pub(crate) on_timeout: Option<String>,
}

/// `[admin]`: who may call the admin API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    #[serde(default)]
    pub(crate) tokens: Vec<RawToken>,
    #[serde(default)]
    pub(crate) jwt: Option<super::admin_jwt::RawAdminJwt>,
}

/// `[[admin.tokens]]`: one principal; the token itself is never in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToken {
    pub(crate) principal: String,
    pub(crate) roles: Vec<String>,
    pub(crate) token_sha256: String,
}

/// `[governance]`: rules of the model-version workflow.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGovernance {
    #[serde(default)]
    pub(crate) approval: Option<RawApproval>,
}

/// An approval policy: `[governance.approval]` or `[models.approval]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApproval {
    pub(crate) approvers: u64,
    #[serde(default)]
    pub(crate) required_roles: Vec<String>,
    #[serde(default)]
    pub(crate) high_risk: Option<RawApprovalLevel>,
}

/// The stricter policy for high-risk versions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApprovalLevel {
    pub(crate) approvers: u64,
    #[serde(default)]
    pub(crate) required_roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLedger {
    pub(crate) origin: String,
    pub(crate) key_file: PathBuf,
    #[serde(default = "default_payloads")]
    pub(crate) payloads: String,
    #[serde(default = "default_queue_len")]
    pub(crate) queue_len: u64,
    #[serde(default = "default_max_batch")]
    pub(crate) max_batch: u64,
    #[serde(default = "default_on_failure")]
    pub(crate) on_failure: String,
    #[serde(default = "default_entry_signatures")]
    pub(crate) entry_signatures: String,
    #[serde(default = "default_cache_mb")]
    pub(crate) cache_mb: u64,
    #[serde(default)]
    pub(crate) witnesses: Vec<super::witness::RawWitness>,
    #[serde(default)]
    pub(crate) witness_interval_secs: Option<u64>,
    #[serde(default)]
    pub(crate) witness_threshold: Option<u64>,
    #[serde(default = "default_verify_every_secs")]
    pub(crate) verify_every_secs: u64,
    #[serde(default = "default_verify_full_every_secs")]
    pub(crate) verify_full_every_secs: u64,
    #[serde(default)]
    pub(crate) verify_cpu_share: Option<f64>,
    #[serde(default)]
    pub(crate) subject_key_file: Option<PathBuf>,
}

fn default_verify_full_every_secs() -> u64 {
    86_400
}

fn default_verify_every_secs() -> u64 {
    300
}

fn default_cache_mb() -> u64 {
    64
}

fn default_entry_signatures() -> String {
    "off".to_owned()
}

fn default_on_failure() -> String {
    "refuse".to_owned()
}

fn default_payloads() -> String {
    "full".to_owned()
}

fn default_queue_len() -> u64 {
    16_384
}

fn default_max_batch() -> u64 {
    1_024
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamTls {
    #[serde(default)]
    pub(crate) ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub(crate) public_listen: String,
    pub(crate) admin_listen: String,
    pub(crate) data_dir: PathBuf,
    #[serde(default = "default_caller_header")]
    pub(crate) caller_header: String,
    #[serde(default)]
    pub(crate) require_caller: bool,
    #[serde(default)]
    pub(crate) worker_threads: u64,
    #[serde(default)]
    pub(crate) half_close: bool,
    #[serde(default)]
    pub(crate) public_tls: Option<RawTls>,
    #[serde(default)]
    pub(crate) admin_tls: Option<RawTls>,
    #[serde(default)]
    pub(crate) http2: Option<super::http_version::RawHttp2>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) cert_file: PathBuf,
    pub(crate) key_file: PathBuf,
    #[serde(default)]
    pub(crate) reload_check_secs: Option<u64>,
}

fn default_caller_header() -> String {
    "x-govgate-caller".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLimits {
    pub(crate) max_request_body_bytes: u64,
    pub(crate) max_buffered_response_bytes: u64,
    pub(crate) max_buffered_total_bytes: u64,
    pub(crate) capture_bytes: u64,
    pub(crate) max_header_bytes: u64,
    pub(crate) max_headers: u64,
    pub(crate) public_max_connections: u64,
    pub(crate) admin_max_connections: u64,
    pub(crate) upstream_pool_max_idle_per_host: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_request_body_bytes: 4 * 1024 * 1024,
            max_buffered_response_bytes: 4 * 1024 * 1024,
            max_buffered_total_bytes: 256 * 1024 * 1024,
            capture_bytes: 64 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            public_max_connections: 8_192,
            admin_max_connections: 256,
            upstream_pool_max_idle_per_host: 256,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTimeouts {
    pub(crate) connect_ms: u64,
    pub(crate) first_byte_ms: u64,
    pub(crate) idle_ms: u64,
    pub(crate) request_body_ms: u64,
    pub(crate) shutdown_grace_ms: u64,
    pub(crate) header_read_ms: u64,
    pub(crate) keep_alive_idle_ms: u64,
    pub(crate) upstream_pool_idle_ms: u64,
}

impl Default for RawTimeouts {
    fn default() -> Self {
        Self {
            connect_ms: 2_000,
            first_byte_ms: 120_000,
            idle_ms: 60_000,
            request_body_ms: 30_000,
            shutdown_grace_ms: 30_000,
            header_read_ms: 10_000,
            keep_alive_idle_ms: 60_000,
            upstream_pool_idle_ms: 30_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModel {
    pub(crate) name: String,
    pub(crate) protocol: String,
    #[serde(default)]
    pub(crate) path_prefix: Option<String>,
    #[serde(default)]
    pub(crate) default_version: Option<String>,
    #[serde(default)]
    pub(crate) credential: Option<RawCredential>,
    #[serde(default)]
    pub(crate) http: Option<String>,
    #[serde(default)]
    pub(crate) approval: Option<RawApproval>,
    #[serde(default)]
    pub(crate) kpi: Option<RawKpi>,
    #[serde(default)]
    pub(crate) rate_limit: Option<super::rate::RawModelRateLimit>,
    pub(crate) subject: Option<RawSubject>,
    #[serde(default)]
    pub(crate) retention: Option<super::retention::RawModelRetention>,
    pub(crate) versions: Vec<RawVersion>,
}

/// `[models.subject]`: where a request names its data subject.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubject {
    #[serde(default)]
    pub(crate) header: Option<String>,
    #[serde(default)]
    pub(crate) pointer: Option<String>,
}

/// `[models.kpi]`: where a model's rows, outcomes, protected attributes
/// and drift features are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKpi {
    #[serde(default)]
    pub(crate) window: Option<u64>,
    #[serde(default)]
    pub(crate) min_group_size: Option<u64>,
    #[serde(default)]
    pub(crate) max_groups: Option<u64>,
    #[serde(default)]
    pub(crate) reference_rows: Option<u64>,
    #[serde(default)]
    pub(crate) snapshot_every_secs: Option<u64>,
    pub(crate) outcome: RawOutcome,
    #[serde(default)]
    pub(crate) attributes: Vec<RawKpiField>,
    #[serde(default)]
    pub(crate) features: Vec<RawKpiField>,
}

/// `[models.kpi.outcome]`: a selector plus a threshold or positive labels.
/// The selector keys (`pointer`, `tensor`, `column`, `from`) are spelled
/// out here and in [`RawKpiField`]: serde's `flatten` would lose
/// `deny_unknown_fields`, and with it the error naming a misspelt key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutcome {
    #[serde(default)]
    pub(crate) pointer: Option<String>,
    #[serde(default)]
    pub(crate) tensor: Option<String>,
    #[serde(default)]
    pub(crate) column: Option<u64>,
    #[serde(default)]
    pub(crate) from: Option<String>,
    #[serde(default)]
    pub(crate) threshold: Option<f64>,
    #[serde(default)]
    pub(crate) positive: Option<Vec<String>>,
}

/// A protected attribute or a drift feature.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKpiField {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) header: Option<bool>,
    #[serde(default)]
    pub(crate) pointer: Option<String>,
    #[serde(default)]
    pub(crate) tensor: Option<String>,
    #[serde(default)]
    pub(crate) column: Option<u64>,
    #[serde(default)]
    pub(crate) from: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVersion {
    pub(crate) version: String,
    pub(crate) upstream: String,
    #[serde(default)]
    pub(crate) upstream_model: Option<String>,
    #[serde(default)]
    pub(crate) http: Option<String>,
    #[serde(default)]
    pub(crate) credential: Option<RawCredential>,
    #[serde(default)]
    pub(crate) risk_class: Option<String>,
    #[serde(default)]
    pub(crate) change_ref: Option<String>,
    #[serde(default)]
    pub(crate) artifact_digest: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCredential {
    #[serde(default)]
    pub(crate) env: Option<String>,
    #[serde(default)]
    pub(crate) file: Option<PathBuf>,
    /// Default: the protocol's (`validate::credential`).
    #[serde(default)]
    pub(crate) header: Option<String>,
    /// Default: the protocol's (`validate::credential`).
    #[serde(default)]
    pub(crate) prefix: Option<String>,
}
