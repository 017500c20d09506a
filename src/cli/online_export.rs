//! `govgate export --admin-url URL --out DIR`: downloads a bundle from a
//! running gateway (`GET /admin/ledger/export`, role auditor or admin,
//! token from GOVGATE_TOKEN) and unpacks its tar archive into the staged
//! export directory (`<out>.partial`, renamed to `--out` once every file
//! is in; see staging.rs), as the offline export writes its bundle. Exit
//! 0: written, 1: the API refused, 2: could not be carried out (usage,
//! token, connection, an archive that broke off or is not a bundle).

use super::admin_client::AdminClient;
use super::models::{self, Failure};
use super::progress::Progress;
use crate::ledger::export::ExportRequest;
use crate::ledger::export::stream::{ARCHIVE_ORDER, MANIFEST};
use crate::witness::bundle::{COSIGNED_FILE, PROOF_FILE};
use anyhow::Context;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// How long the gateway may take before the archive's head: it reads the
/// whole selection once before it can say how long the archive is.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How long the archive may pause between two chunks.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Chunks received and not yet unpacked, at most.
const QUEUED_CHUNKS: usize = 8;

/// Runs `govgate export --admin-url`.
pub(super) fn export(
    admin_url: &str,
    out: &Path,
    request: &ExportRequest,
    quiet: bool,
) -> ExitCode {
    match run(admin_url, out, request, quiet) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused) => ExitCode::from(1),
        Err(Failure::Trouble(err)) => {
            eprintln!("govgate: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(admin_url: &str, out: &Path, request: &ExportRequest, quiet: bool) -> Result<(), Failure> {
    let token = models::token()?;
    models::check_admin_url(admin_url)?;
    let progress = Progress::new("exporting", quiet)?;
    let staging = super::staging::Staging::begin(out)?;
    let runtime = super::runtime(std::num::NonZeroUsize::new(1))?;
    let client = AdminClient::new(admin_url, &token);
    let path = format!("/admin/ledger/export{}", query(request));
    let downloaded = runtime.block_on(download(&client, &path, staging.bundle(), progress));
    let summary = staging.settle(downloaded)?;
    if let Some(size) = summary.headers.get("govgate-export-cosigned-size") {
        super::print_out(&format!(
            "added the cosigned checkpoint of size {} ({COSIGNED_FILE})\n",
            size.to_str().unwrap_or("?")
        ));
    }
    let form = if summary.header("govgate-export-form") == "sparse" {
        format!(
            " (sparse: {} selected entries with inclusion proofs)",
            summary.header("govgate-export-selected")
        )
    } else {
        String::new()
    };
    super::print_out(&format!(
        "wrote {}: entries {}..{}{form}, {} payloads, checkpoint of size {}\n",
        out.display(),
        summary.header("govgate-export-from"),
        summary.header("govgate-export-to"),
        summary.header("govgate-export-payloads"),
        summary.header("govgate-export-size"),
    ));
    Ok(())
}

/// The query string of `request`.
fn query(request: &ExportRequest) -> String {
    let mut parts = vec![format!("from={}", request.from)];
    if let Some(to) = request.to {
        parts.push(format!("to={to}"));
    }
    let filter = &request.filter;
    for (name, value) in [
        ("since", &filter.since),
        ("until", &filter.until),
        ("model", &filter.model),
    ] {
        if let Some(value) = value {
            parts.push(format!("{name}={}", encode(value)));
        }
    }
    if request.payloads {
        parts.push("payloads=true".to_owned());
    }
    if request.checkpoints_every > 1 {
        parts.push(format!("checkpoints_every={}", request.checkpoints_every));
    }
    format!("?{}", parts.join("&"))
}

/// Percent-encodes every byte but RFC 3986's unreserved ones (a time's
/// `+` would otherwise read as a space).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The answer's head, for the summary.
pub(super) struct Summary {
    headers: http::HeaderMap,
}

impl Summary {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("?")
    }
}

