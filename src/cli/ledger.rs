//! The offline ledger commands: `verify` (a store or a bundle), `export`,
//! `proof`, `erase`, `rotate-key`.
//! They open a stopped gateway's store (a running gateway holds its lock).

use super::{print_out, runtime};
use crate::config::OfflineConfig;
use crate::ledger::checkpoint::NoteVerifier;
use crate::ledger::store::SledStore;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;

/// Where an offline command reads the ledger, and the key it checks it with.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source<'a> {
    /// The configuration file's data directory and ledger key (its upstream
    /// credentials are not needed and not resolved).
    Config(&'a Path),
    /// A data directory and the log's current verifier key (text or @FILE):
    /// no configuration at all.
    Dir {
        /// The gateway's `server.data_dir`.
        data_dir: &'a Path,
        /// The log's current verifier key.
        vkey: &'a str,
    },
}

impl Source<'_> {
    /// Opens the ledger in a stopped gateway's store, and its verifier
    /// (see [`open_ledger`]).
    pub(super) fn open(
        self,
        tail: crate::ledger::wal::Tail,
    ) -> anyhow::Result<(SledStore, NoteVerifier)> {
        match self {
            Source::Config(path) => {
                let mut config = super::load_offline_config(path)?;
                let whence = format!("server.data_dir of {}", config.source);
                let store = open_ledger(&config.data_dir, &whence, tail)?;
                settle_origin(&mut config, &store)?;
                let verifier = NoteVerifier::new(
                    &config.ledger.origin,
                    config.ledger.signing_key.verifying_key(),
                )
                .map_err(|err| anyhow::anyhow!("ledger.origin: {err}"))?;
                Ok((store, verifier))
            }
            Source::Dir { data_dir, vkey } => {
                let verifier = read_vkey(vkey).map_err(|err| super::usage(format!("{err:#}")))?;
                let store = open_ledger(data_dir, "--data-dir", tail)?;
                Ok((store, verifier))
            }
        }
    }
}

/// With `[cluster]`, names the ledger as the running replica does
/// (`cluster::origin`): `<ledger.origin>/<replica_id>`, or `ledger.origin`
/// itself when the store's log has that name.
pub(super) fn settle_origin(
    config: &mut OfflineConfig,
    store: &dyn crate::ledger::store::LedgerStore,
) -> anyhow::Result<()> {
    if let Some(replica_id) = &config.replica_id {
        let stored = crate::cluster::origin::stored_origin(store)?;
        config.ledger.origin = crate::cluster::origin::replica_origin(
            &config.ledger.origin,
            replica_id,
            stored.as_deref(),
        );
    }
    Ok(())
}

/// The page cache of a store opened by an offline command: these read the
/// log once from start to end, so a cache saves them little, and at 10 M
/// entries the gateway's 64 MB put `govgate verify` over 256 MB resident.
const OFFLINE_CACHE_BYTES: u64 = 16 << 20;

/// Opens a stopped gateway's ledger store in `data_dir` (named by `whence`
/// in errors). The store is first brought up to the write-ahead file;
/// `tail` says whether a torn final record is cut and the file's segments
/// deleted then (a command that appends) or the file left exactly as it is
/// (one that only reads).
pub(super) fn open_ledger(
    data_dir: &Path,
    whence: &str,
    tail: crate::ledger::wal::Tail,
) -> anyhow::Result<SledStore> {
    let dir = data_dir.join("ledger");
    // Opening creates a store where there is none: an offline command
    // would then report on an empty ledger instead of a wrong directory.
    if !dir.is_dir() {
        return Err(super::usage(format!(
            "no ledger in {}: {} (`{}`) is not the data directory of a gateway that has run",
            dir.display(),
            whence,
            data_dir.display()
        )));
    }
    let store = SledStore::open_with_cache(&dir, OFFLINE_CACHE_BYTES).map_err(|err| match err {
        // Says all there is to say in one sentence.
        locked @ crate::ledger::store::StoreError::Locked { .. } => anyhow::Error::new(locked),
        other => anyhow::Error::new(other)
            .context(format!("cannot open the ledger in {}", dir.display())),
    })?;
    // Entries acknowledged but not yet in the store are in the write-ahead
    // file: bring the store up to it first.
    let replayed = crate::ledger::wal::replay(&crate::ledger::wal::dir_of(&dir), &store, tail)
        .with_context(|| format!("cannot replay the write-ahead file of {}", dir.display()))?;
    if let Some(torn) = replayed.torn {
        eprintln!(
            "govgate: notice: {} ends in a torn record at byte {} ({} bytes: {}), a write \
             interrupted by a crash and never acknowledged; {}",
            torn.path.display(),
            torn.offset,
            torn.bytes,
            torn.reason,
            if torn.cut {
                "cut"
            } else {
                "left in place (the gateway cuts it when it starts)"
            }
        );
    }
    Ok(store)
}

