//! Server-sent event answers the protocol test upstreams (Anthropic
//! Messages, OpenAI Responses) share: a stream that pauses until the test
//! releases it, and one that never ends and says when it was dropped.

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// What a test controls in its upstream's streams.
pub trait StreamControl: Send + Sync + 'static {
    /// Notified by the test to let a paused stream go on.
    fn release(&self) -> &Notify;
    /// Set once an endless stream has been dropped (the gateway let go).
    fn stream_dropped(&self) -> &AtomicBool;
}

/// `head` now, in two writes (cut at `split`), then `tail` only once the
/// test releases it, 20 ms between its events.
pub fn paused<S: StreamControl>(
    state: Arc<S>,
    head: String,
    split: usize,
    tail: Vec<String>,
) -> Response {
    let stream = futures_util::stream::unfold(0usize, move |step| {
        let state = state.clone();
        let (head, tail) = (head.clone(), tail.clone());
        async move {
            let event = match step {
                0 => head[..split].to_owned(),
                1 => head[split..].to_owned(),
                2 => {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(10), state.release().notified())
                            .await;
                    tail[0].clone()
                }
                n if n < 2 + tail.len() => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    tail[n - 2].clone()
                }
                _ => return None,
            };
            Some((Ok::<_, Infallible>(Bytes::from(event)), step + 1))
        }
    });
    response(Body::from_stream(stream))
}

/// Sets the state's `stream_dropped` when dropped.
struct DropFlag<S: StreamControl>(Arc<S>);

impl<S: StreamControl> Drop for DropFlag<S> {
    fn drop(&mut self) {
        self.0.stream_dropped().store(true, Ordering::SeqCst);
    }
}

/// `event(n)` every 50 ms until the connection goes away.
pub fn endless<S: StreamControl>(state: Arc<S>, event: fn(u64) -> String) -> Response {
    let flag = DropFlag(state);
    let stream = futures_util::stream::unfold((flag, 0u64), move |(flag, n)| async move {
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some((Ok::<_, Infallible>(Bytes::from(event(n))), (flag, n + 1)))
    });
    response(Body::from_stream(stream))
}

/// A 200 `text/event-stream` answer with `body`.
pub fn response(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
