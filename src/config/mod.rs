//! Configuration: the TOML file is parsed once into [`RawConfig`] (serde,
//! unknown keys refused) and then checked into [`Config`], whose types can
//! only hold valid values. Every error names the file, the key and what is
//! wrong.
//!
//! This is the only module that reads files or environment variables for
//! configuration: credentials are resolved here and handed on as values.

mod admin_jwt;
mod auth;
mod cluster;
mod example_tokens;
mod governance;
mod http_version;
mod jwt;
pub mod keyfile;
mod kpi;
mod offline;
mod rate;
mod raw;
mod retention;
mod review;
mod risks;
pub mod subject;
mod tls;
mod validate;
mod witness;

use crate::decision::Protocol;
pub use example_tokens::EXAMPLE_TOKENS;
use http::{HeaderName, HeaderValue};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use admin_jwt::{AdminJwtConfig, SignInConfig};
pub use auth::{ApiKey, AuthConfig, CertificateIdentity, HeaderTrust, MtlsConfig};
pub use cluster::{ClusterConfig, DatabaseUrl};
pub use http_version::{Http2Settings, UpstreamHttp};
pub use jwt::{JwksError, JwksSource, JwksUrl, JwtConfig, MAX_JWKS_BYTES, parse_jwks};
pub use kpi::{ATTRIBUTE_HEADER_PREFIX, FeatureKind, KpiConfig, KpiField, OutcomeRule, Source};
pub use offline::{OfflineConfig, load_cluster};
pub use rate::{RateLimit, RateLimits};
pub use retention::{PayloadRetention, RetentionConfig};
pub use review::{OnPolicyError, OnTimeout, ReviewConfig, TimeoutRule};
pub use risks::{
    Direction, Indicator, MAX_INDICATORS, MAX_RISKS, Risk, RiskKpi, RiskModel, RiskRegister,
    recorded_register,
};
pub use tls::{TlsFileError, TlsFiles, TlsIdentity};
pub use validate::Environment;
pub use witness::{WitnessConfig, Witnessing};

/// A configuration error: which file, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    /// The file the error is in.
    pub file: String,
    /// Dotted path of the offending key (`models[0].versions[1].upstream`).
    pub key: String,
    /// What is wrong, in words.
    pub message: String,
}

/// The checked configuration of one gateway.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the configuration came from (for messages).
    pub source: String,
    /// Listeners, data directory, caller identity.
    pub server: ServerConfig,
    /// Size limits.
    pub limits: Limits,
    /// Per-phase timeouts.
    pub timeouts: Timeouts,
    /// Trust for `https://` upstreams beyond the platform's roots.
    pub upstream_tls: UpstreamTls,
    /// The decision ledger.
    pub ledger: LedgerConfig,
    /// The models the gateway serves, in file order.
    pub models: Vec<ModelConfig>,
    /// Admin API principals (`[[admin.tokens]]`).
    pub admin_tokens: Vec<AdminToken>,
    /// Admin API people by JWT bearer token (`[admin.jwt]`).
    pub admin_jwt: Option<AdminJwtConfig>,
    /// The default approval policy (`[governance.approval]`).
    pub approval: ApprovalConfig,
    /// Human review: policies, holds and their timeouts (`[review]`).
    pub review: ReviewConfig,
    /// The public tlog-tiles read API (`[tiles]`).
    pub tiles: TilesConfig,
    /// Requests per caller and model (`[rate_limit]`).
    pub rate_limits: RateLimits,
    /// How callers are identified (`[auth]`).
    pub auth: AuthConfig,
    /// How often payload retention runs (`[retention]`).
    pub retention: RetentionConfig,
    /// The risk register (`[[risks]]` or `risk_register.file`) and its evaluation.
    pub risks: RiskRegister,
    /// One replica of a fleet on PostgreSQL (`[cluster]`); none: a
    /// gateway on its own.
    pub cluster: Option<ClusterConfig>,
}

/// Where and how the ledger is served as C2SP tlog-tiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TilesConfig {
    /// Not served (`tiles.enabled = false`).
    Off,
    /// Served on the public listener under `/govgate/log` (the default).
    Public {
        /// In-memory cache of tiles, in bytes.
        cache_bytes: usize,
    },
    /// Served at the root of a listener of its own (`tiles.listen`).
    Own {
        /// Its address.
        listen: SocketAddr,
        /// Connections served at once.
        max_connections: usize,
        /// In-memory cache of tiles, in bytes.
        cache_bytes: usize,
    },
}

