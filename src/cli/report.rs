//! `govgate report`: the period report of a stopped gateway's ledger
//! (report.json, report.html, report.oscal.json and the bundle that proves them, recorded
//! by a `report_issued` entry); and `govgate verify --report DIR`, which
//! recomputes every figure from that bundle.

use super::ledger::{append_offline, open_ledger};
use crate::ledger::entry::EntryBody;
use crate::report::{self, Period};
use anyhow::Context;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `govgate report`'s arguments.
#[derive(Debug, clap::Args)]
pub(super) struct ReportArgs {
    #[command(flatten)]
    config: super::ConfigFile,
    /// Start of the period (RFC 3339, e.g. 2026-11-01T00:00:00Z): the
    /// first entry at or after it.
    #[arg(long, value_name = "RFC3339")]
    from: String,
    /// End of the period (RFC 3339): entries before it.
    #[arg(long, value_name = "RFC3339")]
    to: String,
    /// New directory to write report.json, report.html, report.oscal.json
    /// and bundle/ into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// A control map of your own (TOML, as config/control-map.toml): its
    /// controls are added to the shipped ones, replacing those of the
    /// same framework and id.
    #[arg(long, value_name = "FILE")]
    control_map: Option<PathBuf>,
    /// Report from this bundle instead of a ledger (the configuration is
    /// not read): a contiguous bundle (`govgate export` without filters,
    /// or a report's `bundle/`) that starts before the period or at the
    /// log's start. Checked first with --vkey; the report is recorded
    /// nowhere (a bundle is not a ledger), and its directory gets a copy
    /// of the bundle.
    #[arg(long, value_name = "DIR", requires = "vkey", conflicts_with = "fleet")]
    bundle: Option<PathBuf>,
    /// Report a whole fleet from this fleet bundle (`govgate export
    /// --fleet`; the configuration is not read): verified first as
    /// `govgate verify --fleet` does, then each replica's report made
    /// from its bundle into replicas/<id>/, and the fleet's figures in
    /// fleet-report.json. Give every replica's first key with --vkey.
    #[arg(long, value_name = "DIR", requires = "vkey")]
    fleet: Option<PathBuf>,
    /// With --bundle: the log's first verifier key (text or @FILE); with
    /// --fleet: each replica's, once each.
    #[arg(long, value_name = "VKEY")]
    vkey: Vec<String>,
    /// With --bundle: the key in force at the bundle's start, when the
    /// log rotated its key before it.
    #[arg(long, value_name = "VKEY", requires = "bundle")]
    current_vkey: Option<String>,
    /// Have the gateway running behind this admin API make the report
    /// instead (role auditor, admin or approver:ai_officer; token from
    /// GOVGATE_TOKEN): its `report_issued` entry names who asked, and
    /// the report and its bundle are downloaded into --out. The
    /// configuration is not read.
    #[arg(
        long,
        visible_alias = "url",
        value_name = "URL",
        conflicts_with_all = ["bundle", "fleet", "control_map"]
    )]
    admin_url: Option<String>,
    /// No progress on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// The files of a report directory.
const REPORT_JSON: &str = "report.json";
const REPORT_HTML: &str = "report.html";
const REPORT_OSCAL: &str = "report.oscal.json";
const BUNDLE: &str = "bundle";

/// `govgate report --admin-url`: made by the running gateway
/// (report_online.rs); `None` without --admin-url.
pub(super) fn online(args: &ReportArgs) -> Option<ExitCode> {
    let admin_url = args.admin_url.as_deref()?;
    Some(super::report_online::report(&super::report_online::Asked {
        admin_url,
        from: &args.from,
        to: &args.to,
        out: &args.out,
        quiet: args.quiet,
    }))
}

