//! Answers that carry no body (RFC 9110 section 6.4.1): to a `HEAD`
//! request, and with status 1xx, 204 or 304. Two things go wrong with
//! them if they are released like other answers:
//!
//! - axum sets `content-length` from the body's size hint when the answer
//!   has none, so an empty upstream body became `content-length: 0` on a
//!   204 (RFC 9110 section 8.6: MUST NOT) and on a 304 or a `HEAD` answer
//!   whose upstream declared no length (an invented length);
//! - hyper never polls such a body, so a streamed answer's end, where its
//!   decision is recorded, would never be reached.
//!
//! So the body is read to its end here, before release (it is empty for
//! an upstream's answer, which hyper's client reads as bodiless), and
//! released with no size hint: a `content-length` the upstream declared
//! is passed on (except on 1xx and 204), and none is invented.

use super::error::ProxyError;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{StatusCode, header};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Whether an answer to this request can carry no body.
fn is_bodiless(head: bool, status: StatusCode) -> bool {
    head || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// Completes a bodiless answer before release (see the module docs);
/// passes any other answer through. Cancel-safe: dropping it drops the
/// body, which records the decision as the client having left.
pub(super) async fn complete(head: bool, response: Response) -> Response {
    let status = response.status();
    if !is_bodiless(head, status) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            // The body fails only when its decision could not be recorded.
            let mut refused = ProxyError::LedgerUnavailable.into_response();
            for name in [super::DECISION_ID_HEADER, super::RECEIPT_HEADER] {
                if let Some(value) = parts.headers.get(name) {
                    refused.headers_mut().insert(name, value.clone());
                }
            }
            return refused;
        }
    };
    if status.is_informational() || status == StatusCode::NO_CONTENT {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    if bytes.is_empty() {
        Response::from_parts(parts, Body::new(Unsized))
    } else {
        // The gateway's own answer to a HEAD: axum sets the length a GET
        // would get, then drops the body.
        Response::from_parts(parts, Body::from(bytes))
    }
}

/// An empty body that does not say it is empty, so neither axum nor
/// hyper derives a `content-length` from it.
struct Unsized;

impl http_body::Body for Unsized {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http_body::Body as _;

    #[tokio::test]
    async fn bodiless_answers_lose_invented_lengths_and_keep_declared_ones() {
        let answer = |status: u16, length: Option<&'static str>| {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            if let Some(length) = length {
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from_static(length));
            }
            response
        };
        let no_content = complete(false, answer(204, Some("0"))).await;
        assert!(!no_content.headers().contains_key(header::CONTENT_LENGTH));
        assert_eq!(no_content.body().size_hint().exact(), None);
        let not_modified = complete(false, answer(304, Some("1234"))).await;
        assert_eq!(not_modified.headers()[header::CONTENT_LENGTH], "1234");
        assert_eq!(not_modified.body().size_hint().exact(), None);
        let head = complete(true, answer(200, None)).await;
        assert!(!head.headers().contains_key(header::CONTENT_LENGTH));
        assert_eq!(head.body().size_hint().exact(), None);
        let own = complete(true, Response::new(Body::from("{\"error\":{}}"))).await;
        assert_eq!(own.body().size_hint().exact(), Some(12));
        let ok = complete(false, answer(200, None)).await;
        assert_eq!(ok.body().size_hint().exact(), Some(0));
    }
}