impl TilesConfig {
    /// The own listener's address, if tiles have one.
    pub fn listen(&self) -> Option<SocketAddr> {
        match self {
            TilesConfig::Own { listen, .. } => Some(*listen),
            _ => None,
        }
    }
}

/// One admin API principal: its name, roles and the SHA-256 of its bearer
/// token (the token itself is never stored).
#[derive(Debug, Clone)]
pub struct AdminToken {
    /// Who calls (recorded in the ledger).
    pub principal: String,
    /// `admin`, `proposer`, `approver`, `approver:<qualifier>`, `reviewer`, `auditor`.
    pub roles: Vec<String>,
    /// SHA-256 of the token.
    pub token_sha256: [u8; 32],
}

/// How many distinct approvers a version needs, and which qualified
/// approver roles must be among them (each held by a different approver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalLevel {
    /// Distinct approvers, the proposer never counting.
    pub approvers: usize,
    /// Qualifiers (`ai_officer` for `approver:ai_officer`).
    pub required_roles: Vec<String>,
}

/// An approval policy: the level for every version, and optionally a
/// stricter one for high-risk versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalConfig {
    /// For minimal- and limited-risk versions (and high-risk ones without `high_risk`).
    pub default: ApprovalLevel,
    /// For high-risk versions.
    pub high_risk: Option<ApprovalLevel>,
}

/// Listeners and identity.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Proxy traffic and the client-facing `/govgate/...` endpoints.
    pub public_listen: SocketAddr,
    /// Admin API and `/metrics`; never the same port as the public one.
    pub admin_listen: SocketAddr,
    /// TLS on the public listener (`[server.public_tls]`); plain HTTP without.
    pub public_tls: Option<TlsFiles>,
    /// TLS on the admin listener (`[server.admin_tls]`); plain HTTP without.
    pub admin_tls: Option<TlsFiles>,
    /// Where the embedded store and decision log live.
    pub data_dir: PathBuf,
    /// Request header carrying the caller's identity (lower case).
    pub caller_header: HeaderName,
    /// Refuse requests without a caller identity (401) instead of recording `anonymous`.
    pub require_caller: bool,
    /// Threads serving requests; `None` means one per available CPU.
    pub worker_threads: Option<std::num::NonZeroUsize>,
    /// Whether a client that shuts down its sending side after its request
    /// still gets the answer (else that ends the request, as a client that
    /// left; the two cannot be told apart).
    pub half_close: bool,
    /// How both listeners serve HTTP/2 (`[server.http2]`).
    pub http2: Http2Settings,
}

/// Size limits, in bytes.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted; one byte more is answered 413.
    pub max_request_body_bytes: usize,
    /// Responses with a declared length up to this are read whole before
    /// they are recorded and released; longer or unsized ones are streamed.
    pub max_buffered_response_bytes: usize,
    /// The memory budget shared by every body held whole (request bodies,
    /// answers read before release, held answers, copies for the KPIs).
    pub max_buffered_total_bytes: usize,
    /// How much of each body the decision record captures.
    pub capture_bytes: usize,
    /// Largest request head (request line and header fields); larger gets
    /// 431 `headers_too_large`. Both listeners.
    pub max_header_bytes: usize,
    /// Most header fields in a request head; more gets 431
    /// `headers_too_large`. Both listeners.
    pub max_headers: usize,
    /// Client connections the public listener serves at once (lowered at
    /// start if the open-file limit cannot hold them); one more gets 503
    /// `overloaded`.
    pub public_max_connections: usize,
    /// The same for the admin listener.
    pub admin_max_connections: usize,
    /// Idle connections kept open per upstream host for reuse.
    pub upstream_pool_max_idle_per_host: usize,
}

/// Timeouts per phase; there is deliberately no total deadline, so long
/// streams are never cut while they keep moving.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// TCP (and TLS) connect to an upstream.
    pub connect: Duration,
    /// From sending the request to the upstream's response head.
    pub first_byte: Duration,
    /// Longest pause between two chunks of an upstream response body.
    pub idle: Duration,
    /// Longest time to receive a client's whole request body.
    pub request_body: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Longest time to receive a request head: from a new connection's
    /// start, or from the first byte of a kept-alive connection's next request.
    pub header_read: Duration,
    /// Longest wait for the next request on a kept-alive client connection.
    pub keep_alive_idle: Duration,
    /// How long an idle upstream connection stays in the pool.
    pub upstream_pool_idle: Duration,
}

