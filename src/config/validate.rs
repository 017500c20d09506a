//! Turns [`RawConfig`] into [`Config`]: every check, every error message.

use super::governance;
use super::raw::{RawConfig, RawCredential, RawModel, RawVersion};
use super::{
    Config, ConfigError, Credential, LedgerConfig, Limits, ModelConfig, OnLedgerFailure,
    ServerConfig, TilesConfig, Timeouts, UpstreamTls, UpstreamUrl, VersionConfig,
};
use crate::decision::{EntrySignatures, PayloadMode, Protocol};
use crate::ledger::monitor::CpuShare;
use http::{HeaderName, HeaderValue};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Looks up an environment variable by name.
type VarLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where credentials are looked up: environment variables and files.
/// Relative paths (credential files, the data directory) resolve against
/// the config file's directory.
pub struct Environment {
    vars: VarLookup,
    base_dir: PathBuf,
}

impl Environment {
    /// The directory relative paths resolve against.
    pub(super) fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The real process environment.
    pub fn process(base_dir: &Path) -> Self {
        Self {
            vars: Box::new(|name| std::env::var(name).ok()),
            base_dir: base_dir.to_path_buf(),
        }
    }

    /// A fixed set of variables (for tests and embedded use).
    pub fn fixed(vars: HashMap<String, String>, base_dir: &Path) -> Self {
        Self {
            vars: Box::new(move |name| vars.get(name).cloned()),
            base_dir: base_dir.to_path_buf(),
        }
    }
}

/// Paths that belong to the gateway or to the built-in protocols; an `http`
/// model's prefix may not shadow them.
const RESERVED_PREFIXES: [&str; 3] = ["/v1", "/v2", "/govgate"];

pub(super) fn parse_raw(text: &str, file: &str) -> Result<RawConfig, ConfigError> {
    parse_raw_as(text, file)
}

/// Parses TOML text into any raw type, errors naming the key and position.
pub(super) fn parse_raw_as<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|err| ConfigError {
        file: file.to_owned(),
        key: position(text, err.span()),
        message: err.message().trim().to_owned(),
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        ConfigError {
            file: file.to_owned(),
            key: match position(text, inner.span()).as_str() {
                "(file)" => key,
                at if key == "." => at.to_owned(),
                at => format!("{key} ({at})"),
            },
            message: inner.message().trim().to_owned(),
        }
    })
}

fn position(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return "(file)".to_owned();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {column}")
}

/// Collects the file name so each check only says key and message.
pub(super) struct Checker<'a> {
    file: &'a str,
}

impl<'a> Checker<'a> {
    /// A checker whose errors name `file`.
    pub(super) fn for_file(file: &'a str) -> Self {
        Checker { file }
    }

    /// The file errors name.
    pub(super) fn file(&self) -> &'a str {
        self.file
    }

    pub(super) fn error(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            key: key.into(),
            message: message.into(),
        }
    }
}

