//! An entry's members as the bundle's checks read them, without building
//! a tree of values for most entries: a canonical decision or
//! `stream_ended` (nearly every line of a bundle) is read by the store
//! verifier's one-pass scan (`ledger::verify::scan`), which keeps where
//! each member the checks read lies in the line. Any other entry, and any
//! line the scan does not vouch for or whose members are not plainly what
//! the checks expect, is parsed whole, as before: that path decides and
//! names every problem, so both report a line the same way.
//!
//! The signature and payload lines are read the same way ([`LineObject`]).

use super::BundleError;
use super::lines::{BundleEntry, read_entry_line};
use super::payload_exact::{ExactPayload, Opened};
use crate::ledger::canonical::parse_strict;
use crate::ledger::entry::hex;
use crate::ledger::verify::{Capture, Members, Slot, scan, small_u64};
use serde_json::Value;

/// Where a member's value token lies in the line: start and end.
type Span = Option<(u32, u32)>;

/// A capture's members (`request` or `response`).
#[derive(Debug, Default, Clone, Copy)]
struct CaptureSpans {
    commitment: Span,
    captured: Span,
}

/// Where the members the checks read lie in a scanned entry's line.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Spans {
    /// `kind`'s text, one of the two the scan reads (`decision`,
    /// `stream_ended`): read by several checks of every entry, so said
    /// once rather than cut from the line each time.
    kind_text: &'static str,
    /// `outcome` is `streaming` (a decision whose answer streams).
    streaming: bool,
    /// `payload_mode` is `full`.
    full: bool,
    kind: Span,
    prev_hash: Span,
    outcome: Span,
    payload_mode: Span,
    decision_id: Span,
    model: Span,
    version: Span,
    decision_seq: Span,
    request: CaptureSpans,
    response: CaptureSpans,
}

/// A top-level member of an entry the checks read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Member {
    Kind,
    Outcome,
    PayloadMode,
    DecisionId,
    Model,
    Version,
    DecisionSeq,
}

impl Member {
    fn name(self) -> &'static str {
        match self {
            Member::Kind => "kind",
            Member::Outcome => "outcome",
            Member::PayloadMode => "payload_mode",
            Member::DecisionId => "decision_id",
            Member::Model => "model",
            Member::Version => "version",
            Member::DecisionSeq => "decision_seq",
        }
    }
}

/// A capture of a decision or `stream_ended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

impl Side {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Side::Request => "request",
            Side::Response => "response",
        }
    }

    /// The payload line's member holding its salt.
    pub(crate) fn salt_name(self) -> &'static str {
        match self {
            Side::Request => "request_salt",
            Side::Response => "response_salt",
        }
    }
}

/// Line `index` (from 0) of `entries.jsonl`, checked on its own: read by
/// the scan when it vouches for it, else parsed whole (`read_entry_line`).
/// The same entry, the same problem named, either way.
pub(crate) fn read_entry_scanned(
    line: bytes::Bytes,
    index: usize,
    origin: &str,
) -> Result<BundleEntry, BundleError> {
    match scanned(&line, origin) {
        Some((seq, spans)) => Ok(BundleEntry {
            seq,
            hash: hex(blake3::hash(&line).as_bytes()),
            bytes: line,
            value: Value::Null,
            spans: Some(spans),
        }),
        None => read_entry_line(line, index, origin),
    }
}

/// Whether a value token is a string holding an escape (`Text::Escaped`:
/// the scan hands out tokens of validated UTF-8 cut at ASCII quotes).
fn escaped(token: Option<&[u8]>) -> bool {
    token
        .and_then(|t| t.strip_prefix(b"\""))
        .and_then(|t| t.strip_suffix(b"\""))
        .is_some_and(|inner| memchr::memchr(b'\\', inner).is_some())
}

/// A string token of `text` without escapes, as text (`Text::Plain`):
/// cut from `text`, already validated, rather than validated again.
fn plain_text<'a>(text: &'a str, token: Option<&[u8]>) -> Option<&'a str> {
    if escaped(token) {
        return None;
    }
    let inner = token?.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let start = (inner.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    text.get(start..start + inner.len())
}

