//! What an upstream's JSON parser can take, as far as encoding and
//! nesting go: the gateway's promise for the OpenAI and KServe V2 bodies
//! it forwards (docs/errors.md, `malformed_body`).

use serde_json::Value;

/// Deepest nesting of arrays and objects a forwarded body may have.
pub(super) const MAX_DEPTH: usize = 127;

/// Whether an upstream's JSON parser can take `body` as far as encoding
/// and nesting go: valid UTF-8 (RFC 8259 section 8.1), at most
/// [`MAX_DEPTH`] levels of arrays and objects. The error says why not.
///
/// Its own reading, not the gateway's (`proxy::body`): the standard
/// library's UTF-8 check, a count over characters outside strings, and
/// serde_json's own recursion limit as a second opinion.
pub(super) fn forwardable(body: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Err("that is not UTF-8".to_owned());
    };
    let depth = max_depth(text);
    if depth > MAX_DEPTH {
        return Err(format!("nested {depth} levels deep"));
    }
    // Into a value: serde_json skips what it ignores without a depth limit.
    match serde_json::from_str::<Value>(text) {
        Err(err) if err.to_string().contains("recursion limit") => {
            Err("that serde_json finds too deep".to_owned())
        }
        _ => Ok(()),
    }
}

/// The deepest nesting of `[` and `{` outside strings.
fn max_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                // Skip the string: to its closing quote, escapes and all.
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_counted_outside_strings() {
        assert_eq!(max_depth(r#"{"a":[1,{"b":[]}],"c":"[[[{"}"#), 4);
        assert_eq!(max_depth(r#"["\"[[", ["\\"]]"#), 2);
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(forwardable(nested(MAX_DEPTH).as_bytes()), Ok(()));
        assert!(forwardable(nested(MAX_DEPTH + 1).as_bytes()).is_err());
        assert!(forwardable(b"{\"model\":\"same\",\"x\":\"\xff\"}").is_err());
    }
}
