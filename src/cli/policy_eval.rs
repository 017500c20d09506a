//! `govgate policies eval DIR`: a policy folder evaluated, both stages,
//! on the input document of a recorded decision (from a stopped gateway's
//! ledger, read only, as `govgate proof` reads it) or of a JSON file; with
//! `--replay FROM..TO`, on every decision of a range of seqs, counting the
//! verdicts that would change. Exit 0: evaluated; 1: an evaluation failed
//! or the decision cannot be rebuilt; 2: usage, folder or ledger problem.

use super::ledger::Source;
use super::{print_out, usage};
use crate::ledger::store::LedgerStore;
use crate::review::{
    NotReplayable, PolicyInput, PolicySet, RecordedInput, Verdict, recorded_input,
};
use anyhow::Context;
use serde_json::Value;
use std::fmt::Write;
use std::path::Path;

/// What `eval` evaluates.
pub(super) enum Target<'a> {
    /// A decision of the ledger, by id.
    Decision(&'a str),
    /// An input document in a JSON file.
    File(&'a Path),
    /// Every decision of seqs `from..to`.
    Replay { from: u64, to: u64 },
}

/// Parses `FROM..TO` (seqs, `TO` exclusive).
pub(super) fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (from, to) = text
        .split_once("..")
        .ok_or_else(|| "a range is FROM..TO (seqs, TO exclusive)".to_owned())?;
    let number = |s: &str| s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
    let (from, to) = (number(from)?, number(to)?);
    if from >= to {
        return Err(format!("{from}..{to} is empty"));
    }
    Ok((from, to))
}

/// Runs `eval`; see the module docs for exit codes.
pub(super) fn run(dir: &Path, target: Target<'_>, ledger: Source<'_>) -> anyhow::Result<()> {
    let set = PolicySet::load(dir).map_err(|e| usage(format!("{}: {e}", dir.display())))?;
    match target {
        Target::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("{}: {e}", path.display())))?;
            let doc: Value = serde_json::from_str(&text)
                .map_err(|e| usage(format!("{}: not JSON: {e}", path.display())))?;
            let input =
                from_document(&doc).map_err(|e| usage(format!("{}: {e}", path.display())))?;
            let mut out = String::new();
            let failed = print_stages(&mut out, &set, &input, None);
            print_out(&out);
            failed.map_or(Ok(()), Err)
        }
        Target::Decision(id) => {
            let decision = crate::decision::DecisionId::parse(id)
                .ok_or_else(|| usage("--decision: a decision id is 32 hex digits"))?;
            let (store, _) = ledger.open(crate::ledger::wal::Tail::Keep)?;
            let seq = store
                .decision_seq(decision.as_bytes())?
                .with_context(|| format!("no decision {id} in this ledger"))?;
            let entry = read_entry(&store, seq)?;
            let input = rebuild(&store, &entry)
                .with_context(|| format!("decision {id} (seq {seq}) cannot be evaluated again"))?;
            let mut out = format!(
                "decision {id} (seq {seq}): {} {} for {}, outcome {}\n",
                entry["model"].as_str().unwrap_or("?"),
                entry["version"].as_str().unwrap_or("?"),
                entry["caller"].as_str().unwrap_or("?"),
                entry["outcome"].as_str().unwrap_or("?")
            );
            if input.status_assumed {
                out.push_str(
                    "note: the upstream's status of a held or denied answer is not recorded; 200 assumed\n",
                );
            }
            let failed = print_stages(&mut out, &set, &input, Some(&entry["policy"]));
            print_out(&out);
            failed.map_or(Ok(()), Err)
        }
        Target::Replay { from, to } => replay(&set, ledger, from, to),
    }
}

fn read_entry(store: &impl LedgerStore, seq: u64) -> anyhow::Result<Value> {
    let bytes = store
        .entry(seq)?
        .with_context(|| format!("no entry {seq} in this ledger"))?;
    serde_json::from_slice(&bytes).with_context(|| format!("entry {seq} is not JSON"))
}

