//! `GET /ledger/keys`: every key the log has been signed with and the
//! seqs each signed, from the `key_rotated` entries (docs/audit-format.md
//! section 11). The entries are scanned once and then only the new ones,
//! off the async workers.

use super::{LedgerReader, error, store_failure};
use crate::ledger::entry::key_rotation;
use crate::ledger::store::StoreError;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use std::ops::ControlFlow;
use std::sync::Mutex;

/// A `key_rotated` entry: its seq, `old_vkey` and `new_vkey`.
#[derive(Clone)]
struct Rotation {
    seq: u64,
    old: String,
    new: String,
}

/// How far the scan has read, and the rotations found there.
#[derive(Default)]
struct Scanned {
    size: u64,
    rotations: Vec<Rotation>,
}

/// The rotations found so far and how far the scan has read.
#[derive(Default)]
pub(super) struct KeyCache {
    scanned: Mutex<Scanned>,
}

impl KeyCache {
    /// Scans the entries written since the last call; returns the log's
    /// size and every rotation `(seq, old_vkey, new_vkey)`. Blocking.
    fn rotations(&self, reader: &LedgerReader) -> Result<Scanned, StoreError> {
        // A poisoned lock only means a scan panicked midway: what it held
        // is still a prefix of the truth, so the scan resumes from it.
        let mut guard = self
            .scanned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let size = reader
            .store
            .latest_checkpoint()?
            .map_or(0, |(size, _)| size);
        let scanned = &mut *guard;
        if scanned.size < size {
            let rotations = &mut scanned.rotations;
            reader
                .store
                .entries_in(scanned.size, size, &mut |seq, entry| {
                    const MARK: &[u8] = br#""kind":"key_rotated""#;
                    if entry.windows(MARK.len()).any(|w| w == MARK)
                        && let Some((old, new)) = key_rotation(entry)
                    {
                        rotations.push(Rotation { seq, old, new });
                    }
                    ControlFlow::Continue(())
                })?;
            scanned.size = size;
        }
        Ok(Scanned {
            size,
            rotations: scanned.rotations.clone(),
        })
    }
}

/// The keys as JSON: each with the first and last seq it signed (its
/// rotation entry is the old key's last), the current one last.
fn keys_json(current: &str, origin: &str, size: u64, rotations: &[Rotation]) -> serde_json::Value {
    let mut keys = Vec::new();
    let mut first_seq = 0;
    let mut vkey = rotations
        .first()
        .map_or(current.to_owned(), |r| r.old.clone());
    for Rotation { seq, new, .. } in rotations {
        keys.push(serde_json::json!({
            "vkey": vkey, "first_seq": first_seq, "last_seq": seq, "rotated_at": seq,
        }));
        vkey = new.clone();
        first_seq = seq + 1;
    }
    let last_seq = (size > first_seq).then(|| size - 1);
    keys.push(serde_json::json!({
        "vkey": vkey, "first_seq": first_seq, "last_seq": last_seq, "rotated_at": null,
    }));
    serde_json::json!({ "origin": origin, "size": size, "keys": keys })
}

/// `GET /ledger/keys`.
pub(super) async fn list(State(reader): State<LedgerReader>) -> Response {
    let scan = reader.clone();
    // Blocking store reads: a first call on a long log reads every entry.
    let found = tokio::task::spawn_blocking(move || scan.keys.rotations(&scan)).await;
    match found {
        Ok(Ok(Scanned { size, rotations })) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            keys_json(
                &(reader.key)().vkey(),
                (reader.key)().name(),
                size,
                &rotations,
            )
            .to_string(),
        )
            .into_response(),
        Ok(Err(err)) => store_failure(err),
        Err(join) => {
            tracing::error!(error = %join, "the key scan failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the key scan failed",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_key_signs_up_to_and_including_its_rotation() {
        let rotations = vec![super::Rotation {
            seq: 3,
            old: "k1".to_owned(),
            new: "k2".to_owned(),
        }];
        let json = super::keys_json("k2", "o", 6, &rotations);
        assert_eq!(
            json["keys"],
            serde_json::json!([
                {"vkey": "k1", "first_seq": 0, "last_seq": 3, "rotated_at": 3},
                {"vkey": "k2", "first_seq": 4, "last_seq": 5, "rotated_at": null},
            ])
        );
        let never = super::keys_json("k1", "o", 0, &[]);
        assert_eq!(never["keys"][0]["last_seq"], serde_json::Value::Null);
    }
}
