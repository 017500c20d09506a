//! The command line: `serve`, `check-config`, `demo`.
//!
//! `anyhow` is used here and nowhere below: this is where errors end up as
//! messages for a person.

mod demo;
mod keys;

use crate::app::{self, App};
use crate::config::Config;
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// govgate: governance gateway for ML inference.
#[derive(Debug, Parser)]
#[command(name = "govgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The `--config` option every command that reads a configuration shares.
#[derive(Debug, clap::Args)]
struct ConfigFile {
    /// Configuration file.
    #[arg(
        long = "config",
        short = 'c',
        value_name = "FILE",
        env = "GOVGATE_CONFIG",
        default_value = "config/govgate.toml"
    )]
    path: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Check a configuration file and print what it declares.
    CheckConfig {
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Start the gateway with built-in sample models and print commands to try.
    Demo(demo::DemoArgs),
    /// Verify the whole ledger of a (stopped) gateway: chain, tree, checkpoints.
    Verify {
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Export an audit bundle from a (stopped) gateway's ledger.
    Export {
        #[command(flatten)]
        config: ConfigFile,
        /// New directory to write the bundle into.
        #[arg(long)]
        out: PathBuf,
        /// First seq to export.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Export up to this seq (exclusive), extended to the next checkpoint; default: all.
        #[arg(long)]
        to: Option<u64>,
        /// Include the kept payloads (salts and captured bodies).
        #[arg(long)]
        payloads: bool,
    },
    /// Erase a decision's payload (salts and captured bodies) from a
    /// (stopped) gateway's ledger, recording the erasure as an entry.
    Erase {
        #[command(flatten)]
        config: ConfigFile,
        /// The decision id.
        #[arg(long)]
        decision: String,
        /// Why (recorded in the erasure entry).
        #[arg(long)]
        reason: String,
    },
    /// Print a proof from a (stopped) gateway's ledger: a decision's receipt
    /// (C2SP tlog-proof), or a consistency proof between two tree sizes.
    Proof {
        #[command(flatten)]
        config: ConfigFile,
        /// The decision whose receipt to print.
        #[arg(long, conflicts_with_all = ["old", "new"])]
        decision: Option<String>,
        /// Older tree size of a consistency proof.
        #[arg(long, requires = "new")]
        old: Option<u64>,
        /// Newer tree size of a consistency proof.
        #[arg(long, requires = "old")]
        new: Option<u64>,
    },
    /// Create the Ed25519 key that signs the ledger's checkpoints.
    Keygen {
        /// Where to write the private key (PKCS#8 PEM, mode 0600); never overwritten.
        #[arg(long)]
        out: PathBuf,
        /// The log's origin (the `ledger.origin` of the config), for the verifier key.
        #[arg(long)]
        origin: String,
    },
}

/// Parses arguments, runs the command, and maps the result to an exit code:
/// 0 success, 1 runtime failure, 2 bad configuration or usage.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::CheckConfig { config } => return check_config(&config.path),
        Command::Serve { config } => serve(&config.path),
        Command::Demo(args) => demo::run(args),
        Command::Verify { config } => return verify(&config.path),
        Command::Proof {
            config,
            decision,
            old,
            new,
        } => proof(&config.path, decision.as_deref(), old.zip(new)),
        Command::Erase {
            config,
            decision,
            reason,
        } => erase(&config.path, &decision, &reason),
        Command::Export {
            config,
            out,
            from,
            to,
            payloads,
        } => export(&config.path, &out, from, to, payloads),
        Command::Keygen { out, origin } => keys::generate(&out, &origin).map(|(pem, vkey)| {
            print_out(&format!(
                "wrote {} (keep it secret; mode 0600)\npublic key:\n{pem}\n\
                 verifier key (signed-note, for checkpoint verifiers):\n{vkey}\n",
                out.display()
            ));
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("govgate: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout, ignoring a closed pipe (`govgate ... | head`).
fn print_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GOVGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn check_config(path: &std::path::Path) -> ExitCode {
    use std::fmt::Write;
    match Config::load(path) {
        Ok(config) => {
            let mut out = String::new();
            // INVARIANT: writing to a String cannot fail.
            let _ = writeln!(out, "{}: ok", config.source);
            let _ = writeln!(out, "  public listen  {}", config.server.public_listen);
            let _ = writeln!(out, "  admin listen   {}", config.server.admin_listen);
            let _ = writeln!(out, "  data dir       {}", config.server.data_dir.display());
            let _ = writeln!(
                out,
                "  ledger         origin {} (payloads {})",
                config.ledger.origin,
                config.ledger.payload_mode.as_str()
            );
            for model in &config.models {
                let versions: Vec<&str> =
                    model.versions.iter().map(|v| v.version.as_str()).collect();
                let _ = writeln!(
                    out,
                    "  model {} ({}): versions {} (default {})",
                    model.name,
                    model.protocol.as_str(),
                    versions.join(", "),
                    model.default_version
                );
            }
            print_out(&out);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("govgate: invalid configuration: {err}");
            ExitCode::from(2)
        }
    }
}

/// Opens a stopped gateway's ledger store and its verifier.
fn open_ledger(
    config: &Config,
) -> anyhow::Result<(
    crate::ledger::store::SledStore,
    crate::ledger::checkpoint::NoteVerifier,
)> {
    let dir = config.server.data_dir.join("ledger");
    let store = crate::ledger::store::SledStore::open(&dir).with_context(|| {
        format!(
            "cannot open the ledger in {} (is the gateway still running?)",
            dir.display()
        )
    })?;
    let verifier = crate::ledger::checkpoint::NoteVerifier::new(
        &config.ledger.origin,
        config.ledger.signing_key.verifying_key(),
    )
    .map_err(|err| anyhow::anyhow!("ledger.origin: {err}"))?;
    Ok((store, verifier))
}

fn erase(path: &std::path::Path, decision: &str, reason: &str) -> anyhow::Result<()> {
    use crate::ledger::entry::EntryBody;
    use crate::ledger::sequencer::{Ledger, SequencerConfig};
    use crate::ledger::store::LedgerStore;
    let config =
        Config::load(path).map_err(|err| anyhow::anyhow!("invalid configuration: {err}"))?;
    let id =
        crate::decision::DecisionId::parse(decision).context("a decision id is 32 hex digits")?;
    let (store, _) = open_ledger(&config)?;
    let store = std::sync::Arc::new(store);
    let seq = store
        .decision_seq(id.as_bytes())?
        .with_context(|| format!("no decision {decision} in this ledger"))?;
    // The erasure is logged first: a crash before the payload is gone
    // leaves an entry saying so, and erasing again finishes the job.
    let (ledger, writer) = Ledger::open(
        store.clone(),
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
    let entry = runtime(None)?.block_on(ledger.append(EntryBody::PayloadErased {
        decision_id: decision.to_owned(),
        erased_seq: seq,
        reason: reason.to_owned(),
    }));
    drop(ledger);
    writer.close();
    let entry_seq = entry
        .map_err(|err| anyhow::anyhow!("recording the erasure: {err}"))?
        .seq;
    let erased = store.erase_payload(seq)?;
    print_out(&format!(
        "decision {decision} (seq {seq}): payload {}; erasure recorded at seq {}\n",
        if erased { "erased" } else { "was already gone" },
        entry_seq.map_or("?".to_owned(), |s| s.to_string())
    ));
    Ok(())
}

fn proof(
    path: &std::path::Path,
    decision: Option<&str>,
    sizes: Option<(u64, u64)>,
) -> anyhow::Result<()> {
    use crate::ledger::store::{LedgerStore, StoreNodes};
    use base64::Engine;
    let config =
        Config::load(path).map_err(|err| anyhow::anyhow!("invalid configuration: {err}"))?;
    let (store, verifier) = open_ledger(&config)?;
    match (decision, sizes) {
        (Some(decision), _) => {
            let id = crate::decision::DecisionId::parse(decision)
                .context("a decision id is 32 hex digits")?;
            let store: std::sync::Arc<dyn LedgerStore> = std::sync::Arc::new(store);
            let reader = crate::ledger::reader::LedgerReader::new(store, verifier);
            let receipt = reader
                .receipt(&id)?
                .with_context(|| format!("no decision {decision} in this ledger"))?;
            print_out(&receipt.proof.to_text());
        }
        (None, Some((old, new))) => {
            let size = store.size()?;
            anyhow::ensure!(new <= size, "the log has only {size} entries");
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
        (None, None) => anyhow::bail!("say --decision ID, or --old M --new N"),
    }
    Ok(())
}

fn export(
    path: &std::path::Path,
    out: &std::path::Path,
    from: u64,
    to: Option<u64>,
    payloads: bool,
) -> anyhow::Result<()> {
    let config =
        Config::load(path).map_err(|err| anyhow::anyhow!("invalid configuration: {err}"))?;
    let (store, verifier) = open_ledger(&config)?;
    let exported = crate::ledger::export::export_bundle(
        &store,
        &verifier,
        from,
        to,
        payloads,
        out,
        |done, total| {
            eprintln!("govgate: exported {done} of {total} entries");
        },
    )?;
    print_out(&format!(
        "wrote {}: entries {}..{}, {} payloads, checkpoint of size {}\n",
        out.display(),
        exported.from,
        exported.to,
        exported.payloads,
        exported.to
    ));
    Ok(())
}

/// Exit codes: 0 verified, 1 the ledger does not verify, 2 cannot check.
fn verify(path: &std::path::Path) -> ExitCode {
    use crate::ledger::verify::{VerifyError, verify_store};
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("govgate: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    let (store, verifier) = match open_ledger(&config) {
        Ok(opened) => opened,
        Err(err) => {
            eprintln!("govgate: error: {err:#}");
            return ExitCode::from(2);
        }
    };
    match verify_store(&store, &verifier) {
        Ok(verified) => {
            print_out(&format!(
                "ledger ok: {} entries, {} signed checkpoints, latest covers {} (origin {})\n",
                verified.entries,
                verified.checkpoints,
                verified.latest_checkpoint_size,
                config.ledger.origin
            ));
            ExitCode::SUCCESS
        }
        Err(VerifyError::Bad { seq, reason }) => {
            eprintln!("govgate: ledger does NOT verify: first bad seq {seq}: {reason}");
            ExitCode::FAILURE
        }
        Err(VerifyError::Store(err)) => {
            eprintln!("govgate: cannot read the ledger: {err}");
            ExitCode::from(2)
        }
    }
}

fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    let config =
        Config::load(path).map_err(|err| anyhow::anyhow!("invalid configuration: {err}"))?;
    runtime(config.server.worker_threads)?.block_on(serve_config(config, None))
}

/// The async runtime with `threads` workers (default: one per available
/// CPU). With a single worker it is tokio's current-thread runtime: on one
/// core the multi-thread scheduler's cross-thread machinery measured as
/// about a quarter of the gateway's throughput.
fn runtime(threads: Option<std::num::NonZeroUsize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, std::num::NonZeroUsize::get);
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Called once the gateway is ready, with its public and admin URLs.
type OnReady = Box<dyn FnOnce(&str, &str) + Send>;

/// Binds, announces the bound addresses on stdout (one line, for scripts
/// and tests), and serves until SIGINT or SIGTERM.
async fn serve_config(config: Config, on_ready: Option<OnReady>) -> anyhow::Result<()> {
    let public = app::bind("public", config.server.public_listen).await?;
    let admin = app::bind("admin", config.server.admin_listen).await?;
    let public_url = format!("http://{}", public.local_addr()?);
    let admin_url = format!("http://{}", admin.local_addr()?);
    let gateway = App::build(&config).await?;
    println!("govgate ready public={public_url} admin={admin_url}");
    tracing::info!(public = %public_url, admin = %admin_url, models = config.models.len(), "govgate ready");
    if let Some(on_ready) = on_ready {
        on_ready(&public_url, &admin_url);
    }
    gateway.run(public, admin, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
