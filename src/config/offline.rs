//! The part of a configuration the offline ledger commands (`verify`,
//! `export`, `proof`, `erase`, `rotate-key`, `vkey`) need: where the ledger
//! is and its key. Loaded without resolving upstream credentials or reading
//! anything else the running gateway needs, so that an operator or an
//! auditor can read a ledger without holding the production model keys.

use super::validate::{self, Environment};
use super::{ConfigError, LedgerConfig};
use std::path::{Path, PathBuf};

/// What an offline ledger command takes from a configuration file.
#[derive(Debug, Clone)]
pub struct OfflineConfig {
    /// Where the configuration came from (for messages).
    pub source: String,
    /// The gateway's data directory (`server.data_dir`): the ledger is in
    /// its `ledger` subdirectory.
    pub data_dir: PathBuf,
    /// The ledger's origin, key and settings. With `[cluster]` the
    /// replica's log is named after it too (`cluster::origin`): the
    /// command settles `ledger.origin` once it has opened the store.
    pub ledger: LedgerConfig,
    /// `cluster.replica_id`, when the gateway is a replica of a fleet.
    pub replica_id: Option<String>,
}

impl OfflineConfig {
    /// Reads the file at `path`. The whole file is parsed (a typo is still
    /// an error) but only `[server]` and `[ledger]` are checked: models,
    /// their credentials, TLS roots, tokens and policies are not looked at.
    pub fn load(path: &Path) -> Result<OfflineConfig, ConfigError> {
        let (file, text) = super::read_file(path)?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &file, base_dir)
    }

    /// Parses configuration text; relative paths resolve against `base_dir`.
    pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<OfflineConfig, ConfigError> {
        let raw = validate::parse_raw(text, file)?;
        // No variables: nothing checked here may read one.
        let env = Environment::fixed(Default::default(), base_dir);
        validate::check_offline(raw, file, &env)
    }
}

/// `[cluster]` of the file at `path`, its URL resolved from the process
/// environment or its file, for `govgate export --fleet`, which reads the
/// replicas' published checkpoints; `None` without the table. The rest of
/// the file is parsed (a typo is still an error), not checked.
pub fn load_cluster(path: &Path) -> Result<Option<super::ClusterConfig>, ConfigError> {
    let (file, text) = super::read_file(path)?;
    let raw = validate::parse_raw(&text, &file)?;
    let env = Environment::process(path.parent().unwrap_or(Path::new(".")));
    super::cluster::check(&validate::Checker::for_file(&file), raw.cluster, &env)
}
