//! Policy sets under change control on the admin API: list and show the
//! proposed sets, propose (uploaded files, or the gateway's folder),
//! approve, activate and roll back. docs/admin-api.md shows every call.
//!
//! Every call is authenticated; proposing, activating and rolling back
//! need admin or proposer, approving a plain or qualified approver other
//! than the proposer, reading any role. Errors are JSON
//! `{"error": {"code", "message"}}`: 401 no or bad token, 403 `forbidden`,
//! `proposer_cannot_approve`, `approver_role_required` (with `missing_roles`), 404
//! `unknown_policy_set`, 409 `invalid_transition` (with `current_state`),
//! `nothing_to_roll_back`, `policy_approval_off`, 400 `malformed_body`,
//! 422 `invalid_body`, `invalid_policy_set`, 503 `ledger_unavailable`.
//! Nothing is recorded or changed when a call fails.

use super::auth::{AuthError, Tokens};
use super::{BodyError, ReasonBody, error_response, json_response, parse_body};
use crate::registry::{Principal, RegistryError};
use crate::review::change::{ChangeCommand, ChangeError, PolicyChanges, ProposedSet};
use crate::review::{ChangeDone, ChangeFailure, PolicyGate};
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Clone)]
struct Api {
    gate: Arc<PolicyGate>,
    tokens: Tokens,
}

/// The routes, under `/admin/policies/sets` and `/admin/policies/rollback`.
pub fn routes(gate: Arc<PolicyGate>, tokens: Tokens) -> Router {
    Router::new()
        .route("/admin/policies/sets", get(list).post(propose))
        .route("/admin/policies/sets/{seq}", get(show))
        .route("/admin/policies/sets/{seq}/{action}", post(act))
        .route("/admin/policies/rollback", post(rollback))
        .with_state(Api { gate, tokens })
}

/// A refused call.
#[derive(Debug)]
enum ApiError {
    Auth(AuthError),
    Role(RegistryError),
    Change(ChangeFailure),
    Body(BodyError),
    Folder(String),
    NotASet(String),
    NoSuchAction(String),
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        ApiError::Auth(err)
    }
}

impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> Self {
        ApiError::Body(err)
    }
}

impl From<ChangeFailure> for ApiError {
    fn from(err: ChangeFailure) -> Self {
        ApiError::Change(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, extra) = match self {
            ApiError::Auth(err) => return err.into_response(),
            ApiError::Role(err) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                err.code(),
                err.to_string(),
                None,
            ),
            ApiError::Body(BodyError::Syntax(message)) => {
                (StatusCode::BAD_REQUEST, "malformed_body", message, None)
            }
            ApiError::Body(BodyError::Fields(message)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                message,
                None,
            ),
            ApiError::Folder(message) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_policy_set",
                message,
                None,
            ),
            ApiError::NotASet(text) => (
                StatusCode::NOT_FOUND,
                "unknown_policy_set",
                format!("`{text}` is not a policy set (the seq of its proposal)"),
                None,
            ),
            ApiError::NoSuchAction(action) => (
                StatusCode::NOT_FOUND,
                "unknown_action",
                format!("no action `{action}`; expected approve or activate"),
                None,
            ),
            ApiError::Change(ChangeFailure::Off) => (
                StatusCode::CONFLICT,
                "policy_approval_off",
                ChangeFailure::Off.to_string(),
                None,
            ),
            ApiError::Change(ChangeFailure::Ledger(err)) => {
                tracing::error!(error = %err, "policy-set change not recorded");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ledger_unavailable",
                    "the ledger could not record the change; nothing changed".to_owned(),
                    None,
                )
            }
            ApiError::Change(ChangeFailure::ControlPlane(err)) => {
                tracing::error!(error = %err, "policy-set change not shared with the fleet");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "control_plane_unavailable",
                    super::unconfirmed_change(&err),
                    None,
                )
            }
            ApiError::Change(ChangeFailure::Sources(err)) => {
                tracing::error!(error = %err, "a policy set's files not read from the ledger");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ledger_unavailable",
                    "the set's files could not be read from the ledger; nothing changed".to_owned(),
                    None,
                )
            }
            ApiError::Change(ChangeFailure::Refused(err)) => {
                let status = match &err {
                    ChangeError::UnknownSet(_) => StatusCode::NOT_FOUND,
                    ChangeError::Forbidden { .. }
                    | ChangeError::ProposerCannotApprove
                    | ChangeError::RoleRequired { .. } => StatusCode::FORBIDDEN,
                    ChangeError::InvalidTransition { .. } | ChangeError::NothingToRollBack => {
                        StatusCode::CONFLICT
                    }
                    ChangeError::InvalidFiles(_) => StatusCode::UNPROCESSABLE_ENTITY,
                };
                let extra = match &err {
                    ChangeError::InvalidTransition { current, .. } => {
                        Some(("current_state", json!(current.as_str())))
                    }
                    ChangeError::RoleRequired { missing } => Some((
                        "missing_roles",
                        json!(
                            missing
                                .iter()
                                .map(|q| format!("approver:{q}"))
                                .collect::<Vec<_>>()
                        ),
                    )),
                    _ => None,
                };
                (status, err.code(), err.to_string(), extra)
            }
        };
        error_response(status, code, &message, extra)
    }
}

