//! `[auth]`: how the public listener establishes who is calling. Today one
//! method: the caller header (`server.caller_header`), trusted only from
//! the networks of `[auth.trusted_header]` when that table is present.

use super::ConfigError;
use super::validate::Checker;
use serde::Deserialize;

/// How callers are identified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Peers (the TCP source address) whose caller header is believed;
    /// `None`: every peer's (no `[auth.trusted_header]`).
    pub trusted_header_networks: Option<Vec<ipnet::IpNet>>,
}

impl AuthConfig {
    /// Whether a request from `peer` may name its caller by header.
    pub fn trusts_header_from(&self, peer: Option<std::net::IpAddr>) -> bool {
        match &self.trusted_header_networks {
            None => true,
            Some(networks) => peer.is_some_and(|ip| {
                // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
                let ip = match ip {
                    std::net::IpAddr::V6(v6) => {
                        v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4)
                    }
                    v4 => v4,
                };
                networks.iter().any(|network| network.contains(&ip))
            }),
        }
    }
}

/// `[auth]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    #[serde(default)]
    pub(crate) trusted_header: Option<RawTrustedHeader>,
}

/// `[auth.trusted_header]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrustedHeader {
    pub(crate) networks: Vec<String>,
}

pub(super) fn check(checker: &Checker<'_>, raw: RawAuth) -> Result<AuthConfig, ConfigError> {
    let Some(trusted) = raw.trusted_header else {
        return Ok(AuthConfig::default());
    };
    let key = "auth.trusted_header.networks";
    if trusted.networks.is_empty() {
        return Err(checker.error(
            key,
            "list at least one network (e.g. \"10.0.0.0/8\"); to trust no one's header, set server.require_caller and put no header in front",
        ));
    }
    let networks = trusted
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
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AuthConfig {
        trusted_header_networks: Some(networks),
    })
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
