//! Rate limits per caller and model: a token bucket for each (caller,
//! model) pair that has sent a request, so one client cannot exhaust a
//! model or the ledger. A request beyond its bucket is answered 429
//! `rate_limited` with `Retry-After`, and recorded like any refusal.
//!
//! The buckets are bounded (`rate_limit.max_tracked_callers`): when the
//! table is full, buckets that have refilled (the same as no bucket) are
//! dropped first; if that frees too little, half of the table is dropped,
//! and those pairs start again with a full bucket. A flood of made-up
//! caller names can therefore make the limit more lenient, never cost
//! unbounded memory; `govgate_rate_limit_evictions_total` shows it.

use crate::config::{ModelConfig, RateLimit, RateLimits};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The buckets and each model's rule.
pub(crate) struct RateLimiter {
    /// Per configured model: its rule, or none (unlimited).
    rules: HashMap<String, RateLimit>,
    max_tracked: usize,
    /// Keyed by model, a NUL, and the caller (NUL cannot be in either: a
    /// model name is configured, a caller comes from a header value).
    buckets: Mutex<HashMap<String, Bucket>>,
    metrics: RateMetrics,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// The tokens at `now`, at most the burst.
    fn refilled(&self, rule: RateLimit, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * rule.per_second).min(f64::from(rule.burst))
    }
}

impl RateLimiter {
    pub(crate) fn new(limits: &RateLimits, models: &[ModelConfig], metrics: RateMetrics) -> Self {
        let rules = models
            .iter()
            .filter_map(|model| {
                let rule = model.rate_limit.unwrap_or(limits.default)?;
                Some((model.name.clone(), rule))
            })
            .collect();
        Self::with_rules(rules, limits.max_tracked, metrics)
    }

    fn with_rules(
        rules: HashMap<String, RateLimit>,
        max_tracked: usize,
        metrics: RateMetrics,
    ) -> Self {
        // Each limited model's series exists from the start, at 0.
        for model in rules.keys() {
            metrics.limited.with_label_values(&[model]);
        }
        Self {
            rules,
            max_tracked,
            buckets: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Takes a token from `caller`'s bucket on `model`; when it is empty,
    /// how long until the next token.
    pub(crate) fn take(&self, caller: &str, model: &str) -> Result<(), Duration> {
        let Some(&rule) = self.rules.get(model) else {
            return Ok(());
        };
        let now = Instant::now();
        let key = format!("{model}\0{caller}");
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if !buckets.contains_key(&key) && buckets.len() >= self.max_tracked {
            self.make_room(&mut buckets, now);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: f64::from(rule.burst),
            at: now,
        });
        let tokens = bucket.refilled(rule, now);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            return Ok(());
        }
        *bucket = Bucket { tokens, at: now };
        drop(buckets);
        self.metrics.limited.with_label_values(&[model]).inc();
        Err(Duration::from_secs_f64((1.0 - tokens) / rule.per_second))
    }

    /// Drops refilled buckets, else half of them.
    fn make_room(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        let before = buckets.len();
        buckets.retain(|key, bucket| {
            let model = key.split('\0').next().unwrap_or_default();
            self.rules
                .get(model)
                .is_some_and(|rule| bucket.refilled(*rule, now) < f64::from(rule.burst))
        });
        if buckets.len() >= self.max_tracked {
            let drop: Vec<String> = buckets
                .keys()
                .take(buckets.len() / 2 + 1)
                .cloned()
                .collect();
            for key in drop {
                buckets.remove(&key);
            }
        }
        self.metrics.evicted.inc_by((before - buckets.len()) as u64);
    }
}

/// The rate limits' metric families.
#[derive(Clone)]
pub(crate) struct RateMetrics {
    limited: IntCounterVec,
    evicted: IntCounter,
}

impl RateMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let limited = IntCounterVec::new(
            Opts::new(
                "govgate_rate_limited_total",
                "Requests answered 429 rate_limited, by model (models with a rate limit).",
            ),
            &["model"],
        )?;
        let evicted = IntCounter::new(
            "govgate_rate_limit_evictions_total",
            "Caller buckets dropped because rate_limit.max_tracked_callers was reached before they refilled (those callers start again with a full bucket).",
        )?;
        registry.register(Box::new(limited.clone()))?;
        registry.register(Box::new(evicted.clone()))?;
        Ok(Self { limited, evicted })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: u32, max_tracked: usize) -> RateLimiter {
        let rules = HashMap::from([("m".to_owned(), RateLimit { per_second, burst })]);
        let registry = Registry::new();
        RateLimiter::with_rules(
            rules,
            max_tracked,
            RateMetrics::register(&registry).unwrap(),
        )
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds_per_caller_and_model() {
        let limiter = limiter(0.5, 3, 100);
        for _ in 0..3 {
            assert_eq!(limiter.take("alice", "m"), Ok(()));
        }
        let wait = limiter.take("alice", "m").unwrap_err();
        assert!(
            wait > Duration::from_millis(1500) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        assert_eq!(limiter.take("bob", "m"), Ok(()), "each caller has a bucket");
        for _ in 0..10 {
            assert_eq!(
                limiter.take("alice", "free"),
                Ok(()),
                "a model without a rule is not limited"
            );
        }
    }

    #[test]
    fn the_table_stays_bounded_under_a_flood_of_callers() {
        let limiter = limiter(0.5, 1, 10);
        for n in 0..1000 {
            assert_eq!(limiter.take(&format!("caller-{n}"), "m"), Ok(()));
            let tracked = limiter.buckets.lock().unwrap().len();
            assert!(tracked <= 10, "{tracked} buckets");
        }
        assert!(limiter.metrics.evicted.get() >= 990);
    }
}
