//! The command line as the README shows it: `check-config` and `demo`.

use crate::support::gateway::parse_ready_line;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_govgate");

#[test]
fn check_config_accepts_the_shipped_example_after_keygen() {
    // The README's steps on a fresh checkout: keygen into data/, then check-config.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("config")).unwrap();
    std::fs::create_dir_all(root.path().join("data")).unwrap();
    let config = root.path().join("config/govgate.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/govgate.toml"),
        &config,
    )
    .unwrap();
    // The example config reads the repository's example policies.
    std::fs::create_dir_all(root.path().join("policies")).unwrap();
    for file in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")).unwrap() {
        let path = file.unwrap().path();
        std::fs::copy(
            &path,
            root.path().join("policies").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    let refused = Command::new(BIN)
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "no key yet");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("govgate keygen"));
    let keygen = |root: &std::path::Path| {
        Command::new(BIN)
            .current_dir(root)
            .args([
                "keygen",
                "--out",
                "data/govgate.key",
                "--origin",
                "govgate.example/local",
            ])
            .output()
            .unwrap()
    };
    let first = keygen(root.path());
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        !keygen(root.path()).status.success(),
        "keygen never overwrites a key"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.path().join("data/govgate.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let output = Command::new(BIN)
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(": ok"), "{stdout}");
    assert!(
        stdout.contains("model credit-scoring (kserve_v2): versions 1, 2 (default 2)"),
        "{stdout}"
    );
    assert!(stdout.contains("audit_sample.rego"), "{stdout}");
}

#[test]
fn check_config_refuses_a_typo_with_file_key_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\npublic_listen = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:2\"\ndata_dir = \"d\"\nrequire_callr = true\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("server.require_callr"), "{stderr}");
    assert!(stderr.contains("unknown field"), "{stderr}");
}

