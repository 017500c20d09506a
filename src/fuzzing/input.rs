//! Splitting one fuzz input into the parts a target needs, in a text form
//! that keeps the seed files readable.

use axum::body::Body;
use http::{HeaderName, HeaderValue, Method, Request, Uri, header};

/// The parts of `data` between `\n---\n` separators: at most `n`, the last
/// holding the rest; missing parts are empty.
pub(super) fn sections(data: &[u8], n: usize) -> Vec<&[u8]> {
    const SEPARATOR: &[u8] = b"\n---\n";
    let mut parts = Vec::with_capacity(n);
    let mut rest = data;
    while parts.len() + 1 < n {
        match find(rest, SEPARATOR) {
            Some(at) => {
                parts.push(&rest[..at]);
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts.resize(n, &[]);
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// `name: value` lines (a `\r` before the `\n` is dropped).
pub(super) fn header_lines(text: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    text.split(|b| *b == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|b| *b == b':')?;
        let value = &line[colon + 1..];
        let skip = value.iter().take_while(|b| **b == b' ').count();
        Some((&line[..colon], &value[skip..]))
    })
}

/// The head and the body of a [`request`] input.
fn head_and_body(data: &[u8]) -> (&[u8], &[u8]) {
    match find(data, b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    }
}

/// The body of a [`request`] input, as the request carries it.
pub(super) fn request_body(data: &[u8]) -> &[u8] {
    head_and_body(data).1
}

/// A request as hyper would hand it to the router: `METHOD target` on the
/// first line, header lines, a blank line, the body. `None` when hyper
/// would have refused it (no such method, target or header).
///
/// The body's framing is the harness's: `content-length` and
/// `transfer-encoding` lines are dropped and the body's length is set, as
/// hyper would have read it.
pub(super) fn request(data: &[u8]) -> Option<Request<Body>> {
    let (head, body) = head_and_body(data);
    let (first, headers) = match head.iter().position(|b| *b == b'\n') {
        Some(at) => (&head[..at], &head[at + 1..]),
        None => (head, &[][..]),
    };
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let space = first.iter().position(|b| *b == b' ')?;
    let target = &first[space + 1..];
    let target = target.strip_suffix(b" HTTP/1.1").unwrap_or(target);
    let mut request = Request::new(Body::from(body.to_vec()));
    *request.method_mut() = Method::from_bytes(&first[..space]).ok()?;
    *request.uri_mut() = Uri::try_from(target).ok()?;
    let map = request.headers_mut();
    for (name, value) in header_lines(headers) {
        let name = HeaderName::from_bytes(name).ok()?;
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        map.append(name, HeaderValue::from_bytes(value).ok()?);
    }
    if !body.is_empty() {
        map.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    Some(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_split_on_separators_and_pad() {
        assert_eq!(
            sections(b"a\n---\nb\n---\nc\n---\nd", 3),
            vec![&b"a"[..], b"b", b"c\n---\nd"]
        );
        assert_eq!(sections(b"a", 3), vec![&b"a"[..], b"", b""]);
    }

    #[test]
    fn requests_read_like_http() {
        let request = request(
            b"POST /v1/chat/completions HTTP/1.1\nx-a: 1\ncontent-length: 99\n\n{\"model\":\"m\"}",
        )
        .unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri().path(), "/v1/chat/completions");
        assert_eq!(request.headers()["x-a"], "1");
        assert_eq!(request.headers()[header::CONTENT_LENGTH], "13");
        assert!(super::request(b"G(T /\n\n").is_none());
        assert!(super::request(b"GET\n\n").is_none());
        assert!(super::request(b"GET /a b\n\n").is_none());
    }
}
