//! Header hygiene between client and upstream: hop-by-hop headers removed
//! both ways (RFC 9110 section 7.6.1), `X-Forwarded-For` extended, upstream
//! credentials added on the way up and the client's own copy of that header
//! (for `anthropic` models, of either key header) dropped, and the
//! gateway's own `govgate-*` response headers kept for the gateway alone.

use crate::config::{ATTRIBUTE_HEADER_PREFIX, Credential};
use http::header::Entry;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use std::net::IpAddr;

/// Request header a client may use to ask for a model version on protocols
/// whose path cannot carry one (`openai`, `http`). The gateway consumes it.
pub const MODEL_VERSION_HEADER: &str = "govgate-model-version";

/// Response header naming the decision that recorded this exchange.
pub const DECISION_ID_HEADER: &str = "govgate-decision-id";

/// Response header with the path of the decision's receipt on the public listener.
pub const RECEIPT_HEADER: &str = "govgate-receipt";

/// Response header naming the review of a held or released decision.
pub const REVIEW_ID_HEADER: &str = "govgate-review-id";

/// Response header of a poll: the review's state (`approved`, `overridden`, `timed_out`).
pub const REVIEW_STATE_HEADER: &str = "govgate-review-state";

/// Hop-by-hop headers that never cross a proxy.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Turns the client's request headers into the upstream request's headers.
pub(super) fn to_upstream(
    mut headers: HeaderMap,
    client_ip: Option<IpAddr>,
    credential: Option<&Credential>,
) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    // The client's Host names the gateway; the client sets the upstream's.
    headers.remove(header::HOST);
    // The body may be rewritten (model name); the client sets the true length.
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(MODEL_VERSION_HEADER);
    strip_attribute_headers(&mut headers);
    // The gateway has already received the whole body: nothing to wait for.
    headers.remove(header::EXPECT);
    if let Some(ip) = client_ip {
        append_forwarded_for(&mut headers, ip);
    }
    if let Some(credential) = credential {
        // The caller's own key stays here, in whichever header it came.
        for name in &credential.replaces {
            headers.remove(name);
        }
        headers.insert(credential.header.clone(), credential.value.clone());
    }
    headers
}

/// Whether the client's `TE` says it accepts trailers. `TE` is hop-by-hop
/// and stripped; towards an HTTP/2 upstream the gateway sends its own
/// `te: trailers` (the only value HTTP/2 allows, RFC 9113 section 8.2.2)
/// when the client asked for it, as gRPC servers require.
pub(super) fn asks_for_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|part| {
            let token = part.split(';').next().unwrap_or_default().trim();
            token.eq_ignore_ascii_case("trailers")
        })
}

/// Removes the protected-attribute headers (`x-govgate-attr-<name>`):
/// they are for the gateway's fairness KPIs, and the model must never see
/// them.
fn strip_attribute_headers(headers: &mut HeaderMap) {
    remove_prefixed(headers, ATTRIBUTE_HEADER_PREFIX);
}

/// Removes every header whose name starts with `prefix`.
fn remove_prefixed(headers: &mut HeaderMap, prefix: &str) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(prefix))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Appends the client's address to `X-Forwarded-For`. Several header
/// lines form one comma-separated list (RFC 9110 section 5.3), so every
/// line is kept in order and the address goes at the end of the last.
fn append_forwarded_for(headers: &mut HeaderMap, ip: IpAddr) {
    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    let ip = ip.to_string();
    let mut entry = match headers.entry(XFF) {
        Entry::Vacant(vacant) => {
            if let Ok(value) = HeaderValue::from_str(&ip) {
                vacant.insert(value);
            }
            return;
        }
        Entry::Occupied(occupied) => occupied,
    };
    // Only the last line changes; the ones before stay where they are.
    let Some(last) = entry.iter_mut().next_back() else {
        return;
    };
    // Bytes, not `to_str`: a line with obs-text is passed on, not dropped.
    let extended = if last.as_bytes().trim_ascii().is_empty() {
        HeaderValue::from_str(&ip)
    } else {
        let mut bytes = last.as_bytes().to_vec();
        bytes.extend_from_slice(b", ");
        bytes.extend_from_slice(ip.as_bytes());
        HeaderValue::from_bytes(&bytes)
    };
    // INVARIANT: a valid value plus ", " and an address is a valid value.
    if let Ok(extended) = extended {
        *last = extended;
    }
}