pub(super) fn check(raw: RawConfig, file: &str, env: &Environment) -> Result<Config, ConfigError> {
    let checker = Checker { file };
    let server = check_server(&checker, raw.server, env)?;
    super::tls::check_files(&checker, "server.public_tls", server.public_tls.as_ref())?;
    super::tls::check_files(&checker, "server.admin_tls", server.admin_tls.as_ref())?;
    let limits = Limits {
        max_request_body_bytes: positive(
            &checker,
            "limits.max_request_body_bytes",
            raw.limits.max_request_body_bytes,
        )?,
        max_buffered_response_bytes: positive(
            &checker,
            "limits.max_buffered_response_bytes",
            raw.limits.max_buffered_response_bytes,
        )?,
        max_buffered_total_bytes: positive(
            &checker,
            "limits.max_buffered_total_bytes",
            raw.limits.max_buffered_total_bytes,
        )?,
        capture_bytes: within(
            &checker,
            "limits.capture_bytes",
            raw.limits.capture_bytes,
            0..=MAX_CAPTURE_BYTES,
        )?,
        max_header_bytes: within(
            &checker,
            "limits.max_header_bytes",
            raw.limits.max_header_bytes,
            MIN_HEADER_BYTES..=MAX_HEADER_BYTES,
        )?,
        max_headers: within(
            &checker,
            "limits.max_headers",
            raw.limits.max_headers,
            1..=MAX_HEADERS,
        )?,
        public_max_connections: positive(
            &checker,
            "limits.public_max_connections",
            raw.limits.public_max_connections,
        )?,
        admin_max_connections: positive(
            &checker,
            "limits.admin_max_connections",
            raw.limits.admin_max_connections,
        )?,
        upstream_pool_max_idle_per_host: usize::try_from(
            raw.limits.upstream_pool_max_idle_per_host,
        )
        .map_err(|_| {
            checker.error(
                "limits.upstream_pool_max_idle_per_host",
                "is too large for this machine",
            )
        })?,
    };
    let timeouts = Timeouts {
        connect: millis(&checker, "timeouts.connect_ms", raw.timeouts.connect_ms)?,
        first_byte: millis(
            &checker,
            "timeouts.first_byte_ms",
            raw.timeouts.first_byte_ms,
        )?,
        idle: millis(&checker, "timeouts.idle_ms", raw.timeouts.idle_ms)?,
        request_body: millis(
            &checker,
            "timeouts.request_body_ms",
            raw.timeouts.request_body_ms,
        )?,
        shutdown_grace: Duration::from_millis(raw.timeouts.shutdown_grace_ms),
        header_read: millis(
            &checker,
            "timeouts.header_read_ms",
            raw.timeouts.header_read_ms,
        )?,
        keep_alive_idle: millis(
            &checker,
            "timeouts.keep_alive_idle_ms",
            raw.timeouts.keep_alive_idle_ms,
        )?,
        upstream_pool_idle: millis(
            &checker,
            "timeouts.upstream_pool_idle_ms",
            raw.timeouts.upstream_pool_idle_ms,
        )?,
    };
    let upstream_tls = check_upstream_tls(&checker, raw.upstream_tls, env)?;
    let ledger = check_ledger(&checker, raw.ledger, env)?;
    let admin_tokens = governance::check_tokens(&checker, raw.admin.tokens)?;
    let admin_jwt = match raw.admin.jwt {
        Some(jwt) => Some(super::admin_jwt::check(&checker, jwt, env)?),
        None => None,
    };
    let approval = match raw.governance.approval {
        Some(approval) => governance::check_approval(&checker, "governance.approval", approval)?,
        None => governance::default_approval(),
    };
    if raw.models.is_empty() {
        return Err(checker.error(
            "models",
            "no models configured: add at least one [[models]] table",
        ));
    }
    let mut models = Vec::with_capacity(raw.models.len());
    let mut names = HashSet::new();
    let mut prefixes = HashSet::new();
    for (index, raw_model) in raw.models.into_iter().enumerate() {
        let key = format!("models[{index}]");
        let model = check_model(&checker, &key, raw_model, env)?;
        if !names.insert(model.name.clone()) {
            return Err(checker.error(
                format!("{key}.name"),
                format!("model `{}` is declared twice", model.name),
            ));
        }
        if let Some(prefix) = &model.path_prefix
            && !prefixes.insert(prefix.clone())
        {
            return Err(checker.error(
                format!("{key}.path_prefix"),
                format!("prefix `{prefix}` is used by another model"),
            ));
        }
        models.push(model);
    }
    let review = super::review::check(&checker, raw.review, &env.base_dir, &models)?;
    let tiles = check_tiles(&checker, raw.tiles, &server)?;
    let rate_limits = super::rate::check(&checker, raw.rate_limit)?;
    let retention = super::retention::check(&checker, raw.retention)?;
    let auth = super::auth::check(&checker, raw.auth, &models, &server, env)?;
    let risks = super::risks::check(&checker, raw.risks, raw.risk_register, &models, env)?;
    let cluster = super::cluster::check(&checker, raw.cluster, env)?;
    Ok(Config {
        source: file.to_owned(),
        server,
        limits,
        timeouts,
        upstream_tls,
        ledger,
        models,
        admin_tokens,
        admin_jwt,
        approval,
        review,
        tiles,
        rate_limits,
        retention,
        auth,
        risks,
        cluster,
    })
}

/// Most MiB of tiles kept in memory.
const MAX_TILES_CACHE_MB: u64 = 64 * 1024;

