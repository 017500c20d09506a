//! `govgate export --fleet --config FILE --replica ID=ADMIN_URL... --out DIR`:
//! the evidence of a whole fleet in one directory (docs/audit-format.md
//! section 8.5). It reads every replica's published checkpoint from the
//! control plane (`govgate_checkpoints`, the `[cluster]` database of
//! FILE), then asks each replica's admin API (token from GOVGATE_TOKEN,
//! role auditor or admin) for an ordinary bundle of its whole log, its
//! verifier key and the consistency proof from the published checkpoint
//! to the bundle's, and writes the fleet manifest `fleet.json` beside
//! the bundles (`replicas/<replica id>/`).
//!
//! The manifest is not signed: there is no key of the fleet as a whole.
//! What vouches for it is what it holds: each published checkpoint is
//! signed by its replica's key, each bundle by its own checkpoint, and
//! the list of replicas is the database's, which an auditor can read
//! again. Exit 0: written, 1: a replica's API refused, 2: could not be
//! carried out (usage, database, connection, a replica missing or not
//! the one named).

use super::admin_client::AdminClient;
use super::models::{self, Failure};
use super::progress::Progress;
use crate::cluster::checkpoints::Published;
use anyhow::Context;
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;

/// The fleet manifest's file name.
pub(crate) const FLEET_MANIFEST: &str = "fleet.json";
/// Its format, first member of the manifest.
pub(crate) const FLEET_FORMAT: &str = "govgate-fleet/1";
/// Where the replicas' bundles are, each in a directory named by its id.
const REPLICAS_DIR: &str = "replicas";

/// `--replica ID=ADMIN_URL`.
#[derive(Debug, Clone)]
pub(crate) struct ReplicaUrl {
    /// The replica's `cluster.replica_id`.
    pub(crate) id: String,
    /// Its admin listener, `http://host:port`.
    pub(crate) admin_url: String,
}

/// Parses `ID=URL` on the command line.
pub(crate) fn parse_replica(text: &str) -> Result<ReplicaUrl, String> {
    let (id, url) = text.split_once('=').ok_or_else(|| {
        format!("{text:?}: expected ID=ADMIN_URL, e.g. gw-1=http://10.0.0.5:9090")
    })?;
    if id.is_empty() || url.is_empty() {
        return Err(format!("{text:?}: expected ID=ADMIN_URL"));
    }
    Ok(ReplicaUrl {
        id: id.to_owned(),
        admin_url: url.to_owned(),
    })
}

/// `fleet.json` (audit-format.md section 8.5).
#[derive(Debug, Serialize)]
struct FleetManifest {
    format: &'static str,
    /// When the database was read (UTC).
    exported_at: String,
    /// Every replica that published a checkpoint, by replica id.
    replicas: Vec<ReplicaRecord>,
}

#[derive(Debug, Serialize)]
struct ReplicaRecord {
    replica_id: String,
    /// The replica's log name (its checkpoints' first line).
    origin: String,
    /// The verifier key the replica served at `/ledger/key` (its current
    /// key): informative, as in a bundle's manifest; the auditor passes
    /// the keys they trust.
    vkey: String,
    /// The bundle's directory, relative to the fleet bundle.
    bundle: String,
    /// The size of the bundle's checkpoint (`checkpoint.txt`).
    size: u64,
    /// The checkpoint the replica published in `govgate_checkpoints`.
    published: PublishedRecord,
    /// RFC 6962 `PROOF(published.size, D[size])`, base64 hashes; empty
    /// when the sizes are equal.
    consistency: Vec<String>,
}

#[derive(Debug, Serialize)]
struct PublishedRecord {
    size: u64,
    note: String,
    published_at: String,
}

