//! The `kpi_snapshot` members: the report's figures unchanged while they
//! fit, and a sealed entry below 64 KiB however many groups, features and
//! versions there are.

use super::*;
use crate::config::KpiConfig;
use crate::decision::PayloadMode;
use crate::kpi::report::{self, ReferenceSource};
use crate::kpi::{
    Class, DriftWindow, FairnessSpec, FairnessWindow, FeatureValue, NumericReference, Reference,
    Row,
};
use crate::ledger::entry::{EntryBody, seal};

fn config() -> KpiConfig {
    KpiConfig {
        window: 100_000,
        min_group_size: 2,
        max_groups: 1000,
        reference_rows: 100,
        snapshot_every: Some(Duration::from_secs(60)),
        ..crate::kpi::tests::score_kpi()
    }
}

/// A report of `attributes` x `groups` groups (each with 3 rows, some
/// labeled) and `versions` x `features` numeric features with KS bins.
fn report(attributes: usize, groups: usize, versions: usize, features: usize) -> KpiReport {
    let mut fairness = FairnessWindow::new(FairnessSpec {
        attributes: (0..attributes).map(|a| format!("attribute_{a}")).collect(),
        window: 100_000,
        min_group_size: 2,
        max_groups: 1000,
    })
    .unwrap();
    for g in 0..groups {
        for r in 0..3 {
            // A few groups have a single row: ineligible.
            if r > 0 && g % 7 == 0 {
                continue;
            }
            let predicted = if (g + r) % 2 == 0 {
                Class::Positive
            } else {
                Class::Negative
            };
            let label = (r != 2).then_some(if r == 0 {
                Class::Positive
            } else {
                Class::Negative
            });
            fairness
                .push(&Row {
                    groups: (0..attributes)
                        .map(|a| Some(format!("group-{a}-{g:05}")))
                        .collect(),
                    predicted,
                    label,
                    features: Vec::new(),
                })
                .unwrap();
        }
    }
    let sample: Vec<f64> = (0..1000).map(|i| f64::from(i) * 1.37).collect();
    let drift = (0..versions)
        .map(|v| {
            let mut window = DriftWindow::new(
                (0..features)
                    .map(|f| {
                        (
                            format!("feature_{f}"),
                            Reference::Numeric(NumericReference::new(&sample).unwrap()),
                        )
                    })
                    .collect(),
                1000,
            )
            .unwrap();
            for i in 0..200 {
                window
                    .push(&Row {
                        groups: Vec::new(),
                        predicted: Class::Positive,
                        label: None,
                        features: vec![FeatureValue::Number(f64::from(i) * 3.1); features],
                    })
                    .unwrap();
            }
            report::with_window(
                &format!("v{v}"),
                ReferenceSource::FirstRows,
                1000,
                &window.snapshot(),
            )
        })
        .collect();
    KpiReport {
        model: "scorer".to_owned(),
        settings: report::settings(&config()),
        fairness: report::fairness(&fairness.snapshot()),
        drift,
    }
}

/// The canonical bytes of the whole entry, as the ledger seals it.
fn sealed_len(members: &Map<String, Value>) -> usize {
    let body = EntryBody::Governance {
        kind: "kpi_snapshot",
        members: members.clone(),
    };
    seal(
        u64::MAX / 2,
        std::time::SystemTime::now(),
        "a.long.origin.example/with/a/path/of/some/length",
        &[7; 32],
        &body,
        PayloadMode::None,
        None,
    )
    .unwrap()
    .canonical
    .len()
}

#[test]
fn a_small_snapshot_carries_the_report_unchanged() {
    let report = report(2, 3, 1, 2);
    let trigger = Trigger::VersionChange {
        cause_seq: 12,
        previous: Some("1".to_owned()),
    };
    let members = members(
        &report,
        &trigger,
        Some("2"),
        Some(Duration::from_secs(60)),
        MAX_MEMBERS_BYTES,
    );
    assert_eq!(members["model"], "scorer");
    assert_eq!(members["trigger"], "version_change");
    assert_eq!(members["cause_seq"], 12);
    assert_eq!(members["previous_version"], "1");
    assert_eq!(members["serving_version"], "2");
    assert_eq!(members["settings"]["snapshot_every_secs"], 60);
    assert_eq!(members["settings"]["min_group_size"], 2);
    assert_eq!(members["fairness"], json!(report.fairness));
    assert_eq!(members["drift"], json!(report.drift));
    assert_eq!(members["omitted"], json!([]));
    // KS bins are there while they fit.
    assert_eq!(
        members["drift"][0]["features"][0]["ks"]["window_counts"]
            .as_array()
            .map(Vec::len),
        Some(100)
    );
    let interval = super::members(&report, &Trigger::Interval, None, None, MAX_MEMBERS_BYTES);
    assert!(interval.get("cause_seq").is_none());
    assert_eq!(interval["serving_version"], Value::Null);
    assert_eq!(interval["settings"]["snapshot_every_secs"], 0);
}

