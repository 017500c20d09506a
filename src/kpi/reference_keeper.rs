//! What an accepted drift reference upload becomes, the same for a single
//! gateway and for every replica of a fleet: the upload stored as sent
//! (read again at start), a `kpi_reference_set` entry in the ledger (in a
//! fleet citing its control event), and the version's reference in the
//! aggregator's windows.

use super::upload::{ReferenceFiles, ReferenceFormat, UnusableReference, parse_reference};
use super::{FeatureValue, KpiRecorder, ReferenceUpload};
use crate::config::KpiConfig;
use crate::decision::SinkError;
use crate::ledger::entry::{EntryBody, hex};
use crate::ledger::sequencer::Ledger;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// The entry kind of an upload.
pub const REFERENCE_SET: &str = "kpi_reference_set";
/// The control event's member holding the upload itself (not recorded in
/// the ledger entry, which keeps its digest).
pub const UPLOAD_MEMBER: &str = "upload";

/// An upload, checked to be text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The model.
    pub model: String,
    /// The version whose reference it is.
    pub version: String,
    /// CSV or JSON.
    pub format: ReferenceFormat,
    /// As sent.
    pub text: String,
    /// Who uploaded it.
    pub set_by: String,
    /// The issuer of a person's token, when a person uploaded it.
    pub set_by_issuer: Option<String>,
}

impl Upload {
    /// SHA-256 (hex) of the uploaded bytes.
    pub fn sha256(&self) -> String {
        hex(&Sha256::digest(self.text.as_bytes()))
    }

    /// The `kpi_reference_set` entry's members (`rows`: how many it has).
    pub fn members(&self, rows: usize) -> Map<String, Value> {
        let mut members = Map::new();
        members.insert("model".into(), json!(self.model));
        members.insert("version".into(), json!(self.version));
        members.insert("sha256".into(), json!(self.sha256()));
        members.insert("rows".into(), json!(rows));
        members.insert("format".into(), json!(self.format.extension()));
        members.insert("set_by".into(), json!(self.set_by));
        if let Some(issuer) = &self.set_by_issuer {
            members.insert("set_by_issuer".into(), json!(issuer));
        }
        members
    }

    /// The upload a control event carries ([`Upload::members`] with
    /// [`UPLOAD_MEMBER`]); `Err` names what is missing or wrong.
    pub fn from_members(members: &Map<String, Value>) -> Result<Self, MalformedUpload> {
        let text = |name: &'static str| {
            members
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(MalformedUpload::Missing(name))
        };
        let format = match text("format")?.as_str() {
            "csv" => ReferenceFormat::Csv,
            "json" => ReferenceFormat::Json,
            other => return Err(MalformedUpload::Format(other.to_owned())),
        };
        let upload = Upload {
            model: text("model")?,
            version: text("version")?,
            format,
            text: text(UPLOAD_MEMBER)?,
            set_by: text("set_by")?,
            set_by_issuer: members
                .get("set_by_issuer")
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        if text("sha256")? != upload.sha256() {
            return Err(MalformedUpload::Digest);
        }
        Ok(upload)
    }
}

/// Why a control event's members do not make an upload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedUpload {
    /// A text member is absent (or not text).
    #[error("no text member `{0}`")]
    Missing(&'static str),
    /// `format` is neither `csv` nor `json`.
    #[error("unknown format `{0}`")]
    Format(String),
    /// The upload's SHA-256 is not the one the event names.
    #[error("the upload does not have the digest the event names")]
    Digest,
}

/// Why an upload was not kept.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    /// The file could not be stored (nothing recorded).
    #[error("the reference could not be stored: {0}")]
    Store(std::io::Error),
    /// The ledger did not record it (the file is stored).
    #[error("the ledger could not record the reference: {0}")]
    Ledger(SinkError),
    /// Blocking work was lost.
    #[error("the reference's blocking work failed: {0}")]
    Join(String),
}

/// Parses, stores, records and applies uploads.
#[derive(Clone)]
pub struct ReferenceKeeper {
    recorder: KpiRecorder,
    ledger: Ledger,
    files: ReferenceFiles,
    models: Arc<HashMap<String, KpiConfig>>,
}

impl std::fmt::Debug for ReferenceKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReferenceKeeper").finish_non_exhaustive()
    }
}

impl ReferenceKeeper {
    /// Keeps uploads for `models` (those with `[models.kpi]`) in `files`.
    pub fn new(
        recorder: KpiRecorder,
        ledger: Ledger,
        files: ReferenceFiles,
        models: HashMap<String, KpiConfig>,
    ) -> Self {
        Self {
            recorder,
            ledger,
            files,
            models: Arc::new(models),
        }
    }

    /// The KPI settings of `model`, if it has any.
    pub fn config(&self, model: &str) -> Option<&KpiConfig> {
        self.models.get(model)
    }

    /// The upload's rows, read off the async workers (up to
    /// [`super::MAX_REFERENCE_ROWS`]); `Err` says what is wrong with it.
    pub async fn parse(
        &self,
        upload: &Upload,
    ) -> Result<Vec<Vec<FeatureValue>>, UnusableReference> {
        let config = self
            .models
            .get(&upload.model)
            .cloned()
            .ok_or_else(|| UnusableReference::NoKpis(upload.model.clone()))?;
        let (format, text) = (upload.format, upload.text.clone());
        tokio::task::spawn_blocking(move || {
            let rows = parse_reference(&config, format, text.as_bytes())?;
            super::aggregator::check_reference(&config, &rows)?;
            Ok(rows)
        })
        .await
        .unwrap_or_else(|err| Err(UnusableReference::Lost(err.to_string())))
    }

    /// Stores `upload`, records its entry with `members` ([`Upload::members`],
    /// in a fleet those of its control event with its control seq) and
    /// makes `rows` the version's reference. The entry's seq. Once
    /// recorded, nothing fails: `rows` come from [`ReferenceKeeper::parse`],
    /// which the aggregator takes.
    pub async fn keep(
        &self,
        upload: &Upload,
        rows: Vec<Vec<FeatureValue>>,
        members: Map<String, Value>,
    ) -> Result<Option<u64>, KeepError> {
        let files = self.files.clone();
        let (model, version, format) =
            (upload.model.clone(), upload.version.clone(), upload.format);
        let text = upload.text.clone();
        tokio::task::spawn_blocking(move || files.save(&model, &version, format, text.as_bytes()))
            .await
            .map_err(|err| KeepError::Join(err.to_string()))?
            .map_err(KeepError::Store)?;
        let seq = self.record(members).await?;
        let named = ReferenceUpload {
            sha256: upload.sha256(),
            seq,
        };
        if let Err(problem) = self
            .recorder
            .set_reference(&upload.model, &upload.version, rows, named)
            .await
        {
            tracing::error!(model = %upload.model, version = %upload.version, %problem, "a recorded drift reference was not applied");
        }
        Ok(seq)
    }

    /// Records a `kpi_reference_set` entry with `members`: its seq.
    pub async fn record(&self, members: Map<String, Value>) -> Result<Option<u64>, KeepError> {
        let ack = self
            .ledger
            .append(EntryBody::Governance {
                kind: REFERENCE_SET,
                members,
            })
            .await
            .map_err(KeepError::Ledger)?;
        Ok(ack.seq)
    }
}
