//! The console over HTTP, as a browser speaks to it (the browser tests in
//! console_browser.rs click through the same pages): signing in sets a
//! session cookie that scripts cannot read and other sites do not send;
//! pages carry content rules without inline script; a change without the
//! session's CSRF token, or from another origin, is refused and records
//! nothing; a change through the console is the admin API's, recorded
//! under the person's name; buttons appear only for roles that may use
//! them; signing out ends the session.

use crate::support::governance::admin_call;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use serde_json::json;

/// `chat` v1 active; v2 proposed by ops, needing two approvals (one of
/// them the AI officer's).
pub(crate) async fn gateway_with_a_proposal() -> (TestUpstream, Gateway) {
    let upstream = TestUpstream::start().await;
    let config = format!(
        "[governance.approval]\napprovers = 2\nrequired_roles = [\"ai_officer\"]\n\
         [[models]]\nname = \"chat\"\nprotocol = \"openai\"\ndefault_version = \"v1\"\n\
         [[models.versions]]\nversion = \"v1\"\nupstream = \"{}\"\n",
        upstream.url()
    );
    let gateway = Gateway::start(&config).await;
    let body = json!({"version": "v2", "upstream": upstream.url(), "risk_class": "limited",
                      "change_ref": "CHG-7", "description": "retrained"});
    let proposed = admin_call(
        &gateway.admin,
        Some("ops"),
        Method::POST,
        "/admin/models/chat/versions",
        &body.to_string(),
    )
    .await;
    assert_eq!(proposed.status, 201, "{}", proposed.text());
    (upstream, gateway)
}

/// Signs `principal` in; the session cookie (`name=value`).
pub(crate) async fn sign_in(gateway: &Gateway, principal: &str) -> String {
    let token = crate::support::governance::token(principal);
    let reply = send(
        Method::POST,
        &format!("{}/console/sign-in", gateway.admin),
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("token={token}"),
    )
    .await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    let set = reply.headers["set-cookie"].to_str().unwrap().to_owned();
    set.split(';').next().unwrap().to_owned()
}

/// A console page as the holder of `cookie`: (status, body).
pub(crate) async fn page(gateway: &Gateway, cookie: &str, path: &str) -> (u16, String) {
    let reply = send(
        Method::GET,
        &format!("{}{path}", gateway.admin),
        &[("cookie", cookie)],
        "",
    )
    .await;
    (reply.status.as_u16(), reply.text())
}

/// The CSRF token in a page's forms.
fn csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with its token")
        + 19;
    html[at..at + 64].to_owned()
}

