//! The demo's KPI part: the credit model's `[models.kpi]`, and the sample
//! applications the demo sends through the gateway once the versions are
//! active (the protected attributes in `x-govgate-attr-*` headers, which
//! the gateway strips before the model), the true outcomes fed back to
//! `POST /govgate/feedback`, and the figures read back from
//! `GET /admin/kpis/credit-scoring`, printed with the commands that show
//! them again.

use crate::demo::{self, Applicant};
use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::time::Duration;

/// The credit model's KPIs: both protected attributes from headers, the
/// score as the outcome, the amount and duration as drift features. The
/// reference is the version's first batch of sample applications.
pub(super) const CONFIG: &str = r#"
[models.kpi]
window = 1000
min_group_size = 20
reference_rows = 120

[models.kpi.outcome]
tensor = "score"
threshold = 0.5

[[models.kpi.attributes]]
name = "sex"
header = true

[[models.kpi.attributes]]
name = "age_group"
header = true

[[models.kpi.features]]
name = "credit_amount"
kind = "numeric"
tensor = "features"
column = 1

[[models.kpi.features]]
name = "duration_months"
kind = "numeric"
tensor = "features"
column = 2
"#;

/// Rows per request: one lending-service call scores a few applicants of
/// one group.
const ROWS_PER_CALL: usize = 10;

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

type PlainClient = Client<HttpConnector, Full<Bytes>>;

async fn call(
    client: &PlainClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> anyhow::Result<(StatusCode, http::HeaderMap, Bytes)> {
    let mut request = Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .with_context(|| format!("bad URL {url}"))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .with_context(|| format!("calling {url}"))?;
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .context("reading the answer")?
            .to_bytes();
        anyhow::Ok((parts.status, parts.headers, bytes))
    };
    tokio::time::timeout(CALL_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{url} did not answer in time"))?
}

/// Scores `applicants` through the gateway in calls of one group each;
/// the labels to feed back, `{decision_id, row, label}`.
async fn score(
    client: &PlainClient,
    public: &str,
    applicants: &[Applicant],
) -> anyhow::Result<Vec<Value>> {
    let url = format!("{public}/v2/models/{}/infer", demo::CREDIT_MODEL);
    let mut groups: Vec<((&str, &str), Vec<&Applicant>)> = Vec::new();
    for applicant in applicants {
        let key = (applicant.sex, applicant.age_group);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rows)) => rows.push(applicant),
            None => groups.push((key, vec![applicant])),
        }
    }
    let sex_header = format!("x-govgate-attr-{}", demo::SEX_ATTRIBUTE);
    let age_header = format!("x-govgate-attr-{}", demo::AGE_GROUP_ATTRIBUTE);
    let mut labels = Vec::new();
    for ((sex, age_group), rows) in &groups {
        for chunk in rows.chunks(ROWS_PER_CALL) {
            let data: Vec<f64> = chunk.iter().flat_map(|a| a.features).collect();
            let body = json!({"inputs": [{"name": "features", "shape": [chunk.len(), 3],
                "datatype": "FP32", "data": data}]});
            let headers = [
                ("x-govgate-caller", demo::LENDING_CALLER),
                (sex_header.as_str(), *sex),
                (age_header.as_str(), *age_group),
            ];
            let (status, answer_headers, answer) =
                call(client, Method::POST, &url, &headers, &body).await?;
            anyhow::ensure!(
                status == StatusCode::OK,
                "scoring sample applications: {status} {}",
                String::from_utf8_lossy(&answer)
            );
            let id = answer_headers
                .get("govgate-decision-id")
                .and_then(|v| v.to_str().ok())
                .context("the answer has no govgate-decision-id")?
                .to_owned();
            for (row, applicant) in chunk.iter().enumerate() {
                labels.push(json!({"decision_id": id, "row": row, "label": applicant.repaid}));
            }
        }
    }
    Ok(labels)
}

/// Sends the sample applications and their outcomes, then prints the
/// KPIs the gateway computed from them.
pub(super) async fn run(public: &str, admin: &str, token: &str) -> anyhow::Result<()> {
    let client: PlainClient = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let (first, later) = (demo::batch(false), demo::batch(true));
    println!(
        "\nSample traffic for the fairness and drift KPIs: a lending service scores {} applications\n\
         ({} like the training data, then {} larger, longer loans), sends each applicant's sex and\n\
         age group in x-govgate-attr-* headers (removed before the model), and feeds back who repaid.\n\
         The KPIs the gateway computed:",
        first.len() + later.len(),
        first.len(),
        later.len()
    );
    let mut labels = score(&client, public, &first).await?;
    labels.extend(score(&client, public, &later).await?);
    let (status, _, answer) = call(
        &client,
        Method::POST,
        &format!("{public}/govgate/feedback"),
        &[],
        &json!({ "feedback": labels }),
    )
    .await?;
    anyhow::ensure!(
        status == StatusCode::OK,
        "feeding back outcomes: {status} {}",
        String::from_utf8_lossy(&answer)
    );
    let admin_client = super::super::admin_client::AdminClient::new(admin, token);
    let (status, report) = admin_client
        .call(
            Method::GET,
            &format!("/admin/kpis/{}", demo::CREDIT_MODEL),
            None,
        )
        .await?;
    anyhow::ensure!(status.is_success(), "reading the KPIs: {status} {report}");
    print!("{}", summary(&report));
    Ok(())
}

fn figure(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "-".to_owned(), |x| format!("{x:.3}"))
}

/// The KPIs in a few lines: per attribute the groups' selection rates and
/// true positive rates and the aggregates, per version the drift.
fn summary(report: &Value) -> String {
    let mut out = String::new();
    let fairness = &report["fairness"];
    out.push_str(&format!(
        "  fairness over the last {} rows:\n",
        fairness["rows_in_window"]
    ));
    for attribute in fairness["attributes"].as_array().into_iter().flatten() {
        let groups: Vec<String> = attribute["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| {
                format!(
                    "{} {} (tpr {})",
                    g["group"].as_str().unwrap_or("?"),
                    figure(&g["selection_rate"]),
                    figure(&g["tpr"])
                )
            })
            .collect();
        out.push_str(&format!(
            "    {:<10} selection rate {}\n    {:<10} demographic parity difference {}, ratio {}; equal opportunity difference {}; equalized odds difference {}\n",
            attribute["name"].as_str().unwrap_or("?"),
            groups.join(", "),
            "",
            figure(&attribute["demographic_parity_difference"]),
            figure(&attribute["demographic_parity_ratio"]),
            figure(&attribute["equal_opportunity_difference"]),
            figure(&attribute["equalized_odds_difference"]),
        ));
    }
    for version in report["drift"].as_array().into_iter().flatten() {
        let features: Vec<String> = version["features"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                format!(
                    "{} psi {}, js {}, ks {}",
                    f["name"].as_str().unwrap_or("?"),
                    figure(&f["psi"]),
                    figure(&f["js_distance"]),
                    figure(&f["ks"]["statistic"])
                )
            })
            .collect();
        out.push_str(&format!(
            "  drift of version {} ({} rows against its first {}): {}\n",
            version["version"].as_str().unwrap_or("?"),
            version["rows_in_window"],
            version["reference_rows"],
            features.join("; ")
        ));
    }
    out.push_str(
        "  (a demographic parity ratio below 0.8 fails the four-fifths rule; a PSI above 0.25 is a large\n  \
         shift. Step 14 below shows them again, with the counts behind them.)\n",
    );
    out
}