fn check_tiles(
    checker: &Checker<'_>,
    raw: super::raw::RawTiles,
    server: &ServerConfig,
) -> Result<TilesConfig, ConfigError> {
    if !raw.enabled {
        return Ok(TilesConfig::Off);
    }
    let cache_mb = within(
        checker,
        "tiles.cache_mb",
        raw.cache_mb,
        0..=MAX_TILES_CACHE_MB,
    )?;
    let cache_bytes = cache_mb
        .checked_mul(1024 * 1024)
        .ok_or_else(|| checker.error("tiles.cache_mb", "is too large for this machine"))?;
    let Some(listen) = raw.listen else {
        return Ok(TilesConfig::Public { cache_bytes });
    };
    let listen = socket_addr(checker, "tiles.listen", &listen)?;
    if listen.port() != 0 && (listen == server.public_listen || listen == server.admin_listen) {
        return Err(checker.error(
            "tiles.listen",
            "must differ from server.public_listen and server.admin_listen \
             (leave it out to serve tiles on the public listener under /govgate/log)",
        ));
    }
    Ok(TilesConfig::Own {
        listen,
        max_connections: positive(checker, "tiles.max_connections", raw.max_connections)?,
        cache_bytes,
    })
}

/// The `[server]` and `[ledger]` checks alone, for the offline commands
/// (see [`super::OfflineConfig`]).
pub(super) fn check_offline(
    raw: RawConfig,
    file: &str,
    env: &Environment,
) -> Result<super::OfflineConfig, ConfigError> {
    let checker = Checker { file };
    let server = check_server(&checker, raw.server, env)?;
    let ledger = check_ledger(&checker, raw.ledger, env)?;
    Ok(super::OfflineConfig {
        source: file.to_owned(),
        data_dir: server.data_dir,
        ledger,
        replica_id: raw.cluster.map(|cluster| cluster.replica_id),
    })
}

fn check_ledger(
    checker: &Checker<'_>,
    raw: super::raw::RawLedger,
    env: &Environment,
) -> Result<LedgerConfig, ConfigError> {
    let origin_ok = !raw.origin.is_empty()
        && raw.origin.len() <= 256
        && !raw
            .origin
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control());
    if !origin_ok {
        return Err(checker.error(
            "ledger.origin",
            "must be a non-empty name without spaces or `+`, like \"govgate.example.com/prod\"",
        ));
    }
    let payload_mode = match raw.payloads.as_str() {
        "full" => PayloadMode::Full,
        "digest" => PayloadMode::Digest,
        "none" => PayloadMode::None,
        other => {
            return Err(checker.error(
                "ledger.payloads",
                format!("unknown mode `{other}`; expected `full`, `digest` or `none`"),
            ));
        }
    };
    let path = env.base_dir.join(&raw.key_file);
    let key = "ledger.key_file";
    let pem = std::fs::read_to_string(&path).map_err(|err| {
        checker.error(
            key,
            format!(
                "cannot read `{}`: {err} (create one with `govgate keygen`)",
                path.display()
            ),
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.permissions().mode() & 0o077 != 0
        {
            return Err(checker.error(
                key,
                format!("`{}` is readable by others; `chmod 600` it", path.display()),
            ));
        }
    }
    // The key itself never goes into an error message.
    let signing_key = super::keyfile::decode_pem(&pem).map_err(|_| {
        checker.error(
            key,
            format!(
                "`{}` is not a PKCS#8 PEM Ed25519 private key",
                path.display()
            ),
        )
    })?;
    let witnesses = super::witness::check_witnesses(
        checker,
        raw.witnesses,
        raw.witness_interval_secs,
        raw.witness_threshold,
    )?;
    Ok(LedgerConfig {
        subject_key_file: raw.subject_key_file.map(|file| env.base_dir.join(file)),
        witnesses,
        origin: raw.origin,
        signing_key,
        key_file: path,
        payload_mode,
        queue_len: within(
            checker,
            "ledger.queue_len",
            raw.queue_len,
            1..=MAX_QUEUE_LEN,
        )?,
        max_batch: within(checker, "ledger.max_batch", raw.max_batch, 1..=MAX_BATCH)?,
        cache_bytes: (positive(checker, "ledger.cache_mb", raw.cache_mb)? as u64)
            .saturating_mul(1 << 20),
        verify_every: (raw.verify_every_secs > 0)
            .then(|| std::time::Duration::from_secs(raw.verify_every_secs)),
        verify_full_every: (raw.verify_full_every_secs > 0)
            .then(|| std::time::Duration::from_secs(raw.verify_full_every_secs)),
        verify_cpu_share: match raw.verify_cpu_share {
            None => CpuShare::VERIFY_DEFAULT,
            Some(share) => CpuShare::new(share).ok_or_else(|| {
                checker.error(
                    "ledger.verify_cpu_share",
                    format!(
                        "{share} is not a share of one core: give a number above 0 and at most 1"
                    ),
                )
            })?,
        },
        entry_signatures: match raw.entry_signatures.as_str() {
            "off" => EntrySignatures::Off,
            "on" => EntrySignatures::On,
            other => {
                return Err(checker.error(
                    "ledger.entry_signatures",
                    format!("unknown value `{other}`; expected `off` (the default) or `on`"),
                ));
            }
        },
        on_failure: match raw.on_failure.as_str() {
            "refuse" => OnLedgerFailure::Refuse,
            "serve" => OnLedgerFailure::Serve,
            other => {
                return Err(checker.error(
                    "ledger.on_failure",
                    format!("unknown value `{other}`; expected `refuse` (the default) or `serve`"),
                ));
            }
        },
    })
}

fn check_upstream_tls(
    checker: &Checker<'_>,
    raw: super::raw::RawUpstreamTls,
    env: &Environment,
) -> Result<UpstreamTls, ConfigError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let Some(file) = raw.ca_file else {
        return Ok(UpstreamTls::default());
    };
    let key = "upstream_tls.ca_file";
    let path = env.base_dir.join(file);
    let pem = std::fs::read(&path)
        .map_err(|err| checker.error(key, format!("cannot read `{}`: {err}", path.display())))?;
    let extra_roots = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            checker.error(
                key,
                format!(
                    "`{}` is not a PEM certificate bundle: {err}",
                    path.display()
                ),
            )
        })?;
    if extra_roots.is_empty() {
        return Err(checker.error(
            key,
            format!("`{}` holds no PEM certificates", path.display()),
        ));
    }
    Ok(UpstreamTls { extra_roots })
}

