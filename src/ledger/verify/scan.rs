//! A single-pass check that entry bytes are already in RFC 8785 canonical
//! form, pulling out the top-level members verification needs, without
//! building a tree of values or writing the bytes back out.
//!
//! It is conservative: `None` means "not vouched for", never "invalid".
//! Verification then falls back to parsing and re-serializing
//! (`canonical::parse_strict` + `to_canonical`), which decides and names
//! the reason. So every input accepted here MUST also be accepted by that
//! path, while some it accepts are refused here and left to it: member
//! names with escapes, nesting deeper than [`MAX_DEPTH`], and a top level
//! that is not an object.
//!
//! SPEC (RFC 8785 section 3.2), as checked here:
//! - no whitespace anywhere, nothing after the top-level value;
//! - strings: raw UTF-8 except `"`, `\` and controls below U+0020, which
//!   are escaped as `\" \\ \b \t \n \f \r` or `\u00xx` with lower-case hex
//!   (3.2.2.2); any other escape is not canonical;
//! - integers: no leading zeros, no `-0`; up to 2^53 in magnitude they are
//!   their own shortest form. Other numbers go through the same parser and
//!   ECMAScript formatter as `to_canonical`, one token at a time (3.2.2.3);
//! - members sorted by name as UTF-16 code units, so no name repeats (3.2.3).

use crate::ledger::canonical::{parse_strict, to_canonical};

/// Deepest nesting vouched for here (the entry object itself is depth 0);
/// deeper input takes the slow path, whose parser has its own, larger limit.
pub(super) const MAX_DEPTH: usize = 64;

/// Integers of at most this magnitude are exact doubles and print as
/// themselves in ECMAScript (`canonical::EXACT_INTEGER_LIMIT`).
const EXACT_INTEGER_LIMIT: u64 = 1 << 53;

/// The raw bytes of the top-level members verification looks at: each the
/// member's whole value token (`"..."` with its quotes for strings). The
/// store's verification reads an entry's; a bundle's also a capture's
/// commitment and the members of its signature and payload lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Members<'a> {
    /// `seq`.
    pub(crate) seq: Option<&'a [u8]>,
    /// `origin`.
    pub(crate) origin: Option<&'a [u8]>,
    /// `prev_hash`.
    pub(crate) prev_hash: Option<&'a [u8]>,
    /// `kind`.
    pub(crate) kind: Option<&'a [u8]>,
    /// `decision_id`.
    pub(crate) decision_id: Option<&'a [u8]>,
    /// `outcome` (a streamed decision's is `streaming`).
    pub(crate) outcome: Option<&'a [u8]>,
    /// `decision_seq` (a `stream_ended` entry's link to its decision).
    pub(crate) decision_seq: Option<&'a [u8]>,
    /// `model`.
    pub(crate) model: Option<&'a [u8]>,
    /// `version`.
    pub(crate) version: Option<&'a [u8]>,
    /// `time`.
    pub(crate) time: Option<&'a [u8]>,
    /// `payload_mode`.
    pub(crate) payload_mode: Option<&'a [u8]>,
    /// `request` (an entry's capture, a payload line's bytes).
    pub(crate) request: Option<&'a [u8]>,
    /// `response` (an entry's capture, a payload line's bytes).
    pub(crate) response: Option<&'a [u8]>,
    /// `commitment` (of a capture).
    pub(crate) commitment: Option<&'a [u8]>,
    /// `captured` (of a capture).
    pub(crate) captured: Option<&'a [u8]>,
    /// `request_salt` (of a payload line).
    pub(crate) request_salt: Option<&'a [u8]>,
    /// `response_salt` (of a payload line).
    pub(crate) response_salt: Option<&'a [u8]>,
    /// `signature` (of a signature line).
    pub(crate) signature: Option<&'a [u8]>,
    /// `commitment` and `captured` of the object that is the value of
    /// `request` (`[0]`) and of `response` (`[1]`), read in the same pass
    /// as the entry (the bundle verifier reads them of every entry).
    pub(crate) captures: [Capture<'a>; 2],
    /// Which kept members are strings holding an escape, by [`Slot`]
    /// bit: so a reader need not search a long token for `\` again.
    pub(crate) escaped: u32,
}

/// The members of a capture object (`request` or `response`) of an entry.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Capture<'a> {
    /// `commitment`'s value token.
    pub(crate) commitment: Option<&'a [u8]>,
    /// `captured`'s value token.
    pub(crate) captured: Option<&'a [u8]>,
    /// `commitment` is a string holding an escape.
    pub(crate) commitment_escaped: bool,
}

