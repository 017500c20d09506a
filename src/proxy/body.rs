//! The cheap checks every JSON request body passes before anything parses
//! or forwards it: valid UTF-8 throughout (RFC 8259 section 8.1) and at
//! most [`MAX_JSON_DEPTH`] nested arrays and objects.
//!
//! serde_json validates neither for the parts of a body it skips (the
//! OpenAI body is read as one borrowed `model` member; the rest is
//! ignored, and ignored strings are not checked for UTF-8), and the
//! gateway forwards KServe V2 bodies without parsing them, so a body an
//! upstream's parser would reject or overflow on would pass. One linear
//! pass over the bytes, no allocation.

/// Deepest nesting of arrays and objects accepted: what serde_json's
/// recursion limit (128) lets it parse into a value, so a body accepted
/// here also parses where the gateway reads it whole (policies, KPIs).
pub(super) const MAX_JSON_DEPTH: usize = 127;

/// Why a body fails the check (for the client's message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BadJson {
    /// Not UTF-8 at the given byte offset.
    NotUtf8(usize),
    /// Nested deeper than [`MAX_JSON_DEPTH`] at the given byte offset.
    TooDeep(usize),
}

impl std::fmt::Display for BadJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadJson::NotUtf8(at) => write!(f, "the body is not valid UTF-8 (byte {at})"),
            BadJson::TooDeep(at) => write!(
                f,
                "the body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels (byte {at})"
            ),
        }
    }
}

/// Checks UTF-8 and nesting depth; does not check the rest of the JSON
/// grammar (the protocol's parser or the upstream does).
pub(super) fn check(body: &[u8]) -> Result<(), BadJson> {
    if let Err(err) = std::str::from_utf8(body) {
        return Err(BadJson::NotUtf8(err.valid_up_to()));
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (at, &byte) in body.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(BadJson::TooDeep(at));
                }
            }
            // Unbalanced closers are the parser's business, not a depth.
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn depth_up_to_the_limit_passes_and_one_more_fails() {
        assert_eq!(check(nested(MAX_JSON_DEPTH).as_bytes()), Ok(()));
        assert_eq!(
            check(nested(MAX_JSON_DEPTH + 1).as_bytes()),
            Err(BadJson::TooDeep(MAX_JSON_DEPTH))
        );
        let deep = format!(r#"{{"model":"m","x":{}}}"#, nested(5000));
        assert!(matches!(check(deep.as_bytes()), Err(BadJson::TooDeep(_))));
        // What the check accepts, serde_json parses; one more it does not.
        let ok = format!(r#"{{"x":{}}}"#, nested(MAX_JSON_DEPTH - 1));
        assert_eq!(check(ok.as_bytes()), Ok(()));
        serde_json::from_str::<serde_json::Value>(&ok).unwrap();
        let over = format!(r#"{{"x":{}}}"#, nested(MAX_JSON_DEPTH));
        serde_json::from_str::<serde_json::Value>(&over).unwrap_err();
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let body = format!(r#"{{"model":"m","text":"{}\"\\"}}"#, "[{".repeat(200));
        assert_eq!(check(body.as_bytes()), Ok(()));
    }

    #[test]
    fn invalid_utf8_anywhere_fails() {
        assert_eq!(
            check(b"{\"model\":\"m\",\"x\":\"\xff\"}"),
            Err(BadJson::NotUtf8(18))
        );
        assert_eq!(check(b"{\"model\":\"m\"}\xc3"), Err(BadJson::NotUtf8(13)));
        assert_eq!(check("{\"x\":\"\u{e9}\u{1F600}\"}".as_bytes()), Ok(()));
    }
}
