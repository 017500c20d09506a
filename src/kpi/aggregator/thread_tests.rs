//! The aggregator runs on a thread of its own: its parsing, selectors and
//! math take no async worker, and it answers while every worker is busy.

use super::*;
use crate::kpi::tests::{score_kpi, scorer};
use std::time::Duration;

fn observation(decision_id: &str) -> Observation {
    Observation {
        model: "scorer".to_owned(),
        version: "1".to_owned(),
        decision_id: decision_id.to_owned(),
        request: Bytes::from_static(b"{}"),
        response: Bytes::from_static(br#"{"score":0.9}"#),
        headers: Vec::new(),
    }
}

/// The runtime has one worker, and it stays blocked until another thread
/// has the report: an aggregator that ran on that worker would never
/// answer.
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_aggregator_answers_while_the_only_async_worker_is_blocked() {
    current_thread().block_on(async {
        let registry = Registry::new();
        let (recorder, task) = start(&[scorer(score_kpi())], &registry, None)
            .unwrap()
            .unwrap();
        recorder.observe(observation("d1"));
        recorder.observe(observation("d2"));
        let (answered, answer) = std::sync::mpsc::channel();
        let asking = recorder.clone();
        std::thread::spawn(move || {
            let _ = answered.send(current_thread().block_on(asking.report("scorer")));
        });
        // Blocks this runtime's only worker (no await until answered).
        let report = answer
            .recv_timeout(Duration::from_secs(10))
            .expect("the report is answered while the async worker is blocked")
            .expect("the model has KPIs");
        assert_eq!(report.fairness.rows_total, 2);
        assert_eq!(report.fairness.rows_in_window, 2);
        task.stop().await;
    });
}

/// Stopping ends the thread even with observations still queued, and the
/// recorders left over get no answer instead of waiting.
#[test]
fn stopping_ends_the_thread_and_later_asks_get_no_answer() {
    current_thread().block_on(async {
        let registry = Registry::new();
        let (recorder, task) = start(&[scorer(score_kpi())], &registry, None)
            .unwrap()
            .unwrap();
        for i in 0..QUEUE {
            recorder.observe(observation(&format!("d{i}")));
        }
        tokio::time::timeout(Duration::from_secs(10), task.stop())
            .await
            .expect("the aggregator stops");
        let later = tokio::time::timeout(Duration::from_secs(10), recorder.report("scorer"))
            .await
            .expect("a stopped aggregator answers at once");
        assert!(later.is_none());
    });
}
