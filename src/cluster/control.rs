//! The fleet's control log in PostgreSQL (`govgate_control_events`): the
//! registry events every replica applies in one order, and the follower
//! that applies other replicas' events here within a moment of their
//! commit (LISTEN/NOTIFY, with a poll as the fallback).
//!
//! Appends are serialised by a transaction-scoped advisory lock held from
//! the check of the last seq to the commit, so events commit in seq order
//! and a reader that has seen seq N never later finds a smaller one.

use super::ClusterError;
use super::session::{STATEMENT_TIMEOUT, Session};
use crate::config::{ClusterConfig, DatabaseUrl};
use crate::registry::service::RegistryService;
use crate::registry::shared::{Freshness, LogFuture, SharedEvent, SharedLog, SharedLogError};
use crate::review::ReviewQueue;
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client};

/// The advisory lock key of appends ("govctrl" in ASCII).
const APPEND_LOCK: i64 = 0x0067_6f76_6374_726c;
/// The channel every append (and every review claim) notifies.
pub(super) const CHANNEL: &str = "govgate_control";
/// Events read in one statement.
const PAGE: i64 = 500;
/// How often the follower reads the log without a notification.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long the listener waits before connecting again.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// The control log, on a database session of its own (appends run in
/// transactions).
pub struct ControlLog {
    replica_id: String,
    session: Session,
}

impl ControlLog {
    /// The log of the fleet `config` names; connects at first use.
    pub fn new(config: &ClusterConfig) -> Self {
        Self {
            replica_id: config.replica_id.clone(),
            session: Session::new(config.url.clone()),
        }
    }
}

fn unavailable(err: ClusterError) -> SharedLogError {
    SharedLogError(Box::new(err))
}

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl SharedLog for ControlLog {
    fn since(&self, after: u64) -> LogFuture<'_, Vec<SharedEvent>> {
        Box::pin(async move {
            self.session
                .run(move |client| Box::pin(read_since(client, after)))
                .await
                .map_err(unavailable)
        })
    }

    fn append<'a>(
        &'a self,
        after: u64,
        kind: &'a str,
        members: &'a Map<String, Value>,
    ) -> LogFuture<'a, Option<u64>> {
        let body = Value::Object(members.clone()).to_string();
        let (kind, replica_id) = (kind.to_owned(), self.replica_id.clone());
        Box::pin(async move {
            self.session
                .run(move |client| {
                    Box::pin(
                        async move { append_after(client, after, &kind, &body, &replica_id).await },
                    )
                })
                .await
                .map_err(unavailable)
        })
    }
}

/// The bytes of events read in one statement, beyond the first event: a
/// drift reference upload carries up to 2 MB.
const PAGE_BYTES: i64 = 16 << 20;

async fn read_since(client: &mut Client, after: u64) -> Result<Vec<SharedEvent>, ClusterError> {
    let rows = client
        .query(
            "SELECT seq, kind, body FROM ( \
                 SELECT seq, kind, body::text AS body, \
                        sum(octet_length(body::text)) OVER (ORDER BY seq) \
                            - octet_length(body::text) AS before \
                 FROM (SELECT * FROM govgate_control_events \
                       WHERE seq > $1 ORDER BY seq LIMIT $2) AS page \
             ) AS sized WHERE before < $3 ORDER BY seq",
            &[&seq_i64(after), &PAGE, &PAGE_BYTES],
        )
        .await?;
    // Up to 16 MiB of JSON (an uploaded drift reference is 2 MB alone):
    // parsed off the async workers, as the caller holds the registry.
    tokio::task::spawn_blocking(move || {
        rows.iter()
            .map(|row| {
                let seq: i64 = row.get(0);
                let body: &str = row.get(2);
                Ok(SharedEvent {
                    control_seq: u64::try_from(seq).unwrap_or(0),
                    kind: row.get(1),
                    members: serde_json::from_str(body)?,
                })
            })
            .collect()
    })
    .await?
}

/// Appends if the last event is still `after`, notifying [`CHANNEL`].
async fn append_after(
    client: &mut Client,
    after: u64,
    kind: &str,
    body: &str,
    replica_id: &str,
) -> Result<Option<u64>, ClusterError> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
        .await?;
    let last: i64 = transaction
        .query_one(
            "SELECT coalesce(max(seq), 0) FROM govgate_control_events",
            &[],
        )
        .await?
        .get(0);
    if last != seq_i64(after) {
        // Dropped: rolled back.
        return Ok(None);
    }
    // The next number is given, not drawn from the column's sequence: a
    // sequence value is used up by an insert that rolls back (a timeout,
    // a lost connection), which would leave a gap in the fleet's order
    // that every replica records and the fleet's verification refuses.
    // Under the lock, `last + 1` is free and is the next one.
    let seq: i64 = transaction
        .query_one(
            "INSERT INTO govgate_control_events (seq, kind, body, replica_id) \
             VALUES ($4, $1, CAST($2::text AS jsonb), $3) RETURNING seq",
            &[&kind, &body, &replica_id, &(last + 1)],
        )
        .await?
        .get(0);
    transaction
        .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &seq.to_string()])
        .await?;
    transaction.commit().await?;
    Ok(u64::try_from(seq).ok())
}