/// The seq and spans of a canonical decision or `stream_ended` that
/// `lines::read_entry` accepts, whose string members the checks read hold
/// no escapes (so their text is their bytes); `None` for anything else.
fn scanned(line: &[u8], origin: &str) -> Option<(u64, Spans)> {
    let text = simdutf8::basic::from_utf8(line).ok()?;
    let members = scan(text)?;
    let seq = small_u64(members.seq)?;
    let plain = |token| plain_text(text, token);
    // `read_entry`'s rules: these are strings, prev_hash lower-case hex.
    let is_string = |token: Option<&[u8]>| {
        token.is_some_and(|t| t.len() >= 2 && t.first() == Some(&b'"') && t.last() == Some(&b'"'))
    };
    if !is_string(members.time) || plain(members.origin)? != origin {
        return None;
    }
    let prev_hash = plain(members.prev_hash)?;
    if prev_hash.len() != 64
        || !prev_hash
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let kind_text = match plain(members.kind)? {
        "decision" => "decision",
        "stream_ended" => "stream_ended",
        _ => return None,
    };
    if [
        members.outcome,
        members.payload_mode,
        members.decision_id,
        members.model,
        members.version,
    ]
    .into_iter()
    .any(escaped)
        || (members.decision_seq.is_some() && small_u64(members.decision_seq).is_none())
    {
        return None;
    }
    let span = |token: Option<&[u8]>| {
        token.and_then(|token| {
            let start = (token.as_ptr() as usize).checked_sub(line.as_ptr() as usize)?;
            Some((
                u32::try_from(start).ok()?,
                u32::try_from(start + token.len()).ok()?,
            ))
        })
    };
    // The capture's members were read by the same scan (`Members::captures`).
    let capture = |token: Option<&[u8]>, inner: &Capture<'_>| -> Option<CaptureSpans> {
        if token.is_none_or(|token| token.first() != Some(&b'{')) {
            // Absent or not an object: no commitment, nothing captured.
            return Some(CaptureSpans::default());
        }
        if inner.commitment_escaped
            || (inner.captured.is_some() && small_u64(inner.captured).is_none())
        {
            return None;
        }
        Some(CaptureSpans {
            commitment: span(inner.commitment),
            captured: span(inner.captured),
        })
    };
    let spans = Spans {
        kind_text,
        streaming: plain(members.outcome) == Some("streaming"),
        full: plain(members.payload_mode) == Some("full"),
        kind: span(members.kind),
        prev_hash: span(members.prev_hash),
        outcome: span(members.outcome),
        payload_mode: span(members.payload_mode),
        decision_id: span(members.decision_id),
        model: span(members.model),
        version: span(members.version),
        decision_seq: span(members.decision_seq),
        request: capture(members.request, &members.captures[0])?,
        response: capture(members.response, &members.captures[1])?,
    };
    Some((seq, spans))
}

impl BundleEntry {
    fn token(&self, span: Span) -> Option<&[u8]> {
        let (start, end) = span?;
        self.bytes.get(start as usize..end as usize)
    }

    /// A string token's text: `scanned` keeps the spans of string
    /// members only when they hold no escapes, so the text is the bytes
    /// between the quotes (`None` for a token that is not a string).
    fn plain(&self, span: Span) -> Option<&str> {
        let inner = self.token(span)?.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        std::str::from_utf8(inner).ok()
    }

    /// A token as JSON; `None` when absent.
    fn parsed(&self, span: Span) -> Option<Value> {
        let text = std::str::from_utf8(self.token(span)?).ok()?;
        parse_strict(text).ok()
    }

    fn span(spans: &Spans, member: Member) -> Span {
        match member {
            Member::Kind => spans.kind,
            Member::Outcome => spans.outcome,
            Member::PayloadMode => spans.payload_mode,
            Member::DecisionId => spans.decision_id,
            Member::Model => spans.model,
            Member::Version => spans.version,
            Member::DecisionSeq => spans.decision_seq,
        }
    }

    /// `kind`, if a string.
    pub(crate) fn kind(&self) -> Option<&str> {
        self.text(Member::Kind)
    }

    /// A member's text, if a string (`Value::as_str`).
    pub(crate) fn text(&self, member: Member) -> Option<&str> {
        match &self.spans {
            Some(spans) if member == Member::Kind => Some(spans.kind_text),
            Some(spans) => self.plain(Self::span(spans, member)),
            None => self.value[member.name()].as_str(),
        }
    }

    /// A member's value (`Value::get`).
    pub(crate) fn get(&self, member: Member) -> Option<Value> {
        match &self.spans {
            Some(spans) => self.parsed(Self::span(spans, member)),
            None => self.value.get(member.name()).cloned(),
        }
    }

    /// A member's value, `null` when absent (`value[name]`), to name it.
    pub(crate) fn json(&self, member: Member) -> Value {
        self.get(member).unwrap_or(Value::Null)
    }

    /// `prev_hash` (`read_entry` checked it is 64 lower-case hex digits).
    pub(crate) fn prev_hash(&self) -> &str {
        match &self.spans {
            Some(spans) => self.plain(spans.prev_hash).unwrap_or_default(),
            None => self.value["prev_hash"].as_str().unwrap_or_default(),
        }
    }

    /// `decision_seq`, if a seq (`Value::as_u64`).
    pub(crate) fn decision_seq(&self) -> Option<u64> {
        match &self.spans {
            Some(spans) => small_u64(self.token(spans.decision_seq)),
            None => self.value["decision_seq"].as_u64(),
        }
    }

    /// A decision whose answer streams.
    pub(crate) fn is_streaming(&self) -> bool {
        match &self.spans {
            Some(spans) => spans.kind_text == "decision" && spans.streaming,
            None => {
                self.kind() == Some("decision") && self.text(Member::Outcome) == Some("streaming")
            }
        }
    }

