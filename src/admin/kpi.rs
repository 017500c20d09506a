//! Uploading a model version's drift reference:
//! `PUT /admin/models/{model}/versions/{version}/kpi-reference` with a CSV
//! (`Content-Type: text/csv`, a header row) or JSON (`application/json`,
//! an array of objects) body, one row per line or object and a column per
//! configured drift feature. Role admin. The upload is stored, recorded in
//! the ledger (`kpi_reference_set`, with its SHA-256), and replaces the
//! version's reference (its window starts empty). Without an upload a
//! version's reference is the first `reference_rows` rows it serves. The
//! version must be one the registry knows (proposed or later). In a
//! fleet the upload is a control event every replica applies
//! (`crate::cluster::references`).

use super::auth::{AuthError, Tokens};
use super::{error_response, json_response};
use crate::cluster::references::{ReferenceDomain, ReferenceError};
use crate::kpi::{
    FeatureValue, KeepError, REFERENCE_SET, ReferenceFormat, ReferenceKeeper, UPLOAD_MEMBER,
    UnusableReference, Upload,
};
use crate::registry::service::RegistryService;
use crate::registry::shared::SharedEvent;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
struct Api {
    tokens: Tokens,
    keeper: ReferenceKeeper,
    /// The versions a reference may be uploaded for; in a fleet, also
    /// whose control log carries the upload.
    registry: Arc<RegistryService>,
    /// In a fleet: what applies an upload taken from the control log.
    fleet: Option<Arc<ReferenceDomain>>,
}

