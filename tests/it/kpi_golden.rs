//! The German Credit golden KPIs (tests/data/german_credit_golden.json)
//! reproduced through the real proxy.
//!
//! A scoring upstream answers every row of tests/data/german_credit.csv
//! with that row's `score`. The CSV is replayed in row order, once as
//! KServe V2 batches of 50 rows and once as single JSON rows whose
//! protected attributes travel in `x-govgate-attr-*` headers. Each replay
//! feeds three models of one gateway:
//!
//! - `all`: window 1000, so fairness covers rows 0..999 (`all_rows`);
//! - `last`: window 500, so fairness covers rows 500..999 (`last_500`) and
//!   drift compares the reference (the first 500 rows served) with the
//!   window (`plain`);
//! - `shifted`: like `last`, but rows 500..999 are sent with the `shifted`
//!   scenario's credit amount and duration (fairness `last_500` again,
//!   since the scores do not change, and drift `shifted`).
//!
//! Rows 0..499 are all served before row 500 is sent, and the gateway's
//! row counter is awaited in between, so the reference and the windows hold
//! exactly the golden rows whatever order the rows of one half arrive in.
//! Then the `good_credit` labels are fed back through
//! `POST /govgate/feedback`, and every golden value is read back from the
//! admin port's `/metrics`: fairness to 1e-9, drift to 1e-6.

use crate::support::{Gateway, send};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

// ---- the data ----

/// The numeric columns, in CSV order (the `numeric` tensor's columns).
const NUMERIC: [&str; 7] = [
    "duration_months",
    "credit_amount",
    "installment_rate",
    "residence_since",
    "age_years",
    "existing_credits",
    "dependents",
];

/// The categorical columns, in CSV order (the `categorical` tensor's columns).
const CATEGORICAL: [&str; 11] = [
    "checking_status",
    "credit_history",
    "purpose",
    "savings",
    "employment_since",
    "housing",
    "job",
    "property",
    "other_debtors",
    "other_installment_plans",
    "telephone",
];

/// The protected attributes, in CSV order (the `protected` tensor's columns).
const PROTECTED: [&str; 3] = ["sex", "age_group", "foreign_worker"];

/// Rows per KServe V2 request.
pub(crate) const BATCH: usize = 50;

/// The first row of the second half (the drift reference is rows before it).
pub(crate) const HALF: usize = 500;

/// Requests in flight at once.
const IN_FLIGHT: usize = 32;

/// Fairness tolerance (absolute), from tests/data/README.md.
const FAIRNESS_TOLERANCE: f64 = 1e-9;

/// Drift tolerance (absolute), from tests/data/README.md.
const DRIFT_TOLERANCE: f64 = 1e-6;

/// One CSV row.
pub(crate) struct CreditRow {
    numeric: [i64; 7],
    categorical: [String; 11],
    protected: [String; 3],
    pub(crate) good_credit: bool,
    /// The score exactly as the CSV writes it (6 decimals).
    score: String,
}

impl CreditRow {
    /// The numeric features, changed as the `shifted` scenario says when
    /// `shifted`: credit amount × 1.5 rounded half away from zero,
    /// duration + 12.
    fn numeric(&self, shifted: bool) -> [i64; 7] {
        let mut numeric = self.numeric;
        if shifted {
            numeric[0] += 12;
            numeric[1] = (numeric[1] as f64 * 1.5).round() as i64;
        }
        numeric
    }
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// tests/data/german_credit.csv, row `i` at index `i`.
pub(crate) fn credit_rows() -> Vec<CreditRow> {
    let text = repo_file("tests/data/german_credit.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let expected: Vec<&str> = ["row"]
        .into_iter()
        .chain(NUMERIC)
        .chain(CATEGORICAL)
        .chain(PROTECTED)
        .chain(["good_credit", "score"])
        .collect();
    assert_eq!(header, expected, "the CSV's columns");
    let rows: Vec<CreditRow> = lines
        .enumerate()
        .map(|(i, line)| {
            assert!(!line.contains('"'), "line {i} is quoted: {line}");
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), expected.len(), "line {i}: {line}");
            assert_eq!(fields[0], i.to_string(), "rows are in order");
            let text = |k: usize| fields[k].to_owned();
            let score = text(23);
            assert!(score.parse::<f64>().is_ok(), "line {i}: score {score}");
            CreditRow {
                numeric: std::array::from_fn(|k| fields[1 + k].parse().unwrap()),
                categorical: std::array::from_fn(|k| text(8 + k)),
                protected: std::array::from_fn(|k| text(19 + k)),
                good_credit: match fields[22] {
                    "1" => true,
                    "0" => false,
                    other => panic!("line {i}: good_credit {other}"),
                },
                score,
            }
        })
        .collect();
    assert_eq!(rows.len(), 1000);
    rows
}

