//! `GET /admin/decisions`: the newest decisions of a time range that match
//! a model, version, caller and outcome, a page at a time. The time range
//! becomes a seq range by binary search over the entries' times (entries
//! are in time order), so a search costs O(log n) reads to find where to
//! start, whatever the ledger's size; within the range at most
//! [`SCAN_BUDGET`] entries are read per page (a byte search spares parsing
//! most), and the answer says where to go on (`more_before`) when the
//! range holds more. Roles: auditor, admin, reviewer.

use super::auth::Tokens;
use super::{error_response, json_response};
use crate::ledger::export::UtcTime;
use crate::ledger::export::select::first_at_or_after;
use crate::ledger::store::{LedgerStore, StoreError};
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::ops::ControlFlow;
use std::sync::Arc;

/// Entries read at most for one page.
pub const SCAN_BUDGET: u64 = 20_000;
/// Decisions per page at most (and by default 50).
const MAX_LIMIT: usize = 200;
/// Entries read per range read, newest block first.
const BLOCK: u64 = 1024;
const READERS: &[&str] = &["auditor", "admin", "reviewer"];

#[derive(Clone)]
struct Api {
    tokens: Tokens,
    store: Arc<dyn LedgerStore>,
}

/// The route.
pub fn routes(tokens: Tokens, store: Arc<dyn LedgerStore>) -> Router {
    Router::new()
        .route("/admin/decisions", get(search))
        .with_state(Api { tokens, store })
}

/// What a search asks for; every member optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    /// The decision's model.
    pub model: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// Its caller.
    pub caller: Option<String>,
    /// Its outcome (`served`, `denied`, `held`, `error`, ...).
    pub outcome: Option<String>,
    /// Recorded at or after (RFC 3339).
    pub from: Option<String>,
    /// Recorded before (RFC 3339).
    pub to: Option<String>,
    /// Only seqs below this (the previous page's `more_before`).
    pub before: Option<u64>,
    /// Decisions per page (default 50, at most 200).
    pub limit: Option<usize>,
}

/// Why a search could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A time that does not parse (client).
    #[error("{0}")]
    Time(String),
    /// The store failed (server).
    #[error("the ledger could not be read: {0}")]
    Store(#[from] StoreError),
}

/// The members a search compares, as the canonical entry spells them: a
/// byte search finds candidates, the parsed entry decides.
struct Wanted {
    members: Vec<(&'static str, String)>,
    needles: Vec<memchr::memmem::Finder<'static>>,
}

impl Wanted {
    fn new(search: &Search) -> Self {
        let mut members = vec![("kind", "decision".to_owned())];
        for (name, value) in [
            ("model", &search.model),
            ("version", &search.version),
            ("caller", &search.caller),
            ("outcome", &search.outcome),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                members.push((name, value.to_owned()));
            }
        }
        let needles = members
            .iter()
            .map(|(name, value)| {
                let text = format!("\"{name}\":{}", Value::from(value.as_str()));
                memchr::memmem::Finder::new(text.as_bytes()).into_owned()
            })
            .collect();
        Self { members, needles }
    }

    /// The row of `entry` when it is a wanted decision.
    fn row(&self, bytes: &[u8]) -> Option<Value> {
        if !self.needles.iter().all(|n| n.find(bytes).is_some()) {
            return None;
        }
        let entry: Value = serde_json::from_slice(bytes).ok()?;
        if !self
            .members
            .iter()
            .all(|(name, value)| entry[*name].as_str() == Some(value))
        {
            return None;
        }
        Some(json!({
            "seq": entry["seq"], "time": entry["time"], "decision_id": entry["decision_id"],
            "caller": entry["caller"], "model": entry["model"], "version": entry["version"],
            "outcome": entry["outcome"], "status": entry["status"],
        }))
    }
}

fn time(name: &str, text: Option<&str>) -> Result<Option<UtcTime>, SearchError> {
    text.filter(|t| !t.is_empty())
        .map(|t| UtcTime::parse(t).map_err(|err| SearchError::Time(format!("{name}: {err}"))))
        .transpose()
}

/// One page of the search over `store` (blocking reads).
pub fn search_store(store: &dyn LedgerStore, search: &Search) -> Result<Value, SearchError> {
    let size = store.size()?;
    let from = time("from", search.from.as_deref())?;
    let to = time("to", search.to.as_deref())?;
    let lo = match from {
        Some(from) => first_at_or_after(store, from, 0, size)?,
        None => 0,
    };
    let hi = match to {
        Some(to) => first_at_or_after(store, to, lo, size)?,
        None => size,
    };
    // `limit=0`: only the range's seqs (what the overview counts), no
    // entry read.
    let limit = search.limit.unwrap_or(50).min(MAX_LIMIT);
    let wanted = Wanted::new(search);
    let mut end = match limit {
        0 => lo,
        _ => search.before.map_or(hi, |before| before.min(hi)),
    };
    let (mut rows, mut read) = (Vec::new(), 0u64);
    let mut more_before = None;
    while end > lo {
        let start = end.saturating_sub(BLOCK).max(lo);
        let mut block = Vec::new();
        store.entries_in(start, end, &mut |seq, bytes| {
            if let Some(row) = wanted.row(bytes) {
                block.push((seq, row));
            }
            ControlFlow::Continue(())
        })?;
        read += end - start;
        for (seq, row) in block.into_iter().rev() {
            if rows.len() == limit {
                more_before = Some(seq + 1);
                break;
            }
            rows.push(row);
        }
        end = start;
        if more_before.is_some() {
            break;
        }
        if read >= SCAN_BUDGET && end > lo {
            more_before = Some(end);
            break;
        }
    }
    Ok(json!({
        "decisions": rows,
        "range": { "from_seq": lo, "to_seq": hi },
        "read": read,
        "more_before": more_before,
    }))
}

async fn search(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<Search>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match api.tokens.authenticate(&headers).await {
        Ok(caller) => {
            if let Err(err) = caller.require(READERS) {
                return err.into_response();
            }
        }
        Err(err) => return err.into_response(),
    }
    let Ok(Query(search)) = query else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "model, version, caller, outcome, from, to (RFC 3339), before (a seq) and limit only",
            None,
        );
    };
    let store = api.store.clone();
    // Reads of the store block: off the async workers.
    let found = tokio::task::spawn_blocking(move || search_store(store.as_ref(), &search)).await;
    match found {
        Ok(Ok(page)) => json_response(StatusCode::OK, &page),
        Ok(Err(SearchError::Time(why))) => {
            error_response(StatusCode::BAD_REQUEST, "invalid_query", &why, None)
        }
        Ok(Err(err)) => {
            tracing::error!(error = %err, "decision search failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the ledger could not be read",
                None,
            )
        }
        Err(_) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the search failed",
            None,
        ),
    }
}
