//! Bundle files read once, a line at a time: each file's bytes are hashed
//! (SHA-256) and its LF-terminated lines counted as they go by, for the
//! manifest's file list (docs/audit-format.md section 8.1, step 1); and a
//! line's `seq` is found without parsing the line, to pair the lines of
//! `signatures.jsonl` and `payloads.jsonl` with their entries.

use super::{BundleError, bad};
use bytes::Bytes;
use serde_json::Value;
use sha2::Digest as _;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes read from a file at a time: each line handed out is a slice of
/// such a block (no copy, no allocation per line); a block is freed once
/// its last line is.
const BUFFER: usize = 1 << 16;

/// What the manifest's file list says of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Digest {
    /// LF-terminated lines.
    pub(super) lines: u64,
    /// SHA-256 of the bytes, lower-case hex.
    pub(super) sha256: String,
}

fn unreadable(path: &Path, source: std::io::Error) -> BundleError {
    BundleError::Unreadable {
        path: path.display().to_string(),
        source,
    }
}

/// A bundle file read line by line, hashed as it is read.
pub(super) struct Lines {
    path: PathBuf,
    reader: Box<dyn Read + Send>,
    /// The block being read: `block[..filled]` holds bytes read and not
    /// yet handed out (the start of the next line).
    block: Bytes,
    filled: usize,
    /// `block[..searched]` holds no LF.
    searched: usize,
    /// The reader said its end.
    ended: bool,
    sha: sha2::Sha256,
    lfs: u64,
    /// Lines handed out so far.
    number: usize,
    /// Whether the content is hashed (a chunk file's SHA-256 is of its
    /// stored bytes instead: `chunk_read`).
    hash: bool,
}