impl Api {
    async fn principal(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let caller = self.tokens.authenticate(headers).await?;
        Ok(Principal::parse(caller.principal, &caller.roles)
            .map_err(ApiError::Role)?
            .with_issuer(caller.issuer))
    }
}

/// A set as the API shows it; with `texts` (its files read back from the
/// ledger, [`PolicyGate::set_sources`]), each file's text too.
fn set_json(gate: &PolicyGate, set: &ProposedSet, texts: Option<&[(String, String)]>) -> Value {
    let mut value = serde_json::to_value(set).unwrap_or(Value::Null);
    if let Some(texts) = texts {
        value["files"] = set
            .files
            .iter()
            .zip(texts)
            .map(|(f, (_, text))| json!({"file": f.file, "sha256": f.sha256, "text": text}))
            .collect();
    }
    if let Some(policy) = gate.approval() {
        let left = PolicyChanges::outstanding(set, policy);
        value["outstanding"] = json!({
            "approvals": left.approvals,
            "roles": left.qualifiers.iter().map(|q| format!("approver:{q}")).collect::<Vec<_>>(),
        });
    }
    value
}

/// The set in force, as every answer shows it.
fn in_force(gate: &PolicyGate) -> Value {
    let current = gate.current();
    json!({
        "set_seq": current.set_seq,
        "proposal_seq": current.proposal_seq,
        "files": current.set.content_hashes().iter()
            .map(|(file, sha256)| json!({"file": file, "sha256": sha256}))
            .collect::<Vec<_>>(),
    })
}

async fn list(State(api): State<Api>, headers: HeaderMap) -> Result<Response, ApiError> {
    api.tokens.authenticate(&headers).await?;
    let gate = &api.gate;
    let sets = gate
        .read_changes(|changes| {
            changes
                .sets()
                .values()
                .map(|set| set_json(gate, set, None))
                .collect::<Vec<_>>()
        })
        .await;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "approval": gate.approval(),
            "in_force": in_force(gate),
            "sets": sets,
        }),
    ))
}

fn seq_of(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .map_err(|_| ApiError::NotASet(text.to_owned()))
}

async fn show(
    State(api): State<Api>,
    Path(seq): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    api.tokens.authenticate(&headers).await?;
    let seq = seq_of(&seq)?;
    let gate = &api.gate;
    let set = gate
        .read_changes(|changes| changes.set(seq).cloned())
        .await
        .ok_or(ApiError::Change(ChangeFailure::Refused(
            ChangeError::UnknownSet(seq),
        )))?;
    let texts = gate
        .set_sources(&set)
        .await
        .map_err(|err| ApiError::Change(ChangeFailure::Sources(err)))?;
    Ok(json_response(
        StatusCode::OK,
        &set_json(gate, &set, Some(&texts)),
    ))
}

/// One uploaded file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadedFile {
    file: String,
    text: String,
}

/// `POST /admin/policies/sets`: files, or none for the gateway's folder.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposeBody {
    #[serde(default)]
    files: Option<Vec<UploadedFile>>,
    #[serde(default)]
    reason: Option<String>,
}

async fn propose(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let by = api.principal(&headers).await?;
    let body: ProposeBody = parse_body(&body)?;
    let (source, mut files) = match body.files {
        Some(files) => (
            "upload",
            files.into_iter().map(|f| (f.file, f.text)).collect(),
        ),
        None => (
            "folder",
            api.gate
                .read_folder()
                .await
                .map_err(|err| ApiError::Folder(err.to_string()))?,
        ),
    };
    files.sort();
    let command = ChangeCommand::Propose {
        source,
        files,
        reason: body.reason,
    };
    let done = api.gate.change(command, by).await?;
    answer(&api, done, StatusCode::CREATED).await
}

async fn act(
    State(api): State<Api>,
    Path((seq, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let by = api.principal(&headers).await?;
    let ReasonBody { reason } = parse_body(&body)?;
    let proposal_seq = seq_of(&seq)?;
    let command = match action.as_str() {
        "approve" => ChangeCommand::Approve {
            proposal_seq,
            reason,
        },
        "activate" => ChangeCommand::Activate {
            proposal_seq,
            reason,
        },
        _ => return Err(ApiError::NoSuchAction(action)),
    };
    let done = api.gate.change(command, by).await?;
    answer(&api, done, StatusCode::OK).await
}

async fn rollback(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let by = api.principal(&headers).await?;
    let ReasonBody { reason } = parse_body(&body)?;
    let done = api
        .gate
        .change(ChangeCommand::RollBack { reason }, by)
        .await?;
    answer(&api, done, StatusCode::OK).await
}

/// What a change did: its entry, the set acted on, the set in force.
async fn answer(api: &Api, done: ChangeDone, status: StatusCode) -> Result<Response, ApiError> {
    let gate = &api.gate;
    let set = match done.proposal_seq {
        Some(seq) => {
            gate.read_changes(|changes| changes.set(seq).map(|set| set_json(gate, set, None)))
                .await
        }
        None => None,
    };
    let changed = done.entry_seq.is_some();
    let status = if changed { status } else { StatusCode::OK };
    Ok(json_response(
        status,
        &json!({
            "changed": changed,
            "entry_seq": done.entry_seq,
            "kind": done.kind,
            "set": set,
            "in_force": in_force(gate),
        }),
    ))
}
