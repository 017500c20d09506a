//! What the gateway knows of its witnesses: the latest checkpoint each
//! cosigned (with its cosignature), the size each is known to hold, and
//! the cosigned checkpoint served (the largest checkpoint with at least
//! the threshold of cosignatures). Bounded: one record per configured
//! witness plus one served note. Kept in `data_dir/witnesses/state.json`
//! (written atomically) so a restart serves it again.

use crate::config::WitnessConfig;
use crate::ledger::checkpoint::{Checkpoint, NoteVerifier};
use crate::ledger::cosignature::split_note;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// The latest checkpoint one witness cosigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Its tree size.
    pub(crate) size: u64,
    /// The log-signed checkpoint note, verbatim.
    pub(crate) note: String,
    /// The witness's cosignature line (with its newline).
    pub(crate) line: String,
    /// The cosignature's POSIX time.
    pub(crate) time: u64,
}

/// The file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// The log's origin the records belong to.
    pub(crate) origin: String,
    /// By witness name.
    pub(crate) witnesses: BTreeMap<String, Record>,
    /// The served cosigned checkpoint: the note with its cosignature lines.
    pub(crate) cosigned: Option<String>,
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub(crate) struct StateError {
    path: String,
    reason: String,
}

impl Stored {
    /// Reads the file; a missing file, another origin or records that no
    /// longer verify (a witness's key changed) are dropped with a warning.
    pub(crate) fn load(
        path: &Path,
        origin: &str,
        witnesses: &[WitnessConfig],
        log: &NoteVerifier,
        threshold: usize,
    ) -> Result<Self, StateError> {
        let fresh = Self {
            origin: origin.to_owned(),
            ..Self::default()
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(fresh),
            Err(err) => return Err(state_error(path, err.to_string())),
        };
        let stored: Self =
            serde_json::from_str(&text).map_err(|err| state_error(path, err.to_string()))?;
        if stored.origin != origin {
            tracing::warn!(
                file = %path.display(),
                stored = %stored.origin,
                "the witness records are of another origin; starting without them"
            );
            return Ok(fresh);
        }
        let mut kept = fresh;
        for witness in witnesses {
            let Some(record) = stored.witnesses.get(&witness.name) else {
                continue;
            };
            if record_holds(record, witness, log) {
                kept.witnesses.insert(witness.name.clone(), record.clone());
            } else {
                tracing::warn!(witness = %witness.name, "stored cosignature no longer verifies; dropped");
            }
        }
        kept.cosigned = stored
            .cosigned
            .filter(|note| log.open(note).is_ok() && count_cosigners(note, witnesses) >= threshold);
        Ok(kept)
    }

    /// Writes the file atomically (blocking).
    pub(crate) fn save(&self, path: &Path) -> Result<(), StateError> {
        let fail = |err: std::io::Error| state_error(path, err.to_string());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let temp = path.with_extension("json.tmp");
        let json =
            serde_json::to_vec_pretty(self).map_err(|err| state_error(path, err.to_string()))?;
        let mut file = std::fs::File::create(&temp).map_err(fail)?;
        file.write_all(&json)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(fail)?;
        drop(file);
        std::fs::rename(&temp, path).map_err(fail)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|dir| dir.sync_all())
                .map_err(fail)?;
        }
        Ok(())
    }

    /// Recomputes the served note after `records` changed: the largest
    /// checkpoint that at least `threshold` witnesses' latest records
    /// share, with their lines; the previous one stays when none does.
    pub(crate) fn refresh_cosigned(&mut self, threshold: usize) {
        let mut by_note: BTreeMap<(u64, &str), Vec<&str>> = BTreeMap::new();
        for record in self.witnesses.values() {
            by_note
                .entry((record.size, record.note.as_str()))
                .or_default()
                .push(record.line.as_str());
        }
        let best = by_note
            .into_iter()
            .rev()
            .find(|(_, lines)| lines.len() >= threshold)
            .map(|((_, note), lines)| format!("{note}{}", lines.concat()));
        let previous_size = self.cosigned.as_deref().and_then(note_size);
        if let Some(best) = best
            && previous_size.is_none_or(|size| note_size(&best).is_some_and(|new| new >= size))
        {
            self.cosigned = Some(best);
        }
    }
}

fn state_error(path: &Path, reason: String) -> StateError {
    StateError {
        path: path.display().to_string(),
        reason,
    }
}

/// The cosignature lines `cosigned` adds to `note`, when it is that very
/// note (same checkpoint, same log signature) with lines appended.
pub(crate) fn cosignatures_on<'c>(cosigned: &'c str, note: &str) -> Option<&'c str> {
    cosigned
        .strip_prefix(note)
        .filter(|lines| !lines.is_empty() && note.ends_with('\n'))
}

/// The tree size of a checkpoint note (unverified).
pub(crate) fn note_size(note: &str) -> Option<u64> {
    let (body, _) = split_note(note).ok()?;
    Checkpoint::parse(body).ok().map(|c| c.size)
}

/// Whether `record` is a log-signed checkpoint with `witness`'s valid cosignature.
pub(crate) fn record_holds(record: &Record, witness: &WitnessConfig, log: &NoteVerifier) -> bool {
    let Ok(body) = log.open(&record.note) else {
        return false;
    };
    let sized = Checkpoint::parse(body).is_ok_and(|c| c.size == record.size);
    sized
        && witness
            .key
            .find(body, &[record.line.trim_end_matches('\n')])
            .is_some_and(|(_, time)| time == record.time)
}

/// How many of `witnesses` have a valid cosignature on `note`.
fn count_cosigners(note: &str, witnesses: &[WitnessConfig]) -> usize {
    let Ok((body, lines)) = split_note(note) else {
        return 0;
    };
    witnesses
        .iter()
        .filter(|w| w.key.find(body, &lines).is_some())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(size: u64, note: &str, line: &str) -> Record {
        Record {
            size,
            note: note.to_owned(),
            line: line.to_owned(),
            time: 1,
        }
    }

    fn note(size: u64) -> String {
        format!("o\n{size}\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} o sig\n")
    }

    #[test]
    fn cosignatures_are_found_only_on_the_same_note() {
        let served = format!("{}A5\nB5\n", note(5));
        assert_eq!(cosignatures_on(&served, &note(5)), Some("A5\nB5\n"));
        assert_eq!(cosignatures_on(&served, &note(6)), None);
        assert_eq!(cosignatures_on(&note(5), &note(5)), None);
    }

    #[test]
    fn the_served_note_is_the_largest_shared_by_the_threshold() {
        let mut stored = Stored::default();
        stored
            .witnesses
            .insert("a".into(), record(5, &note(5), "A5\n"));
        stored
            .witnesses
            .insert("b".into(), record(5, &note(5), "B5\n"));
        stored.refresh_cosigned(2);
        assert_eq!(stored.cosigned, Some(format!("{}A5\nB5\n", note(5))));
        // b is behind: with 2 of 2 the size-5 note stays served.
        stored
            .witnesses
            .insert("a".into(), record(7, &note(7), "A7\n"));
        stored.refresh_cosigned(2);
        assert_eq!(stored.cosigned, Some(format!("{}A5\nB5\n", note(5))));
        // With 1 of 2, the larger one is served.
        stored.refresh_cosigned(1);
        assert_eq!(stored.cosigned, Some(format!("{}A7\n", note(7))));
    }
}
