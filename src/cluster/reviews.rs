//! The fleet's reviews in PostgreSQL (`crate::review::shared`):
//! `govgate_reviews` holds each replica's items as it last published
//! them, `govgate_review_claims` the one claim that closes each review
//! (its primary key makes the first claim the only one).

use super::ClusterError;
use super::control::CHANNEL;
use super::session::Session;
use crate::config::ClusterConfig;
use crate::review::ReviewItem;
use crate::review::shared::{
    Claim, ClaimOutcome, ItemKey, MirrorError, MirrorFuture, ReviewMirror, SharedItem,
};
use tokio_postgres::Client;

/// The fleet's review store, on a session of its own.
pub struct ReviewStore {
    replica_id: String,
    session: Session,
}

impl ReviewStore {
    /// The store of the fleet `config` names; connects at first use.
    pub fn new(config: &ClusterConfig) -> Self {
        Self {
            replica_id: config.replica_id.clone(),
            session: Session::new(config.url.clone()),
        }
    }
}

fn unavailable(err: ClusterError) -> MirrorError {
    MirrorError(Box::new(err))
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl ReviewMirror for ReviewStore {
    fn publish<'a>(&'a self, item: &'a ReviewItem) -> MirrorFuture<'a, ()> {
        Box::pin(async move {
            let body = serde_json::to_string(item).map_err(|err| unavailable(err.into()))?;
            let (review_id, decision_id) = (item.review_id.clone(), item.decision_id.clone());
            let pending = item.state == crate::review::ReviewState::Pending;
            let opened = i64::try_from(item.opened_unix_ms).unwrap_or(i64::MAX);
            let replica_id = self.replica_id.clone();
            self.session
                .run(move |client| {
                    Box::pin(async move {
                        client
                            .execute(
                                "INSERT INTO govgate_reviews \
                                 (review_id, decision_id, replica_id, pending, opened_unix_ms, item) \
                                 VALUES ($1, $2, $3, $4, $5, CAST($6::text AS jsonb)) \
                                 ON CONFLICT (review_id) DO UPDATE SET pending = $4, \
                                 item = CAST($6::text AS jsonb), updated_at = now()",
                                &[&review_id, &decision_id, &replica_id, &pending, &opened, &body],
                            )
                            .await?;
                        Ok(())
                    })
                })
                .await
                .map_err(unavailable)
        })
    }

    fn forget<'a>(&'a self, review_id: &'a str) -> MirrorFuture<'a, ()> {
        let review_id = review_id.to_owned();
        Box::pin(async move {
            self.session
                .run(move |client| {
                    Box::pin(async move {
                        client
                            .execute(
                                "DELETE FROM govgate_review_claims WHERE review_id = $1",
                                &[&review_id],
                            )
                            .await?;
                        client
                            .execute(
                                "DELETE FROM govgate_reviews WHERE review_id = $1",
                                &[&review_id],
                            )
                            .await?;
                        Ok(())
                    })
                })
                .await
                .map_err(unavailable)
        })
    }

    fn claim<'a>(&'a self, review_id: &'a str, claim: &'a Claim) -> MirrorFuture<'a, ClaimOutcome> {
        Box::pin(async move {
            let body = serde_json::to_string(claim).map_err(|err| unavailable(err.into()))?;
            let (review_id, replica_id) = (review_id.to_owned(), self.replica_id.clone());
            self.session
                .run(move |client| Box::pin(claim_first(client, review_id, body, replica_id)))
                .await
                .map_err(unavailable)
        })
    }

    fn item<'a>(&'a self, key: ItemKey<'a>) -> MirrorFuture<'a, Option<SharedItem>> {
        let (column, value) = match key {
            ItemKey::Review(id) => ("review_id", id.to_owned()),
            ItemKey::Decision(id) => ("decision_id", id.to_owned()),
        };
        Box::pin(async move {
            self.session
                .run(move |client| {
                    Box::pin(async move {
                        let statement = format!(
                            "SELECT item::text, replica_id FROM govgate_reviews WHERE {column} = $1"
                        );
                        let Some(row) = client.query_opt(&statement, &[&value]).await? else {
                            return Ok(None);
                        };
                        let item: String = row.get(0);
                        Ok(Some(SharedItem {
                            item: serde_json::from_str(&item)?,
                            owner: row.get(1),
                        }))
                    })
                })
                .await
                .map_err(unavailable)
        })
    }

    fn others(&self, pending: Option<bool>, limit: usize) -> MirrorFuture<'_, Vec<ReviewItem>> {
        let replica_id = self.replica_id.clone();
        Box::pin(async move {
            self.session
                .run(move |client| {
                    Box::pin(async move {
                        // Bodies left out in the database: a list shows none.
                        let rows = client
                            .query(
                                "SELECT jsonb_set(jsonb_set(item, '{request,bytes}', '\"\"'), \
                                 '{answer,body}', '\"\"')::text FROM govgate_reviews \
                                 WHERE replica_id <> $1 AND ($2::bool IS NULL OR pending = $2) \
                                 ORDER BY opened_unix_ms LIMIT $3",
                                &[&replica_id, &pending, &limit_i64(limit)],
                            )
                            .await?;
                        rows.iter()
                            .map(|row| Ok(serde_json::from_str(row.get::<_, &str>(0))?))
                            .collect()
                    })
                })
                .await
                .map_err(unavailable)
        })
    }

    fn claims_to_apply(&self) -> MirrorFuture<'_, Vec<(String, Claim)>> {
        let replica_id = self.replica_id.clone();
        Box::pin(async move {
            self.session
                .run(move |client| {
                    Box::pin(async move {
                        let rows = client
                            .query(
                                "SELECT c.review_id, c.claim::text FROM govgate_review_claims c \
                                 JOIN govgate_reviews r USING (review_id) \
                                 WHERE r.replica_id = $1 AND r.pending LIMIT 100",
                                &[&replica_id],
                            )
                            .await?;
                        rows.iter()
                            .map(|row| {
                                let claim: Claim = serde_json::from_str(row.get::<_, &str>(1))?;
                                Ok((row.get(0), claim))
                            })
                            .collect()
                    })
                })
                .await
                .map_err(unavailable)
        })
    }
}

/// Inserts the claim unless one exists (then reads that one), and wakes
/// the replicas, the review's owner among them.
async fn claim_first(
    client: &mut Client,
    review_id: String,
    body: String,
    replica_id: String,
) -> Result<ClaimOutcome, ClusterError> {
    let inserted = client
        .query_opt(
            "INSERT INTO govgate_review_claims (review_id, claim, replica_id) \
             VALUES ($1, CAST($2::text AS jsonb), $3) \
             ON CONFLICT (review_id) DO NOTHING RETURNING review_id",
            &[&review_id, &body, &replica_id],
        )
        .await?;
    if inserted.is_some() {
        client
            .execute("SELECT pg_notify($1, 'review')", &[&CHANNEL])
            .await?;
        return Ok(ClaimOutcome::Won);
    }
    let row = client
        .query_one(
            "SELECT claim::text FROM govgate_review_claims WHERE review_id = $1",
            &[&review_id],
        )
        .await?;
    Ok(ClaimOutcome::Taken(serde_json::from_str(
        row.get::<_, &str>(0),
    )?))
}
