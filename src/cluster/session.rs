//! A database session of its own for one part of the control plane
//! (statements in transactions cannot share a session with others),
//! connected at first use and again after it broke, every statement
//! bounded in time.

use super::{ClusterError, connect};
use crate::config::DatabaseUrl;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_postgres::Client;

/// How long one piece of work (with a reconnection) may take.
pub(super) const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Work on the session's client.
pub(super) type Work<'c, T> = Pin<Box<dyn Future<Output = Result<T, ClusterError>> + Send + 'c>>;

/// One session, used by one caller at a time.
pub(super) struct Session {
    url: DatabaseUrl,
    slot: Mutex<Option<(Client, tokio::task::JoinHandle<()>)>>,
}

impl Session {
    /// A session on `url`; connects at first use.
    pub(super) fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            slot: Mutex::new(None),
        }
    }

    /// Runs `work` within [`STATEMENT_TIMEOUT`]. After a failure or a
    /// timeout the next work starts on a new session (a transaction cut
    /// short is rolled back with the old one).
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, ClusterError>
    where
        F: for<'c> FnOnce(&'c mut Client) -> Work<'c, T>,
    {
        let mut slot = self.slot.lock().await;
        let result = tokio::time::timeout(STATEMENT_TIMEOUT, async {
            if slot.as_ref().is_none_or(|(client, _)| client.is_closed()) {
                let (client, connection) = connect(&self.url).await?;
                if let Some((_, old)) = slot.replace((client, connection)) {
                    old.abort();
                }
            }
            match slot.as_mut() {
                Some((client, _)) => work(client).await,
                None => unreachable!("connected above"),
            }
        })
        .await
        .unwrap_or(Err(ClusterError::ConnectTimeout(STATEMENT_TIMEOUT)));
        if result.is_err()
            && let Some((_, connection)) = slot.take()
        {
            connection.abort();
        }
        result
    }
}
