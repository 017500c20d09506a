//! The command line: `serve`, `check-config`, `demo`, the offline ledger
//! tools, and `models`, a client of a running gateway's admin API.
//!
//! `anyhow` is used here and nowhere below: this is where errors end up as
//! messages for a person.

mod admin_client;
mod demo;
mod erase;
mod fleet_control;
mod fleet_export;
mod fleet_report;
mod fleet_verify;
mod keys;
mod kpis;
mod ledger;
mod models;
mod online;
mod online_export;
mod policies;
mod policy_eval;
mod policy_sets;
mod policy_test;
mod progress;
mod report;
mod report_online;
mod reviews;
mod staging;
mod witnesses;

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

/// Where a read-only ledger command (`export`, `proof`) finds the ledger:
/// the configuration's, or a data directory and the log's verifier key.
#[derive(Debug, clap::Args)]
struct LedgerArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// Read the ledger in this data directory (a stopped gateway's
    /// `server.data_dir`) instead of the configuration's, which is then not
    /// read. Needs --vkey.
    #[arg(long, value_name = "DIR", requires = "vkey")]
    data_dir: Option<PathBuf>,
    /// With --data-dir: the log's current verifier key (as `govgate vkey`
    /// prints it), or @FILE holding it.
    #[arg(long, value_name = "VKEY", requires = "data_dir")]
    vkey: Option<String>,
}