/// The ledger's identity and settings.
#[derive(Clone)]
pub struct LedgerConfig {
    /// The log's name: first line of every checkpoint and the signing key's name.
    pub origin: String,
    /// The Ed25519 key that signs checkpoints (read from `ledger.key_file`).
    pub signing_key: ed25519_dalek::SigningKey,
    /// Where the key was read from (resolved against the config's
    /// directory); its history record lives beside it.
    pub key_file: std::path::PathBuf,
    /// What decision entries commit to and keep.
    pub payload_mode: crate::decision::PayloadMode,
    /// Entries that may wait for the writer before requests get 503.
    pub queue_len: usize,
    /// Most entries in one commit.
    pub max_batch: usize,
    /// What the gateway does when the ledger cannot record a decision.
    pub on_failure: OnLedgerFailure,
    /// Whether every entry is signed on its own too (besides the checkpoints).
    pub entry_signatures: crate::decision::EntrySignatures,
    /// The store's page cache, in bytes.
    pub cache_bytes: u64,
    /// The witnesses the latest checkpoint is sent to (`[[ledger.witnesses]]`).
    pub witnesses: Witnessing,
    /// How often the running gateway re-verifies its log (`None`: only
    /// when asked on the admin API).
    pub verify_every: Option<std::time::Duration>,
    /// How often a background round checks the whole log rather than what
    /// was appended since the last one (`None`: only the first round, after
    /// a failure, and when asked).
    pub verify_full_every: Option<std::time::Duration>,
    /// The share of one core a background verification round takes while
    /// the gateway records requests (`ledger.verify_cpu_share`).
    pub verify_cpu_share: crate::ledger::monitor::CpuShare,
    /// The subject key file as configured (`ledger.subject_key_file`,
    /// resolved against the config's directory); `None`: `subject.key` in
    /// the data directory, made at the first start a model needs it.
    pub subject_key_file: Option<std::path::PathBuf>,
}

/// What the gateway does with an answer whose decision the ledger could
/// not record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLedgerFailure {
    /// Withhold it: 503, nothing served unlogged (the default).
    Refuse,
    /// Serve it anyway, log an error and count it
    /// (`govgate_unlogged_answers_total`). Only by explicit setting.
    Serve,
}

impl fmt::Debug for LedgerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerConfig")
            .field("origin", &self.origin)
            .field("signing_key", &"<redacted>")
            .field("key_file", &self.key_file)
            .field("payload_mode", &self.payload_mode)
            .field("queue_len", &self.queue_len)
            .field("max_batch", &self.max_batch)
            .field("on_failure", &self.on_failure)
            .field("entry_signatures", &self.entry_signatures)
            .field("cache_bytes", &self.cache_bytes)
            .field("witnesses", &self.witnesses)
            .field("verify_every", &self.verify_every)
            .field("verify_full_every", &self.verify_full_every)
            .field("verify_cpu_share", &self.verify_cpu_share)
            .finish()
    }
}

/// Extra trust anchors for `https://` upstreams (a private CA, say), used
/// besides the platform's CA roots.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTls {
    /// DER certificates read from `upstream_tls.ca_file`.
    pub extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
}

/// One model as the gateway exposes it.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Name clients use.
    pub name: String,
    /// Wire protocol.
    pub protocol: Protocol,
    /// For `http` models: the public path prefix (`/models/fraud`).
    pub path_prefix: Option<String>,
    /// Version that answers calls that name no version.
    pub default_version: String,
    /// Declared versions, in file order.
    pub versions: Vec<VersionConfig>,
    /// This model's approval policy, if not the default.
    pub approval: Option<ApprovalConfig>,
    /// The model-wide credential (`[models.credential]`), for versions
    /// proposed through the admin API; declared versions have theirs.
    pub credential: Option<Credential>,
    /// The HTTP version for versions that name none (`http`), also for
    /// versions proposed through the admin API.
    pub http: UpstreamHttp,
    /// Fairness and drift KPIs (`[models.kpi]`), if configured.
    pub kpi: Option<KpiConfig>,
    /// This model's own rate limit (`[models.rate_limit]`): `Some(None)`
    /// turns the gateway-wide one off for it; `None` follows it.
    pub rate_limit: Option<Option<RateLimit>>,
    /// Where requests name their data subject (`[models.subject]`), if
    /// configured: their decisions then carry its keyed hash.
    pub subject: Option<subject::SubjectSelector>,
    /// Payload retention (`[models.retention]`).
    pub retention: Option<PayloadRetention>,
}