fn check_server(
    checker: &Checker<'_>,
    raw: super::raw::RawServer,
    env: &Environment,
) -> Result<ServerConfig, ConfigError> {
    let public_listen = socket_addr(checker, "server.public_listen", &raw.public_listen)?;
    let admin_listen = socket_addr(checker, "server.admin_listen", &raw.admin_listen)?;
    if public_listen == admin_listen && public_listen.port() != 0 {
        return Err(checker.error(
            "server.admin_listen",
            "must differ from server.public_listen: admin and public traffic never share a port",
        ));
    }
    if raw.data_dir.as_os_str().is_empty() {
        return Err(checker.error("server.data_dir", "must not be empty"));
    }
    let caller_header = HeaderName::from_bytes(raw.caller_header.as_bytes()).map_err(|_| {
        checker.error(
            "server.caller_header",
            format!("`{}` is not a valid HTTP header name", raw.caller_header),
        )
    })?;
    let public_tls = super::tls::check(checker, "server.public_tls", raw.public_tls, env)?;
    let admin_tls = super::tls::check(checker, "server.admin_tls", raw.admin_tls, env)?;
    Ok(ServerConfig {
        public_listen,
        admin_listen,
        public_tls,
        admin_tls,
        data_dir: env.base_dir.join(raw.data_dir),
        caller_header,
        require_caller: raw.require_caller,
        half_close: raw.half_close,
        http2: super::http_version::check_http2(checker, raw.http2)?,
        worker_threads: match raw.worker_threads {
            0 => None,
            n => Some(
                usize::try_from(n)
                    .ok()
                    .and_then(std::num::NonZeroUsize::new)
                    .filter(|n| n.get() <= 1024)
                    .ok_or_else(|| {
                        checker.error("server.worker_threads", "must be 0 (one per CPU) to 1024")
                    })?,
            ),
        },
    })
}

fn socket_addr(checker: &Checker<'_>, key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        checker.error(
            key,
            format!("`{text}` is not an IP address with port, like 127.0.0.1:8080 or [::1]:8080"),
        )
    })
}

fn positive(checker: &Checker<'_>, key: &str, value: u64) -> Result<usize, ConfigError> {
    match usize::try_from(value) {
        Ok(0) => Err(checker.error(key, "must be greater than 0")),
        Ok(value) => Ok(value),
        Err(_) => Err(checker.error(key, "is too large for this machine")),
    }
}

