//! Each replica's latest signed checkpoint, published to the database
//! (`govgate_checkpoints`), so that an auditor of the fleet knows every
//! replica's log and the size it reached, and can ask each for a
//! consistency proof to it.

use super::ClusterError;
use tokio_postgres::Client;

/// Publishes `note` (the signed checkpoint of `size` entries) as
/// `replica_id`'s latest; a smaller size never replaces a larger one.
pub async fn publish(
    client: &Client,
    replica_id: &str,
    size: u64,
    note: &str,
) -> Result<(), ClusterError> {
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    client
        .execute(
            "INSERT INTO govgate_checkpoints (replica_id, size, note, published_at)
             VALUES ($1, $2, $3, now())
             ON CONFLICT (replica_id) DO UPDATE
             SET size = EXCLUDED.size, note = EXCLUDED.note, published_at = now()
             WHERE govgate_checkpoints.size <= EXCLUDED.size",
            &[&replica_id, &size, &note],
        )
        .await?;
    Ok(())
}
