//! The listener's own answers, written as fixed bytes: 503 `overloaded` at
//! the connection cap, and the JSON that replaces hyper's empty answers to
//! a request head it cannot parse. Built once per listener.

use bytes::Bytes;

/// Why the listener itself answered (a metric label, a docs/errors.md code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The listener is at its connection cap (503).
    Overloaded,
    /// The head is larger than `limits.max_header_bytes` or has more than
    /// `limits.max_headers` fields (431).
    HeadersTooLarge,
    /// The request target is longer than hyper accepts (414).
    UriTooLong,
    /// The request line or a header line does not parse (400).
    MalformedRequest,
}

impl Refusal {
    /// Every refusal, for metric label pre-creation.
    #[cfg(test)]
    pub(super) const ALL: [Refusal; 4] = [
        Refusal::Overloaded,
        Refusal::HeadersTooLarge,
        Refusal::UriTooLong,
        Refusal::MalformedRequest,
    ];

    /// The stable error code.
    pub(super) fn code(self) -> &'static str {
        match self {
            Refusal::Overloaded => "overloaded",
            Refusal::HeadersTooLarge => "headers_too_large",
            Refusal::UriTooLong => "uri_too_long",
            Refusal::MalformedRequest => "malformed_request",
        }
    }

    /// Which refusal hyper's own answer is, from the first bytes it
    /// writes: hyper answers a head it cannot parse with an empty 400, 414
    /// or 431 (`HTTP/1.1 431 ...`).
    pub(super) fn of_hyper_answer(written: &[u8]) -> Option<Refusal> {
        let status = written.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
        match status {
            b"400" => Some(Refusal::MalformedRequest),
            b"414" => Some(Refusal::UriTooLong),
            b"431" => Some(Refusal::HeadersTooLarge),
            _ => None,
        }
    }
}

/// The complete answers (status line to body), one per [`Refusal`].
#[derive(Debug)]
pub(super) struct Answers {
    overloaded: Bytes,
    headers_too_large: Bytes,
    uri_too_long: Bytes,
    malformed_request: Bytes,
}

impl Answers {
    /// The answers for a listener with these head limits.
    pub(super) fn new(max_header_bytes: usize, max_headers: usize) -> Self {
        Self {
            overloaded: answer(
                "503 Service Unavailable",
                "retry-after: 1\r\n",
                Refusal::Overloaded,
                "the gateway has too many open connections, retry shortly",
            ),
            headers_too_large: answer(
                "431 Request Header Fields Too Large",
                "",
                Refusal::HeadersTooLarge,
                &format!(
                    "the request head is larger than {max_header_bytes} bytes or has more than {max_headers} header fields"
                ),
            ),
            uri_too_long: answer(
                "414 URI Too Long",
                "",
                Refusal::UriTooLong,
                "the request target is too long",
            ),
            malformed_request: answer(
                "400 Bad Request",
                "",
                Refusal::MalformedRequest,
                "the request line or a header line is not valid HTTP/1.1",
            ),
        }
    }

    /// The bytes of one answer (a cheap clone).
    pub(super) fn get(&self, refusal: Refusal) -> Bytes {
        match refusal {
            Refusal::Overloaded => self.overloaded.clone(),
            Refusal::HeadersTooLarge => self.headers_too_large.clone(),
            Refusal::UriTooLong => self.uri_too_long.clone(),
            Refusal::MalformedRequest => self.malformed_request.clone(),
        }
    }
}

/// One HTTP/1.1 answer with the documented JSON error body
/// (docs/errors.md); the connection closes after it.
fn answer(status: &str, extra_headers: &str, refusal: Refusal, message: &str) -> Bytes {
    let body =
        serde_json::json!({ "error": { "code": refusal.code(), "message": message } }).to_string();
    Bytes::from(format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_answers_are_recognised_by_status() {
        assert_eq!(
            Refusal::of_hyper_answer(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            Some(Refusal::HeadersTooLarge)
        );
        assert_eq!(
            Refusal::of_hyper_answer(b"HTTP/1.1 400 Bad Request\r\n"),
            Some(Refusal::MalformedRequest)
        );
        assert_eq!(
            Refusal::of_hyper_answer(b"HTTP/1.1 414 URI Too Long\r\n"),
            Some(Refusal::UriTooLong)
        );
        assert_eq!(Refusal::of_hyper_answer(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(Refusal::of_hyper_answer(b"HTTP/1.1 4"), None);
        assert_eq!(Refusal::of_hyper_answer(b""), None);
    }

    #[test]
    fn answers_are_complete_json_responses() {
        let answers = Answers::new(65536, 100);
        for refusal in Refusal::ALL {
            let bytes = answers.get(refusal);
            let text = std::str::from_utf8(&bytes).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.contains(&format!("content-length: {}", body.len())));
            assert!(head.contains("connection: close"));
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["error"]["code"], refusal.code());
        }
        let overloaded = answers.get(Refusal::Overloaded);
        assert!(overloaded.starts_with(b"HTTP/1.1 503 "));
        assert!(
            std::str::from_utf8(&overloaded)
                .unwrap()
                .contains("retry-after: 1\r\n")
        );
    }
}