/// A kept member's bit in [`Members::escaped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Request = 0,
    Response,
    RequestSalt,
    ResponseSalt,
    Signature,
    Other,
}

impl Members<'_> {
    /// Whether the string kept in `slot` holds an escape (`false` for a
    /// token that is no string, or absent).
    pub(crate) fn has_escape(&self, slot: Slot) -> bool {
        self.escaped & (1 << slot as u32) != 0
    }
}

/// A string member as the slow path's `Value::as_str` would see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Text<'a> {
    /// Absent, or not a string.
    NotString,
    /// A string with no escapes: its bytes are its value.
    Plain(&'a str),
    /// A string with escapes (its value differs from its bytes).
    Escaped,
}

impl<'a> Text<'a> {
    /// Classifies a value token from [`Members`].
    pub(crate) fn of(token: Option<&'a [u8]>) -> Self {
        let Some(inner) = token
            .and_then(|t| t.strip_prefix(b"\""))
            .and_then(|t| t.strip_suffix(b"\""))
        else {
            return Text::NotString;
        };
        if inner.contains(&b'\\') {
            return Text::Escaped;
        }
        // The scan only hands out tokens of validated UTF-8 text, cut at
        // ASCII quotes, so this does not fail; if it did, the slow path decides.
        std::str::from_utf8(inner).map_or(Text::Escaped, Text::Plain)
    }
}

/// The value of a number token if it is a plain non-negative integer the
/// slow path reads back exactly (`Value::as_u64`).
pub(crate) fn small_u64(token: Option<&[u8]>) -> Option<u64> {
    let token = token?;
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return None;
    }
    parse_digits(token).filter(|n| *n <= EXACT_INTEGER_LIMIT)
}

/// Checks that `text` is one canonical JSON object and returns its
/// interesting top-level members; `None` if that cannot be vouched for.
pub(crate) fn scan(text: &str) -> Option<Members<'_>> {
    let mut scanner = Scanner {
        bytes: text.as_bytes(),
        pos: 0,
        members: Members::default(),
        escaped: false,
        every: None,
        capture: None,
    };
    if scanner.peek()? != b'{' {
        return None;
    }
    scanner.object(0)?;
    (scanner.pos == scanner.bytes.len()).then_some(scanner.members)
}

/// Top-level members of an entry, each `(name, value token)`, at most
/// this many (an entry has about twenty; more goes to the slow path).
pub(crate) const MAX_TOP_MEMBERS: usize = 64;

