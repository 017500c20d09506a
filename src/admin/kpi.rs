//! Uploading a model version's drift reference:
//! `PUT /admin/models/{model}/versions/{version}/kpi-reference` with a CSV
//! (`Content-Type: text/csv`, a header row) or JSON (`application/json`,
//! an array of objects) body, one row per line or object and a column per
//! configured drift feature. Role admin. The upload is stored, recorded in
//! the ledger (`kpi_reference_set`, with its SHA-256), and replaces the
//! version's reference (its window starts empty). Without an upload a
//! version's reference is the first `reference_rows` rows it serves.

use super::auth::{AuthError, Tokens};
use super::{error_response, json_response};
use crate::config::KpiConfig;
use crate::kpi::{KpiRecorder, ReferenceFiles, ReferenceFormat, parse_reference};
use crate::ledger::entry::{EntryBody, hex};
use crate::ledger::sequencer::Ledger;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
struct Api {
    tokens: Tokens,
    recorder: KpiRecorder,
    ledger: Ledger,
    files: ReferenceFiles,
    models: Arc<HashMap<String, KpiConfig>>,
}

/// The reference route, on the admin listener.
pub fn routes(
    tokens: Tokens,
    recorder: KpiRecorder,
    ledger: Ledger,
    files: ReferenceFiles,
    models: HashMap<String, KpiConfig>,
) -> Router {
    Router::new()
        .route(
            "/admin/models/{model}/versions/{version}/kpi-reference",
            put(upload),
        )
        .with_state(Api {
            tokens,
            recorder,
            ledger,
            files,
            models: Arc::new(models),
        })
}

fn refused(err: AuthError) -> Response {
    err.into_response()
}

async fn upload(
    State(api): State<Api>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match api.tokens.authenticate(&headers).await {
        Ok(caller) => caller,
        Err(err) => return refused(err),
    };
    if let Err(err) = caller.require(&["admin"]) {
        return refused(err);
    }
    let Some(config) = api.models.get(&model) else {
        return error_response(
            StatusCode::NOT_FOUND,
            "unknown_model",
            &format!("model `{model}` has no [models.kpi]"),
            None,
        );
    };
    let plain = |v: &str| {
        !v.is_empty()
            && v.len() <= 128
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b))
    };
    if !plain(&version) {
        return error_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "the version label is not a plain name",
            None,
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = if content_type.starts_with("text/csv") {
        ReferenceFormat::Csv
    } else if content_type.starts_with("application/json") {
        ReferenceFormat::Json
    } else {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send text/csv (a header row) or application/json (an array of objects)",
            None,
        );
    };
    let rows = match parse_reference(config, format, &body) {
        Ok(rows) => rows,
        Err(problem) => {
            return error_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_reference",
                &problem,
                None,
            );
        }
    };
    let files = api.files.clone();
    let (m, v, stored) = (model.clone(), version.clone(), body.clone());
    let saved = tokio::task::spawn_blocking(move || files.save(&m, &v, format, &stored)).await;
    if !matches!(saved, Ok(Ok(()))) {
        tracing::error!(?saved, "drift reference not stored");
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the reference could not be stored",
            None,
        );
    }
    let sha256 = hex(&Sha256::digest(&body));
    let count = rows.len();
    let mut members = serde_json::Map::new();
    members.insert("model".into(), json!(model));
    members.insert("version".into(), json!(version));
    members.insert("sha256".into(), json!(sha256));
    members.insert("rows".into(), json!(count));
    members.insert("format".into(), json!(format.extension()));
    members.insert("set_by".into(), json!(caller.principal));
    if let Some(issuer) = &caller.issuer {
        members.insert("set_by_issuer".into(), json!(issuer));
    }
    let entry_seq: Option<u64> = match api
        .ledger
        .append(EntryBody::Governance {
            kind: "kpi_reference_set",
            members,
        })
        .await
    {
        Ok(ack) => ack.seq,
        Err(err) => {
            tracing::error!(error = %err, "drift reference not recorded");
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_unavailable",
                "the ledger could not record the reference",
                None,
            );
        }
    };
    let upload = crate::kpi::ReferenceUpload {
        sha256: sha256.clone(),
        seq: entry_seq,
    };
    if let Err(problem) = api
        .recorder
        .set_reference(&model, &version, rows, upload)
        .await
    {
        return error_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_reference",
            &problem,
            None,
        );
    }
    json_response(
        StatusCode::OK,
        &json!({"model": model, "version": version, "rows": count, "sha256": sha256, "entry_seq": entry_seq}),
    )
}
