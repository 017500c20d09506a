//! What an upstream may be sent, read from the bytes it received: the
//! request-target lies under the version's base path, names no other
//! place than the one the gateway matched, and is exactly the client's
//! path (after an `http` model's prefix) and query.

use super::json::forwardable;
use super::upstream::Received;
use crate::decision::{Decision, Route};

/// A version as the routing target configures it: where its upstream is,
/// and whether the serving table lets it serve.
pub(super) struct Upstream {
    /// The model's name.
    pub(super) model: &'static str,
    /// The version's label.
    pub(super) version: &'static str,
    /// The base path of its upstream URL on the recorder.
    pub(super) base: &'static str,
    /// The name its upstream knows the model by (`upstream_model`).
    pub(super) upstream_model: Option<&'static str>,
    /// An `http` model's path prefix.
    pub(super) prefix: Option<&'static str>,
    /// Approved, so it may be forwarded to.
    pub(super) approved: bool,
}

/// Why a path received upstream could resolve elsewhere than where the
/// gateway matched it, read as a server that percent-decodes the path
/// once would read it; `None` when it cannot.
///
/// Independent of the gateway's own check (`proxy::path`): each segment
/// is decoded, and then must not hold a `/` or `\` (an encoded separator
/// becomes a boundary once decoded) nor be `.` or `..` (also before a `;`
/// parameter, which some servers drop). A raw `\` is refused outright.
/// `%2e` in a segment that does not decode to a dot segment (`%2ex`,
/// `%2e%2e%2e`) names nothing else, and is allowed.
pub(super) fn unsafe_path(path: &[u8]) -> Option<&'static str> {
    if path.contains(&b'\\') {
        return Some("a backslash");
    }
    for segment in path.split(|b| *b == b'/') {
        let decoded = percent_decode(segment);
        if decoded.contains(&b'/') || decoded.contains(&b'\\') {
            return Some("an encoded `/` or `\\`");
        }
        let name = segment.split(|b| *b == b';').next().unwrap_or(segment);
        if matches!(percent_decode(name).as_slice(), b"." | b"..") {
            return Some("a dot segment");
        }
    }
    None
}

/// `%XX` decoded (either case); a `%` not followed by two hex digits is kept.
fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let pair = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| Some((hex(pair[0])?, hex(pair[1])?)));
        match (bytes[i], pair) {
            (b'%', Some((high, low))) => {
                // Two hex digits make one byte.
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// Checks the one request an upstream received for a forward.
///
/// # Panics
/// When the request-target is under no version's base path, the version
/// it reached is not approved or not the decision's, its path could
/// resolve elsewhere ([`unsafe_path`]), it is not what the client asked
/// for, the method or body changed on the way (the targets' models
/// rename nothing in the bodies these paths carry, except an OpenAI or
/// Anthropic `model`), or an OpenAI or Anthropic body or a KServe V2 body's JSON part is not
/// UTF-8 or nests deeper than 127 levels.
pub(super) fn check_forward(
    upstreams: &[Upstream],
    decision: &Decision,
    client: &http::Request<()>,
    client_body: &[u8],
    received: &Received,
) {
    let target = received.target.as_slice();
    let (path, query) = match target.iter().position(|b| *b == b'?') {
        Some(at) => (&target[..at], Some(&target[at + 1..])),
        None => (target, None),
    };
    let text = format!(
        "{} {}",
        String::from_utf8_lossy(&received.method),
        String::from_utf8_lossy(target)
    );
    let Some(upstream) = upstreams.iter().find(|up| {
        path.strip_prefix(up.base.as_bytes())
            .is_some_and(|rest| rest.starts_with(b"/"))
    }) else {
        panic!("the upstream got `{text}`, under no version's base path");
    };
    assert!(
        upstream.approved,
        "forwarded to {} version {}, which is not approved",
        upstream.model, upstream.version
    );
    assert_eq!(
        (decision.model.as_deref(), decision.version.as_deref()),
        (Some(upstream.model), Some(upstream.version)),
        "the decision names another version than the one forwarded to"
    );
    if let Some(why) = unsafe_path(path) {
        panic!("the upstream got `{text}`: {why}");
    }
    let rest = &path[upstream.base.len()..];
    let client_path = client.uri().path();
    let expected = match decision.route {
        Route::Http => {
            let prefix = upstream.prefix.unwrap_or_default();
            match client_path.strip_prefix(prefix) {
                Some("") => "/".to_owned(),
                Some(rest) => rest.to_owned(),
                None => panic!("forwarded {client_path:?} outside the prefix {prefix:?}"),
            }
        }
        Route::KserveInfer | Route::KserveMetadata => {
            let name = upstream.upstream_model.unwrap_or(upstream.model);
            let infer = decision.route == Route::KserveInfer;
            format!("/v2/models/{name}{}", if infer { "/infer" } else { "" })
        }
        _ => client_path.to_owned(),
    };
    assert!(
        rest == expected.as_bytes(),
        "the upstream got `{text}` for the client's {client_path:?}"
    );
    assert_eq!(
        query,
        client.uri().query().map(str::as_bytes),
        "the query changed on the way"
    );
    assert_eq!(
        received.method,
        client.method().as_str().as_bytes(),
        "the method changed on the way"
    );
    if decision.route != Route::OpenaiChatCompletions
        && decision.route != Route::OpenaiCompletions
        && decision.route != Route::OpenaiEmbeddings
        && decision.route != Route::OpenaiResponses
        && decision.route != Route::AnthropicMessages
    {
        assert!(received.body == client_body, "the body changed on the way");
    }
    let json = match decision.route {
        Route::KserveInfer | Route::KserveMetadata => {
            kserve_json_part(client.headers(), &received.body)
        }
        Route::Http => return,
        _ => &received.body,
    };
    if let Err(why) = forwardable(json) {
        panic!("forwarded JSON {why}");
    }
}

/// The JSON part of a KServe V2 body: the first
/// `Inference-Header-Content-Length` bytes (binary data extension), or all
/// of it. The gateway refuses a length past the body's end, so any other
/// is the whole body here.
fn kserve_json_part<'a>(headers: &http::HeaderMap, body: &'a [u8]) -> &'a [u8] {
    let length = headers
        .get("inference-header-content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<usize>().ok());
    length.and_then(|len| body.get(..len)).unwrap_or(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_resolve_elsewhere_are_named() {
        for path in [
            "/b/..",
            "/b/../x",
            "/b/./x",
            "/b/%2e%2E/x",
            "/b/.%2e",
            "/b/..;x/y",
            "/b/%2e;/y",
            "/b/a%2fb",
            "/b/a%2Fb",
            "/b/a%5cb",
            "/b/a%5Cb",
            "/b/a\\b",
        ] {
            assert!(unsafe_path(path.as_bytes()).is_some(), "{path}");
        }
        for path in [
            "/b/",
            "/b/...",
            "/b/%2ex",
            "/b/%2e%2e%2e",
            "/b/a.b",
            "/b/%25%32%65",
            "/b/a;..",
            "/b/%",
            "/b/%2",
            "/b/%zz",
            "/b//x",
        ] {
            assert_eq!(unsafe_path(path.as_bytes()), None, "{path}");
        }
    }
}