pub(crate) fn golden() -> Value {
    serde_json::from_str(&repo_file("tests/data/german_credit_golden.json")).unwrap()
}

// ---- the scoring upstream ----

/// A model server that knows every row's score: KServe V2 at
/// `POST /v2/models/{name}/infer` (INT64 input `row`, [N] or [N, 1]; FP64
/// output `score`, [N]), plain JSON anywhere else (`{"row": i}` gives
/// `{"score": s}`).
pub(crate) struct ScoringUpstream {
    pub(crate) url: String,
    state: Arc<Scoring>,
    _task: tokio::task::JoinHandle<()>,
}

struct Scoring {
    /// The CSV's score text of each row, a JSON number as it stands.
    scores: Vec<String>,
    requests: AtomicUsize,
    /// Requests that arrived with an `x-govgate-attr-*` header.
    with_attribute_headers: AtomicUsize,
}

impl ScoringUpstream {
    pub(crate) async fn start(rows: &[CreditRow]) -> ScoringUpstream {
        let state = Arc::new(Scoring {
            scores: rows.iter().map(|r| r.score.clone()).collect(),
            requests: AtomicUsize::new(0),
            with_attribute_headers: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(score).with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        ScoringUpstream {
            url,
            state,
            _task: task,
        }
    }
}

fn bad_request(problem: String) -> Response {
    (StatusCode::BAD_REQUEST, problem).into_response()
}

async fn score(State(state): State<Arc<Scoring>>, request: Request) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    if has_attribute_header(&parts.headers) {
        state.with_attribute_headers.fetch_add(1, Ordering::SeqCst);
    }
    let body: Bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("not JSON".into());
    };
    let path = parts.uri.path();
    let scores = |rows: &[Value]| -> Result<Vec<Value>, String> {
        rows.iter()
            .map(|row| {
                row.as_u64()
                    .and_then(|i| state.scores.get(usize::try_from(i).ok()?))
                    .map(|s| serde_json::from_str(s).unwrap())
                    .ok_or_else(|| format!("no row {row}"))
            })
            .collect()
    };
    let kserve_model = path
        .strip_prefix("/v2/models/")
        .and_then(|rest| rest.strip_suffix("/infer"));
    let answer = match kserve_model {
        Some(model) => {
            let Some(input) = body["inputs"]
                .as_array()
                .and_then(|inputs| inputs.iter().find(|t| t["name"] == "row"))
            else {
                return bad_request("no input `row`".into());
            };
            let shape = &input["shape"];
            let n = shape[0].as_u64().unwrap_or(0) as usize;
            let shape_ok =
                input["datatype"] == "INT64" && (*shape == json!([n]) || *shape == json!([n, 1]));
            let rows: Vec<Value> = match &input["data"] {
                Value::Array(data) => data
                    .iter()
                    .flat_map(|v| match v {
                        Value::Array(inner) => inner.clone(),
                        other => vec![other.clone()],
                    })
                    .collect(),
                _ => Vec::new(),
            };
            if !shape_ok || rows.len() != n {
                return bad_request(format!("input `row` is not INT64 [N]: {input}"));
            }
            match scores(&rows) {
                Ok(data) => json!({
                    "model_name": model,
                    "outputs": [{"name": "score", "shape": [n], "datatype": "FP64", "data": data}],
                }),
                Err(problem) => return bad_request(problem),
            }
        }
        None => match scores(std::slice::from_ref(&body["row"])) {
            Ok(mut data) => json!({ "score": data.remove(0) }),
            Err(problem) => return bad_request(problem),
        },
    };
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

fn has_attribute_header(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|name| name.as_str().starts_with("x-govgate-attr-"))
}

// ---- the gateway's models ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// KServe V2 batches, everything in tensors.
    KserveV2,
    /// One JSON row per request, protected attributes in headers.
    Json,
}

/// One model of a replay.
pub(crate) struct Model {
    pub(crate) name: String,
    pub(crate) window: usize,
    /// Rows 500..999 are sent changed as the `shifted` scenario says.
    shifted: bool,
}