impl LedgerArgs {
    fn source(&self) -> ledger::Source<'_> {
        match (&self.data_dir, &self.vkey) {
            (Some(data_dir), Some(vkey)) => ledger::Source::Dir { data_dir, vkey },
            _ => ledger::Source::Config(&self.config.path),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        config: ConfigFile,
        /// If the ledger does not verify, move it aside (to
        /// `ledger.damaged-<unix seconds>` in the data directory, untouched)
        /// and start a new ledger whose first entry names it and why,
        /// instead of refusing to start.
        #[arg(long)]
        quarantine_damaged_ledger: bool,
        /// Start even though `[[admin.tokens]]` admits the example tokens
        /// published with the shipped configuration (anyone can read them).
        #[arg(long)]
        allow_example_tokens: bool,
    },
    /// Check a configuration file and print what it declares. Exit 0: it
    /// is valid (warnings, such as published example tokens, on stderr),
    /// 2: it is not.
    CheckConfig {
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Start the gateway with built-in sample models and print commands to try.
    Demo(demo::DemoArgs),
    /// Model versions on a running gateway, through its admin API: list,
    /// show, propose, approve, reject, activate, rollback, retire, revoke.
    /// The token is read from GOVGATE_TOKEN. Exit 0: done, 1: the API
    /// refused (its code on stderr), 2: usage, token or connection problem.
    Models(models::ModelsArgs),
    /// The human review queue on a running gateway, through its admin API:
    /// list, show, decide (approve, reject, override). Token and exit codes
    /// as for `models`.
    Reviews(reviews::ReviewsArgs),
    /// The review policies on a running gateway, through its admin API:
    /// show, reload (token and exit codes as for `models`); and offline, on
    /// a policy folder: test (its test_* rules), eval (on a recorded
    /// decision, an input file, or a replay of a range of decisions).
    Policies(policies::PoliciesArgs),
    /// Fairness and drift KPIs of a model on a running gateway, with the
    /// counts behind them, through its admin API. Token and exit codes as
    /// for `models`.
    Kpis(kpis::KpisArgs),
    /// Verify the whole ledger of a (stopped) gateway: chain, tree,
    /// checkpoints; or, with --bundle, an export bundle. Exit 0: verified,
    /// 1: does not verify (the first bad seq is named), 2: cannot check.
    Verify {
        #[command(flatten)]
        config: ConfigFile,
        /// Verify the ledger in this data directory (a stopped gateway's
        /// `server.data_dir`) against --vkey, the log's current verifier key;
        /// the config is not read.
        #[arg(long, value_name = "DIR", requires = "vkey", conflicts_with = "bundle")]
        data_dir: Option<PathBuf>,
        /// Verify this export bundle directory instead (the config is not read).
        #[arg(long, value_name = "DIR", requires = "vkey")]
        bundle: Option<PathBuf>,
        /// Verify the report in this directory (from `govgate report`)
        /// instead: its bundle (as --bundle), every figure of report.json
        /// recomputed from the bundle's entries, report.html rendered again
        /// from it, and both files' SHA-256 against their `report_issued`
        /// entry. Needs --vkey, the log's first key.
        #[arg(long, value_name = "DIR", requires = "vkey", conflicts_with_all = ["bundle", "data_dir", "chunk", "witness"])]
        report: Option<PathBuf>,
        /// Verify this fleet bundle (from `govgate export --fleet`) instead:
        /// every replica's bundle, each consistent with the checkpoint it
        /// published. Needs a --vkey for every replica: its log's first
        /// key, named after its log.
        #[arg(long, value_name = "DIR", requires = "vkey",
              conflicts_with_all = ["bundle", "data_dir", "report", "chunk", "witness", "current_vkey", "jobs"])]
        fleet: Option<PathBuf>,
        /// A verifier key (name+keyid+base64, or @FILE holding it), from the
        /// log's owner. With --bundle: the log's first key (the bundle's
        /// manifest names a key too, but it is never trusted, only compared).
        /// With --data-dir: the log's current key, as `govgate vkey` prints it.
        /// With --fleet: one per replica (repeat it).
        #[arg(long, value_name = "VKEY")]
        vkey: Vec<String>,
        /// The key in force at the bundle's `from`, when the log rotated its
        /// key before it (default: --vkey).
        #[arg(long, value_name = "VKEY", requires = "bundle")]
        current_vkey: Option<String>,
        /// With --bundle: threads to verify on (default: every core). A
        /// chunked bundle's chunks are checked in parallel, at most N at
        /// once; the outcome does not depend on N.
        #[arg(long, value_name = "N", requires = "bundle", value_parser = clap::value_parser!(u64).range(1..=1024))]
        jobs: Option<u64>,
        /// With --bundle: check only the chunk of a chunked bundle that
        /// starts at seq A (its directory `chunks/A/` with 12 digits), with
        /// the bundle's manifest.json, checkpoint.txt and checkpoints.jsonl;
        /// the other chunks need not be there. The joins with the other
        /// chunks and the checks that span chunks are reported as not made.
        #[arg(
            long,
            value_name = "A",
            requires = "bundle",
            conflicts_with = "witness"
        )]
        chunk: Option<u64>,
        /// Verify the log of the gateway running behind this admin API
        /// instead: a full verification is started there and followed to
        /// its end (role auditor or admin; token from GOVGATE_TOKEN).
        #[arg(long, value_name = "URL", conflicts_with_all = ["bundle", "data_dir", "vkey"])]
        admin_url: Option<String>,
        /// No progress on stderr.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// A witness the bundle's cosigned checkpoint must carry a valid
        /// cosignature of: NAME=VKEY (a cosignature/v1 key, or @FILE);
        /// repeat for each witness of the policy.
        #[arg(long, value_name = "NAME=VKEY", requires = "bundle")]
        witness: Vec<String>,
        /// How many of the --witness keys must have cosigned (default: all).
        #[arg(long, value_name = "K", requires = "witness")]
        witness_threshold: Option<usize>,
    },
    /// Write the period report of a (stopped) gateway's ledger into a new
    /// directory, or with --admin-url have a running gateway make it:
    /// report.json (every figure with the seqs it comes from),
    /// report.html (rendered from it, self-contained) and bundle/ (the
    /// period's entries up to the `report_issued` entry that records both
    /// files' SHA-256). Check it with `verify --report DIR`. Exit 0:
    /// written, 1: could not be done (a ledger that does not verify, or
    /// the admin API refused), 2: usage (times, an empty period, the
    /// configuration, the token or connection).
    Report(report::ReportArgs),
    /// Export an audit bundle from a (stopped) gateway's ledger, or with
    /// --admin-url from a running one. The bundle is written beside --out
    /// (in `<out>.partial`) and renamed to --out when complete; a partial
    /// one left by an interrupted export is removed by the next export to
    /// the same --out.
    Export {
        #[command(flatten)]
        ledger: LedgerArgs,
        /// New directory to write the bundle into.
        #[arg(long)]
        out: PathBuf,
        /// Export from the gateway running behind this admin API instead
        /// (role auditor or admin; token from GOVGATE_TOKEN): the bundle is
        /// cut at its latest checkpoint when the export starts, while it
        /// keeps serving. Exit 0: written, 1: the API refused, 2: could not
        /// be carried out.
        #[arg(long, value_name = "URL", conflicts_with_all = ["data_dir", "vkey"])]
        admin_url: Option<String>,
        /// A fleet bundle (docs/fleet.md, "Auditing a fleet"): every
        /// replica's whole log from its admin API, with the checkpoint each
        /// published in the `[cluster]` database of --config and the
        /// consistency proof to it. Needs a --replica for every replica
        /// that published one (token from GOVGATE_TOKEN).
        #[arg(long, requires = "replica",
              conflicts_with_all = ["data_dir", "vkey", "admin_url", "from", "to", "since", "until",
                                    "model", "chunk_entries", "compress"])]
        fleet: bool,
        /// With --fleet: a replica's id and its admin API (repeat for
        /// each replica), e.g. `gw-1=http://10.0.0.5:9090`.
        #[arg(long, value_name = "ID=ADMIN_URL", requires = "fleet",
              value_parser = fleet_export::parse_replica)]
        replica: Vec<fleet_export::ReplicaUrl>,
        /// First seq to export.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Export up to this seq (exclusive); unfiltered, it is extended to
        /// the next checkpoint. Default: all.
        #[arg(long)]
        to: Option<u64>,
        /// Start at the first entry whose time is at or after this RFC 3339
        /// time (e.g. 2026-11-27T00:00:00Z). Writes a sparse bundle.
        #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
        since: Option<String>,
        /// End before the first entry whose time is at or after this RFC 3339
        /// time. Writes a sparse bundle.
        #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
        until: Option<String>,
        /// Only the decisions of this model (with the ends of its streamed
        /// answers), with the model's version entries (so each decision's
        /// approval can be followed) and the key rotations a verifier needs.
        /// Writes a sparse bundle.
        #[arg(long, value_name = "NAME")]
        model: Option<String>,
        /// Include the kept payloads (salts and captured bodies).
        #[arg(long)]
        payloads: bool,
        /// No progress on stderr.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// Carry every K-th batch checkpoint of the range with the
        /// consistency proofs between them (contiguous bundles; the last
        /// checkpoint and each key rotation's are always carried). A
        /// verifier locates an altered entry between two carried
        /// checkpoints, so 1 locates it most precisely.
        #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        checkpoints_every: u64,
        /// Split the entries, signatures and payloads into chunks of at
        /// most N entries each, every chunk ending at a carried checkpoint
        /// (a `govgate-bundle/3` bundle; contiguous offline exports only).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..),
              conflicts_with_all = ["since", "until", "model", "admin_url"])]
        chunk_entries: Option<u64>,
        /// Compress each chunk file (zstd, gzip, or none); alone, it
        /// implies --chunk-entries 1000000.
        #[arg(long, value_name = "zstd|gzip|none", value_parser = parse_compression,
              conflicts_with_all = ["since", "until", "model", "admin_url"])]
        compress: Option<crate::ledger::export::Compression>,
    },
    /// Erase decisions' payloads (salts and captured bodies), each erasure
    /// recorded as an entry first: on a (stopped) gateway's ledger, or with
    /// --admin-url on a running one. Select with --decision (repeatable),
    /// --caller, --from and --to, or --subject.
    Erase {
        #[command(flatten)]
        config: ConfigFile,
        /// A decision id (repeat for several).
        #[arg(long, value_name = "ID")]
        decision: Vec<String>,
        /// Every decision of this caller identity.
        #[arg(long)]
        caller: Option<String>,
        /// Every decision received from this time (RFC 3339) ...
        #[arg(long, requires = "to", value_name = "TIME")]
        from: Option<String>,
        /// ... until (before) this time.
        #[arg(long, requires = "from", value_name = "TIME")]
        to: Option<String>,
        /// Every decision about this data subject (models with a subject selector).
        #[arg(long)]
        subject: Option<String>,
        /// Why (recorded in the erasure entries).
        #[arg(long)]
        reason: String,
        /// List what would be erased; erase nothing.
        #[arg(long)]
        dry_run: bool,
        /// Erase on the gateway running behind this admin API instead (role
        /// admin; token from GOVGATE_TOKEN).
        #[arg(long, value_name = "URL")]
        admin_url: Option<String>,
        /// No progress on stderr.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Print a proof from a (stopped) gateway's ledger: a decision's receipt
    /// (C2SP tlog-proof), or a consistency proof between two tree sizes.
    Proof {
        #[command(flatten)]
        ledger: LedgerArgs,
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
    /// Rotate the ledger's signing key on a (stopped) gateway: records a
    /// `key_rotated` entry under the current key naming the new one. Then
    /// point `ledger.key_file` at the new key. With --admin-url, on a
    /// running gateway instead.
    RotateKey {
        #[command(flatten)]
        config: ConfigFile,
        /// The new key (from `govgate keygen`), for a stopped gateway.
        #[arg(long, required_unless_present = "admin_url")]
        new_key: Option<PathBuf>,
        /// Rotate the key of the gateway running behind this admin API
        /// instead (role admin; token from GOVGATE_TOKEN): it makes a new
        /// key, records the rotation and writes the key to its key file.
        #[arg(long, value_name = "URL", conflicts_with = "new_key")]
        admin_url: Option<String>,
    },
    /// Create the Ed25519 key that signs the ledger's checkpoints. Never
    /// overwrites a file: exit 2 if --out or --vkey-out exists.
    Keygen {
        /// Where to write the private key (PKCS#8 PEM, mode 0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Also write the signed-note verifier key to this file.
        #[arg(long, value_name = "FILE")]
        vkey_out: Option<PathBuf>,
        /// The log's origin (the `ledger.origin` of the config), for the verifier key.
        #[arg(long)]
        origin: String,
    },
    /// Print the signed-note verifier key of a signing key (from
    /// `govgate keygen`): with --key and --origin, or taking what is missing
    /// from the config's `ledger.key_file` and `ledger.origin`.
    Vkey {
        #[command(flatten)]
        config: ConfigFile,
        /// The private key file (default: the config's `ledger.key_file`).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// The log's origin (default: the config's `ledger.origin`).
        #[arg(long)]
        origin: Option<String>,
        /// Write it to this file (replacing it) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Create an admin API token (`--principal`, `--roles`) or an API key
    /// for callers of the public listener (`--caller`, `--id`): prints it
    /// (once) and the `[[admin.tokens]]` or `[[auth.api_keys]]` entry, with
    /// only its SHA-256, for the config.
    Token {
        /// Admin token: who will hold it (recorded in the ledger for every change they make).
        #[arg(long, required_unless_present = "caller", conflicts_with = "caller")]
        principal: Option<String>,
        /// Admin token: comma-separated roles: admin, proposer, approver, approver:<qualifier>, reviewer, auditor.
        #[arg(long, value_delimiter = ',', required_unless_present = "caller")]
        roles: Vec<String>,
        /// API key: the caller it authenticates (recorded in every decision it makes).
        #[arg(long, requires = "id")]
        caller: Option<String>,
        /// API key: its id, named in the ledger and the logs instead of the key.
        #[arg(long, requires = "caller")]
        id: Option<String>,
        /// API key: comma-separated models it may call (default: every model).
        #[arg(long, value_delimiter = ',', requires = "caller")]
        models: Vec<String>,
        /// API key: refused from this RFC 3339 time on (e.g. 2027-06-30T00:00:00Z).
        #[arg(long, requires = "caller")]
        expires: Option<String>,
    },
}

/// Parses arguments, runs the command, and maps the result to an exit code:
/// 0 success, 1 runtime failure, 2 bad usage or configuration
/// ([`UsageError`] anywhere in the error's chain).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::CheckConfig { config } => return check_config(&config.path),
        Command::Serve {
            config,
            quarantine_damaged_ledger,
            allow_example_tokens,
        } => serve(
            &config.path,
            app::StartOptions {
                quarantine_damaged_ledger,
            },
            allow_example_tokens,
        ),
        Command::Demo(args) => demo::run(args),
        Command::Models(args) => return models::run(args),
        Command::Reviews(args) => return reviews::run(args),
        Command::Policies(args) => return policies::run(args),
        Command::Kpis(args) => return kpis::run(args),
        Command::Verify {
            config,
            data_dir,
            bundle,
            report,
            fleet,
            vkey,
            current_vkey,
            jobs,
            chunk,
            admin_url,
            quiet,
            witness,
            witness_threshold,
        } => {
            if let Some(admin_url) = admin_url {
                return online::verify(&admin_url, quiet);
            }
            if let Some(fleet) = fleet {
                // Each replica's bundle on every core, as --bundle's default.
                return fleet_verify::verify(&fleet, &vkey, 0);
            }
            if vkey.len() > 1 {
                eprintln!(
                    "govgate: error: --vkey is given {} times; only --fleet takes one per replica",
                    vkey.len()
                );
                return ExitCode::from(2);
            }
            let vkey = vkey.into_iter().next();
            if let (Some(dir), Some(vkey)) = (&report, &vkey) {
                return report::verify(dir, vkey, current_vkey.as_deref());
            }
            return match (bundle, data_dir, vkey) {
                (Some(bundle), _, Some(vkey)) => {
                    let how = ledger::BundleRun {
                        jobs: jobs.map_or(0, |jobs| jobs as usize),
                        chunk,
                    };
                    let code = ledger::verify_bundle(&bundle, &vkey, current_vkey.as_deref(), how);
                    if witness.is_empty() || code != ExitCode::SUCCESS {
                        code
                    } else {
                        witnesses::verify_bundle(
                            &bundle,
                            &vkey,
                            current_vkey.as_deref(),
                            &witness,
                            witness_threshold,
                        )
                    }
                }
                (None, Some(data_dir), Some(vkey)) => ledger::verify(
                    ledger::Source::Dir {
                        data_dir: &data_dir,
                        vkey: &vkey,
                    },
                    quiet,
                ),
                (None, None, Some(_)) => {
                    eprintln!(
                        "govgate: error: --vkey goes with --bundle DIR or --data-dir DIR \
                         (without them, the config's ledger is verified with its own key)"
                    );
                    ExitCode::from(2)
                }
                _ => ledger::verify(ledger::Source::Config(&config.path), quiet),
            };
        }
        Command::RotateKey {
            admin_url: Some(admin_url),
            ..
        } => return online::rotate_key(&admin_url),
        Command::RotateKey {
            config,
            new_key: Some(new_key),
            ..
        } => ledger::rotate_key(&config.path, &new_key),
        Command::RotateKey { .. } => {
            Err(usage("rotate-key needs --new-key FILE or --admin-url URL"))
        }
        Command::Report(args) => match report::online(&args) {
            Some(code) => return code,
            None => report::run(&args),
        },
        Command::Proof {
            ledger,
            decision,
            old,
            new,
        } => ledger::proof(ledger.source(), decision.as_deref(), old.zip(new)),
        Command::Erase {
            config,
            decision,
            caller,
            from,
            to,
            subject,
            reason,
            dry_run,
            admin_url,
            quiet,
        } => {
            let asked = erase::Asked {
                decisions: decision,
                caller,
                from,
                to,
                subject,
                reason,
                dry_run,
            };
            match admin_url {
                Some(admin_url) => return erase::online(&admin_url, &asked),
                None => ledger::erase(&config.path, &asked, quiet),
            }
        }
        Command::Export {
            ledger,
            out,
            admin_url,
            fleet,
            replica,
            from,
            to,
            since,
            until,
            model,
            payloads,
            quiet,
            checkpoints_every,
            chunk_entries,
            compress,
        } => {
            if fleet {
                return fleet_export::export(&ledger.config.path, &replica, &out, payloads, quiet);
            }
            let chunks = (chunk_entries.is_some() || compress.is_some()).then(|| {
                crate::ledger::export::Chunking {
                    entries: chunk_entries.unwrap_or(crate::ledger::export::DEFAULT_CHUNK_ENTRIES),
                    compression: compress.unwrap_or(crate::ledger::export::Compression::None),
                }
            });
            let filter = crate::ledger::export::Filter {
                since,
                until,
                model,
            };
            if let Some(admin_url) = admin_url {
                let request = crate::ledger::export::ExportRequest {
                    from,
                    to,
                    filter,
                    payloads,
                    checkpoints_every,
                };
                return online_export::export(&admin_url, &out, &request, quiet);
            }
            let what = ledger::ExportRange {
                from,
                to,
                filter: &filter,
                payloads,
                checkpoints_every,
                chunks,
            };
            ledger::export(ledger.source(), &out, &what, quiet)
        }
        Command::Token {
            principal,
            roles,
            caller,
            id,
            models,
            expires,
        } => match (principal, caller, id) {
            (Some(principal), _, _) => {
                keys::admin_token(&principal, &roles).map(|text| print_out(&text))
            }
            (None, Some(caller), Some(id)) => {
                keys::api_key(&caller, &id, &models, expires.as_deref())
                    .map(|text| print_out(&text))
            }
            _ => Err(usage("give --principal and --roles, or --caller and --id")),
        },
        Command::Keygen {
            out,
            vkey_out,
            origin,
        } => keys::keygen(&out, vkey_out.as_deref(), &origin),
        Command::Vkey {
            config,
            key,
            origin,
            out,
        } => keys::vkey(
            &config.path,
            key.as_deref(),
            origin.as_deref(),
            out.as_deref(),
        ),
    };
    exit_code(result)
}