/// Upper bound of `limits.capture_bytes`: a decision's record holds two
/// captures, and a batch of them is one write-ahead record.
const MAX_CAPTURE_BYTES: u64 = 64 << 20;

/// Upper bound of `ledger.queue_len`: entries waiting for the writer,
/// each with its captures.
const MAX_QUEUE_LEN: u64 = 1 << 20;

/// Upper bound of `ledger.max_batch`: the writer's batch is allocated
/// whole, and one checkpoint covers it.
const MAX_BATCH: u64 = 1 << 16;

/// Bounds of `limits.max_header_bytes`: below 1 KiB ordinary requests fail;
/// above 256 KiB hyper's read buffer (about 400 KiB) would cut in first.
const MIN_HEADER_BYTES: u64 = 1024;
const MAX_HEADER_BYTES: u64 = 256 * 1024;

/// Upper bound of `limits.max_headers` (beyond 100 the parser allocates
/// its field array per request instead of using the stack).
const MAX_HEADERS: u64 = 1000;

fn within(
    checker: &Checker<'_>,
    key: &str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<usize, ConfigError> {
    if !range.contains(&value) {
        return Err(checker.error(
            key,
            format!(
                "must be between {} and {} (got {value})",
                range.start(),
                range.end()
            ),
        ));
    }
    usize::try_from(value).map_err(|_| checker.error(key, "is too large for this machine"))
}

fn millis(checker: &Checker<'_>, key: &str, value: u64) -> Result<Duration, ConfigError> {
    if value == 0 {
        return Err(checker.error(
            key,
            "must be greater than 0 (timeouts cannot be switched off)",
        ));
    }
    Ok(Duration::from_millis(value))
}

/// Names that end up in URL paths and metric labels: keep them plain.
fn plain_name(checker: &Checker<'_>, key: &str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(checker.error(
            key,
            format!(
                "`{value}` must be 1 to 128 characters of letters, digits, `.`, `_`, `-` or `:`"
            ),
        ))
    }
}

