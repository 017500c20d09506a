//! Fleet KPIs: the German Credit replay of tests/it/kpi_golden.rs (the
//! KServe V2 form), sent round-robin across three replicas sharing a real
//! PostgreSQL (a throwaway cluster), reproduces every golden value in the
//! fleet series (`govgate_fleet_kpi_*`) of each replica, as one gateway
//! does in its own series. Each row's label is fed back through a replica
//! other than the one that served it. The fleet series are the same on
//! every replica, and the replicas' own series add up to the fleet's
//! (nothing counted twice).

use crate::kpi_golden::{
    BATCH, CreditRow, HALF, Protocol, Sample, ScoringUpstream, Scrape, Served, assert_drift,
    assert_fairness, credit_rows, feedback, golden, label, model_toml, models, scrape, serve,
    wait_for_counter,
};
use crate::support::Gateway;
use crate::support::governance::{admin_call, approve_declared};
use crate::support::postgres::Postgres;
use http::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The fleet series of `scrape` under the single gateway's names
/// (`govgate_fleet_kpi_x` read as `govgate_kpi_x`), for the golden checks.
fn fleet_as_single(scrape: &Scrape) -> Scrape {
    Scrape(
        scrape
            .0
            .iter()
            .filter_map(|s| {
                let kpi = s.name.strip_prefix("govgate_fleet_kpi_")?;
                Some(Sample {
                    name: format!("govgate_kpi_{kpi}"),
                    labels: s.labels.clone(),
                    value: s.value,
                })
            })
            .collect(),
    )
}

/// Every fleet sample of `scrape` as text, sorted: equal on every replica.
fn fleet_samples(scrape: &Scrape) -> Vec<String> {
    let mut samples: Vec<String> = scrape
        .0
        .iter()
        .filter(|s| s.name.starts_with("govgate_fleet_kpi_"))
        .map(|s| format!("{} {:?} {:e}", s.name, s.labels, s.value))
        .collect();
    samples.sort();
    samples
}

pub(crate) fn replica_config(models: &str, url_file: &Path, replica_id: &str) -> String {
    format!(
        "{models}\n[cluster]\nurl = {{ file = \"{}\" }}\nreplica_id = \"{replica_id}\"\nlease_secs = 3\n",
        url_file.display()
    )
}

/// What the tiny model's fleet tests start from: a control plane and its
/// URL file, the credit rows and their scoring upstream, and the model's
/// configuration. Keep it for as long as the replicas run: the control
/// plane, the URL file's directory and the upstream live as long as it.
pub(crate) struct TinyFleet {
    pub(crate) data: Vec<CreditRow>,
    pub(crate) postgres: Postgres,
    _urls: tempfile::TempDir,
    pub(crate) url: PathBuf,
    pub(crate) upstream: ScoringUpstream,
    pub(crate) model: String,
}

impl TinyFleet {
    pub(crate) async fn start() -> Self {
        let data = credit_rows();
        let postgres = Postgres::start();
        let urls = tempfile::tempdir().unwrap();
        let url = postgres.url_file(urls.path());
        let upstream = ScoringUpstream::start(&data).await;
        let model = tiny_model(&upstream.url);
        Self {
            data,
            postgres,
            _urls: urls,
            url,
            upstream,
            model,
        }
    }
}

/// Three replicas started together on `configs`, their declared versions
/// approved and activated once, on the first, for the fleet; each serving
/// version 1 of `models` before this returns.
pub(crate) async fn serving_fleet(
    configs: &[String],
    models: &[&str],
) -> (Gateway, Gateway, Gateway) {
    let (g1, g2, g3) = tokio::join!(
        Gateway::start_pending("", &configs[0]),
        Gateway::start_pending("", &configs[1]),
        Gateway::start_pending("", &configs[2])
    );
    approve_declared(&g1.admin, &configs[0]).await;
    for replica in [&g1, &g2, &g3] {
        until_active(replica, models).await;
    }
    (g1, g2, g3)
}

