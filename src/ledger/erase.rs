//! Which payload records erasing a decision's payload removes
//! (docs/audit-format.md section 9): the decision's own, and for a
//! streamed decision also its `stream_ended` entry's, which holds the
//! captured answer; and which decisions a selection (ids, caller, time
//! range, data subject) names ([`select`]).
//!
//! The decision index maps ids to decision entries only: a `stream_ended`
//! is found by reading forward from its decision's seq (it always comes
//! later) until the entry naming that seq. Entries of other kinds are
//! skipped on a byte search, without parsing. A stream that never ended
//! (the gateway stopped mid-stream) costs a read to the end of the log.

use super::store::{LedgerStore, StoreError};
use crate::decision::{DecisionId, SubjectHash};
use serde_json::Value;
use std::ops::ControlFlow;

/// The seqs whose payload records belong to one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadSeqs {
    /// The decision's entry.
    pub decision: u64,
    /// Its `stream_ended` entry, when the decision was streamed and its
    /// stream's end is recorded.
    pub stream_end: Option<u64>,
}

/// The payload records of decision `id`; `None` when the log has no such
/// decision. `progress` hears (entries searched, entries to search) during
/// the search for a stream's end, which may read to the end of the log.
pub fn payload_seqs(
    store: &dyn LedgerStore,
    id: &DecisionId,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Option<PayloadSeqs>, StoreError> {
    let Some(decision) = store.decision_seq(id.as_bytes())? else {
        return Ok(None);
    };
    let entry = store
        .entry(decision)?
        .ok_or_else(|| StoreError::Corrupt(format!("entry {decision} missing")))?;
    let streamed =
        serde_json::from_slice::<Value>(&entry).is_ok_and(|entry| entry["outcome"] == "streaming");
    let stream_end = if streamed {
        stream_end_of(store, decision, &id.to_string(), progress)?
    } else {
        None
    };
    Ok(Some(PayloadSeqs {
        decision,
        stream_end,
    }))
}

/// The seq of the `stream_ended` entry naming the decision at
/// `decision_seq` (with id `id`), searched from just after it.
fn stream_end_of(
    store: &dyn LedgerStore,
    decision_seq: u64,
    id: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Option<u64>, StoreError> {
    // Canonical bytes spell the kind exactly so; only these are parsed.
    const MARK: &[u8] = br#""kind":"stream_ended""#;
    let mut found = None;
    let (from, to) = (decision_seq + 1, store.size()?);
    store.entries_in(from, to, &mut |seq, bytes| {
        progress(seq + 1 - from, to - from);
        if !bytes.windows(MARK.len()).any(|w| w == MARK) {
            return ControlFlow::Continue(());
        }
        let names_it = serde_json::from_slice::<Value>(bytes).is_ok_and(|end| {
            end["decision_seq"].as_u64() == Some(decision_seq) && end["decision_id"] == id
        });
        if names_it {
            found = Some(seq);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    Ok(found)
}

/// Which decisions an erasure is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These decisions.
    Decisions(Vec<DecisionId>),
    /// Every decision of this caller (read from the whole log).
    Caller(String),
    /// Every decision received in `from_ms..to_ms` (Unix milliseconds,
    /// `timings.received_unix_ms`; read from the whole log).
    Received {
        /// First millisecond in.
        from_ms: u64,
        /// First millisecond out.
        to_ms: u64,
    },
    /// Every decision whose `subject` member is this hash (from the index).
    Subject(SubjectHash),
}

/// One selected decision that still has payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// The decision.
    pub id: DecisionId,
    /// Its payload records.
    pub seqs: PayloadSeqs,
    /// The seqs among them whose payload is still there, ascending.
    pub present: Vec<u64>,
}

/// What [`select`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Decisions with payloads left, in log order, at most the limit.
    pub decisions: Vec<Selected>,
    /// More decisions with payloads left match beyond the limit.
    pub more: bool,
    /// Decisions that match but have no payload left (erased before, or
    /// recorded without one).
    pub empty: u64,
    /// Ids asked for that are not in the log.
    pub unknown: Vec<DecisionId>,
}

/// The decisions `selection` names that still have payloads, at most
/// `limit` of them. `progress` hears (entries read, entries to read) while
/// a selection reads the log.
pub fn select(
    store: &dyn LedgerStore,
    selection: &Selection,
    limit: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Found, StoreError> {
    let mut found = Found::default();
    let take = |found: &mut Found, id: DecisionId, seqs: PayloadSeqs| {
        let present = present_payloads(store, seqs);
        if present.is_empty() {
            found.empty += 1;
        } else if found.decisions.len() < limit {
            found.decisions.push(Selected { id, seqs, present });
        } else {
            found.more = true;
        }
    };
    match selection {
        Selection::Decisions(ids) => {
            for id in ids {
                match payload_seqs(store, id, &mut |_, _| {})? {
                    Some(seqs) => take(&mut found, *id, seqs),
                    None => found.unknown.push(*id),
                }
                if found.more {
                    break;
                }
            }
        }
        Selection::Subject(subject) => {
            let wanted = subject.to_string();
            for seq in store.subject_seqs(subject.as_bytes())? {
                let entry = store
                    .entry(seq)?
                    .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} missing")))?;
                let Ok(entry) = serde_json::from_slice::<Value>(&entry) else {
                    continue;
                };
                // The index names decisions; the entry has the last word.
                if entry["kind"] != "decision" || entry["subject"] != wanted.as_str() {
                    continue;
                }
                if let Some(seqs) = decision_of(store, seq, &entry, progress)? {
                    take(&mut found, seqs.0, seqs.1);
                }
                if found.more {
                    break;
                }
            }
        }
        Selection::Caller(_) | Selection::Received { .. } => {
            // Canonical bytes spell the kind exactly so; only these are parsed.
            const MARK: &[u8] = br#""kind":"decision""#;
            let size = store.size()?;
            let mut failed = None;
            store.entries_in(0, size, &mut |seq, bytes| {
                if seq % 4096 == 0 {
                    progress(seq, size);
                }
                if !bytes.windows(MARK.len()).any(|w| w == MARK) {
                    return ControlFlow::Continue(());
                }
                let Ok(entry) = serde_json::from_slice::<Value>(bytes) else {
                    return ControlFlow::Continue(());
                };
                let matches = match selection {
                    Selection::Caller(caller) => entry["caller"] == caller.as_str(),
                    Selection::Received { from_ms, to_ms } => entry["timings"]["received_unix_ms"]
                        .as_u64()
                        .is_some_and(|at| (*from_ms..*to_ms).contains(&at)),
                    _ => false,
                };
                if !matches {
                    return ControlFlow::Continue(());
                }
                match decision_of(store, seq, &entry, &mut |_, _| {}) {
                    Ok(Some((id, seqs))) => take(&mut found, id, seqs),
                    Ok(None) => {}
                    Err(err) => {
                        failed = Some(err);
                        return ControlFlow::Break(());
                    }
                }
                if found.more {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
            if let Some(err) = failed {
                return Err(err);
            }
            progress(size, size);
        }
    }
    Ok(found)
}

/// What [`expired`] found for one model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expired {
    /// Decisions with payloads left, in log order, at most the limit.
    pub decisions: Vec<Selected>,
    /// Where the next look starts: every decision of the model before it
    /// was recorded before the cutoff and is taken (or had no payload).
    pub next_seq: u64,
    /// The limit stopped the look before the cutoff.
    pub more: bool,
}

/// Payload retention's look: the decisions of `model` from `from_seq` on
/// whose entry was recorded before `cutoff` (its `time`) and that still
/// have payloads, at most `limit`. Entries are sequenced in time order, so
/// the look ends at the first entry at or after the cutoff, found by
/// binary search; only that model's decisions are parsed.
pub fn expired(
    store: &dyn LedgerStore,
    model: &str,
    from_seq: u64,
    cutoff: super::export::UtcTime,
    limit: usize,
) -> Result<Expired, StoreError> {
    let size = store.size()?;
    let from = from_seq.min(size);
    let end = super::export::select::first_at_or_after(store, cutoff, from, size)?;
    let matcher = super::export::select::ModelMatch::new(model);
    let mut found = Expired {
        next_seq: end,
        ..Expired::default()
    };
    let mut failed = None;
    store.entries_in(from, end, &mut |seq, bytes| {
        if matcher.selects(bytes) != Some(super::export::select::Selected::Decision) {
            return ControlFlow::Continue(());
        }
        let Ok(entry) = serde_json::from_slice::<Value>(bytes) else {
            return ControlFlow::Continue(());
        };
        if found.decisions.len() == limit {
            found.next_seq = seq;
            found.more = true;
            return ControlFlow::Break(());
        }
        match decision_of(store, seq, &entry, &mut |_, _| {}) {
            Ok(Some((id, seqs))) => {
                let present = present_payloads(store, seqs);
                if !present.is_empty() {
                    found.decisions.push(Selected { id, seqs, present });
                }
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(err) => {
                failed = Some(err);
                ControlFlow::Break(())
            }
        }
    })?;
    match failed {
        Some(err) => Err(err),
        None => Ok(found),
    }
}

/// The seqs of `seqs` whose payload record is still there.
fn present_payloads(store: &dyn LedgerStore, seqs: PayloadSeqs) -> Vec<u64> {
    std::iter::once(seqs.decision)
        .chain(seqs.stream_end)
        .filter(|seq| store.payload(*seq).is_ok_and(|payload| payload.is_some()))
        .collect()
}

/// The id and payload records of the decision entry `entry` at `seq`.
fn decision_of(
    store: &dyn LedgerStore,
    seq: u64,
    entry: &Value,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Option<(DecisionId, PayloadSeqs)>, StoreError> {
    let Some(id) = entry["decision_id"].as_str().and_then(DecisionId::parse) else {
        return Ok(None);
    };
    let stream_end = if entry["outcome"] == "streaming" {
        stream_end_of(store, seq, &id.to_string(), progress)?
    } else {
        None
    };
    Ok(Some((
        id,
        PayloadSeqs {
            decision: seq,
            stream_end,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Capture, Decision, EntrySignatures, Outcome, StreamEnd};
    use crate::ledger::entry::EntryBody;
    use crate::ledger::memstore::MemStore;
    use crate::ledger::sequencer::{Ledger, SequencerConfig};
    use ed25519_dalek::SigningKey;
    use std::sync::Arc;

    fn decision(outcome: Outcome) -> Decision {
        Decision {
            outcome,
            ..crate::decision::fixture::streamed_chat()
        }
    }

    fn end_of(decision: &Decision, decision_seq: u64) -> EntryBody {
        EntryBody::StreamEnded(Box::new(StreamEnd {
            decision_id: decision.id,
            decision_seq,
            model: decision.model.clone(),
            version: decision.version.clone(),
            outcome: Outcome::Served,
            error_code: None,
            released_bytes: 3,
            complete_us: 10,
            response: Capture::of_complete(&bytes::Bytes::from_static(b"abc"), 64),
        }))
    }

    #[tokio::test]
    async fn a_streamed_decisions_payloads_include_its_ends() {
        let (served, streamed, unended) = (
            decision(Outcome::Served),
            decision(Outcome::Streaming),
            decision(Outcome::Streaming),
        );
        let store = Arc::new(MemStore::new());
        let (ledger, writer) = Ledger::open(
            store.clone(),
            SequencerConfig::for_tests(
                "test.example/erase",
                &SigningKey::from_bytes(&[4; 32]),
                EntrySignatures::Off,
                64,
                8,
            ),
        )
        .unwrap();
        let other = decision(Outcome::Streaming);
        for body in [
            EntryBody::Decision(Box::new(served.clone())),
            EntryBody::Decision(Box::new(other.clone())),
            EntryBody::Decision(Box::new(streamed.clone())),
            EntryBody::Decision(Box::new(unended.clone())),
            end_of(&other, 1),
            end_of(&streamed, 2),
        ] {
            ledger.append(body).await.unwrap();
        }
        drop(ledger);
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .unwrap();
        let seqs = |decision: &Decision| {
            payload_seqs(store.as_ref(), &decision.id, &mut |_, _| {}).unwrap()
        };
        let plain = |decision, stream_end| {
            Some(PayloadSeqs {
                decision,
                stream_end,
            })
        };
        assert_eq!(seqs(&served), plain(0, None));
        assert_eq!(seqs(&other), plain(1, Some(4)));
        assert_eq!(seqs(&streamed), plain(2, Some(5)));
        assert_eq!(seqs(&unended), plain(3, None));
        assert_eq!(seqs(&decision(Outcome::Served)), None);
    }

    #[tokio::test]
    async fn selections_find_their_decisions_with_payloads_left_up_to_the_limit() {
        let key = crate::decision::SubjectKey::from_bytes([3; 32]);
        let of = |caller: &str, subject: Option<&str>, at_ms: u64, outcome| Decision {
            caller: caller.to_owned(),
            subject: subject.map(|s| key.hash(s)),
            timings: crate::decision::Timings {
                received_unix_ms: at_ms,
                ..Default::default()
            },
            ..decision(outcome)
        };
        let decisions = [
            of("ann", Some("s1"), 1_000, Outcome::Served),
            of("bob", Some("s2"), 2_000, Outcome::Served),
            of("ann", None, 3_000, Outcome::Served),
            of("ann", Some("s1"), 4_000, Outcome::Streaming),
            of("cy", Some("s1"), 5_000, Outcome::Served),
        ];
        let store = Arc::new(MemStore::new());
        let (ledger, writer) = Ledger::open(
            store.clone(),
            SequencerConfig::for_tests(
                "test.example/select",
                &SigningKey::from_bytes(&[4; 32]),
                EntrySignatures::Off,
                64,
                8,
            ),
        )
        .unwrap();
        for decision in &decisions {
            ledger
                .append(EntryBody::Decision(Box::new(decision.clone())))
                .await
                .unwrap();
        }
        ledger.append(end_of(&decisions[3], 3)).await.unwrap();
        drop(ledger);
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .unwrap();
        let ids = |found: &Found| found.decisions.iter().map(|s| s.id).collect::<Vec<_>>();
        let find = |selection: &Selection, limit| {
            select(store.as_ref(), selection, limit, &mut |_, _| {}).unwrap()
        };
        let by_s1 = find(&Selection::Subject(key.hash("s1")), 10);
        assert_eq!(
            ids(&by_s1),
            [decisions[0].id, decisions[3].id, decisions[4].id]
        );
        assert_eq!(by_s1.decisions[1].present, [3, 5], "the stream's end too");
        let by_ann = find(&Selection::Caller("ann".to_owned()), 10);
        assert_eq!(
            ids(&by_ann),
            [decisions[0].id, decisions[2].id, decisions[3].id]
        );
        let by_time = find(
            &Selection::Received {
                from_ms: 2_000,
                to_ms: 4_000,
            },
            10,
        );
        assert_eq!(ids(&by_time), [decisions[1].id, decisions[2].id]);
        // The limit: the first ones, and word of more.
        let limited = find(&Selection::Subject(key.hash("s1")), 2);
        assert_eq!(ids(&limited), [decisions[0].id, decisions[3].id]);
        assert!(limited.more);
        // Erased decisions are no longer selected, only counted: the next
        // call gets the next ones.
        store.erase_payloads(&[0, 3, 5]).unwrap();
        let next = find(&Selection::Subject(key.hash("s1")), 2);
        assert_eq!(ids(&next), [decisions[4].id]);
        assert_eq!((next.more, next.empty), (false, 2));
        let unknown = decision(Outcome::Served).id;
        let by_id = find(&Selection::Decisions(vec![decisions[1].id, unknown]), 10);
        assert_eq!(ids(&by_id), [decisions[1].id]);
        assert_eq!(by_id.unknown, [unknown]);
        // A store without an index finds the same by reading the log.
        assert_eq!(
            crate::ledger::store::scan_subject_seqs(store.as_ref(), key.hash("s1").as_bytes())
                .unwrap(),
            store.subject_seqs(key.hash("s1").as_bytes()).unwrap()
        );
    }

    /// Retention's look: one model's decisions recorded before the
    /// cutoff, with a streamed one's end, up to the limit, and where the
    /// next look starts.
    #[tokio::test]
    async fn expired_finds_one_models_decisions_recorded_before_the_cutoff() {
        let store = Arc::new(MemStore::new());
        let (ledger, writer) = Ledger::open(
            store.clone(),
            SequencerConfig::for_tests(
                "test.example/retention",
                &SigningKey::from_bytes(&[4; 32]),
                EntrySignatures::Off,
                64,
                8,
            ),
        )
        .unwrap();
        let other = Decision {
            model: Some("other".into()),
            ..decision(Outcome::Served)
        };
        let (old, streamed, new) = (
            decision(Outcome::Served),
            decision(Outcome::Streaming),
            decision(Outcome::Served),
        );
        for body in [
            EntryBody::Decision(Box::new(old.clone())),
            EntryBody::Decision(Box::new(other.clone())),
            EntryBody::Decision(Box::new(streamed.clone())),
            end_of(&streamed, 2),
        ] {
            ledger.append(body).await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let cutoff = crate::ledger::export::UtcTime::from_unix_ms(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        ledger
            .append(EntryBody::Decision(Box::new(new.clone())))
            .await
            .unwrap();
        drop(ledger);
        tokio::task::spawn_blocking(move || writer.close())
            .await
            .unwrap();
        let look = |from, limit| expired(store.as_ref(), "chat", from, cutoff, limit).unwrap();
        let ids = |found: &Expired| found.decisions.iter().map(|s| s.id).collect::<Vec<_>>();

        let all = look(0, 10);
        assert_eq!(
            ids(&all),
            [old.id, streamed.id],
            "not `other`'s, not the new one"
        );
        assert_eq!(all.decisions[1].present, [2, 3], "the stream's end too");
        assert_eq!((all.next_seq, all.more), (4, false));
        let first = look(0, 1);
        assert_eq!(ids(&first), [old.id]);
        assert_eq!((first.next_seq, first.more), (2, true));
        assert_eq!(ids(&look(first.next_seq, 1)), [streamed.id]);
        // Erased payloads are not found again.
        store.erase_payloads(&[0]).unwrap();
        assert_eq!(ids(&look(0, 10)), [streamed.id]);
        assert_eq!(
            look(4, 10),
            Expired {
                next_seq: 4,
                ..Expired::default()
            }
        );
    }
}