/// The inputs of a recorded decision, with its version's risk class.
fn rebuild(store: &impl LedgerStore, entry: &Value) -> anyhow::Result<RecordedInput> {
    let seq = entry["seq"].as_u64().context("entry without seq")?;
    let risk = match entry["approval_seq"].as_u64() {
        Some(at) => read_entry(store, at)?["risk_class"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        None => String::new(),
    };
    let payload = store.payload(seq)?;
    Ok(recorded_input(entry, payload.as_deref(), &risk)?)
}

/// Evaluates both stages, printing each verdict (and the recorded one);
/// an evaluation error is returned after printing the rest.
fn print_stages(
    out: &mut String,
    set: &PolicySet,
    input: &RecordedInput,
    recorded: Option<&Value>,
) -> Option<anyhow::Error> {
    let (request, response) = match stages(set, input) {
        Ok(verdicts) => verdicts,
        Err(err) => return Some(err),
    };
    let mut stage = |name: &str, verdict: Option<&Verdict>| {
        let was = recorded.map(|r| match r[name]["action"].as_str() {
            Some(action) => format!(" (recorded: {action})"),
            None => " (recorded: not evaluated)".to_owned(),
        });
        let Some(verdict) = verdict else {
            let _ = writeln!(out, "{name:<9} not evaluated{}", was.unwrap_or_default());
            return;
        };
        let _ = writeln!(
            out,
            "{name:<9} {}{}",
            verdict.action.as_str(),
            was.unwrap_or_default()
        );
        for (set, reasons) in [
            ("deny", &verdict.all.deny),
            ("hold", &verdict.all.hold),
            ("flag", &verdict.all.flag),
        ] {
            for reason in reasons {
                let _ = writeln!(out, "  {set}: {reason}");
            }
        }
    };
    stage("request", Some(&request));
    stage("response", response.as_ref());
    None
}

/// Both stages' verdicts, as the gateway would reach them: no response
/// stage after a request-stage deny or without an answer.
fn stages(set: &PolicySet, input: &RecordedInput) -> anyhow::Result<(Verdict, Option<Verdict>)> {
    let request = set.evaluate(&input.request).context("request stage")?;
    let response = match &input.answer {
        Some((status, body)) if request.action != crate::review::Action::Deny => Some(
            set.evaluate(&input.request.clone().into_response(*status, body.clone()))
                .context("response stage")?,
        ),
        _ => None,
    };
    Ok((request, response))
}

/// A verdict as the ledger records it, for comparison.
fn as_recorded(verdict: Option<&Verdict>) -> Value {
    verdict.map_or(Value::Null, |v| {
        serde_json::json!({
            "action": v.action.as_str(),
            "deny": v.all.deny, "hold": v.all.hold, "flag": v.all.flag,
        })
    })
}

/// The recorded verdict without its `error` member.
fn recorded_sets(recorded: &Value) -> Value {
    let mut out = recorded.clone();
    if let Some(map) = out.as_object_mut() {
        map.remove("error");
    }
    out
}

/// How many changed decisions a replay lists (all are counted).
const LISTED: usize = 100;

fn replay(set: &PolicySet, ledger: Source<'_>, from: u64, to: u64) -> anyhow::Result<()> {
    let (store, _) = ledger.open(crate::ledger::wal::Tail::Keep)?;
    let to = to.min(store.size()?);
    let (mut decisions, mut same, mut skipped, mut errors) = (0u64, 0u64, Vec::new(), 0u64);
    let mut changed = Vec::new();
    for seq in from..to {
        let entry = read_entry(&store, seq)?;
        if entry["kind"] != "decision" {
            continue;
        }
        decisions += 1;
        let input = match rebuild(&store, &entry) {
            Ok(input) => input,
            Err(err) => {
                let why = err
                    .downcast_ref::<NotReplayable>()
                    .map_or_else(|| format!("{err:#}"), ToString::to_string);
                skipped.push(why);
                continue;
            }
        };
        let Ok((request, response)) = stages(set, &input) else {
            errors += 1;
            continue;
        };
        let policy = &entry["policy"];
        let now = [as_recorded(Some(&request)), as_recorded(response.as_ref())];
        let then = [
            recorded_sets(&policy["request"]),
            recorded_sets(&policy["response"]),
        ];
        if now == then {
            same += 1;
        } else {
            let action = |v: &Value| v["action"].as_str().unwrap_or("-").to_owned();
            changed.push(format!(
                "  seq {seq} {}: request {} -> {}, response {} -> {}",
                entry["decision_id"].as_str().unwrap_or("?"),
                action(&then[0]),
                action(&now[0]),
                action(&then[1]),
                action(&now[1]),
            ));
        }
    }
    let mut out = format!(
        "replayed seqs {from}..{to}: {decisions} decisions, {} verdicts would change, {same} unchanged, {} skipped, {errors} evaluation errors\n",
        changed.len(),
        skipped.len()
    );
    for line in changed.iter().take(LISTED) {
        out.push_str(line);
        out.push('\n');
    }
    if changed.len() > LISTED {
        let _ = writeln!(out, "  ... and {} more", changed.len() - LISTED);
    }
    let mut reasons: std::collections::BTreeMap<&str, usize> = Default::default();
    for why in &skipped {
        *reasons.entry(why.as_str()).or_default() += 1;
    }
    for (why, count) in reasons {
        let _ = writeln!(out, "  skipped {count}: {why}");
    }
    print_out(&out);
    Ok(())
}

/// An input document from a file: the fields of docs/policies.md's input
/// table. `stage`, `response` and `status` say whether there was an
/// answer; `sample` defaults to the one the decision id gives; `claims`
/// to none.
fn from_document(doc: &Value) -> Result<RecordedInput, String> {
    let text = |key: &str| doc[key].as_str().unwrap_or_default().to_owned();
    if !doc.is_object() {
        return Err("an input document is a JSON object".to_owned());
    }
    let id = match doc["decision_id"].as_str() {
        Some(id) => id.to_owned(),
        None => "0".repeat(32),
    };
    let mut request = PolicyInput::request(
        text("model"),
        text("version"),
        text("risk_class"),
        text("caller"),
        id,
        doc["request"].clone(),
    );
    if let Some(sample) = doc["sample"].as_f64() {
        request.sample = sample;
    }
    match &doc["claims"] {
        Value::Null => {}
        Value::Object(claims) => request = request.with_claims(claims.clone()),
        _ => return Err("claims must be an object".to_owned()),
    }
    let status = match &doc["status"] {
        Value::Null => None,
        other => Some(
            other
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .ok_or("status must be an HTTP status or null")?,
        ),
    };
    Ok(RecordedInput {
        request,
        answer: status.map(|status| (status, doc["response"].clone())),
        status_assumed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_from_to_exclusive() {
        assert_eq!(parse_range("3..10"), Ok((3, 10)));
        assert!(parse_range("10..3").is_err());
        assert!(parse_range("3-10").is_err());
    }
}