/// Starts `govgate demo` on ephemeral ports and runs every command it
/// prints, exactly as printed, with bash: the proxy and ledger tour, then
/// human review (a denial, a hold, the reviewer's queue, the approval and
/// the client's poll that gets the released answer), the KPIs, and callers
/// with the tokens the demo signed (the ledger names the token's caller,
/// a policy denies on its `groups` claim).
#[tokio::test]
async fn demo_prints_commands_that_work_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "demo",
            "--public-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("GOVGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (public, admin) = parse_ready_line(&ready);
    // The tour ends with the policy change's ledger entries.
    let mut tour = String::new();
    while !tour.contains("/ledger/entries?from=$set&count=7\"") {
        match tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                tour.push_str(&line);
                tour.push('\n');
            }
            other => panic!("the tour stopped ({other:?}):\n{tour}"),
        }
    }
    let commands = commands_in(&tour);
    assert!(commands.len() >= 32, "tour:\n{tour}");
    demo_kpis_are_those_of_its_sample_rows(&tour);
    for command in commands.iter().filter(|c| c.contains("curl ")) {
        assert!(
            command.contains(&public) || command.contains(&admin),
            "{command}"
        );
    }
    // The sample versions were approved through the workflow, visibly.
    for step in [
        "dana (approver:ai_officer) approves credit-scoring 1: now proposed, ledger entry",
        "sam (approver:security_officer) approves credit-scoring 1: now approved, ledger entry",
        "ops (admin) activates credit-scoring 1: now active, ledger entry",
        // and so were the review policies, which judge nothing before
        "dana (approver:ai_officer) approves policy set ",
        "sam (approver:security_officer) approves policy set ",
        "ops (admin) activates policy set ",
    ] {
        assert!(tour.contains(step), "{step}\n{tour}");
    }

    // One shell, as a person pasting them into one terminal would.
    const MARK: &str = "----8<----";
    let script = format!("set -e\n{}\n", commands.join(&format!("\necho '{MARK}'\n")));
    let output = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env_remove("GOVGATE_TOKEN")
        .env_remove("GOVGATE_ADMIN_URL")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "tour failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let outputs: Vec<&str> = stdout.split(&format!("{MARK}\n")).collect();
    assert_eq!(outputs.len(), commands.len(), "{stdout}");
    for (command, output) in commands.iter().zip(&outputs) {
        if !is_assignment(command) {
            assert!(!output.trim().is_empty(), "`{command}` printed nothing");
        }
    }
    // The output of the one command matching `wanted`.
    let output_of = |wanted: &dyn Fn(&str) -> bool| -> &str {
        let mut found = commands.iter().zip(&outputs).filter(|(c, _)| wanted(c));
        let (_, output) = found.next().expect("no such command");
        assert!(found.next().is_none(), "several such commands");
        output
    };
    assert!(
        outputs[0].contains("govgate-decision-id") && outputs[0].contains("\"score\""),
        "{}",
        outputs[0]
    );
    assert!(
        stdout.contains("You wrote: Is my application complete?"),
        "{stdout}"
    );
    assert!(stdout.contains("data: [DONE]"), "{stdout}");
    // KServe V2 over gRPC: served through the gateway, recorded, and the
    // model's grpc-status trailer passed on.
    let grpc = output_of(&|c| c.contains("/inference.GRPCInferenceService/ModelInfer "));
    assert!(
        grpc.starts_with("HTTP/2 200")
            && grpc.contains("content-type: application/grpc")
            && grpc.contains("govgate-decision-id: ")
            && grpc.contains("grpc-status: 0"),
        "{grpc}"
    );
    // The Responses API: the response fetched by its id alone, through the
    // gateway that learnt its model; the Anthropic Messages API.
    let fetched = output_of(&|c| c.contains("/v1/responses/$rid "));
    assert!(
        fetched.contains("\"id\":\"resp_demo_")
            && fetched.contains("You wrote: Which documents do you need?"),
        "{fetched}"
    );
    let messages = output_of(&|c| c.contains("/v1/messages "));
    assert!(
        messages.contains("\"type\":\"message\"")
            && messages.contains("\"model\":\"support-assistant\"")
            && messages.contains("You wrote: When will I hear back?"),
        "{messages}"
    );
    assert!(stdout.contains("\"code\":\"unknown_model\""), "{stdout}");
    assert!(stdout.contains("\"kind\":\"decision\""), "{stdout}");
    assert!(
        stdout.contains("c2sp.org/tlog-proof@v1\nindex "),
        "{stdout}"
    );
    assert!(stdout.contains("\u{2014} govgate.demo/local "), "{stdout}");
    assert!(stdout.contains("govgate_requests_total{"), "{stdout}");
    let model = output_of(&|c| {
        c.ends_with("/admin/models/credit-scoring -H 'authorization: Bearer demo-token-ops'")
    });
    assert!(
        model.contains("\"approval_seq\"") && model.contains("\"principal\":\"dana\""),
        "{model}"
    );

    // Human review. Only alice's call, svc-marketing's token (step 15) and
    // bob's chat call under the policy change (step 16) are denied: every
    // other call was let through.
    assert_eq!(
        stdout.matches("\"code\":\"policy_denied\"").count(),
        3,
        "{stdout}"
    );
    let denied = output_of(&|c| c.contains("x-govgate-caller: alice"));
    assert!(
        denied.contains("\"code\":\"policy_denied\"")
            && denied.contains("\"reasons\":[\"caller alice"),
        "{denied}"
    );
    let held = output_of(&|c| c == "echo \"$held\"");
    assert!(held.starts_with("HTTP/1.1 202 "), "{held}");
    for part in [
        "govgate-review-id: ",
        "location: /govgate/decisions/",
        "\"status\":\"pending\"",
        "borderline credit score",
    ] {
        assert!(held.contains(part), "{part}\n{held}");
    }
    let pending = output_of(&|c| c.ends_with("/govgate/decisions/$id"));
    assert!(pending.contains("\"status\":\"pending\""), "{pending}");
    let queue = output_of(&|c| c.ends_with(" reviews list"));
    assert!(
        queue.contains("hold  pending  credit-scoring") && queue.contains("svc-loans"),
        "{queue}"
    );
    let listed = output_of(&|c| c.contains("/admin/reviews -H"));
    assert!(listed.contains("\"review_kind\":\"hold\""), "{listed}");
    let shown = output_of(&|c| c.ends_with(" reviews show $review"));
    assert!(shown.contains("decision         none yet"), "{shown}");
    let decided = output_of(&|c| c.contains(" reviews decide $review approve"));
    assert!(decided.contains(" approved (ledger entry "), "{decided}");
    let released = output_of(&|c| c.contains("/govgate/decisions/$id -H 'prefer: wait="));
    assert!(released.starts_with("HTTP/1.1 200 "), "{released}");
    assert!(
        released.contains("govgate-review-state: approved") && released.contains("\"score\""),
        "{released}"
    );
    assert!(stdout.contains("\"outcome\":\"held\""), "{stdout}");
    assert!(stdout.contains("credit_borderline.rego  "), "{stdout}");
    // The KPIs again: govgate kpis and the gauges the dashboard reads.
    let kpis = output_of(&|c| c.ends_with(" kpis credit-scoring"));
    for part in [
        "credit-scoring: fairness over the last 2",
        "attribute age_group",
        "under_30",
        "drift of version 1: window of ",
        "credit_amount",
    ] {
        assert!(kpis.contains(part), "{part}\n{kpis}");
    }
    let gauges = output_of(&|c| c.contains("grep -E '^govgate_kpi_"));
    // Every KPI family the shipped Grafana dashboard draws has series.
    let metrics = crate::support::send(http::Method::GET, &format!("{admin}/metrics"), &[], "")
        .await
        .text();
    let dashboard = include_str!("../../config/grafana/govgate-dashboard.json");
    let mut families: Vec<&str> = dashboard
        .match_indices("govgate_kpi_")
        .map(|(at, _)| {
            let rest = &dashboard[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    families.sort_unstable();
    families.dedup();
    assert!(families.len() >= 10, "{families:?}");
    for family in families {
        assert!(
            metrics.contains(&format!("\n{family}{{")),
            "{family} has no series after the demo tour"
        );
    }
    for part in [
        r#"govgate_kpi_demographic_parity_ratio{attribute="age_group",model="credit-scoring"} 0."#,
        r#"govgate_kpi_equalized_odds_difference{attribute="sex",model="credit-scoring"} 0."#,
        r#"govgate_kpi_psi{feature="duration_months",model="credit-scoring",version="1"} "#,
    ] {
        assert!(gauges.contains(part), "{part}\n{gauges}");
    }
    assert!(
        stdout.contains(
            "govgate_review_verdicts_total{kind=\"hold\",model=\"credit-scoring\",verdict=\"approve\"} 1"
        ),
        "{stdout}"
    );
    demo_tokens_name_their_callers(&commands, &outputs);
    demo_policy_change_is_approved_by_two_officers(&commands, &outputs);
}

/// The tour's policy change (step 16): proposed, not in force until dana
/// and sam approved it and ops activated it, then it denies bob's chat
/// call; rolled back, bob is served again; each step a ledger entry, and
/// the decisions name the set that judged them.
fn demo_policy_change_is_approved_by_two_officers(commands: &[String], outputs: &[&str]) {
    let output_of = |wanted: &dyn Fn(&str) -> bool| -> &str {
        let at = commands
            .iter()
            .position(|c| wanted(c))
            .expect("no such command");
        outputs[at]
    };
    let proposed = output_of(&|c| c.contains(" policies propose "));
    assert!(
        proposed.contains("recorded policy_set_proposed at seq "),
        "{proposed}"
    );
    // Not in force: still the folder's set, the change waiting for two.
    let listed = output_of(&|c| c.ends_with(" policies sets"));
    assert!(
        listed.contains("proposed  ops") && listed.contains("needs 2 more approval(s)"),
        "{listed}"
    );
    assert!(
        listed.contains("active    govgate-config   approvals: dana, sam"),
        "{listed}"
    );
    let activated = output_of(&|c| c.contains(" policies activate $set"));
    assert!(
        activated.contains("recorded policy_set_activated"),
        "{activated}"
    );
    let denied = output_of(&|c| c.contains("Am I still served?"));
    assert!(
        denied.contains("\"code\":\"policy_denied\"")
            && denied.contains("caller bob is not allowed to use support-chat"),
        "{denied}"
    );
    let rolled_back = output_of(&|c| c.contains(" policies rollback "));
    assert!(
        rolled_back.contains("recorded policy_set_rolled_back"),
        "{rolled_back}"
    );
    let served = output_of(&|c| c.contains("And after the rollback?"));
    assert!(
        served.contains("You wrote: And after the rollback?"),
        "{served}"
    );

    let entries: Vec<serde_json::Value> = output_of(&|c| c.contains("/ledger/entries?from=$set"))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "policy_set_proposed",
            "policy_set_approved",
            "policy_set_approved",
            "policy_set_activated",
            "decision",
            "policy_set_rolled_back",
            "decision",
        ],
        "{entries:#?}"
    );
    let set = &entries[0]["seq"];
    assert_eq!(entries[0]["principal"], "ops");
    for (entry, officer) in entries[1..3].iter().zip(["dana", "sam"]) {
        assert_eq!(entry["principal"], officer, "{entry}");
        assert_eq!(&entry["proposal_seq"], set, "{entry}");
    }
    assert_eq!(entries[2]["state"], "approved", "{}", entries[2]);
    assert_eq!(&entries[3]["proposal_seq"], set, "{}", entries[3]);
    assert_eq!(
        entries[3]["approval_seq"], entries[2]["seq"],
        "{}",
        entries[3]
    );
    assert_eq!(entries[4]["outcome"], "denied", "{}", entries[4]);
    assert_eq!(
        entries[4]["policy"]["set_seq"], entries[3]["seq"],
        "{}",
        entries[4]
    );
    assert_eq!(entries[5]["deactivated"], *set, "{}", entries[5]);
    assert_eq!(entries[6]["outcome"], "served", "{}", entries[6]);
    assert_eq!(
        entries[6]["policy"]["set_seq"], entries[5]["seq"],
        "{}",
        entries[6]
    );
}