/// Waits until `replica` serves version 1 of every model of `models`
/// (the fleet's approvals reach it through the control log).
pub(crate) async fn until_active(replica: &Gateway, models: &[&str]) {
    for model in models {
        let path = format!("/admin/models/{model}/versions/1");
        let mut last = String::new();
        for _ in 0..100 {
            let reply = admin_call(&replica.admin, Some("ops"), Method::GET, &path, "").await;
            last = reply.text();
            if reply.status == 200 && reply.json()["version"]["state"] == "active" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(last.contains("\"active\""), "{model}: {last}");
    }
}

/// One result per label of `body` (a batch) sent to `replica`.
async fn results(replica: &Gateway, body: &Value) -> Vec<String> {
    let reply = feedback(replica, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn the_german_credit_replay_round_robin_across_three_replicas_reproduces_the_golden_kpis() {
    let data = credit_rows();
    let golden = golden();
    let postgres = Postgres::start();
    let urls = tempfile::tempdir().unwrap();
    let url = postgres.url_file(urls.path());
    let upstream = ScoringUpstream::start(&data).await;
    let models = models("fleet");
    let models_toml: String = models
        .iter()
        .map(|model| model_toml(Protocol::KserveV2, model, &upstream.url))
        .collect();
    let configs: Vec<String> = ["r1", "r2", "r3"]
        .iter()
        .map(|id| replica_config(&models_toml, &url, id))
        .collect();
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    let (g1, g2, g3) = serving_fleet(&configs, &names).await;
    let replicas = [&g1, &g2, &g3];

    // One call at a time, round-robin: call i to replica i % 3. The first
    // half is in every replica's fleet windows before the second is sent,
    // as one gateway's test waits for its own counter.
    let mut served: Vec<(usize, Served)> = Vec::new();
    let mut call = 0;
    for range in [0..HALF, HALF..1000] {
        let chunks: Vec<Vec<usize>> = range
            .clone()
            .collect::<Vec<_>>()
            .chunks(BATCH)
            .map(<[usize]>::to_vec)
            .collect();
        for m in 0..models.len() {
            for rows in &chunks {
                let at = call % replicas.len();
                call += 1;
                let answer = serve(
                    replicas[at],
                    Protocol::KserveV2,
                    &models,
                    &data,
                    m,
                    rows.clone(),
                )
                .await;
                served.push((at, answer));
            }
        }
        for replica in replicas {
            for model in &models {
                wait_for_counter(
                    replica,
                    "govgate_fleet_kpi_rows_total",
                    &[("model", &model.name)],
                    range.end,
                )
                .await;
            }
        }
    }

    // Each label through the next replica: never the one that served it.
    let mut batches: BTreeMap<usize, Vec<Value>> = BTreeMap::new();
    for (at, s) in &served {
        for (index, &row) in s.rows.iter().enumerate() {
            if row >= 1000 - models[s.model].window {
                batches
                    .entry((at + 1) % replicas.len())
                    .or_default()
                    .push(label(s, index, &data));
            }
        }
    }
    for (to, labels) in &batches {
        for chunk in labels.chunks(100) {
            let results = results(replicas[*to], &json!({ "feedback": chunk })).await;
            assert_eq!(results.len(), chunk.len());
            assert!(results.iter().all(|r| r == "applied"), "{results:?}");
        }
    }
    for replica in replicas {
        for model in &models {
            wait_for_counter(
                replica,
                "govgate_fleet_kpi_labels_total",
                &[("model", &model.name)],
                model.window,
            )
            .await;
        }
    }

    // The fleet figures are the golden ones, on every replica alike.
    let scrapes = [scrape(&g1).await, scrape(&g2).await, scrape(&g3).await];
    let [all, last, shifted] = &models;
    for scrape in &scrapes {
        let fleet = fleet_as_single(scrape);
        assert_fairness(&fleet, &all.name, &golden["fairness"]["all_rows"]);
        assert_fairness(&fleet, &last.name, &golden["fairness"]["last_500"]);
        assert_fairness(&fleet, &shifted.name, &golden["fairness"]["last_500"]);
        assert_drift(&fleet, &last.name, &golden["drift"]["plain"], true);
        assert_drift(&fleet, &shifted.name, &golden["drift"]["shifted"], true);
        assert_eq!(
            scrape.value(
                "govgate_fleet_kpi_dropped_total",
                &[("reason", "queue_full")]
            ),
            Some(0.0)
        );
    }
    // A replica exposes every fleet family docs/metrics.md lists, and the
    // single gateway's as before.
    let text = crate::support::send(Method::GET, &format!("{}/metrics", g1.admin), &[], "")
        .await
        .text();
    for (name, family) in crate::promtool::documented() {
        if family.fleet {
            let declared = format!("# TYPE {name} {}\n", family.kind);
            assert!(text.contains(&declared), "{name} not exposed");
        }
    }
    assert!(text.contains("# TYPE govgate_kpi_demographic_parity_ratio gauge\n"));
    assert_eq!(fleet_samples(&scrapes[0]), fleet_samples(&scrapes[1]));
    assert_eq!(fleet_samples(&scrapes[0]), fleet_samples(&scrapes[2]));

    // Each replica's own series cover its own rows: summed, the fleet's.
    for model in &models {
        let rows: Vec<f64> = scrapes
            .iter()
            .map(|s| {
                s.value("govgate_kpi_rows_total", &[("model", &model.name)])
                    .unwrap()
            })
            .collect();
        assert!(rows.iter().all(|&r| r > 0.0 && r < 1000.0), "{rows:?}");
        assert_eq!(rows.iter().sum::<f64>(), 1000.0, "{}: {rows:?}", model.name);
    }
    for (group, g) in golden["fairness"]["all_rows"]["sex"]["groups"]
        .as_object()
        .unwrap()
    {
        let labels = [
            ("model", all.name.as_str()),
            ("attribute", "sex"),
            ("group", group),
        ];
        let sum: f64 = scrapes
            .iter()
            .map(|s| s.value("govgate_kpi_group_rows", &labels).unwrap_or(0.0))
            .sum();
        assert_eq!(sum, g["count"].as_f64().unwrap(), "sex={group}");
    }

    // A second label for a row, through the third replica: the fleet
    // keeps the first.
    let (at, first) = &served[0];
    let again = json!({"feedback": [label(first, 0, &data)]});
    let third = replicas[(at + 2) % replicas.len()];
    assert_eq!(results(third, &again).await, ["already_labeled"]);
    let unknown = json!({"feedback": [{"decision_id": "0".repeat(32), "row": 0, "label": true}]});
    assert_eq!(results(third, &unknown).await, ["unknown_decision"]);

    // The feed holds every row and every label once.
    let db = postgres.client().await;
    let counts: Vec<(String, i64)> = db
        .query(
            "SELECT kind, count(*) FROM govgate_kpi_feed GROUP BY kind ORDER BY kind",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        counts,
        vec![("label".to_owned(), 2000), ("row".to_owned(), 3000)]
    );
}

/// A model with a window of 4 rows and a reference of 2, one row a call:
/// the row's score from the scoring upstream, `sex` from a header, the
/// numeric feature `amount` from the request.
pub(crate) fn tiny_model(upstream: &str) -> String {
    format!(
        "[[models]]\nname = \"tiny\"\nprotocol = \"http\"\npath_prefix = \"/tiny\"\n\
         [[models.versions]]\nversion = \"1\"\nupstream = \"{upstream}/json\"\n\
         [models.kpi]\nwindow = 4\nmin_group_size = 1\nreference_rows = 2\n\
         [models.kpi.outcome]\npointer = \"/score\"\nthreshold = 0.5\n\
         [[models.kpi.attributes]]\nname = \"sex\"\nheader = true\n\
         [[models.kpi.features]]\nname = \"amount\"\nkind = \"numeric\"\npointer = \"/amount\"\n"
    )
}

/// Call `i` of the tiny model: CSV row `i`'s score, amount `100 i`.
pub(crate) async fn tiny_call(replica: &Gateway, i: usize) -> String {
    let sex = if i.is_multiple_of(3) {
        "female"
    } else {
        "male"
    };
    let reply = crate::support::send(
        Method::POST,
        &replica.url("/tiny/score"),
        &[
            ("content-type", "application/json"),
            ("x-govgate-attr-sex", sex),
        ],
        json!({"row": i, "amount": 100 * i}).to_string(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.decision_id()
}

/// The fleet's KPI report of `model` on `replica`, without the counts
/// since start (`rows_total`), which are each replica's own.
pub(crate) async fn fleet_windows(replica: &Gateway, model: &str) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(members) => {
                members.remove("rows_total");
                members.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let path = format!("/admin/kpis/{model}?scope=fleet");
    let reply = admin_call(&replica.admin, Some("ops"), Method::GET, &path, "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let mut report = reply.json();
    strip(&mut report);
    report
}

async fn feed_counts(db: &tokio_postgres::Client) -> Vec<(String, i64)> {
    db.query(
        "SELECT kind, count(*) FROM govgate_kpi_feed GROUP BY kind ORDER BY kind",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn the_feed_keeps_what_the_windows_need_and_a_late_replica_folds_it_into_the_same_windows() {
    let tiny = TinyFleet::start().await;
    let (url, model, data) = (&tiny.url, &tiny.model, &tiny.data);
    let config = |id: &str| replica_config(model, url, id);
    let (r1, r2) = (config("r1"), config("r2"));
    let (one, mut two) = tokio::join!(
        Gateway::start_pending("", &r1),
        Gateway::start_pending("", &r2)
    );
    approve_declared(&one.admin, &r1).await;
    until_active(&one, &["tiny"]).await;
    until_active(&two, &["tiny"]).await;

    // 20 calls, alternately to each replica, each in the feed before the
    // next is sent: the feed's order is the calls' order.
    let mut decisions = Vec::new();
    for i in 0..20_usize {
        let replica = if i.is_multiple_of(2) { &one } else { &two };
        decisions.push(tiny_call(replica, i).await);
        wait_for_counter(
            replica,
            "govgate_fleet_kpi_rows_total",
            &[("model", "tiny")],
            i + 1,
        )
        .await;
    }
    // A replica takes a label for another's decision once its fleet
    // windows hold the row: both have read all 20 rows of the feed.
    for replica in [&one, &two] {
        wait_for_counter(
            replica,
            "govgate_fleet_kpi_rows_total",
            &[("model", "tiny")],
            20,
        )
        .await;
    }
    // Labels of calls 12..19 (the decisions the fleet remembers: the last
    // 2 x 4 rows) through the replica that did not serve them; the label
    // of call 5 through its own replica, which remembers its own last 8.
    for i in 12..20_usize {
        let other = if i.is_multiple_of(2) { &two } else { &one };
        let body = json!({"feedback": [{"decision_id": decisions[i], "row": 0, "label": data[i].good_credit}]});
        assert_eq!(results(other, &body).await, ["applied"], "call {i}");
    }
    let body = json!({"feedback": [{"decision_id": decisions[5], "row": 0, "label": true}]});
    assert_eq!(results(&two, &body).await, ["applied"]);
    for replica in [&one, &two] {
        wait_for_counter(
            replica,
            "govgate_fleet_kpi_labels_total",
            &[("model", "tiny")],
            8,
        )
        .await;
    }
    let db = tiny.postgres.client().await;
    assert_eq!(
        feed_counts(&db).await,
        vec![("label".to_owned(), 9), ("row".to_owned(), 20)]
    );
    let before = fleet_windows(&one, "tiny").await;
    assert_eq!(before["fairness"]["rows_in_window"], 4, "{before}");
    assert_eq!(before, fleet_windows(&two, "tiny").await);

    // A restart prunes: the version's first 2 rows and the model's last
    // 8 stay (calls 0, 1, 12..19), with their labels (call 5's goes).
    two.stop().await;
    two.restart().await;
    let mut counts = Vec::new();
    for _ in 0..100 {
        counts = feed_counts(&db).await;
        if counts == [("label".to_owned(), 8), ("row".to_owned(), 10)] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        counts,
        vec![("label".to_owned(), 8), ("row".to_owned(), 10)]
    );
    let kept: Vec<String> = db
        .query(
            "SELECT decision_id FROM govgate_kpi_feed WHERE kind = 'row' ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let expected: Vec<String> = [0, 1]
        .into_iter()
        .chain(12..20)
        .map(|i| decisions[i].clone())
        .collect();
    assert_eq!(kept, expected);

    // A replica that joins now folds what is kept into the same windows.
    let three = Gateway::start_pending("", &config("r3")).await;
    until_active(&three, &["tiny"]).await;
    wait_for_counter(
        &three,
        "govgate_fleet_kpi_rows_total",
        &[("model", "tiny")],
        10,
    )
    .await;
    wait_for_counter(
        &three,
        "govgate_fleet_kpi_labels_total",
        &[("model", "tiny")],
        8,
    )
    .await;
    assert_eq!(fleet_windows(&three, "tiny").await, before);

    // `govgate kpis MODEL --fleet` prints the fleet's windows.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .args(["kpis", "tiny", "--fleet", "--admin-url", &three.admin])
        .env("GOVGATE_TOKEN", crate::support::governance::token("ops"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout
            .starts_with("tiny (fleet): fairness over the last 4 rows (window 4, 10 since start)"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (Debian package postgresql); run with: cargo test -- --include-ignored"]
async fn calls_never_wait_for_the_feed_and_their_rows_reach_it_once_the_database_is_back() {
    let tiny = TinyFleet::start().await;
    let (url, model) = (&tiny.url, &tiny.model);
    let config = replica_config(model, url, "r1");
    let mut replica = Gateway::start_pending("", &config).await;
    approve_declared(&replica.admin, &config).await;
    until_active(&replica, &["tiny"]).await;

    tiny.postgres.stop();
    for i in 0..5 {
        let started = std::time::Instant::now();
        tiny_call(&replica, i).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "call {i} took {:?} with the database away",
            started.elapsed()
        );
    }
    // The replica's own KPIs have them at once; the fleet's once the
    // writer, trying again every second, reaches the database.
    wait_for_counter(&replica, "govgate_kpi_rows_total", &[("model", "tiny")], 5).await;
    let scraped = scrape(&replica).await;
    assert_eq!(
        scraped.value("govgate_fleet_kpi_rows_total", &[("model", "tiny")]),
        Some(0.0)
    );
    tiny.postgres.restart();
    wait_for_counter(
        &replica,
        "govgate_fleet_kpi_rows_total",
        &[("model", "tiny")],
        5,
    )
    .await;
    let scraped = scrape(&replica).await;
    assert_eq!(
        scraped.value(
            "govgate_fleet_kpi_dropped_total",
            &[("reason", "queue_full")]
        ),
        Some(0.0)
    );
    assert_eq!(
        scraped.value(
            "govgate_fleet_kpi_group_rows",
            &[("model", "tiny"), ("attribute", "sex"), ("group", "male")]
        ),
        Some(3.0)
    );

    // Rows of calls answered just before a clean stop are written before
    // the replica exits.
    for i in 5..10 {
        tiny_call(&replica, i).await;
    }
    assert!(replica.stop().await.success());
    let db = tiny.postgres.client().await;
    assert_eq!(feed_counts(&db).await, vec![("row".to_owned(), 10)]);
}