/// Runs `govgate export --fleet`.
pub(super) fn export(
    config: &Path,
    replicas: &[ReplicaUrl],
    out: &Path,
    payloads: bool,
    quiet: bool,
) -> ExitCode {
    match run(config, replicas, out, payloads, quiet) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused) => ExitCode::from(1),
        Err(Failure::Trouble(err)) => {
            eprintln!("govgate: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(
    config: &Path,
    replicas: &[ReplicaUrl],
    out: &Path,
    payloads: bool,
    quiet: bool,
) -> Result<(), Failure> {
    let cluster = crate::config::load_cluster(config)
        .map_err(|err| super::usage(format!("invalid configuration: {err}")))?
        .ok_or_else(|| {
            super::usage(format!(
                "{} has no [cluster]: --fleet reads the replicas' checkpoints from the fleet's database",
                config.display()
            ))
        })?;
    let token = models::token()?;
    for replica in replicas {
        models::check_admin_url(&replica.admin_url)?;
    }
    let runtime = super::runtime(std::num::NonZeroUsize::new(1))?;
    let exported_at = crate::ledger::entry::rfc3339_millis(std::time::SystemTime::now());
    let published = runtime
        .block_on(crate::cluster::checkpoints::read_published(&cluster.url))
        .context("reading govgate_checkpoints")?;
    let plan = match_replicas(&published, replicas)?;
    let staging = super::staging::Staging::begin(out)?;
    let written = runtime.block_on(async {
        let dir = staging.bundle();
        std::fs::create_dir_all(dir.join(REPLICAS_DIR))
            .with_context(|| format!("creating {}", dir.display()))?;
        let mut records = Vec::with_capacity(plan.len());
        for (published, url) in &plan {
            let client = AdminClient::new(url, &token);
            records.push(export_replica(&client, published, dir, payloads, quiet).await?);
        }
        let manifest = FleetManifest {
            format: FLEET_FORMAT,
            exported_at,
            replicas: records,
        };
        let mut text =
            serde_json::to_string_pretty(&manifest).context("writing the fleet manifest")?;
        text.push('\n');
        let path = dir.join(FLEET_MANIFEST);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok::<_, Failure>(manifest)
    });
    let manifest = staging.settle(written)?;
    let mut summary = format!(
        "wrote {}: {} replicas\n",
        out.display(),
        manifest.replicas.len()
    );
    for replica in &manifest.replicas {
        summary.push_str(&format!(
            "  {}: log {}, entries 0..{}, published checkpoint of size {}\n",
            replica.replica_id, replica.origin, replica.size, replica.published.size
        ));
    }
    super::print_out(&summary);
    Ok(())
}

/// `cluster.replica_id`'s form: 1-63 of `a-z 0-9 -`, not starting or
/// ending with `-`. It names a directory of the fleet bundle, so an id
/// read from the database or a manifest is checked before it is used.
pub(crate) fn is_replica_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

/// Each published checkpoint with its replica's admin URL: every replica
/// of the database must be given, and none that is not in it.
fn match_replicas<'p>(
    published: &'p [Published],
    given: &[ReplicaUrl],
) -> anyhow::Result<Vec<(&'p Published, String)>> {
    if let Some(odd) = published.iter().find(|p| !is_replica_id(&p.replica_id)) {
        anyhow::bail!(
            "govgate_checkpoints names a replica {:?}, which is not a replica id",
            odd.replica_id
        );
    }
    for (at, replica) in given.iter().enumerate() {
        anyhow::ensure!(
            !given[..at].iter().any(|other| other.id == replica.id),
            "--replica {} is given twice",
            replica.id
        );
        anyhow::ensure!(
            published.iter().any(|p| p.replica_id == replica.id),
            "replica `{}` has published no checkpoint in govgate_checkpoints: it is not a \
             replica of this fleet, or has not run yet (a replica publishes within a third \
             of cluster.lease_secs of its start)",
            replica.id
        );
    }
    let missing: Vec<&str> = published
        .iter()
        .filter(|p| !given.iter().any(|replica| replica.id == p.replica_id))
        .map(|p| p.replica_id.as_str())
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "every replica that published a checkpoint goes into the fleet bundle; give \
         --replica ID=ADMIN_URL for {}",
        missing.join(", ")
    );
    anyhow::ensure!(
        !published.is_empty(),
        "no replica has published a checkpoint in govgate_checkpoints"
    );
    Ok(published
        .iter()
        .map(|p| {
            let url = given
                .iter()
                .find(|replica| replica.id == p.replica_id)
                .map(|replica| replica.admin_url.clone())
                .unwrap_or_default();
            (p, url)
        })
        .collect())
}

/// The origin and size a checkpoint note states (first two lines;
/// unverified: the auditor's verifier checks the signatures).
fn stated(note: &str) -> Option<(&str, u64)> {
    let mut lines = note.lines();
    let origin = lines.next()?;
    let size = lines.next()?.parse().ok()?;
    Some((origin, size))
}

