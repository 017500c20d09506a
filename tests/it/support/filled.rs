//! A stopped gateway's directory whose ledger holds many decisions (with
//! payloads), written through the library's sequencer: the HTTP path would
//! take far longer for the sizes the offline-command tests need. Its config
//! declares a model whose credential comes from an environment variable
//! that the commands run here never have.

use super::gateway::{TEST_ORIGIN, keygen};
#[path = "../../../benches/common/sample.rs"]
mod sample;

use govgate::decision::{Capture, EntrySignatures, PayloadMode};
use govgate::ledger::checkpoint::NoteSigner;
use govgate::ledger::entry::EntryBody;
use govgate::ledger::metrics::LedgerMetrics;
use govgate::ledger::sequencer::{Ledger, SequencerConfig};
use govgate::ledger::store::{LedgerStore, SledStore};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

/// The variable the config's model credential names; never set here.
pub const CREDENTIAL_VAR: &str = "GOVGATE_TEST_UNSET_UPSTREAM_KEY";

/// The directory: `govgate.toml`, `test.key` and `data/ledger`.
pub struct Filled {
    pub dir: tempfile::TempDir,
    /// The log's verifier key.
    pub vkey: String,
}

impl Filled {
    /// A ledger of `entries` decisions, each with its payload, committed
    /// in batches of up to 1000 (each batch ends with a signed checkpoint).
    pub fn new(entries: usize) -> Filled {
        Self::with_payloads(entries, None)
    }

    /// As [`Filled::new`], with request and response bodies of `body`
    /// bytes each when given (captured whole), instead of the typical
    /// small ones: a bundle far larger than its entry count suggests.
    pub fn with_payloads(entries: usize, body: Option<usize>) -> Filled {
        Self::fill(entries, body, EntrySignatures::Off)
    }

    /// As [`Filled::new`], the log recording `entry_signatures` `on` in its
    /// first entry and every decision signed.
    pub fn signed(entries: usize) -> Filled {
        Self::fill(entries, None, EntrySignatures::On)
    }

    /// As [`Filled::new`], then every decision's payload erased as
    /// retention erases it (a `payload_erased` entry each, appended after
    /// the decisions, then the payload removed): entries `0..entries` are
    /// the decisions, `entries..2 * entries` their erasures.
    pub fn erased(entries: usize) -> Filled {
        Self::fill_then(entries, None, EntrySignatures::Off, true)
    }

    fn fill(entries: usize, body: Option<usize>, signatures: EntrySignatures) -> Filled {
        Self::fill_then(entries, body, signatures, false)
    }

    fn fill_then(
        entries: usize,
        body: Option<usize>,
        signatures: EntrySignatures,
        erase: bool,
    ) -> Filled {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("test.key");
        let vkey = keygen(&key_file, TEST_ORIGIN);
        let pem = std::fs::read_to_string(&key_file).unwrap();
        let key = govgate::config::keyfile::decode_pem(&pem).unwrap();
        std::fs::write(
            dir.path().join("govgate.toml"),
            format!(
                "[server]\npublic_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
                 data_dir = \"data\"\n\
                 [ledger]\norigin = \"{TEST_ORIGIN}\"\nkey_file = \"test.key\"\n\
                 [[models]]\nname = \"scorer\"\nprotocol = \"kserve_v2\"\n\
                 [models.credential]\nenv = \"{CREDENTIAL_VAR}\"\n\
                 [[models.versions]]\nversion = \"1\"\nupstream = \"http://127.0.0.1:9\"\n"
            ),
        )
        .unwrap();
        let store: Arc<dyn LedgerStore> =
            Arc::new(SledStore::open(&dir.path().join("data/ledger")).unwrap());
        let kept = store.clone();
        let setting = govgate::ledger::setting::record_if_changed(store.as_ref(), signatures)
            .unwrap()
            .filter(|_| signatures == EntrySignatures::On);
        let (ledger, writer) = Ledger::open(
            store,
            SequencerConfig {
                origin: TEST_ORIGIN.into(),
                signer: NoteSigner::new(TEST_ORIGIN, key).unwrap(),
                payload_mode: PayloadMode::Full,
                entry_signatures: signatures,
                queue_len: 4096,
                max_batch: 1000,
                metrics: LedgerMetrics::new().unwrap(),
            },
        )
        .unwrap();
        // Shared, so a body costs its bytes once however many entries hold it.
        let bodies = (
            bytes::Bytes::from(vec![b'r'; body.unwrap_or(0)]),
            bytes::Bytes::from(vec![b's'; body.unwrap_or(0)]),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            if let Some(setting) = setting {
                ledger.append(setting).await.unwrap();
            }
            let mut ids = Vec::new();
            let mut left = entries;
            while left > 0 {
                let burst = left.min(1000);
                let appends: Vec<_> = (0..burst)
                    .map(|_| {
                        let mut decision = sample::served_decision("scorer", "1");
                        if let Some(len) = body {
                            decision.request = Capture::of_complete(&bodies.0, len);
                            decision.response = Capture::of_complete(&bodies.1, len);
                        }
                        ids.push(decision.id.to_string());
                        ledger.append(EntryBody::Decision(Box::new(decision)))
                    })
                    .collect();
                for append in appends {
                    append.await.unwrap();
                }
                left -= burst;
            }
            if !erase {
                return;
            }
            for (burst, ids) in ids.chunks(1000).enumerate() {
                let first = (burst * 1000) as u64;
                let appends: Vec<_> = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        ledger.append(EntryBody::PayloadErased {
                            decision_id: id.clone(),
                            erased_seq: first + i as u64,
                            reason: "retention".into(),
                            by: None,
                        })
                    })
                    .collect();
                for append in appends {
                    append.await.unwrap();
                }
                let seqs: Vec<u64> = (first..first + ids.len() as u64).collect();
                kept.erase_payloads(&seqs).unwrap();
            }
        });
        drop(ledger);
        writer.close();
        Filled { dir, vkey }
    }

    /// `govgate.toml`.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("govgate.toml")
    }

    /// The data directory (`server.data_dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `govgate ARGS`, without the model's credential in the environment
    /// nor any progress setting from the caller's.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_govgate"));
        command
            .env_remove(CREDENTIAL_VAR)
            .env_remove("GOVGATE_PROGRESS_EVERY")
            .env_remove("GOVGATE_CONFIG")
            .args(args);
        command
    }

    /// `govgate ARGS --config govgate.toml`, as [`Filled::command`].
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut command = self.command(args);
        command.arg("--config").arg(self.config());
        command
    }

    /// `govgate export --quiet --payloads --out OUT EXTRA...`, which must
    /// succeed; what it said.
    pub fn export(&self, out: &std::path::Path, extra: &[&str]) -> String {
        let out = out.to_str().unwrap();
        let mut args = vec!["export", "--quiet", "--payloads", "--out", out];
        args.extend_from_slice(extra);
        let output = self.cli(&args).output().unwrap();
        let said = super::audit::said(&output);
        assert!(output.status.success(), "export {extra:?}: {said}");
        said
    }
}
