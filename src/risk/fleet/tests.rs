//! The fleet's risk register on two (then three) replicas sharing one
//! control log in memory: the replica started last wins, every replica
//! records each register with its control seq and puts it in force, and a
//! replica starting with the fleet's register appends nothing.

use super::*;
use crate::config::{Direction, Indicator, Risk, RiskKpi, RiskModel};
use crate::decision::EntrySignatures;
use crate::ledger::memstore::MemStore;
use crate::ledger::sequencer::{LedgerWriter, SequencerConfig};
use crate::ledger::store::LedgerStore;
use crate::registry::tests::shared::MemoryLog;
use crate::registry::{ApprovalPolicy, PolicySet, Registry};
use std::collections::HashMap;
use std::time::Duration;

fn register(id: &str, threshold: f64) -> RiskRegister {
    RiskRegister {
        risks: vec![Risk {
            id: id.to_owned(),
            title: "Approval rates differ between sexes".to_owned(),
            owner: "head-of-credit-risk".to_owned(),
            models: vec![RiskModel {
                model: "credit".to_owned(),
                version: Some("v2".to_owned()),
            }],
            controls: vec!["CTRL-7".to_owned()],
            indicators: vec![
                Indicator {
                    kpi: RiskKpi::DemographicParityDifference {
                        attribute: "sex".to_owned(),
                    },
                    threshold,
                    direction: Direction::Above,
                    for_secs: 600,
                    min_count: 500,
                },
                Indicator {
                    kpi: RiskKpi::LatencyP95Ms,
                    threshold: 250.5,
                    direction: Direction::Above,
                    for_secs: 0,
                    min_count: 10,
                },
            ],
        }],
        eval_every: Duration::from_secs(30),
        window: Duration::from_secs(300),
    }
}

struct Replica {
    registry: Arc<RegistryService>,
    registers: Registers,
    store: Arc<MemStore>,
    ledger: Ledger,
    _writer: LedgerWriter,
}

fn empty() -> RiskRegister {
    RiskRegister {
        risks: Vec::new(),
        eval_every: Duration::from_secs(30),
        window: Duration::from_secs(300),
    }
}

/// A replica configured with `configured`, joined to `log` and caught up.
async fn replica(key: u8, log: &Arc<MemoryLog>, configured: &RiskRegister) -> Replica {
    let store = Arc::new(MemStore::new());
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig::for_tests(
            "test.example/fleet-risk",
            &ed25519_dalek::SigningKey::from_bytes(&[key; 32]),
            EntrySignatures::Off,
            64,
            8,
        ),
    )
    .unwrap();
    let sha256 = super::super::register_sha256(configured).unwrap();
    let registers = Registers::new(configured.clone(), sha256, None, ledger.clone());
    let kept = ledger.clone();
    let policy = PolicySet {
        default: ApprovalPolicy::new(1, Vec::<String>::new()),
        high_risk: None,
    };
    let registry = RegistryService::new(
        Registry::new(["credit"]),
        ledger,
        policy,
        HashMap::new(),
        Box::new(|_| {}),
    )
    .with_shared_log(log.clone(), 0)
    .with_domain(registers.domain());
    let registry = Arc::new(registry);
    registry.follow().await.unwrap();
    registers.propose_at_start(&registry).await.unwrap();
    Replica {
        registry,
        registers,
        store,
        ledger: kept,
        _writer: writer,
    }
}

/// The `risk_register_set` entries of `store`: (sha256, control_seq).
fn recorded_of(store: &MemStore) -> Vec<(String, Option<u64>)> {
    (0..store.size().unwrap())
        .map(|seq| -> Value {
            serde_json::from_slice(&store.entry(seq).unwrap().unwrap()).unwrap()
        })
        .filter(|entry| entry["kind"] == REGISTER_SET)
        .map(|entry| {
            (
                entry["sha256"].as_str().unwrap().to_owned(),
                entry[CONTROL_SEQ_MEMBER].as_u64(),
            )
        })
        .collect()
}

#[test]
fn a_recorded_register_reads_back_as_the_same_register() {
    let original = register("credit-bias", 0.1);
    let members = entry_members(&original).unwrap();
    let event = SharedEvent {
        control_seq: 7,
        kind: REGISTER_SET.to_owned(),
        members: members.clone(),
    };
    assert_eq!(shared_register(&event).unwrap(), original);

    // A digest that is not its register's is refused, naming the event.
    let mut altered = members;
    altered.insert("window_secs".into(), 600.into());
    let event = SharedEvent {
        control_seq: 7,
        kind: REGISTER_SET.to_owned(),
        members: altered,
    };
    let refused = shared_register(&event).unwrap_err().to_string();
    assert!(
        refused.starts_with("control event 7: its sha256"),
        "{refused}"
    );
}

