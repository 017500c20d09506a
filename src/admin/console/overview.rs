//! What the overview shows, read through the admin API as the signed-in
//! person, and the alerts the gateway raises from it: conditions it knows
//! itself, each named after the shipped Prometheus rule
//! (config/prometheus/govgate-alerts.yml) that watches the same thing,
//! where one does, so operators see one name in both places.

use super::session::Session;
use super::{Console, read};
use crate::ledger::export::UtcTime;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Holds whose deadline is at most this far are announced.
const DEADLINE_NEAR_MS: u64 = 60_000;
/// A held answer waiting longer than this (`GovgateHeldAnswersWaiting`).
const HOLD_WAITING_SECS: u64 = 3600;
/// Rounds of witnessing a witness may miss before it is late.
const WITNESS_ROUNDS: u64 = 3;

/// The admin API's answers behind the overview (`None`: not answered,
/// e.g. a role the person lacks, or nothing configured).
pub(crate) struct Overview {
    pub(crate) models: Value,
    pub(crate) reviews: Option<Value>,
    /// The latest signed checkpoint (a signed note).
    pub(crate) checkpoint: Option<String>,
    /// When it was signed: the time of the entries of its batch, which
    /// its last entry carries (Unix ms).
    pub(crate) checkpoint_ms: Option<u64>,
    pub(crate) verification: Option<Value>,
    /// Entries recorded in the last hour and day.
    pub(crate) recent: Vec<(&'static str, u64)>,
    /// `GET /admin/decisions/summary`.
    pub(crate) decided: Option<Value>,
    /// `GET /admin/risks/breaches`.
    pub(crate) breaches: Option<Value>,
    /// `GET /ledger/witnesses`, when witnesses are configured.
    pub(crate) witnesses: Option<Value>,
    /// Why the ledger does not commit (`GET /readyz`), when it does not.
    pub(crate) not_committing: Option<String>,
    pub(crate) now_ms: u64,
}

/// Unix milliseconds of an RFC 3339 time.
pub(crate) fn unix_ms(text: &str) -> Option<u64> {
    let time = UtcTime::parse(text).ok()?;
    Some((time.unix_seconds() * 1000.0).round().max(0.0) as u64)
}

fn size_of(note: &str) -> Option<u64> {
    note.lines().nth(1)?.trim().parse().ok()
}

impl Overview {
    /// Reads everything the overview shows; `models` already read.
    pub(crate) async fn gather(console: &Console, session: &Session, models: Value) -> Self {
        let now = SystemTime::now();
        let reviews = read(console, session, "/admin/reviews?status=pending").await;
        let checkpoint = read(console, session, "/ledger/checkpoint").await;
        let checkpoint = checkpoint.status.is_success().then_some(checkpoint.text);
        let mut checkpoint_ms = None;
        if let Some(size) = checkpoint.as_deref().and_then(size_of).filter(|s| *s > 0) {
            let last = read(
                console,
                session,
                &format!("/ledger/entries?from={}&count=1", size - 1),
            )
            .await;
            let entry: Option<Value> = serde_json::from_str(last.text.trim()).ok();
            checkpoint_ms = entry
                .as_ref()
                .and_then(|entry| entry["time"].as_str())
                .and_then(unix_ms);
        }
        let verification = read(console, session, "/admin/ledger/verification").await;
        // Entries recorded in the last hour and day: the seq ranges the
        // decision search finds by binary search over the entries' times
        // (`limit=0`: the range alone, no entry read).
        let mut recent = Vec::new();
        for (label, seconds) in [("hour", 3600), ("day", 86_400)] {
            let since = crate::ledger::entry::rfc3339_millis(now - Duration::from_secs(seconds));
            let query = serde_urlencoded::to_string([("from", since.as_str()), ("limit", "0")])
                .unwrap_or_default();
            let found = read(console, session, &format!("/admin/decisions?{query}")).await;
            let range = &found.json["range"];
            if let (Some(from), Some(to)) = (range["from_seq"].as_u64(), range["to_seq"].as_u64()) {
                recent.push((label, to - from));
            }
        }
        let decided = read(console, session, "/admin/decisions/summary").await;
        let breaches = read(console, session, "/admin/risks/breaches").await;
        let witnesses = read(console, session, "/ledger/witnesses").await;
        let ready = read(console, session, "/readyz").await;
        let ok = |answer: super::api::Answer| answer.status.is_success().then_some(answer.json);
        Self {
            models,
            reviews: ok(reviews),
            checkpoint,
            checkpoint_ms,
            verification: ok(verification),
            recent,
            decided: ok(decided),
            breaches: ok(breaches),
            witnesses: ok(witnesses),
            not_committing: (!ready.status.is_success()).then(|| {
                ready.json["reason"]
                    .as_str()
                    .unwrap_or("the ledger does not commit")
                    .to_owned()
            }),
            now_ms: now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }
}

/// How urgent an alert is: the shipped rules' `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    /// The audit trail or the gateway is at stake.
    Critical,
    /// For the model's owner, the review team or the operators.
    Warning,
}

impl Severity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

/// One alert on the overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Alert {
    /// The shipped rule's name, or the console's own (docs/console.md).
    pub(crate) name: &'static str,
    pub(crate) severity: Severity,
    pub(crate) text: String,
    /// Where to look.
    pub(crate) link: Option<String>,
}

