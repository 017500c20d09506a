//! The fleet's KPI feed in PostgreSQL (`govgate_kpi_feed`): every
//! replica's KPI rows and labels in one order, its `seq`
//! (docs/kpis.md "Fleet KPIs").
//!
//! [`FeedWriter`] takes this replica's rows and labels from the
//! aggregator's bounded queue and inserts them in batches, off the
//! request path; [`FeedReader`] reads the feed in seq order and hands it
//! to the aggregator, which folds it into the fleet's windows.
//!
//! Inserts are serialised by a transaction-scoped advisory lock held to
//! the commit, so entries commit in seq order and a reader that has read
//! up to seq N never later finds a smaller one. A row and a label are
//! each unique per decision and row index (`ON CONFLICT DO NOTHING`): a
//! batch written again after a lost answer adds nothing, and a row keeps
//! the first label written for it.

use super::{ClusterError, connect};
use crate::config::{ClusterConfig, DatabaseUrl, ModelConfig};
use crate::kpi::{FeedColumns, FeedEvent, FeedFormatError, KpiRecorder};
use prometheus::IntCounterVec;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_postgres::Client;

/// The advisory lock key of inserts ("govkpif" in ASCII).
const INSERT_LOCK: i64 = 0x0067_6f76_6b70_6966;
/// The advisory lock key of pruning ("govkpip" in ASCII): one replica at a time.
const PRUNE_LOCK: i64 = 0x0067_6f76_6b70_6970;
/// Events inserted in one statement.
const BATCH: usize = 500;
/// Entries read in one statement.
const PAGE: i64 = 1000;
/// Bytes of payloads read in one statement, beyond the first entry.
const PAGE_BYTES: i64 = 16 << 20;
/// How long one statement (with a reconnection) may take.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the reader looks for new entries.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long the writer waits before trying a batch again.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How often the writer prunes what no window needs any more (and once
/// at start).
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// How long a stopping replica tries to write what is still queued.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The feed could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The database failed, refused or did not answer.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Decoding a page failed outright (its blocking task was lost).
    #[error("decoding the fleet's KPI feed failed: {0}")]
    Decode(String),
    /// An entry this build cannot read (skipped).
    #[error("feed entry {seq} cannot be read: {source}")]
    Format {
        /// Its seq.
        seq: i64,
        /// What is wrong with it.
        #[source]
        source: FeedFormatError,
    },
}

impl From<tokio_postgres::Error> for FeedError {
    fn from(err: tokio_postgres::Error) -> Self {
        FeedError::Cluster(ClusterError::Database(err))
    }
}

impl FeedError {
    /// The database refused the data itself (an invalid value, a broken
    /// constraint): writing the batch again would fail again.
    fn is_refusal(&self) -> bool {
        let FeedError::Cluster(ClusterError::Database(err)) = self else {
            return false;
        };
        err.code()
            .is_some_and(|code| code.code().starts_with("22") || code.code().starts_with("23"))
    }
}

type Session = Option<(Client, tokio::task::JoinHandle<()>)>;

/// The session's client, connected again if it broke.
async fn connected<'s>(
    session: &'s mut Session,
    url: &DatabaseUrl,
) -> Result<&'s mut Client, FeedError> {
    if session
        .as_ref()
        .is_none_or(|(client, _)| client.is_closed())
    {
        let (client, connection) = connect(url).await?;
        if let Some((_, old)) = session.replace((client, connection)) {
            old.abort();
        }
    }
    match session {
        Some((client, _)) => Ok(client),
        None => unreachable!("connected above"),
    }
}

/// `work` on `session` within [`STATEMENT_TIMEOUT`]; after a failure or
/// a timeout the next statement starts on a new session (a transaction
/// cut short is rolled back with the old one).
async fn bounded<T>(
    session: &mut Session,
    url: &DatabaseUrl,
    work: impl AsyncFnOnce(&mut Client) -> Result<T, FeedError>,
) -> Result<T, FeedError> {
    let result = tokio::time::timeout(STATEMENT_TIMEOUT, async {
        let client = connected(session, url).await?;
        work(client).await
    })
    .await
    .unwrap_or(Err(FeedError::Cluster(ClusterError::ConnectTimeout(
        STATEMENT_TIMEOUT,
    ))));
    if result.is_err()
        && let Some((_, connection)) = session.take()
    {
        connection.abort();
    }
    result
}

/// What the feed keeps of a model: its rows still needed by a window or
/// a reference, or joinable by a label.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Retention {
    model: String,
    /// Each version's first rows (its drift reference).
    reference_rows: i64,
    /// Each version's last rows (its drift window).
    window: i64,
    /// The model's last rows (its fairness window, and labels join the
    /// last two windows of rows).
    joinable: i64,
}