/// Appends one entry to a stopped gateway's ledger, under its configured key.
pub(super) fn append_offline(
    config: &OfflineConfig,
    store: std::sync::Arc<crate::ledger::store::SledStore>,
    body: crate::ledger::entry::EntryBody,
) -> anyhow::Result<Option<u64>> {
    use crate::ledger::sequencer::{Ledger, SequencerConfig};
    let store_ref = store.clone();
    let (ledger, writer) = Ledger::open(
        store,
        SequencerConfig {
            origin: config.ledger.origin.clone(),
            signer: crate::ledger::checkpoint::NoteSigner::new(
                &config.ledger.origin,
                config.ledger.signing_key.clone(),
            )
            .map_err(|err| anyhow::anyhow!("ledger.origin: {err}"))?,
            payload_mode: config.ledger.payload_mode,
            entry_signatures: config.ledger.entry_signatures,
            queue_len: 1,
            max_batch: 1,
            metrics: crate::ledger::metrics::LedgerMetrics::new()?,
        },
    )?;
    // An offline command may run with a changed setting: recorded first.
    let setting = crate::ledger::setting::record_if_changed(
        store_ref.as_ref(),
        config.ledger.entry_signatures,
    )?;
    let appended = runtime(None)?.block_on(async {
        if let Some(setting) = setting {
            ledger.append(setting).await?;
        }
        ledger.append(body).await
    });
    drop(ledger);
    writer.close();
    Ok(appended.map_err(|err| anyhow::anyhow!("{err}"))?.seq)
}

pub(super) fn rotate_key(path: &std::path::Path, new_key: &std::path::Path) -> anyhow::Result<()> {
    let mut config = super::load_offline_config(path)?;
    let pem = std::fs::read_to_string(new_key)
        .with_context(|| format!("reading {}", new_key.display()))?;
    let new = crate::config::keyfile::decode_pem(&pem).map_err(|_| {
        anyhow::anyhow!(
            "{} is not a PKCS#8 PEM Ed25519 private key",
            new_key.display()
        )
    })?;
    let whence = format!("server.data_dir of {}", config.source);
    let store = open_ledger(&config.data_dir, &whence, crate::ledger::wal::Tail::Cut)?;
    settle_origin(&mut config, &store)?;
    let origin = &config.ledger.origin;
    let old_vkey = NoteVerifier::new(origin, config.ledger.signing_key.verifying_key())
        .map_err(|err| anyhow::anyhow!("{err}"))?
        .vkey();
    let new_vkey = NoteVerifier::new(origin, new.verifying_key())
        .map_err(|err| anyhow::anyhow!("{err}"))?
        .vkey();
    anyhow::ensure!(old_vkey != new_vkey, "the new key is the current key");
    let seq = append_offline(
        &config,
        std::sync::Arc::new(store),
        crate::ledger::entry::EntryBody::KeyRotated {
            old_vkey,
            new_vkey: new_vkey.clone(),
            by: None,
        },
    )?;
    print_out(&format!(
        "key rotation recorded at seq {} under the current key.\n\
         Now set ledger.key_file to {} and start the gateway; the new verifier key is:\n{new_vkey}\n",
        seq.map_or("?".to_owned(), |s| s.to_string()),
        new_key.display()
    ));
    Ok(())
}

