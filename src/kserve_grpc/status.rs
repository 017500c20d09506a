//! gRPC status codes and the `grpc-message` encoding.

/// SPEC (grpc/grpc "doc/statuscodes.md"): the codes the gateway answers
/// with, by their number on the wire (`grpc-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 3: the request is malformed.
    InvalidArgument = 3,
    /// 4: a deadline passed (the request's body, or the upstream).
    DeadlineExceeded = 4,
    /// 5: no such model or version.
    NotFound = 5,
    /// 7: the caller may not do this (a policy, the caller's key).
    PermissionDenied = 7,
    /// 8: a limit was reached (rate, size).
    ResourceExhausted = 8,
    /// 9: the model version may not serve (not approved, revoked).
    FailedPrecondition = 9,
    /// 10: the answer is held for human review instead of released.
    Aborted = 10,
    /// 12: the method is not served.
    Unimplemented = 12,
    /// 13: the gateway failed.
    Internal = 13,
    /// 14: try again later (upstream down, ledger busy).
    Unavailable = 14,
    /// 16: no (valid) caller identity.
    Unauthenticated = 16,
}

impl Code {
    /// The `grpc-status` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "3",
            Code::DeadlineExceeded => "4",
            Code::NotFound => "5",
            Code::PermissionDenied => "7",
            Code::ResourceExhausted => "8",
            Code::FailedPrecondition => "9",
            Code::Aborted => "10",
            Code::Unimplemented => "12",
            Code::Internal => "13",
            Code::Unavailable => "14",
            Code::Unauthenticated => "16",
        }
    }
}

/// A `grpc-message` value: SPEC: "Percent-Encoded": bytes outside
/// printable ASCII (0x20..=0x7E) and `%` itself as `%XX` of the UTF-8.
pub fn encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(encode_message("a b%c\n"), "a b%25c%0A");
        assert_eq!(encode_message("é"), "%C3%A9");
        assert_eq!(Code::FailedPrecondition as u8, 9);
        assert_eq!(Code::Unauthenticated.as_str(), "16");
    }
}