/// Deletes a model's rows that are neither among a version's first
/// `reference_rows` ($2) nor its last `window` ($3) rows, nor among the
/// model's last `2 x window` ($4) rows, and the labels of those rows.
const PRUNE: &str = "
WITH ranked AS (
    SELECT seq,
           row_number() OVER (PARTITION BY version ORDER BY seq) AS from_first,
           row_number() OVER (PARTITION BY version ORDER BY seq DESC) AS from_last,
           row_number() OVER (ORDER BY seq DESC) AS model_from_last
    FROM govgate_kpi_feed WHERE model = $1 AND kind = 'row'
), gone AS (
    DELETE FROM govgate_kpi_feed f USING ranked r
    WHERE f.seq = r.seq AND r.from_first > $2 AND r.from_last > $3 AND r.model_from_last > $4
    RETURNING f.decision_id, f.row_index
)
DELETE FROM govgate_kpi_feed l USING gone g
WHERE l.kind = 'label' AND l.decision_id = g.decision_id AND l.row_index = g.row_index";

/// Deletes the references of a model's versions that a later reference
/// of the same version replaced: from the later one's place in the feed
/// on, nothing of the earlier one counts. (A reference is written only if
/// no later one of its version is in the feed, so a deleted one is never
/// written again: [`publish_reference`].)
const PRUNE_REFERENCES: &str = "
DELETE FROM govgate_kpi_feed r
WHERE r.model = $1 AND r.kind = 'reference' AND EXISTS (
    SELECT 1 FROM govgate_kpi_feed later
    WHERE later.model = r.model AND later.kind = 'reference'
      AND later.version = r.version AND later.row_index > r.row_index
)";

/// A reference as the feed holds it: its key columns and its payload
/// ([`crate::kpi::encode_feed_payload`]).
pub(super) struct ReferenceEntry {
    pub(super) model: String,
    pub(super) version: String,
    pub(super) control_seq: i64,
    pub(super) payload: String,
}

/// Puts `reference` in the feed's order, once: every replica that applies
/// the upload's control event calls this, the first one writes it.
/// Nothing is written if a later upload of the same version is already
/// there (a replica catching up on old control events does not bring an
/// old reference back).
pub(super) async fn publish_reference(
    client: &mut Client,
    reference: ReferenceEntry,
    replica_id: String,
) -> Result<(), ClusterError> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&INSERT_LOCK])
        .await?;
    transaction
        .execute(
            "INSERT INTO govgate_kpi_feed \
                 (kind, model, version, decision_id, row_index, payload, replica_id) \
             SELECT $1, $2, $3, $4, $5, $6, $7 \
             WHERE NOT EXISTS (SELECT 1 FROM govgate_kpi_feed \
                 WHERE kind = $1 AND model = $2 AND version = $3 AND row_index >= $5) \
             ON CONFLICT (kind, decision_id, row_index) DO NOTHING",
            &[
                &crate::kpi::KIND_REFERENCE,
                &reference.model,
                &reference.version,
                &crate::kpi::REFERENCE_DECISION,
                &reference.control_seq,
                &reference.payload,
                &replica_id,
            ],
        )
        .await?;
    transaction.commit().await?;
    Ok(())
}

/// Writes this replica's KPI rows and labels to the feed.
pub struct FeedWriter {
    url: DatabaseUrl,
    replica_id: String,
    queue: mpsc::Receiver<FeedEvent>,
    /// `govgate_fleet_kpi_dropped_total{reason}`.
    dropped: IntCounterVec,
    retention: Vec<Retention>,
    session: Session,
}

impl FeedWriter {
    /// Writes what `queue` brings to the feed of the fleet `config`
    /// names; keeps what `models`' windows need.
    pub fn new(
        config: &ClusterConfig,
        models: &[ModelConfig],
        queue: mpsc::Receiver<FeedEvent>,
        dropped: IntCounterVec,
    ) -> Self {
        let retention = models
            .iter()
            .filter_map(|model| {
                let kpi = model.kpi.as_ref()?;
                let window = i64::try_from(kpi.window).unwrap_or(i64::MAX);
                Some(Retention {
                    model: model.name.clone(),
                    reference_rows: i64::try_from(kpi.reference_rows).unwrap_or(i64::MAX),
                    window,
                    joinable: window.saturating_mul(2),
                })
            })
            .collect();
        Self {
            url: config.url.clone(),
            replica_id: config.replica_id.clone(),
            queue,
            dropped,
            retention,
            session: None,
        }
    }

