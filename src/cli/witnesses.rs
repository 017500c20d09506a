//! Witness cosignatures in bundles: `export` adds the gateway's kept
//! cosigned checkpoint (with its consistency proof to the bundle's
//! checkpoint), and `verify --bundle --witness NAME=VKEY` applies a witness
//! policy (k of n) to it.

use super::print_out;
use anyhow::Context;
use std::process::ExitCode;

/// During `export`, before the bundle is complete: adds the cosigned
/// checkpoint the stopped gateway kept in its data directory, if any.
pub(super) fn add_to_bundle(
    source: super::ledger::Source<'_>,
    store: &crate::ledger::store::SledStore,
    verifier: &crate::ledger::checkpoint::NoteVerifier,
    bundle: &std::path::Path,
) -> anyhow::Result<()> {
    let data_dir = match source {
        super::ledger::Source::Config(path) => super::load_offline_config(path)?.data_dir,
        super::ledger::Source::Dir { data_dir, .. } => data_dir.to_path_buf(),
    };
    let Some(cosigned) = crate::witness::stored_cosigned(&data_dir)? else {
        return Ok(());
    };
    match crate::witness::bundle::write(store, verifier, bundle, &cosigned) {
        Ok(size) => {
            print_out(&format!(
                "added the cosigned checkpoint of size {size} ({})\n",
                crate::witness::bundle::COSIGNED_FILE
            ));
            Ok(())
        }
        // A kept checkpoint of another key (rotated since) is left out.
        Err(crate::witness::bundle::CosignedError::Bad(why)) => {
            eprintln!("govgate: warning: no cosigned checkpoint added: {why}");
            Ok(())
        }
        Err(err) => Err(err).context("writing the cosigned checkpoint"),
    }
}

/// `NAME=VKEY` or `VKEY` (named by its key name); VKEY may be `@FILE`.
fn parse_witness(arg: &str) -> anyhow::Result<(String, crate::ledger::cosignature::CosignerKey)> {
    let (label, value) = match arg.split_once('=') {
        // A vkey's base64 may end in `=`, but never holds one before a `+`.
        Some((label, value)) if !label.contains('+') => (Some(label), value),
        _ => (None, arg),
    };
    let text = match value.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
        None => value.to_owned(),
    };
    let key = crate::ledger::cosignature::CosignerKey::parse(text.trim())
        .map_err(|err| anyhow::anyhow!("--witness {arg}: not a cosignature/v1 key: {err}"))?;
    let label = label.map_or_else(|| key.name().to_owned(), str::to_owned);
    Ok((label, key))
}

/// `verify --bundle DIR --witness ...`, after the bundle itself verified:
/// exit 0 the policy is met, 1 it is not, 2 cannot check.
pub(super) fn verify_bundle(
    dir: &std::path::Path,
    vkey: &str,
    current: Option<&str>,
    witnesses: &[String],
    threshold: Option<usize>,
) -> ExitCode {
    let setup = (|| {
        let first = super::ledger::read_vkey(vkey)?;
        let current = current.map(super::ledger::read_vkey).transpose()?;
        let keys = witnesses
            .iter()
            .map(|arg| parse_witness(arg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let k = threshold.unwrap_or(keys.len());
        let policy = crate::ledger::cosignature::WitnessPolicy::new(keys, k)
            .map_err(|why| anyhow::anyhow!("--witness-threshold: {why}"))?;
        Ok::<_, anyhow::Error>((first, current, policy))
    })();
    let (first, current, policy) = match setup {
        Ok(setup) => setup,
        Err(err) => {
            eprintln!("govgate: error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let logs: Vec<_> = current.iter().chain(std::iter::once(&first)).collect();
    match crate::witness::bundle::verify(dir, &logs, &policy) {
        Ok(report) => {
            let names: Vec<String> = report
                .cosigned
                .iter()
                .map(|c| format!("{} (time {})", c.witness, c.time))
                .collect();
            print_out(&format!(
                "witness policy ok: {} of {} required cosignatures on the checkpoint of size {} \
                 ({}), consistent with the bundle's of size {}\n",
                report.cosigned.len(),
                policy.threshold(),
                report.size,
                names.join(", "),
                report.bundle_size
            ));
            ExitCode::SUCCESS
        }
        Err(crate::witness::bundle::CosignedError::Bad(why)) => {
            eprintln!("govgate: bundle does NOT meet the witness policy: {why}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("govgate: cannot check the cosigned checkpoint: {err}");
            ExitCode::from(2)
        }
    }
}
