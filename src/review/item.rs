//! One review: a held answer or a flagged decision, what the reviewer (or
//! the clock) decided, and the ledger entries that record each step.
//! Items are stored as JSON files (see `files.rs`); bodies as base64.

use super::input::Stage;
use crate::config::OnTimeout;
use crate::ledger::entry::{EntryBody, hex, rfc3339_millis};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a review exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewKind {
    /// The answer is kept until a reviewer releases or rejects it.
    Hold,
    /// The answer went out; a reviewer looks at it afterwards.
    Flag,
}

impl ReviewKind {
    /// The name in the ledger, the admin API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewKind::Hold => "hold",
            ReviewKind::Flag => "flag",
        }
    }
}

/// Where a review stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    /// Waiting for a reviewer.
    Pending,
    /// Approved: a held answer is released as it came.
    Approved,
    /// Rejected: a held answer is never released.
    Rejected,
    /// Overridden: the reviewer's answer is released instead.
    Overridden,
    /// Nobody decided in time; `on_timeout` applied.
    TimedOut,
}

impl ReviewState {
    /// The name in the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewState::Pending => "pending",
            ReviewState::Approved => "approved",
            ReviewState::Rejected => "rejected",
            ReviewState::Overridden => "overridden",
            ReviewState::TimedOut => "timed_out",
        }
    }
}

/// A reviewer's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewVerdict {
    /// Release the held answer as it came (for a flag: nothing wrong).
    Approve,
    /// Never release it (for a flag: a finding).
    Reject,
    /// Release this answer instead (holds only).
    Override(StoredAnswer),
}

impl ReviewVerdict {
    /// The name in the ledger.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReviewVerdict::Approve => "approve",
            ReviewVerdict::Reject => "reject",
            ReviewVerdict::Override(_) => "override",
        }
    }
}

/// A request body as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBody {
    /// Its `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The bytes.
    #[serde(with = "base64_bytes")]
    pub bytes: Vec<u8>,
}

/// An answer: status, headers and body, released byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAnswer {
    /// HTTP status.
    pub status: u16,
    /// Headers as `(name, value)`, in order (values as Latin-1-safe text).
    pub headers: Vec<(String, String)>,
    /// The body.
    #[serde(with = "base64_bytes")]
    pub body: Vec<u8>,
}

impl StoredAnswer {
    /// The body's SHA-256, hex.
    pub fn sha256(&self) -> String {
        hex(&Sha256::digest(&self.body))
    }

    /// Its `Content-Type`, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            .map(|(_, value)| value.as_str())
    }
}

/// How a review was closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closing {
    /// `approve`, `reject`, `override` or `timeout`.
    pub verdict: String,
    /// Who decided; none for a timeout.
    pub reviewer: Option<String>,
    /// The issuer of the reviewer's JWT, when they signed in with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer_issuer: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// When, in Unix milliseconds.
    pub at_unix_ms: u64,
    /// Seq of the closing entry, once the ledger recorded it.
    pub entry_seq: Option<u64>,
    /// The overriding answer.
    pub override_answer: Option<StoredAnswer>,
}

/// One review item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewItem {
    /// Unguessable id, 32 hex digits.
    pub review_id: String,
    /// The decision under review.
    pub decision_id: String,
    /// Its entry's seq, once recorded.
    pub decision_seq: Option<u64>,
    /// Seq of the `review_opened` entry, once recorded.
    pub opened_seq: Option<u64>,
    /// Hold or flag.
    pub kind: ReviewKind,
    /// Model and version that answered.
    pub model: String,
    /// The version label.
    pub version: String,
    /// Who asked (a reviewer may not decide their own request).
    pub caller: String,
    /// The caller's JWT identity, when a token established it (compared
    /// with the reviewer's). Absent in items stored before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_token: Option<super::TokenIdentity>,
    /// The stage whose verdict opened it.
    pub stage: Stage,
    /// The reasons of the rules that fired.
    pub reasons: Vec<String>,
    /// Seq of the policy set that judged it.
    pub set_seq: u64,
    /// When it was opened, Unix milliseconds.
    pub opened_unix_ms: u64,
    /// When a hold times out, Unix milliseconds.
    pub deadline_unix_ms: Option<u64>,
    /// What a timeout does.
    pub on_timeout: Option<OnTimeoutName>,
    /// The request as forwarded.
    pub request: StoredBody,
    /// The upstream's answer.
    pub answer: StoredAnswer,
    /// Where it stands.
    pub state: ReviewState,
    /// How it was closed.
    pub closing: Option<Closing>,
    /// Whether `request` and `answer` hold the bodies. A flag queued again
    /// after a restart has none: flags keep their bodies in memory only
    /// (the decision's payloads, if the ledger keeps them, are in the
    /// ledger). Items stored before this field existed had their bodies.
    #[serde(default = "bodies_kept_default")]
    pub bodies_kept: bool,
}