/// What the follower shows Prometheus.
#[derive(Clone)]
pub struct FleetMetrics {
    synced_at: prometheus::IntGauge,
    control_seq: prometheus::IntGauge,
}

impl FleetMetrics {
    /// Registers the gauges in `registry`.
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let synced_at = prometheus::IntGauge::new(
            "govgate_fleet_control_synced_timestamp_seconds",
            "When this replica last read the fleet's control events to their end (Unix seconds)",
        )?;
        let control_seq = prometheus::IntGauge::new(
            "govgate_fleet_control_seq",
            "The last control event this replica applied (equal on replicas that are current)",
        )?;
        registry.register(Box::new(synced_at.clone()))?;
        registry.register(Box::new(control_seq.clone()))?;
        Ok(Self {
            synced_at,
            control_seq,
        })
    }
}

/// Applies other replicas' control events to this replica's registry as
/// they come, and keeps its [`Freshness`]; with reviews shared, applies
/// the verdicts given elsewhere on this replica's reviews too.
pub struct Follower {
    url: DatabaseUrl,
    registry: Arc<RegistryService>,
    freshness: Arc<Freshness>,
    reviews: Option<ReviewQueue>,
    metrics: Option<FleetMetrics>,
}

impl Follower {
    /// Follows the log into `registry`.
    pub fn new(
        config: &ClusterConfig,
        registry: Arc<RegistryService>,
        freshness: Arc<Freshness>,
    ) -> Self {
        Self {
            url: config.url.clone(),
            registry,
            freshness,
            reviews: None,
            metrics: None,
        }
    }

    /// Shows its progress in `metrics`.
    pub fn with_metrics(mut self, metrics: FleetMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The freshness this follower keeps.
    pub fn freshness(&self) -> Arc<Freshness> {
        self.freshness.clone()
    }

    /// Applies the fleet's verdicts on `queue`'s reviews as well.
    pub fn with_reviews(mut self, queue: ReviewQueue) -> Self {
        self.reviews = Some(queue);
        self
    }

    /// One round: the registry's events, then the verdicts to apply.
    async fn round(&self) -> Result<(), crate::registry::service::ServiceError> {
        let followed = self.registry.follow().await;
        if let Some(queue) = &self.reviews
            && let Err(err) = queue.apply_fleet_verdicts().await
        {
            tracing::debug!(error = %err, "the fleet's verdicts could not be read");
        }
        followed
    }

    /// Reads the log to its end: on every notification, every
    /// [`POLL_INTERVAL`] and once the listener (re)connects, until `stop`.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let notified = Arc::new(Notify::new());
        let (listener_stop, listener_stopped) = tokio::sync::oneshot::channel::<()>();
        let listener = tokio::spawn(listen(self.url.clone(), notified.clone(), async move {
            let _ = listener_stopped.await;
        }));
        let mut stop = std::pin::pin!(stop);
        let mut failing = false;
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = notified.notified() => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            // A round that hangs does not hold the shutdown.
            let round = tokio::select! {
                () = &mut stop => break,
                round = self.round() => round,
            };
            match round {
                Ok(()) => {
                    self.freshness.synced();
                    if let Some(metrics) = &self.metrics {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |since| since.as_secs());
                        metrics
                            .synced_at
                            .set(i64::try_from(now).unwrap_or(i64::MAX));
                        let applied = self.registry.control_seq().await;
                        metrics
                            .control_seq
                            .set(i64::try_from(applied).unwrap_or(i64::MAX));
                    }
                    if std::mem::take(&mut failing) {
                        tracing::info!("the fleet's control plane is reachable again");
                    }
                }
                Err(err) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::error!(error = %err, max_staleness_secs = self.freshness.max_staleness().as_secs(), "the fleet's control events cannot be read; the approvals this replica has serve until the bounded staleness, then nothing is served");
                    }
                }
            }
        }
        let _ = listener_stop.send(());
        let _ = listener.await;
    }
}

/// LISTENs on [`CHANNEL`] and wakes `notified` on each notification and
/// on each new session (events may have come while there was none).
async fn listen(url: DatabaseUrl, notified: Arc<Notify>, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    loop {
        let session = async {
            let (client, mut connection) = tokio::time::timeout(
                STATEMENT_TIMEOUT,
                tokio_postgres::connect(&url.0, tokio_postgres::NoTls),
            )
            .await
            .ok()?
            .ok()?;
            let messages = async {
                while let Some(message) =
                    std::future::poll_fn(|cx| connection.poll_message(cx)).await
                {
                    match message {
                        Ok(AsyncMessage::Notification(_)) => notified.notify_one(),
                        Ok(_) => {}
                        Err(err) => {
                            tracing::debug!(error = %err, "control plane notifications ended");
                            break;
                        }
                    }
                }
            };
            let subscribe = async {
                if client
                    .batch_execute(&format!("LISTEN {CHANNEL}"))
                    .await
                    .is_ok()
                {
                    notified.notify_one();
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                () = messages => {}
                () = subscribe => {}
            }
            Some(())
        };
        tokio::select! {
            () = &mut stop => return,
            _ = session => {}
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(RECONNECT_DELAY) => {}
        }
    }
}
