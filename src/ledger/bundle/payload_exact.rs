//! A `payloads.jsonl` line in the one layout `govgate export` writes,
//! read in one pass over its bytes: the members in order, each salt
//! decoded from its hex and each capture from its base64 where they lie.
//!
//! Payload lines are most of a bundle's bytes. The general way reads each
//! line three times before its checks start (UTF-8 validation, the
//! canonical-form scan, then the salts and base64 decoded), although the
//! decoders alone vouch for every byte of these members: a salt of 64
//! hex digits and standard base64 are ASCII without quotes, backslashes
//! or control characters. So a line this accepts is one the general way
//! reads as the same seq, salts and bytes; anything else (another member
//! order, whitespace, escapes, a salt or capture the decoders refuse, a
//! seq that is not a plain integer) is left to the general way, which
//! decides and names the problem as before.

use super::lines::{base64_bytes_exact, parse_hex32};
use crate::ledger::verify::small_u64;

/// A capture of a payload line: its salt and its bytes.
pub(crate) struct Opened {
    pub(crate) salt: [u8; 32],
    pub(crate) data: Vec<u8>,
}

/// A payload line read by [`read`]: its `request` and `response`.
pub(crate) struct ExactPayload {
    pub(crate) request: Opened,
    pub(crate) response: Opened,
}

/// The line's seq and captures when it is exactly
/// `{"request":B64,"request_salt":HEX,"response":B64,"response_salt":HEX,"seq":N}`
/// (the canonical form `govgate export` writes) with every member as the
/// checks require; `None` for any other line.
pub(crate) fn read(raw: &[u8]) -> Option<(u64, ExactPayload)> {
    let rest = raw.strip_prefix(br#"{"request":""#)?;
    let (request, rest) = base64_member(rest)?;
    let rest = rest.strip_prefix(br#","request_salt":""#)?;
    let (request_salt, rest) = salt_member(rest)?;
    let rest = rest.strip_prefix(br#","response":""#)?;
    let (response, rest) = base64_member(rest)?;
    let rest = rest.strip_prefix(br#","response_salt":""#)?;
    let (response_salt, rest) = salt_member(rest)?;
    let digits = rest.strip_prefix(br#","seq":"#)?.strip_suffix(b"}")?;
    // JSON has no leading zeros; `small_u64` is the scan's reading of a seq.
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    let seq = small_u64(Some(digits))?;
    Some((
        seq,
        ExactPayload {
            request: Opened {
                salt: request_salt,
                data: request,
            },
            response: Opened {
                salt: response_salt,
                data: response,
            },
        },
    ))
}

/// Base64 up to the next `"` (which ends the string: base64 holds no
/// backslash), decoded; and what follows the quote.
fn base64_member(rest: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let end = memchr::memchr(b'"', rest)?;
    Some((base64_bytes_exact(&rest[..end])?, &rest[end + 1..]))
}

/// 64 hex digits and the closing `"`, decoded; and what follows.
fn salt_member(rest: &[u8]) -> Option<([u8; 32], &[u8])> {
    let digits = rest.get(..64)?;
    let rest = rest[64..].strip_prefix(b"\"")?;
    Some((parse_hex32(digits)?, rest))
}