/// The three models of a replay: `all_rows`, `last_500`, and `shifted`.
pub(crate) fn models(prefix: &str) -> [Model; 3] {
    let model = |suffix: &str, window, shifted| Model {
        name: format!("{prefix}-{suffix}"),
        window,
        shifted,
    };
    [
        model("all", 1000, false),
        model("last", 500, false),
        model("shifted", 500, true),
    ]
}

/// `[models.kpi]` for `protocol`: the outcome, the protected attributes,
/// and as drift features the 7 numeric and 11 categorical columns, the
/// score, and (where a body has them) the protected attributes.
fn kpi_toml(protocol: Protocol, window: usize) -> String {
    let mut toml = format!(
        "[models.kpi]\nwindow = {window}\nmin_group_size = 30\nreference_rows = {HALF}\n\
         [models.kpi.outcome]\n"
    );
    let at = |tensor: &str, column: usize, name: &str| match protocol {
        Protocol::KserveV2 => format!("tensor = \"{tensor}\"\ncolumn = {column}\n"),
        Protocol::Json => format!("pointer = \"/{name}\"\n"),
    };
    match protocol {
        Protocol::KserveV2 => toml.push_str("tensor = \"score\"\n"),
        Protocol::Json => toml.push_str("pointer = \"/score\"\n"),
    }
    toml.push_str("threshold = 0.5\n");
    for (column, name) in PROTECTED.iter().enumerate() {
        toml.push_str(&format!("[[models.kpi.attributes]]\nname = \"{name}\"\n"));
        match protocol {
            Protocol::KserveV2 => toml.push_str(&at("protected", column, name)),
            Protocol::Json => toml.push_str("header = true\n"),
        }
    }
    let mut feature = |name: &str, kind: &str, source: String| {
        toml.push_str(&format!(
            "[[models.kpi.features]]\nname = \"{name}\"\nkind = \"{kind}\"\n{source}"
        ));
    };
    for (column, name) in NUMERIC.iter().enumerate() {
        feature(name, "numeric", at("numeric", column, name));
    }
    for (column, name) in CATEGORICAL.iter().enumerate() {
        feature(name, "categorical", at("categorical", column, name));
    }
    let score = match protocol {
        Protocol::KserveV2 => "tensor = \"score\"\n",
        Protocol::Json => "pointer = \"/score\"\n",
    };
    feature("score", "numeric", format!("{score}from = \"response\"\n"));
    if protocol == Protocol::KserveV2 {
        // The JSON rows carry the protected attributes in headers only, and
        // a drift feature cannot come from a header.
        for (column, name) in PROTECTED.iter().enumerate() {
            feature(name, "categorical", at("protected", column, name));
        }
    }
    toml
}

pub(crate) fn model_toml(protocol: Protocol, model: &Model, upstream: &str) -> String {
    let head = match protocol {
        Protocol::KserveV2 => format!(
            "[[models]]\nname = \"{}\"\nprotocol = \"kserve_v2\"\n\
             [[models.versions]]\nversion = \"1\"\nupstream = \"{upstream}\"\n",
            model.name
        ),
        Protocol::Json => format!(
            "[[models]]\nname = \"{0}\"\nprotocol = \"http\"\npath_prefix = \"/{0}\"\n\
             [[models.versions]]\nversion = \"1\"\nupstream = \"{upstream}/json\"\n",
            model.name
        ),
    };
    format!("\n{head}{}", kpi_toml(protocol, model.window))
}

// ---- replaying rows ----

/// One answered request: its decision id and the CSV rows it carried, in
/// request order.
pub(crate) struct Served {
    pub(crate) model: usize,
    pub(crate) decision_id: String,
    pub(crate) rows: Vec<usize>,
}

fn kserve_body(data: &[CreditRow], rows: &[usize], shifted: bool) -> Value {
    let n = rows.len();
    let numeric: Vec<f64> = rows
        .iter()
        .flat_map(|&i| data[i].numeric(shifted && i >= HALF))
        .map(|x| x as f64)
        .collect();
    let categorical: Vec<&str> = rows
        .iter()
        .flat_map(|&i| data[i].categorical.iter().map(String::as_str))
        .collect();
    let protected: Vec<&str> = rows
        .iter()
        .flat_map(|&i| data[i].protected.iter().map(String::as_str))
        .collect();
    json!({"inputs": [
        {"name": "row", "shape": [n], "datatype": "INT64", "data": rows},
        {"name": "numeric", "shape": [n, NUMERIC.len()], "datatype": "FP64", "data": numeric},
        {"name": "categorical", "shape": [n, CATEGORICAL.len()], "datatype": "BYTES", "data": categorical},
        {"name": "protected", "shape": [n, PROTECTED.len()], "datatype": "BYTES", "data": protected},
    ]})
}

