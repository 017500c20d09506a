//! Wiring only: builds the parts from a checked [`Config`], runs the public
//! and admin listeners, and shuts down in order (stop accepting, drain
//! in-flight requests within the grace period, flush the decision log).

mod erasure;
mod governance;
mod outages;
mod oversight;
mod retention;
mod rotation;
mod tls;

use crate::admin::auth::Tokens;
use crate::config::{Config, TilesConfig};
use crate::ledger::checkpoint::NoteSigner;
use crate::ledger::entry::EntryBody;
use crate::ledger::history::{self, HistoryError, HistoryRecord};
use crate::ledger::metrics::LedgerMetrics;
use crate::ledger::reader::{self, LedgerReader};
use crate::ledger::sequencer::{Ledger, LedgerError, LedgerWriter, SequencerConfig};
use crate::ledger::store::{LedgerStore, SledStore, StoreError};
use crate::ledger::tiles::{self, metrics::TileMetrics, serve::Tiles};
use crate::ledger::wal::WalStore;
use crate::listener::{self, Caps, ListenerMetrics};
use crate::metrics::Metrics;
use crate::proxy::{self, ProxyMetrics, ProxyState, Serving, ServingTable};
use crate::registry::shared::Freshness;
use crate::review::PolicyGate;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Renames the ledger directory `dir` to `dir.damaged-<unix seconds>`
/// beside it; returns the new path. Nothing in it is changed or deleted.
fn quarantine(dir: &std::path::Path) -> Result<std::path::PathBuf, AppError> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".damaged-{seconds}"));
    let target = dir.with_file_name(name);
    std::fs::rename(dir, &target).map_err(|source| AppError::Quarantine {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(target)
}

/// Errors building or running the gateway.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A listener could not be bound. The cause is part of the message,
    /// not a `source`: reports that print the chain would say it twice.
    #[error("cannot listen on {addr} ({key}): {cause}; {hint}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The config key or flag that sets it.
        key: &'static str,
        /// The cause, as the operating system says it.
        cause: std::io::Error,
        /// What to change, naming the config key or flag.
        hint: String,
    },
    /// The signing key's history forbids this start, or its record
    /// cannot be kept.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The subject key cannot be read or made.
    #[error("ledger.subject_key_file: {0}")]
    SubjectKey(#[from] crate::config::subject::SubjectKeyError),
    /// The ledger's store could not be opened.
    #[error("ledger store: {0}")]
    Store(#[from] StoreError),
    /// The ledger could not start (or does not verify).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The ledger refused an entry the gateway must write.
    #[error("ledger: {0}")]
    Append(crate::decision::SinkError),
    /// The origin is not a valid key name.
    #[error("ledger.origin: {0}")]
    Origin(crate::ledger::checkpoint::NoteError),
    /// The fleet's control plane (`[cluster]`) cannot be joined.
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The Responses API's id journal cannot be read or written.
    #[error("response id journal: {0}")]
    Responses(#[from] proxy::responses::JournalError),
    /// Metric families could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The KPI aggregator could not start.
    #[error("KPIs: {0}")]
    Kpi(#[from] crate::kpi::StartError),
    /// The risk register could not be recorded or evaluated.
    #[error("risk register: {0}")]
    Risks(#[from] crate::risk::RiskError),
    /// The damaged ledger could not be moved aside.
    #[error("cannot move the damaged ledger {path} aside: {source}")]
    Quarantine {
        /// The ledger directory.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The policies do not load (the message names file and line).
    #[error("policies: {0}")]
    Policy(#[from] crate::review::PolicyError),
    /// The policy sets could not be rebuilt from the ledger.
    #[error("policy sets: {0}")]
    PolicySets(String),
    /// The review queue could not be restored.
    #[error("reviews: {0}")]
    Reviews(#[from] crate::review::QueueError),
    /// Witnessing could not start.
    #[error(transparent)]
    Witness(#[from] crate::witness::WitnessError),
    /// The review store could not be opened.
    #[error("reviews: {0}")]
    ReviewFiles(#[from] crate::review::FileError),
    /// The model registry could not be rebuilt from the ledger.
    #[error("model registry: {0}")]
    Registry(crate::registry::service::ReplayError),
    /// A declared version could not be proposed.
    #[error("proposing a declared model version: {0}")]
    Propose(crate::registry::service::ServiceError),
    /// A fleet replica could not apply the fleet's control events at start.
    #[error("cluster: catching up on the fleet's control events: {0}")]
    CatchUp(crate::registry::service::ServiceError),
    /// A listener's certificate or key cannot be used.
    #[error("TLS on the {listener} listener: {source}")]
    Tls {
        /// `public` or `admin`.
        listener: &'static str,
        /// Why.
        source: crate::listener::TlsError,
    },
    /// A listener's accept loop ended before shutdown (it panicked).
    #[error("serving {which}: the listener stopped unexpectedly")]
    Serve {
        /// `public`, `admin` or `tiles`.
        which: &'static str,
    },
}

/// A built gateway, ready to serve.
pub struct App {
    public: Router,
    admin: Router,
    public_listener: listener::Settings,
    admin_listener: listener::Settings,
    /// The tiles' own listener's router and settings, when they have one.
    tiles: Option<(Router, listener::Settings)>,
    listener_metrics: ListenerMetrics,
    ledger: Ledger,
    writer: LedgerWriter,
    backlog: proxy::Backlog,
    shutdown_grace: Duration,
    policies: Option<Arc<PolicyGate>>,
    /// Where the key's history record is rewritten at shutdown.
    keeper: Option<Arc<HistoryKeeper>>,
    /// Sends checkpoints to the witnesses, when there are any.
    witnessing: Option<crate::witness::WitnessTask>,
    /// Continuous verification, started by `run`.
    verification: Verification,
    /// Payload retention, when a model has a setting; started by `run`.
    retention: Option<Arc<retention::Retention>>,
    /// The listeners' TLS, reloaded by a task of `run`.
    tls: Vec<tls::Reloading>,
    /// The online exports' threads, stopped and drained by `run`.
    exports: crate::admin::export::Exports,
    /// The report jobs' threads, stopped and drained by `run`.
    reports: crate::admin::reports::Reports,
    /// Payload erasures asked for on the admin API, stopped and drained
    /// by `run` before `gateway_stopped`.
    eraser: Arc<erasure::Eraser>,
    /// The review queue, whose timers `run` stops at shutdown.
    reviews: Option<crate::review::ReviewQueue>,
    /// The model registry, whose commands under way `run` lets finish
    /// before `gateway_stopped`.
    registry: Arc<crate::registry::service::RegistryService>,
    /// Keeps `auth.jwt.jwks_url`'s key set, run by `run` until shutdown.
    jwks: Option<proxy::jwks::JwksFetcher>,
    /// The same for `admin.jwt.jwks_url`.
    admin_jwks: Option<proxy::jwks::JwksFetcher>,
    /// Evaluates the risk register's indicators, run by `run` until shutdown.
    risks: Option<crate::risk::RiskTask>,
    /// The KPI aggregator, stopped by `run` once nothing reads it any more.
    kpi_task: Option<crate::kpi::KpiTask>,
    /// Writes `kpi_snapshot` entries, run by `run` until the requests drained.
    kpi_snapshots: Option<crate::kpi::KpiSnapshots>,
    /// Counts the decisions of the last day the ledger held at start.
    priming: Priming,
    /// Which version created each Responses API response id; its journal
    /// is closed once the requests drained.
    responses: proxy::responses::ResponseIndex,
    /// Appends the ids learnt to the journal, run by `run`.
    responses_journal: Option<proxy::responses::JournalWriter>,
    /// This replica's place in its fleet (`[cluster]`): its claim is
    /// renewed by `run` and given up at the end.
    cluster: Option<crate::cluster::Membership>,
    /// Applies the fleet's control events, run by `run` until the
    /// requests drained.
    follower: Option<crate::cluster::control::Follower>,
    /// Shares this replica's KPI rows and labels with the fleet and folds
    /// the fleet's, run by `run`.
    fleet_kpis: Option<FleetKpis>,
}

/// The two tasks of the fleet's KPIs.
struct FleetKpis {
    writer: crate::cluster::kpi_feed::FeedWriter,
    reader: crate::cluster::kpi_feed::FeedReader,
}

/// What the tally's priming scan needs: the entries before `end` are
/// counted by the scan, those from `end` on by the writer.
struct Priming {
    tally: Arc<crate::ledger::tally::OutcomeTally>,
    store: Arc<dyn LedgerStore>,
    end: u64,
}

impl Priming {
    /// The scan on a blocking thread; it stops soon after `stop` is set.
    fn spawn(self, stop: Arc<std::sync::atomic::AtomicBool>) -> tokio::task::JoinHandle<()> {
        tokio::task::spawn_blocking(move || {
            let span = tracing::info_span!("decision_tally");
            let _entered = span.enter();
            let started = std::time::Instant::now();
            let primed = crate::ledger::tally::prime(
                &self.tally,
                self.store.as_ref(),
                self.end,
                std::time::SystemTime::now(),
                crate::ledger::tally::PRIME_CAP,
                &stop,
            );
            match primed {
                Ok(()) => {
                    tracing::debug!(elapsed = ?started.elapsed(), "decisions of the last day counted")
                }
                Err(err) => {
                    tracing::warn!(error = %err, "the last day's decisions could not be counted; the overview counts from the start")
                }
            }
        })
    }
}

/// What the background verification task needs.
struct Verification {
    monitor: crate::ledger::monitor::Monitor,
    store: Arc<dyn LedgerStore>,
}

/// What rewrites the signing key's history record from the store.
struct HistoryKeeper {
    path: std::path::PathBuf,
    store: Arc<dyn LedgerStore>,
    /// The key in force (an online rotation changes it).
    public_key: Arc<std::sync::Mutex<[u8; 32]>>,
    origin: String,
    left_origins: Vec<String>,
}

impl HistoryKeeper {
    /// Records the store's latest checkpoint (blocking file I/O).
    fn save(&self) -> Result<(), HistoryError> {
        let public_key = *self
            .public_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = history::current(
            self.store.as_ref(),
            &public_key,
            &self.origin,
            self.left_origins.clone(),
        )?;
        match current {
            Some(record) => history::save(&self.path, &record),
            None => Ok(()),
        }
    }
}

/// The key's history record and where it lives, for a start on a store
/// of `data_dir`.
struct History {
    path: std::path::PathBuf,
    record: Option<HistoryRecord>,
}

/// How to start, beyond the configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// On a ledger that does not verify: move it aside and start a new one
    /// (whose first entry names the damaged store and why), instead of
    /// refusing to start.
    pub quarantine_damaged_ledger: bool,
}

/// The ledger store in `dir`: the sled store behind its write-ahead file
/// (`dir/wal`), brought up to the file's durable tail.
fn open_store(dir: &std::path::Path, cache_bytes: u64) -> Result<Arc<dyn LedgerStore>, StoreError> {
    let sled = Arc::new(SledStore::open_with_cache(dir, cache_bytes)?);
    Ok(Arc::new(WalStore::open(
        &crate::ledger::wal::dir_of(dir),
        sled,
    )?))
}

/// The subject key: the configured file (which must exist), else
/// `data_dir/subject.key`, made at the first start a model needs it and
/// read when it exists (erasure by subject of older decisions).
fn subject_key(config: &Config) -> Result<Option<crate::decision::SubjectKey>, AppError> {
    use crate::config::subject;
    let path = subject::key_path(
        config.ledger.subject_key_file.as_deref(),
        &config.server.data_dir,
    );
    let needed = config.models.iter().any(|model| model.subject.is_some());
    let key = match (&config.ledger.subject_key_file, needed) {
        (Some(_), _) => {
            Some(
                subject::read_key(&path)?.ok_or_else(|| subject::SubjectKeyError::Io {
                    path: path.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                })?,
            )
        }
        (None, true) => Some(subject::read_or_create_key(&path)?),
        (None, false) => subject::read_key(&path)?,
    };
    Ok(key)
}

impl App {
    /// Builds every part from the config: opens the ledger in
    /// `data_dir/ledger` (refusing a store that does not verify) and
    /// records `gateway_started`. Call from within the async runtime.
    pub async fn build(config: &Config) -> Result<App, AppError> {
        Self::build_with(config, StartOptions::default()).await
    }

    /// [`App::build`], with `options`. With `[cluster]` the replica joins
    /// its fleet first: a replica id in use stops the start before the
    /// ledger is opened.
    pub async fn build_with(config: &Config, options: StartOptions) -> Result<App, AppError> {
        let membership = match &config.cluster {
            Some(cluster) => Some(crate::cluster::join(cluster).await?),
            None => None,
        };
        match Self::build_local(config, options).await {
            Ok(mut app) => {
                let ledger = app.verification.store.clone();
                let freshness = app.follower.as_ref().map(|follower| follower.freshness());
                app.cluster =
                    membership.map(|membership| membership.publishing(ledger).guarding(freshness));
                Ok(app)
            }
            Err(err) => {
                // The id is given up at once, not when its lease ends.
                if let Some(membership) = membership {
                    membership.run(std::future::ready(())).await;
                }
                Err(err)
            }
        }
    }

    /// Opens the ledger in `data_dir/ledger` and builds every part on it.
    async fn build_local(config: &Config, options: StartOptions) -> Result<App, AppError> {
        let dir = config.server.data_dir.join("ledger");
        let path = history::record_path(&config.ledger.key_file);
        let record = history::load(&path)?;
        let history = || History {
            path: path.clone(),
            record: record.clone(),
        };
        let store = open_store(&dir, config.ledger.cache_bytes);
        // A replica of a fleet signs under its own name (cluster::origin).
        let replica_config;
        let config = match (&config.cluster, &store) {
            (Some(cluster), Ok(store)) => {
                // A store that cannot be read fails below, with its reason
                // (and may be quarantined): a new log's name then.
                let stored =
                    crate::cluster::origin::stored_origin(store.as_ref()).unwrap_or_default();
                let origin = crate::cluster::origin::replica_origin(
                    &config.ledger.origin,
                    &cluster.replica_id,
                    stored.as_deref(),
                );
                let mut with_origin = config.clone();
                with_origin.ledger.origin = origin;
                replica_config = with_origin;
                &replica_config
            }
            _ => config,
        };
        let opened = match store {
            Ok(store) => Self::build_on_after(config, store, None, Some(history())).await,
            Err(err) => Err(err.into()),
        };
        let reason = match &opened {
            Err(AppError::Ledger(LedgerError::Corrupt { seq, reason })) => {
                format!("first bad seq {seq}: {reason}")
            }
            Err(AppError::Store(StoreError::Corrupt(what))) => format!("corrupt store at {what}"),
            _ => return opened,
        };
        if !options.quarantine_damaged_ledger {
            return opened;
        }
        // A new tree under an origin this key signed before would be a
        // second history: refused before anything is moved.
        let public_key = config.ledger.signing_key.verifying_key().to_bytes();
        if let Some(record) = record
            .as_ref()
            .filter(|record| record.origin == config.ledger.origin && record.is_of_key(&public_key))
        {
            return Err(record
                .not_extended(&path, format!("does not verify ({reason})"))
                .into());
        }
        let moved = quarantine(&dir)?;
        tracing::error!(
            damaged = %moved.display(),
            %reason,
            "the ledger does not verify; moved it aside and starting a new ledger"
        );
        let store = open_store(&dir, config.ledger.cache_bytes)?;
        let restarted = EntryBody::LedgerRestarted {
            damaged_store: Some(
                moved
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            reason,
            previous_checkpoint: None,
        };
        Self::build_on_after(config, store, Some(restarted), Some(history())).await
    }

    /// Builds every part on a given ledger store (another engine, or an
    /// in-memory one in tests).
    pub async fn build_on(config: &Config, store: Arc<dyn LedgerStore>) -> Result<App, AppError> {
        Self::build_on_after(config, store, None, None).await
    }

    /// [`App::build_on`], appending `first` before `gateway_started`;
    /// with `history`, the signing key's history is checked before
    /// anything is written and recorded once `gateway_started` is durable.
    async fn build_on_after(
        config: &Config,
        store: Arc<dyn LedgerStore>,
        mut first: Option<EntryBody>,
        history: Option<History>,
    ) -> Result<App, AppError> {
        // Before anything is written: a policy that does not load stops
        // the start with its file and line.
        let policies = match &config.review.policies_dir {
            Some(dir) => Some(crate::review::PolicySet::load(dir)?),
            None => None,
        };
        let metrics = Metrics::new();
        let monitor = crate::ledger::monitor::Monitor::new(
            config.ledger.verify_every,
            config.ledger.verify_full_every,
            config.ledger.verify_cpu_share,
            metrics.registry(),
        )?;
        let proxy_metrics = ProxyMetrics::register(metrics.registry())?;
        let listener_metrics = ListenerMetrics::register(metrics.registry())?;
        // Decisions by outcome for the overview: the writer counts what it
        // commits from here on; a scan at `run` counts what is already in.
        let tally = Arc::new(crate::ledger::tally::OutcomeTally::new(
            config.models.iter().map(|model| model.name.clone()),
            std::time::SystemTime::now(),
        ));
        let priming = Priming {
            tally: tally.clone(),
            store: store.clone(),
            end: store.size()?,
        };
        let ledger_metrics = LedgerMetrics::new()?.with_tally(tally.clone());
        ledger_metrics.register(metrics.registry())?;
        let signer = NoteSigner::new(&config.ledger.origin, config.ledger.signing_key.clone())
            .map_err(AppError::Origin)?;
        let public_key = config.ledger.signing_key.verifying_key().to_bytes();
        let (ledger, writer) = Ledger::open(
            store.clone(),
            SequencerConfig {
                origin: config.ledger.origin.clone(),
                signer,
                payload_mode: config.ledger.payload_mode,
                entry_signatures: config.ledger.entry_signatures,
                queue_len: config.ledger.queue_len,
                max_batch: config.ledger.max_batch,
                metrics: ledger_metrics,
            },
        )?;
        let keeper = match history {
            Some(history) => Some(start_history(config, &store, history, &mut first).await?),
            None => None,
        };
        if let Some(first) = first {
            ledger.append(first).await.map_err(AppError::Append)?;
        }
        // The signature setting is recorded before this run's first entry
        // of its own, so a verifier knows which entries must be signed.
        let setting = crate::ledger::setting::record_if_changed(
            store.as_ref(),
            config.ledger.entry_signatures,
        )?;
        if let Some(setting) = setting {
            ledger.append(setting).await.map_err(AppError::Append)?;
        }
        ledger
            .append(EntryBody::GatewayStarted {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .await
            .map_err(AppError::Append)?;
        let keeper = match keeper {
            Some(keeper) => Some(save_history(Arc::new(keeper)).await?),
            None => None,
        };
        let (oversight, held_folder) = match policies {
            Some(set) => {
                let (oversight, held_folder) =
                    oversight::start(config, set, &store, ledger.clone(), &metrics).await?;
                (Some(oversight), held_folder)
            }
            None => (None, None),
        };
        let subject_key = subject_key(config)?;
        // A replica of a fleet shares its KPI rows and labels, and folds
        // the fleet's into windows of their own.
        let fleet_feed = match &config.cluster {
            Some(_) if config.models.iter().any(|m| m.kpi.is_some()) => {
                Some(crate::kpi::feed_channel(metrics.registry())?)
            }
            _ => None,
        };
        let (feed_sender, feed_parts) = match fleet_feed {
            Some((sender, queue, dropped)) => (Some(sender), Some((queue, dropped))),
            None => (None, None),
        };
        let (kpi, kpi_task) =
            match crate::kpi::start(&config.models, metrics.registry(), feed_sender)? {
                Some((recorder, task)) => (Some(recorder), Some(task)),
                None => (None, None),
            };
        let fleet_kpis = match (&config.cluster, feed_parts, &kpi) {
            (Some(cluster), Some((queue, dropped)), Some(recorder)) => Some(FleetKpis {
                writer: crate::cluster::kpi_feed::FeedWriter::new(
                    cluster,
                    &config.models,
                    queue,
                    dropped,
                ),
                reader: crate::cluster::kpi_feed::FeedReader::new(cluster, recorder.clone()),
            }),
            _ => None,
        };
        // In a fleet the register and the fairness and drift windows the
        // indicators read are the fleet's.
        let risk_scope = match &config.cluster {
            Some(_) => crate::risk::Scope::Fleet,
            None => crate::risk::Scope::Own,
        };
        let (risks, risk_registers) = crate::risk::start(
            &config.risks,
            store.clone(),
            ledger.clone(),
            &metrics,
            kpi.clone(),
            risk_scope,
        )
        .await?;
        // `kpi_snapshot` entries: on a timer, at version changes, at stop.
        let (kpi_snapshots, snapshot_handle) = match &kpi {
            Some(recorder) => {
                let (task, handle) = crate::kpi::KpiSnapshots::new(
                    recorder.clone(),
                    ledger.clone(),
                    &config.models,
                    metrics.registry(),
                )?;
                let task = match &fleet_kpis {
                    Some(_) => task.with_fleet(),
                    None => task,
                };
                // Every snapshot from here on is kept in memory too: the
                // console reads only the earlier ones from the ledger.
                task.history().starts_at(store.size()?);
                (Some(task), Some(handle))
            }
            None => (None, None),
        };
        let witness_keys = ledger.keys();
        let witnessing = crate::witness::Witnesses::start(
            config,
            store.clone(),
            move || witness_keys.get(),
            metrics.registry(),
        )?;
        let tiles = match config.tiles {
            TilesConfig::Off => None,
            TilesConfig::Public { cache_bytes } | TilesConfig::Own { cache_bytes, .. } => Some(
                crate::admin::json_rejections(tiles::serve::routes(Tiles::new(
                    store.clone(),
                    cache_bytes,
                    TileMetrics::register(metrics.registry())?,
                    witnessing.as_ref().map(|(witnesses, _)| {
                        let witnesses = witnesses.clone();
                        Arc::new(move |note: &str| witnesses.with_cosignatures(note))
                            as tiles::serve::Cosign
                    }),
                ))),
            ),
        };
        let verification = Verification {
            monitor: monitor.clone(),
            store: store.clone(),
        };
        let exports = crate::admin::export::Exports::new(
            store.clone(),
            ledger.keys(),
            witnessing.as_ref().map(|(witnesses, _)| witnesses.clone()),
            metrics.registry(),
        )?;
        let reports = crate::admin::reports::Reports::new(
            store.clone(),
            ledger.clone(),
            ledger.keys(),
            exports.clone(),
        );
        let keys = ledger.keys();
        let reader = LedgerReader::following(store.clone(), move || keys.get());
        let freshness = config
            .cluster
            .as_ref()
            .map(|cluster| Arc::new(Freshness::new(cluster.max_staleness)));
        let serving = match &freshness {
            Some(freshness) => Serving::new(ServingTable::default()).following(freshness.clone()),
            None => Serving::new(ServingTable::default()),
        };
        let serving = Arc::new(serving);
        // Drift references uploaded before this start, then (in a fleet)
        // those uploaded anywhere in the fleet since.
        let reference_keeper = match &kpi {
            Some(recorder) => {
                let files =
                    crate::kpi::ReferenceFiles::new(&config.server.data_dir.join("kpi-references"));
                let models: std::collections::HashMap<_, _> = config
                    .models
                    .iter()
                    .filter_map(|m| Some((m.name.clone(), m.kpi.clone()?)))
                    .collect();
                restore_references(recorder, &files, &models).await;
                Some(crate::kpi::ReferenceKeeper::new(
                    recorder.clone(),
                    ledger.clone(),
                    files,
                    models,
                ))
            }
            None => None,
        };
        let reference_domain = match (&config.cluster, &reference_keeper) {
            (Some(cluster), Some(keeper)) => Some(Arc::new(
                crate::cluster::references::ReferenceDomain::new(cluster, keeper.clone()),
            )),
            _ => None,
        };
        let (registry, mut follower) = governance::start(
            config,
            store.as_ref(),
            ledger.clone(),
            serving.clone(),
            snapshot_handle,
            freshness.clone(),
            governance::Domains {
                gate: oversight.as_ref().map(|oversight| oversight.gate.clone()),
                others: {
                    let mut others: Vec<Arc<dyn crate::registry::shared::SharedDomain>> =
                        vec![risk_registers.domain()];
                    match &reference_domain {
                        Some(references) => others.push(references.clone()),
                        None if config.cluster.is_some() => others.push(Arc::new(
                            crate::cluster::references::UnusedReferences::new(ledger.clone()),
                        )),
                        None => {}
                    }
                    others
                },
            },
        )
        .await?;
        if let (Some(files), Some(oversight)) = (held_folder, &oversight) {
            oversight
                .gate
                .propose_at_start(files)
                .await
                .map_err(|err| match err {
                    crate::review::StartError::Ledger(err) => AppError::Append(err),
                    crate::review::StartError::Policy(err) => AppError::Policy(err),
                })?;
        }
        risk_registers.propose_at_start(&registry).await?;
        if let Some(found) = follower.take() {
            let metrics = crate::cluster::control::FleetMetrics::register(metrics.registry())?;
            follower = Some(found.with_metrics(metrics));
        }
        // A fleet's replicas share their reviews; this one applies the
        // verdicts given elsewhere on its own.
        if let (Some(cluster), Some(oversight)) = (&config.cluster, &oversight) {
            let store = crate::cluster::reviews::ReviewStore::new(cluster);
            oversight.queue.share(Arc::new(store)).await;
            follower = follower.map(|follower| follower.with_reviews(oversight.queue.clone()));
        }
        let tokens = Tokens::new(config.admin_tokens.clone());
        // People's tokens (`[admin.jwt]`); a `jwks_url` key set is kept by
        // a task `run` owns, like the public listener's.
        let (tokens, admin_jwks) = match &config.admin_jwt {
            Some(jwt) => tokens.with_people(jwt),
            None => (tokens, None),
        };
        let kpi_tokens = tokens.clone();
        // axum's own plain-text errors become JSON on the gateway's own
        // public routes too (not on the poll, which releases held answers).
        let mut public = crate::admin::json_rejections(reader::public_routes(reader.clone()));
        let mut own_tiles = None;
        match (&config.tiles, tiles) {
            (TilesConfig::Own { .. }, Some(tiles)) => own_tiles = Some(tiles),
            (_, Some(tiles)) => {
                public = public.merge(Router::new().nest(tiles::serve::PUBLIC_PREFIX, tiles));
            }
            (_, None) => {}
        }
        let eraser = Arc::new(erasure::Eraser::new(ledger.clone(), store.clone()));
        let retention = retention::Retention::new(
            config,
            eraser.clone(),
            store.clone(),
            ledger.clone(),
            metrics.registry(),
        )?
        .map(Arc::new);
        let console_tokens = tokens.clone();
        let console_receipts = reader::public_routes(reader.clone());
        let status = ledger.status();
        let metric_families = metrics.registry().clone();
        let mut admin = crate::admin::router(metrics)
            .merge(crate::admin::readiness_route(Arc::new(move || {
                status.check()?;
                match freshness.as_deref().and_then(Freshness::problem) {
                    Some(problem) => Err(crate::decision::NotReady::Replica(problem)),
                    None => Ok(()),
                }
            })))
            .merge(reader::admin_routes(reader))
            .merge(crate::admin::models::routes(
                registry.clone(),
                tokens.clone(),
                governance::default_risk(config),
            ))
            .merge(crate::admin::kpi_report::routes(
                tokens.clone(),
                kpi.clone(),
                kpi_snapshots
                    .as_ref()
                    .map(crate::kpi::KpiSnapshots::history),
                store.clone(),
                fleet_kpis.is_some(),
            ))
            .merge(crate::admin::verification::routes(tokens.clone(), monitor))
            .merge(crate::admin::decisions::routes(
                tokens.clone(),
                store.clone(),
            ))
            .merge(crate::admin::overview::routes(
                tokens.clone(),
                tally,
                metric_families,
                risk_registers.in_force(),
            ))
            .merge(crate::admin::export::routes(
                tokens.clone(),
                exports.clone(),
            ))
            .merge(crate::admin::reports::routes(
                tokens.clone(),
                reports.clone(),
            ))
            .merge(crate::admin::rotation::routes(
                tokens.clone(),
                Arc::new(rotation::Rotator {
                    ledger: ledger.clone(),
                    store: store.clone(),
                    key_file: config.ledger.key_file.clone(),
                    origin: config.ledger.origin.clone(),
                    history_key: keeper.as_ref().map_or_else(
                        || Arc::new(std::sync::Mutex::new(public_key)),
                        |keeper| keeper.public_key.clone(),
                    ),
                    busy: std::sync::Mutex::new(()),
                })
                .handler(),
            ))
            .merge(crate::admin::erasure::routes(
                tokens.clone(),
                eraser.clone().handler(),
                subject_key.clone(),
            ));
        let witness_task = witnessing.map(|(witnesses, task)| {
            admin =
                std::mem::take(&mut admin).merge(crate::witness::routes(witnesses, tokens.clone()));
            task
        });
        let mut gate = None;
        let reviews = oversight.as_ref().map(|oversight| oversight.queue.clone());
        if let Some(oversight) = &oversight {
            public = public.merge(proxy::poll_routes(oversight.queue.clone()));
            admin = admin.merge(crate::admin::reviews::routes(
                oversight.queue.clone(),
                oversight.gate.clone(),
                tokens.clone(),
            ));
            admin = admin.merge(crate::admin::policy_sets::routes(
                oversight.gate.clone(),
                tokens,
            ));
            gate = Some(oversight.gate.clone());
        }
        let mut feedback = None;
        if let Some(recorder) = &kpi {
            feedback = Some(crate::admin::json_rejections(crate::kpi::feedback_routes(
                recorder.clone(),
                ledger.clone(),
            )));
        }
        if let Some(keeper) = reference_keeper {
            admin = admin.merge(crate::admin::kpi::routes(
                kpi_tokens,
                keeper,
                registry.clone(),
                reference_domain,
            ));
        }
        // The console calls the admin API in process, as the person signed
        // in: the API as built so far, without the console itself.
        let console = crate::admin::console::Console::new(
            admin.clone(),
            console_receipts,
            console_tokens,
            config.server.admin_tls.is_some(),
        )
        .with_sign_in(
            config
                .admin_jwt
                .as_ref()
                .and_then(|jwt| jwt.sign_in.clone()),
        );
        admin = admin.merge(crate::admin::console::routes(console));
        let state = ProxyState::new(
            config,
            Arc::new(ledger.clone()),
            proxy_metrics,
            serving,
            oversight,
            kpi,
            subject_key,
        );
        if let Some(feedback) = feedback {
            // Labels move the fairness figures: their senders authenticate
            // as callers do.
            public = public.merge(proxy::with_senders(feedback, &state));
        }
        let jwks = state.take_jwks_fetcher();
        // Response ids learnt before this start resolve again: read back
        // (bounded) off the async workers.
        let responses = state.responses.clone();
        let responses_journal = {
            let index = responses.clone();
            let dir = config.server.data_dir.clone();
            match tokio::task::spawn_blocking(move || index.open_journal(&dir)).await {
                Ok(opened) => opened?,
                Err(err) => std::panic::resume_unwind(err.into_panic()),
            }
        };
        // The public listener says why, but not the store's own message
        // (paths, engine errors): that is on the admin listener's /readyz.
        let status = ledger.status();
        // Checked before every forward: the flag alone, not the reason
        // (a lock and a formatted string).
        state.set_readiness(Arc::new(move || {
            if status.is_committing() {
                Ok(())
            } else {
                Err(crate::decision::NotReady::LedgerStopped)
            }
        }));
        let backlog = state.backlog();
        let caps = listener::fit_to_descriptor_limit(Caps {
            public: config.limits.public_max_connections,
            admin: config.limits.admin_max_connections,
            tiles: match config.tiles {
                TilesConfig::Own {
                    max_connections, ..
                } => max_connections,
                _ => 0,
            },
        });
        for name in ["public", "admin"] {
            listener_metrics.expose_tls_reloads(name);
        }
        let client_auth = config.auth.mtls.as_ref().map(|mtls| listener::ClientAuth {
            roots: mtls.roots.clone(),
            required: mtls.required,
        });
        let public_tls = tls::listener_tls(
            "public",
            config.server.public_tls.as_ref(),
            client_auth.as_ref(),
        )?;
        let admin_tls = tls::listener_tls("admin", config.server.admin_tls.as_ref(), None)?;
        if admin_tls.is_none() && !config.server.admin_listen.ip().is_loopback() {
            tracing::warn!(
                addr = %config.server.admin_listen,
                "the admin listener speaks plain HTTP on a non-loopback address: admin tokens and approvals cross the network in clear; set [server.admin_tls]"
            );
        }
        let settings = |name, max_connections, tls: Option<&tls::Reloading>| listener::Settings {
            name,
            max_connections,
            header_read_timeout: config.timeouts.header_read,
            keep_alive_idle: config.timeouts.keep_alive_idle,
            max_header_bytes: config.limits.max_header_bytes,
            max_headers: config.limits.max_headers,
            half_close: config.server.half_close,
            tls: tls.map(|reloading| reloading.tls.clone()),
            http2: listener::Http2 {
                max_concurrent_streams: config.server.http2.max_concurrent_streams,
                initial_stream_window: config.server.http2.initial_stream_window,
                initial_connection_window: config.server.http2.initial_connection_window,
                max_frame_size: config.server.http2.max_frame_size,
                keep_alive_interval: config.server.http2.keep_alive_interval,
                keep_alive_timeout: config.server.http2.keep_alive_timeout,
            },
        };
        Ok(App {
            backlog,
            public: proxy::router(state).merge(public),
            admin: crate::admin::with_json_errors(admin),
            public_listener: settings("public", caps.public, public_tls.as_ref()),
            admin_listener: settings("admin", caps.admin, admin_tls.as_ref()),
            tiles: own_tiles.map(|router| {
                (
                    crate::admin::with_json_errors(router),
                    settings("tiles", caps.tiles, None),
                )
            }),
            listener_metrics,
            ledger,
            writer,
            shutdown_grace: config.timeouts.shutdown_grace,
            keeper,
            policies: gate,
            witnessing: witness_task,
            verification,
            retention,
            tls: public_tls.into_iter().chain(admin_tls).collect(),
            exports,
            reports,
            eraser,
            reviews,
            registry,
            jwks,
            admin_jwks,
            risks: Some(risks),
            kpi_snapshots,
            priming,
            responses,
            responses_journal: Some(responses_journal),
            cluster: None,
            follower,
            fleet_kpis,
            kpi_task,
        })
    }

    /// Whether the tiles have a listener of their own (`tiles.listen`),
    /// which [`App::run`] then needs.
    pub fn wants_tiles_listener(&self) -> bool {
        self.tiles.is_some()
    }

    /// Serves on already-bound listeners (`tiles`: the tiles' own, when
    /// [`App::wants_tiles_listener`]) until `shutdown` resolves, then
    /// drains (at most the grace period, then the connections left are
    /// cut), records `gateway_stopped` and waits for the ledger writer to
    /// finish.
    pub async fn run(
        mut self,
        public: TcpListener,
        admin: TcpListener,
        tiles: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            // Either a `true` or a dropped sender means stop.
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let public_server = listener::serve(
            public,
            self.public,
            self.public_listener,
            self.listener_metrics.clone(),
            stopped(stop_rx.clone()),
        );
        let admin_server = listener::serve(
            admin,
            self.admin,
            self.admin_listener,
            self.listener_metrics.clone(),
            stopped(stop_rx.clone()),
        );
        let mut public_task = tokio::spawn(public_server);
        let policy_gate = self.policies.take();
        if let Some(gate) = &policy_gate {
            gate.reload_on_sighup();
        }
        let mut admin_task = tokio::spawn(admin_server);
        let tiles_server = match (tiles, self.tiles.take()) {
            (Some(tiles), Some((router, settings))) => Some(listener::serve(
                tiles,
                router,
                settings,
                self.listener_metrics.clone(),
                stopped(stop_rx.clone()),
            )),
            _ => None,
        };
        // Without a listener of its own, a task that waits for shutdown,
        // so the select and the drain below treat all three alike.
        let tiles_stopped = stopped(stop_rx.clone());
        let mut tiles_task = tokio::spawn(async move {
            match tiles_server {
                Some(server) => server.await,
                None => tiles_stopped.await,
            }
        });
        // The key's history record follows the log while it runs (a crash
        // then leaves it at most one interval behind), off the commit path.
        let keeper_task = self.keeper.take().map(|keeper| {
            let stop = stopped(stop_tx.subscribe());
            tokio::spawn(keep_history(keeper, stop))
        });

        // Witnessing runs beside the listeners and stops with them (an
        // unfinished round is dropped: a witness keeps its state either way).
        let witness_task = self.witnessing.take().map(|task| {
            let stop = stopped(stop_tx.subscribe());
            tokio::spawn(task.run(stop))
        });

        let tls_task = tokio::spawn(tls::reload_certificates(
            std::mem::take(&mut self.tls),
            self.listener_metrics.clone(),
            stopped(stop_tx.subscribe()),
        ));

        // The issuer's key set, fetched beside the listeners; a fetch in
        // progress is dropped at shutdown.
        let jwks_task = self.jwks.take().map(|fetcher| {
            let stop = stopped(stop_tx.subscribe());
            tokio::spawn(tracing::Instrument::instrument(
                fetcher.run(stop),
                tracing::info_span!("jwks"),
            ))
        });
        let admin_jwks_task = self.admin_jwks.take().map(|fetcher| {
            let stop = stopped(stop_tx.subscribe());
            tokio::spawn(tracing::Instrument::instrument(
                fetcher.run(stop),
                tracing::info_span!("admin_jwks"),
            ))
        });

        // Owns a ledger handle: awaited before the writer closes. A run in
        // progress finishes first.
        let retention_task = self.retention.take().map(|retention| {
            let stop = stopped(stop_tx.subscribe());
            tokio::spawn(retention.run(stop))
        });

        // Owns a ledger handle: awaited before the writer closes. Looks
        // once more when told to stop.
        let outage_task = tokio::spawn(tracing::Instrument::instrument(
            outages::record_outages(self.ledger.clone(), stopped(stop_tx.subscribe())),
            tracing::info_span!("ledger_outages"),
        ));

        // Owns a ledger handle: awaited before the writer closes.
        let risk_task = self.risks.take().map(|task| {
            let stop = stopped(stop_tx.subscribe());
            tokio::spawn(tracing::Instrument::instrument(
                task.run(stop),
                tracing::info_span!("risks"),
            ))
        });
        // Owns a ledger handle: awaited before the writer closes.
        let verification_task = {
            let Verification { monitor, store } = self.verification;
            tokio::spawn(monitor.run(store, self.ledger.clone(), stopped(stop_tx.subscribe())))
        };

        // Stopped after the requests drained, so the `stop` snapshot holds
        // their rows; owns a ledger handle, so awaited before the writer closes.
        let (snapshots_stop, snapshots_stopped) = tokio::sync::oneshot::channel::<()>();
        let snapshot_task = self.kpi_snapshots.take().map(|task| {
            tokio::spawn(tracing::Instrument::instrument(
                task.run(async move {
                    let _ = snapshots_stopped.await;
                }),
                tracing::info_span!("kpi_snapshots"),
            ))
        });
        let stop_snapshots = |task: Option<tokio::task::JoinHandle<()>>| async move {
            let _ = snapshots_stop.send(());
            if let Some(task) = task
                && task.await.is_err()
            {
                tracing::error!("the KPI snapshot task panicked");
            }
        };

        // Reads the store: stopped and awaited before it closes.
        let priming_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let priming_task = self.priming.spawn(priming_stop.clone());
        let stop_priming = |task: tokio::task::JoinHandle<()>| async move {
            priming_stop.store(true, std::sync::atomic::Ordering::Relaxed);
            if task.await.is_err() {
                tracing::error!("the decision tally's scan panicked");
            }
        };

        // Applies the fleet's control events into the registry (whose
        // entries need the ledger): stopped once the requests drained.
        let (follower_stop, follower_stopped) = tokio::sync::oneshot::channel::<()>();
        let follower_task = self.follower.take().map(|follower| {
            tokio::spawn(tracing::Instrument::instrument(
                follower.run(async move {
                    let _ = follower_stopped.await;
                }),
                tracing::info_span!("control"),
            ))
        });
        let stop_follower = |task: Option<tokio::task::JoinHandle<()>>| async move {
            let _ = follower_stop.send(());
            if let Some(task) = task
                && task.await.is_err()
            {
                tracing::error!("the fleet's control follower panicked");
            }
        };

        // The fleet's KPIs: the reader stops with the follower, once the
        // requests drained; the writer once the `stop` snapshot showed the
        // aggregator has taken every answer in (so their rows are queued),
        // then writes what is queued (bounded).
        let (feed_reader_stop, feed_reader_stopped) = tokio::sync::oneshot::channel::<()>();
        let (feed_writer_stop, feed_writer_stopped) = tokio::sync::oneshot::channel::<()>();
        let fleet_kpi_tasks = self.fleet_kpis.take().map(|FleetKpis { writer, reader }| {
            let reader = tokio::spawn(tracing::Instrument::instrument(
                reader.run(async move {
                    let _ = feed_reader_stopped.await;
                }),
                tracing::info_span!("fleet_kpi_reader"),
            ));
            let writer = tokio::spawn(tracing::Instrument::instrument(
                writer.run(async move {
                    let _ = feed_writer_stopped.await;
                }),
                tracing::info_span!("fleet_kpi_writer"),
            ));
            (reader, writer)
        });
        let stop_fleet_kpis = |tasks: Option<(
            tokio::task::JoinHandle<()>,
            tokio::task::JoinHandle<()>,
        )>| async move {
            let _ = feed_reader_stop.send(());
            let _ = feed_writer_stop.send(());
            if let Some((reader, writer)) = tasks {
                if reader.await.is_err() {
                    tracing::error!("the fleet KPI feed's reader panicked");
                }
                if writer.await.is_err() {
                    tracing::error!("the fleet KPI feed's writer panicked");
                }
            }
        };

        // Renews the replica id's claim; gives it up once told to stop,
        // after the requests drained.
        let (cluster_stop, cluster_stopped) = tokio::sync::oneshot::channel::<()>();
        let cluster_task = self.cluster.take().map(|membership| {
            tokio::spawn(tracing::Instrument::instrument(
                membership.run(async move {
                    let _ = cluster_stopped.await;
                }),
                tracing::info_span!("cluster"),
            ))
        });
        let stop_cluster = |task: Option<tokio::task::JoinHandle<()>>| async move {
            let _ = cluster_stop.send(());
            if let Some(task) = task
                && task.await.is_err()
            {
                tracing::error!("the fleet membership task panicked");
            }
        };

        // Blocking file writes; ends once the journal is closed.
        let journal_task = self
            .responses_journal
            .take()
            .map(|writer| tokio::task::spawn_blocking(move || writer.run()));
        let responses = self.responses.clone();
        let stop_journal = |task: Option<tokio::task::JoinHandle<()>>| async move {
            responses.close_journal();
            if let Some(task) = task
                && task.await.is_err()
            {
                tracing::error!("the response id journal's writer panicked");
            }
        };

        let early_exit = tokio::select! {
            () = shutdown => None,
            _ = &mut public_task => Some("public"),
            _ = &mut admin_task => Some("admin"),
            _ = &mut tiles_task => Some("tiles"),
        };
        // A listener loop that ended by itself (it panicked) stops the
        // gateway the same way as a signal: the other listeners drain, the
        // backlog is written and gateway_stopped is recorded.
        if let Some(which) = early_exit {
            tracing::error!(
                listener = which,
                "a listener stopped unexpectedly; stopping"
            );
        }
        // The one that ended was awaited by the select: it must not be
        // awaited again (a join handle polled after it completed panics).
        let mut listeners = [
            ("public", public_task),
            ("admin", admin_task),
            ("tiles", tiles_task),
        ];
        let _ = stop_tx.send(true);
        // An export in progress breaks off now (its client sees an
        // incomplete archive) rather than hold the drain for the grace.
        self.exports.stop();
        // A report job stops at its next chunk and records nothing.
        self.reports.stop();
        // An erasure stops at its next group (erasing again finishes it).
        self.eraser.stop();
        // No SIGHUP reload starts from now on.
        if let Some(gate) = &policy_gate {
            gate.stop();
        }
        // A hold's deadline passing from now on times out at the next
        // start, not after gateway_stopped.
        if let Some(reviews) = &self.reviews {
            reviews.stop();
        }
        if let Some(task) = witness_task {
            let _ = task.await;
        }
        let _ = tls_task.await;
        if let Some(task) = jwks_task {
            let _ = task.await;
        }
        if let Some(task) = admin_jwks_task {
            let _ = task.await;
        }
        if let Some(task) = retention_task
            && task.await.is_err()
        {
            tracing::error!("the payload retention task panicked");
        }
        if outage_task.await.is_err() {
            tracing::error!("the ledger outage task panicked");
        }
        // Stops between rounds: its entries are in before the ledger closes.
        if let Some(task) = risk_task
            && task.await.is_err()
        {
            tracing::error!("the risk evaluation task panicked");
        }
        tracing::info!(grace = ?self.shutdown_grace, "shutting down: draining in-flight requests");
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            for (which, task) in &mut listeners {
                if early_exit != Some(*which) {
                    let _ = task.await;
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("grace period over; remaining requests are cut");
            // Dropping a listener's loop aborts its connection tasks.
            // A loop the drain already saw end must not be awaited again.
            for (_, task) in listeners {
                task.abort();
                if !task.is_finished() {
                    let _ = task.await;
                }
            }
        }
        // No request is left to learn a response id.
        stop_journal(journal_task).await;
        stop_follower(follower_task).await;
        // Records of requests that ended while the ledger could not take
        // them (or whose client left) are written before the log closes.
        self.backlog.drain(self.shutdown_grace).await;
        // The backlog holds a handle on the ledger; the writer closes once
        // every handle is gone.
        drop(self.backlog);
        stop_snapshots(snapshot_task).await;
        stop_fleet_kpis(fleet_kpi_tasks).await;
        // The `stop` snapshot and the fleet's reader were its last readers.
        if let Some(task) = self.kpi_task {
            task.stop().await;
        }
        // Told to stop with the listeners; a round in progress stops at
        // its next chunk.
        if verification_task.await.is_err() {
            tracing::error!("the ledger verification task panicked");
        }
        // Their threads read the store: ended before it closes.
        self.exports.drained().await;
        self.reports.drained().await;
        // Its entries come before gateway_stopped; its handle on the
        // ledger goes before the writer closes.
        self.eraser.drained().await;
        drop(self.eraser);
        // Registry commands, KPI uploads, policy changes and review
        // verdicts run as tasks a client going away does not cancel: those
        // under way finish, their entries before gateway_stopped.
        let commands = async {
            self.registry.drained().await;
            if let Some(gate) = &policy_gate {
                gate.drained().await;
            }
            if let Some(reviews) = &self.reviews {
                reviews.drained().await;
            }
        };
        if tokio::time::timeout(self.shutdown_grace, commands)
            .await
            .is_err()
        {
            tracing::warn!("grace period over; admin commands still under way are cut");
        }
        drop(policy_gate);
        drop(self.registry);
        // Its handle on the ledger, too (its timers have ended).
        drop(self.reviews);
        stop_priming(priming_task).await;
        if let Err(err) = self.ledger.append(EntryBody::GatewayStopped).await {
            tracing::error!(error = %err, "gateway_stopped not recorded");
        }
        drop(self.ledger);
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.close()).await;
        let keeper = match keeper_task {
            Some(task) => task.await.ok(),
            None => None,
        };
        if let Some(keeper) = keeper
            && let Err(err) = save_history(keeper).await
        {
            tracing::error!(error = %err, "the signing key's history record not updated");
        }
        stop_cluster(cluster_task).await;
        tracing::info!("stopped");
        match early_exit {
            Some(which) => Err(AppError::Serve { which }),
            None => Ok(()),
        }
    }
}

/// How often a running gateway rewrites the key's history record.
const HISTORY_INTERVAL: Duration = Duration::from_secs(30);

/// Rewrites the key's history record every [`HISTORY_INTERVAL`] until
/// `stop`; gives the keeper back for the record written at shutdown.
async fn keep_history(
    keeper: Arc<HistoryKeeper>,
    stop: impl Future<Output = ()> + Send,
) -> Arc<HistoryKeeper> {
    let mut stop = std::pin::pin!(stop);
    let mut ticks = tokio::time::interval(HISTORY_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the record was just written at start.
    ticks.tick().await;
    loop {
        tokio::select! {
            () = &mut stop => return keeper,
            _ = ticks.tick() => {}
        }
        if let Err(err) = save_history(keeper.clone()).await {
            tracing::warn!(error = %err, "the signing key's history record not updated");
        }
    }
}

/// Writes the key's history record off the async workers; gives the
/// keeper back.
async fn save_history(keeper: Arc<HistoryKeeper>) -> Result<Arc<HistoryKeeper>, AppError> {
    let path = keeper.path.clone();
    tokio::task::spawn_blocking(move || keeper.save().map(|()| keeper))
        .await
        .map_err(|_| HistoryError::File {
            path,
            reason: "the record's writer panicked".to_owned(),
        })?
        .map_err(AppError::History)
}

/// Checks the signing key's history against `store` before anything is
/// written (refusing a second history under a recorded origin); a new
/// origin's first entry cites the previous log's last checkpoint.
async fn start_history(
    config: &Config,
    store: &Arc<dyn LedgerStore>,
    history: History,
    first: &mut Option<EntryBody>,
) -> Result<HistoryKeeper, AppError> {
    let public_key = config.ledger.signing_key.verifying_key().to_bytes();
    let origin = config.ledger.origin.clone();
    let checking = store.clone();
    let path = history.path.clone();
    let start = tokio::task::spawn_blocking(move || {
        history::check_start(
            checking.as_ref(),
            history.record,
            &public_key,
            &origin,
            &path,
        )
    })
    .await
    .map_err(|_| HistoryError::File {
        path: history.path.clone(),
        reason: "the check panicked".to_owned(),
    })??;
    let mut left_origins = Vec::new();
    match start {
        history::Start::Unrecorded => {}
        history::Start::Continues(record) => {
            left_origins = record.left_origins;
            if record.origin != config.ledger.origin {
                left_origins.push(record.origin);
            }
        }
        history::Start::NewOrigin(record) => {
            let why = format!(
                "the signing key's log under `{}` (size {}) is not in this store; \
                 this log continues under a new origin",
                record.origin, record.size
            );
            match first {
                Some(EntryBody::LedgerRestarted {
                    previous_checkpoint,
                    ..
                }) => *previous_checkpoint = Some(record.checkpoint.clone()),
                _ => {
                    *first = Some(EntryBody::LedgerRestarted {
                        damaged_store: None,
                        reason: why,
                        previous_checkpoint: Some(record.checkpoint.clone()),
                    });
                }
            }
            left_origins = record.left_origins;
            left_origins.push(record.origin);
        }
    }
    Ok(HistoryKeeper {
        path: history.path,
        store: store.clone(),
        public_key: Arc::new(std::sync::Mutex::new(public_key)),
        origin: config.ledger.origin.clone(),
        left_origins,
    })
}

/// Gives the aggregator the drift references uploaded before this start.
/// One that no longer parses (the configuration changed) is logged and
/// skipped: the version then takes its first rows as reference.
async fn restore_references(
    recorder: &crate::kpi::KpiRecorder,
    files: &crate::kpi::ReferenceFiles,
    models: &std::collections::HashMap<String, crate::config::KpiConfig>,
) {
    let stored = match files.load_all() {
        Ok(stored) => stored,
        Err(err) => {
            tracing::error!(error = %err, "cannot read the stored drift references");
            return;
        }
    };
    for crate::kpi::StoredReference {
        model,
        version,
        format,
        bytes,
    } in stored
    {
        let Some(config) = models.get(&model) else {
            continue;
        };
        let restored = match crate::kpi::parse_reference(config, format, &bytes) {
            Ok(rows) => {
                // The digest its `kpi_reference_set` entry recorded.
                let upload = crate::kpi::ReferenceUpload {
                    sha256: crate::ledger::entry::hex(&<sha2::Sha256 as sha2::Digest>::digest(
                        &bytes,
                    )),
                    seq: None,
                };
                recorder.set_reference(&model, &version, rows, upload).await
            }
            Err(problem) => Err(problem),
        };
        match restored {
            Ok(()) => tracing::info!(%model, %version, "drift reference restored"),
            Err(problem) => {
                tracing::error!(%model, %version, %problem, "stored drift reference not used")
            }
        }
    }
}

/// Binds a listener; a failure names `key`, the config key or flag that
/// sets its address.
pub async fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr).await.map_err(|cause| {
        let hint = match cause.kind() {
            std::io::ErrorKind::AddrInUse => {
                format!("stop what listens there, or set {key} to a free address")
            }
            _ => format!("set {key} to an address this process may listen on"),
        };
        AppError::Bind {
            addr,
            key,
            cause,
            hint,
        }
    })
}
