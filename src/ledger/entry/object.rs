//! A canonical (RFC 8785) JSON object written straight from borrowed
//! members, without building a `serde_json::Value` first.
//!
//! Sealing runs once per decision on the single ledger writer; building a
//! `Value` tree (a `String` per key, a map insert per member) took about
//! as long as hashing the entry twice. The output is byte-identical to
//! `canonical::to_canonical` of the equivalent `Value`; the tests hold the
//! two side by side.

use crate::ledger::canonical::{CanonicalError, write_number, write_string};

/// One member's value.
pub(crate) enum Member<'a> {
    /// `null`.
    Null,
    /// An unsigned integer (rounded to a double above 2^53, as JCS says).
    U64(u64),
    /// A string.
    Str(&'a str),
    /// An owned string.
    String(String),
    /// A nested object.
    Object(CanonicalObject<'a>),
}

impl<'a> From<Option<&'a str>> for Member<'a> {
    fn from(text: Option<&'a str>) -> Self {
        text.map_or(Member::Null, Member::Str)
    }
}

impl From<Option<u64>> for Member<'_> {
    fn from(number: Option<u64>) -> Self {
        number.map_or(Member::Null, Member::U64)
    }
}

/// An object under construction: members in any order, written sorted.
#[derive(Default)]
pub(crate) struct CanonicalObject<'a> {
    members: Vec<(&'static str, Member<'a>)>,
}

impl<'a> CanonicalObject<'a> {
    /// An empty object with room for `capacity` members.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            members: Vec::with_capacity(capacity),
        }
    }

    /// Adds a member. Names are static ASCII (checked in debug builds), so
    /// byte order is the UTF-16 order JCS sorts by.
    pub(crate) fn push(&mut self, name: &'static str, value: impl Into<Member<'a>>) {
        debug_assert!(name.is_ascii());
        self.members.push((name, value.into()));
    }

    /// The canonical bytes, appended to `out`.
    pub(crate) fn write(mut self, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
        self.members.sort_unstable_by_key(|(name, _)| *name);
        if let Some(pair) = self.members.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(CanonicalError::Parse(format!(
                "duplicate member name {:?}",
                pair[0].0
            )));
        }
        out.push(b'{');
        for (i, (name, value)) in self.members.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(out, name);
            out.push(b':');
            match value {
                Member::Null => out.extend_from_slice(b"null"),
                Member::U64(number) => write_number(out, &number.into())?,
                Member::Str(text) => write_string(out, text),
                Member::String(text) => write_string(out, &text),
                Member::Object(object) => object.write(out)?,
            }
        }
        out.push(b'}');
        Ok(())
    }
}

impl<'a> From<&'a str> for Member<'a> {
    fn from(text: &'a str) -> Self {
        Member::Str(text)
    }
}

impl From<String> for Member<'_> {
    fn from(text: String) -> Self {
        Member::String(text)
    }
}

impl From<u64> for Member<'_> {
    fn from(number: u64) -> Self {
        Member::U64(number)
    }
}

impl<'a> From<CanonicalObject<'a>> for Member<'a> {
    fn from(object: CanonicalObject<'a>) -> Self {
        Member::Object(object)
    }
}