impl Lines {
    /// `name` in `dir`; `None` when it does not exist.
    pub(super) fn open(dir: &Path, name: &str) -> Result<Option<Self>, BundleError> {
        let path = dir.join(name);
        match std::fs::File::open(&path) {
            Ok(file) => Ok(Some(Self::from_reader(path, Box::new(file)))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(unreadable(&path, source)),
        }
    }

    /// Lines read from `reader`; `path` names it in errors.
    pub(super) fn from_reader(path: PathBuf, reader: Box<dyn Read + Send>) -> Self {
        Self {
            reader,
            path,
            block: Bytes::new(),
            filled: 0,
            searched: 0,
            ended: false,
            sha: sha2::Sha256::new(),
            lfs: 0,
            number: 0,
            hash: true,
        }
    }

    /// [`Lines::from_reader`] without hashing the content: only its
    /// lines are counted.
    pub(super) fn unhashed(path: PathBuf, reader: Box<dyn Read + Send>) -> Self {
        Self {
            hash: false,
            ..Self::from_reader(path, reader)
        }
    }

    /// Reads up to [`BUFFER`] more bytes (as many as the unfinished line
    /// holds when it is longer: a long line is read in doubling steps)
    /// into a new block that starts with that line; `false` at the end of
    /// the reader.
    fn fill(&mut self) -> Result<bool, BundleError> {
        if self.ended {
            return Ok(false);
        }
        // The bytes are read into the new block's spare room (`read_to_end`
        // needs no zeroed room): the old block stays with the lines handed
        // out of it, and is freed with the last of them.
        let carried = self.filled;
        let wanted = BUFFER.max(carried);
        let mut next = Vec::with_capacity(carried + wanted);
        next.extend_from_slice(&self.block[..carried]);
        let read = (&mut self.reader)
            .take(wanted as u64)
            .read_to_end(&mut next)
            .map_err(|err| unreadable(&self.path, err))?;
        if read < wanted {
            // Short of the limit: the reader said its end.
            self.ended = true;
        }
        if read == 0 {
            return Ok(false);
        }
        if self.hash {
            self.sha.update(&next[carried..]);
        }
        self.filled = next.len();
        self.block = Bytes::from(next);
        Ok(true)
    }

    /// The next line without its LF, and its number (from 1); `None` at
    /// the end. As `lines::split_jsonl`: the last line may lack its LF.
    pub(super) fn next_line(&mut self) -> Result<Option<(usize, Bytes)>, BundleError> {
        loop {
            if let Some(at) = memchr::memchr(b'\n', &self.block[self.searched..self.filled]) {
                let end = self.searched + at;
                let mut line = self.block.split_to(end + 1);
                line.truncate(end);
                self.filled -= end + 1;
                self.searched = 0;
                self.lfs += 1;
                self.number += 1;
                return Ok(Some((self.number, line)));
            }
            self.searched = self.filled;
            if !self.fill()? {
                if self.filled == 0 {
                    return Ok(None);
                }
                let line = self.block.split_to(self.filled);
                (self.filled, self.searched) = (0, 0);
                self.number += 1;
                return Ok(Some((self.number, line)));
            }
        }
    }

    /// Reads what is left and says what the whole file is.
    pub(super) fn finish(mut self) -> Result<Digest, BundleError> {
        loop {
            let rest = &self.block[self.searched..self.filled];
            self.lfs += memchr::memchr_iter(b'\n', rest).count() as u64;
            self.block.truncate(0);
            (self.filled, self.searched) = (0, 0);
            if !self.fill()? {
                break;
            }
        }
        Ok(Digest {
            lines: self.lfs,
            sha256: crate::ledger::entry::hex(&self.sha.finalize()),
        })
    }
}

/// The whole file `name` read to its end; `None` when it does not exist.
pub(super) fn digest_file(dir: &Path, name: &str) -> Result<Option<Digest>, BundleError> {
    Lines::open(dir, name)?.map(Lines::finish).transpose()
}

/// The manifest's `files` against what each file is (`digest`, `None` for
/// a file that does not exist), with the same rules, messages and order as
/// `evidence::check_files`.
pub(super) fn check_listed(
    files: &Value,
    digest: &mut dyn FnMut(&str) -> Result<Option<Digest>, BundleError>,
) -> Result<(), BundleError> {
    let Value::Object(files) = files else {
        return Err(bad("manifest", "files is not an object"));
    };
    for (name, expected) in files {
        if !super::evidence::FILES.contains(&name.as_str()) {
            return Err(bad(
                "manifest",
                format!("files lists an unknown file {name}"),
            ));
        }
        let found = digest(name)?.ok_or_else(|| {
            bad(
                "files",
                format!("{name} is missing (the manifest lists it)"),
            )
        })?;
        if expected["lines"].as_u64() != Some(found.lines) {
            return Err(bad(
                "files",
                format!(
                    "{name} has {} lines, the manifest says {}",
                    found.lines, expected["lines"]
                ),
            ));
        }
        if expected["sha256"].as_str() != Some(found.sha256.as_str()) {
            return Err(bad(
                "files",
                format!("{name}: its SHA-256 is not the manifest's"),
            ));
        }
    }
    for name in super::evidence::FILES {
        if !files.contains_key(*name) && digest(name)?.is_some() {
            return Err(bad(
                "files",
                format!("{name} is present but the manifest does not list it"),
            ));
        }
    }
    Ok(())
}

/// The `seq` member of a line holding a JSON object, found without parsing
/// it: the unsigned integer after the first member name `seq` at the top
/// level. Only pairs lines: whatever it says is checked again against the
/// parsed line, and `None` (no such member found) leaves the line to the
/// parser to refuse.
pub(super) fn peek_seq(line: &[u8]) -> Option<u64> {
    // What the exporter writes: `{"seq":N,...}` (signatures) and
    // `{...,"seq":N}` (payloads, members sorted). Quotes inside strings
    // are escaped, so `"seq":` with bare quotes is a member name, and the
    // first `{` or the last `}` of an object's line is its own.
    if let Some(rest) = line.strip_prefix(br#"{"seq":"#) {
        let (seq, after) = integer(rest)?;
        return matches!(after.first(), Some(b',' | b'}')).then_some(seq);
    }
    if let Some(body) = line.strip_suffix(b"}") {
        let digits = body.iter().rev().take_while(|b| b.is_ascii_digit()).count();
        if body[..body.len() - digits].ends_with(br#","seq":"#) {
            return integer(&body[body.len() - digits..]).map(|(seq, _)| seq);
        }
    }
    scan_seq(line)
}

/// [`peek_seq`] for any layout: tracks strings and nesting.
fn scan_seq(line: &[u8]) -> Option<u64> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'"' => {
                let start = i + 1;
                i = start;
                while i < line.len() && line[i] != b'"' {
                    i += if line[i] == b'\\' { 2 } else { 1 };
                }
                let name = line.get(start..i)?;
                i += 1;
                if depth == 1 && name == b"seq" {
                    let rest = skip_space(line.get(i..)?);
                    let rest = skip_space(rest.strip_prefix(b":")?);
                    return integer(rest).map(|(seq, _)| seq);
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            _ => {}
        }
        i += 1;
    }
    None
}

fn skip_space(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// A JSON integer at the start of `bytes` that fits a u64, and what follows.
fn integer(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || matches!(bytes.get(digits), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    let text = std::str::from_utf8(&bytes[..digits]).ok()?;
    Some((text.parse().ok()?, &bytes[digits..]))
}

#[cfg(test)]
mod tests {
    use super::peek_seq;

    #[test]
    fn the_top_level_seq_is_found_in_any_layout() {
        for (line, seq) in [
            (&br#"{"seq":12,"signature":"x"}"#[..], Some(12)),
            (br#"{"request":"a","seq":7}"#, Some(7)),
            (
                br#"{"a":{"seq":1},"b":"\"seq\":2","seq":3,"z":[{"seq":4}]}"#,
                Some(3),
            ),
            (br#"{ "x" : [1,2] , "seq" : 9 }"#, Some(9)),
            (br#"{"seq":1.5}"#, None),
            (br#"{"seq":"1"}"#, None),
            (br#"{"a":{"seq":1}}"#, None),
            (br#"not json"#, None),
            (br#"{"seq":99999999999999999999999}"#, None),
        ] {
            assert_eq!(peek_seq(line), seq, "{}", String::from_utf8_lossy(line));
        }
    }
}
