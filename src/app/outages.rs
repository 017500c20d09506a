//! Records each time the ledger did not commit as a `ledger_outage`
//! entry, once it commits again: when it stopped, when it resumed and
//! why. The decisions refused meanwhile are in the ledger on their own
//! (those that reached the model are recorded once it resumes); this
//! entry says how long nothing could be recorded, which no decision
//! entry can.
//!
//! The ledger's status keeps the outage until the entry is in
//! (`LedgerStatus::outage_recorded`), so an append that fails is tried
//! again at the next look, and an outage that ends just before a clean
//! stop is recorded by the last look before the ledger closes. An outage
//! a restart interrupts is not recorded (the restart's own entries are).

use crate::ledger::entry::{EntryBody, rfc3339_millis};
use crate::ledger::sequencer::{Ledger, Outage};
use serde_json::{Map, Value, json};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The entry kind.
pub(super) const KIND: &str = "ledger_outage";

/// How often the task looks for an ended outage.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// Runs until `stop`, then looks once more.
pub(super) async fn record_outages(ledger: Ledger, stop: impl Future<Output = ()> + Send) {
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(LOOK_EVERY) => {}
        }
        record_ended(&ledger).await;
    }
    record_ended(&ledger).await;
}

/// Appends the ended outage, if there is one.
async fn record_ended(ledger: &Ledger) {
    let status = ledger.status();
    let Some(outage) = status.ended_outage() else {
        return;
    };
    let body = EntryBody::Governance {
        kind: KIND,
        members: members(&outage),
    };
    match ledger.append(body).await {
        Ok(ack) => {
            status.outage_recorded(&outage);
            tracing::info!(seq = ?ack.seq, "ledger outage recorded");
        }
        Err(err) => {
            tracing::warn!(error = %err, "the ledger outage could not be recorded yet; tried again");
        }
    }
}

/// `since`, `until`, `duration_ms`, `reason`.
fn members(outage: &Outage) -> Map<String, Value> {
    let until = outage.until.unwrap_or(outage.since);
    // Of the times as written (whole milliseconds), so it is their
    // difference exactly.
    let unix_ms = |time: SystemTime| {
        time.duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64)
    };
    let duration_ms = unix_ms(until).saturating_sub(unix_ms(outage.since));
    let mut members = Map::new();
    members.insert("since".to_owned(), json!(rfc3339_millis(outage.since)));
    members.insert("until".to_owned(), json!(rfc3339_millis(until)));
    members.insert("duration_ms".to_owned(), json!(duration_ms));
    members.insert("reason".to_owned(), json!(outage.reason));
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_its_start_end_duration_and_reason() {
        let since = UNIX_EPOCH + Duration::from_millis(1_780_000_000_123);
        let outage = Outage {
            since,
            // Sub-millisecond parts are cut from both times alike.
            until: Some(since + Duration::from_micros(2_500_900)),
            reason: "File too large (os error 27)".to_owned(),
        };
        assert_eq!(
            Value::Object(members(&outage)),
            json!({
                "since": "2026-05-28T20:26:40.123Z",
                "until": "2026-05-28T20:26:42.623Z",
                "duration_ms": 2500,
                "reason": "File too large (os error 27)",
            })
        );
    }
}
