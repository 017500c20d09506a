//! The OpenAI Responses API's stored responses: which model, version and
//! caller created each response id, so that `GET`, `DELETE`, `cancel` and
//! `input_items` calls (which name no model) reach the upstream that holds
//! the response, under the version's approval.
//!
//! The index is learnt from answers to `POST /v1/responses`: the `id` of
//! a JSON answer, or of the `response` in a stream's first event
//! (`response.created`). It lives in memory, holds at most
//! [`MAX_RESPONSE_IDS`] ids and forgets the oldest first; the gateway
//! keeps it across restarts in a file of its data directory
//! ([`journal`]). A forgotten id is refused as `unknown_response`.

mod journal;

pub use journal::JournalError;
pub(crate) use journal::JournalWriter;

use bytes::Bytes;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// How many response ids the gateway remembers; past that, the oldest
/// is forgotten first.
pub(crate) const MAX_RESPONSE_IDS: usize = 100_000;

/// The longest response id remembered (OpenAI's are about 50 bytes).
const MAX_ID_BYTES: usize = 256;

/// How far into a JSON answer streamed in pieces its leading id is looked for.
const LEADING_ID_BYTES: usize = 1024;

/// How far into a streamed answer its id is looked for.
const SCAN_LIMIT: usize = 64 * 1024;

/// Who created a response, and with which model version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredResponse {
    /// The model's gateway name.
    pub model: String,
    /// The version that created it.
    pub version: String,
    /// The caller that created it: only the same caller reaches it again.
    pub caller: String,
}

/// Response id -> creator, bounded, oldest forgotten first.
#[derive(Clone)]
pub(crate) struct ResponseIndex {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, StoredResponse>,
    order: VecDeque<String>,
    /// Where new ids go to be journaled, once the journal is open.
    journal: Option<tokio::sync::mpsc::Sender<journal::Line>>,
}

impl ResponseIndex {
    /// An empty index of at most `capacity` ids.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            capacity,
        }
    }

    /// Remembers `id` as created by `stored` (an id seen again keeps its
    /// first creator: an upstream never reuses ids).
    pub(crate) fn learn(&self, id: &str, stored: StoredResponse) {
        if id.is_empty() || id.len() > MAX_ID_BYTES || self.capacity == 0 {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.by_id.contains_key(id) {
            return;
        }
        while inner.order.len() >= self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            inner.by_id.remove(&oldest);
        }
        if let Some(journal) = &inner.journal
            && journal.try_send(journal::Line::new(id, &stored)).is_err()
        {
            tracing::debug!("the response id journal is behind; an id is kept in memory only");
        }
        inner.order.push_back(id.to_owned());
        inner.by_id.insert(id.to_owned(), stored);
    }

    /// Who created `id`, if remembered.
    pub(crate) fn find(&self, id: &str) -> Option<StoredResponse> {
        self.inner.lock().ok()?.by_id.get(id).cloned()
    }

    /// Watches a streamed answer for its id and learns it as soon as it
    /// passes (before the event that carries it is released).
    pub(crate) fn watcher(&self, stored: StoredResponse) -> super::stream::Watch {
        let index = self.clone();
        let mut scan = IdScan::default();
        let mut stored = Some(stored);
        Box::new(move |data: &Bytes| match scan.push(data) {
            Scan::Found(id) => {
                if let Some(stored) = stored.take() {
                    index.learn(&id, stored);
                }
                true
            }
            Scan::GaveUp => true,
            Scan::More => false,
        })
    }
}

#[derive(Deserialize)]
struct WithId {
    id: String,
}

#[derive(Deserialize)]
struct Event {
    response: WithId,
}

/// The `id` of a whole answer to `POST /v1/responses`: a JSON document,
/// or a whole event stream (a streamed answer read whole to be held).
pub(crate) fn answer_id(body: &[u8]) -> Option<String> {
    if let Ok(whole) = serde_json::from_slice::<WithId>(body) {
        return Some(whole.id);
    }
    match IdScan::default().push(body) {
        Scan::Found(id) => Some(id),
        Scan::More | Scan::GaveUp => None,
    }
}

/// What a scan found so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    Found(String),
    More,
    GaveUp,
}

/// Looks for the response id at the start of a streamed answer: the
/// `response.id` of a server-sent event's `data:` line, or the `id` of a
/// JSON answer that names it first (as OpenAI's do).
#[derive(Default)]
pub(crate) struct IdScan {
    seen: Vec<u8>,
    /// Where the next unread line starts.
    line_start: usize,
}

