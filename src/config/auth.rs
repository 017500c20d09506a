//! `[auth]`: how the public listener establishes who is calling: API keys
//! (`[[auth.api_keys]]`, presented as `Authorization: Bearer`), JWT bearer
//! tokens (`[auth.jwt]`, in jwt.rs), client certificates (`[auth.mtls]`), and the
//! caller header (`server.caller_header`), trusted only from the networks
//! of `[auth.trusted_header]` when that table is present.

use super::ConfigError;
use super::validate::Checker;
use serde::Deserialize;

/// How callers are identified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Peers (the TCP source address) whose caller header is believed;
    /// `None`: every peer's (no `[auth.trusted_header]`).
    pub trusted_header_networks: Option<Vec<ipnet::IpNet>>,
    /// The API keys, by the SHA-256 of the key.
    pub api_keys: std::collections::HashMap<[u8; 32], std::sync::Arc<ApiKey>>,
    /// Refuse requests without a valid API key (`auth.require_api_key`).
    pub require_api_key: bool,
    /// Client certificates on the public listener (`[auth.mtls]`).
    pub mtls: Option<MtlsConfig>,
    /// JWT bearer tokens (`[auth.jwt]`).
    pub jwt: Option<super::jwt::JwtConfig>,
}

/// `[auth.mtls]`: callers named by their TLS client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtlsConfig {
    /// The CA certificates client certificates must chain to.
    pub roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// Which part of the certificate is the caller's name.
    pub identity: CertificateIdentity,
    /// Refuse the TLS handshake of a client without a certificate.
    pub required: bool,
}

/// Which part of a client certificate names the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateIdentity {
    /// The first URI subject alternative name (a SPIFFE ID).
    SanUri,
    /// The first DNS subject alternative name.
    SanDns,
    /// The subject's common name.
    SubjectCn,
}

/// One `[[auth.api_keys]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Names the key in the ledger and the logs (the key itself never).
    pub id: String,
    /// The caller it authenticates, as recorded.
    pub caller: String,
    /// After this instant (seconds since 1970) the key is refused.
    pub expires_unix: Option<i64>,
    /// The models it may call; `None`: every model.
    pub models: Option<Vec<String>>,
}

/// Whether a peer's caller header is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderTrust {
    /// No `[auth.trusted_header]`: every peer's header is.
    Anyone,
    /// The peer is in this configured network.
    Network(ipnet::IpNet),
    /// The peer is outside every configured network.
    Refused,
}

impl AuthConfig {
    /// Whether a request from `peer` may name its caller by header.
    pub fn trusts_header_from(&self, peer: Option<std::net::IpAddr>) -> bool {
        self.header_trust(peer) != HeaderTrust::Refused
    }

    /// Whether, and through which network, `peer`'s caller header is believed.
    pub fn header_trust(&self, peer: Option<std::net::IpAddr>) -> HeaderTrust {
        let Some(networks) = &self.trusted_header_networks else {
            return HeaderTrust::Anyone;
        };
        let Some(ip) = peer else {
            return HeaderTrust::Refused;
        };
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        networks
            .iter()
            .find(|network| network.contains(&ip))
            .map_or(HeaderTrust::Refused, |network| {
                HeaderTrust::Network(*network)
            })
    }
}

/// `[auth]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    #[serde(default)]
    pub(crate) trusted_header: Option<RawTrustedHeader>,
    #[serde(default)]
    pub(crate) require_api_key: bool,
    #[serde(default)]
    pub(crate) api_keys: Vec<RawApiKey>,
    #[serde(default)]
    pub(crate) mtls: Option<RawMtls>,
    #[serde(default)]
    pub(crate) jwt: Option<super::jwt::RawJwt>,
}

/// `[auth.mtls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMtls {
    pub(crate) ca_file: std::path::PathBuf,
    #[serde(default)]
    pub(crate) identity: Option<String>,
    #[serde(default)]
    pub(crate) required: bool,
}

/// `[[auth.api_keys]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApiKey {
    pub(crate) id: String,
    pub(crate) caller: String,
    pub(crate) key_sha256: String,
    #[serde(default)]
    pub(crate) expires: Option<String>,
    #[serde(default)]
    pub(crate) models: Option<Vec<String>>,
}

/// `[auth.trusted_header]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrustedHeader {
    pub(crate) networks: Vec<String>,
}

pub(super) fn check(
    checker: &Checker<'_>,
    raw: RawAuth,
    models: &[super::ModelConfig],
    server: &super::ServerConfig,
    env: &super::Environment,
) -> Result<AuthConfig, ConfigError> {
    let mtls = match raw.mtls {
        Some(mtls) => Some(check_mtls(checker, mtls, server, env)?),
        None => None,
    };
    let jwt = match raw.jwt {
        Some(jwt) => Some(super::jwt::check(checker, jwt, env)?),
        None => None,
    };
    let trusted_header_networks = match raw.trusted_header {
        Some(trusted) => Some(networks(checker, trusted)?),
        None => None,
    };
    let mut api_keys = std::collections::HashMap::new();
    let mut ids = std::collections::HashSet::new();
    for (index, key) in raw.api_keys.into_iter().enumerate() {
        let (hash, key) = api_key(checker, &format!("auth.api_keys[{index}]"), key, models)?;
        if !ids.insert(key.id.clone()) {
            return Err(checker.error(
                format!("auth.api_keys[{index}].id"),
                format!("`{}` is used by another key", key.id),
            ));
        }
        if api_keys.insert(hash, std::sync::Arc::new(key)).is_some() {
            return Err(checker.error(
                format!("auth.api_keys[{index}].key_sha256"),
                "the same key is listed twice",
            ));
        }
    }
    if raw.require_api_key && api_keys.is_empty() {
        return Err(checker.error(
            "auth.require_api_key",
            "no [[auth.api_keys]] are configured: every request would be refused",
        ));
    }
    Ok(AuthConfig {
        trusted_header_networks,
        api_keys,
        require_api_key: raw.require_api_key,
        mtls,
        jwt,
    })
}