    /// Writes batches as they come until `stop`, trying a batch again
    /// while the database cannot be reached (meanwhile the queue fills,
    /// and what it cannot take is counted); prunes at start and every
    /// minute. Once
    /// stopped, writes what is queued for at most [`DRAIN_TIMEOUT`].
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut batch: Vec<FeedEvent> = Vec::new();
        // Pruned at start, then every PRUNE_INTERVAL.
        let mut prune_at = Instant::now();
        let mut failing = false;
        loop {
            if batch.is_empty() {
                tokio::select! {
                    () = &mut stop => break,
                    event = self.queue.recv() => match event {
                        Some(event) => batch.push(event),
                        None => break,
                    },
                    () = tokio::time::sleep_until(prune_at) => {
                        tokio::select! {
                            () = &mut stop => break,
                            () = self.prune() => {}
                        }
                        prune_at = Instant::now() + PRUNE_INTERVAL;
                        continue;
                    }
                }
            }
            self.fill(&mut batch);
            // A database that hangs does not hold the shutdown.
            let written = tokio::select! {
                () = &mut stop => break,
                written = self.write(&batch) => written,
            };
            match written {
                Ok(()) => {
                    batch.clear();
                    if std::mem::take(&mut failing) {
                        tracing::info!("the fleet's KPI feed is written again");
                    }
                }
                Err(err) if err.is_refusal() => {
                    tracing::error!(error = %err, events = batch.len(), "the database refused a batch of the fleet's KPI feed; it is dropped");
                    self.count_refused(batch.len());
                    batch.clear();
                }
                Err(err) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %err, "the fleet's KPI feed cannot be written; trying again (rows the queue cannot hold meanwhile are dropped and counted)");
                    }
                    tokio::select! {
                        () = &mut stop => break,
                        () = tokio::time::sleep(RETRY_DELAY) => {}
                    }
                }
            }
        }
        // A write cut short by the stop may have been committed or not:
        // written again on a new session, it adds nothing twice.
        if let Some((_, connection)) = self.session.take() {
            connection.abort();
        }
        match tokio::time::timeout(DRAIN_TIMEOUT, self.drain(batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "the last rows of the fleet's KPI feed were not written")
            }
            Err(_) => {
                tracing::warn!("the last rows of the fleet's KPI feed were not written in time")
            }
        }
    }

    /// Tops `batch` up with what is queued, to [`BATCH`] events.
    fn fill(&mut self, batch: &mut Vec<FeedEvent>) {
        while batch.len() < BATCH {
            match self.queue.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
    }

    /// Writes `batch` and everything queued.
    async fn drain(&mut self, mut batch: Vec<FeedEvent>) -> Result<(), FeedError> {
        loop {
            self.fill(&mut batch);
            if batch.is_empty() {
                return Ok(());
            }
            match self.write(&batch).await {
                Ok(()) => {}
                Err(err) if err.is_refusal() => self.count_refused(batch.len()),
                Err(err) => return Err(err),
            }
            batch.clear();
        }
    }

    fn count_refused(&self, events: usize) {
        self.dropped
            .with_label_values(&["refused"])
            .inc_by(events as u64);
    }

    async fn write(&mut self, batch: &[FeedEvent]) -> Result<(), FeedError> {
        let replica_id = self.replica_id.as_str();
        bounded(&mut self.session, &self.url, async |client| {
            insert(client, batch, replica_id).await
        })
        .await
    }

    /// Deletes what no window, reference or label needs any more (one
    /// replica at a time; the others skip).
    async fn prune(&mut self) {
        let retention = self.retention.clone();
        let pruned = bounded(&mut self.session, &self.url, async |client| {
            let transaction = client.transaction().await?;
            let locked: bool = transaction
                .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PRUNE_LOCK])
                .await?
                .get(0);
            if !locked {
                return Ok(());
            }
            for keep in &retention {
                transaction
                    .execute(PRUNE_REFERENCES, &[&keep.model])
                    .await?;
                transaction
                    .execute(
                        PRUNE,
                        &[
                            &keep.model,
                            &keep.reference_rows,
                            &keep.window,
                            &keep.joinable,
                        ],
                    )
                    .await?;
            }
            transaction.commit().await?;
            Ok(())
        })
        .await;
        if let Err(err) = pruned {
            tracing::warn!(error = %err, "the fleet's KPI feed was not pruned; trying again later");
        }
    }
}

