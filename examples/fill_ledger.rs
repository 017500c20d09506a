//! Writes a gateway directory whose ledger holds N decisions with their
//! payloads, quickly, through the real sequencer (signed checkpoints every
//! batch): the input of benches/audit_scale.sh, which measures the offline
//! audit tools on it. Not a way to make a ledger for real use.
//!
//! Run: `cargo run --release --example fill_ledger -- DIR N [--erased]`
//! DIR (new) gets `govgate.toml`, `govgate.key`, `govgate.vkey` and
//! `data/ledger`. With `--erased`, every decision's payload is then erased
//! as payload retention erases it: a `payload_erased` entry each (seqs
//! `N..2N`), then the payload removed.

#[path = "../benches/common/sample.rs"]
mod sample;

use govgate::decision::{DecisionId, EntrySignatures, PayloadMode};
use govgate::ledger::checkpoint::NoteSigner;
use govgate::ledger::entry::EntryBody;
use govgate::ledger::metrics::LedgerMetrics;
use govgate::ledger::sequencer::{Ledger, SequencerConfig};
use govgate::ledger::store::{LedgerStore, SledStore};
use std::path::PathBuf;
use std::sync::Arc;

const ORIGIN: &str = "bench.govgate.example/audit-scale";
/// Entries per commit (and per signed checkpoint).
const BATCH: usize = 1024;
/// Entries written per opening of the store.
const SEGMENT: u64 = 50_000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(entries)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: fill_ledger DIR ENTRIES [--erased]");
    };
    let erased = match args.next().as_deref() {
        None => false,
        Some("--erased") => true,
        Some(other) => anyhow::bail!("{other}: usage: fill_ledger DIR ENTRIES [--erased]"),
    };
    let dir = PathBuf::from(dir);
    let entries: u64 = entries.parse()?;
    std::fs::create_dir(&dir)?;
    let key = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let key_file = dir.join("govgate.key");
    std::fs::write(
        &key_file,
        govgate::config::keyfile::encode_pem(&key)?.as_bytes(),
    )?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
    }
    let signer = NoteSigner::new(ORIGIN, key)?;
    std::fs::write(
        dir.join("govgate.vkey"),
        format!("{}\n", signer.verifier().vkey()),
    )?;
    std::fs::write(
        dir.join("govgate.toml"),
        format!(
            "[server]\npublic_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
             data_dir = \"data\"\n\
             [ledger]\norigin = \"{ORIGIN}\"\nkey_file = \"govgate.key\"\n\
             [[models]]\nname = \"credit-scoring\"\nprotocol = \"kserve_v2\"\n\
             [[models.versions]]\nversion = \"2\"\nupstream = \"http://127.0.0.1:9\"\n"
        ),
    )?;
    // sled keeps in memory what it wrote (its page cache evicts next to
    // nothing of a long sequential run): the store is closed and opened
    // again every SEGMENT entries, which gives it all back, so memory stays
    // flat at any size.
    let mut done = 0u64;
    let mut ids = Vec::new();
    while done < entries {
        let segment = (entries - done).min(SEGMENT);
        fill(&dir, &signer, done, segment, Fill::Decisions(&mut ids))?;
        done += segment;
    }
    if erased {
        for (segment, ids) in ids.chunks(SEGMENT as usize).enumerate() {
            let first = segment as u64 * SEGMENT;
            fill(&dir, &signer, first, ids.len() as u64, Fill::Erasures(ids))?;
        }
    }
    println!("{}", dir.display());
    Ok(())
}

/// What [`fill`] appends.
enum Fill<'a> {
    /// Decisions, whose ids are pushed here.
    Decisions(&'a mut Vec<DecisionId>),
    /// The erasures of the decisions with these ids (the first of them at
    /// `first`), whose payloads are then removed.
    Erasures(&'a [DecisionId]),
}

/// Appends `count` entries to the ledger in `dir`: decisions (the ledger
/// holding `first` entries), or the erasures of decisions `first..`.
fn fill(
    dir: &std::path::Path,
    signer: &NoteSigner,
    first: u64,
    count: u64,
    what: Fill<'_>,
) -> anyhow::Result<()> {
    let store: Arc<dyn LedgerStore> = Arc::new(SledStore::open(&dir.join("data/ledger"))?);
    let (ledger, writer) = Ledger::open(
        store.clone(),
        SequencerConfig {
            origin: ORIGIN.into(),
            signer: signer.clone(),
            payload_mode: PayloadMode::Full,
            entry_signatures: EntrySignatures::Off,
            queue_len: 4 * BATCH,
            max_batch: BATCH,
            metrics: LedgerMetrics::new()?,
        },
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let erasing = matches!(what, Fill::Erasures(_));
    runtime.block_on(async {
        // At most two batches waiting: the writer stays busy, memory flat.
        let mut pending = std::collections::VecDeque::with_capacity(2 * BATCH);
        let mut what = what;
        for done in first..first + count {
            if pending.len() == 2 * BATCH
                && let Some(oldest) = pending.pop_front()
            {
                let acked: Result<_, _> = oldest.await;
                acked.map_err(|err| anyhow::anyhow!("append: {err}"))?;
            }
            let body = match &mut what {
                Fill::Decisions(ids) => {
                    let decision = sample::served_decision("credit-scoring", "2");
                    ids.push(decision.id);
                    EntryBody::Decision(Box::new(decision))
                }
                Fill::Erasures(ids) => EntryBody::PayloadErased {
                    decision_id: ids[(done - first) as usize].to_string(),
                    erased_seq: done,
                    reason: "retention".into(),
                    by: None,
                },
            };
            pending.push_back(ledger.append(body));
            if done % 100_000 == 99_999 {
                eprintln!("fill_ledger: {} entries", done + 1);
            }
        }
        for append in pending {
            append
                .await
                .map_err(|err| anyhow::anyhow!("append: {err}"))?;
        }
        anyhow::Ok(())
    })?;
    drop(ledger);
    writer.close();
    if erasing {
        // As the erasure does: the entries first, then the payloads.
        let seqs: Vec<u64> = (first..first + count).collect();
        for seqs in seqs.chunks(10_000) {
            store.erase_payloads(seqs)?;
        }
    }
    Ok(())
}