/// One version of a model and where it is served.
#[derive(Debug, Clone)]
pub struct VersionConfig {
    /// Version label (`v1`, `2024-06-01`, ...).
    pub version: String,
    /// Upstream base URL.
    pub upstream: UpstreamUrl,
    /// Model name the upstream knows, if it differs from the public one.
    pub upstream_model: Option<String>,
    /// Credential added to every upstream request, never shown to callers.
    pub credential: Option<Credential>,
    /// The HTTP version spoken to the upstream (`http`; default: the model's).
    pub http: UpstreamHttp,
    /// `minimal`, `limited` or `high` (default `high`: an unclassified
    /// version gets the strictest policy).
    pub risk_class: String,
    /// Whether `risk_class` is the default, the file giving none.
    pub risk_class_default: bool,
    /// Change reference (a ticket id) recorded when the gateway proposes
    /// this version at start (default `config`).
    pub change_ref: String,
    /// Digest of the model artifact, if known (`sha256:...`).
    pub artifact_digest: Option<String>,
    /// Free text shown with the version.
    pub description: String,
}

/// An upstream base URL: `http` or `https`, an authority, an optional path
/// prefix without trailing slash, no query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// Host and port.
    pub authority: http::uri::Authority,
    /// Path prefix, empty or starting with `/`, never ending with `/`.
    pub base_path: String,
}

/// What is wrong with an upstream base URL.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamUrlError {
    /// It does not parse as a URL.
    #[error("`{text}` is not a URL: {source}")]
    NotAUrl {
        /// The text given.
        text: String,
        /// Why it does not parse.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// Not `http` nor `https`.
    #[error("`{0}` must start with http:// or https://")]
    Scheme(String),
    /// No host.
    #[error("`{0}` has no host")]
    NoHost(String),
    /// A user and password in the URL (a credential belongs in config).
    #[error("must not contain user info; use a credential table instead")]
    UserInfo,
    /// A query string.
    #[error("`{0}` must not have a query string")]
    Query(String),
}

impl UpstreamUrl {
    /// Parses an upstream base URL; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<UpstreamUrl, UpstreamUrlError> {
        let uri: http::Uri = text.parse().map_err(|source| UpstreamUrlError::NotAUrl {
            text: text.to_owned(),
            source,
        })?;
        let scheme = match uri.scheme() {
            Some(scheme)
                if *scheme == http::uri::Scheme::HTTP || *scheme == http::uri::Scheme::HTTPS =>
            {
                scheme.clone()
            }
            _ => return Err(UpstreamUrlError::Scheme(text.to_owned())),
        };
        let Some(authority) = uri.authority().cloned() else {
            return Err(UpstreamUrlError::NoHost(text.to_owned()));
        };
        if authority.as_str().contains('@') {
            return Err(UpstreamUrlError::UserInfo);
        }
        if uri.query().is_some() {
            return Err(UpstreamUrlError::Query(text.to_owned()));
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(UpstreamUrl {
            scheme,
            authority,
            base_path,
        })
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

/// A header added to upstream requests. Its value is secret: `Debug` hides it.
#[derive(Clone)]
pub struct Credential {
    /// Header name (default `authorization`).
    pub header: HeaderName,
    /// Full header value, marked sensitive.
    pub value: HeaderValue,
    /// The caller's headers removed before it is added: its own header,
    /// and for `anthropic` models both headers Anthropic's API takes a
    /// key in (`x-api-key`, `authorization`).
    pub replaces: Vec<HeaderName>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}: <redacted>)", self.header)
    }
}

/// The configuration file at `path`: its name as errors give it, and its text.
fn read_file(path: &Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
        file: file.clone(),
        key: "(file)".to_owned(),
        message: format!("cannot read: {err}"),
    })?;
    Ok((file, text))
}

impl Config {
    /// Reads and checks the file at `path`, resolving credentials from the
    /// process environment and the file system.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let (file, text) = read_file(path)?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &file, &Environment::process(base_dir))
    }

    /// Parses and checks configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str, env: &Environment) -> Result<Config, ConfigError> {
        let raw = validate::parse_raw(text, file)?;
        validate::check(raw, file, env)
    }

    /// The model called `name`, if configured.
    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|model| model.name == name)
    }
}

impl ModelConfig {
    /// The version labelled `version`, if declared.
    pub fn version(&self, version: &str) -> Option<&VersionConfig> {
        self.versions.iter().find(|v| v.version == version)
    }
}

#[cfg(test)]
mod tests;