impl IdScan {
    pub(crate) fn push(&mut self, data: &[u8]) -> Scan {
        let room = SCAN_LIMIT.saturating_sub(self.seen.len());
        self.seen.extend_from_slice(&data[..data.len().min(room)]);
        // A JSON answer names its id first: its first KiB is enough, and
        // re-reading no more than that keeps each chunk's cost bounded.
        if let Some(id) = leading_id(&self.seen[..self.seen.len().min(LEADING_ID_BYTES)]) {
            return Scan::Found(id);
        }
        while let Some(end) = self.seen[self.line_start..]
            .iter()
            .position(|&b| b == b'\n')
        {
            let line = &self.seen[self.line_start..self.line_start + end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.line_start += end + 1;
            let Some(payload) = line.strip_prefix(b"data:") else {
                continue;
            };
            if let Ok(event) = serde_json::from_slice::<Event>(payload) {
                return Scan::Found(event.response.id);
            }
        }
        if self.seen.len() >= SCAN_LIMIT {
            Scan::GaveUp
        } else {
            Scan::More
        }
    }
}

/// The id of a JSON object whose first member is `"id": "<string>"`,
/// read from a prefix of it.
fn leading_id(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes)
        .or_else(|err| std::str::from_utf8(&bytes[..err.valid_up_to()]))
        .ok()?;
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix("\"id\"")?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    if !rest.starts_with('"') {
        return None;
    }
    // The string token ends at the first quote not escaped.
    let mut escaped = false;
    let end = rest
        .char_indices()
        .skip(1)
        .find(|&(_, c)| {
            let ends = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            ends
        })?
        .0;
    serde_json::from_str(&rest[..=end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response of `model` by `svc`, version `v1`.
    pub(super) fn stored(model: &str) -> StoredResponse {
        StoredResponse {
            model: model.into(),
            version: "v1".into(),
            caller: "svc".into(),
        }
    }

    #[test]
    fn the_oldest_id_is_forgotten_past_the_capacity() {
        let index = ResponseIndex::new(2);
        index.learn("resp_a", stored("a"));
        index.learn("resp_b", stored("b"));
        index.learn("resp_a", stored("other"));
        assert_eq!(
            index.find("resp_a"),
            Some(stored("a")),
            "first creator kept"
        );
        index.learn("resp_c", stored("c"));
        assert_eq!(index.find("resp_a"), None);
        assert_eq!(index.find("resp_b"), Some(stored("b")));
        assert_eq!(index.find("resp_c"), Some(stored("c")));
        index.learn(&"x".repeat(MAX_ID_BYTES + 1), stored("long"));
        index.learn("", stored("empty"));
        assert_eq!(index.find("resp_b"), Some(stored("b")), "nothing evicted");
    }

    #[test]
    fn a_whole_answer_names_its_id_anywhere() {
        assert_eq!(
            answer_id(br#"{"object":"response","id":"resp_1","output":[]}"#),
            Some("resp_1".into())
        );
        assert_eq!(answer_id(br#"{"error":{"message":"no"}}"#), None);
        assert_eq!(
            answer_id(b"event: response.created\ndata: {\"response\":{\"id\":\"resp_h\"}}\n\n"),
            Some("resp_h".into()),
            "a held event stream"
        );
        assert_eq!(answer_id(b"not json"), None);
    }

    #[test]
    fn an_event_streams_id_is_found_across_chunks() {
        let events = "event: response.created\n\
data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_s\\u0031\",\"object\":\"response\"}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n";
        let split = events.find("resp_").unwrap() + 3;
        let mut scan = IdScan::default();
        assert_eq!(scan.push(&events.as_bytes()[..split]), Scan::More);
        assert_eq!(
            scan.push(&events.as_bytes()[split..]),
            Scan::Found("resp_s1".into())
        );
    }

    #[test]
    fn a_streamed_json_answer_with_its_id_first_is_found_early() {
        let mut scan = IdScan::default();
        assert_eq!(scan.push(b" { \"id\" : \"resp_\\\"q"), Scan::More);
        assert_eq!(
            scan.push(b"\", \"object\": \"response\", \"output\": ["),
            Scan::Found("resp_\"q".into())
        );
    }

    #[test]
    fn a_scan_gives_up_past_its_limit() {
        let mut scan = IdScan::default();
        let filler = vec![b'x'; SCAN_LIMIT / 2];
        assert_eq!(scan.push(&filler), Scan::More);
        assert_eq!(scan.push(&filler), Scan::GaveUp);
    }
}