fn json_body(data: &[CreditRow], i: usize, shifted: bool) -> Value {
    let mut body = serde_json::Map::new();
    body.insert("row".into(), json!(i));
    let numeric = data[i].numeric(shifted && i >= HALF);
    for (name, value) in NUMERIC.iter().zip(numeric) {
        body.insert((*name).into(), json!(value));
    }
    for (name, value) in CATEGORICAL.iter().zip(&data[i].categorical) {
        body.insert((*name).into(), json!(value));
    }
    Value::Object(body)
}

/// Sends `rows` to model `m` and checks the answer carries their scores.
pub(crate) async fn serve(
    gateway: &Gateway,
    protocol: Protocol,
    models: &[Model],
    data: &[CreditRow],
    m: usize,
    rows: Vec<usize>,
) -> Served {
    let model = &models[m];
    let (url, body, attributes) = match protocol {
        Protocol::KserveV2 => (
            gateway.url(&format!("/v2/models/{}/infer", model.name)),
            kserve_body(data, &rows, model.shifted),
            Vec::new(),
        ),
        Protocol::Json => {
            let [i] = rows[..] else {
                panic!("one JSON row per request")
            };
            let attributes: Vec<(String, String)> = PROTECTED
                .iter()
                .zip(&data[i].protected)
                .map(|(name, value)| (format!("x-govgate-attr-{name}"), value.clone()))
                .collect();
            (
                gateway.url(&format!("/{}/score", model.name)),
                json_body(data, i, model.shifted),
                attributes,
            )
        }
    };
    let mut headers = vec![("content-type", "application/json")];
    headers.extend(attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let reply = send(Method::POST, &url, &headers, body.to_string()).await;
    assert_eq!(
        reply.status,
        200,
        "{} rows {rows:?}: {}",
        model.name,
        reply.text()
    );
    let answer = reply.json();
    let scores: Vec<f64> = match protocol {
        Protocol::KserveV2 => answer["outputs"][0]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_f64().unwrap())
            .collect(),
        Protocol::Json => vec![answer["score"].as_f64().unwrap()],
    };
    let expected: Vec<f64> = rows
        .iter()
        .map(|&i| data[i].score.parse().unwrap())
        .collect();
    assert_eq!(scores, expected, "{} rows {rows:?}", model.name);
    Served {
        model: m,
        decision_id: reply.decision_id(),
        rows,
    }
}

/// Serves rows `range` to every model, [`IN_FLIGHT`] requests at a time,
/// then waits until every model has counted `range.end` rows.
async fn serve_half(
    gateway: &Gateway,
    protocol: Protocol,
    models: &[Model],
    data: &[CreditRow],
    range: std::ops::Range<usize>,
) -> Vec<Served> {
    let per_request = match protocol {
        Protocol::KserveV2 => BATCH,
        Protocol::Json => 1,
    };
    let chunks: Vec<Vec<usize>> = range
        .clone()
        .collect::<Vec<_>>()
        .chunks(per_request)
        .map(<[usize]>::to_vec)
        .collect();
    let requests: Vec<(usize, Vec<usize>)> = (0..models.len())
        .flat_map(|m| chunks.iter().map(move |rows| (m, rows.clone())))
        .collect();
    let served = futures_util::stream::iter(requests)
        .map(|(m, rows)| serve(gateway, protocol, models, data, m, rows))
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    for model in models {
        wait_for_counter(
            gateway,
            "govgate_kpi_rows_total",
            &[("model", &model.name)],
            range.end,
        )
        .await;
    }
    served
}

// ---- feedback ----

/// One label: the decision, the row's index in that request, `good_credit`.
pub(crate) fn label(served: &Served, index: usize, data: &[CreditRow]) -> Value {
    json!({
        "decision_id": served.decision_id,
        "row": index,
        "label": data[served.rows[index]].good_credit,
    })
}