/// The reference route, on the admin listener.
pub fn routes(
    tokens: Tokens,
    keeper: ReferenceKeeper,
    registry: Arc<RegistryService>,
    fleet: Option<Arc<ReferenceDomain>>,
) -> Router {
    Router::new()
        .route(
            "/admin/models/{model}/versions/{version}/kpi-reference",
            put(upload),
        )
        .with_state(Api {
            tokens,
            keeper,
            registry,
            fleet,
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
    if api.keeper.config(&model).is_none() {
        return error_response(
            StatusCode::NOT_FOUND,
            "unknown_model",
            &format!("model `{model}` has no [models.kpi]"),
            None,
        );
    }
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
    // A version the registry does not know would never use the upload
    // (every served version is proposed first): most likely a mistyped
    // label, so it is refused rather than kept unused.
    let known = api
        .registry
        .read(|registry| registry.version(&model, &version).is_some())
        .await;
    if !known {
        return error_response(
            StatusCode::NOT_FOUND,
            "unknown_version",
            &format!(
                "model `{model}` has no version `{version}` in the registry: propose it first"
            ),
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
    let invalid = |problem: &str| {
        error_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_reference",
            problem,
            None,
        )
    };
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return invalid("the reference is not UTF-8");
    };
    let upload = Upload {
        model,
        version,
        format,
        text,
        set_by: caller.principal.clone(),
        set_by_issuer: caller.issuer.clone(),
    };
    let rows = match api.keeper.parse(&upload).await {
        Ok(rows) => rows,
        Err(UnusableReference::Lost(err)) => {
            tracing::error!(error = %err, "reading a drift reference failed");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "reading the reference failed",
                None,
            );
        }
        Err(problem) => return invalid(&problem.to_string()),
    };
    let count = rows.len();
    let (model, version, sha256) = (
        upload.model.clone(),
        upload.version.clone(),
        upload.sha256(),
    );
    // Once appended to the control log (or the ledger), the upload must be
    // applied whether or not the caller waits for the answer: the work
    // runs in its own task, which the handler's future going away does not
    // cancel (as the registry's and the policy gate's changes do).
    let registry = api.registry.clone();
    let work = registry.spawn_command(async move {
        match &api.fleet {
            None => {
                let members = upload.members(count);
                Ok(api
                    .keeper
                    .keep(&upload, rows, members)
                    .await
                    .map(|seq| (seq, None)))
            }
            Some(domain) => through_the_fleet(&api.registry, domain, &upload, rows).await,
        }
    });
    let kept = match work.await {
        Ok(Ok(kept)) => kept,
        Ok(Err(refusal)) => return refusal,
        Err(err) => Err(KeepError::Join(err.to_string())),
    };
    let (entry_seq, control_seq) = match kept {
        Ok(kept) => kept,
        Err(err) => {
            tracing::error!(error = %err, "drift reference not kept");
            let (code, message) = not_kept(&err);
            return error_response(StatusCode::SERVICE_UNAVAILABLE, code, message, None);
        }
    };
    let mut answer = json!({
        "model": model,
        "version": version,
        "rows": count,
        "sha256": sha256,
        "entry_seq": entry_seq,
    });
    if let Some(control_seq) = control_seq {
        answer["control_seq"] = json!(control_seq);
    }
    json_response(StatusCode::OK, &answer)
}

/// The error code and message of an upload not kept here.
fn not_kept(err: &KeepError) -> (&'static str, &'static str) {
    match err {
        KeepError::Ledger(_) => (
            "ledger_unavailable",
            "the ledger could not record the reference",
        ),
        _ => ("storage_unavailable", "the reference could not be stored"),
    }
}

/// Appends the upload to the fleet's control log and applies it here: its
/// entry's seq and control seq, or the refusal to answer.
async fn through_the_fleet(
    registry: &RegistryService,
    domain: &ReferenceDomain,
    upload: &Upload,
    rows: Vec<Vec<FeatureValue>>,
) -> Result<Result<(Option<u64>, Option<u64>), KeepError>, Response> {
    let unconfirmed = |err: &dyn std::fmt::Display| {
        tracing::error!(error = %err, "drift reference not shared with the fleet");
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "control_plane_unavailable",
            &format!("{err}; the reference was not confirmed by the fleet: upload it again"),
            None,
        )
    };
    let mut turn = match registry.control_turn().await {
        Ok(Some(turn)) => turn,
        Ok(None) => return Err(unconfirmed(&"this gateway follows no control log")),
        Err(err) => return Err(unconfirmed(&err)),
    };
    let mut members = upload.members(rows.len());
    members.insert(UPLOAD_MEMBER.to_owned(), json!(upload.text));
    for _ in 0..MAX_ATTEMPTS {
        match turn.append(REFERENCE_SET, &members).await {
            Ok(Some(control_seq)) => {
                let event = SharedEvent {
                    control_seq,
                    kind: REFERENCE_SET.to_owned(),
                    members,
                };
                return match domain.apply_upload(&event, upload, rows).await {
                    Ok(seq) => {
                        turn.applied(control_seq);
                        Ok(Ok((seq, Some(control_seq))))
                    }
                    // The fleet has it; this replica applies it at its
                    // next read of the control log: not to be sent again.
                    Err(ReferenceError::Keep(err)) => {
                        tracing::error!(error = %err, control_seq, "drift reference not kept here yet");
                        let (code, message) = not_kept(&err);
                        Err(error_response(
                            StatusCode::SERVICE_UNAVAILABLE,
                            code,
                            &format!(
                                "{message}; the fleet has the reference (control event \
                                 {control_seq}), which this replica applies once it reads the \
                                 control log again: do not upload it again"
                            ),
                            None,
                        ))
                    }
                    Err(err) => Err(error_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "control_plane_unavailable",
                        &format!(
                            "{err}; the fleet has the reference (control event {control_seq}), \
                             which this replica applies once it reads the control log again"
                        ),
                        None,
                    )),
                };
            }
            // Another replica's change came first: applied, then again.
            Ok(None) => {
                if let Err(err) = turn.catch_up().await {
                    return Err(unconfirmed(&err));
                }
            }
            Err(err) => return Err(unconfirmed(&err)),
        }
    }
    Err(unconfirmed(
        &"other replicas' changes kept coming first; try again",
    ))
}

/// How often an upload is appended again after other replicas' changes
/// came first.
const MAX_ATTEMPTS: usize = 16;
