//! The console's overview against a real gateway: decisions of the last
//! hour and day by outcome (exact counts, per model), the latest
//! checkpoint's time and age, risk indicators in breach with their alert
//! (and no alert while all is well), and the witnesses' cosignatures when
//! witnesses are configured.

use crate::console::{page, sign_in};
use crate::support::Gateway;
use crate::support::governance::admin_call;
use http::Method;
use serde_json::json;
use std::time::Duration;

/// The text of the element with `id` (up to its first tag).
fn by_id<'h>(html: &'h str, id: &str) -> &'h str {
    html.split(&format!("id=\"{id}\">"))
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_else(|| panic!("no {id} in {html}"))
}

fn time_ms(text: &str) -> i64 {
    let time = govgate::ledger::export::UtcTime::parse(text).unwrap();
    (time.unix_seconds() * 1000.0).round() as i64
}

fn number(html: &str, id: &str) -> u64 {
    by_id(html, id).parse().unwrap()
}

/// The element with `id` and what follows it up to its table's end.
fn table<'h>(html: &'h str, id: &str) -> &'h str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id} in {html}"));
    let rest = &html[at..];
    &rest[..rest.find("</table>").unwrap_or(rest.len())]
}

#[tokio::test]
async fn the_overview_counts_outcomes_of_the_hour_and_day_and_dates_the_checkpoint() {
    let (gateway, _upstream, _policies) = crate::reviews::start("").await;
    let mut ids = Vec::new();
    for (caller, body, status) in [
        ("svc-a", r#"{"x": 1}"#, 200),
        ("svc-b", r#"{"x": 2}"#, 200),
        ("mallory", r#"{"x": 3}"#, 403),
        ("svc-a", r#"{"hold": true}"#, 202),
    ] {
        let reply = crate::reviews::infer_as(&gateway, caller, body).await;
        assert_eq!(reply.status, status, "{}", reply.text());
        ids.push(reply.decision_id());
    }
    for id in &ids {
        gateway.wait_for_decision(id).await;
    }
    let cookie = sign_in(&gateway, "ops").await;
    let (status, html) = page(&gateway, &cookie, "/console/").await;
    assert_eq!(status, 200, "{html}");
    for window in ["hour", "day"] {
        let counts: Vec<u64> = ["served", "denied", "held", "blocked", "error", "total"]
            .iter()
            .map(|outcome| number(&html, &format!("outcomes-{window}-{outcome}")))
            .collect();
        assert_eq!(counts, [2, 1, 1, 0, 0, 4], "{window}");
    }
    let by_model = table(&html, "outcomes-by-model");
    assert!(
        by_model.contains("<td>scorer</td><td>served 2 · denied 1 · held 1</td><td>served 2 · denied 1 · held 1</td>"),
        "{by_model}"
    );
    // A new ledger: counted since the gateway started, just before its
    // first entry.
    let first = &gateway.entries().await[0];
    let first = time_ms(first["time"].as_str().unwrap());
    let since = by_id(&html, "counted-since");
    let since = time_ms(
        since["Counted since ".len()..]
            .split(':')
            .take(3)
            .collect::<Vec<_>>()
            .join(":")
            .as_str(),
    );
    assert!(since <= first && first - since < 5_000, "{since} {first}");

    // The latest checkpoint was signed with the batch of the last entry.
    let entries = gateway.entries().await;
    let last = entries.last().unwrap();
    assert_eq!(number(&html, "ledger-size"), entries.len() as u64);
    assert_eq!(
        by_id(&html, "checkpoint-time"),
        last["time"].as_str().unwrap()
    );
    let age = by_id(&html, "checkpoint-age");
    assert!(age.ends_with(" s ago"), "{age}");
    assert!(age.trim_end_matches(" s ago").parse::<u64>().unwrap() < 60);

    // The hold waits, with its time left (the default timeout is a day).
    assert!(
        by_id(&html, "waiting").starts_with("1 waiting (1 held answers"),
        "{html}"
    );
    let queue = table(&html, "queue");
    assert!(
        queue.contains("<th scope=\"col\">Time left</th>"),
        "{queue}"
    );
    let left: u64 = queue
        .split(" s</td></tr>")
        .next()
        .and_then(|row| row.rsplit("<td>").next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((86_300..=86_400).contains(&left), "{left} s left");

    // No risk register here.
    assert!(by_id(&html, "no-breaches").starts_with("The risk register watches no indicator"));
    // All is well: no alert, and no witness section without witnesses.
    assert!(html.contains("id=\"no-alerts\""), "{html}");
    assert!(!html.contains("id=\"witnesses\""));

    // The API behind it, for the roles that read decisions.
    for (principal, status) in [(None, 401), (Some("ops"), 200), (Some("auditor"), 200)] {
        let reply = admin_call(
            &gateway.admin,
            principal,
            Method::GET,
            "/admin/decisions/summary",
            "",
        )
        .await;
        assert_eq!(reply.status, status, "{}", reply.text());
    }

    // After a restart the ledger's decisions of the day are counted again
    // (in the background: until then the answer says it is priming).
    let mut gateway = gateway;
    gateway.stop().await;
    gateway.restart().await;
    let mut summary = serde_json::Value::Null;
    for _ in 0..50 {
        summary = admin_call(
            &gateway.admin,
            Some("auditor"),
            Method::GET,
            "/admin/decisions/summary",
            "",
        )
        .await
        .json();
        if summary["priming"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(summary["priming"], false, "{summary}");
    let outcomes = json!({"served": 2, "denied": 1, "held": 1, "blocked": 0,
                          "released": 0, "error": 0, "streaming": 0});
    assert_eq!(summary["day"]["outcomes"], outcomes, "{summary}");
    assert_eq!(summary["hour"]["models"]["scorer"], outcomes, "{summary}");
    assert_eq!(summary["day"]["total"], 4);
    // A ledger younger than a day: counted since its first entry.
    let first = &gateway.entries().await[0];
    assert_eq!(summary["counted_since"], first["time"], "{summary}");
}

#[tokio::test]
async fn an_indicator_in_breach_is_listed_and_alerted_and_gone_when_recovered() {
    let upstream = crate::support::TestUpstream::start().await;
    let gateway = Gateway::start(&crate::report_risks::config(&upstream.url())).await;
    let cookie = sign_in(&gateway, "auditor").await;
    let (status, html) = page(&gateway, &cookie, "/console/").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"no-alerts\""), "{html}");
    assert_eq!(
        by_id(&html, "no-breaches"),
        "Indicators beyond their threshold: none (the risk register watches 1)."
    );

    // Every f approved, no m: a parity difference of 1 against 0.3.
    crate::report_risks::rows(&gateway, 0.9, 0.1).await;
    crate::report_risks::one_of(&gateway, "risk_indicator_breached").await;
    let html = until(&gateway, &cookie, |html| html.contains("id=\"breaches\"")).await;
    let breaches = table(&html, "breaches");
    assert!(
        breaches.contains(
            "<td>credit-bias (Unequal approval rates between sexes)</td>\
             <td>0:demographic_parity_difference:sex</td>\
             <td><a href=\"/console/kpis/scorer\">scorer</a></td><td>1.0000</td><td>above 0.3</td>"
        ),
        "{breaches}"
    );
    let alerts = table(&html, "alerts");
    assert!(
        alerts.contains("data-alert=\"GovgateRiskIndicatorBreached\"><td>warning</td>"),
        "{alerts}"
    );
    assert!(alerts.contains("href=\"/console/kpis/scorer\""), "{alerts}");

    // Both alike: recovered, and the alert is gone.
    crate::report_risks::rows(&gateway, 0.9, 0.9).await;
    crate::report_risks::one_of(&gateway, "risk_indicator_recovered").await;
    let html = until(&gateway, &cookie, |html| {
        html.contains("id=\"no-breaches\"")
    })
    .await;
    assert!(html.contains("id=\"no-alerts\""), "{html}");
}

/// The overview once `ready` holds (the risk task publishes its state
/// right after its entry is durable), within 5 s.
async fn until(gateway: &Gateway, cookie: &str, ready: impl Fn(&str) -> bool) -> String {
    for _ in 0..50 {
        let (status, html) = page(gateway, cookie, "/console/").await;
        assert_eq!(status, 200, "{html}");
        if ready(&html) {
            return html;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the overview did not change within 5 s");
}

#[tokio::test]
async fn the_witnesses_cosignatures_of_the_latest_checkpoint_are_shown() {
    use crate::witness::{Witness, results, submit};
    let upstream = crate::support::TestUpstream::start().await;
    let w1 = Witness::start("w1.example/w", 1).await;
    let rest = format!(
        "witness_interval_secs = 3600\n{}{}",
        w1.config("w1"),
        crate::models(&upstream.url())
    );
    let gateway = Gateway::start(&rest).await;
    let cookie = sign_in(&gateway, "ops").await;
    let (_, html) = page(&gateway, &cookie, "/console/").await;
    let witnesses = table(&html, "witnesses");
    assert!(
        witnesses.contains("<td>w1</td><td>none</td><td>never</td>"),
        "{witnesses}"
    );

    w1.trust(&gateway.vkey);
    let round = submit(&gateway).await;
    assert_eq!(results(&round), ["w1:cosigned"], "{round}");
    let size = round["cosigned_size"].as_u64().unwrap();
    let (_, html) = page(&gateway, &cookie, "/console/").await;
    assert_eq!(number(&html, "cosigned-size"), size);
    let witnesses = table(&html, "witnesses");
    assert!(
        witnesses.contains(&format!("<td>w1</td><td>{size} entries</td><td>")),
        "{witnesses}"
    );
    assert!(witnesses.contains(" s ago ("), "{witnesses}");
    assert!(
        witnesses.ends_with("<td>cosigned</td></tr></tbody>"),
        "{witnesses}"
    );
    assert!(html.contains("id=\"no-alerts\""), "{html}");
}