pub(super) fn erase(path: &Path, asked: &super::erase::Asked, quiet: bool) -> anyhow::Result<()> {
    use crate::ledger::entry::EntryBody;
    use crate::ledger::store::LedgerStore;
    let mut config = super::load_offline_config(path)?;
    let selection = super::erase::offline_selection(asked, &config)?;
    let whence = format!("server.data_dir of {}", config.source);
    let tail = if asked.dry_run {
        crate::ledger::wal::Tail::Keep
    } else {
        crate::ledger::wal::Tail::Cut
    };
    let store = open_ledger(&config.data_dir, &whence, tail)?;
    settle_origin(&mut config, &store)?;
    let store = std::sync::Arc::new(store);
    let mut progress = super::progress::Progress::new("searching the ledger", quiet)?;
    // Offline there is no request to keep short: every selected decision.
    let found = crate::ledger::erase::select(
        store.as_ref(),
        &selection,
        usize::MAX,
        &mut |done, total| progress.update(done, total),
    );
    progress.finish();
    let found = found?;
    let mut out = String::new();
    for unknown in &found.unknown {
        out.push_str(&format!("no decision {unknown} in this ledger\n"));
    }
    if found.decisions.is_empty() && found.unknown.is_empty() {
        out.push_str(&format!(
            "no payload to erase ({} selected decision(s) have none left)\n",
            found.empty
        ));
    }
    for selected in &found.decisions {
        let id = selected.id.to_string();
        if asked.dry_run {
            out.push_str(&format!(
                "would erase decision {id}: payload seqs {:?}\n",
                selected.present
            ));
            continue;
        }
        // A streamed decision's answer is in its stream_ended's payload: both
        // go, each erasure logged by its own entry naming the seq it empties.
        let mut said = Vec::new();
        for seq in &selected.present {
            let what = if *seq == selected.seqs.decision {
                "payload"
            } else {
                "stream_ended payload"
            };
            // The erasure is logged first: a crash before the payload is gone
            // leaves an entry saying so, and erasing again finishes the job.
            let entry_seq = append_offline(
                &config,
                store.clone(),
                EntryBody::PayloadErased {
                    decision_id: id.clone(),
                    erased_seq: *seq,
                    reason: asked.reason.clone(),
                    by: None,
                },
            )
            .context("recording the erasure")?;
            let erased = store.erase_payloads(&[*seq])?.contains(&true);
            said.push(format!(
                "{what} {} (seq {seq}), erasure recorded at seq {}",
                if erased { "erased" } else { "was already gone" },
                entry_seq.map_or("?".to_owned(), |s| s.to_string())
            ));
        }
        out.push_str(&format!("decision {id}: {}\n", said.join("; ")));
    }
    print_out(&out);
    if found.decisions.is_empty() && !found.unknown.is_empty() {
        anyhow::bail!("no decision of --decision is in this ledger");
    }
    Ok(())
}

pub(super) fn proof(
    source: Source<'_>,
    decision: Option<&str>,
    sizes: Option<(u64, u64)>,
) -> anyhow::Result<()> {
    use crate::ledger::store::{LedgerStore, StoreNodes};
    use base64::Engine;
    let (store, verifier) = source.open(crate::ledger::wal::Tail::Keep)?;
    match (decision, sizes) {
        (Some(decision), _) => {
            let id = crate::decision::DecisionId::parse(decision)
                .ok_or_else(|| super::usage("--decision: a decision id is 32 hex digits"))?;
            let store: std::sync::Arc<dyn LedgerStore> = std::sync::Arc::new(store);
            let reader = crate::ledger::reader::LedgerReader::new(store, verifier);
            let receipt = reader
                .receipt(&id)?
                .with_context(|| format!("no decision {decision} in this ledger"))?;
            print_out(&receipt.proof.to_text());
        }
        (None, Some((old, new))) => {
            let size = store.size()?;
            if new > size {
                return Err(super::usage(format!(
                    "--new {new}: the log has only {size} entries"
                )));
            }
            let hashes = crate::ledger::tree::consistency_proof(&StoreNodes(&store), old, new)
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            let text: String = hashes
                .iter()
                .map(|hash| {
                    format!(
                        "{}\n",
                        base64::engine::general_purpose::STANDARD.encode(hash)
                    )
                })
                .collect();
            print_out(&text);
        }
        (None, None) => return Err(super::usage("say --decision ID, or --old M --new N")),
    }
    Ok(())
}

