//! The console in a real browser: Debian's chromium, headless, driven by
//! chromedriver. Two officers approve a version and a third person
//! activates it, each signed in in a browser of their own; the ledger then
//! holds the three entries under their names. A reviewer sees the version
//! but no button to change it. No page logs an error. Screenshots go to
//! `<target>/console-*.png` (docs/console.md shows them). Every page passes
//! axe-core's WCAG 2.1 A and AA audit (tests/data/axe) in light and dark.

use crate::console::gateway_with_a_proposal;
use crate::support::webdriver::{Browser, Driver};
use crate::support::{Gateway, target_dir};

/// Signs `principal` in through the sign-in page.
async fn sign_in(browser: &Browser<'_>, gateway: &Gateway, principal: &str) {
    browser.goto(&format!("{}/console/", gateway.admin)).await;
    assert!(
        browser.url().await.ends_with("/console/sign-in"),
        "not signed in yet"
    );
    browser
        .type_into("#token", crate::support::governance::token(principal))
        .await;
    browser.click("#sign-in").await;
    let shown = browser.text("#principal").await;
    assert!(shown.starts_with(principal), "{shown}");
}

#[tokio::test]
#[ignore = "needs chromium and chromedriver (Debian packages chromium, chromium-driver); run with: cargo test -- --include-ignored"]
async fn officers_approve_and_activate_in_their_own_browsers_and_a_reviewer_sees_no_buttons() {
    let (_upstream, gateway) = gateway_with_a_proposal().await;
    let driver = Driver::start().await;
    let profiles = tempfile::tempdir().unwrap();
    let version = format!("{}/console/models/chat/versions/v2", gateway.admin);
    let target = target_dir();
    let steps = [
        (
            "ai-officer",
            "approve",
            "2 more approvals: approver:ai_officer",
        ),
        ("security-officer", "approve", "1 more approval"),
        ("ops", "activate", ""),
    ];
    for (at, (principal, action, needed)) in steps.iter().enumerate() {
        let browser = driver.browser(&profiles.path().join(principal)).await;
        sign_in(&browser, &gateway, principal).await;
        browser.goto(&version).await;
        if !needed.is_empty() {
            assert_eq!(browser.text("#needed").await, *needed);
        }
        if at == 1 {
            browser
                .screenshot(&target.join("console-version.png"))
                .await;
        }
        browser
            .type_into(
                &format!("#reason-{action}"),
                &format!("{principal}: checked"),
            )
            .await;
        browser.click(&format!("#do-{action}")).await;
        let notice = browser.text("#notice").await;
        assert!(
            notice.contains("recorded as ledger entry"),
            "{principal}: {notice}"
        );
        let errors = browser.console_errors().await;
        assert!(errors.is_empty(), "{principal}: {errors:?}");
        if at == 2 {
            assert_eq!(browser.text("#state").await, "active");
            browser.goto(&format!("{}/console/", gateway.admin)).await;
            browser
                .screenshot(&target.join("console-overview.png"))
                .await;
        }
        browser.close().await;
    }
    let entries = gateway.entries().await;
    let by = |kind: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e["kind"] == kind && e["version"] == "v2")
            .map(|e| e["principal"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        by("version_approved"),
        vec!["ai-officer", "security-officer"]
    );
    assert_eq!(by("version_activated"), vec!["ops"]);

    // A reviewer reads the version, with no button to change it.
    let browser = driver.browser(&profiles.path().join("rita")).await;
    sign_in(&browser, &gateway, "rita").await;
    browser.goto(&version).await;
    assert_eq!(browser.text("#state").await, "active");
    assert!(browser.all("button[id^=do-]").await.is_empty());
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "rita: {errors:?}");
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs chromium and chromedriver (Debian packages chromium, chromium-driver); run with: cargo test -- --include-ignored"]
async fn a_reviewer_sees_a_hold_arrive_and_approves_it_and_the_waiting_client_gets_the_answer() {
    let (gateway, _upstream, _policies) = crate::reviews::start("").await;
    let driver = Driver::start().await;
    let profiles = tempfile::tempdir().unwrap();
    let browser = driver.browser(&profiles.path().join("rita")).await;
    sign_in(&browser, &gateway, "rita").await;
    browser
        .goto(&format!("{}/console/reviews", gateway.admin))
        .await;
    assert!(browser.text("#queue-state").await.starts_with("0 waiting"));

    // A held answer arrives while the page is open: the page shows it
    // without being told to reload.
    let body = r#"{"hold": true, "messages": [{"role": "user", "content": "Is my loan approved?"}, {"role": "assistant", "content": "Yes, at 4.1 %."}]}"#;
    let (decision_id, review_id) = crate::reviews::held(&gateway, body).await;
    let mut shown = String::new();
    for _ in 0..100 {
        shown = browser.text("#queue-state").await;
        if shown.starts_with("1 waiting") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(shown.starts_with("1 waiting"), "{shown}");
    browser
        .screenshot(&target_dir().join("console-reviews.png"))
        .await;

    // The client waits on its poll while the reviewer reads and decides.
    let waiting = {
        let gateway_url = gateway.url(&format!("/govgate/decisions/{decision_id}"));
        tokio::spawn(async move {
            crate::support::send(
                http::Method::GET,
                &gateway_url,
                &[("prefer", "wait=20")],
                "",
            )
            .await
        })
    };
    browser
        .click(&format!("a[href='/console/reviews/{review_id}']"))
        .await;
    // The held answer reads as a conversation.
    let conversation = browser.text("ol.chat").await;
    assert!(conversation.contains("Yes, at 4.1 %."), "{conversation}");
    browser
        .screenshot(&target_dir().join("console-review.png"))
        .await;
    browser.type_into("#reason-approve", "answer checked").await;
    browser.click("#do-approve").await;
    assert!(browser.text("#notice").await.contains("approve: recorded"));
    assert_eq!(browser.text("#status").await, "approved");
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");
    browser.close().await;

    let answer = waiting.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.body.as_ref(),
        body.as_bytes(),
        "the upstream's answer, byte for byte"
    );
    let verdict: Vec<serde_json::Value> = gateway
        .entries()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "review_decided" && e["review_id"] == review_id.as_str())
        .collect();
    assert_eq!(verdict.len(), 1);
    assert_eq!(verdict[0]["reviewer"], "rita");
    assert_eq!(verdict[0]["reason"], "answer checked");
}

