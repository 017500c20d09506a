//! Ledger operations on a running gateway, through its admin API (token
//! from GOVGATE_TOKEN, as for `govgate models`):
//! - `govgate verify --admin-url URL` asks for a full verification of its
//!   log (`POST /admin/ledger/verify`) and follows it (`GET
//!   /admin/ledger/verification`) until it ends. Exit 0: verified, 1: the
//!   log does not verify (or the API refused), 2: could not be carried out.
//! - `govgate rotate-key --admin-url URL` switches it to a new signing key
//!   (`POST /admin/ledger/rotate-key`). Exit 0: rotated, 1: refused, 2:
//!   could not be carried out.

use super::admin_client::AdminClient;
use super::models::{self, Failure};
use super::progress::Progress;
use http::Method;
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

/// How often the status is read while the round runs.
const POLL: Duration = Duration::from_millis(200);

/// Runs `govgate verify --admin-url`.
pub(super) fn verify(admin_url: &str, quiet: bool) -> ExitCode {
    exit_code(follow(admin_url, quiet))
}

/// Runs `govgate rotate-key --admin-url`.
pub(super) fn rotate_key(admin_url: &str) -> ExitCode {
    exit_code(rotate(admin_url).map(|()| ExitCode::SUCCESS))
}

fn exit_code(result: Result<ExitCode, Failure>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(Failure::Refused) => ExitCode::from(1),
        Err(Failure::Trouble(err)) => {
            eprintln!("govgate: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn rotate(admin_url: &str) -> Result<(), Failure> {
    let token = models::token()?;
    models::check_admin_url(admin_url)?;
    let runtime = super::runtime(std::num::NonZeroUsize::new(1))?;
    let client = AdminClient::new(admin_url, &token);
    let rotated = runtime.block_on(call(
        &client,
        Method::POST,
        "/admin/ledger/rotate-key",
        None,
    ))?;
    let text = |name: &str| rotated[name].as_str().unwrap_or_default().to_owned();
    super::print_out(&format!(
        "key rotated at seq {} (the entry is signed by the old key); the new key is in {}.\n\
         Receipts signed before verify with the old verifier key:\n{}\n\
         and everything after with the new one:\n{}\n",
        rotated["seq"],
        text("key_file"),
        text("old_vkey"),
        text("new_vkey"),
    ));
    Ok(())
}

/// One admin call (with a JSON `body` when given); a refusal is printed and
/// becomes [`Failure::Refused`].
pub(super) async fn call(
    client: &AdminClient,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, Failure> {
    let (status, bytes) = client.call_raw(method, path, body).await?;
    let value: Option<Value> = serde_json::from_slice(&bytes).ok();
    if !status.is_success() {
        return Err(models::refusal(
            client,
            status,
            value.as_ref(),
            &bytes,
            false,
        ));
    }
    value
        .filter(Value::is_object)
        .ok_or_else(|| models::not_the_api(client, status).into())
}

fn follow(admin_url: &str, quiet: bool) -> Result<ExitCode, Failure> {
    let token = models::token()?;
    models::check_admin_url(admin_url)?;
    let runtime = super::runtime(std::num::NonZeroUsize::new(1))?;
    let client = AdminClient::new(admin_url, &token);
    let mut progress = Progress::new("verifying", quiet)?;
    let outcome: Result<Value, Failure> = runtime.block_on(async {
        let started = call(&client, Method::POST, "/admin/ledger/verify", None).await?;
        let Some(run) = started["run"].as_u64() else {
            return Err(models::not_the_api(&client, http::StatusCode::ACCEPTED).into());
        };
        loop {
            let status = call(&client, Method::GET, "/admin/ledger/verification", None).await?;
            let full = &status["last_full"];
            if full["run"].as_u64().is_some_and(|done| done >= run) {
                return Ok(full.clone());
            }
            let running = &status["running"];
            if running["run"].as_u64() == Some(run) {
                let total = running["total"].as_u64().unwrap_or(0);
                if total > 0 {
                    progress.update(running["checked"].as_u64().unwrap_or(0), total);
                }
            }
            tokio::time::sleep(POLL).await;
        }
    });
    progress.finish();
    let outcome = outcome?;
    let number = |name: &str| outcome[name].as_u64().unwrap_or(0);
    let text = |name: &str| outcome[name].as_str().unwrap_or_default().to_owned();
    Ok(match text("result").as_str() {
        "ok" => {
            super::print_out(&format!(
                "ledger ok: the running gateway verified {} entries (full, run {}, {:.1} s)\n",
                number("to_size"),
                number("run"),
                outcome["seconds"].as_f64().unwrap_or(0.0),
            ));
            ExitCode::SUCCESS
        }
        "failed" => {
            eprintln!(
                "govgate: ledger does NOT verify: first bad seq {}: {}",
                number("bad_seq"),
                text("reason")
            );
            ExitCode::FAILURE
        }
        _ => {
            eprintln!(
                "govgate: the running gateway could not verify its ledger: {}",
                text("reason")
            );
            ExitCode::from(2)
        }
    })
}