/// What to export: the CLI's range, filter and payload choice.
pub(super) struct ExportRange<'a> {
    /// First seq.
    pub(super) from: u64,
    /// Up to this seq (exclusive); default: all.
    pub(super) to: Option<u64>,
    /// Time and model filters (a sparse bundle when any is set).
    pub(super) filter: &'a crate::ledger::export::Filter,
    /// Whether the kept payloads go in.
    pub(super) payloads: bool,
    /// Every K-th batch checkpoint carried (contiguous bundles).
    pub(super) checkpoints_every: u64,
    /// Chunked (`govgate-bundle/3`), contiguous bundles only.
    pub(super) chunks: Option<crate::ledger::export::Chunking>,
}

pub(super) fn export(
    source: Source<'_>,
    out: &Path,
    what: &ExportRange<'_>,
    quiet: bool,
) -> anyhow::Result<()> {
    use crate::ledger::export::{Relieved, export_bundle, export_filtered};
    let (store, verifier) = source.open(crate::ledger::wal::Tail::Keep)?;
    // An export reads the whole log once or twice: in bounded memory only
    // if sled lets go of what was read (see `Relieved`).
    let store = Relieved::new(store);
    let staging = super::staging::Staging::begin(out)?;
    let mut progress = super::progress::Progress::new("exporting", quiet)?;
    let update = |done, total| progress.update(done, total);
    let (from, to, payloads, filter) = (what.from, what.to, what.payloads, what.filter);
    let written = staging.bundle();
    let exported = if filter.is_empty() {
        let options = crate::ledger::export::BundleOptions {
            payloads,
            checkpoints_every: what.checkpoints_every,
            chunks: what.chunks,
        };
        export_bundle(&store, &verifier, from, to, &options, written, update)
    } else {
        export_filtered(
            &store, &verifier, from, to, filter, payloads, written, update,
        )
    };
    progress.finish();
    let exported = match exported {
        Ok(exported) => exported,
        Err(err) => {
            staging.abandon();
            return Err(err.into());
        }
    };
    if let Err(err) = super::witnesses::add_to_bundle(source, store.inner(), &verifier, written) {
        staging.abandon();
        return Err(err);
    }
    staging.complete()?;
    let form = if let Some(chunks) = what.chunks.filter(|_| filter.is_empty()) {
        format!(
            " (chunked: at most {} entries a chunk, compression {})",
            chunks.entries,
            chunks.compression.name()
        )
    } else if filter.is_empty() {
        String::new()
    } else {
        format!(
            " (sparse: {} selected entries with inclusion proofs)",
            exported.entries
        )
    };
    print_out(&format!(
        "wrote {}: entries {}..{}{form}, {} payloads, checkpoint of size {}\n",
        out.display(),
        exported.from,
        exported.to,
        exported.payloads,
        exported.size
    ));
    Ok(())
}

/// A verifier key given as text or as `@FILE`.
pub(super) fn read_vkey(value: &str) -> anyhow::Result<NoteVerifier> {
    let text = match value.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
        None => value.to_owned(),
    };
    NoteVerifier::parse(text.trim()).map_err(|err| {
        // A file name given without its `@` is the likely slip.
        if !value.starts_with('@') && std::path::Path::new(value).is_file() {
            anyhow::anyhow!(
                "{value} is not a verifier key, but a file of that name exists: \
                 did you mean @{value}? (a key is given as its text or as @FILE)"
            )
        } else {
            anyhow::anyhow!("{value} is not a verifier key: {err}")
        }
    })
}