fn check_mtls(
    checker: &Checker<'_>,
    raw: RawMtls,
    server: &super::ServerConfig,
    env: &super::Environment,
) -> Result<MtlsConfig, ConfigError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    if server.public_tls.is_none() {
        return Err(checker.error(
            "auth.mtls",
            "client certificates need TLS on the public listener: add [server.public_tls]",
        ));
    }
    let key = "auth.mtls.ca_file";
    let path = env.base_dir().join(&raw.ca_file);
    let pem = std::fs::read(&path)
        .map_err(|err| checker.error(key, format!("cannot read `{}`: {err}", path.display())))?;
    let roots = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            checker.error(
                key,
                format!("`{}` is not PEM certificates: {err}", path.display()),
            )
        })?;
    if roots.is_empty() {
        return Err(checker.error(
            key,
            format!("`{}` holds no PEM certificate", path.display()),
        ));
    }
    let identity = match raw.identity.as_deref().unwrap_or("san_uri") {
        "san_uri" => CertificateIdentity::SanUri,
        "san_dns" => CertificateIdentity::SanDns,
        "subject_cn" => CertificateIdentity::SubjectCn,
        other => {
            return Err(checker.error(
                "auth.mtls.identity",
                format!("`{other}`: one of san_uri, san_dns, subject_cn"),
            ));
        }
    };
    Ok(MtlsConfig {
        roots,
        identity,
        required: raw.required,
    })
}

fn api_key(
    checker: &Checker<'_>,
    key: &str,
    raw: RawApiKey,
    models: &[super::ModelConfig],
) -> Result<([u8; 32], ApiKey), ConfigError> {
    let id_ok = (1..=64).contains(&raw.id.len())
        && raw
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !id_ok {
        return Err(checker.error(format!("{key}.id"), "1-64 of A-Z a-z 0-9 . _ -"));
    }
    if raw.caller.is_empty() || raw.caller.len() > crate::decision::MAX_NAME_BYTES {
        return Err(checker.error(
            format!("{key}.caller"),
            format!("1 to {} bytes", crate::decision::MAX_NAME_BYTES),
        ));
    }
    let hash = hex32(&raw.key_sha256).ok_or_else(|| {
        checker.error(
            format!("{key}.key_sha256"),
            "64 hex digits: the SHA-256 of the key, as `govgate token --caller` prints it",
        )
    })?;
    let expires_unix = match raw.expires {
        Some(text) => Some(
            crate::ledger::export::UtcTime::parse(&text)
                .map_err(|err| checker.error(format!("{key}.expires"), err.to_string()))?
                .unix_seconds()
                .floor() as i64,
        ),
        None => None,
    };
    if let Some(names) = &raw.models
        && let Some(unknown) = names
            .iter()
            .find(|name| !models.iter().any(|m| &m.name == *name))
    {
        return Err(checker.error(
            format!("{key}.models"),
            format!("`{unknown}` is not a configured model"),
        ));
    }
    Ok((
        hash,
        ApiKey {
            id: raw.id,
            caller: raw.caller,
            expires_unix,
            models: raw.models,
        },
    ))
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn networks(
    checker: &Checker<'_>,
    trusted: RawTrustedHeader,
) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let key = "auth.trusted_header.networks";
    if trusted.networks.is_empty() {
        return Err(checker.error(
            key,
            "list at least one network (e.g. \"10.0.0.0/8\"); to trust no one's header, set server.require_caller and put no header in front",
        ));
    }
    trusted
        .networks
        .iter()
        .map(|text| {
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|network| network.trunc())
                .map_err(|_| {
                    checker.error(
                        key,
                        format!("`{text}` is not an IP address or network (\"10.0.0.0/8\", \"192.0.2.7\", \"fd00::/8\")"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_networks_are_trusted_ipv4_mapped_included() {
        let auth = AuthConfig {
            trusted_header_networks: Some(vec![
                "10.1.0.0/16".parse().unwrap(),
                "192.0.2.7/32".parse().unwrap(),
            ]),
            ..AuthConfig::default()
        };
        let trusts = |ip: &str| auth.trusts_header_from(Some(ip.parse().unwrap()));
        assert!(trusts("10.1.200.3"));
        assert!(trusts("192.0.2.7"));
        assert!(trusts("::ffff:10.1.0.9"));
        assert!(!trusts("10.2.0.1"));
        assert!(!trusts("192.0.2.8"));
        assert!(!trusts("127.0.0.1"));
        assert!(!auth.trusts_header_from(None));
        assert!(
            AuthConfig::default().trusts_header_from(None),
            "no table: today's behaviour"
        );
    }
}
