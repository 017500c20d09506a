//! The tlog-tiles read API over HTTP: `GET /checkpoint`, `GET
//! /tile/<L>/<N>[.p/<W>]` and `GET /tile/entries/<N>[.p/<W>]`, read-only,
//! with the caching headers the spec asks for.
//!
//! SPEC (C2SP tlog-tiles): the checkpoint is `text/plain; charset=utf-8`
//! and "its headers SHOULD prevent caching beyond a few seconds"; tiles and
//! bundles are `application/octet-stream`, "immutable, so its caching
//! headers SHOULD be long-lived"; "Empty tiles MUST NOT be served".
//!
//! Partial tiles are served for every width the latest checkpoint covers
//! (so for every checkpoint ever signed), with a short lifetime: the spec
//! lets a log delete a partial tile once the full one exists, and a short
//! lifetime keeps caches from pinning them. Entry bundles are not
//! compressed (the spec's SHOULD): nothing here compresses, and a proxy in
//! front can.
//!
//! Work per request is bounded: one tile is at most 256 hashes or 256
//! entries, read off the async workers by at most `MAX_READS` blocking
//! reads at once; tiles already read are answered from a bounded cache.

use super::cache::TileCache;
use super::metrics::{Served, TileMetrics};
use super::{TileError, TileRef};
use crate::ledger::reader::{error, store_failure};
use crate::ledger::store::{LedgerStore, StoreError};
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Where the tiles are served on the public listener when they have no
/// listener of their own.
pub const PUBLIC_PREFIX: &str = "/govgate/log";

/// Blocking store reads for tiles at once; more requests wait their turn.
const MAX_READS: usize = 8;

/// `Cache-Control` of full tiles and bundles: they never change.
const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
/// `Cache-Control` of partial tiles and bundles.
const PARTIAL: HeaderValue = HeaderValue::from_static("public, max-age=60");
/// `Cache-Control` of the checkpoint: a few seconds at most.
const CHECKPOINT: HeaderValue = HeaderValue::from_static("public, max-age=2");
const OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// The tile server's state; cheap to clone.
#[derive(Clone)]
pub struct Tiles {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn LedgerStore>,
    /// What the served checkpoint gets appended (witness cosignatures).
    cosign: Option<Cosign>,
    cache: TileCache,
    reads: Arc<Semaphore>,
    metrics: TileMetrics,
}

/// Why a tile request failed.
enum Failure {
    /// No such tile (malformed, or beyond the log): the client's.
    NotFound,
    /// Reading failed: ours.
    Tile(TileError),
    /// The blocking read panicked or was cancelled: ours.
    Lost,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::NotFound => error(
                StatusCode::NOT_FOUND,
                "tile_not_found",
                "no such tile in this log (yet)",
            ),
            Failure::Tile(TileError::Store(err)) => store_failure(err),
            Failure::Tile(err @ TileError::EntryTooLarge { .. }) => {
                tracing::error!(error = %err, "entry bundle not served");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "entry_too_large",
                    "an entry of this bundle is too long for the entry bundle format",
                )
            }
            Failure::Lost => {
                tracing::error!("a tile read did not finish");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ledger_unavailable",
                    "the ledger cannot be read",
                )
            }
        }
    }
}

/// Turns a signed checkpoint into the note served: the same note with
/// the witnesses' cosignature lines appended when they cosigned it. A
/// function, so the ledger does not depend on the witness module.
pub type Cosign = Arc<dyn Fn(&str) -> String + Send + Sync>;

