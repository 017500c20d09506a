//! The model-version workflow on the admin API: list and show models and
//! versions with their history, propose, approve, reject, activate, roll
//! back, retire and revoke. docs/admin-api.md shows every call.
//!
//! Every call is authenticated ([`Tokens`]); the registry checks roles and
//! transitions. Errors are JSON `{"error": {"code", "message"}}`: 401 no or
//! bad token, 403 role or four-eyes refusals, 404 unknown model or
//! version, 409 state conflicts (with `current_state`), 400 a body that is
//! not JSON, 422 a body with wrong or missing fields, 503 ledger down.
//! Nothing is recorded or changed when a call fails.

mod annotate;

pub use annotate::DefaultRisk;

use super::auth::{AuthError, Caller, Tokens};
use super::{BodyError, ReasonBody, error_response, json_response, parse_body};
use crate::registry::service::{Done, RegistryService, ServiceError};
use crate::registry::{
    Command, Principal, Registry, RegistryError, RiskClass, VersionRecord, VersionSpec,
};
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
    registry: Arc<RegistryService>,
    tokens: Tokens,
    default_risk: Arc<DefaultRisk>,
}

/// The routes, under `/admin/models`. `default_risk` names the versions
/// whose risk class the configuration leaves to its default.
pub fn routes(registry: Arc<RegistryService>, tokens: Tokens, default_risk: DefaultRisk) -> Router {
    Router::new()
        .route("/admin/models", get(list))
        .route("/admin/models/{model}", get(show_model))
        .route("/admin/models/{model}/versions", post(propose))
        .route(
            "/admin/models/{model}/versions/{version}",
            get(show_version),
        )
        .route(
            "/admin/models/{model}/versions/{version}/{action}",
            post(act),
        )
        .route("/admin/models/{model}/rollback", post(rollback))
        .with_state(Api {
            registry,
            tokens,
            default_risk: Arc::new(default_risk),
        })
}

/// A refused admin call.
#[derive(Debug)]
enum ApiError {
    Auth(AuthError),
    Registry(RegistryError),
    Ledger(String),
    ControlPlane(String),
    Syntax(String),
    Fields(String),
    NoSuchAction(String),
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        ApiError::Auth(err)
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Refused(err) => ApiError::Registry(err),
            ServiceError::Ledger(err) => ApiError::Ledger(err.to_string()),
            err @ (ServiceError::ControlPlane(_)
            | ServiceError::Contended(_)
            | ServiceError::ControlEvent { .. }) => ApiError::ControlPlane(err.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, extra) = match self {
            ApiError::Auth(err) => return err.into_response(),
            ApiError::Registry(err) => {
                let status = match &err {
                    RegistryError::UnknownModel { .. } | RegistryError::UnknownVersion { .. } => {
                        StatusCode::NOT_FOUND
                    }
                    RegistryError::Forbidden { .. }
                    | RegistryError::ProposerCannotApprove
                    | RegistryError::RoleRequired { .. } => StatusCode::FORBIDDEN,
                    RegistryError::InvalidTransition { .. }
                    | RegistryError::AlreadyExists { .. }
                    | RegistryError::NothingToRollBack { .. } => StatusCode::CONFLICT,
                    RegistryError::ReasonRequired { .. }
                    | RegistryError::InvalidRole { .. }
                    | RegistryError::InvalidArgument { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                    RegistryError::MalformedEvent { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                };
                let extra = match &err {
                    RegistryError::InvalidTransition { current, .. } => {
                        Some(("current_state", json!(current.as_str())))
                    }
                    RegistryError::RoleRequired { missing } => Some((
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
            ApiError::Ledger(message) => {
                tracing::error!(error = %message, "registry change not recorded");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ledger_unavailable",
                    "the ledger could not record the change; nothing changed".to_owned(),
                    None,
                )
            }
            ApiError::ControlPlane(message) => {
                tracing::error!(error = %message, "registry change not shared with the fleet");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "control_plane_unavailable",
                    super::unconfirmed_change(&message),
                    None,
                )
            }
            ApiError::Syntax(message) => (StatusCode::BAD_REQUEST, "malformed_body", message, None),
            ApiError::Fields(message) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                message,
                None,
            ),
            ApiError::NoSuchAction(action) => (
                StatusCode::NOT_FOUND,
                "unknown_action",
                format!(
                    "no action `{action}`; expected approve, reject, activate, retire or revoke"
                ),
                None,
            ),
        };
        error_response(status, code, &message, extra)
    }
}

impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::Syntax(message) => ApiError::Syntax(message),
            BodyError::Fields(message) => ApiError::Fields(message),
        }
    }
}

impl Api {
    async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        Ok(self.tokens.authenticate(headers).await?)
    }

    /// The caller as the registry records them: name, roles and, for a
    /// person with a JWT, the token's issuer.
    async fn principal(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let caller = self.caller(headers).await?;
        Ok(Principal::parse(caller.principal, &caller.roles)
            .map_err(ApiError::Registry)?
            .with_issuer(caller.issuer))
    }

    /// Adds what [`annotate::annotate`] adds to `value`, the JSON of
    /// `record`, version `version` of `model`.
    fn annotate(&self, value: &mut Value, model: &str, version: &str, record: &VersionRecord) {
        let policy = self.registry.approval_policy(model, record.spec.risk_class);
        // The configuration's default is `high`: a version recorded as
        // anything else was classified by someone.
        let default = record.spec.risk_class == RiskClass::High
            && self
                .default_risk
                .contains(&(model.to_owned(), version.to_owned()));
        annotate::annotate(value, record, policy, default);
    }
}

