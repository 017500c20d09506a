//! Bounded captures of request and response bodies for the decision record.

use bytes::{Bytes, BytesMut};
use serde::Serialize;

/// The first `limit` bytes of a body plus its true length.
///
/// Capturing never blocks and never grows past the limit, so a long stream
/// costs the record at most `limit` bytes.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    bytes: Bytes,
    total_len: u64,
}

impl Capture {
    /// A capture of a body that is already complete in memory.
    pub fn of_complete(body: &Bytes, limit: usize) -> Self {
        Self {
            bytes: body.slice(..body.len().min(limit)),
            total_len: body.len() as u64,
        }
    }

    /// The captured prefix.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Length of the whole body, captured or not.
    pub fn total_len(&self) -> u64 {
        self.total_len
    }

    /// Whether the capture holds less than the whole body.
    pub fn is_truncated(&self) -> bool {
        (self.bytes.len() as u64) < self.total_len
    }
}

/// Accumulates a capture chunk by chunk while a stream passes through.
#[derive(Debug)]
pub struct CaptureBuilder {
    buf: BytesMut,
    limit: usize,
    total_len: u64,
}

impl CaptureBuilder {
    /// An empty builder keeping at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            limit,
            total_len: 0,
        }
    }

    /// Notes a chunk: copies what still fits, counts the rest.
    pub fn push(&mut self, chunk: &[u8]) {
        self.total_len += chunk.len() as u64;
        let room = self.limit.saturating_sub(self.buf.len());
        if room > 0 {
            self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
    }

    /// The finished capture.
    pub fn finish(self) -> Capture {
        Capture {
            bytes: self.buf.freeze(),
            total_len: self.total_len,
        }
    }
}

impl Serialize for Capture {
    /// Text bodies are written as text, anything else as hex, so the record
    /// is lossless either way.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("Capture", 3)?;
        out.serialize_field("total_len", &self.total_len)?;
        out.serialize_field("truncated", &self.is_truncated())?;
        match std::str::from_utf8(&self.bytes) {
            Ok(text) => out.serialize_field("text", text)?,
            Err(_) => out.serialize_field("hex", &hex(&self.bytes))?,
        }
        out.end()
    }
}

/// Lower-case hex: the crate's one encoder (also `ledger::entry::hex`).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_keeps_prefix_and_counts_all() {
        let mut builder = CaptureBuilder::new(5);
        builder.push(b"abc");
        builder.push(b"defgh");
        builder.push(b"ij");
        let capture = builder.finish();
        assert_eq!(capture.bytes().as_ref(), b"abcde");
        assert_eq!(capture.total_len(), 10);
        assert!(capture.is_truncated());
    }

    #[test]
    fn complete_capture_under_limit_is_whole() {
        let capture = Capture::of_complete(&Bytes::from_static(b"hello"), 64);
        assert_eq!(capture.bytes().as_ref(), b"hello");
        assert!(!capture.is_truncated());
    }

    #[test]
    fn binary_capture_serializes_as_hex() {
        let capture = Capture::of_complete(&Bytes::from_static(&[0xff, 0x00]), 64);
        let json = serde_json::to_string(&capture).unwrap();
        assert_eq!(json, r#"{"total_len":2,"truncated":false,"hex":"ff00"}"#);
    }
}
