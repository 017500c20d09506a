//! The `entry_signatures` setting as the log records it
//! (docs/audit-format.md section 10): an `entry_signatures_set` entry at
//! the start of a log and whenever the setting changes, so a verifier
//! knows which entries must carry a signature of their own.

use super::entry::EntryBody;
use super::export::SIGNATURES_KIND;
use super::store::{LedgerStore, StoreError};
use crate::decision::EntrySignatures;

fn word(setting: EntrySignatures) -> &'static str {
    match setting {
        EntrySignatures::On => "on",
        EntrySignatures::Off => "off",
    }
}

/// The entry to append before anything else when `setting` is not the one
/// the log last recorded (or it recorded none: a new log, or one written
/// before the setting was recorded). The record is a governance entry, so
/// the store's governance index finds the last one without a scan.
pub fn record_if_changed(
    store: &dyn LedgerStore,
    setting: EntrySignatures,
) -> Result<Option<EntryBody>, StoreError> {
    let mut recorded = None;
    for seq in store.governance_seqs()?.into_iter().rev() {
        let Some(bytes) = store.entry(seq)? else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| StoreError::Corrupt(format!("entry {seq} is not JSON")))?;
        if value["kind"] == SIGNATURES_KIND {
            recorded = value["entry_signatures"].as_str().map(str::to_owned);
            break;
        }
    }
    if recorded.as_deref() == Some(word(setting)) {
        return Ok(None);
    }
    let mut members = serde_json::Map::new();
    members.insert("entry_signatures".to_owned(), word(setting).into());
    Ok(Some(EntryBody::Governance {
        kind: SIGNATURES_KIND,
        members,
    }))
}