/// The tour's last step: the decision made with svc-underwriting's token
/// names that caller and the token; svc-marketing's token is denied on
/// its `groups` claim; the JWT metrics count both.
fn demo_tokens_name_their_callers(commands: &[String], outputs: &[&str]) {
    let served = commands
        .iter()
        .position(|c| c.starts_with("id=$(") && c.contains("authorization: Bearer ey"))
        .expect("no request with a demo token");
    assert!(commands[served + 1].ends_with("/govgate/receipts/$id/entry"));
    let entry: serde_json::Value = serde_json::from_str(outputs[served + 1].trim())
        .unwrap_or_else(|err| panic!("{err}: {}", outputs[served + 1]));
    assert_eq!(entry["caller"], "svc-underwriting", "{entry}");
    assert_eq!(entry["auth"]["method"], "jwt", "{entry}");
    assert_eq!(entry["auth"]["subject"], "svc-underwriting", "{entry}");
    assert_eq!(entry["outcome"], "served", "{entry}");
    let denied = outputs[served + 2];
    assert!(
        denied.contains("\"code\":\"policy_denied\"")
            && denied.contains("credit-scoring is for the lending group; svc-marketing is in"),
        "{denied}"
    );
    let metrics = outputs[served + 3];
    assert!(
        metrics.contains("govgate_jwt_tokens_total{result=\"accepted\"} 2")
            && metrics.contains("govgate_jwks_keys 1"),
        "{metrics}"
    );
}