/// Like [`scan`], but keeps every top-level member: `(name, value
/// token)` in the text's order, names as written (none has an escape:
/// those are left to the slow path). For a reader that wants any member
/// of a canonical entry without a tree (the period report); `None`, as
/// for [`scan`], means "not vouched for": parse it instead.
pub(crate) fn scan_top(text: &str) -> Option<Vec<(&[u8], &[u8])>> {
    let mut scanner = Scanner {
        bytes: text.as_bytes(),
        pos: 0,
        members: Members::default(),
        escaped: false,
        every: Some(Vec::with_capacity(32)),
        capture: None,
    };
    if scanner.peek()? != b'{' {
        return None;
    }
    scanner.object(0)?;
    let every = scanner.every.take()?;
    (scanner.pos == scanner.bytes.len() && every.len() <= MAX_TOP_MEMBERS).then_some(every)
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    members: Members<'a>,
    /// The last string value read held an escape.
    escaped: bool,
    /// Every top-level member, when asked for ([`scan_top`]).
    every: Option<Vec<(&'a [u8], &'a [u8])>>,
    /// The top-level member whose value is being read is `request` (0)
    /// or `response` (1): the members of its object are kept too.
    capture: Option<usize>,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    // Inlined into `object` and `array`, whose members it dispatches.
    #[inline(always)]
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(|(_, escaped)| self.escaped = escaped),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// `{` at `pos`. Depth 0 is the entry itself, whose members are kept.
    fn object(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        let mut previous: Option<&[u8]> = None;
        loop {
            let (name, escaped) = self.string()?;
            if escaped {
                // Ordering would need the decoded name; rare enough to
                // leave to the slow path.
                return None;
            }
            if let Some(previous) = previous
                && !utf16_less(previous, name)?
            {
                return None;
            }
            previous = Some(name);
            self.eat(b':')?;
            let start = self.pos;
            self.escaped = false;
            if depth == 0 {
                // Objects at depth 1 are the values of top-level members
                // (an array's objects are deeper).
                self.capture = match name {
                    b"request" => Some(0),
                    b"response" => Some(1),
                    _ => None,
                };
            }
            self.value(depth)?;
            if depth == 0 {
                self.keep(name, start);
            } else if depth == 1
                && let Some(side) = self.capture
            {
                self.keep_capture(side, name, start);
            }
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn keep(&mut self, name: &'a [u8], start: usize) {
        let token = self.bytes.get(start..self.pos);
        if let (Some(every), Some(token)) = (&mut self.every, token) {
            every.push((name, token));
        }
        let bit = match name {
            b"request" => Slot::Request,
            b"response" => Slot::Response,
            b"request_salt" => Slot::RequestSalt,
            b"response_salt" => Slot::ResponseSalt,
            b"signature" => Slot::Signature,
            _ => Slot::Other,
        };
        // `escaped` tells of the member's value when it is a string (a
        // nested value's strings are not its own).
        if self.escaped && token.is_some_and(|t| t.first() == Some(&b'"')) {
            self.members.escaped |= 1 << bit as u32;
        }
        let slot = match name {
            b"seq" => &mut self.members.seq,
            b"origin" => &mut self.members.origin,
            b"prev_hash" => &mut self.members.prev_hash,
            b"kind" => &mut self.members.kind,
            b"decision_id" => &mut self.members.decision_id,
            b"outcome" => &mut self.members.outcome,
            b"decision_seq" => &mut self.members.decision_seq,
            b"model" => &mut self.members.model,
            b"version" => &mut self.members.version,
            b"time" => &mut self.members.time,
            b"payload_mode" => &mut self.members.payload_mode,
            b"request" => &mut self.members.request,
            b"response" => &mut self.members.response,
            b"commitment" => &mut self.members.commitment,
            b"captured" => &mut self.members.captured,
            b"request_salt" => &mut self.members.request_salt,
            b"response_salt" => &mut self.members.response_salt,
            b"signature" => &mut self.members.signature,
            _ => return,
        };
        *slot = token;
    }

    /// A member of the capture object `side` (0: `request`, 1: `response`).
    fn keep_capture(&mut self, side: usize, name: &[u8], start: usize) {
        let token = self.bytes.get(start..self.pos);
        let capture = &mut self.members.captures[side];
        match name {
            b"commitment" => {
                capture.commitment = token;
                capture.commitment_escaped =
                    self.escaped && token.is_some_and(|t| t.first() == Some(&b'"'));
            }
            b"captured" => capture.captured = token,
            _ => {}
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.value(depth)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `"` at `pos`; returns the bytes between the quotes as written, and
    /// whether they hold any escape.
    // Inlined by force: a call per string was a fifth of the time of a scan.
    #[inline(always)]
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        self.eat(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            self.pos = skip_plain(self.bytes, self.pos);
            match self.peek()? {
                b'"' => {
                    let inner = self.bytes.get(start..self.pos)?;
                    self.pos += 1;
                    return Some((inner, escaped));
                }
                b'\\' => {
                    self.escape()?;
                    escaped = true;
                }
                // A raw control character: JSON forbids it.
                _ => return None,
            }
        }
    }

    /// `\` at `pos`: only the escapes `to_canonical` itself writes.
    fn escape(&mut self) -> Option<()> {
        let next = *self.bytes.get(self.pos + 1)?;
        match next {
            b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r' => {
                self.pos += 2;
                Some(())
            }
            b'u' => {
                let &[b'0', b'0', hi @ (b'0' | b'1'), lo] =
                    self.bytes.get(self.pos + 2..self.pos + 6)?
                else {
                    return None;
                };
                let low = match lo {
                    b'0'..=b'9' => lo - b'0',
                    b'a'..=b'f' => lo - b'a' + 10,
                    _ => return None,
                };
                let code = ((hi - b'0') << 4) | low;
                // These five have short forms, which are the canonical ones.
                if matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                    return None;
                }
                self.pos += 6;
                Some(())
            }
            _ => None,
        }
    }

    // Inlined by force, as `string`: entries hold many short numbers.
    #[inline(always)]
    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        let negative = self.eat(b'-').is_some();
        let digits_start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits = self.bytes.get(digits_start..self.pos)?;
        let fraction_or_exponent = matches!(self.peek(), Some(b'.' | b'e' | b'E'));
        match digits {
            [] => return None,
            // Leading zeros are not JSON; `-0` prints as `0`.
            [b'0', _, ..] => return None,
            [b'0'] if negative && !fraction_or_exponent => return None,
            _ => {}
        }
        // Fifteen digits are always below 2^53; only longer ones need the value.
        if !fraction_or_exponent
            && (digits.len() <= 15
                || parse_digits(digits).is_some_and(|n| n <= EXACT_INTEGER_LIMIT))
        {
            return Some(());
        }
        while self
            .peek()
            .is_some_and(|b| matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            self.pos += 1;
        }
        let token = self.bytes.get(start..self.pos)?;
        canonical_number(token).then_some(())
    }
}

