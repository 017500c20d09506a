//! A replica's claim on its id: at most one running gateway per
//! `cluster.replica_id`, enforced by a lease in `govgate_replicas` that
//! the running replica renews and gives up when it stops.

use super::ClusterError;
use std::time::Duration;
use tokio_postgres::Client;

/// This process's claim on a replica id.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The replica id claimed.
    pub replica_id: String,
    /// This process (random): tells a renewal of ours from another's.
    pub instance: String,
    /// How long the claim lasts without renewal.
    pub lease: Duration,
}

/// Claims `replica_id` for this process, unless another process holds it
/// (claimed, not given up, renewed within `lease`).
pub async fn claim(
    client: &mut Client,
    replica_id: &str,
    lease: Duration,
) -> Result<Claim, ClusterError> {
    let instance = new_instance();
    let transaction = client.transaction().await?;
    // A placeholder row first, so that the row exists to lock: two
    // replicas claiming a new id at once queue on it.
    transaction
        .execute(
            "INSERT INTO govgate_replicas (replica_id, instance, started_at, renewed_at, released)
             VALUES ($1, '', now(), now(), true) ON CONFLICT (replica_id) DO NOTHING",
            &[&replica_id],
        )
        .await?;
    let row = transaction
        .query_one(
            "SELECT released, extract(epoch FROM now() - renewed_at)::float8
             FROM govgate_replicas WHERE replica_id = $1 FOR UPDATE",
            &[&replica_id],
        )
        .await?;
    let released: bool = row.get(0);
    let age: f64 = row.get(1);
    if !released && age < lease.as_secs_f64() {
        return Err(ClusterError::ReplicaIdInUse {
            replica_id: replica_id.to_owned(),
            renewed_secs_ago: age.max(0.0),
            lease_secs: lease.as_secs(),
        });
    }
    transaction
        .execute(
            "UPDATE govgate_replicas
             SET instance = $2, started_at = now(), renewed_at = now(), released = false
             WHERE replica_id = $1",
            &[&replica_id, &instance],
        )
        .await?;
    transaction.commit().await?;
    Ok(Claim {
        replica_id: replica_id.to_owned(),
        instance,
        lease,
    })
}

/// Renews `claim`; [`ClusterError::ClaimLost`] when another process
/// claimed the id meanwhile (this one did not renew within the lease).
pub async fn renew(client: &Client, claim: &Claim) -> Result<(), ClusterError> {
    let renewed = client
        .execute(
            "UPDATE govgate_replicas SET renewed_at = now()
             WHERE replica_id = $1 AND instance = $2 AND NOT released",
            &[&claim.replica_id, &claim.instance],
        )
        .await?;
    if renewed == 0 {
        return Err(ClusterError::ClaimLost(claim.replica_id.clone()));
    }
    Ok(())
}

/// Gives the id up at shutdown: another process may claim it at once.
pub async fn release(client: &Client, claim: &Claim) -> Result<(), ClusterError> {
    client
        .execute(
            "UPDATE govgate_replicas SET released = true
             WHERE replica_id = $1 AND instance = $2",
            &[&claim.replica_id, &claim.instance],
        )
        .await?;
    Ok(())
}

fn new_instance() -> String {
    let bytes: [u8; 16] = rand::random();
    crate::decision::hex(&bytes)
}
