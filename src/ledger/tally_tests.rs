//! The tally: minutes roll over, other model names share one row, the
//! ring stays bounded, and priming counts what the ledger holds (capped).

use super::*;
use crate::decision::{Decision, EntrySignatures, PayloadMode, fixture};
use crate::ledger::checkpoint::NoteSigner;
use crate::ledger::entry::EntryBody;
use crate::ledger::memstore::MemStore;
use crate::ledger::metrics::LedgerMetrics;
use crate::ledger::sequencer::{Ledger, SequencerConfig};
use std::sync::Arc;
use std::time::Duration;

/// 2026-12-07T00:00:00Z.
const T0: u64 = 1_796_601_600;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn tally() -> OutcomeTally {
    OutcomeTally::new(["chat".to_owned(), "scorer".to_owned()], at(T0))
}

fn add(tally: &OutcomeTally, now: u64, when: u64, model: &str, outcome: Outcome) {
    let key = tally.key(Some(model), outcome);
    let mut inner = tally.lock();
    tally.add_at(&mut inner, now, when, key);
}

#[test]
fn the_hour_and_the_day_count_to_the_minute_and_old_minutes_roll_over() {
    let tally = tally();
    let now = T0 + 2 * 86_400;
    add(&tally, now, now - 10, "chat", Outcome::Served);
    add(&tally, now, now - 10, "chat", Outcome::Served);
    add(&tally, now, now - 3 * 3600, "chat", Outcome::Denied);
    add(&tally, now, now - 3 * 3600, "scorer", Outcome::Held);
    // Older than the day, and from the future: not counted.
    add(&tally, now, now - 86_400 - 60, "chat", Outcome::Error);
    add(&tally, now, now + 120, "chat", Outcome::Error);
    let summary = tally.summary(at(now));
    assert_eq!(summary["hour"]["total"], 2);
    assert_eq!(summary["hour"]["outcomes"]["served"], 2);
    assert_eq!(summary["hour"]["outcomes"]["denied"], 0);
    assert_eq!(summary["day"]["total"], 4);
    assert_eq!(summary["day"]["outcomes"]["denied"], 1);
    assert_eq!(summary["day"]["models"]["scorer"]["held"], 1);
    assert_eq!(summary["day"]["outcomes"]["error"], 0);

    // A day later the same slots hold new minutes: the old counts are gone.
    let later = now + 86_400;
    add(&tally, later, later - 10, "chat", Outcome::Blocked);
    let summary = tally.summary(at(later));
    assert_eq!(summary["day"]["total"], 1, "{summary}");
    assert_eq!(summary["day"]["outcomes"]["blocked"], 1);
    // An entry for a minute whose slot a newer minute holds is dropped.
    add(&tally, later, now - 10, "chat", Outcome::Served);
    assert_eq!(tally.summary(at(later))["day"]["total"], 1);
    // And an hour on, the hour is empty while the day still counts.
    let summary = tally.summary(at(later + 3600));
    assert_eq!(
        (
            summary["hour"]["total"].clone(),
            summary["day"]["total"].clone()
        ),
        (json!(0), json!(1))
    );
}

#[test]
fn other_model_names_share_one_row_and_the_ring_stays_a_day() {
    let tally = tally();
    let now = T0 + 86_400;
    for minute in 0..5 * MINUTES {
        let name = format!("caller-chosen-{minute}");
        add(
            &tally,
            now,
            now - (minute % MINUTES) * 60,
            &name,
            Outcome::Error,
        );
    }
    assert_eq!(tally.lock().ring.len() as u64, MINUTES);
    assert!(tally.lock().ring.iter().all(|slot| slot.rows.len() == 3));
    let summary = tally.summary(at(now));
    assert_eq!(summary["day"]["total"], 5 * MINUTES);
    assert_eq!(summary["day"]["other_models"]["error"], 5 * MINUTES);
    assert_eq!(summary["day"]["models"]["chat"]["error"], 0);
    assert_eq!(
        summary["day"]["models"].as_object().unwrap().len(),
        2,
        "{summary}"
    );
    assert_eq!(summary["hour"]["total"], 5 * 60);
}

fn decision(model: &str, outcome: Outcome) -> EntryBody {
    EntryBody::Decision(Box::new(Decision {
        model: Some(model.into()),
        outcome,
        ..fixture::streamed_chat()
    }))
}

