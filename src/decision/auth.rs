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