fn check_model(
    checker: &Checker<'_>,
    key: &str,
    raw: RawModel,
    env: &Environment,
) -> Result<ModelConfig, ConfigError> {
    plain_name(checker, &format!("{key}.name"), &raw.name)?;
    let protocol = match raw.protocol.as_str() {
        "openai" => Protocol::Openai,
        "kserve_v2" => Protocol::KserveV2,
        "http" => Protocol::Http,
        "anthropic" => Protocol::Anthropic,
        "kserve_v2_grpc" => Protocol::KserveV2Grpc,
        other => {
            return Err(checker.error(
                format!("{key}.protocol"),
                format!(
                    "unknown protocol `{other}`; expected one of `openai`, `anthropic`, `kserve_v2`, `kserve_v2_grpc`, `http`"
                ),
            ));
        }
    };
    let path_prefix = match (protocol, raw.path_prefix) {
        (Protocol::Http, Some(prefix)) => Some(check_prefix(
            checker,
            &format!("{key}.path_prefix"),
            prefix,
        )?),
        (Protocol::Http, None) => {
            return Err(checker.error(
                format!("{key}.path_prefix"),
                "required for protocol `http` (like \"/models/fraud\")",
            ));
        }
        (_, Some(_)) => {
            return Err(checker.error(
                format!("{key}.path_prefix"),
                "only models with protocol `http` take a path prefix",
            ));
        }
        (_, None) => None,
    };
    if raw.versions.is_empty() {
        return Err(checker.error(
            format!("{key}.versions"),
            "at least one version is required",
        ));
    }
    let model_credential = match &raw.credential {
        Some(shared) => Some(credential(
            checker,
            &format!("{key}.credential"),
            shared,
            protocol,
            env,
        )?),
        None => None,
    };
    let approval = match raw.approval {
        Some(approval) => Some(governance::check_approval(
            checker,
            &format!("{key}.approval"),
            approval,
        )?),
        None => None,
    };
    let kpi = match raw.kpi {
        Some(kpi) => Some(super::kpi::check(checker, &format!("{key}.kpi"), kpi)?),
        None => None,
    };
    let rate_limit =
        super::rate::check_model(checker, &format!("{key}.rate_limit"), raw.rate_limit)?;
    let subject = match raw.subject {
        Some(subject) => Some(super::subject::check(
            checker,
            &format!("{key}.subject"),
            subject,
        )?),
        None => None,
    };
    let retention = match raw.retention {
        Some(retention) => Some(super::retention::check_model(
            checker,
            &format!("{key}.retention"),
            retention,
        )?),
        None => None,
    };
    let http = match &raw.http {
        Some(text) => {
            super::http_version::UpstreamHttp::parse(checker, &format!("{key}.http"), text)?
        }
        // gRPC runs over HTTP/2 only.
        None if protocol == Protocol::KserveV2Grpc => super::http_version::UpstreamHttp::Http2,
        None => super::http_version::UpstreamHttp::default(),
    };
    let mut versions: Vec<VersionConfig> = Vec::with_capacity(raw.versions.len());
    for (index, raw_version) in raw.versions.into_iter().enumerate() {
        let version_key = format!("{key}.versions[{index}]");
        let version_http = match &raw_version.http {
            Some(text) => super::http_version::UpstreamHttp::parse(
                checker,
                &format!("{version_key}.http"),
                text,
            )?,
            None => http,
        };
        if protocol == Protocol::KserveV2Grpc
            && version_http != super::http_version::UpstreamHttp::Http2
        {
            let at = match raw_version.http {
                Some(_) => format!("{version_key}.http"),
                None => format!("{key}.http"),
            };
            return Err(checker.error(
                at,
                "protocol `kserve_v2_grpc` speaks gRPC, which needs HTTP/2: leave `http` out or set it to \"http2\"",
            ));
        }
        let mut version = check_version(
            checker,
            &version_key,
            raw_version,
            raw.credential.as_ref(),
            protocol,
            env,
        )?;
        version.http = version_http;
        if versions.iter().any(|v| v.version == version.version) {
            return Err(checker.error(
                format!("{version_key}.version"),
                format!("version `{}` is declared twice", version.version),
            ));
        }
        versions.push(version);
    }
    let default_version = match raw.default_version {
        Some(version) if versions.iter().any(|v| v.version == version) => version,
        Some(version) => {
            return Err(checker.error(
                format!("{key}.default_version"),
                format!("`{version}` is not one of this model's versions"),
            ));
        }
        None if versions.len() == 1 => versions[0].version.clone(),
        None => {
            return Err(checker.error(
                format!("{key}.default_version"),
                "required when a model has more than one version: say which one answers unversioned calls",
            ));
        }
    };
    Ok(ModelConfig {
        name: raw.name,
        protocol,
        path_prefix,
        default_version,
        versions,
        approval,
        credential: model_credential,
        http,
        kpi,
        rate_limit,
        subject,
        retention,
    })
}

fn check_prefix(checker: &Checker<'_>, key: &str, prefix: String) -> Result<String, ConfigError> {
    let ok = prefix.starts_with('/')
        && prefix.len() > 1
        && !prefix.ends_with('/')
        && !prefix.contains("//")
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-~".contains(&b));
    if !ok {
        return Err(checker.error(
            key,
            format!("`{prefix}` must start with `/`, not end with `/`, and hold only letters, digits and `/._-~`"),
        ));
    }
    let shadows = RESERVED_PREFIXES
        .iter()
        .any(|reserved| prefix == *reserved || prefix.starts_with(&format!("{reserved}/")));
    if shadows {
        return Err(checker.error(
            key,
            format!("`{prefix}` overlaps the gateway's own paths (/v1, /v2, /govgate)"),
        ));
    }
    Ok(prefix)
}

fn check_version(
    checker: &Checker<'_>,
    key: &str,
    mut raw: RawVersion,
    model_credential: Option<&RawCredential>,
    protocol: Protocol,
    env: &Environment,
) -> Result<VersionConfig, ConfigError> {
    plain_name(checker, &format!("{key}.version"), &raw.version)?;
    let risk_class_default = raw.risk_class.is_none();
    let (risk_class, change_ref, artifact_digest, description) =
        governance::check_version_governance(checker, key, &mut raw)?;
    let upstream = upstream_url(checker, &format!("{key}.upstream"), &raw.upstream)?;
    if let Some(name) = &raw.upstream_model {
        plain_name(checker, &format!("{key}.upstream_model"), name)?;
    }
    let credential = match (&raw.credential, model_credential) {
        (Some(own), _) => Some(credential(
            checker,
            &format!("{key}.credential"),
            own,
            protocol,
            env,
        )?),
        (None, Some(shared)) => {
            let model_key = key.rsplit_once(".versions").map_or(key, |(model, _)| model);
            Some(credential(
                checker,
                &format!("{model_key}.credential"),
                shared,
                protocol,
                env,
            )?)
        }
        (None, None) => None,
    };
    Ok(VersionConfig {
        version: raw.version,
        upstream,
        upstream_model: raw.upstream_model,
        http: super::http_version::UpstreamHttp::default(),
        credential,
        risk_class,
        risk_class_default,
        change_ref,
        artifact_digest,
        description,
    })
}

