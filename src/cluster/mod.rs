//! A gateway as one replica of a fleet whose control plane is in
//! PostgreSQL (`[cluster]`, docs/fleet.md).
//!
//! At start the replica connects, brings the schema up to date
//! ([`schema::migrate`], under an advisory lock) and claims its replica
//! id ([`replica::claim`]): a second gateway started with the same id
//! refuses to run. While it runs it renews the claim; at shutdown it
//! gives it up. The request path never waits on the database. Each
//! replica signs its own log, named `<ledger.origin>/<replica_id>`
//! ([`origin`]).

pub mod checkpoints;
pub mod control;
pub mod kpi_feed;
pub mod origin;
pub mod references;
pub mod replica;
pub mod reviews;
pub mod schema;
mod session;

use crate::config::ClusterConfig;
use crate::ledger::store::LedgerStore;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// How long a start waits for the database.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping replica tries to publish its last checkpoint and
/// give its id up.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The control plane cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The database refused or failed a statement, or the connection broke.
    #[error("PostgreSQL: {0}")]
    Database(#[from] tokio_postgres::Error),
    /// The database did not answer in time.
    #[error("PostgreSQL did not answer within {} s", .0.as_secs())]
    ConnectTimeout(Duration),
    /// The schema was made by a newer gateway.
    #[error(
        "the control plane's schema is version {found}, newer than this gateway knows ({known}): \
         run the newer gateway, or a database of its own"
    )]
    SchemaTooNew {
        /// The database's version.
        found: i32,
        /// This build's.
        known: i32,
    },
    /// Another running gateway holds the replica id.
    #[error(
        "replica id `{replica_id}` is in use by another gateway (its claim was renewed \
         {renewed_secs_ago:.0} s ago; a claim lasts {lease_secs} s): give each replica its own \
         cluster.replica_id"
    )]
    ReplicaIdInUse {
        /// The id.
        replica_id: String,
        /// When the holder last renewed it.
        renewed_secs_ago: f64,
        /// `cluster.lease_secs`.
        lease_secs: u64,
    },
    /// A row of the control plane does not decode.
    #[error("the control plane holds a malformed row: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Another gateway claimed this replica's id (its lease ran out).
    #[error("replica id `{0}` was claimed by another gateway")]
    ClaimLost(String),
    /// The blocking thread decoding rows was lost (it panicked).
    #[error("decoding the control plane's rows failed: {0}")]
    DecodeLost(#[from] tokio::task::JoinError),
}

/// A replica that joined the fleet: its database session and its claim.
pub struct Membership {
    client: Client,
    /// Drives the session's socket; ends when the client is dropped.
    connection: tokio::task::JoinHandle<()>,
    claim: replica::Claim,
    url: crate::config::DatabaseUrl,
    /// The schema version found at start (before migrating).
    pub schema_found: i32,
    /// The ledger whose checkpoints are published, once set.
    ledger: Option<Arc<dyn LedgerStore>>,
    /// The size of the checkpoint published last.
    published: u64,
    /// Told when another gateway took the replica id.
    freshness: Option<Arc<crate::registry::shared::Freshness>>,
}

/// Connects, migrates and claims the replica id.
pub async fn join(config: &ClusterConfig) -> Result<Membership, ClusterError> {
    let (mut client, connection) = connect(&config.url).await?;
    let schema_found = schema::migrate(&mut client).await?;
    let claim = replica::claim(&mut client, &config.replica_id, config.lease).await?;
    tracing::info!(replica = %claim.replica_id, "joined the fleet");
    Ok(Membership {
        client,
        connection,
        claim,
        url: config.url.clone(),
        schema_found,
        ledger: None,
        published: 0,
        freshness: None,
    })
}

async fn connect(
    url: &crate::config::DatabaseUrl,
) -> Result<(Client, tokio::task::JoinHandle<()>), ClusterError> {
    let (client, connection) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(&url.0, NoTls))
            .await
            .map_err(|_| ClusterError::ConnectTimeout(CONNECT_TIMEOUT))??;
    let connection = tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "control plane connection ended");
        }
    });
    Ok((client, connection))
}

impl Membership {
    /// The replica id this process holds.
    pub fn replica_id(&self) -> &str {
        &self.claim.replica_id
    }

    /// One renewal: reconnects when the session broke, renews the claim,
    /// publishes the latest checkpoint.
    async fn round(&mut self) {
        if self.client.is_closed() {
            match connect(&self.url).await {
                Ok((client, connection)) => {
                    self.connection.abort();
                    self.client = client;
                    self.connection = connection;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "control plane unreachable; the replica id's claim is not renewed");
                    return;
                }
            }
        }
        match replica::renew(&self.client, &self.claim).await {
            Ok(()) => {}
            Err(err @ ClusterError::ClaimLost(_)) => {
                // Two gateways must not write one replica's log: this one
                // stops serving (fail closed) until it is restarted.
                tracing::error!(error = %err, "this gateway no longer serves: its replica id's lease ran out and another gateway claimed it");
                if let Some(freshness) = &self.freshness {
                    freshness.id_lost(&self.claim.replica_id);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "the replica id's claim could not be renewed")
            }
        }
        self.publish_checkpoint().await;
    }

    /// Stops the replica serving (through `freshness`) if another
    /// gateway claims its id.
    pub fn guarding(mut self, freshness: Option<Arc<crate::registry::shared::Freshness>>) -> Self {
        self.freshness = freshness;
        self
    }

    /// Publishes `ledger`'s latest checkpoint with each renewal.
    pub fn publishing(mut self, ledger: Arc<dyn LedgerStore>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Publishes the ledger's latest checkpoint if it grew since the last.
    async fn publish_checkpoint(&mut self) {
        let Some(ledger) = self.ledger.clone() else {
            return;
        };
        let latest = match tokio::task::spawn_blocking(move || ledger.latest_checkpoint()).await {
            Ok(Ok(Some(latest))) => latest,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "the latest checkpoint could not be read for the fleet");
                return;
            }
        };
        let (size, note) = latest;
        if size <= self.published {
            return;
        }
        match checkpoints::publish(&self.client, &self.claim.replica_id, size, &note).await {
            Ok(()) => self.published = size,
            Err(err) => tracing::warn!(error = %err, "the latest checkpoint was not published"),
        }
    }

    /// Renews the claim and publishes the latest checkpoint every third
    /// of the lease until `stop`, reconnecting when the session broke;
    /// then publishes once more and gives the id up.
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut ticks = tokio::time::interval(self.claim.lease / 3);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = ticks.tick() => {}
            }
            // A database that hangs does not hold the shutdown.
            tokio::select! {
                () = &mut stop => break,
                () = self.round() => {}
            }
        }
        let leaving = async {
            self.publish_checkpoint().await;
            replica::release(&self.client, &self.claim).await
        };
        match tokio::time::timeout(LEAVE_TIMEOUT, leaving).await {
            Ok(Ok(())) => tracing::info!(replica = %self.claim.replica_id, "left the fleet"),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "the replica id was not given up; it is free once its lease ends")
            }
            Err(_) => tracing::warn!(
                "the replica id was not given up in time; it is free once its lease ends"
            ),
        }
        drop(self.client);
        let _ = self.connection.await;
    }
}