#[test]
fn many_features_lose_their_ks_bins_first() {
    let report = report(1, 4, 3, 20);
    let members = members(&report, &Trigger::Stop, Some("v0"), None, MAX_MEMBERS_BYTES);
    assert_eq!(members["omitted"], json!(["ks_bins"]));
    let feature = &members["drift"][2]["features"][19];
    assert!(feature["ks"].get("window_counts").is_none(), "{feature}");
    assert_eq!(
        feature["ks"]["statistic"],
        json!(report.drift[2].features[19].ks.as_ref().unwrap().statistic)
    );
    assert_eq!(feature["window_counts"].as_array().map(Vec::len), Some(10));
    assert!(sealed_len(&members) < 65_536);
}

#[test]
fn many_groups_are_capped_eligible_and_largest_first() {
    let report = report(4, 1000, 2, 5);
    let members = members(&report, &Trigger::Interval, None, None, MAX_MEMBERS_BYTES);
    assert_eq!(members["omitted"], json!(["ks_bins", "groups"]));
    assert!(sealed_len(&members) < 65_536, "{}", sealed_len(&members));
    let attribute = &members["fairness"]["attributes"][0];
    let kept = attribute["groups"].as_array().unwrap();
    assert!(!kept.is_empty() && kept.len() < 1000);
    // Ineligible groups (a single row) are dropped before eligible ones.
    assert!(kept.iter().all(|g| g["eligible"] == true));
    assert_eq!(
        attribute["groups_omitted"].as_u64().unwrap() + kept.len() as u64,
        1000
    );
    let kept_rows: u64 = kept.iter().map(|g| g["rows"].as_u64().unwrap()).sum();
    assert_eq!(
        kept_rows + attribute["rows_omitted"].as_u64().unwrap(),
        members["fairness"]["rows_in_window"].as_u64().unwrap()
    );
    assert!(attribute["eligible_groups_omitted"].as_u64().unwrap() > 0);
    // Byte order, as in the report.
    let names: Vec<&str> = kept.iter().map(|g| g["group"].as_str().unwrap()).collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]));
    // The aggregates are the report's, over every eligible group.
    assert_eq!(
        attribute["demographic_parity_difference"],
        json!(report.fairness.attributes[0].demographic_parity_difference)
    );
}

#[test]
fn however_large_the_report_the_entry_fits_a_bundle() {
    for ((attributes, groups, versions, features), omitted) in [
        ((50, 300, 1, 1), json!(["ks_bins", "groups"])),
        // Groups are kept when leaving them out would not be enough.
        ((2, 10, 10, 30), json!(["ks_bins", "drift_bins"])),
        ((20, 40, 10, 30), json!(["ks_bins", "drift_bins", "groups"])),
        ((300, 3, 1, 1), json!(["ks_bins", "drift_bins", "figures"])),
    ] {
        let report = report(attributes, groups, versions, features);
        let members = members(&report, &Trigger::Stop, None, None, MAX_MEMBERS_BYTES);
        let len = sealed_len(&members);
        assert!(
            len < 65_536,
            "{attributes} x {groups}, {versions} x {features}: {len} bytes"
        );
        assert_eq!(
            members["omitted"], omitted,
            "{attributes} x {groups}, {versions} x {features}"
        );
        assert_eq!(
            members["fairness"]["rows_total"],
            json!(report.fairness.rows_total)
        );
    }
}

#[test]
fn a_replicas_snapshot_carries_the_fleets_figures_and_both_fit_a_bundle() {
    // Small: the fleet's figures as its report has them, beside the replica's.
    let own = report(1, 4, 1, 1);
    let fleet = report(2, 6, 1, 2);
    let members = members_with_fleet(
        &own,
        Some(&fleet),
        &Trigger::Interval,
        Some("1"),
        None,
        MAX_MEMBERS_BYTES,
    );
    assert_eq!(members["fairness"], json!(own.fairness));
    assert_eq!(members["fleet"]["fairness"], json!(fleet.fairness));
    assert_eq!(members["fleet"]["drift"], json!(fleet.drift));
    assert_eq!(members["fleet"]["omitted"], json!([]));
    assert_eq!(figures(&members)[2], Some(&members["fleet"]));
    // Without the fleet's, the members are a single gateway's.
    let single = members_with_fleet(
        &own,
        None,
        &Trigger::Interval,
        Some("1"),
        None,
        MAX_MEMBERS_BYTES,
    );
    assert_eq!(
        single,
        super::members(&own, &Trigger::Interval, Some("1"), None, MAX_MEMBERS_BYTES)
    );
    assert_eq!(figures(&single)[2], None);

    // Large: each half bounded the same way, the entry still fits.
    let own = report(50, 300, 1, 1);
    let fleet = report(50, 300, 1, 1);
    let members = members_with_fleet(
        &own,
        Some(&fleet),
        &Trigger::Stop,
        None,
        None,
        MAX_MEMBERS_BYTES,
    );
    let len = sealed_len(&members);
    assert!(len < 65_536, "{len} bytes");
    assert_eq!(members["omitted"], json!(["ks_bins", "groups"]));
    assert_eq!(members["fleet"]["omitted"], json!(["ks_bins", "groups"]));
    assert_eq!(
        members["fleet"]["fairness"]["rows_total"],
        json!(fleet.fairness.rows_total)
    );
}