fn upstream_url(checker: &Checker<'_>, key: &str, text: &str) -> Result<UpstreamUrl, ConfigError> {
    UpstreamUrl::parse(text).map_err(|problem| checker.error(key, problem.to_string()))
}

/// A secret named by `{key}.env` (a variable) or `{key}.file` (a file
/// whose final line break is dropped): exactly one, set and not empty.
pub(super) fn secret(
    checker: &Checker<'_>,
    key: &str,
    var: Option<&str>,
    file: Option<&Path>,
    env: &Environment,
) -> Result<String, ConfigError> {
    match (var, file) {
        (Some(var), None) => (env.vars)(var)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| {
                checker.error(
                    format!("{key}.env"),
                    format!("environment variable `{var}` is not set or empty"),
                )
            }),
        (None, Some(path)) => {
            let full = env.base_dir.join(path);
            let text = std::fs::read_to_string(&full).map_err(|err| {
                checker.error(
                    format!("{key}.file"),
                    format!("cannot read `{}`: {err}", full.display()),
                )
            })?;
            let trimmed = text.trim_end_matches(['\r', '\n']).to_owned();
            if trimmed.is_empty() {
                return Err(checker.error(
                    format!("{key}.file"),
                    format!("`{}` is empty", full.display()),
                ));
            }
            Ok(trimmed)
        }
        _ => Err(checker.error(key, "set exactly one of `env` or `file`")),
    }
}

/// The header and prefix a credential of `protocol` is sent with when
/// the file names none: the protocol's own scheme.
fn credential_defaults(protocol: Protocol) -> (&'static str, &'static str) {
    match protocol {
        // SPEC: Anthropic's API reads the key from `x-api-key`, bare.
        Protocol::Anthropic => ("x-api-key", ""),
        Protocol::Openai | Protocol::KserveV2 | Protocol::KserveV2Grpc | Protocol::Http => {
            ("authorization", "Bearer ")
        }
    }
}

/// The caller's headers that carry a key for `protocol`'s upstreams:
/// a configured credential replaces all of them, so that the caller's
/// own key never reaches the model beside the gateway's.
fn caller_key_headers(protocol: Protocol) -> &'static [&'static str] {
    match protocol {
        // Anthropic's API takes a key in either header.
        Protocol::Anthropic => &["x-api-key", "authorization"],
        Protocol::Openai | Protocol::KserveV2 | Protocol::KserveV2Grpc | Protocol::Http => &[],
    }
}

fn credential(
    checker: &Checker<'_>,
    key: &str,
    raw: &RawCredential,
    protocol: Protocol,
    env: &Environment,
) -> Result<Credential, ConfigError> {
    let (default_header, default_prefix) = credential_defaults(protocol);
    let name = raw.header.as_deref().unwrap_or(default_header);
    let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        checker.error(
            format!("{key}.header"),
            format!("`{name}` is not a valid header name"),
        )
    })?;
    let prefix = raw.prefix.as_deref().unwrap_or(default_prefix);
    let secret = secret(checker, key, raw.env.as_deref(), raw.file.as_deref(), env)?;
    // The secret itself never goes into an error message.
    let mut value = HeaderValue::from_str(&format!("{prefix}{secret}")).map_err(|_| {
        checker.error(
            key,
            "the credential holds characters not allowed in an HTTP header",
        )
    })?;
    value.set_sensitive(true);
    let mut replaces = vec![header.clone()];
    for name in caller_key_headers(protocol) {
        let name = HeaderName::from_static(name);
        if !replaces.contains(&name) {
            replaces.push(name);
        }
    }
    Ok(Credential {
        header,
        value,
        replaces,
    })
}
