//! A replica's log name: with `[cluster]`, each replica signs its own
//! log under `<ledger.origin>/<replica_id>`, so that the fleet's logs are
//! told apart by name (a checkpoint's first line, its signature's key
//! name) and none looks like a fork of another.
//!
//! A replica whose store already holds a log under the configured
//! `ledger.origin` itself (a gateway that ran alone, or on an earlier
//! version, before it joined the fleet) keeps that name: a log never
//! changes its origin.

use crate::ledger::store::{LedgerStore, StoreError};

/// The origin of `replica_id`'s log: `configured` itself when the store
/// already holds a log under it (`stored`, the latest checkpoint's
/// origin), else `<configured>/<replica_id>`.
pub fn replica_origin(configured: &str, replica_id: &str, stored: Option<&str>) -> String {
    if stored == Some(configured) {
        configured.to_owned()
    } else {
        format!("{configured}/{replica_id}")
    }
}

/// The origin of the store's latest checkpoint (its note's first line);
/// none in an empty store.
pub fn stored_origin(store: &dyn LedgerStore) -> Result<Option<String>, StoreError> {
    Ok(store
        .latest_checkpoint()?
        .and_then(|(_, note)| note.lines().next().map(str::to_owned)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_log_is_named_after_the_replica_and_an_earlier_one_keeps_its_name() {
        assert_eq!(
            replica_origin("gw.example/ledger", "r1", None),
            "gw.example/ledger/r1"
        );
        assert_eq!(
            replica_origin("gw.example/ledger", "r1", Some("gw.example/ledger/r1")),
            "gw.example/ledger/r1"
        );
        assert_eq!(
            replica_origin("gw.example/ledger", "r1", Some("gw.example/ledger")),
            "gw.example/ledger"
        );
        // Another name in the store: the sequencer refuses it, naming both.
        assert_eq!(
            replica_origin("gw.example/ledger", "r1", Some("elsewhere")),
            "gw.example/ledger/r1"
        );
    }
}
