//! How a request's caller was established, as its decision records it
//! (the entry's `auth` member, docs/audit-format.md section 1).

/// The method that named a decision's caller, and what identifies the
/// credential (never the credential itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CallerAuth {
    /// No identity was established: the caller is `anonymous` (nothing
    /// was claimed, or the claim was refused).
    #[default]
    None,
    /// The caller header named it. `network` is the `[auth.trusted_header]`
    /// network the peer was in; `None` when no such table is configured
    /// (then any peer may name any caller).
    Header {
        /// The trusted network, as configured (`10.0.0.0/8`).
        network: Option<String>,
    },
    /// A gateway API key (`[[auth.api_keys]]`).
    ApiKey {
        /// The key's configured id.
        key_id: String,
    },
    /// A verified TLS client certificate (`[auth.mtls]`).
    Mtls {
        /// SHA-256 of the leaf certificate's DER bytes.
        cert_sha256: [u8; 32],
    },
    /// A verified JWT bearer token (`[auth.jwt]`).
    Jwt {
        /// The token's `iss` (the configured issuer).
        issuer: String,
        /// The token's `sub`, when it has one.
        subject: Option<String>,
        /// The token's `jti`, when it has one.
        jti: Option<String>,
    },
}

impl CallerAuth {
    /// The `method` member's value.
    pub fn method(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Header { .. } => "header",
            Self::ApiKey { .. } => "api_key",
            Self::Mtls { .. } => "mtls",
            Self::Jwt { .. } => "jwt",
        }
    }
}

impl CallerAuth {
    /// The `auth` member as JSON, for entries built from JSON members
    /// (`feedback_received`); the same shape as a decision's.
    pub fn to_json(&self) -> serde_json::Value {
        let mut member = serde_json::Map::new();
        member.insert("method".into(), self.method().into());
        match self {
            Self::None | Self::Header { network: None } => {}
            Self::Header {
                network: Some(network),
            } => {
                member.insert("network".into(), network.as_str().into());
            }
            Self::ApiKey { key_id } => {
                member.insert("key_id".into(), key_id.as_str().into());
            }
            Self::Mtls { cert_sha256 } => {
                member.insert("cert_sha256".into(), super::hex(cert_sha256).into());
            }
            Self::Jwt {
                issuer,
                subject,
                jti,
            } => {
                member.insert("issuer".into(), issuer.as_str().into());
                for (name, value) in [("subject", subject), ("jti", jti)] {
                    if let Some(value) = value {
                        member.insert(name.into(), value.as_str().into());
                    }
                }
            }
        }
        serde_json::Value::Object(member)
    }
}

/// Who sent a call to one of the gateway's own public routes (`POST
/// /govgate/feedback`), established as a model request's caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// Its name (`anonymous` when none was established and none is
    /// required), capped as a decision's caller is.
    pub caller: String,
    /// How it was established.
    pub auth: CallerAuth,
}
