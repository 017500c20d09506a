//! Wiring of the model-version registry: rebuilt from the ledger at start,
//! its snapshots published to the proxy, the versions the configuration
//! declares proposed if the registry lacks them.

use super::AppError;
use crate::config::{ApprovalConfig, ApprovalLevel, Config};
use crate::ledger::sequencer::Ledger;
use crate::ledger::store::LedgerStore;
use crate::proxy::{Serving, ServingTable};
use crate::registry::service::{
    RegistryService, ServiceError, last_control_seq, replay_from_store,
};
use crate::registry::shared::Freshness;
use crate::registry::{
    ApprovalPolicy, Command, PolicySet, Principal, RegistryError, RiskClass, Role, VersionSpec,
};
use std::collections::HashMap;
use std::sync::Arc;

/// The principal under which declared versions are proposed at start.
pub(super) const CONFIG_PRINCIPAL: &str = "govgate-config";

fn policy(level: &ApprovalLevel) -> ApprovalPolicy {
    ApprovalPolicy::new(level.approvers, level.required_roles.iter().cloned())
}

fn policy_set(config: &ApprovalConfig) -> PolicySet {
    PolicySet {
        default: policy(&config.default),
        high_risk: config.high_risk.as_ref().map(policy),
    }
}

/// The services besides the registry whose changes a fleet shares
/// through its control log.
pub(super) struct Domains {
    /// The policy gate (its sets are shared when under change control).
    pub(super) gate: Option<Arc<crate::review::PolicyGate>>,
    /// The other domains (the risk register's, drift references).
    pub(super) others: Vec<Arc<dyn crate::registry::shared::SharedDomain>>,
}

/// The registry service, with `serving` (and the KPI snapshots, when
/// there are any) following every change. In a fleet (`freshness` set
/// with `[cluster]`) it has applied every control event before it
/// returns (those of `domains`: the policy gate's, under change control,
/// and the risk register's), and the follower applying later ones comes
/// with it.
pub(super) async fn start(
    config: &Config,
    store: &dyn LedgerStore,
    ledger: Ledger,
    serving: Arc<Serving>,
    kpi_snapshots: Option<crate::kpi::SnapshotHandle>,
    freshness: Option<Arc<Freshness>>,
    domains: Domains,
) -> Result<
    (
        Arc<RegistryService>,
        Option<crate::cluster::control::Follower>,
    ),
    AppError,
> {
    let names = config.models.iter().map(|model| model.name.clone());
    let registry = replay_from_store(store, names).map_err(AppError::Registry)?;
    let models = config.models.clone();
    let on_change = Box::new(move |snapshot: Arc<crate::registry::Snapshot>| {
        serving.publish(ServingTable::from_registry(&models, &snapshot));
        // A serving version that changed gets a KPI snapshot citing the
        // entry that changed it.
        if let Some(handle) = &kpi_snapshots {
            handle.registry_changed(|model| snapshot.active_version(model), snapshot.last_seq());
        }
    });
    let policies: HashMap<String, PolicySet> = config
        .models
        .iter()
        .filter_map(|model| Some((model.name.clone(), policy_set(model.approval.as_ref()?))))
        .collect();
    let service = RegistryService::new(
        registry,
        ledger,
        policy_set(&config.approval),
        policies,
        on_change,
    );
    let mut follower = None;
    let service = match (&config.cluster, freshness) {
        (Some(cluster), Some(freshness)) => {
            let applied = last_control_seq(store).map_err(AppError::Registry)?;
            let log = crate::cluster::control::ControlLog::new(cluster);
            let mut service = service.with_shared_log(Arc::new(log), applied);
            // Policy sets under change control are the fleet's too.
            let governed = domains.gate.filter(|gate| gate.approval().is_some());
            match &governed {
                Some(gate) => {
                    service =
                        service.with_domain(Arc::new(crate::review::PolicyDomain(gate.clone())));
                }
                // Skipping another replica's policy-set changes would leave
                // the fleet's sets and this replica's apart.
                None => {
                    service = service.with_refused_kinds(
                        &crate::review::change::CHANGE_KINDS,
                        "another replica changes policy sets under `review.policy_approval`, this \
                         one has none (`\"none\"` or absent): give every replica the same \
                         [review] policy_approval and policies",
                    );
                }
            }
            // The risk register's, and the other shared domains'.
            for domain in domains.others {
                service = service.with_domain(domain);
            }
            let service = Arc::new(service);
            if let Some(gate) = &governed {
                let proposals =
                    crate::review::recorded_proposals(store).map_err(AppError::Registry)?;
                gate.join_fleet(&service, proposals);
            }
            // A replica joining late is as current as the fleet before it serves.
            service.follow().await.map_err(AppError::CatchUp)?;
            freshness.synced();
            follower = Some(crate::cluster::control::Follower::new(
                cluster,
                service.clone(),
                freshness,
            ));
            service
        }
        _ => Arc::new(service),
    };
    propose_declared(config, &service).await?;
    Ok((service, follower))
}

/// The declared versions whose risk class the configuration leaves to
/// its default, for the admin API to say so.
pub(super) fn default_risk(config: &Config) -> crate::admin::models::DefaultRisk {
    config
        .models
        .iter()
        .flat_map(|model| {
            model
                .versions
                .iter()
                .filter(|version| version.risk_class_default)
                .map(|version| (model.name.clone(), version.version.clone()))
        })
        .collect()
}

/// Proposes every declared version the registry does not know yet.
/// Approval only ever happens through an authenticated admin call.
async fn propose_declared(config: &Config, service: &Arc<RegistryService>) -> Result<(), AppError> {
    let by = Principal::new(CONFIG_PRINCIPAL, vec![Role::Proposer]);
    for model in &config.models {
        for version in &model.versions {
            let registered = service
                .read(|registry| {
                    registry
                        .version(&model.name, &version.version)
                        .map(|record| record.spec.upstream.clone())
                })
                .await;
            if let Some(upstream) = registered {
                // What was approved is what serves: a changed config does
                // not change a registered version.
                if upstream != version.upstream.to_string() {
                    tracing::warn!(
                        model = %model.name,
                        version = %version.version,
                        registered = %upstream,
                        configured = %version.upstream,
                        "the configuration names another upstream for a registered version; the registered one serves (propose a new version to change it)"
                    );
                }
                continue;
            }
            let spec = VersionSpec {
                upstream: version.upstream.to_string(),
                upstream_model: version.upstream_model.clone(),
                artifact_digest: version.artifact_digest.clone(),
                // INVARIANT: config checked the name; `High` is the safe side anyway.
                risk_class: RiskClass::parse(&version.risk_class).unwrap_or(RiskClass::High),
                change_ref: version.change_ref.clone(),
                description: version.description.clone(),
            };
            let command = Command::Propose {
                model: model.name.clone(),
                version: version.version.clone(),
                spec,
                reason: Some("declared in the configuration".to_owned()),
            };
            match service.execute(command, by.clone()).await {
                Ok(_) => {}
                // In a fleet, a replica starting at the same time came first.
                Err(ServiceError::Refused(RegistryError::AlreadyExists { .. }))
                    if config.cluster.is_some() =>
                {
                    continue;
                }
                Err(err) => return Err(AppError::Propose(err)),
            }
            tracing::info!(model = %model.name, version = %version.version, "declared version proposed; it needs approval before it serves");
        }
    }
    Ok(())
}
