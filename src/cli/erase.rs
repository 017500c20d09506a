//! `govgate erase`: erases decisions' payloads, each erasure recorded as a
//! `payload_erased` entry first. Offline on a stopped gateway's store, or
//! with `--admin-url` on a running gateway (`POST /admin/payloads/erase`,
//! role admin, token from GOVGATE_TOKEN), which it calls until no
//! selected decision is left. The selections are the same: `--decision`
//! (repeatable), `--caller`, `--from`/`--to` (RFC 3339), `--subject`.

use super::admin_client::AdminClient;
use super::models::{self, Failure};
use anyhow::Context;
use serde_json::{Value, json};
use std::process::ExitCode;

/// What `govgate erase` was asked to erase.
#[derive(Debug, Clone, Default)]
pub(super) struct Asked {
    pub(super) decisions: Vec<String>,
    pub(super) caller: Option<String>,
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) subject: Option<String>,
    pub(super) reason: String,
    pub(super) dry_run: bool,
}

impl Asked {
    /// The admin API's request body.
    fn body(&self) -> Value {
        let mut body = json!({ "reason": self.reason, "dry_run": self.dry_run });
        if !self.decisions.is_empty() {
            body["decision_ids"] = json!(self.decisions);
        }
        for (name, value) in [
            ("caller", &self.caller),
            ("from", &self.from),
            ("to", &self.to),
            ("subject", &self.subject),
        ] {
            if let Some(value) = value {
                body[name] = json!(value);
            }
        }
        body
    }
}

/// Runs `govgate erase --admin-url`: exit 0 done, 1 refused, 2 trouble.
pub(super) fn online(admin_url: &str, asked: &Asked) -> ExitCode {
    match call_until_done(admin_url, asked) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused) => ExitCode::from(1),
        Err(Failure::Trouble(err)) => {
            eprintln!("govgate: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn call_until_done(admin_url: &str, asked: &Asked) -> Result<(), Failure> {
    let token = models::token()?;
    models::check_admin_url(admin_url)?;
    let runtime = super::runtime(std::num::NonZeroUsize::new(1))?;
    let client = AdminClient::new(admin_url, &token);
    let body = asked.body();
    let mut total = 0usize;
    loop {
        let answer = runtime.block_on(super::online::call(
            &client,
            http::Method::POST,
            "/admin/payloads/erase",
            Some(&body),
        ))?;
        let decisions = answer["decisions"].as_array().cloned().unwrap_or_default();
        let mut out = String::new();
        for decision in &decisions {
            let id = decision["decision_id"].as_str().unwrap_or_default();
            let payloads = seqs(&decision["payload_seqs"]);
            if asked.dry_run {
                out.push_str(&format!(
                    "would erase decision {id}: payload seqs {payloads}\n"
                ));
            } else {
                out.push_str(&format!(
                    "decision {id}: payload erased (seqs {payloads}), erasure recorded at seqs {}\n",
                    seqs(&decision["erasure_seqs"])
                ));
            }
        }
        for unknown in answer["unknown"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "no decision {} in this ledger\n",
                unknown.as_str().unwrap_or_default()
            ));
        }
        total += decisions.len();
        let more = answer["more"].as_bool().unwrap_or(false);
        if asked.dry_run && more {
            out.push_str("... and more (a dry run lists the first ones only)\n");
        }
        super::print_out(&out);
        // Erased decisions are no longer selected: the next call gets the next ones.
        if asked.dry_run || !more || decisions.is_empty() {
            break;
        }
    }
    super::print_out(&format!(
        "{total} decision(s) {}\n",
        if asked.dry_run {
            "would be erased"
        } else {
            "erased"
        }
    ));
    Ok(())
}

fn seqs(value: &Value) -> String {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .map(|seq| seq.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The offline form's selection, as the running gateway's would be.
pub(super) fn offline_selection(
    asked: &Asked,
    config: &crate::config::OfflineConfig,
) -> anyhow::Result<crate::ledger::erase::Selection> {
    use crate::ledger::erase::Selection;
    let given = [
        !asked.decisions.is_empty(),
        asked.caller.is_some(),
        asked.from.is_some() || asked.to.is_some(),
        asked.subject.is_some(),
    ];
    if given.iter().filter(|given| **given).count() != 1 {
        return Err(super::usage(
            "give exactly one of --decision, --caller, --from with --to, or --subject",
        ));
    }
    if !asked.decisions.is_empty() {
        let ids = asked
            .decisions
            .iter()
            .map(|id| {
                crate::decision::DecisionId::parse(id)
                    .ok_or_else(|| super::usage("--decision: a decision id is 32 hex digits"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut seen = std::collections::HashSet::new();
        let ids = ids.into_iter().filter(|id| seen.insert(*id)).collect();
        return Ok(Selection::Decisions(ids));
    }
    if let Some(caller) = &asked.caller {
        return Ok(Selection::Caller(caller.clone()));
    }
    if let Some(subject) = &asked.subject {
        let path = crate::config::subject::key_path(
            config.ledger.subject_key_file.as_deref(),
            &config.data_dir,
        );
        let key = crate::config::subject::read_key(&path)?.with_context(|| {
            format!(
                "no subject key at {}: no decision of this ledger carries a subject",
                path.display()
            )
        })?;
        return Ok(Selection::Subject(key.hash(subject)));
    }
    let (Some(from), Some(to)) = (&asked.from, &asked.to) else {
        return Err(super::usage("a time range needs both --from and --to"));
    };
    let ms = |flag: &str, text: &str| -> anyhow::Result<u64> {
        let time = crate::ledger::export::UtcTime::parse(text)
            .map_err(|err| super::usage(format!("{flag}: {err}")))?;
        Ok((time.unix_seconds() * 1000.0).round().max(0.0) as u64)
    };
    Ok(Selection::Received {
        from_ms: ms("--from", from)?,
        to_ms: ms("--to", to)?,
    })
}