/// A number token that is not a small integer: canonical if the slow path's
/// parser and formatter give back the same bytes. Allocates, but entries
/// hold few such numbers.
fn canonical_number(token: &[u8]) -> bool {
    std::str::from_utf8(token)
        .ok()
        .and_then(|text| parse_strict(text).ok())
        .filter(serde_json::Value::is_number)
        .and_then(|value| to_canonical(&value).ok())
        .is_some_and(|canonical| canonical == token)
}

fn parse_digits(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The first position at or after `pos` holding `"`, `\` or a byte below
/// 0x20, or the end. String contents are most of an entry's bytes, and
/// their lengths vary, so this looks at eight bytes at a time and finds the
/// position from a mask rather than with a byte loop that mispredicts its
/// exit on every string.
#[inline(always)]
fn skip_plain(bytes: &[u8], mut pos: usize) -> usize {
    // Sixteen bytes a round while they last: one branch for two words
    // (payloads' base64 and the hashes' hex are long plain strings).
    while let Some(Ok(pair)) = bytes.get(pos..pos + 16).map(<[u8; 16]>::try_from) {
        let (low, high) = pair.split_at(8);
        let (Ok(low), Ok(high)) = (<[u8; 8]>::try_from(low), <[u8; 8]>::try_from(high)) else {
            break;
        };
        let low = special_bytes(u64::from_le_bytes(low));
        let high = special_bytes(u64::from_le_bytes(high));
        if low | high != 0 {
            let at = if low != 0 {
                low.trailing_zeros() / 8
            } else {
                8 + high.trailing_zeros() / 8
            };
            return pos + at as usize;
        }
        pos += 16;
    }
    while let Some(Ok(word)) = bytes.get(pos..pos + 8).map(<[u8; 8]>::try_from) {
        let special = special_bytes(u64::from_le_bytes(word));
        if special != 0 {
            return pos + (special.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    // The last few bytes.
    while let Some(&byte) = bytes.get(pos) {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            break;
        }
        pos += 1;
    }
    pos
}

/// The high bit of each byte of `word` that is `"`, `\` or below 0x20.
/// Exact per byte: no carry crosses a byte (Hacker's Delight 6-1, the
/// "exact" forms of haszero and hasless).
pub(super) const fn special_bytes(word: u64) -> u64 {
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    /// High bit set in each byte of `word` that is zero.
    const fn zero_bytes(word: u64) -> u64 {
        !(((word & LOW7) + LOW7) | word | LOW7)
    }
    let quote = zero_bytes(word ^ (ONES * b'"' as u64));
    let backslash = zero_bytes(word ^ (ONES * b'\\' as u64));
    // A byte is below 0x20 if its high bit is clear and adding 0x60 to its
    // low seven bits does not reach 0x80.
    let control = !(((word & LOW7) + ONES * 0x60) | word | LOW7);
    quote | backslash | control
}

/// Whether member name `a` sorts strictly before `b` by UTF-16 code units;
/// `None` if the names are not UTF-8 (cannot happen for validated text).
fn utf16_less(a: &[u8], b: &[u8]) -> Option<bool> {
    let Some(at) = a.iter().zip(b).position(|(x, y)| x != y) else {
        // One is a prefix of the other; equal names are a duplicate.
        return Some(a.len() < b.len());
    };
    if a[at] < 0x80 || b[at] < 0x80 {
        // An ASCII byte against anything: UTF-8 byte order is code point
        // order, which UTF-16 order only disagrees with above U+D7FF.
        return Some(a[at] < b[at]);
    }
    // SPEC: 3.2.3 compares UTF-16 code units; U+10000 and up (surrogates)
    // sort before U+E000..U+FFFF there, unlike in UTF-8.
    let (a, b) = (std::str::from_utf8(a).ok()?, std::str::from_utf8(b).ok()?);
    Some(a.encode_utf16().lt(b.encode_utf16()))
}