pub(super) fn run(args: &ReportArgs) -> anyhow::Result<()> {
    if let Some(fleet) = &args.fleet {
        let controls = control_map(args.control_map.as_deref())?;
        return super::fleet_report::run(
            fleet,
            &args.vkey,
            (&args.from, &args.to),
            &controls,
            &args.out,
        );
    }
    if let Some(bundle) = &args.bundle {
        let [vkey] = args.vkey.as_slice() else {
            return Err(super::usage(
                "--bundle takes one --vkey: the log's first key",
            ));
        };
        return from_bundle(args, bundle, vkey);
    }
    if !args.vkey.is_empty() {
        return Err(super::usage("--vkey goes with --bundle or --fleet"));
    }
    let mut config = super::load_offline_config(&args.config.path)?;
    let period = Period::new(&args.from, &args.to).map_err(|err| super::usage(err.to_string()))?;
    let controls = control_map(args.control_map.as_deref())?;
    let whence = format!("server.data_dir of {}", config.source);
    let store = open_ledger(&config.data_dir, &whence, crate::ledger::wal::Tail::Cut)?;
    super::ledger::settle_origin(&mut config, &store)?;
    let store = std::sync::Arc::new(store);
    let verifier = crate::ledger::checkpoint::NoteVerifier::new(
        &config.ledger.origin,
        config.ledger.signing_key.verifying_key(),
    )
    .map_err(|err| anyhow::anyhow!("ledger.origin: {err}"))?;
    let staging = super::staging::Staging::begin(&args.out)?;
    let made = make(
        args,
        &config,
        &verifier,
        store,
        staging.bundle(),
        period,
        controls,
    );
    let said = staging.settle(made)?;
    super::print_out(&said);
    Ok(())
}

/// Verifies the log, writes the report into `dir`, records it, exports
/// its bundle; returns what to print.
fn make(
    args: &ReportArgs,
    config: &crate::config::OfflineConfig,
    verifier: &crate::ledger::checkpoint::NoteVerifier,
    store: std::sync::Arc<crate::ledger::store::SledStore>,
    dir: &Path,
    period: Period,
    controls: report::controls::ControlMap,
) -> anyhow::Result<String> {
    use crate::ledger::export::{
        BundleOptions, Chunking, Compression, DEFAULT_CHUNK_ENTRIES, Relieved,
        export_bundle_knowing,
    };
    // The whole log verified and the period's entries read at once; the
    // period is reported only from a log that verifies.
    let mut progress =
        super::progress::Progress::new("verifying and reading the period", args.quiet)?;
    let computed = report::from_verified_store(
        store.as_ref(),
        verifier,
        period,
        controls,
        &mut |done, total| progress.update(done, total),
    );
    progress.finish();
    let report::VerifiedReport {
        report,
        first,
        rotations,
    } = computed.map_err(|err| match err {
        report::StoreReportError::Report(report::ReportError::EmptyPeriod { .. }) => {
            super::usage(err.to_string())
        }
        other => anyhow::Error::new(other),
    })?;
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json_bytes = report::to_bytes(&report);
    let html_bytes = report::html::render(&report).into_bytes();
    write(&dir.join(REPORT_JSON), &json_bytes)?;
    write(&dir.join(REPORT_HTML), &html_bytes)?;
    let members = issued_members(&report, &json_bytes, &html_bytes);
    let seq = append_offline(
        config,
        store.clone(),
        EntryBody::Governance {
            kind: report::REPORT_ISSUED,
            members,
        },
    )
    .context("recording the report_issued entry")?;
    // The OSCAL document names the issue time: the entry just appended,
    // whose bytes the bundle below carries as they are stored (`verify
    // --report` reads them from there).
    let issued = seq
        .map(|seq| crate::ledger::store::LedgerStore::entry(store.as_ref(), seq))
        .transpose()?
        .flatten()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|entry| entry["time"].as_str().map(str::to_owned))
        .context("the report_issued entry just appended cannot be read back")?;
    // The bundle ends at the latest checkpoint: the report_issued entry's.
    let mut progress = super::progress::Progress::new("exporting", args.quiet)?;
    let out = dir.join(BUNDLE);
    // Chunked and compressed (govgate-bundle/3): a tenth of the one-file
    // bundle's size, written faster than the disk takes the plain one.
    let options = BundleOptions {
        chunks: Some(Chunking {
            entries: DEFAULT_CHUNK_ENTRIES,
            compression: Compression::Zstd,
        }),
        ..BundleOptions::payloads(false)
    };
    let update = |done, total| progress.update(done, total);
    // Relieved (bounded memory, see `govgate export`) needs the store alone.
    // The verification above found the key rotations: the export does not
    // read the log once more for them.
    let exported = match std::sync::Arc::try_unwrap(store) {
        Ok(store) => export_bundle_knowing(
            &Relieved::new(store),
            verifier,
            first,
            &options,
            rotations,
            &out,
            update,
        ),
        Err(store) => export_bundle_knowing(
            store.as_ref(),
            verifier,
            first,
            &options,
            rotations,
            &out,
            update,
        ),
    };
    progress.finish();
    exported?;
    write(
        &dir.join(REPORT_OSCAL),
        &report::oscal::render(&json_bytes, &report, &issued),
    )?;
    Ok(format!(
        "report of {} .. {} written to {}: entries {}..={}, report_issued at seq {}\n",
        args.from,
        args.to,
        args.out.display(),
        report["scope"]["first_seq"],
        report["scope"]["last_seq"],
        seq.map_or("?".to_owned(), |seq| seq.to_string())
    ))
}