pub(crate) async fn feedback(gateway: &Gateway, body: &Value) -> crate::support::client::Reply {
    send(
        Method::POST,
        &gateway.url("/govgate/feedback"),
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

/// Feeds back the `good_credit` label of every row in each model's window
/// (rows 0..999 for window 1000, rows 500..999 for window 500): the
/// first label of each model alone, the rest in batches of 100. Every
/// label must be applied.
async fn feed_back_labels(
    gateway: &Gateway,
    models: &[Model],
    served: &[Served],
    data: &[CreditRow],
) {
    let mut labels: Vec<Vec<Value>> = vec![Vec::new(); models.len()];
    for s in served {
        for (index, &row) in s.rows.iter().enumerate() {
            if row >= 1000 - models[s.model].window {
                labels[s.model].push(label(s, index, data));
            }
        }
    }
    let mut bodies = Vec::new();
    for (model, labels) in models.iter().zip(&labels) {
        assert_eq!(labels.len(), model.window, "{}", model.name);
        bodies.push(labels[0].clone());
        bodies.extend(
            labels[1..]
                .chunks(100)
                .map(|chunk| json!({ "feedback": chunk })),
        );
    }
    let replies = futures_util::stream::iter(bodies)
        .map(|body| async move {
            let reply = feedback(gateway, &body).await;
            (body, reply)
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for (body, reply) in replies {
        let items = body["feedback"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| vec![body.clone()]);
        assert_eq!(
            reply.status,
            200,
            "feedback of {} labels from {}: {}",
            items.len(),
            items[0],
            reply.text()
        );
        let results = reply.json()["results"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(results.len(), items.len(), "{}", reply.text());
        for (item, result) in items.iter().zip(&results) {
            assert_eq!(result["decision_id"], item["decision_id"], "{result}");
            assert_eq!(result["row"], item["row"], "{result}");
            assert_eq!(result["result"], "applied", "{item}: {result}");
        }
    }
    for model in models {
        wait_for_counter(
            gateway,
            "govgate_feedback_total",
            &[("model", &model.name), ("result", "applied")],
            model.window,
        )
        .await;
    }
}

/// The contract's other feedback answers: an unknown decision alone (404),
/// and in a batch beside an unknown row and a second label for a row.
async fn check_feedback_refusals(gateway: &Gateway, served: &[Served]) {
    let unknown = "0".repeat(32);
    let reply = feedback(
        gateway,
        &json!({"decision_id": unknown, "row": 0, "label": true}),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert_eq!(reply.error_code(), "decision_not_found", "{}", reply.text());
    // The last request served rows of the window, all labelled by now.
    let last = served.iter().find(|s| s.rows.contains(&999)).unwrap();
    let reply = feedback(
        gateway,
        &json!({"feedback": [
            {"decision_id": unknown, "row": 0, "label": true},
            {"decision_id": last.decision_id, "row": last.rows.len(), "label": true},
            {"decision_id": last.decision_id, "row": 0, "label": false},
        ]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let results: Vec<Value> = reply.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].clone())
        .collect();
    assert_eq!(
        results,
        [
            json!("unknown_decision"),
            json!("unknown_row"),
            json!("already_labeled")
        ],
        "{}",
        reply.text()
    );
}

// ---- reading /metrics ----

/// One sample of a Prometheus text exposition.
#[derive(Debug)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// The samples of a Prometheus text exposition (format 0.0.4).
pub(crate) struct Scrape(pub(crate) Vec<Sample>);

impl Scrape {
    pub(crate) fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value: f64 = value.parse().unwrap_or_else(|err| panic!("{line}: {err}"));
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => (
                    name.to_owned(),
                    parse_labels(rest.strip_suffix('}').expect("labels end with `}`")),
                ),
            };
            samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        Scrape(samples)
    }

    /// The samples of `name` whose labels include `labels`.
    pub(crate) fn all(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.0
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one series of `name` with exactly `labels`.
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matches: Vec<&Sample> = self
            .all(name, labels)
            .into_iter()
            .filter(|s| s.labels.len() == labels.len())
            .collect();
        assert!(matches.len() <= 1, "{name} {labels:?}: {matches:?}");
        matches.first().map(|s| s.value)
    }
}

/// `k="v",k2="v2"` with the exposition format's escapes.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label {key} in {text}");
        let mut value = String::new();
        loop {
            match chars.next().expect("a closing quote") {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => panic!("a dangling escape in {text}"),
                },
                c => value.push(c),
            }
        }
        labels.insert(key.trim().to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

pub(crate) async fn scrape(gateway: &Gateway) -> Scrape {
    let reply = send(Method::GET, &format!("{}/metrics", gateway.admin), &[], "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    Scrape::parse(&reply.text())
}

/// Polls `/metrics` until the counter `name{labels}` is `target` (the KPIs
/// are computed in the background); fails if it passes it or never gets there.
pub(crate) async fn wait_for_counter(
    gateway: &Gateway,
    name: &str,
    labels: &[(&str, &str)],
    target: usize,
) {
    let mut last = None;
    for _ in 0..300 {
        last = scrape(gateway).await.value(name, labels);
        match last {
            Some(value) if value == target as f64 => return,
            Some(value) if value > target as f64 => {
                panic!("{name} {labels:?} is {value}, past {target}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("{name} {labels:?} never reached {target} within 30 s (last {last:?})");
}

// ---- comparing with the golden file ----

fn assert_close(actual: Option<f64>, golden: &Value, tolerance: f64, what: &str) {
    match golden.as_f64() {
        None => {
            assert!(golden.is_null(), "{what}: golden {golden}");
            assert_eq!(actual, None, "{what}: undefined, so no series");
        }
        Some(expected) => {
            let actual = actual.unwrap_or_else(|| panic!("{what}: no series (golden {expected})"));
            assert!(
                (actual - expected).abs() <= tolerance,
                "{what}: {actual} != golden {expected}"
            );
        }
    }
}

/// Every per-group and aggregate fairness value of `golden` (one window of
/// the golden file) for `model`.
pub(crate) fn assert_fairness(scrape: &Scrape, model: &str, golden: &Value) {
    for attribute in PROTECTED {
        let golden = &golden[attribute];
        let groups = golden["groups"].as_object().unwrap();
        let exported: BTreeSet<&str> = scrape
            .all(
                "govgate_kpi_group_rows",
                &[("model", model), ("attribute", attribute)],
            )
            .into_iter()
            .map(|s| s.labels["group"].as_str())
            .collect();
        let expected: BTreeSet<&str> = groups.keys().map(String::as_str).collect();
        assert_eq!(exported, expected, "{model} {attribute}: groups");
        for (group, g) in groups {
            let labels = [("model", model), ("attribute", attribute), ("group", group)];
            let what = |kpi: &str| format!("{model} {attribute}={group} {kpi}");
            assert_eq!(
                scrape.value("govgate_kpi_group_rows", &labels),
                Some(g["count"].as_f64().unwrap()),
                "{}",
                what("rows")
            );
            for (metric, key) in [
                ("govgate_kpi_selection_rate", "selection_rate"),
                ("govgate_kpi_tpr", "tpr"),
                ("govgate_kpi_fpr", "fpr"),
            ] {
                assert_close(
                    scrape.value(metric, &labels),
                    &g[key],
                    FAIRNESS_TOLERANCE,
                    &what(key),
                );
            }
        }
        for key in [
            "demographic_parity_difference",
            "demographic_parity_ratio",
            "equal_opportunity_difference",
            "equalized_odds_difference",
        ] {
            assert_close(
                scrape.value(
                    &format!("govgate_kpi_{key}"),
                    &[("model", model), ("attribute", attribute)],
                ),
                &golden[key],
                FAIRNESS_TOLERANCE,
                &format!("{model} {attribute} {key}"),
            );
        }
    }
}

/// Every drift value of `golden` (one scenario of the golden file) for
/// version 1 of `model`; the protected attributes only if `protected`.
pub(crate) fn assert_drift(scrape: &Scrape, model: &str, golden: &Value, protected: bool) {
    let mut features: Vec<(&str, &Value, bool)> = Vec::new();
    for name in NUMERIC {
        features.push((name, &golden["numeric"][name], true));
    }
    features.push(("score", &golden["score"], true));
    for name in CATEGORICAL {
        features.push((name, &golden["categorical"][name], false));
    }
    if protected {
        for name in PROTECTED {
            features.push((name, &golden["protected"][name], false));
        }
    }
    for (feature, golden, numeric) in features {
        let labels = [("model", model), ("version", "1"), ("feature", feature)];
        let what = |kpi: &str| format!("{model} {feature} {kpi}");
        assert!(golden.is_object(), "{}: not in the golden file", what(""));
        for (kpi, family) in [
            ("psi", "govgate_kpi_psi"),
            ("js", "govgate_kpi_js_distance"),
        ] {
            assert_close(
                scrape.value(family, &labels),
                &golden[kpi],
                DRIFT_TOLERANCE,
                &what(kpi),
            );
        }
        let ks = scrape.value("govgate_kpi_ks", &labels);
        if numeric {
            assert_close(ks, &golden["ks"], DRIFT_TOLERANCE, &what("ks"));
        } else {
            assert_eq!(ks, None, "{}: no KS for a categorical feature", what("ks"));
        }
    }
}

// ---- the replays ----

async fn replay(protocol: Protocol) {
    let data = credit_rows();
    let golden = golden();
    assert_eq!(golden["fairness"]["all_rows"]["rows"], json!([0, 999]));
    assert_eq!(golden["fairness"]["last_500"]["rows"], json!([HALF, 999]));
    for scenario in ["plain", "shifted"] {
        let drift = &golden["drift"][scenario];
        assert_eq!(drift["reference_rows"], json!([0, HALF - 1]));
        assert_eq!(drift["current_rows"], json!([HALF, 999]));
    }
    let upstream = ScoringUpstream::start(&data).await;
    let models = models(match protocol {
        Protocol::KserveV2 => "credit-v2",
        Protocol::Json => "credit-json",
    });
    let config: String = models
        .iter()
        .map(|model| model_toml(protocol, model, &upstream.url))
        .collect();
    let gateway = Gateway::start(&config).await;

    let mut served = serve_half(&gateway, protocol, &models, &data, 0..HALF).await;
    served.extend(serve_half(&gateway, protocol, &models, &data, HALF..1000).await);
    let requests = match protocol {
        Protocol::KserveV2 => 1000 / BATCH,
        Protocol::Json => 1000,
    } * models.len();
    assert_eq!(served.len(), requests);
    assert_eq!(upstream.state.requests.load(Ordering::SeqCst), requests);
    assert_eq!(
        upstream.state.with_attribute_headers.load(Ordering::SeqCst),
        0,
        "the upstream saw x-govgate-attr-* headers"
    );

    feed_back_labels(&gateway, &models, &served, &data).await;

    let scrape = scrape(&gateway).await;
    for model in &models {
        for sample in scrape.all(
            "govgate_kpi_selector_misses_total",
            &[("model", &model.name)],
        ) {
            assert_eq!(sample.value, 0.0, "{sample:?}");
        }
    }
    let [all, last, shifted] = &models;
    assert_fairness(&scrape, &all.name, &golden["fairness"]["all_rows"]);
    assert_fairness(&scrape, &last.name, &golden["fairness"]["last_500"]);
    assert_fairness(&scrape, &shifted.name, &golden["fairness"]["last_500"]);
    let protected = protocol == Protocol::KserveV2;
    assert_drift(&scrape, &last.name, &golden["drift"]["plain"], protected);
    assert_drift(
        &scrape,
        &shifted.name,
        &golden["drift"]["shifted"],
        protected,
    );

    check_feedback_refusals(&gateway, &served).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kserve_v2_batches_reproduce_the_golden_kpis() {
    replay(Protocol::KserveV2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_rows_with_header_attributes_reproduce_the_golden_kpis() {
    replay(Protocol::Json).await;
}

// ---- the checks themselves ----

/// The golden values as the gateway is to export them: fairness of
/// `all_rows` for model `m-all` and of `last_500` for `m-last`, drift
/// `plain` for `m-last` and `shifted` for `m-shifted`; no series where a
/// value is undefined.
fn golden_exposition(golden: &Value) -> String {
    let mut text = String::from("# HELP govgate_kpi_psi PSI.\n# TYPE govgate_kpi_psi gauge\n");
    let mut line = |name: &str, labels: &[(&str, &str)], value: &Value| {
        if let Some(value) = value.as_f64() {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            text.push_str(&format!("{name}{{{}}} {value}\n", labels.join(",")));
        }
    };
    for (model, window) in [("m-all", "all_rows"), ("m-last", "last_500")] {
        for attribute in PROTECTED {
            let golden = &golden["fairness"][window][attribute];
            for (group, g) in golden["groups"].as_object().unwrap() {
                let labels = [("model", model), ("attribute", attribute), ("group", group)];
                line("govgate_kpi_group_rows", &labels, &g["count"]);
                for kpi in ["selection_rate", "tpr", "fpr"] {
                    line(&format!("govgate_kpi_{kpi}"), &labels, &g[kpi]);
                }
            }
            for kpi in [
                "demographic_parity_difference",
                "demographic_parity_ratio",
                "equal_opportunity_difference",
                "equalized_odds_difference",
            ] {
                let labels = [("model", model), ("attribute", attribute)];
                line(&format!("govgate_kpi_{kpi}"), &labels, &golden[kpi]);
            }
        }
    }
    for (model, scenario) in [("m-last", "plain"), ("m-shifted", "shifted")] {
        let golden = &golden["drift"][scenario];
        let features = NUMERIC
            .iter()
            .map(|f| (*f, &golden["numeric"][f]))
            .chain([("score", &golden["score"])])
            .chain(CATEGORICAL.iter().map(|f| (*f, &golden["categorical"][f])))
            .chain(PROTECTED.iter().map(|f| (*f, &golden["protected"][f])));
        for (feature, g) in features {
            let labels = [("model", model), ("version", "1"), ("feature", feature)];
            for (kpi, family) in [
                ("psi", "govgate_kpi_psi"),
                ("js", "govgate_kpi_js_distance"),
                ("ks", "govgate_kpi_ks"),
            ] {
                line(family, &labels, &g[kpi]);
            }
        }
    }
    text
}

/// Runs `check`, which must panic.
fn refused(what: &str, check: impl FnOnce()) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
    assert!(outcome.is_err(), "{what} was accepted");
}

#[test]
fn the_checks_accept_the_golden_values_and_nothing_else() {
    let golden = golden();
    let mut scrape = Scrape::parse(&golden_exposition(&golden));
    assert_fairness(&scrape, "m-all", &golden["fairness"]["all_rows"]);
    assert_fairness(&scrape, "m-last", &golden["fairness"]["last_500"]);
    assert_drift(&scrape, "m-last", &golden["drift"]["plain"], true);
    assert_drift(&scrape, "m-shifted", &golden["drift"]["shifted"], true);

    let index = |scrape: &Scrape, name: &str, labels: &[(&str, &str)]| {
        scrape
            .0
            .iter()
            .position(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .unwrap()
    };
    let rate = index(
        &scrape,
        "govgate_kpi_selection_rate",
        &[
            ("model", "m-all"),
            ("attribute", "sex"),
            ("group", "female"),
        ],
    );
    scrape.0[rate].value += 2.0 * FAIRNESS_TOLERANCE;
    refused("a selection rate off by 2e-9", || {
        assert_fairness(&scrape, "m-all", &golden["fairness"]["all_rows"]);
    });
    scrape.0[rate].value -= 2.0 * FAIRNESS_TOLERANCE;
    assert_fairness(&scrape, "m-all", &golden["fairness"]["all_rows"]);

    // An aggregate over fewer than 2 eligible groups must be absent.
    scrape.0.push(Sample {
        name: "govgate_kpi_demographic_parity_difference".into(),
        labels: [("model", "m-last"), ("attribute", "foreign_worker")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
        value: 0.0,
    });
    refused("an undefined aggregate", || {
        assert_fairness(&scrape, "m-last", &golden["fairness"]["last_500"]);
    });
    scrape.0.pop();

    let psi = index(
        &scrape,
        "govgate_kpi_psi",
        &[("model", "m-shifted"), ("feature", "credit_amount")],
    );
    scrape.0[psi].value += 2.0 * DRIFT_TOLERANCE;
    refused("a PSI off by 2e-6", || {
        assert_drift(&scrape, "m-shifted", &golden["drift"]["shifted"], true);
    });
    scrape.0[psi].value -= 2.0 * DRIFT_TOLERANCE;

    // KS of a categorical feature must be absent.
    scrape.0.push(Sample {
        name: "govgate_kpi_ks".into(),
        labels: [
            ("model", "m-last"),
            ("version", "1"),
            ("feature", "purpose"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect(),
        value: 0.0,
    });
    refused("KS of a categorical feature", || {
        assert_drift(&scrape, "m-last", &golden["drift"]["plain"], true);
    });
}

#[test]
fn the_exposition_parser_reads_labels_and_full_precision() {
    let value = 0.1f64 + 0.2;
    let text = format!(
        "# TYPE x counter\nx_total 3\ny{{a=\"q\\\"uo,te\",b=\"back\\\\slash\\n\"}} {value}\nz{{}} NaN\n"
    );
    let scrape = Scrape::parse(&text);
    assert_eq!(scrape.value("x_total", &[]), Some(3.0));
    assert_eq!(
        scrape.value("y", &[("a", "q\"uo,te"), ("b", "back\\slash\n")]),
        Some(value)
    );
    assert_eq!(
        scrape.value("y", &[("a", "q\"uo,te")]),
        None,
        "labels must be exact"
    );
    assert!(scrape.value("z", &[]).unwrap().is_nan());
}