/// Exit 0 on success; else the error on stderr and exit 2 for a
/// [`UsageError`] anywhere in its chain, 1 otherwise.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("govgate: error: {err:#}");
            if err.chain().any(|cause| cause.is::<UsageError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A problem the person running the command must fix in what they gave
/// (arguments, configuration, files named): exit 2, as for clap's own
/// usage errors, whichever command it comes from.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

/// An error meaning exit 2 (see [`UsageError`]).
pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// Loads the configuration; a file that does not load is a usage error.
pub(crate) fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|err| usage(format!("invalid configuration: {err}")))
}

/// Loads what an offline command needs of the configuration (data
/// directory and ledger key; no upstream credentials); a file that does not
/// load is a usage error.
pub(crate) fn load_offline_config(
    path: &std::path::Path,
) -> anyhow::Result<crate::config::OfflineConfig> {
    crate::config::OfflineConfig::load(path)
        .map_err(|err| usage(format!("invalid configuration: {err}")))
}

/// Checks an RFC 3339 time on the command line, keeping the text as given
/// (a bundle's manifest repeats it).
fn parse_compression(text: &str) -> Result<crate::ledger::export::Compression, String> {
    crate::ledger::export::Compression::parse(text)
        .ok_or_else(|| format!("{text:?}: zstd, gzip or none"))
}