/// `govgate report --bundle`: the bundle verified, the report computed
/// from it, written with a copy of the bundle.
fn from_bundle(args: &ReportArgs, bundle: &Path, vkey: &str) -> anyhow::Result<()> {
    let period = Period::new(&args.from, &args.to).map_err(|err| super::usage(err.to_string()))?;
    let controls = control_map(args.control_map.as_deref())?;
    let how = super::ledger::BundleRun {
        jobs: 0,
        chunk: None,
    };
    // Says `bundle ok: ...` or why not.
    let code = super::ledger::verify_bundle(bundle, vkey, args.current_vkey.as_deref(), how);
    anyhow::ensure!(
        code == ExitCode::SUCCESS,
        "the bundle does not verify, so no report"
    );
    let report = report::from_bundle(
        bundle,
        period,
        controls,
        true,
        None,
        report::MADE_FROM_BUNDLE,
    )
    .map_err(|err| match err {
        report::ReportError::EmptyPeriod { .. } | report::ReportError::Bundle(_) => {
            super::usage(err.to_string())
        }
        other => anyhow::Error::new(other),
    })?;
    let staging = super::staging::Staging::begin(&args.out)?;
    let written = write_from_bundle(&report, bundle, staging.bundle(), &args.to);
    staging.settle(written)?;
    super::print_out(&format!(
        "report of {} .. {} written to {} from the bundle {}: entries {}..={} (recorded in no ledger)\n",
        args.from,
        args.to,
        args.out.display(),
        bundle.display(),
        report["scope"]["first_seq"],
        report["scope"]["last_seq"],
    ));
    Ok(())
}

/// Writes the report made from `bundle` into the new directory `dir`
/// (report.json, report.html, report.oscal.json, a copy of the bundle);
/// `to` is the period's end.
pub(super) fn write_from_bundle(
    report: &Value,
    bundle: &Path,
    dir: &Path,
    to: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json_bytes = report::to_bytes(report);
    write(&dir.join(REPORT_JSON), &json_bytes)?;
    write(
        &dir.join(REPORT_HTML),
        report::html::render(report).as_bytes(),
    )?;
    // Recorded nowhere, so no issue time: the period's end stands in.
    write(
        &dir.join(REPORT_OSCAL),
        &report::oscal::render(&json_bytes, report, to),
    )?;
    copy_bundle(bundle, &dir.join(BUNDLE), 0)
}

/// Folders deep a bundle's copy goes (`chunks/A/` of govgate-bundle/3 is 2).
const BUNDLE_DEPTH: usize = 2;

/// Copies the bundle in `from` into the new directory `to`: its files and
/// its folders' (a chunked bundle's `chunks/`), nothing else.
fn copy_bundle(from: &Path, to: &Path, depth: usize) -> anyhow::Result<()> {
    std::fs::create_dir(to).with_context(|| format!("creating {}", to.display()))?;
    for item in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let item = item?;
        let kind = item.file_type()?;
        if kind.is_file() {
            std::fs::copy(item.path(), to.join(item.file_name()))
                .with_context(|| format!("copying {}", item.path().display()))?;
        } else if kind.is_dir() && depth < BUNDLE_DEPTH {
            copy_bundle(&item.path(), &to.join(item.file_name()), depth + 1)?;
        }
    }
    Ok(())
}

