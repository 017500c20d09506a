//! Request paths the gateway refuses before routing: any a server behind
//! it could resolve to a place other than the one the gateway matched.
//!
//! The gateway forwards an `http` model's path as received (after its
//! prefix), and normalises nothing: no dot-segment removal (RFC 3986
//! section 5.2.4), no percent-decoding, no slash merging. So it refuses
//! every path an upstream or a server in front of it might resolve
//! differently from the bytes it matched:
//!
//! - a dot segment, `.` or `..` (RFC 3986 section 3.3), written plainly or
//!   with `%2e` in any case (`%2e%2e`, `.%2E`), also when followed by a
//!   `;` parameter (`..;x`, which some servers strip before resolving);
//! - an encoded slash `%2f` or backslash `%5c`, in any case, which a
//!   decoding upstream would turn into a segment boundary;
//! - a raw backslash, which some servers treat as `/`.
//!
//! The check is linear in the path and allocates nothing.

/// Why a path is refused (for the client's message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BadPath {
    /// A `.` or `..` segment, plain or percent-encoded.
    DotSegment,
    /// `%2f` or `%5c`.
    EncodedSeparator,
    /// A raw `\`.
    Backslash,
}

impl BadPath {
    /// What the client is told.
    pub(super) fn describe(self) -> &'static str {
        match self {
            BadPath::DotSegment => "a `.` or `..` segment (plain or percent-encoded)",
            BadPath::EncodedSeparator => "an encoded `/` or `\\` (%2F, %5C)",
            BadPath::Backslash => "a backslash",
        }
    }
}

/// Checks a request path (without its query).
pub(super) fn check(path: &str) -> Result<(), BadPath> {
    let bytes = path.as_bytes();
    if bytes.contains(&b'\\') {
        return Err(BadPath::Backslash);
    }
    if bytes.windows(3).any(|w| {
        w[0] == b'%' && (w[1] == b'2' && w[2] | 0x20 == b'f' || w[1] == b'5' && w[2] | 0x20 == b'c')
    }) {
        return Err(BadPath::EncodedSeparator);
    }
    if path.split('/').any(is_dot_segment) {
        return Err(BadPath::DotSegment);
    }
    Ok(())
}

/// Whether a segment is `.` or `..` once `%2e` is decoded and a `;`
/// parameter dropped.
fn is_dot_segment(segment: &str) -> bool {
    let name = segment.split(';').next().unwrap_or(segment).as_bytes();
    let mut dots = 0;
    let mut i = 0;
    while i < name.len() {
        if name[i] == b'.' {
            i += 1;
        } else if name.len() - i >= 3
            && name[i] == b'%'
            && name[i + 1] == b'2'
            && name[i + 2] | 0x20 == b'e'
        {
            i += 3;
        } else {
            return false;
        }
        dots += 1;
        if dots > 2 {
            return false;
        }
    }
    dots > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_in_every_spelling_are_refused() {
        for path in [
            "/m/..",
            "/m/../secret",
            "/m/./x",
            "/m/.",
            "/m/%2e%2e/secret",
            "/m/%2E%2e/secret",
            "/m/.%2e/secret",
            "/m/%2e./secret",
            "/m/%2e/secret",
            "/m/..;/secret",
            "/m/..;jsessionid=1/secret",
            "/./../x",
            "/..",
        ] {
            assert_eq!(check(path), Err(BadPath::DotSegment), "{path}");
        }
    }

    #[test]
    fn encoded_separators_and_backslashes_are_refused() {
        for path in [
            "/m/..%2fsecret",
            "/m/a%2Fb",
            "/m/a%5cb",
            "/m/a%5Cb",
            "/m/%2F",
        ] {
            assert_eq!(check(path), Err(BadPath::EncodedSeparator), "{path}");
        }
        assert_eq!(check("/m/..\\secret"), Err(BadPath::Backslash));
    }

    #[test]
    fn ordinary_paths_pass() {
        for path in [
            "/",
            "/m",
            "/m/",
            "/m/a.b/c",
            "/m/...",
            "/m/.hidden",
            "/m/..x",
            "/m/x..",
            "/m/%2e%2e%2e",
            "/m/%2ex",
            "/m//double",
            "/m/a%20b",
            "/m/%25%32%65",
            "/v1/chat/completions",
            "/m/a;b",
            "/m/%2",
            "/m/%",
        ] {
            assert_eq!(check(path), Ok(()), "{path}");
        }
    }
}