fn parse_time(text: &str) -> Result<String, crate::ledger::export::TimeError> {
    crate::ledger::export::UtcTime::parse(text).map(|_| text.to_owned())
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
        .with_ansi(colour_logs())
        // A log line that cannot be written (stderr a file on a full disk)
        // is dropped: reporting it would `eprintln!`, which panics when
        // stderr fails, in whichever thread logged, the ledger's included.
        .log_internal_errors(false)
        .init();
}

/// Colours only for a person at a terminal: escape codes in a log file or
/// a journal are noise, and `NO_COLOR` (any non-empty value, per
/// no-color.org) turns them off everywhere.
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// The warning for `[[admin.tokens]]` entries admitting the published
/// example tokens, if any.
fn example_tokens_warning(config: &Config) -> Option<String> {
    let principals = config.example_token_principals();
    if principals.is_empty() {
        return None;
    }
    Some(format!(
        "{}: [[admin.tokens]] of {} admit the example tokens published with govgate \
         (\"example-ops\", ...): anyone who has read the repository can use them. \
         Create your own with `govgate token --principal NAME --roles ROLES` and replace \
         their token_sha256",
        config.source,
        principals.join(", ")
    ))
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
            if let Some(dir) = &config.review.policies_dir {
                match crate::review::PolicySet::load(dir) {
                    Ok(set) => {
                        let files: Vec<String> = set
                            .content_hashes()
                            .into_iter()
                            .map(|(file, _)| file)
                            .collect();
                        let _ = writeln!(
                            out,
                            "  policies       {}: {}",
                            dir.display(),
                            files.join(", ")
                        );
                    }
                    Err(err) => {
                        eprintln!("govgate: invalid policies: {err}");
                        return ExitCode::from(2);
                    }
                }
            }
            print_out(&out);
            if let Some(warning) = example_tokens_warning(&config) {
                eprintln!(
                    "govgate: warning: {warning}; `govgate serve` refuses to start with them \
                     unless given --allow-example-tokens"
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("govgate: invalid configuration: {err}");
            ExitCode::from(2)
        }
    }
}

