//! The tile API's metric families: answers by result, and the cache's size.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// What a tile API request came to (the `result` label).
#[derive(Debug, Clone, Copy)]
pub(super) enum Served {
    /// `/checkpoint` answered.
    Checkpoint,
    /// A tile or bundle answered from the cache.
    Cached,
    /// A tile or bundle read from the store (and cached).
    Read,
    /// Not a tile, or beyond the log.
    NotFound,
    /// The store failed, or a bundle could not be written.
    Error,
}

/// Counters of the tile API; cheap to clone.
#[derive(Clone)]
pub struct TileMetrics {
    /// One child per [`Served`], resolved once.
    served: [IntCounter; 5],
    cache_bytes: IntGauge,
}

impl TileMetrics {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let served = IntCounterVec::new(
            Opts::new(
                "govgate_tiles_requests_total",
                "Requests to the tile API (checkpoint, tiles, entry bundles) by result.",
            ),
            &["result"],
        )?;
        let cache_bytes = IntGauge::new(
            "govgate_tiles_cache_bytes",
            "Bytes of tiles and entry bundles held in memory (tiles.cache_mb caps it).",
        )?;
        registry.register(Box::new(served.clone()))?;
        registry.register(Box::new(cache_bytes.clone()))?;
        let child = |result| served.with_label_values(&[result]);
        Ok(Self {
            served: [
                child("checkpoint"),
                child("cached"),
                child("read"),
                child("not_found"),
                child("error"),
            ],
            cache_bytes,
        })
    }

    pub(super) fn count(&self, served: Served) {
        self.served[served as usize].inc();
    }

    pub(super) fn set_cache_bytes(&self, bytes: usize) {
        self.cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}