/// Inserts `batch` in its order, under the insert lock.
async fn insert(
    client: &mut Client,
    batch: &[FeedEvent],
    replica_id: &str,
) -> Result<(), FeedError> {
    let n = batch.len();
    let (mut kinds, mut models, mut versions) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut decisions, mut indexes, mut payloads) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for event in batch {
        kinds.push(event.kind());
        let (model, version, decision, index) = event.key();
        models.push(model);
        versions.push(version);
        decisions.push(decision);
        indexes.push(index);
        payloads.push(crate::kpi::encode_feed_payload(event));
    }
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&INSERT_LOCK])
        .await?;
    transaction
        .execute(
            "INSERT INTO govgate_kpi_feed \
                 (kind, model, version, decision_id, row_index, payload, replica_id) \
             SELECT kind, model, version, decision_id, row_index, payload, $7 \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[]) \
                 WITH ORDINALITY AS t(kind, model, version, decision_id, row_index, payload, n) \
             ORDER BY n \
             ON CONFLICT (kind, decision_id, row_index) DO NOTHING",
            &[
                &kinds,
                &models,
                &versions,
                &decisions,
                &indexes,
                &payloads,
                &replica_id,
            ],
        )
        .await?;
    transaction.commit().await?;
    Ok(())
}

/// Reads the feed in seq order into the aggregator's fleet windows.
pub struct FeedReader {
    url: DatabaseUrl,
    recorder: KpiRecorder,
    session: Session,
}

impl FeedReader {
    /// Folds the feed of the fleet `config` names into `recorder`'s fleet windows.
    pub fn new(config: &ClusterConfig, recorder: KpiRecorder) -> Self {
        Self {
            url: config.url.clone(),
            recorder,
            session: None,
        }
    }

    /// From the start of the feed (what it retains), page after page,
    /// looking for more every [`POLL_INTERVAL`], until `stop`.
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut after: i64 = 0;
        let mut failing = false;
        'polls: loop {
            loop {
                let page = tokio::select! {
                    () = &mut stop => break 'polls,
                    page = self.page(after) => page,
                };
                let (last, events, full) = match page {
                    Ok(page) => page,
                    Err(err) => {
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!(error = %err, "the fleet's KPI feed cannot be read; the fleet KPIs stand still until it can");
                        }
                        break;
                    }
                };
                if std::mem::take(&mut failing) {
                    tracing::info!("the fleet's KPI feed is read again");
                }
                after = last;
                if !events.is_empty() && !self.recorder.fold(events).await {
                    break 'polls;
                }
                if !full {
                    break;
                }
            }
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
        if let Some((_, connection)) = self.session.take() {
            connection.abort();
        }
    }

    /// The entries after seq `after`: the last seq read, the events
    /// (unreadable entries skipped with a warning), and whether the page
    /// was full (more may follow at once).
    async fn page(&mut self, after: i64) -> Result<(i64, Vec<FeedEvent>, bool), FeedError> {
        // At most PAGE entries, and no more than PAGE_BYTES of payloads
        // beyond the first entry: a reference's payload can be tens of
        // megabytes, and a page must arrive within the session's bound.
        let rows = bounded(&mut self.session, &self.url, async |client| {
            Ok(client
                .query(
                    "SELECT seq, kind, model, version, decision_id, row_index, payload, \
                            before + octet_length(payload) AS through \
                     FROM ( \
                         SELECT *, sum(octet_length(payload)) OVER (ORDER BY seq) \
                                   - octet_length(payload) AS before \
                         FROM (SELECT * FROM govgate_kpi_feed \
                               WHERE seq > $1 ORDER BY seq LIMIT $2) AS page \
                     ) AS sized WHERE before < $3 ORDER BY seq",
                    &[&after, &PAGE, &PAGE_BYTES],
                )
                .await?)
        })
        .await?;
        // Full: more may follow at once (the count or the bytes ran out).
        let through: i64 = rows.last().map_or(0, |row| row.get(7));
        let full = rows.len() as i64 == PAGE || through >= PAGE_BYTES;
        // A page may hold an uploaded reference of up to a million rows:
        // decoded off the async workers.
        let (last, events) = tokio::task::spawn_blocking(move || decode_page(after, &rows))
            .await
            .map_err(|err| FeedError::Decode(err.to_string()))?;
        Ok((last, events, full))
    }
}

/// The events of a page read after seq `after`, and its last seq
/// (entries this build cannot read skipped with a warning).
fn decode_page(after: i64, rows: &[tokio_postgres::Row]) -> (i64, Vec<FeedEvent>) {
    let mut last = after;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let seq: i64 = row.get(0);
        last = seq;
        let columns = FeedColumns {
            kind: row.get(1),
            model: row.get(2),
            version: row.get(3),
            decision_id: row.get(4),
            row_index: row.get(5),
            payload: row.get(6),
        };
        match crate::kpi::decode_feed(columns) {
            Ok(event) => events.push(event),
            Err(source) => {
                let err = FeedError::Format { seq, source };
                tracing::warn!(error = %err, "a fleet KPI feed entry is skipped");
            }
        }
    }
    (last, events)
}