fn bodies_kept_default() -> bool {
    true
}

/// [`OnTimeout`] as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeoutName {
    /// See [`OnTimeout::Reject`].
    Reject,
    /// See [`OnTimeout::Release`].
    Release,
}

impl From<OnTimeout> for OnTimeoutName {
    fn from(value: OnTimeout) -> Self {
        match value {
            OnTimeout::Reject => OnTimeoutName::Reject,
            OnTimeout::Release => OnTimeoutName::Release,
        }
    }
}

impl OnTimeoutName {
    /// The name in the ledger and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            OnTimeoutName::Reject => "reject",
            OnTimeoutName::Release => "release",
        }
    }
}

/// Now, in Unix milliseconds.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// RFC 3339 with milliseconds, as in ledger entries.
pub fn rfc3339(unix_ms: u64) -> String {
    rfc3339_millis(UNIX_EPOCH + Duration::from_millis(unix_ms))
}

impl ReviewItem {
    /// The outcome a closed hold had for its client, or `reviewed` for a flag.
    fn outcome(&self) -> &'static str {
        match (self.kind, self.released()) {
            (ReviewKind::Flag, _) => "reviewed",
            (ReviewKind::Hold, Some(_)) => "released",
            (ReviewKind::Hold, None) => "rejected",
        }
    }

    /// The answer a poll gets once the review is closed, if it is released.
    pub fn released(&self) -> Option<&StoredAnswer> {
        match self.state {
            ReviewState::Approved => Some(&self.answer),
            ReviewState::Overridden => self
                .closing
                .as_ref()
                .and_then(|closing| closing.override_answer.as_ref()),
            ReviewState::TimedOut if self.on_timeout == Some(OnTimeoutName::Release) => {
                Some(&self.answer)
            }
            _ => None,
        }
    }

    fn links(&self) -> Map<String, Value> {
        let mut members = Map::new();
        members.insert("review_id".into(), json!(self.review_id));
        members.insert("decision_id".into(), json!(self.decision_id));
        members.insert("decision_seq".into(), json!(self.decision_seq));
        members
    }

    /// The `review_opened` entry.
    pub fn opened_entry(&self) -> EntryBody {
        let mut members = self.links();
        members.insert("review_kind".into(), json!(self.kind.as_str()));
        members.insert("model".into(), json!(self.model));
        members.insert("version".into(), json!(self.version));
        members.insert("stage".into(), json!(self.stage.as_str()));
        members.insert("reasons".into(), json!(self.reasons));
        members.insert("answer_sha256".into(), json!(self.answer.sha256()));
        members.insert("deadline".into(), json!(self.deadline_unix_ms.map(rfc3339)));
        members.insert(
            "on_timeout".into(),
            json!(self.on_timeout.map(OnTimeoutName::as_str)),
        );
        EntryBody::Governance {
            kind: "review_opened",
            members,
        }
    }

    /// The `review_decided` or `review_timed_out` entry of a closed item.
    pub fn closing_entry(&self) -> Option<EntryBody> {
        let closing = self.closing.as_ref()?;
        let mut members = self.links();
        members.insert("opened_seq".into(), json!(self.opened_seq));
        members.insert("outcome".into(), json!(self.outcome()));
        if self.state == ReviewState::TimedOut {
            members.insert(
                "waited_ms".into(),
                json!(closing.at_unix_ms.saturating_sub(self.opened_unix_ms)),
            );
            return Some(EntryBody::Governance {
                kind: "review_timed_out",
                members,
            });
        }
        members.insert("reviewer".into(), json!(closing.reviewer));
        // Absent, not null, for a configured token (as before it existed).
        if let Some(issuer) = &closing.reviewer_issuer {
            members.insert("reviewer_issuer".into(), json!(issuer));
        }
        members.insert("verdict".into(), json!(closing.verdict));
        members.insert("reason".into(), json!(closing.reason));
        members.insert("answer_sha256".into(), json!(self.answer.sha256()));
        members.insert(
            "override_sha256".into(),
            json!(closing.override_answer.as_ref().map(StoredAnswer::sha256)),
        );
        Some(EntryBody::Governance {
            kind: "review_decided",
            members,
        })
    }
}

/// `Vec<u8>` as standard base64 in JSON.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