fn serve(
    path: &std::path::Path,
    options: app::StartOptions,
    allow_example_tokens: bool,
) -> anyhow::Result<()> {
    let config = load_config(path)?;
    if let Some(warning) = example_tokens_warning(&config) {
        if !allow_example_tokens {
            return Err(usage(format!(
                "refusing to start: {warning}; or, to try govgate on this machine only, \
                 pass --allow-example-tokens"
            )));
        }
        tracing::warn!("{warning}");
    }
    runtime(config.server.worker_threads)?.block_on(serve_config(
        config,
        options,
        None,
        ListenKeys::CONFIG,
    ))
}

/// What a person changes to move a listener elsewhere: the config keys,
/// or the demo's flags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListenKeys {
    /// For the public listener.
    pub(crate) public: &'static str,
    /// For the admin listener.
    pub(crate) admin: &'static str,
}

impl ListenKeys {
    /// `serve`: the configuration's keys.
    pub(crate) const CONFIG: ListenKeys = ListenKeys {
        public: "server.public_listen",
        admin: "server.admin_listen",
    };
    /// `demo`: its flags.
    pub(crate) const DEMO_FLAGS: ListenKeys = ListenKeys {
        public: "--public-listen",
        admin: "--admin-listen",
    };
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
async fn serve_config(
    config: Config,
    options: app::StartOptions,
    on_ready: Option<OnReady>,
    keys: ListenKeys,
) -> anyhow::Result<()> {
    survive_file_size_limit();
    survive_hangup();
    let public = app::bind(keys.public, config.server.public_listen).await?;
    let admin = app::bind(keys.admin, config.server.admin_listen).await?;
    let tiles = match config.tiles.listen() {
        Some(addr) => Some(app::bind("tiles.listen", addr).await?),
        None => None,
    };
    let scheme =
        |tls: &Option<crate::config::TlsFiles>| if tls.is_some() { "https" } else { "http" };
    let public_url = format!(
        "{}://{}",
        scheme(&config.server.public_tls),
        public.local_addr()?
    );
    let admin_url = format!(
        "{}://{}",
        scheme(&config.server.admin_tls),
        admin.local_addr()?
    );
    let tiles_url = match &tiles {
        Some(tiles) => format!("http://{}", tiles.local_addr()?),
        None if config.tiles == crate::config::TilesConfig::Off => "off".to_owned(),
        None => format!("{public_url}{}", crate::ledger::tiles::serve::PUBLIC_PREFIX),
    };
    let gateway = App::build_with(&config, options).await?;
    let shutdown = shutdown_signal();
    println!("govgate ready public={public_url} admin={admin_url} tiles={tiles_url}");
    tracing::info!(public = %public_url, admin = %admin_url, tiles = %tiles_url, models = config.models.len(), "govgate ready");
    if let Some(on_ready) = on_ready {
        on_ready(&public_url, &admin_url);
    }
    gateway.run(public, admin, tiles, shutdown).await?;
    Ok(())
}

/// Takes over SIGXFSZ, whose default action kills the process: a write
/// past the file-size limit (`ulimit -f`, RLIMIT_FSIZE) then fails with
/// EFBIG like any other I/O error, so the ledger refuses and retries as on
/// a full disk instead of the whole gateway dying mid-commit. tokio keeps
/// its handler installed for the life of the process once registered, so
/// the stream itself can be dropped.
fn survive_file_size_limit() {
    #[cfg(unix)]
    if let Err(err) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ))
    {
        tracing::warn!(error = %err, "cannot take over SIGXFSZ: a file-size limit will kill the gateway");
    }
}

/// Takes over SIGHUP, whose default action kills the process: it asks for
/// a reload (policies, TLS certificates), and a gateway that has nothing
/// to reload must take it as a no-op, not stop (systemd's `reload`, a
/// closed terminal). Those that reload listen for it themselves.
fn survive_hangup() {
    #[cfg(unix)]
    if let Err(err) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tracing::warn!(error = %err, "cannot take over SIGHUP: a hangup will stop the gateway");
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed
/// here, before the future is first polled: a signal that comes as soon as
/// "ready" is printed then stops the gateway in order instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |stream: Option<tokio::signal::unix::Signal>| async move {
                match stream {
                    Some(mut stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
