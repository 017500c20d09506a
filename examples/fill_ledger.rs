//! Writes a gateway directory whose ledger holds N decisions with their
//! payloads, quickly, through the real sequencer (signed checkpoints every
//! batch): the input of benches/audit_scale.sh, which measures the offline
//! audit tools on it. Not a way to make a ledger for real use.
//!
//! Run: `cargo run --release --example fill_ledger -- DIR N`
//! DIR (new) gets `govgate.toml`, `govgate.key`, `govgate.vkey` and
//! `data/ledger`.

#[path = "../benches/common/sample.rs"]
mod sample;

use govgate::decision::{EntrySignatures, PayloadMode};
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
        anyhow::bail!("usage: fill_ledger DIR ENTRIES");
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
    while done < entries {
        let segment = (entries - done).min(SEGMENT);
        fill(&dir, &signer, done, segment)?;
        done += segment;
    }
    println!("{}", dir.display());
    Ok(())
}

/// Appends `count` decisions to the ledger in `dir` (holding `before`).
fn fill(dir: &std::path::Path, signer: &NoteSigner, before: u64, count: u64) -> anyhow::Result<()> {
    let store: Arc<dyn LedgerStore> = Arc::new(SledStore::open(&dir.join("data/ledger"))?);
    let (ledger, writer) = Ledger::open(
        store,
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
    runtime.block_on(async {
        // At most two batches waiting: the writer stays busy, memory flat.
        let mut pending = std::collections::VecDeque::with_capacity(2 * BATCH);
        for done in before..before + count {
            if pending.len() == 2 * BATCH
                && let Some(oldest) = pending.pop_front()
            {
                let acked: Result<_, _> = oldest.await;
                acked.map_err(|err| anyhow::anyhow!("append: {err}"))?;
            }
            pending.push_back(ledger.append(EntryBody::Decision(Box::new(
                sample::served_decision("credit-scoring", "2"),
            ))));
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
    Ok(())
}