#[tokio::test]
async fn the_replica_started_last_wins_and_every_replica_records_and_applies_it() {
    let log = Arc::new(MemoryLog::default());
    let a = register("credit-bias", 0.1);
    let b = register("credit-parity", 0.2);
    let (sha_a, sha_b) = (
        super::super::register_sha256(&a).unwrap(),
        super::super::register_sha256(&b).unwrap(),
    );
    let one = replica(1, &log, &a).await;
    assert_eq!(recorded_of(&one.store), [(sha_a.clone(), Some(1))]);
    assert_eq!(**one.registers.in_force().borrow(), a);

    // Started later with B: it applies A first, then makes B the fleet's.
    let two = replica(2, &log, &b).await;
    assert_eq!(
        recorded_of(&two.store),
        [(sha_a.clone(), Some(1)), (sha_b.clone(), Some(2))]
    );
    assert_eq!(**two.registers.in_force().borrow(), b);
    let mut in_force = one.registers.in_force();
    one.registry.follow().await.unwrap();
    assert!(in_force.has_changed().unwrap());
    assert_eq!(**in_force.borrow_and_update(), b);
    assert_eq!(
        recorded_of(&one.store),
        [(sha_a.clone(), Some(1)), (sha_b.clone(), Some(2))]
    );
    assert_eq!(one.registry.control_seq().await, 2);

    // A third replica with the fleet's register appends nothing.
    let three = replica(3, &log, &b).await;
    assert_eq!(
        recorded_of(&three.store),
        [(sha_a, Some(1)), (sha_b.clone(), Some(2))]
    );
    assert_eq!(three.registry.control_seq().await, 2);
    assert_eq!(two.registry.control_seq().await, 2);
    assert_eq!(**three.registers.in_force().borrow(), b);
}

#[tokio::test]
async fn an_empty_register_is_not_shared_until_the_fleet_has_one() {
    let log = Arc::new(MemoryLog::default());
    let empty = empty();
    let one = replica(1, &log, &empty).await;
    assert_eq!(recorded_of(&one.store), []);
    let two = replica(2, &log, &register("credit-bias", 0.1)).await;
    assert_eq!(recorded_of(&two.store).len(), 1);
    // An empty register after a non-empty one is the fleet's like any other.
    let three = replica(3, &log, &empty).await;
    let sha_empty = super::super::register_sha256(&empty).unwrap();
    assert_eq!(recorded_of(&three.store)[1], (sha_empty, Some(2)));
    one.registry.follow().await.unwrap();
    assert_eq!(**one.registers.in_force().borrow(), empty);
}

#[tokio::test]
async fn a_register_recorded_before_joining_a_fleet_is_not_the_fleets() {
    let log = Arc::new(MemoryLog::default());
    let a = register("credit-bias", 0.1);
    let sha_a = super::super::register_sha256(&a).unwrap();
    // A gateway that ran alone recorded A without control_seq.
    let alone = replica(1, &Arc::new(MemoryLog::default()), &empty()).await;
    let ledger = alone.ledger.clone();
    ledger
        .append(super::super::register_entry(&a).unwrap())
        .await
        .unwrap();
    let recorded = super::super::read_recorded(alone.store.as_ref()).unwrap();
    assert_eq!(recorded.register_sha256.as_deref(), Some(sha_a.as_str()));
    assert_eq!(recorded.fleet_register_sha256, None);

    // Joined to a fleet with A configured, it shares A once.
    let registers = Registers::new(a.clone(), sha_a.clone(), None, ledger.clone());
    let registry = RegistryService::new(
        Registry::new(["credit"]),
        ledger,
        PolicySet {
            default: ApprovalPolicy::new(1, Vec::<String>::new()),
            high_risk: None,
        },
        HashMap::new(),
        Box::new(|_| {}),
    )
    .with_shared_log(log.clone(), 0)
    .with_domain(registers.domain());
    registers.propose_at_start(&registry).await.unwrap();
    assert_eq!(
        recorded_of(&alone.store),
        [(sha_a.clone(), None), (sha_a.clone(), Some(1))]
    );
    let recorded = super::super::read_recorded(alone.store.as_ref()).unwrap();
    assert_eq!(recorded.fleet_register_sha256, Some(sha_a));
}
