//! The accept loop: spawns one owned task per connection up to the cap,
//! answers `overloaded` beyond it, survives running out of descriptors,
//! and drains on shutdown.

use super::answers::Refusal;
use super::conn::serve_connection;
use super::descriptors::OVERFLOW_SLOTS;
use super::metrics::Reason;
use super::{ListenerMetrics, Settings, Shared};
use axum::Router;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

/// How long an `overloaded` answer may take, including reading what the
/// client sends meanwhile so the close is a FIN, not a reset.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// First and longest pause after an accept error that is not about one
/// connection (out of descriptors or memory).
const BACKOFF_FIRST: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting, lets every connection finish its request in flight and
/// returns once all are closed. Never fails: accept errors are retried.
/// Cancel-safe in the sense that dropping it aborts every connection task
/// (the end of the shutdown grace).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: Settings,
    metrics: ListenerMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let shared = Arc::new(Shared::new(settings, &metrics));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut refusals = JoinSet::new();
    let mut reserve = Reserve::new(&listener);
    let mut backoff = BACKOFF_FIRST;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            // Reaping first keeps `connections.len()` the number open.
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(err) = joined
                    && err.is_panic() {
                        tracing::error!(listener = shared.settings.name, "a connection task panicked");
                    }
            }
            Some(_) = refusals.join_next(), if !refusals.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = BACKOFF_FIRST;
                    if connections.len() >= shared.settings.max_connections {
                        refuse(stream, &shared, &mut refusals);
                        continue;
                    }
                    let span = tracing::debug_span!("connection", listener = shared.settings.name, %peer);
                    connections.spawn(
                        serve_connection(stream, peer, router.clone(), shared.clone(), stop_rx.clone())
                            .instrument(span),
                    );
                }
                Err(err) if per_connection(&err) => {}
                Err(err) => {
                    if out_of_descriptors(&err) && reserve.answer(&listener, &shared).await {
                        continue;
                    }
                    if backoff == BACKOFF_FIRST {
                        tracing::warn!(listener = shared.settings.name, error = %err, "cannot accept connections; retrying");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = &mut shutdown => break,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
    // Closes the listening socket (the reserve is a second descriptor of
    // it): new connections are refused from here on.
    drop(listener);
    drop(reserve);
    refusals.abort_all();
    let _ = stop_tx.send(true);
    while let Some(joined) = connections.join_next().await {
        if let Err(err) = joined
            && err.is_panic()
        {
            tracing::error!(
                listener = shared.settings.name,
                "a connection task panicked"
            );
        }
    }
}

/// Answers a connection beyond the cap with 503 `overloaded` and closes
/// it. Up to [`OVERFLOW_SLOTS`] such answers linger (reading what the
/// client sends, so the close is clean); beyond that the answer is written
/// if the socket takes it at once, and the connection dropped.
fn refuse(stream: TcpStream, shared: &Arc<Shared>, refusals: &mut JoinSet<()>) {
    shared.metrics.refused(Reason::Refusal(Refusal::Overloaded));
    let answer = shared.answers.get(Refusal::Overloaded);
    if refusals.len() >= OVERFLOW_SLOTS {
        send_now(&stream, &answer);
        return;
    }
    refusals.spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            stream.write_all(&answer).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        })
        .await;
    });
}

/// Writes `answer` to a just-accepted socket in one non-blocking send, if
/// the socket takes it (an empty send buffer does). Not through tokio: it
/// has not seen the new socket writable yet and would refuse to try.
fn send_now(stream: &TcpStream, answer: &[u8]) {
    if let Err(err) = socket2::SockRef::from(stream).send(answer) {
        tracing::debug!(error = %err, "overloaded answer not sent");
    }
}

/// Accept errors about one connection (it was reset before we took it):
/// accept the next at once.
fn per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// `EMFILE` (this process) or `ENFILE` (the system) is out of descriptors.
fn out_of_descriptors(err: &io::Error) -> bool {
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    matches!(err.raw_os_error(), Some(ENFILE | EMFILE))
}

/// A spare descriptor (a duplicate of the listening socket), given up for
/// a moment when accepting fails for lack of descriptors: the waiting
/// client is then accepted, answered `overloaded` and closed, instead of
/// waiting in the backlog with no answer.
struct Reserve(Option<socket2::Socket>);

impl Reserve {
    fn new(listener: &TcpListener) -> Self {
        Self(socket2::SockRef::from(listener).try_clone().ok())
    }

    /// Frees the spare, answers one waiting client, takes the spare back.
    /// False if there was no spare or no client could be accepted.
    async fn answer(&mut self, listener: &TcpListener, shared: &Shared) -> bool {
        if self.0.take().is_none() {
            self.0 = socket2::SockRef::from(listener).try_clone().ok();
            return false;
        }
        let accepted = std::future::poll_fn(|cx| Poll::Ready(listener.poll_accept(cx))).await;
        let answered = match accepted {
            Poll::Ready(Ok((stream, _))) => {
                shared.metrics.refused(Reason::Refusal(Refusal::Overloaded));
                send_now(&stream, &shared.answers.get(Refusal::Overloaded));
                true
            }
            _ => false,
        };
        self.0 = socket2::SockRef::from(listener).try_clone().ok();
        answered
    }
}