/// Clicks "Verify in this browser" and waits for its verdict.
async fn verify_in_browser(browser: &Browser<'_>) -> String {
    browser.click("#verify").await;
    for _ in 0..100 {
        let shown = browser.text("#verify-result").await;
        if shown.starts_with("Verified") || shown.starts_with("Not verified") {
            return shown;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no verdict from the page");
}

#[tokio::test]
#[ignore = "needs chromium and chromedriver (Debian packages chromium, chromium-driver); run with: cargo test -- --include-ignored"]
async fn a_decisions_receipt_verifies_in_the_browser_and_a_tampered_one_does_not() {
    let (gateway, _upstream, _policies) = crate::reviews::start("").await;
    let served = crate::reviews::infer_as(&gateway, "svc-app", r#"{"x": 1}"#).await;
    assert_eq!(served.status, 200, "{}", served.text());
    let decision_id = served.decision_id();
    gateway.wait_for_decision(&decision_id).await;

    let driver = Driver::start().await;
    let profiles = tempfile::tempdir().unwrap();
    let browser = driver.browser(&profiles.path().join("auditor")).await;
    sign_in(&browser, &gateway, "auditor").await;
    browser
        .goto(&format!("{}/console/decisions", gateway.admin))
        .await;
    browser.type_into("#decision-id", &decision_id).await;
    browser.click("#find").await;
    assert_eq!(browser.text("dd#decision-id").await, decision_id);
    let verdict = verify_in_browser(&browser).await;
    assert!(
        verdict.starts_with("Verified in this browser: entry "),
        "{verdict} (key {:?})",
        browser.value("#vkey").await
    );
    browser
        .screenshot(&target_dir().join("console-decision.png"))
        .await;

    // One member of the entry changed: not in the log.
    let entry = browser.value("#entry-bytes").await;
    let tampered = entry.replacen("\"caller\":\"svc-app\"", "\"caller\":\"svc-evil\"", 1);
    assert_ne!(tampered, entry);
    browser.clear("#entry-bytes").await;
    browser.type_into("#entry-bytes", &tampered).await;
    let verdict = verify_in_browser(&browser).await;
    assert_eq!(
        verdict,
        format!(
            "Not verified: the entry is not included under the checkpoint's root at index {}",
            serde_json::from_str::<serde_json::Value>(&entry).unwrap()["seq"]
        )
    );
    // The right entry, but another log's key: the checkpoint is not its.
    browser.clear("#entry-bytes").await;
    browser.type_into("#entry-bytes", &entry).await;
    assert!(verify_in_browser(&browser).await.starts_with("Verified"));
    let (_, other_key) = gateway.config_with_new_key("other");
    browser.clear("#vkey").await;
    browser.type_into("#vkey", other_key.trim()).await;
    assert_eq!(
        verify_in_browser(&browser).await,
        "Not verified: the checkpoint is not signed by this key",
        "typed {other_key:?}, the field holds {:?}",
        browser.value("#vkey").await
    );
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");
    browser.close().await;
}

#[tokio::test]
#[ignore = "needs chromium and chromedriver (Debian packages chromium, chromium-driver); run with: cargo test -- --include-ignored"]
async fn a_kpi_chart_appears_after_traffic() {
    let upstream = crate::support::TestUpstream::start().await;
    let gateway = Gateway::start(&crate::kpi_snapshots::config(&upstream.url())).await;
    let driver = Driver::start().await;
    let profiles = tempfile::tempdir().unwrap();
    let browser = driver.browser(&profiles.path().join("auditor")).await;
    sign_in(&browser, &gateway, "auditor").await;
    browser
        .goto(&format!("{}/console/kpis", gateway.admin))
        .await;
    browser.click("#kpi-models a").await;
    assert_eq!(
        browser.text("#no-snapshots").await,
        "No snapshot in this range."
    );

    crate::console::kpi_traffic(&gateway, 2).await;
    browser
        .goto(&format!("{}/console/kpis/scorer", gateway.admin))
        .await;
    assert!(!browser.all("#charts svg").await.is_empty(), "a chart");
    browser
        .screenshot(&target_dir().join("console-kpis.png"))
        .await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");
    browser.close().await;
}

/// A page of another origin (another port) whose form posts an approval
/// to the console, as a forged link would.
async fn attacker_page(target: String) -> (String, tokio::task::JoinHandle<()>) {
    let html = format!(
        "<!doctype html><title>win a prize</title><form method=\"post\" action=\"{target}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"reason\" value=\"forged\">\
         <button id=\"go\" type=\"submit\">Claim</button></form>",
        "0".repeat(64)
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move || {
        let html = html.clone();
        async move { axum::response::Html(html) }
    });
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

#[tokio::test]
#[ignore = "needs chromium and chromedriver (Debian packages chromium, chromium-driver); run with: cargo test -- --include-ignored"]
async fn a_form_on_another_origin_cannot_approve_for_a_signed_in_officer() {
    let (_upstream, gateway) = gateway_with_a_proposal().await;
    let approve = format!("{}/console/models/chat/versions/v2/approve", gateway.admin);
    let (attacker, server) = attacker_page(approve).await;
    let driver = Driver::start().await;
    let profiles = tempfile::tempdir().unwrap();
    let browser = driver.browser(&profiles.path().join("ai-officer")).await;
    sign_in(&browser, &gateway, "ai-officer").await;
    // Signed in, the officer opens the other page and presses its button:
    // the browser sends the console's cookie (same site) but the console
    // refuses a change from another origin without the session's token.
    browser.goto(&attacker).await;
    browser.click("#go").await;
    let refused = browser.text("#notice").await;
    assert!(refused.contains("cross-site request refused"), "{refused}");
    let approvals: Vec<serde_json::Value> = gateway
        .entries()
        .await
        .into_iter()
        .filter(|e| e["kind"] == "version_approved" && e["version"] == "v2")
        .collect();
    assert!(approvals.is_empty(), "{approvals:?}");
    // The officer's own console still works.
    browser
        .goto(&format!(
            "{}/console/models/chat/versions/v2",
            gateway.admin
        ))
        .await;
    assert_eq!(browser.text("#state").await, "proposed");
    browser.close().await;
    server.abort();
}

/// `path` of `gateway`, audited in `browser` in both colour schemes.
async fn audited(browser: &Browser<'_>, gateway: &Gateway, path: &str) -> Vec<String> {
    let mut found = Vec::new();
    for scheme in ["light", "dark"] {
        browser.color_scheme(scheme).await;
        browser.goto(&format!("{}{path}", gateway.admin)).await;
        for violation in browser.accessibility_violations().await {
            found.push(format!("{path} ({scheme}): {violation}"));
        }
    }
    found
}

#[tokio::test]
#[ignore = "needs chromium and chromedriver (Debian packages chromium, chromium-driver); run with: cargo test -- --include-ignored"]
async fn every_page_passes_an_accessibility_audit_in_light_and_dark() {
    let (gateway, _upstream, _policies) = crate::reviews::start("").await;
    let (decision, review) = crate::reviews::held(&gateway, r#"{"hold": true}"#).await;
    let served = crate::reviews::infer_as(&gateway, "svc-app", r#"{"x": 1}"#).await;
    gateway.wait_for_decision(&served.decision_id()).await;
    let kpi_upstream = crate::support::TestUpstream::start().await;
    let kpis = Gateway::start(&crate::kpi_snapshots::config(&kpi_upstream.url())).await;
    crate::console::kpi_traffic(&kpis, 2).await;

    let driver = Driver::start().await;
    let profiles = tempfile::tempdir().unwrap();
    let mut found = Vec::new();
    let visitor = driver.browser(&profiles.path().join("visitor")).await;
    found.extend(audited(&visitor, &gateway, "/console/sign-in").await);
    visitor.close().await;

    let ops = driver.browser(&profiles.path().join("ops")).await;
    sign_in(&ops, &gateway, "ops").await;
    for path in [
        "/console/".to_owned(),
        "/console/models".to_owned(),
        "/console/models/scorer".to_owned(),
        "/console/models/scorer/versions/v1".to_owned(),
        "/console/decisions?caller=svc-app".to_owned(),
        format!("/console/decisions/{decision}"),
        "/console/ledger/1".to_owned(),
        "/console/evidence".to_owned(),
    ] {
        found.extend(audited(&ops, &gateway, &path).await);
    }
    ops.close().await;

    let rita = driver.browser(&profiles.path().join("rita")).await;
    sign_in(&rita, &gateway, "rita").await;
    for path in [
        "/console/reviews".to_owned(),
        format!("/console/reviews/{review}"),
    ] {
        found.extend(audited(&rita, &gateway, &path).await);
    }
    rita.close().await;

    let auditor = driver.browser(&profiles.path().join("auditor")).await;
    sign_in(&auditor, &kpis, "auditor").await;
    for path in ["/console/kpis", "/console/kpis/scorer"] {
        found.extend(audited(&auditor, &kpis, path).await);
    }
    auditor
        .screenshot(&target_dir().join("console-kpis-dark.png"))
        .await;
    auditor.close().await;
    assert!(found.is_empty(), "{}", found.join("\n"));
}
