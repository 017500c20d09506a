//! Each replica's latest signed checkpoint, published to the database
//! (`govgate_checkpoints`), so that an auditor of the fleet knows every
//! replica's log and the size it reached, and can ask each for a
//! consistency proof to it; [`read_published`] reads them back for the
//! fleet bundle (`govgate export --fleet`).

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

/// A replica's checkpoint as published, read back for an audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The replica.
    pub replica_id: String,
    /// The checkpoint's size (its second line, as the replica stated it).
    pub size: u64,
    /// The signed note, verbatim.
    pub note: String,
    /// When it was published (UTC, RFC 3339 with milliseconds).
    pub published_at: String,
}

/// Every replica's latest published checkpoint, by replica id: a session
/// of its own, ended when read.
pub async fn read_published(
    url: &crate::config::DatabaseUrl,
) -> Result<Vec<Published>, ClusterError> {
    let (client, connection) = super::connect(url).await?;
    let rows = client
        .query(
            "SELECT replica_id, size, note,
                    to_char(published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
             FROM govgate_checkpoints ORDER BY replica_id",
            &[],
        )
        .await;
    drop(client);
    let _ = connection.await;
    Ok(rows?
        .iter()
        .map(|row| Published {
            replica_id: row.get(0),
            size: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
            note: row.get(2),
            published_at: row.get(3),
        })
        .collect())
}