/// The KPIs the demo prints before its tour are figures of its 240
/// sample applications: every selection rate is the share of the group's
/// rows scored at least 0.5, each aggregate is in range, and the drift
/// figures are there for both features.
fn demo_kpis_are_those_of_its_sample_rows(tour: &str) {
    use govgate::demo::{batch, credit_score};
    let rows: Vec<_> = batch(false).into_iter().chain(batch(true)).collect();
    assert!(
        tour.contains(&format!("fairness over the last {} rows:", rows.len())),
        "{tour}"
    );
    let rate = |keep: &dyn Fn(&govgate::demo::Applicant) -> bool| {
        let group: Vec<_> = rows.iter().filter(|a| keep(a)).collect();
        let selected = group
            .iter()
            .filter(|a| credit_score(&a.features) >= 0.5)
            .count();
        selected as f64 / group.len() as f64
    };
    let rates = [
        ("female", rate(&|a| a.sex == "female")),
        ("male", rate(&|a| a.sex == "male")),
        ("30_plus", rate(&|a| a.age_group == "30_plus")),
        ("under_30", rate(&|a| a.age_group == "under_30")),
    ];
    for (group, rate) in rates {
        let shown = format!("{group} {rate:.3} (tpr ");
        assert!(tour.contains(&shown), "{shown}\n{tour}");
    }
    // Both attributes' aggregates: numbers in [0, 1], never NaN.
    let aggregates: Vec<&str> = tour
        .lines()
        .filter(|l| l.trim_start().starts_with("demographic parity difference "))
        .collect();
    assert_eq!(aggregates.len(), 2, "{tour}");
    for line in &aggregates {
        let figures: Vec<f64> = line
            .split([' ', ',', ';'])
            .filter_map(|word| word.parse().ok())
            .collect();
        assert_eq!(figures.len(), 4, "{line}");
        assert!(figures.iter().all(|x| (0.0..=1.0).contains(x)), "{line}");
    }
    let (young, old) = (rates[3].1, rates[2].1);
    let ratio = format!("ratio {:.3};", young / old);
    assert!(aggregates[1].contains(&ratio), "{ratio}\n{tour}");
    let drift = tour
        .lines()
        .find(|l| l.contains("drift of version 1 (120 rows against its first 120): "))
        .unwrap_or_else(|| panic!("no drift line\n{tour}"));
    for feature in ["credit_amount", "duration_months"] {
        let at = drift.find(&format!("{feature} psi ")).expect(feature);
        let figures: Vec<f64> = drift[at..]
            .split([' ', ',', ';'])
            .filter_map(|word| word.parse().ok())
            .take(3)
            .collect();
        assert_eq!(figures.len(), 3, "{drift}");
        // The later applications ask for more, for longer: a real shift.
        assert!(figures[0] > 0.1 && figures[0].is_finite(), "{drift}");
        assert!(
            figures[1..].iter().all(|x| *x > 0.0 && *x <= 1.0),
            "{drift}"
        );
    }
}