    /// `payload_mode` is `full` (its captures are kept).
    pub(crate) fn keeps_payload(&self) -> bool {
        match &self.spans {
            Some(spans) => spans.full,
            None => self.text(Member::PayloadMode) == Some("full"),
        }
    }

    /// The members that tie a stream's end to its decision, as an object.
    pub(crate) fn stream_names(&self) -> Value {
        let names = [
            Member::Kind,
            Member::Outcome,
            Member::DecisionId,
            Member::Model,
            Member::Version,
        ];
        Value::Object(
            names
                .into_iter()
                .filter_map(|member| Some((member.name().to_owned(), self.get(member)?)))
                .collect(),
        )
    }

    fn capture(&self, side: Side) -> Option<&CaptureSpans> {
        let spans = self.spans.as_ref()?;
        Some(match side {
            Side::Request => &spans.request,
            Side::Response => &spans.response,
        })
    }

    /// `request.commitment` or `response.commitment`, if a string.
    pub(crate) fn commitment(&self, side: Side) -> Option<&str> {
        match self.capture(side) {
            Some(capture) => self.plain(capture.commitment),
            None => self.value[side.name()]["commitment"].as_str(),
        }
    }

    /// `request.captured` or `response.captured`, if a count.
    pub(crate) fn captured(&self, side: Side) -> Option<u64> {
        match self.capture(side) {
            Some(capture) => small_u64(self.token(capture.captured)),
            None => self.value[side.name()]["captured"].as_u64(),
        }
    }

    /// `request.captured` or `response.captured` as JSON, to name it.
    pub(crate) fn captured_json(&self, side: Side) -> Value {
        match self.capture(side) {
            Some(capture) => self.parsed(capture.captured).unwrap_or(Value::Null),
            None => self.value[side.name()]["captured"].clone(),
        }
    }
}

/// A signature or payload line's object: scanned (its text and members),
/// or parsed whole.
#[allow(
    clippy::large_enum_variant,
    reason = "one lives on the stack per line being checked; boxing the scan would allocate per line, which it is there to avoid"
)]
pub(crate) enum LineObject<'a> {
    Scanned(&'a str, Members<'a>),
    Parsed(serde_json::Map<String, Value>),
    /// A payload line in the exporter's layout, its captures decoded
    /// (`payload_exact`): read through [`LineObject::opened`].
    Exact(ExactPayload),
}

/// The token of a signature or payload line's member in a scan, and
/// whether it is a string holding an escape.
fn line_token<'a>(members: &Members<'a>, name: &str) -> Option<(&'a [u8], bool)> {
    let (token, slot) = match name {
        "seq" => (members.seq, Slot::Other),
        "signature" => (members.signature, Slot::Signature),
        "request" => (members.request, Slot::Request),
        "response" => (members.response, Slot::Response),
        "request_salt" => (members.request_salt, Slot::RequestSalt),
        "response_salt" => (members.response_salt, Slot::ResponseSalt),
        _ => (None, Slot::Other),
    };
    Some((token?, members.has_escape(slot)))
}

/// A string token of `text` without escapes, as text: cut from `text`
/// (already UTF-8) rather than checked again, as payloads are long.
fn plain_in<'a>(text: &'a str, token: Option<(&[u8], bool)>) -> Option<&'a str> {
    let (token, escaped) = token?;
    let inner = token.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if escaped {
        return None;
    }
    let start = (inner.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    text.get(start..start + inner.len())
}

impl LineObject<'_> {
    /// Member `name`'s text, if a string (`Value::as_str`).
    pub(crate) fn str(&self, name: &str) -> Option<&str> {
        match self {
            LineObject::Scanned(text, members) => plain_in(text, line_token(members, name)),
            LineObject::Parsed(object) => object.get(name)?.as_str(),
            // Its members are decoded already: `opened`.
            LineObject::Exact(_) => None,
        }
    }

    /// A payload line's capture of `side` with its salt, when the line
    /// was read in the exporter's layout (already decoded and checked).
    pub(crate) fn opened(&self, side: Side) -> Option<&Opened> {
        match self {
            LineObject::Exact(exact) => Some(match side {
                Side::Request => &exact.request,
                Side::Response => &exact.response,
            }),
            _ => None,
        }
    }
}

/// A signature or payload line with `members` and a seq, read by the scan
/// when it vouches for it and its string members hold no escapes; `None`
/// otherwise, which the caller then parses whole.
pub(crate) fn scan_line<'a>(raw: &'a [u8], members: &[&str]) -> Option<(u64, LineObject<'a>)> {
    let text = simdutf8::basic::from_utf8(raw).ok()?;
    let found = scan(text)?;
    for name in members {
        let (_, escaped) = line_token(&found, name)?;
        if escaped {
            return None;
        }
    }
    Some((small_u64(found.seq)?, LineObject::Scanned(text, found)))
}