/// The shipped control map, extended by `file`.
fn control_map(file: Option<&Path>) -> anyhow::Result<report::controls::ControlMap> {
    let shipped = report::controls::ControlMap::shipped();
    let Some(file) = file else {
        return Ok(shipped);
    };
    let text = std::fs::read_to_string(file)
        .map_err(|err| super::usage(format!("--control-map {}: {err}", file.display())))?;
    let own = report::controls::ControlMap::parse(&file.display().to_string(), &text)
        .map_err(|err| super::usage(err.to_string()))?;
    Ok(shipped.extended(own))
}

/// The `report_issued` entry's members (docs/audit-format.md): the
/// offline command records no principal.
fn issued_members(report: &Value, json_bytes: &[u8], html_bytes: &[u8]) -> Map<String, Value> {
    report::issued::members(report, json_bytes, html_bytes, None)
}

fn sha256_hex(bytes: &[u8]) -> String {
    report::issued::sha256_hex(bytes)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// `govgate verify --report DIR`: exit 0 every figure recomputes from the
/// bundle and both files match their `report_issued` entry, 1 they do
/// not (the first difference named), 2 cannot check.
pub(super) fn verify(dir: &Path, vkey: &str, current: Option<&str>) -> ExitCode {
    let bundle = dir.join(BUNDLE);
    let how = super::ledger::BundleRun {
        jobs: 0,
        chunk: None,
    };
    let code = super::ledger::verify_bundle(&bundle, vkey, current, how);
    if code != ExitCode::SUCCESS {
        return code;
    }
    match check(dir, &bundle) {
        Ok(said) => {
            super::print_out(&said);
            ExitCode::SUCCESS
        }
        Err(Check::Differs(why)) => {
            eprintln!("govgate: report does NOT verify: {why}");
            ExitCode::FAILURE
        }
        Err(Check::Cannot(why)) => {
            eprintln!("govgate: cannot check the report: {why}");
            ExitCode::from(2)
        }
    }
}

/// Why `verify --report` failed.
enum Check {
    /// The report is not what its bundle gives (exit 1).
    Differs(String),
    /// Something could not be read (exit 2).
    Cannot(String),
}

fn check(dir: &Path, bundle: &Path) -> Result<String, Check> {
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .map_err(|err| Check::Cannot(format!("{}: {err}", dir.join(name).display())))
    };
    let (json_bytes, html_bytes) = (read(REPORT_JSON)?, read(REPORT_HTML)?);
    let found: Value = serde_json::from_slice(&json_bytes)
        .map_err(|err| Check::Differs(format!("{REPORT_JSON} is not JSON: {err}")))?;
    let period = Period::new(
        found["scope"]["period"]["from"]
            .as_str()
            .unwrap_or_default(),
        found["scope"]["period"]["to"].as_str().unwrap_or_default(),
    )
    .map_err(|err| Check::Differs(format!("{REPORT_JSON}: scope.period: {err}")))?;
    let controls = report::controls::ControlMap::from_report(&found)
        .map_err(|err| Check::Differs(err.to_string()))?;
    // A report made on a ledger is recorded by its report_issued entry
    // (signed, in the bundle), which also says where the period ended in
    // the log; report.json is only a claim. One made from a bundle is
    // recorded nowhere.
    let from_bundle = found["scope"]["made_from"] == report::MADE_FROM_BUNDLE;
    let issued = if from_bundle {
        None
    } else {
        let issued = issued_entry(bundle, &found).map_err(Check::Cannot)?;
        let Some(issued) = issued else {
            return Err(Check::Differs(format!(
                "no report_issued entry of the bundle is for the period {} .. {}",
                found["scope"]["period"]["from"], found["scope"]["period"]["to"]
            )));
        };
        Some(issued)
    };
    let last = issued
        .as_ref()
        .and_then(|(_, entry)| entry["last_seq"].as_u64());
    let made_from = if from_bundle {
        report::MADE_FROM_BUNDLE
    } else {
        report::MADE_FROM_LEDGER
    };
    // An older report is recomputed in its own format (its sections).
    let format = found["format"].as_str().unwrap_or_default();
    let recomputed =
        report::from_bundle_in_format(bundle, period, controls, true, last, made_from, format)
            .map_err(|err| match err {
                report::ReportError::EmptyPeriod { .. } | report::ReportError::Format(_) => {
                    Check::Differs(err.to_string())
                }
                other => Check::Cannot(other.to_string()),
            })?;
    if let Some(difference) = report::first_difference(&recomputed, &found) {
        return Err(Check::Differs(format!("{REPORT_JSON}: {difference}")));
    }
    if report::to_bytes(&recomputed) != json_bytes {
        return Err(Check::Differs(format!(
            "{REPORT_JSON}: the figures are right but the bytes are not as govgate writes them \
             (layout changed), so its SHA-256 cannot match"
        )));
    }
    let rendered = report::html::render(&recomputed);
    if rendered.as_bytes() != html_bytes {
        let line = first_differing_line(rendered.as_bytes(), &html_bytes);
        return Err(Check::Differs(format!(
            "{REPORT_HTML}: line {line} differs from the rendering of {REPORT_JSON}"
        )));
    }
    let issued_at = match &issued {
        Some((_, entry)) => entry["time"].as_str().unwrap_or_default().to_owned(),
        None => found["scope"]["period"]["to"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    let oscal = check_oscal(dir, &json_bytes, &recomputed, &issued_at)?;
    let range = format!(
        "{}..={}",
        found["scope"]["first_seq"], found["scope"]["last_seq"]
    );
    let Some((seq, entry)) = issued else {
        return Ok(format!(
            "report ok: every figure recomputes from the bundle's entries {range}; it was made \
             from a bundle, so no report_issued entry records it{oscal}\n"
        ));
    };
    for (name, bytes, member) in [
        (REPORT_JSON, &json_bytes, "report_json_sha256"),
        (REPORT_HTML, &html_bytes, "report_html_sha256"),
    ] {
        if entry[member].as_str() != Some(sha256_hex(bytes).as_str()) {
            return Err(Check::Differs(format!(
                "{name}: its SHA-256 is not the {member} of the report_issued entry at seq {seq}"
            )));
        }
    }
    Ok(format!(
        "report ok: every figure recomputes from the bundle's entries {range}, and report.json \
         and report.html are those recorded by the report_issued entry at seq {seq}{oscal}\n"
    ))
}

/// report.oscal.json, derived again from report.json and compared byte
/// for byte; a report without one (made before govgate wrote it) still
/// verifies, and says so. Returns what to add to the verdict.
fn check_oscal(
    dir: &Path,
    json_bytes: &[u8],
    report: &Value,
    issued: &str,
) -> Result<&'static str, Check> {
    let path = dir.join(REPORT_OSCAL);
    let found = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok("; it has no report.oscal.json");
        }
        Err(err) => return Err(Check::Cannot(format!("{}: {err}", path.display()))),
    };
    let derived = report::oscal::render(json_bytes, report, issued);
    if derived != found {
        let line = first_differing_line(&derived, &found);
        return Err(Check::Differs(format!(
            "{REPORT_OSCAL}: line {line} differs from the OSCAL document derived from {REPORT_JSON}"
        )));
    }
    Ok("; report.oscal.json is the one derived from report.json")
}

/// The last `report_issued` entry of the bundle for this report's period.
fn issued_entry(bundle: &Path, found: &Value) -> Result<Option<(u64, Value)>, String> {
    let mut entries = report::BundleEntries::open(bundle).map_err(|err| err.to_string())?;
    let mut issued = None;
    while let Some((seq, line)) = entries.next_line().map_err(|err| err.to_string())? {
        // Only report_issued lines are parsed.
        const NEEDLE: &[u8] = b"\"kind\":\"report_issued\"";
        if !line.windows(NEEDLE.len()).any(|window| window == NEEDLE) {
            continue;
        }
        let Ok(entry) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        let scope = &found["scope"];
        if entry["kind"] == report::REPORT_ISSUED
            && entry["period_from"] == scope["period"]["from"]
            && entry["period_to"] == scope["period"]["to"]
        {
            issued = Some((seq, entry));
        }
    }
    Ok(issued)
}

/// The 1-based number of the first line where `a` and `b` differ.
fn first_differing_line(a: &[u8], b: &[u8]) -> usize {
    let same = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    a[..same].iter().filter(|byte| **byte == b'\n').count() + 1
}