/// Prefix of the headers the gateway sets on its answers.
const GATEWAY_HEADER_PREFIX: &str = "govgate-";

/// Turns the upstream's response headers into the client's.
pub(super) fn to_client(mut headers: HeaderMap, credential: Option<&Credential>) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    // `govgate-*` answer headers (decision id, receipt, review id and
    // state) are the gateway's word about the exchange: an upstream must
    // not be able to set or pre-empt them.
    remove_prefixed(&mut headers, GATEWAY_HEADER_PREFIX);
    // An upstream that echoes the credential header must not leak it.
    if let Some(credential) = credential {
        headers.remove(&credential.header);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_listed_and_named_hop_by_hop_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["x-kept"], "yes");
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let out = to_upstream(headers, Some("127.0.0.1".parse().unwrap()), None);
        assert_eq!(out["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    }

    #[test]
    fn every_forwarded_for_line_is_kept_and_the_last_extended() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("10.0.0.2, 10.0.0.3"),
        );
        let out = to_upstream(headers, Some("127.0.0.1".parse().unwrap()), None);
        let lines: Vec<_> = out.get_all("x-forwarded-for").iter().collect();
        assert_eq!(lines, ["10.0.0.1", "10.0.0.2, 10.0.0.3, 127.0.0.1"]);
        let out = to_upstream(HeaderMap::new(), Some("::1".parse().unwrap()), None);
        assert_eq!(out["x-forwarded-for"], "::1");
    }

    #[test]
    fn gateway_headers_from_upstream_never_reach_the_client() {
        let mut headers = HeaderMap::new();
        headers.insert("govgate-review-id", HeaderValue::from_static("forged"));
        headers.insert("govgate-decision-id", HeaderValue::from_static("forged"));
        headers.insert("x-govgate-kept", HeaderValue::from_static("yes"));
        let out = to_client(headers, None);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out["x-govgate-kept"], "yes");
    }

    #[test]
    fn a_credential_replaces_every_caller_header_it_names() {
        let credential = Credential {
            header: HeaderName::from_static("x-api-key"),
            value: HeaderValue::from_static("gateway-key"),
            replaces: vec![HeaderName::from_static("x-api-key"), header::AUTHORIZATION],
        };
        let mut headers = HeaderMap::new();
        headers.append("x-api-key", HeaderValue::from_static("callers-1"));
        headers.append("x-api-key", HeaderValue::from_static("callers-2"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer c"));
        headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        let out = to_upstream(headers, None, Some(&credential));
        let keys: Vec<_> = out.get_all("x-api-key").iter().collect();
        assert_eq!(keys, ["gateway-key"]);
        assert!(!out.contains_key(header::AUTHORIZATION), "{out:?}");
        assert_eq!(out["anthropic-version"], "2023-06-01");
        assert_eq!(out.len(), 2, "{out:?}");
    }

    #[test]
    fn protected_attribute_headers_never_go_upstream() {
        let mut headers = HeaderMap::new();
        headers.insert("x-govgate-attr-sex", HeaderValue::from_static("female"));
        headers.append(
            "x-govgate-attr-age-group",
            HeaderValue::from_static("young"),
        );
        headers.append(
            "x-govgate-attr-age-group",
            HeaderValue::from_static("again"),
        );
        headers.insert(
            "x-govgate-attribute",
            HeaderValue::from_static("kept: not the prefix"),
        );
        headers.insert("x-kept", HeaderValue::from_static("yes"));
        let out = to_upstream(headers, None, None);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out["x-kept"], "yes");
        assert!(out.contains_key("x-govgate-attribute"));
    }

    #[test]
    fn te_trailers_is_told_among_other_codings() {
        let mut headers = HeaderMap::new();
        assert!(!asks_for_trailers(&headers));
        headers.insert(header::TE, HeaderValue::from_static("gzip;q=0.5"));
        assert!(!asks_for_trailers(&headers));
        headers.append(header::TE, HeaderValue::from_static("deflate, Trailers"));
        assert!(asks_for_trailers(&headers));
    }
}