impl Tiles {
    /// Tiles of `store`, caching at most `cache_bytes` of them in memory;
    /// `/checkpoint` serves the latest checkpoint through `cosign`.
    pub fn new(
        store: Arc<dyn LedgerStore>,
        cache_bytes: usize,
        metrics: TileMetrics,
        cosign: Option<Cosign>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                cosign,
                cache: TileCache::new(cache_bytes),
                reads: Arc::new(Semaphore::new(MAX_READS)),
                metrics,
            }),
        }
    }

    /// The signed checkpoint `/checkpoint` serves, `(size, note)`: the
    /// latest the store holds (blocking). Every tile of a tree up to its
    /// size is served. Anything added to the served note (cosignatures)
    /// belongs here.
    pub fn checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        let latest = self.inner.store.latest_checkpoint()?;
        Ok(match (latest, &self.inner.cosign) {
            (Some((size, note)), Some(cosign)) => Some((size, cosign(&note))),
            (latest, _) => latest,
        })
    }

    /// The bytes of `tile`, `None` when the log is not that large yet
    /// (blocking).
    fn read(&self, tile: TileRef) -> Result<Option<Bytes>, TileError> {
        let Some(needed) = tile.leaves_needed() else {
            return Ok(None);
        };
        if needed > self.inner.store.size()? {
            return Ok(None);
        }
        let bytes = Bytes::from(super::read(self.inner.store.as_ref(), tile)?);
        self.inner.cache.insert(tile, bytes.clone());
        self.inner.metrics.set_cache_bytes(self.inner.cache.bytes());
        Ok(Some(bytes))
    }

    /// Runs `f` on a blocking thread, at most [`MAX_READS`] at once.
    /// Cancel-safe: a dropped caller leaves the read to finish (holding
    /// its permit) and its result unused.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tiles) -> T + Send + 'static,
    ) -> Option<T> {
        // INVARIANT: the semaphore is never closed.
        let permit = self.inner.reads.clone().acquire_owned().await.ok()?;
        let tiles = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&tiles)
        })
        .await
        .ok()
    }
}

/// `GET /checkpoint` and `GET /tile/...`, at the root; nest it under
/// [`PUBLIC_PREFIX`] to serve on the public listener.
pub fn routes(tiles: Tiles) -> Router {
    Router::new()
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*path}", get(tile))
        .with_state(tiles)
}

async fn checkpoint(State(tiles): State<Tiles>) -> Response {
    let result = tiles.blocking(|tiles| tiles.checkpoint()).await;
    let served = match &result {
        Some(Ok(Some(_))) => Served::Checkpoint,
        Some(Ok(None)) => Served::NotFound,
        Some(Err(_)) | None => Served::Error,
    };
    tiles.inner.metrics.count(served);
    match result {
        Some(Ok(Some((_, note)))) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, TEXT),
                (header::CACHE_CONTROL, CHECKPOINT),
            ],
            note,
        )
            .into_response(),
        Some(Ok(None)) => error(
            StatusCode::NOT_FOUND,
            "empty_ledger",
            "the ledger has no checkpoint yet",
        ),
        Some(Err(err)) => store_failure(err),
        None => Failure::Lost.into_response(),
    }
}

async fn tile(State(tiles): State<Tiles>, Path(path): Path<String>) -> Response {
    let found = find(&tiles, &path).await;
    tiles.inner.metrics.count(match &found {
        Ok((_, _, served)) => *served,
        Err(Failure::NotFound) => Served::NotFound,
        Err(_) => Served::Error,
    });
    match found {
        Ok((tile, bytes, _)) => {
            let cache = if tile.is_full() { IMMUTABLE } else { PARTIAL };
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, OCTET_STREAM),
                    (header::CACHE_CONTROL, cache),
                ],
                bytes,
            )
                .into_response()
        }
        Err(failure) => failure.into_response(),
    }
}

/// The tile at `path`, and whether it came from the cache or the store.
async fn find(tiles: &Tiles, path: &str) -> Result<(TileRef, Bytes, Served), Failure> {
    let tile = TileRef::parse(path).ok_or(Failure::NotFound)?;
    if let Some(bytes) = tiles.inner.cache.get(&tile) {
        return Ok((tile, bytes, Served::Cached));
    }
    let bytes = tiles
        .blocking(move |tiles| tiles.read(tile))
        .await
        .ok_or(Failure::Lost)?
        .map_err(Failure::Tile)?
        .ok_or(Failure::NotFound)?;
    Ok((tile, bytes, Served::Read))
}