pub(super) async fn download(
    client: &AdminClient,
    path: &str,
    bundle: &Path,
    progress: Progress,
) -> Result<Summary, Failure> {
    let response = client.get_streaming(path, HEAD_TIMEOUT).await?;
    let status = response.status();
    if !status.is_success() {
        let body = tokio::time::timeout(IDLE_TIMEOUT, response.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        return Err(models::refusal_of(client, status, &body));
    }
    let is_tar = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == b"application/x-tar");
    if !is_tar {
        return Err(models::not_the_api(client, status).into());
    }
    let headers = response.headers().clone();
    let total: u64 = headers
        .get("govgate-export-entries")
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    std::fs::create_dir(bundle).with_context(|| format!("creating {}", bundle.display()))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUED_CHUNKS);
    let dir = bundle.to_path_buf();
    let unpacking = tokio::task::spawn_blocking(move || unpack(rx, &dir, progress, total));
    let mut body = response.into_body();
    let mut received = 0u64;
    let read: anyhow::Result<()> = async {
        loop {
            let frame = tokio::time::timeout(IDLE_TIMEOUT, body.frame())
                .await
                .with_context(|| format!("the archive paused for {} s", IDLE_TIMEOUT.as_secs()))?;
            let Some(frame) = frame else { return Ok(()) };
            let frame =
                frame.with_context(|| format!("the archive broke off after {received} bytes"))?;
            if let Ok(data) = frame.into_data() {
                received += data.len() as u64;
                if tx.send(data).await.is_err() {
                    // The unpacker stopped: its error says why.
                    return Ok(());
                }
            }
        }
    }
    .await;
    drop(tx);
    let unpacked = unpacking
        .await
        .map_err(|_| anyhow::anyhow!("the unpacking thread panicked"))?;
    read?;
    unpacked?;
    Ok(Summary { headers })
}

/// Reads the archive from the chunks `rx` receives.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Counts the lines written to `entries.jsonl` for the progress display.
struct Counting<'p> {
    file: std::io::BufWriter<std::fs::File>,
    progress: Option<(&'p mut Progress, u64, u64)>,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some((progress, done, total)) = self.progress.as_mut() {
            *done += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
            progress.update(*done, (*total).max(*done));
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Unpacks the archive into `dir`: only the bundle's own file names, each
/// once, as regular files, and the manifest must be among them.
fn unpack(
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    dir: &Path,
    mut progress: Progress,
    total: u64,
) -> anyhow::Result<()> {
    let mut archive = tar::Archive::new(ChunkReader {
        rx,
        current: Bytes::new(),
    });
    let mut seen: Vec<String> = Vec::new();
    let entries = archive.entries().context("reading the archive")?;
    for entry in entries {
        let mut entry = entry.context("reading the archive")?;
        let name = entry
            .path()
            .ok()
            .and_then(|path| path.to_str().map(str::to_owned))
            .unwrap_or_default();
        let known = [MANIFEST, COSIGNED_FILE, PROOF_FILE].contains(&name.as_str())
            || ARCHIVE_ORDER.contains(&name.as_str());
        anyhow::ensure!(
            known && entry.header().entry_type() == tar::EntryType::Regular,
            "the archive holds {name:?}, which is not a bundle file"
        );
        anyhow::ensure!(!seen.contains(&name), "the archive holds {name:?} twice");
        let path = dir.join(&name);
        let file = std::fs::File::create_new(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let mut out = Counting {
            file: std::io::BufWriter::new(file),
            progress: (name == "entries.jsonl").then_some((&mut progress, 0, total)),
        };
        std::io::copy(&mut entry, &mut out)
            .and_then(|_| out.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        seen.push(name);
    }
    progress.finish();
    anyhow::ensure!(
        seen.iter().any(|name| name == MANIFEST),
        "the archive ended without {MANIFEST}: it is incomplete"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_encodes_times_and_names() {
        let request = ExportRequest {
            from: 3,
            to: Some(9),
            filter: crate::ledger::export::Filter {
                since: Some("2026-11-27T12:00:00+01:00".to_owned()),
                until: None,
                model: Some("a b&c".to_owned()),
            },
            payloads: true,
            checkpoints_every: 4,
        };
        assert_eq!(
            query(&request),
            "?from=3&to=9&since=2026-11-27T12%3A00%3A00%2B01%3A00&model=a%20b%26c\
             &payloads=true&checkpoints_every=4"
        );
    }
}