/// How `verify --bundle` runs: `--jobs` (0: every core), `--chunk`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BundleRun {
    pub(super) jobs: usize,
    pub(super) chunk: Option<u64>,
}

/// `verify --bundle`: exit 0 verified, 1 the bundle does not verify, 2
/// cannot check (unreadable bundle, malformed key, no such chunk).
pub(super) fn verify_bundle(
    dir: &std::path::Path,
    vkey: &str,
    current: Option<&str>,
    how: BundleRun,
) -> ExitCode {
    use crate::ledger::bundle::{BundleForm, verify_bundle_on};
    let keys = read_vkey(vkey).and_then(|first| {
        let current = current.map(read_vkey).transpose()?;
        if let Some(current) = &current {
            anyhow::ensure!(
                current.name() == first.name(),
                "--current-vkey is named {:?}, not the log's origin {:?}",
                current.name(),
                first.name()
            );
        }
        if let Some(why) = super::staging::unfinished(dir) {
            anyhow::bail!(why);
        }
        anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
        Ok((first, current))
    });
    let (first, current) = match keys {
        Ok(keys) => keys,
        Err(err) => {
            eprintln!("govgate: error: {err:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(at) = how.chunk {
        return verify_chunk(dir, &first, current.as_ref(), at, how.jobs);
    }
    match verify_bundle_on(dir, &first, current.as_ref(), how.jobs) {
        Ok(report) => {
            for warning in &report.warnings {
                eprintln!("govgate: warning: {warning}");
            }
            let form = match (&report.form, &report.filter) {
                (BundleForm::Sparse, Some(filter)) => format!("sparse bundle ({filter})"),
                _ => "bundle".to_owned(),
            };
            print_out(&format!(
                "{form} ok: origin {}, entries {}..{} ({} checked), checkpoint of size {}, \
                 {} payloads, {} signatures, {} key rotations\n",
                report.origin,
                report.from,
                report.to,
                report.entries,
                report.size,
                report.payloads,
                report.signatures,
                report.rotations
            ));
            let why = "it lies beyond the bundle's range, or never came";
            if let Some(notice) = open_streams_notice(&report.open_streams, why) {
                print_out(&notice);
            }
            ExitCode::SUCCESS
        }
        Err(err) => bundle_failed(&err, "bundle"),
    }
}

/// A bundle (or chunk, `what`) that did not verify: exit 1 with its first
/// problem, or 2 when it cannot be checked.
fn bundle_failed(err: &crate::ledger::bundle::BundleError, what: &str) -> ExitCode {
    use crate::ledger::bundle::BundleError;
    match err {
        BundleError::Bad { seq, item, reason } => {
            let first = seq.map_or(String::new(), |seq| format!("first bad seq {seq}: "));
            // A chunked bundle's item also names the chunk file.
            let what_failed = if seq.is_some_and(|seq| *item == format!("seq {seq}")) {
                reason.clone()
            } else {
                format!("{item}: {reason}")
            };
            eprintln!("govgate: {what} does NOT verify: {first}{what_failed}");
            ExitCode::FAILURE
        }
        BundleError::Unreadable { .. } => {
            eprintln!("govgate: cannot check the {what}: {err}");
            ExitCode::from(2)
        }
        BundleError::NoChunk(_) => {
            eprintln!("govgate: error: {err}");
            ExitCode::from(2)
        }
    }
}

/// `verify --bundle DIR --chunk A`: exit 0 the chunk verified (the checks
/// that need the other chunks listed as not made), 1 it does not verify, 2
/// cannot check (unreadable, not a chunked bundle, no chunk starts at A).
fn verify_chunk(
    dir: &std::path::Path,
    first: &crate::ledger::checkpoint::NoteVerifier,
    current: Option<&crate::ledger::checkpoint::NoteVerifier>,
    at: u64,
    jobs: usize,
) -> ExitCode {
    match crate::ledger::bundle::verify_chunk(dir, first, current, at, jobs) {
        Ok(report) => {
            print_out(&format!(
                "chunk {}..{} of bundle ok: origin {}, entries {}..{} ({} checked), checkpoint \
                 of size {}, {} payloads, {} signatures, {} key rotations\n",
                report.from,
                report.to,
                report.origin,
                report.from,
                report.to,
                report.entries,
                report.size,
                report.payloads,
                report.signatures,
                report.rotations
            ));
            for what in &report.not_made {
                print_out(&format!("note: not made with --chunk: {what}\n"));
            }
            let why = "it lies in a later chunk or beyond the bundle's range, or never came";
            if let Some(notice) = open_streams_notice(&report.open_streams, why) {
                print_out(&notice);
            }
            ExitCode::SUCCESS
        }
        Err(err) => bundle_failed(&err, &format!("chunk {at}")),
    }
}

/// The line naming the streamed decisions whose `stream_ended` is missing
/// from what was verified, and `why` that can be; `None` when there are
/// none. Not a failure (a gateway killed mid-stream leaves one). At most
/// ten seqs are listed.
fn open_streams_notice(seqs: &[u64], why: &str) -> Option<String> {
    const LISTED: usize = 10;
    let (first, rest) = seqs.split_at(seqs.len().min(LISTED));
    if first.is_empty() {
        return None;
    }
    let listed: Vec<String> = first.iter().map(u64::to_string).collect();
    let more = if rest.is_empty() {
        String::new()
    } else {
        format!(" and {} more", rest.len())
    };
    Some(format!(
        "open streams: {} (streamed decisions without their stream_ended: {why}): seq {}{more}\n",
        seqs.len(),
        listed.join(", ")
    ))
}

/// Exit codes: 0 verified, 1 the ledger does not verify, 2 cannot check.
pub(super) fn verify(source: Source<'_>, quiet: bool) -> ExitCode {
    use crate::ledger::verify::{VerifyError, verify_store_with_progress};
    let opened = source
        .open(crate::ledger::wal::Tail::Keep)
        .and_then(|opened| Ok((opened, super::progress::Progress::new("verifying", quiet)?)));
    let ((store, verifier), mut progress) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            eprintln!("govgate: error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let verified = verify_store_with_progress(&store, &verifier, &mut |done, total| {
        progress.update(done, total);
    });
    progress.finish();
    match verified {
        Ok(verified) => {
            print_out(&format!(
                "ledger ok: {} entries, {} signed checkpoints, latest covers {} (origin {})\n",
                verified.entries,
                verified.checkpoints,
                verified.latest_checkpoint_size,
                verifier.name()
            ));
            if let Some(previous) = &verified.continues {
                print_out(&format!(
                    "continues log {} at size {} (root {}): its checkpoint in entry 0 is \
                     signed by this log's first key\n",
                    previous.origin,
                    previous.size,
                    previous.body().lines().nth(2).unwrap_or_default()
                ));
            }
            let why = "the gateway stopped before the stream ended, so how the answer ended \
                       is not recorded";
            if let Some(notice) = open_streams_notice(&verified.open_streams, why) {
                print_out(&notice);
            }
            ExitCode::SUCCESS
        }
        Err(VerifyError::Bad { seq, reason }) => {
            eprintln!("govgate: ledger does NOT verify: first bad seq {seq}: {reason}");
            ExitCode::FAILURE
        }
        Err(err @ (VerifyError::Store(_) | VerifyError::Stopped)) => {
            eprintln!("govgate: cannot read the ledger: {err}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::open_streams_notice;

    #[test]
    fn open_streams_are_named_up_to_ten() {
        assert_eq!(open_streams_notice(&[], "why"), None);
        assert_eq!(
            open_streams_notice(&[7], "why").as_deref(),
            Some("open streams: 1 (streamed decisions without their stream_ended: why): seq 7\n")
        );
        let many: Vec<u64> = (1..=12).collect();
        assert_eq!(
            open_streams_notice(&many, "why").as_deref(),
            Some(
                "open streams: 12 (streamed decisions without their stream_ended: why): \
                 seq 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more\n"
            )
        );
    }
}
