//! The admin tokens published in the shipped example configuration
//! (`config/govgate.toml`): anyone who has read the repository knows them,
//! so a gateway whose configuration still admits them is open to all.

use super::Config;
use sha2::{Digest, Sha256};

/// The example tokens whose SHA-256 the shipped configuration lists.
pub const EXAMPLE_TOKENS: [&str; 5] = [
    "example-ops",
    "example-dana",
    "example-sam",
    "example-lee",
    "example-rita",
];

impl Config {
    /// Principals of `[[admin.tokens]]` entries that admit one of the
    /// published [`EXAMPLE_TOKENS`], in file order.
    pub fn example_token_principals(&self) -> Vec<&str> {
        let published: Vec<[u8; 32]> = EXAMPLE_TOKENS
            .iter()
            .map(|token| Sha256::digest(token.as_bytes()).into())
            .collect();
        self.admin_tokens
            .iter()
            .filter(|entry| published.contains(&entry.token_sha256))
            .map(|entry| entry.principal.as_str())
            .collect()
    }
}