/// Downloads `published`'s replica's whole log as a bundle into
/// `replicas/<id>/`, with its key and the consistency proof.
async fn export_replica(
    client: &AdminClient,
    published: &Published,
    dir: &Path,
    payloads: bool,
    quiet: bool,
) -> Result<ReplicaRecord, Failure> {
    let id = &published.replica_id;
    let (origin, _) = stated(&published.note)
        .with_context(|| format!("replica `{id}` published a note that is not a checkpoint"))?;
    let relative = format!("{REPLICAS_DIR}/{id}");
    let bundle = dir.join(&relative);
    let path = if payloads {
        "/admin/ledger/export?from=0&payloads=true"
    } else {
        "/admin/ledger/export?from=0"
    };
    let progress = Progress::new("exporting", quiet)?;
    super::online_export::download(client, path, &bundle, progress).await?;
    let note_path = bundle.join("checkpoint.txt");
    let note = std::fs::read_to_string(&note_path)
        .with_context(|| format!("reading {}", note_path.display()))?;
    let (bundle_origin, size) =
        stated(&note).with_context(|| format!("{}: not a checkpoint", note_path.display()))?;
    if bundle_origin != origin {
        return Err(anyhow::anyhow!(
            "the gateway at {} is not replica `{id}`: its log is `{bundle_origin}`, and \
             `{id}` published a checkpoint of `{origin}`",
            client.base()
        )
        .into());
    }
    if size < published.size {
        return Err(anyhow::anyhow!(
            "replica `{id}` exported {size} entries, fewer than the {} of the checkpoint it \
             published: its store does not hold the log it published",
            published.size
        )
        .into());
    }
    let vkey = text(client, "/ledger/key").await?.trim().to_owned();
    let proof = text(
        client,
        &format!(
            "/ledger/proofs/consistency?old={}&new={size}",
            published.size
        ),
    )
    .await?;
    Ok(ReplicaRecord {
        replica_id: id.clone(),
        origin: origin.to_owned(),
        vkey,
        bundle: relative,
        size,
        published: PublishedRecord {
            size: published.size,
            note: published.note.clone(),
            published_at: published.published_at.clone(),
        },
        consistency: proof.lines().map(str::to_owned).collect(),
    })
}

/// `GET path`'s text, which must be a success.
async fn text(client: &AdminClient, path: &str) -> Result<String, Failure> {
    let (status, body) = client.call_raw(http::Method::GET, path, None).await?;
    if !status.is_success() {
        return Err(models::refusal_of(client, status, &body));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(id: &str) -> Published {
        Published {
            replica_id: id.to_owned(),
            size: 3,
            note: format!("o/{id}\n3\nAAAA\n\n\u{2014} o/{id} AAAA\n"),
            published_at: "2026-12-07T08:00:00.000Z".to_owned(),
        }
    }

    fn given(id: &str) -> ReplicaUrl {
        parse_replica(&format!("{id}=http://127.0.0.1:1")).unwrap()
    }

    #[test]
    fn every_published_replica_must_be_given_and_no_other() {
        let all = [published("r1"), published("r2")];
        let plan = match_replicas(&all, &[given("r2"), given("r1")]).unwrap();
        let ids: Vec<&str> = plan.iter().map(|(p, _)| p.replica_id.as_str()).collect();
        assert_eq!(ids, ["r1", "r2"]);
        let missing = match_replicas(&all, &[given("r1")]).unwrap_err();
        assert!(
            missing
                .to_string()
                .ends_with("give --replica ID=ADMIN_URL for r2"),
            "{missing}"
        );
        let unknown = match_replicas(&all, &[given("r1"), given("r2"), given("r3")]).unwrap_err();
        assert!(
            unknown
                .to_string()
                .starts_with("replica `r3` has published no checkpoint")
        );
        let twice = match_replicas(&all, &[given("r1"), given("r1")]).unwrap_err();
        assert_eq!(twice.to_string(), "--replica r1 is given twice");
        assert!(parse_replica("r1").is_err());
        let odd = [published("../r1")];
        assert!(match_replicas(&odd, &[given("../r1")]).is_err());
        assert!(is_replica_id("gw-eu-1") && !is_replica_id("-a") && !is_replica_id("A"));
        assert_eq!(stated(&published("r1").note), Some(("o/r1", 3)));
    }
}