/// An age in words: "12 s ago", "3 min ago", "5 h ago", "2 d ago".
pub(crate) fn age(now_ms: u64, then_ms: u64) -> String {
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    match secs {
        0..120 => format!("{secs} s ago"),
        120..7200 => format!("{} min ago", secs / 60),
        7200..172_800 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// The alerts `overview` gives rise to, most severe first.
pub(crate) fn alerts(overview: &Overview) -> Vec<Alert> {
    let mut out = Vec::new();
    if let Some(reason) = &overview.not_committing {
        out.push(Alert {
            name: "GovgateLedgerNotCommitting",
            severity: Severity::Critical,
            text: format!(
                "The ledger does not commit: {reason}. Requests are refused (503) until it does."
            ),
            link: None,
        });
    }
    if let Some(last) = overview.verification.as_ref().map(|v| &v["last"])
        && last["result"] == "failed"
    {
        out.push(Alert {
            name: "GovgateLedgerVerificationFailed",
            severity: Severity::Critical,
            text: format!(
                "The last verification ({}) found the ledger does not verify at entry {}: {}",
                last["finished_at"].as_str().unwrap_or("-"),
                last["bad_seq"],
                last["reason"].as_str().unwrap_or("-")
            ),
            link: None,
        });
    }
    for breach in breaches(overview) {
        let model = breach["model"].as_str().unwrap_or("");
        out.push(Alert {
            name: "GovgateRiskIndicatorBreached",
            severity: Severity::Warning,
            text: format!(
                "Risk {}: indicator {} of {} is beyond its threshold ({} {})",
                breach["risk"].as_str().unwrap_or(""),
                breach["indicator"].as_str().unwrap_or(""),
                model,
                breach["direction"].as_str().unwrap_or(""),
                breach["threshold"]
            ),
            link: Some(format!("/console/kpis/{}", super::pages::seg(model))),
        });
    }
    hold_alerts(overview, &mut out);
    witness_alerts(overview, &mut out);
    out.sort_by_key(|alert| alert.severity != Severity::Critical);
    out
}

pub(crate) fn breaches(overview: &Overview) -> &[Value] {
    overview
        .breaches
        .as_ref()
        .and_then(|b| b["breaches"].as_array())
        .map_or(&[], Vec::as_slice)
}

fn hold_alerts(overview: &Overview, out: &mut Vec<Alert>) {
    let holds = overview
        .reviews
        .as_ref()
        .and_then(|r| r["reviews"].as_array())
        .into_iter()
        .flatten()
        .filter(|review| review["review_kind"] == "hold");
    for review in holds {
        let id = review["review_id"].as_str().unwrap_or("");
        let link = Some(format!("/console/reviews/{}", super::pages::seg(id)));
        let model = review["model"].as_str().unwrap_or("");
        if let Some(deadline) = review["deadline"].as_str().and_then(unix_ms)
            && deadline <= overview.now_ms + DEADLINE_NEAR_MS
        {
            let left = deadline.saturating_sub(overview.now_ms) / 1000;
            out.push(Alert {
                name: "HoldDeadlineNear",
                severity: Severity::Warning,
                text: format!(
                    "A held answer of {model} times out in {left} s ({}): then {} applies without a person's decision",
                    review["deadline"].as_str().unwrap_or(""),
                    review["on_timeout"].as_str().unwrap_or("its on_timeout")
                ),
                link: link.clone(),
            });
        }
        if review["age_seconds"]
            .as_u64()
            .is_some_and(|age| age > HOLD_WAITING_SECS)
        {
            out.push(Alert {
                name: "GovgateHeldAnswersWaiting",
                severity: Severity::Warning,
                text: format!(
                    "A held answer of {model} has waited {} s for a reviewer",
                    review["age_seconds"]
                ),
                link,
            });
        }
    }
}

/// Results of a witnessing round that got no cosignature.
const FAILED_ROUNDS: [&str; 5] = [
    "conflict",
    "refused",
    "unreachable",
    "invalid_cosignature",
    "failed",
];

fn witness_alerts(overview: &Overview, out: &mut Vec<Alert>) {
    let Some(witnesses) = &overview.witnesses else {
        return;
    };
    let size = overview
        .checkpoint
        .as_deref()
        .and_then(size_of)
        .unwrap_or(0);
    let interval_ms = witnesses["interval_secs"].as_u64().unwrap_or(10) * 1000;
    let checkpoint_age = overview
        .checkpoint_ms
        .map_or(0, |at| overview.now_ms.saturating_sub(at));
    for witness in witnesses["witnesses"].as_array().into_iter().flatten() {
        let name = witness["name"].as_str().unwrap_or("");
        let last = &witness["last"];
        if let Some(result) = last["result"].as_str()
            && FAILED_ROUNDS.contains(&result)
        {
            out.push(Alert {
                name: "WitnessCosignatureMissing",
                severity: Severity::Warning,
                text: format!(
                    "Witness {name} did not cosign checkpoint {} in its last round: {result}{}",
                    last["size"],
                    last["detail"]
                        .as_str()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
                link: None,
            });
            continue;
        }
        let behind = witness["cosigned_size"].as_u64().is_none_or(|s| s < size);
        let cosigned_ms = witness["cosigned_time"].as_u64().map(|s| s * 1000);
        let stale = cosigned_ms
            .is_none_or(|at| overview.now_ms.saturating_sub(at) > WITNESS_ROUNDS * interval_ms);
        if size > 0 && behind && stale && checkpoint_age > interval_ms {
            out.push(Alert {
                name: "WitnessCosignatureLate",
                severity: Severity::Warning,
                text: format!(
                    "Witness {name} has not cosigned the latest checkpoint ({size} entries) for over {} rounds of witnessing",
                    WITNESS_ROUNDS
                ),
                link: None,
            });
        }
    }
}

#[cfg(test)]
#[path = "overview_tests.rs"]
mod tests;
