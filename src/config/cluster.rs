//! `[cluster]`: a gateway that is one replica of a fleet sharing its
//! control plane in PostgreSQL (docs/fleet.md). Without the table the
//! gateway runs alone on its embedded store and needs no database.

use super::ConfigError;
use super::validate::Checker;
use serde::Deserialize;
use std::time::Duration;

/// The longest replica id: it becomes part of the ledger's origin.
const MAX_REPLICA_ID: usize = 63;
/// Default lease of a replica id: a replica that has not renewed it for
/// this long is taken to be gone, and its id may be claimed again.
const DEFAULT_LEASE_SECS: u64 = 15;
/// Default bounded staleness: how long a replica that cannot read the
/// control plane keeps serving the approvals it has.
const DEFAULT_MAX_STALENESS_SECS: u64 = 300;

/// `[cluster]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    /// `url = { env = "NAME" }` or `{ file = "path" }`: the PostgreSQL
    /// connection string, never in the file itself.
    url: super::admin_jwt::RawSecret,
    pub(super) replica_id: String,
    #[serde(default = "default_lease_secs")]
    lease_secs: u64,
    #[serde(default = "default_max_staleness_secs")]
    max_staleness_secs: u64,
}

fn default_lease_secs() -> u64 {
    DEFAULT_LEASE_SECS
}

fn default_max_staleness_secs() -> u64 {
    DEFAULT_MAX_STALENESS_SECS
}

/// The PostgreSQL connection string: never printed (it may hold a password).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(..)")
    }
}

/// One replica of a fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Where the control plane lives.
    pub url: DatabaseUrl,
    /// This replica's name in the fleet: unique among the replicas
    /// running at once.
    pub replica_id: String,
    /// How long a claim on the replica id lasts without renewal.
    pub lease: Duration,
    /// How long the replica serves the approvals it has while it cannot
    /// read the control plane; then it refuses (fail closed).
    pub max_staleness: Duration,
}

pub(super) fn check(
    checker: &Checker<'_>,
    raw: Option<RawCluster>,
    env: &super::Environment,
) -> Result<Option<ClusterConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let id = &raw.replica_id;
    let well_formed = !id.is_empty()
        && id.len() <= MAX_REPLICA_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if !well_formed {
        return Err(checker.error(
            "cluster.replica_id",
            format!(
                "`{id}`: 1-{MAX_REPLICA_ID} of `a-z 0-9 -`, not starting or ending with `-` \
                 (it names the replica's log)"
            ),
        ));
    }
    if raw.lease_secs < 3 {
        return Err(checker.error("cluster.lease_secs", "must be at least 3"));
    }
    if raw.max_staleness_secs < 2 {
        return Err(checker.error("cluster.max_staleness_secs", "must be at least 2"));
    }
    let url = raw.url.resolve(checker, "cluster.url", env)?;
    Ok(Some(ClusterConfig {
        url: DatabaseUrl(url),
        replica_id: raw.replica_id,
        lease: Duration::from_secs(raw.lease_secs),
        max_staleness: Duration::from_secs(raw.max_staleness_secs),
    }))
}
