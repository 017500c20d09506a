//! `govgate report --admin-url URL --from T1 --to T2 --out DIR`: the period
//! report made by a running gateway (`POST /admin/reports`, role auditor,
//! admin or approver:ai_officer, token from GOVGATE_TOKEN), followed to its
//! end with its progress on stderr, then downloaded: its three files and
//! its bundle (a tar archive, unpacked as `govgate export --admin-url`
//! does) into `<out>.partial`, renamed to `--out` once complete (see
//! staging.rs), so that `govgate verify --report DIR` checks it as it
//! checks one made offline. Exit 0: written; 1: the API refused, or the
//! gateway could not make it (a log that does not verify); 2: usage (the
//! period, an empty period, `--out`), token or connection problem.

use super::admin_client::AdminClient;
use super::models::{self, Failure};
use super::online::call;
use super::progress::Progress;
use crate::admin::reports::FILES;
use anyhow::Context;
use http::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// How often the job's status is read while it runs.
const POLL: Duration = Duration::from_millis(200);

/// What `govgate report --admin-url` asks for.
pub(super) struct Asked<'a> {
    pub(super) admin_url: &'a str,
    pub(super) from: &'a str,
    pub(super) to: &'a str,
    pub(super) out: &'a Path,
    pub(super) quiet: bool,
}

/// Runs `govgate report --admin-url`.
pub(super) fn report(asked: &Asked<'_>) -> ExitCode {
    match run(asked) {
        Ok(code) => code,
        Err(Failure::Refused) => ExitCode::FAILURE,
        Err(Failure::Trouble(err)) => {
            eprintln!("govgate: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// How a job ended that made no report.
struct NotMade {
    code: String,
    message: String,
}

impl NotMade {
    /// A period without entries is a usage error, as offline.
    fn exit_code(&self) -> ExitCode {
        match self.code.as_str() {
            "empty_period" => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

fn run(asked: &Asked<'_>) -> Result<ExitCode, Failure> {
    let token = models::token()?;
    models::check_admin_url(asked.admin_url)?;
    crate::report::Period::new(asked.from, asked.to)
        .map_err(|err| super::usage(err.to_string()))?;
    let staging = super::staging::Staging::begin(asked.out)?;
    let runtime = super::runtime(std::num::NonZeroUsize::new(1))?;
    let client = AdminClient::new(asked.admin_url, &token);
    let made = runtime.block_on(make(&client, asked, staging.bundle()));
    match made {
        Ok(Ok(said)) => {
            staging.complete()?;
            super::print_out(&said);
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(not_made)) => {
            staging.abandon();
            eprintln!(
                "govgate: the gateway made no report ({}): {}",
                not_made.code, not_made.message
            );
            Ok(not_made.exit_code())
        }
        Err(failure) => {
            staging.abandon();
            Err(failure)
        }
    }
}

/// Starts the job, follows it, downloads the report into `dir`; what to
/// print, or why the gateway made none.
async fn make(
    client: &AdminClient,
    asked: &Asked<'_>,
    dir: &Path,
) -> Result<Result<String, NotMade>, Failure> {
    let body = json!({ "from": asked.from, "to": asked.to });
    let started = call(client, Method::POST, "/admin/reports", Some(&body)).await?;
    let Some(id) = started["id"].as_u64() else {
        return Err(models::not_the_api(client, http::StatusCode::ACCEPTED).into());
    };
    let status = follow(client, id, asked.quiet).await?;
    if status["state"] != "done" {
        let error = &status["error"];
        let text = |name: &str| error[name].as_str().unwrap_or("?").to_owned();
        return Ok(Err(NotMade {
            code: text("code"),
            message: text("message"),
        }));
    }
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in FILES {
        let path = format!("/admin/reports/{id}/files/{name}");
        let (code, bytes) = client.call_raw(Method::GET, &path, None).await?;
        if !code.is_success() {
            return Err(models::refusal_of(client, code, &bytes));
        }
        write(&dir.join(name), &bytes)?;
    }
    let progress = Progress::new("exporting", asked.quiet)?;
    let bundle = format!("/admin/reports/{id}/bundle");
    super::online_export::download(client, &bundle, &dir.join("bundle"), progress).await?;
    Ok(Ok(format!(
        "report of {} .. {} written to {} by the gateway at {} (its report {id}): \
         entries {}..={}, report_issued at seq {}\n",
        asked.from,
        asked.to,
        asked.out.display(),
        client.base(),
        status["first_seq"],
        status["last_seq"],
        status["report_issued_seq"],
    )))
}

/// Reads the job's status until it has ended, showing each phase's
/// progress; its last status.
async fn follow(client: &AdminClient, id: u64, quiet: bool) -> Result<Value, Failure> {
    let path = format!("/admin/reports/{id}");
    let mut shown: Option<(String, Progress)> = None;
    let status = loop {
        let status = call(client, Method::GET, &path, None).await?;
        if status["state"] != "running" {
            break status;
        }
        let phase = status["phase"].as_str().unwrap_or_default();
        if shown.as_ref().is_none_or(|(at, _)| at != phase) {
            if let Some((_, progress)) = shown.take() {
                progress.finish();
            }
            shown = Some((phase.to_owned(), Progress::new(phase_label(phase), quiet)?));
        }
        let total = status["total"].as_u64().unwrap_or(0);
        if let Some((_, progress)) = shown.as_mut()
            && total > 0
        {
            progress.update(status["done"].as_u64().unwrap_or(0), total);
        }
        tokio::time::sleep(POLL).await;
    };
    if let Some((_, progress)) = shown {
        progress.finish();
    }
    Ok(status)
}

/// What the progress line says in each phase (as the offline command's).
fn phase_label(phase: &str) -> &'static str {
    match phase {
        "verifying" => "verifying",
        "reading" => "reading the period",
        _ => "recording",
    }
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