/// A command that only sets variables, so prints nothing.
fn is_assignment(command: &str) -> bool {
    command.starts_with("export ")
        || command.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// The shell commands in the printed tour: after its "Try these" line,
/// every line that is neither blank nor a comment, joined with its `\`
/// continuation lines.
fn commands_in(tour: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current: Option<String> = None;
    let after_heading = tour
        .lines()
        .skip_while(|line| !line.starts_with("Try these"))
        .skip(1);
    for line in after_heading {
        if let Some(command) = current.as_mut() {
            command.push('\n');
            command.push_str(line);
        } else if !line.trim().is_empty() && !line.starts_with('#') {
            current = Some(line.to_owned());
        }
        if current.as_ref().is_some_and(|c| !c.ends_with('\\')) {
            commands.extend(current.take());
        }
    }
    commands
}

/// Starts `govgate demo` on a new data directory, waits until it serves,
/// stops it with SIGTERM and returns its stderr.
async fn demo_stopped_by_sigterm(data_dir: &std::path::Path, extra: &[&str]) -> String {
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "demo",
            "--public-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .env("GOVGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(ready.starts_with("govgate ready "), "{ready}");
    assert!(data_dir.join("demo-signing.key").exists());
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn the_demo_removes_its_data_on_sigterm_unless_told_to_keep_it() {
    let root = tempfile::tempdir().unwrap();
    let removed = root.path().join("removed");
    let stderr = demo_stopped_by_sigterm(&removed, &[]).await;
    assert!(!removed.exists(), "{stderr}");
    assert!(
        stderr.contains("removed ") && stderr.contains("--keep-data"),
        "{stderr}"
    );

    let kept = root.path().join("kept");
    let stderr = demo_stopped_by_sigterm(&kept, &["--keep-data"]).await;
    assert!(kept.join("demo-signing.key").exists(), "{stderr}");
    assert!(
        stderr.contains(&format!("data kept in {}", kept.display())),
        "{stderr}"
    );
    // A directory that held files before the demo is never removed.
    let stderr = demo_stopped_by_sigterm(&kept, &[]).await;
    assert!(kept.join("demo-signing.key").exists(), "{stderr}");
}

#[tokio::test]
async fn a_hangup_to_a_gateway_with_nothing_to_reload_changes_nothing() {
    // No policies and no TLS: nothing listens for SIGHUP to reload.
    let upstream = crate::support::TestUpstream::start().await;
    let mut gateway = crate::support::Gateway::start(&crate::models(&upstream.url())).await;
    gateway.signal("HUP");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(gateway.infer("{}").await.status, 200, "still serving");
    assert!(gateway.stop().await.success(), "stops cleanly later");
}
