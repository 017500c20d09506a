//! Load for crash tests: clients sending KServe V2 calls round robin over
//! one or more gateways, keeping the decision id of every call answered
//! in full (only a complete answer counts as acknowledged). A call that
//! fails (its gateway killed) is counted and the client goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Load {
    answered: Arc<AtomicUsize>,
    clients: Vec<tokio::task::JoinHandle<Vec<(usize, String)>>>,
}

impl Load {
    /// `clients` clients, each sending `calls` calls to `urls` in turn.
    pub fn start(urls: &[String], clients: usize, calls: usize) -> Load {
        let answered = Arc::new(AtomicUsize::new(0));
        let clients = (0..clients)
            .map(|client_no| {
                let (urls, answered) = (urls.to_vec(), answered.clone());
                tokio::spawn(async move {
                    let client = hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .build(hyper_util::client::legacy::connect::HttpConnector::new());
                    let mut acknowledged = Vec::new();
                    for call in 0..calls {
                        let target = (client_no + call) % urls.len();
                        let request = http::Request::post(&urls[target])
                            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
                            .unwrap();
                        let Ok(response) = client.request(request).await else {
                            continue;
                        };
                        let id = response
                            .headers()
                            .get("govgate-decision-id")
                            .map(|v| v.to_str().unwrap().to_owned());
                        if http_body_util::BodyExt::collect(response.into_body())
                            .await
                            .is_err()
                        {
                            continue;
                        }
                        if let Some(id) = id {
                            answered.fetch_add(1, Ordering::SeqCst);
                            acknowledged.push((target, id));
                        }
                    }
                    acknowledged
                })
            })
            .collect();
        Load { answered, clients }
    }

    /// Waits until `answers` calls were answered in all (at most 30 s).
    pub async fn until(&self, answers: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.answered.load(Ordering::SeqCst) < answers && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for every client: each acknowledged call as (index of its
    /// gateway in `urls`, decision id).
    pub async fn finish(self) -> Vec<(usize, String)> {
        let mut acknowledged = Vec::new();
        for client in self.clients {
            acknowledged.extend(client.await.unwrap());
        }
        acknowledged
    }
}
