//! The control plane's tables, created and changed by numbered
//! migrations. Every replica runs [`migrate`] at start; an advisory lock
//! makes replicas starting together apply each migration exactly once,
//! and a replica older than the schema refuses to run on it.

use super::ClusterError;
use tokio_postgres::Client;

/// The advisory lock key of migrations (an arbitrary constant: "govgate"
/// in ASCII).
const MIGRATION_LOCK: i64 = 0x0067_6f76_6761_7465;

/// `(version, SQL)`, in order; a released migration is never changed,
/// only followed by a new one.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE govgate_replicas (
         replica_id   text PRIMARY KEY,
         instance     text NOT NULL,
         started_at   timestamptz NOT NULL,
         renewed_at   timestamptz NOT NULL,
         released     boolean NOT NULL DEFAULT false
     );
     CREATE TABLE govgate_control_events (
         seq          bigserial PRIMARY KEY,
         kind         text NOT NULL,
         body         jsonb NOT NULL,
         replica_id   text NOT NULL,
         created_at   timestamptz NOT NULL DEFAULT now()
     );",
    ),
    (
        2,
        "CREATE TABLE govgate_checkpoints (
             replica_id   text PRIMARY KEY,
             size         bigint NOT NULL,
             note         text NOT NULL,
             published_at timestamptz NOT NULL
         );",
    ),
    (
        3,
        "CREATE TABLE govgate_reviews (
             review_id      text PRIMARY KEY,
             decision_id    text NOT NULL UNIQUE,
             replica_id     text NOT NULL,
             pending        boolean NOT NULL,
             opened_unix_ms bigint NOT NULL,
             item           jsonb NOT NULL,
             updated_at     timestamptz NOT NULL DEFAULT now()
         );
         CREATE INDEX govgate_reviews_by_owner ON govgate_reviews (replica_id, pending);
         CREATE TABLE govgate_review_claims (
             review_id  text PRIMARY KEY,
             claim      jsonb NOT NULL,
             replica_id text NOT NULL,
             claimed_at timestamptz NOT NULL DEFAULT now()
         );",
    ),
    (
        4,
        "CREATE TABLE govgate_kpi_feed (
             seq          bigserial PRIMARY KEY,
             kind         text NOT NULL CHECK (kind IN ('row', 'label')),
             model        text NOT NULL,
             version      text NOT NULL,
             decision_id  text NOT NULL,
             row_index    bigint NOT NULL,
             payload      text NOT NULL,
             replica_id   text NOT NULL,
             created_at   timestamptz NOT NULL DEFAULT now(),
             UNIQUE (kind, decision_id, row_index)
         );
         CREATE INDEX govgate_kpi_feed_by_model ON govgate_kpi_feed (model, kind, seq);",
    ),
    (
        5,
        "ALTER TABLE govgate_kpi_feed DROP CONSTRAINT govgate_kpi_feed_kind_check;
         ALTER TABLE govgate_kpi_feed ADD CONSTRAINT govgate_kpi_feed_kind_check
             CHECK (kind IN ('row', 'label', 'reference'));",
    ),
];

/// The schema version this build knows.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Brings the database to [`SCHEMA_VERSION`]; the version it was at.
pub async fn migrate(client: &mut Client) -> Result<i32, ClusterError> {
    migrate_to(client, SCHEMA_VERSION).await
}

/// Brings the database to version `last` (at most [`SCHEMA_VERSION`]):
/// what a gateway of that schema made, for upgrade tests.
pub async fn migrate_to(client: &mut Client, last: i32) -> Result<i32, ClusterError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let applied = apply(client, last).await;
    // Unlocked whatever happened (the session ends the lock anyway).
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let found = applied?;
    unlocked?;
    Ok(found)
}

async fn apply(client: &mut Client, last: i32) -> Result<i32, ClusterError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS govgate_schema (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let row = client
        .query_one("SELECT coalesce(max(version), 0) FROM govgate_schema", &[])
        .await?;
    let found: i32 = row.get(0);
    if found > SCHEMA_VERSION {
        return Err(ClusterError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    let due = MIGRATIONS
        .iter()
        .filter(|(version, _)| *version > found && *version <= last);
    for (version, sql) in due {
        let transaction = client.transaction().await?;
        transaction.batch_execute(sql).await?;
        transaction
            .execute(
                "INSERT INTO govgate_schema (version) VALUES ($1)",
                &[version],
            )
            .await?;
        transaction.commit().await?;
        tracing::info!(version, "control plane schema migrated");
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (at, (version, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version as usize, at + 1);
        }
    }
}