async fn post(
    gateway: &Gateway,
    cookie: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> u16 {
    let mut headers = vec![
        ("cookie", cookie),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    headers.extend_from_slice(extra);
    send(
        Method::POST,
        &format!("{}{path}", gateway.admin),
        &headers,
        body.to_owned(),
    )
    .await
    .status
    .as_u16()
}

fn approvals_of_v2(entries: &[serde_json::Value]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["kind"] == "version_approved" && e["version"] == "v2")
        .map(|e| e["principal"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn console_sessions_refuse_cross_site_changes_and_record_the_persons_own() {
    let (_upstream, gateway) = gateway_with_a_proposal().await;
    // Not signed in: to the sign-in page. A wrong token: refused.
    let (status, _) = page(&gateway, "govgate_console=nothing", "/console/models").await;
    assert_eq!(status, 303);
    let refused = send(
        Method::POST,
        &format!("{}/console/sign-in", gateway.admin),
        &[("content-type", "application/x-www-form-urlencoded")],
        "token=wrong",
    )
    .await;
    assert_eq!(refused.status, 401);
    assert!(refused.headers.get("set-cookie").is_none());

    let signed_in = send(
        Method::POST,
        &format!("{}/console/sign-in", gateway.admin),
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("token={}", crate::support::governance::token("ai-officer")),
    )
    .await;
    let set = signed_in.headers["set-cookie"].to_str().unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP listener: {set}");
    let cookie = set.split(';').next().unwrap().to_owned();

    let version = "/console/models/chat/versions/v2";
    let reply = send(
        Method::GET,
        &format!("{}{version}", gateway.admin),
        &[("cookie", &cookie)],
        "",
    )
    .await;
    assert_eq!(reply.status, 200);
    let csp = reply.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(reply.headers["referrer-policy"], "same-origin");
    let html = reply.text();
    assert!(!html.contains("<script>"), "no inline script");
    assert!(
        html.contains("2 more approvals: approver:ai_officer"),
        "{html}"
    );
    assert!(
        html.contains("id=\"do-approve\""),
        "an approver sees approve"
    );
    assert!(
        !html.contains("id=\"do-activate\""),
        "an approver cannot activate"
    );
    let token = csrf(&html);

    // Without the token, with another's token, from another site: refused,
    // nothing recorded.
    let approve = format!("{version}/approve");
    assert_eq!(
        post(&gateway, &cookie, &approve, &[], "reason=x").await,
        403
    );
    assert_eq!(
        post(
            &gateway,
            &cookie,
            &approve,
            &[],
            &format!("csrf={}&reason=x", "0".repeat(64))
        )
        .await,
        403
    );
    let body = format!("csrf={token}&reason=x");
    let refused = send(
        Method::POST,
        &format!("{}{approve}", gateway.admin),
        &[
            ("cookie", &cookie),
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", "http://evil.example"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.text().contains("cross-site request refused"),
        "a page for people: {}",
        refused.text()
    );
    assert_eq!(
        post(
            &gateway,
            &cookie,
            &approve,
            &[("sec-fetch-site", "cross-site")],
            &body
        )
        .await,
        403
    );
    assert!(approvals_of_v2(&gateway.entries().await).is_empty());

    // From the console's own origin with the token: the API's approval,
    // under the officer's name.
    let origin = gateway.admin.clone();
    let status = post(
        &gateway,
        &cookie,
        &approve,
        &[("origin", &origin), ("sec-fetch-site", "same-origin")],
        &format!("csrf={token}&reason=model+card+reviewed"),
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(
        approvals_of_v2(&gateway.entries().await),
        vec!["ai-officer"]
    );
    let (_, html) = page(&gateway, &cookie, version).await;
    assert!(html.contains("1 more approval"), "{html}");
    assert!(html.contains("model card reviewed"));
    // Its history row leads to the ledger entry, and that entry back to the
    // version and to the entries it cites.
    let approval = gateway
        .entries()
        .await
        .into_iter()
        .find(|e| e["kind"] == "version_approved" && e["version"] == "v2")
        .expect("the approval entry");
    let seq = approval["seq"].as_u64().unwrap();
    let link = format!("href=\"/console/ledger/{seq}\">seq {seq}</a>");
    assert!(html.contains(&link), "{link} in {html}");
    let (status, entry_page) = page(&gateway, &cookie, &format!("/console/ledger/{seq}")).await;
    assert_eq!(status, 200);
    assert!(
        entry_page.contains("id=\"entry-kind\">version_approved<"),
        "{entry_page}"
    );
    assert!(entry_page.contains("<dd>ai-officer</dd>"), "{entry_page}");
    assert!(entry_page.contains("href=\"/console/models/chat/versions/v2\""));
    let (status, _) = page(&gateway, &cookie, "/console/ledger/999999").await;
    assert_eq!(status, 404);

    // A reviewer sees the version but no button to change it.
    let rita = sign_in(&gateway, "rita").await;
    let (status, html) = page(&gateway, &rita, version).await;
    assert_eq!(status, 200);
    assert!(html.contains("rita (reviewer)"));
    assert!(!html.contains("id=\"do-"), "{html}");
    // The API still decides: a reviewer's approval through the console is
    // refused by it and recorded nowhere.
    let rita_token = csrf(&html);
    let status = post(
        &gateway,
        &rita,
        &approve,
        &[],
        &format!("csrf={rita_token}"),
    )
    .await;
    assert_eq!(status, 303);
    let (_, html) = page(&gateway, &rita, version).await;
    assert!(html.contains("1 more approval"));
    assert_eq!(
        approvals_of_v2(&gateway.entries().await),
        vec!["ai-officer"]
    );

    // Signing out ends the session.
    let status = post(
        &gateway,
        &cookie,
        "/console/sign-out",
        &[],
        &format!("csrf={token}"),
    )
    .await;
    assert_eq!(status, 303);
    let (status, _) = page(&gateway, &cookie, version).await;
    assert_eq!(status, 303, "signed out");
}

/// Sends rows to the KPI test model until the ledger holds `count`
/// interval snapshots with rows in them.
pub(crate) async fn kpi_traffic(gateway: &Gateway, count: usize) -> Vec<serde_json::Value> {
    let bodies = [
        r#"{"scores": [0.9, 0.2, 0.7], "sex": ["f", "f", "m"], "amount": [10, 20, 30]}"#,
        r#"{"scores": [0.6, 0.1, 0.4], "sex": ["m", "m", "f"], "amount": [40, 50, 60]}"#,
    ];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        for body in bodies {
            let reply = send(
                Method::POST,
                &gateway.url("/v2/models/scorer/infer"),
                &[],
                body,
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
        let snapshots: Vec<serde_json::Value> = gateway
            .entries()
            .await
            .into_iter()
            .filter(|e| {
                e["kind"] == "kpi_snapshot"
                    && e["trigger"] == "interval"
                    && e["fairness"]["rows_total"].as_u64().unwrap_or(0) > 0
            })
            .collect();
        if snapshots.len() >= count {
            return snapshots;
        }
        assert!(tokio::time::Instant::now() < deadline, "no snapshots");
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
}

#[tokio::test]
async fn the_kpi_page_charts_the_snapshots_the_ledger_holds() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&crate::kpi_snapshots::config(&upstream.url())).await;
    let cookie = sign_in(&gateway, "auditor").await;
    let (status, html) = page(&gateway, &cookie, "/console/kpis/scorer").await;
    assert_eq!(status, 200);
    assert!(!html.contains("<svg"), "no rows yet: {html}");

    let written = kpi_traffic(&gateway, 2).await;
    let history = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        "/admin/kpis/scorer/history",
        "",
    )
    .await;
    assert_eq!(history.status, 200, "{}", history.text());
    let kept = history.json()["snapshots"].as_array().unwrap().clone();
    let in_ledger: Vec<u64> = gateway
        .entries()
        .await
        .iter()
        .filter(|e| e["kind"] == "kpi_snapshot")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let kept_seqs: Vec<u64> = kept.iter().map(|s| s["seq"].as_u64().unwrap()).collect();
    assert!(kept_seqs.len() >= 2);
    assert!(
        kept_seqs.iter().all(|seq| in_ledger.contains(seq)),
        "{kept_seqs:?} in {in_ledger:?}"
    );
    // Each kept snapshot holds the figures of the ledger's entry.
    let mut compared = 0;
    for entry in &written {
        if let Some(held) = kept.iter().find(|s| s["seq"] == entry["seq"]) {
            assert_eq!(
                held["fairness"]["rows_total"],
                entry["fairness"]["rows_total"]
            );
            assert_eq!(held["time"], entry["time"]);
            assert_eq!(held["model"], "scorer");
            compared += 1;
        }
    }
    assert!(compared >= 2, "{compared} of {} compared", written.len());

    let (status, html) = page(&gateway, &cookie, "/console/kpis/scorer").await;
    assert_eq!(status, 200);
    assert!(html.contains("<svg"), "{html}");
    let last = kept_seqs.last().unwrap();
    assert!(
        html.contains(&format!("(seq {last})")),
        "the last point's entry"
    );
    let unknown = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        "/admin/kpis/nothing/history",
        "",
    )
    .await;
    assert_eq!(unknown.status, 404);
}

/// `scorer` (one version) with fairness by `sex` and drift of `amount`,
/// a snapshot every second, and a risk on its parity difference.
fn kpi_risk_config(upstream: &str) -> String {
    format!(
        r#"
[risk_register]
eval_every_secs = 1
window_secs = 2

[[risks]]
id = "credit-bias"
title = "Unequal approval rates between sexes"
owner = "head-of-credit-risk"
models = ["scorer"]
[[risks.indicators]]
kpi = "demographic_parity_difference"
attribute = "sex"
threshold = 0.3
direction = "above"
min_count = 8

[[models]]
name = "scorer"
protocol = "kserve_v2"
default_version = "1"
[models.kpi]
window = 8
min_group_size = 2
reference_rows = 2
snapshot_every_secs = 1
[models.kpi.outcome]
pointer = "/scores/*"
threshold = 0.5
[[models.kpi.attributes]]
name = "sex"
pointer = "/sex/*"
[[models.kpi.features]]
name = "amount"
kind = "numeric"
pointer = "/amount/*"
[[models.versions]]
version = "1"
upstream = "{upstream}"
"#
    )
}

#[tokio::test]
async fn the_kpi_page_charts_ledger_snapshots_across_a_restart_with_thresholds_and_counts() {
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&kpi_risk_config(&upstream.url())).await;
    // Eight rows scored apart by sex: a parity difference of 1, beyond
    // the threshold of 0.3 with the 8 rows it asks for.
    let body = json!({
        "scores": [0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1],
        "sex": ["f", "f", "f", "f", "m", "m", "m", "m"],
        "amount": [10, 20, 30, 40, 50, 60, 70, 80],
    });
    let reply = send(
        Method::POST,
        &gateway.url("/v2/models/scorer/infer"),
        &[],
        body.to_string(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let breach = crate::kpi_snapshots::snapshot(&gateway, |e| {
        e["trigger"] == "interval" && e["fairness"]["rows_in_window"] == 8
    })
    .await;
    let breach_seq = breach["seq"].as_u64().unwrap();
    let breach_time = breach["time"].as_str().unwrap().to_owned();
    let register_seq = gateway
        .entries()
        .await
        .iter()
        .find(|e| e["kind"] == "risk_register_set")
        .map(|e| e["seq"].as_u64().unwrap())
        .expect("the register is recorded");
    assert!(register_seq < breach_seq);

    assert!(gateway.stop().await.success());
    gateway.restart().await;
    // Known traffic after the restart: f 0.9 0.2 0.4 (1 selected), m 0.7
    // 0.6 0.1 (2 selected); amounts 10 and 20 are the new reference.
    let _ = kpi_traffic(&gateway, 1).await;
    let current = loop {
        let answer = admin_call(
            &gateway.admin,
            Some("auditor"),
            Method::GET,
            "/admin/kpis/scorer",
            "",
        )
        .await;
        let json = answer.json();
        if json["fairness"]["rows_in_window"].as_u64() >= Some(6) {
            break json;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // kpi_traffic sends its two calls until a snapshot has rows: exactly
    // once here, as the first interval after them finds them.
    assert_eq!(current["fairness"]["rows_in_window"], 6, "{current:#}");

    // Since start only, the snapshot before the restart is gone ...
    let since_start = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        "/admin/kpis/scorer/history",
        "",
    )
    .await;
    assert!(
        !since_start.json()["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["seq"] == breach_seq)
    );
    // ... the ledger has it, with the register in force before it.
    let query = serde_urlencoded::to_string([("from", &breach_time)]).unwrap();
    let history = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        &format!("/admin/kpis/scorer/history?{query}"),
        "",
    )
    .await;
    assert_eq!(history.status, 200, "{}", history.text());
    let history = history.json();
    assert_eq!(history["snapshots"][0]["seq"], breach_seq, "{history:#}");
    assert_eq!(history["registers"][0]["seq"], register_seq);
    assert_eq!(history["register_in_force"], "found");
    assert_eq!(history["limited_by"], serde_json::Value::Null);
    let bad = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        "/admin/kpis/scorer/history?from=yesterday",
        "",
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text());

    let cookie = sign_in(&gateway, "auditor").await;
    let (status, html) = page(&gateway, &cookie, &format!("/console/kpis/scorer?{query}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"kpi-range\""), "{html}");
    assert!(html.contains(&format!("name=\"from\" value=\"{breach_time}\"")));
    // The threshold line of the register in force, and the breach point
    // from before the restart marked beyond it.
    assert!(html.contains("stroke=\"#a40000\" stroke-dasharray=\"6 4\"/><text x=\"698.0\" y=\""));
    assert!(html.contains(&format!(
        "threshold above 0.3 (risk credit-bias #0, register seq {register_seq})</text>"
    )));
    assert!(
        html.contains(&format!(
            "fill=\"#a40000\"><title>seq {breach_seq} at {breach_time}: 1 (beyond a threshold)</title>"
        )),
        "{html}"
    );
    // The default range (the last 7 days) holds it too.
    let (_, default) = page(&gateway, &cookie, "/console/kpis/scorer").await;
    assert!(default.contains(&format!("<title>seq {breach_seq} at {breach_time}: 1")));

    // The current window as tables, with the counts of the traffic.
    assert!(
        html.contains(
            "<tr><th scope=\"row\">f</th><td class=\"n\">3</td><td class=\"n\">1</td>\
         <td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">0</td>\
         <td class=\"n\">0</td><td class=\"n\">true</td>"
        ),
        "{html}"
    );
    assert!(html.contains(
        "<tr><th scope=\"row\">m</th><td class=\"n\">3</td><td class=\"n\">2</td>\
         <td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">0</td>\
         <td class=\"n\">0</td><td class=\"n\">true</td>"
    ));
    let parity = &current["fairness"]["attributes"][0]["demographic_parity_difference"];
    assert!(html.contains(&format!(
        "<tr><th scope=\"row\">demographic parity difference</th><td class=\"n\">{parity}</td></tr>"
    )));
    let amount = &current["drift"][0]["features"][0];
    assert!(
        html.contains(&format!(
            "<tr><th scope=\"row\">amount</th><td class=\"n\">numeric</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">2</td><td class=\"n\">4</td><td class=\"n\">0</td></tr>",
            amount["psi"],
            amount["js_distance"],
            amount["ks"]["statistic"],
            amount["ks"]["at_edge"]
        )),
        "{html}"
    );
    assert!(html.contains("<details id=\"current-json\">"));
    assert!(!html.contains("<script>") && !html.contains(" style="));
}

#[tokio::test]
async fn decisions_are_found_by_caller_outcome_and_time_a_page_at_a_time() {
    let (gateway, _upstream, _policies) = crate::reviews::start("").await;
    let mut ids = Vec::new();
    for caller in ["svc-a", "svc-b", "svc-a", "mallory", "svc-a"] {
        let reply = crate::reviews::infer_as(&gateway, caller, r#"{"x": 1}"#).await;
        ids.push((caller, reply.decision_id()));
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = govgate::ledger::entry::rfc3339_millis(std::time::SystemTime::now());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let late = crate::reviews::infer_as(&gateway, "svc-a", r#"{"x": 2}"#).await;
    ids.push(("svc-a", late.decision_id()));
    for (_, id) in &ids {
        gateway.wait_for_decision(id).await;
    }
    let search = |query: String| {
        let admin = gateway.admin.clone();
        async move {
            let reply = admin_call(
                &admin,
                Some("auditor"),
                Method::GET,
                &format!("/admin/decisions?{query}"),
                "",
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            reply.json()
        }
    };
    let found = |page: &serde_json::Value| -> Vec<String> {
        page["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["decision_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let of = |caller: &str| -> Vec<String> {
        ids.iter()
            .rev()
            .filter(|(c, _)| *c == caller)
            .map(|(_, id)| id.clone())
            .collect()
    };
    // Newest first, only the caller's.
    let result = search("caller=svc-a".into()).await;
    assert_eq!(found(&result), of("svc-a"));
    assert!(result["more_before"].is_null());
    // Denied at the request stage: found by outcome.
    let result = search("outcome=denied".into()).await;
    assert_eq!(found(&result), of("mallory"));
    // Two at a time: the next page goes on below the last one shown.
    let first = search("caller=svc-a&limit=2".into()).await;
    assert_eq!(found(&first), of("svc-a")[..2].to_vec());
    let before = first["more_before"].as_u64().expect("more to come");
    let second = search(format!("caller=svc-a&limit=2&before={before}")).await;
    assert_eq!(found(&second), of("svc-a")[2..].to_vec());
    // A time range: only what came after `between`.
    let result = search(format!("from={between}")).await;
    assert_eq!(found(&result), vec![ids[5].1.clone()]);
    // `limit=0`: the same range, nothing read.
    let counted = search(format!("from={between}&limit=0")).await;
    assert_eq!(counted["range"], result["range"]);
    assert_eq!(counted["read"], 0);
    assert!(found(&counted).is_empty() && counted["more_before"].is_null());
    let result = search(format!("to={between}&caller=svc-b")).await;
    assert_eq!(found(&result), of("svc-b"));
    // Refused: a bad time, an unknown member, a caller without the role.
    let bad = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        "/admin/decisions?from=yesterday",
        "",
    )
    .await;
    assert_eq!(bad.status, 400);
    let bad = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        "/admin/decisions?colour=red",
        "",
    )
    .await;
    assert_eq!(bad.status, 400);
    let refused = admin_call(
        &gateway.admin,
        Some("ai-officer"),
        Method::GET,
        "/admin/decisions",
        "",
    )
    .await;
    assert_eq!(refused.status, 403);

    // The console's search shows the same rows, with the link to older ones.
    let cookie = sign_in(&gateway, "auditor").await;
    // The overview counts the entries of the last hour and day.
    let (status, html) = page(&gateway, &cookie, "/console/").await;
    assert_eq!(status, 200);
    let number = |id: &str| -> u64 {
        html.split(&format!("id=\"{id}\">"))
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap_or_else(|| panic!("no {id} in {html}"))
            .parse()
            .unwrap()
    };
    let size = number("ledger-size");
    for id in ["recent-hour", "recent-day"] {
        // Every entry of this test's gateway is from the last minute.
        let count = number(id);
        assert!(count >= size && count > 6, "{id}: {count} of {size}");
    }
    assert!(html.contains("id=\"last-verification\""));
    let (status, html) = page(&gateway, &cookie, "/console/decisions?caller=svc-a").await;
    assert_eq!(status, 200);
    for id in of("svc-a") {
        assert!(html.contains(&id), "{id} in {html}");
    }
    assert!(!html.contains(&ids[1].1), "svc-b's is not listed");
}

#[tokio::test]
async fn a_version_is_proposed_and_rolled_back_from_the_console_as_its_person() {
    let (upstream, gateway) = gateway_with_a_proposal().await;
    let ops = sign_in(&gateway, "ops").await;
    let (status, html) = page(&gateway, &ops, "/console/models/chat").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"do-propose\""), "ops may propose");
    assert!(
        !html.contains("id=\"do-rollback\""),
        "nothing to roll back to yet"
    );
    let token = csrf(&html);
    let origin = gateway.admin.clone();
    let same_origin = [("origin", origin.as_str())];
    let form = format!(
        "csrf={token}&version=v3&upstream={}&risk_class=limited&change_ref=CHG-8&description=d&reason=console",
        upstream.url().replace(':', "%3A").replace('/', "%2F")
    );
    let status = post(
        &gateway,
        &ops,
        "/console/models/chat/propose",
        &same_origin,
        &form,
    )
    .await;
    assert_eq!(status, 303);
    let proposed: Vec<serde_json::Value> = gateway
        .entries()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "version_proposed" && e["version"] == "v3")
        .collect();
    assert_eq!(proposed.len(), 1);
    assert_eq!(proposed[0]["principal"], "ops");

    // v2 approved by two officers and activated: v1 can be gone back to.
    for who in ["ai-officer", "security-officer"] {
        let approved = admin_call(
            &gateway.admin,
            Some(who),
            Method::POST,
            "/admin/models/chat/versions/v2/approve",
            "{}",
        )
        .await;
        assert_eq!(approved.status, 200, "{}", approved.text());
    }
    let activated = admin_call(
        &gateway.admin,
        Some("ops"),
        Method::POST,
        "/admin/models/chat/versions/v2/activate",
        "{}",
    )
    .await;
    assert_eq!(activated.status, 200, "{}", activated.text());
    let (_, html) = page(&gateway, &ops, "/console/models/chat").await;
    assert!(html.contains("To version v1"), "{html}");
    // A reviewer sees neither form.
    let rita = sign_in(&gateway, "rita").await;
    let (_, rita_html) = page(&gateway, &rita, "/console/models/chat").await;
    assert!(!rita_html.contains("id=\"do-"), "{rita_html}");

    let status = post(
        &gateway,
        &ops,
        "/console/models/chat/rollback",
        &same_origin,
        &format!("csrf={}&reason=drift+seen", csrf(&html)),
    )
    .await;
    assert_eq!(status, 303);
    let rolled: Vec<serde_json::Value> = gateway
        .entries()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "version_rolled_back")
        .collect();
    assert_eq!(rolled.len(), 1, "{rolled:?}");
    assert_eq!(rolled[0]["principal"], "ops");
    assert_eq!(rolled[0]["reason"], "drift seen");
}

#[tokio::test]
async fn a_period_report_is_made_followed_and_downloaded_and_a_bundle_exported_from_the_console() {
    let (gateway, _upstream, _policies) = crate::reviews::start("").await;
    for _ in 0..3 {
        let served = crate::reviews::infer_as(&gateway, "svc-a", r#"{"x": 1}"#).await;
        assert_eq!(served.status, 200);
    }
    let auditor = sign_in(&gateway, "auditor").await;
    let (status, html) = page(&gateway, &auditor, "/console/evidence").await;
    assert_eq!(status, 200);
    let token = csrf(&html);
    let origin = gateway.admin.clone();
    let started = send(
        Method::POST,
        &format!("{}/console/evidence/reports", gateway.admin),
        &[
            ("cookie", &auditor),
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &origin),
        ],
        format!("csrf={token}&from=2000-01-01T00%3A00%3A00Z&to=2100-01-01T00%3A00%3A00Z"),
    )
    .await;
    assert_eq!(started.status, 303, "{}", started.text());
    let job = started.headers["location"].to_str().unwrap().to_owned();
    assert!(job.starts_with("/console/evidence/reports/"), "{job}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let html = loop {
        let (status, html) = page(&gateway, &auditor, &job).await;
        assert_eq!(status, 200);
        if html.contains("data-state=\"done\"") {
            break html;
        }
        assert!(!html.contains("data-state=\"failed\""), "{html}");
        assert!(tokio::time::Instant::now() < deadline, "{html}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(html.contains("report.oscal.json"));
    let download = |path: String| {
        let (admin, cookie) = (gateway.admin.clone(), auditor.clone());
        async move {
            send(
                Method::GET,
                &format!("{admin}{path}"),
                &[("cookie", &cookie)],
                "",
            )
            .await
        }
    };
    let report = download(format!("{job}/files/report.json")).await;
    assert_eq!(report.status, 200);
    assert!(
        report.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(report.json()["format"], "govgate-report/3");
    let bundle = download(format!("{job}/bundle")).await;
    assert_eq!(bundle.status, 200, "{}", bundle.text());
    assert_eq!(bundle.headers["content-type"], "application/x-tar");
    assert_eq!(
        &bundle.body[..13],
        b"entries.jsonl",
        "a tar whose first file is the entries"
    );
    // One export at a time, free again once the bundle's last byte left.
    let export = download("/console/evidence/export?from=0&model=scorer".to_owned()).await;
    assert_eq!(export.status, 200, "{}", export.text());
    assert_eq!(export.headers["govgate-export-form"], "sparse");
    assert!(
        export.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("bundle.tar")
    );

    // A reviewer may not make reports: the API's refusal is shown.
    let rita = sign_in(&gateway, "rita").await;
    let (_, html) = page(&gateway, &rita, "/console/evidence").await;
    let refused = send(
        Method::POST,
        &format!("{}/console/evidence/reports", gateway.admin),
        &[
            ("cookie", &rita),
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &origin),
        ],
        format!(
            "csrf={}&from=2000-01-01T00%3A00%3A00Z&to=2100-01-01T00%3A00%3A00Z",
            csrf(&html)
        ),
    )
    .await;
    assert_eq!(refused.status, 303);
    let back = refused.headers["location"].to_str().unwrap();
    assert!(back.starts_with("/console/evidence?problem="), "{back}");
}

#[tokio::test]
async fn the_review_queue_filters_by_reason_and_by_time_waited() {
    let (gateway, _upstream, _policies) = crate::reviews::start("").await;
    let (_, plain) = crate::reviews::held(&gateway, r#"{"hold": true}"#).await;
    let (_, slow) = crate::reviews::held(&gateway, r#"{"slow_lane": true}"#).await;
    // The API: a text one of the reasons holds, whatever its case.
    let listed = admin_call(
        &gateway.admin,
        Some("rita"),
        Method::GET,
        "/admin/reviews?reason=SLOW%20LANE",
        "",
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let ids: Vec<String> = listed.json()["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["review_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![slow.clone()]);

    let rita = sign_in(&gateway, "rita").await;
    let (status, html) = page(&gateway, &rita, "/console/reviews").await;
    assert_eq!(status, 200);
    assert!(html.contains(&plain) && html.contains(&slow));
    assert!(html.contains(">2 waiting"), "{html}");
    let (status, html) = page(&gateway, &rita, "/console/reviews?reason=held").await;
    assert_eq!(status, 200);
    assert!(html.contains(&plain) && !html.contains(&slow), "{html}");
    assert!(html.contains("id=\"reason\" name=\"reason\" value=\"held\""));
    // Nothing here has waited an hour; everything has waited 0 s.
    let (_, html) = page(&gateway, &rita, "/console/reviews?older_than=3600").await;
    assert!(html.contains(">0 waiting"), "{html}");
    assert!(html.contains("<option value=\"3600\" selected>"));
    let (_, html) = page(&gateway, &rita, "/console/reviews?older_than=&reason=").await;
    assert!(html.contains(">2 waiting"), "{html}");
    // The queue's state (what the page polls) follows the same filters.
    let (_, all) = page(&gateway, &rita, "/console/reviews/state").await;
    let (_, slow_only) = page(&gateway, &rita, "/console/reviews/state?reason=slow").await;
    assert_ne!(all, slow_only);
}

#[tokio::test]
async fn a_versions_linked_risks_are_those_the_register_names_for_its_model_or_it() {
    let upstream = TestUpstream::start().await;
    let config = format!(
        "{}\n[[risks]]\nid = \"scorer-outage\"\ntitle = \"Version 1 fails\"\nowner = \"on-call\"\n\
         models = [\"scorer@1\"]\ncontrols = [\"roll back\"]\n[[risks.indicators]]\nkpi = \"error_rate\"\n\
         threshold = 0.05\ndirection = \"above\"\n",
        crate::report_risks::config(&upstream.url())
    );
    let gateway = Gateway::start(&config).await;
    // The register in force, as its ledger entry records it.
    let register = admin_call(
        &gateway.admin,
        Some("auditor"),
        Method::GET,
        "/admin/risks",
        "",
    )
    .await;
    assert_eq!(register.status, 200, "{}", register.text());
    let recorded = gateway
        .entries()
        .await
        .into_iter()
        .find(|e| e["kind"] == "risk_register_set")
        .expect("the register's entry");
    assert_eq!(register.json()["sha256"], recorded["sha256"]);
    assert_eq!(register.json()["risks"], recorded["risks"]);
    let refused = admin_call(&gateway.admin, None, Method::GET, "/admin/risks", "").await;
    assert_eq!(refused.status, 401);

    let cookie = sign_in(&gateway, "auditor").await;
    let (status, html) = page(&gateway, &cookie, "/console/models").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("<td>credit-bias, scorer-outage</td>"),
        "{html}"
    );
    let (_, html) = page(&gateway, &cookie, "/console/models/scorer/versions/1").await;
    let risks = html.split("id=\"risks\"").nth(1).expect("a risks table");
    assert!(risks.contains("<strong>credit-bias</strong> Unequal approval rates between sexes"));
    assert!(risks.contains("<td>head-of-credit-risk</td><td>fairness review every quarter</td>"));
    assert!(
        risks.contains("demographic_parity_difference of sex above 0.3"),
        "{risks}"
    );
    assert!(
        risks.contains("<strong>scorer-outage</strong>") && risks.contains("error_rate above 0.05")
    );

    // A gateway without a register: no risk is linked, and the page says so.
    let (_upstream, plain) = gateway_with_a_proposal().await;
    let cookie = sign_in(&plain, "auditor").await;
    let (status, html) = page(&plain, &cookie, "/console/models/chat/versions/v2").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"no-risks\""), "{html}");
}