/// A ledger over a memory store holding one gateway_started, then `bodies`.
async fn filled(bodies: Vec<EntryBody>) -> Arc<MemStore> {
    let store = Arc::new(MemStore::new());
    let origin = "test.example/tally";
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig {
            origin: origin.into(),
            signer: NoteSigner::new(origin, ed25519_dalek::SigningKey::from_bytes(&[7; 32]))
                .unwrap(),
            payload_mode: PayloadMode::Digest,
            entry_signatures: EntrySignatures::Off,
            queue_len: 64,
            max_batch: 8,
            metrics: LedgerMetrics::new().unwrap(),
        },
    )
    .unwrap();
    ledger
        .append(EntryBody::GatewayStarted {
            version: "test".into(),
        })
        .await
        .unwrap();
    for body in bodies {
        ledger.append(body).await.unwrap();
    }
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn priming_counts_the_ledgers_day_and_says_from_when_when_capped() {
    let store = filled(vec![
        decision("chat", Outcome::Served),
        decision("chat", Outcome::Served),
        decision("scorer", Outcome::Denied),
        decision("somewhere-else", Outcome::Held),
    ])
    .await;
    let end = store.size().unwrap();
    assert_eq!(end, 5);
    let now = SystemTime::now() + Duration::from_secs(1);
    let stop = AtomicBool::new(false);

    let whole = tally();
    prime(&whole, store.as_ref(), end, now, PRIME_CAP, &stop).unwrap();
    let summary = whole.summary(now);
    assert_eq!(summary["day"]["total"], 4, "{summary}");
    assert_eq!(summary["hour"]["outcomes"]["served"], 2);
    assert_eq!(summary["hour"]["models"]["scorer"]["denied"], 1);
    assert_eq!(summary["hour"]["other_models"]["held"], 1);
    assert_eq!(summary["priming"], false);
    // The ledger began within the day: counted since its first entry.
    let first = serde_json::from_slice::<Value>(&store.entry(0).unwrap().unwrap()).unwrap();
    assert_eq!(summary["counted_since"], first["time"]);

    // Capped at the newest 2 entries: those are counted, and from when.
    let capped = tally();
    assert_eq!(capped.coverage(), Coverage::Priming);
    prime(&capped, store.as_ref(), end, now, 2, &stop).unwrap();
    let summary = capped.summary(now);
    assert_eq!(summary["day"]["total"], 2, "{summary}");
    assert_eq!(summary["day"]["outcomes"]["denied"], 1);
    let third = serde_json::from_slice::<Value>(&store.entry(3).unwrap().unwrap()).unwrap();
    assert_eq!(summary["counted_since"], third["time"]);

    // Entries from `end` on are the writer's: priming leaves them.
    let before = tally();
    prime(&before, store.as_ref(), 3, now, PRIME_CAP, &stop).unwrap();
    assert_eq!(before.summary(now)["day"]["total"], 2);

    // Told to stop: nothing read, still priming.
    let stopped = tally();
    prime(
        &stopped,
        store.as_ref(),
        end,
        now,
        PRIME_CAP,
        &AtomicBool::new(true),
    )
    .unwrap();
    assert_eq!(stopped.summary(now)["day"]["total"], 0);
    assert_eq!(stopped.summary(now)["priming"], true);

    // An empty ledger: counted from when the tally started.
    let empty = Arc::new(MemStore::new());
    let fresh = tally();
    prime(&fresh, empty.as_ref(), 0, now, PRIME_CAP, &stop).unwrap();
    assert_eq!(fresh.coverage(), Coverage::Since { unix_ms: T0 * 1000 });

    // A day later, nothing of it is in the day.
    let later = tally();
    let tomorrow = now + Duration::from_secs(86_400);
    prime(&later, store.as_ref(), end, tomorrow, PRIME_CAP, &stop).unwrap();
    assert_eq!(later.summary(tomorrow)["day"]["total"], 0);
    assert_eq!(later.summary(tomorrow)["counted_since"], Value::Null);
}

#[tokio::test]
async fn the_writer_counts_committed_decisions() {
    let store = Arc::new(MemStore::new());
    let tally = Arc::new(tally());
    let origin = "test.example/tally";
    let (ledger, writer) = Ledger::open(
        store,
        SequencerConfig {
            origin: origin.into(),
            signer: NoteSigner::new(origin, ed25519_dalek::SigningKey::from_bytes(&[7; 32]))
                .unwrap(),
            payload_mode: PayloadMode::Digest,
            entry_signatures: EntrySignatures::Off,
            queue_len: 64,
            max_batch: 8,
            metrics: LedgerMetrics::new().unwrap().with_tally(tally.clone()),
        },
    )
    .unwrap();
    ledger
        .append(decision("chat", Outcome::Held))
        .await
        .unwrap();
    ledger.append(EntryBody::GatewayStopped).await.unwrap();
    ledger
        .append(decision("scorer", Outcome::Error))
        .await
        .unwrap();
    drop(ledger);
    tokio::task::spawn_blocking(move || writer.close())
        .await
        .unwrap();
    let summary = tally.summary(SystemTime::now());
    assert_eq!(summary["hour"]["total"], 2, "{summary}");
    assert_eq!(summary["hour"]["models"]["chat"]["held"], 1);
    assert_eq!(summary["hour"]["models"]["scorer"]["error"], 1);
}
