//! JSON for the answers axum gives by itself: no route (404), a method the
//! route does not take (405), and extractor rejections (a query string, a
//! path parameter or a body that cannot be read), which axum writes as
//! plain text. Every admin route, and the public listener's own
//! `/govgate/...` routes, answer with the documented error body instead
//! (docs/errors.md).
//!
//! Handlers of ours answer errors as JSON already; a response is rewritten
//! only when it is an error (4xx, 5xx) that is not JSON. Never put this on
//! a route that passes an upstream's answer on.

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

/// Largest plain-text error body read to become the message (axum's
/// rejection texts are one line).
const MAX_TEXT: usize = 4096;

/// `router` with a JSON 404 fallback and [`json_rejections`]. Call on the
/// whole router, after every merge (a merged router may not have its own
/// fallback).
pub fn with_json_errors(router: Router) -> Router {
    json_rejections(router.fallback(|| async {
        super::error_response(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "no route for this method and path",
            None,
        )
    }))
}

/// `router` with axum's plain-text error answers (rejections, 405)
/// rewritten as JSON errors. Applies to the routes added so far.
pub fn json_rejections(router: Router) -> Router {
    router.layer(axum::middleware::map_response(to_json))
}

async fn to_json(response: Response) -> Response {
    let status = response.status();
    // The console's own error pages are HTML for people: kept.
    if !(status.is_client_error() || status.is_server_error())
        || is_json(&response)
        || is_html(&response)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_TEXT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let (code, message) = classify(status, text);
    let json = super::error_response(status, code, &message, None);
    // Keep what axum said besides the body (e.g. `allow` on a 405).
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (_, body) = json.into_parts();
    Response::from_parts(parts, Body::new(body))
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"))
}

fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/html"))
}

/// The error code for axum's answer, and the message for the client
/// (axum's text where it says something, else ours).
fn classify(status: StatusCode, text: String) -> (&'static str, String) {
    let code = match status {
        StatusCode::NOT_FOUND => "route_not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::BAD_REQUEST => {
            if text.starts_with("Failed to deserialize query string") {
                "invalid_query"
            } else if text.starts_with("Invalid URL") {
                "invalid_path"
            } else if text.starts_with("Failed to buffer the request body") {
                "request_body_unreadable"
            } else if text.starts_with("Failed to parse the request body as JSON")
                || text.starts_with("Request body didn't contain valid UTF-8")
            {
                "malformed_body"
            } else {
                "bad_request"
            }
        }
        status if status.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    let message = if !text.is_empty() && !status.is_server_error() {
        text
    } else {
        match status {
            StatusCode::NOT_FOUND => "no route for this method and path".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this path".to_owned(),
            status if status.is_server_error() => "internal gateway error".to_owned(),
            status => status
                .canonical_reason()
                .unwrap_or("bad request")
                .to_owned(),
        }
    };
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn axum_texts_get_codes() {
        let cases = [
            (
                StatusCode::BAD_REQUEST,
                "Failed to deserialize query string: missing field `from`",
                "invalid_query",
            ),
            (
                StatusCode::BAD_REQUEST,
                "Failed to buffer the request body: error reading a body from connection",
                "request_body_unreadable",
            ),
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Failed to buffer the request body: length limit exceeded",
                "body_too_large",
            ),
            (StatusCode::BAD_REQUEST, "Invalid URL: bad", "invalid_path"),
            (
                StatusCode::BAD_REQUEST,
                "Failed to parse the request body as JSON: x",
                "malformed_body",
            ),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Failed to deserialize the JSON body into the target type",
                "invalid_body",
            ),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expected request with `Content-Type: application/json`",
                "unsupported_media_type",
            ),
            (StatusCode::NOT_FOUND, "", "route_not_found"),
            (StatusCode::METHOD_NOT_ALLOWED, "", "method_not_allowed"),
            (StatusCode::BAD_REQUEST, "something else", "bad_request"),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Wrong number of path arguments",
                "internal_error",
            ),
        ];
        for (status, text, code) in cases {
            let (got, message) = classify(status, text.to_owned());
            assert_eq!(got, code, "{text}");
            assert!(!message.is_empty());
        }
        // Internal details stay out of the message.
        let (_, message) = classify(
            StatusCode::INTERNAL_SERVER_ERROR,
            "No paths parameters found".to_owned(),
        );
        assert_eq!(message, "internal gateway error");
    }

    #[tokio::test]
    async fn plain_text_errors_become_json_and_keep_their_headers() {
        let response = (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET,HEAD")],
        )
            .into_response();
        let rewritten = to_json(response).await;
        assert_eq!(rewritten.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(rewritten.headers()[header::ALLOW], "GET,HEAD");
        assert_eq!(
            rewritten.headers()[header::CONTENT_TYPE],
            "application/json"
        );
        let body = axum::body::to_bytes(rewritten.into_body(), 4096)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "method_not_allowed");

        let ok = (StatusCode::OK, "fine").into_response();
        let kept = to_json(ok).await;
        let body = axum::body::to_bytes(kept.into_body(), 4096).await.unwrap();
        assert_eq!(&body[..], b"fine");
    }
}