fn model_json(api: &Api, registry: &Registry, name: &str) -> Option<Value> {
    let record = registry.model(name)?;
    let mut value = serde_json::to_value(record).ok()?;
    value["name"] = json!(name);
    for (label, version) in &record.versions {
        if let Some(entry) = value["versions"].get_mut(label) {
            api.annotate(entry, name, label, version);
        }
    }
    Some(value)
}

async fn list(State(api): State<Api>, headers: HeaderMap) -> Result<Response, ApiError> {
    api.caller(&headers).await?;
    let models = api
        .registry
        .read(|registry| {
            registry
                .models()
                .keys()
                .filter_map(|name| model_json(&api, registry, name))
                .collect::<Vec<_>>()
        })
        .await;
    Ok(json_response(StatusCode::OK, &json!({ "models": models })))
}

async fn show_model(
    State(api): State<Api>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    api.caller(&headers).await?;
    let found = api
        .registry
        .read(|registry| model_json(&api, registry, &model))
        .await
        .ok_or(ApiError::Registry(RegistryError::UnknownModel { model }))?;
    Ok(json_response(StatusCode::OK, &found))
}

async fn version_json(api: &Api, model: &str, version: &str) -> Result<Value, ApiError> {
    api.registry
        .read(|registry| {
            if registry.model(model).is_none() {
                return Err(RegistryError::UnknownModel {
                    model: model.to_owned(),
                });
            }
            let record =
                registry
                    .version(model, version)
                    .ok_or_else(|| RegistryError::UnknownVersion {
                        model: model.to_owned(),
                        version: version.to_owned(),
                    })?;
            let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
            value["model"] = json!(model);
            value["version"] = json!(version);
            value["active"] =
                json!(registry.model(model).and_then(|m| m.active.as_deref()) == Some(version));
            api.annotate(&mut value, model, version, record);
            Ok(value)
        })
        .await
        .map_err(ApiError::Registry)
}

async fn show_version(
    State(api): State<Api>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    api.caller(&headers).await?;
    Ok(json_response(
        StatusCode::OK,
        &version_json(&api, &model, &version).await?,
    ))
}

/// `POST /admin/models/{model}/versions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposeBody {
    version: String,
    upstream: String,
    #[serde(default)]
    upstream_model: Option<String>,
    #[serde(default)]
    artifact_digest: Option<String>,
    risk_class: String,
    change_ref: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn propose(
    State(api): State<Api>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let by = api.principal(&headers).await?;
    let body: ProposeBody = parse_body(&body)?;
    let risk_class = RiskClass::parse(&body.risk_class).ok_or_else(|| {
        ApiError::Fields(format!(
            "risk_class `{}` is not minimal, limited or high",
            body.risk_class
        ))
    })?;
    crate::config::UpstreamUrl::parse(&body.upstream)
        .map_err(|problem| ApiError::Fields(format!("upstream: {problem}")))?;
    let version = body.version.clone();
    let command = Command::Propose {
        model: model.clone(),
        version: body.version,
        spec: VersionSpec {
            upstream: body.upstream,
            upstream_model: body.upstream_model,
            artifact_digest: body.artifact_digest,
            risk_class,
            change_ref: body.change_ref,
            description: body.description,
        },
        reason: body.reason,
    };
    let done = api.registry.execute(command, by).await?;
    answer(&api, &model, &version, done, StatusCode::CREATED).await
}

async fn act(
    State(api): State<Api>,
    Path((model, version, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let by = api.principal(&headers).await?;
    let ReasonBody { reason } = parse_body(&body)?;
    let (m, v) = (model.clone(), version.clone());
    let command = match action.as_str() {
        "approve" => Command::Approve {
            model: m,
            version: v,
            reason,
        },
        "reject" => Command::Reject {
            model: m,
            version: v,
            reason: reason.unwrap_or_default(),
        },
        "activate" => Command::Activate {
            model: m,
            version: v,
            reason,
        },
        "retire" => Command::Retire {
            model: m,
            version: v,
            reason,
        },
        "revoke" => Command::Revoke {
            model: m,
            version: v,
            reason: reason.unwrap_or_default(),
        },
        _ => return Err(ApiError::NoSuchAction(action)),
    };
    let done = api.registry.execute(command, by).await?;
    answer(&api, &model, &version, done, StatusCode::OK).await
}

async fn rollback(
    State(api): State<Api>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let by = api.principal(&headers).await?;
    let ReasonBody { reason } = parse_body(&body)?;
    let command = Command::RollBack {
        model: model.clone(),
        reason,
    };
    let done = api.registry.execute(command, by).await?;
    let version = done
        .event
        .as_ref()
        .map(|event| event.head().version.clone())
        .unwrap_or_default();
    answer(&api, &model, &version, done, StatusCode::OK).await
}

/// What a change did: the entry recording it and the version as it is now.
async fn answer(
    api: &Api,
    model: &str,
    version: &str,
    done: Done,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let record = version_json(api, model, version).await?;
    let changed = done.entry_seq.is_some();
    let status = if changed { status } else { StatusCode::OK };
    let body = json!({
        "changed": changed,
        "entry_seq": done.entry_seq,
        "kind": done.event.as_ref().map(|event| event.kind()),
        "version": record,
    });
    Ok(json_response(status, &body))
}
