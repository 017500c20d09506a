//! Upstream client choice: hyper-util's pooled legacy client (what the
//! proxy uses) against reqwest, both configured as the proxy needs them
//! (HTTP/1.1, keep-alive pool, no redirects, no system proxy, no
//! decompression), sending small POSTs to a local server on loopback.
//!
//! Run: `cargo bench --bench upstream_client`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use tokio::runtime::Runtime;

const BODY: &str =
    r#"{"inputs":[{"name":"features","shape":[1,3],"datatype":"FP32","data":[45,1500,12]}]}"#;
const CONCURRENT: usize = 32;

fn start_server(runtime: &Runtime) -> SocketAddr {
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(|body: Bytes| async move { body });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    })
}

fn hyper_client() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .build()
        .unwrap()
}

async fn via_hyper(client: &Client<HttpConnector, Full<Bytes>>, url: &str) -> usize {
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .len()
}

async fn via_reqwest(client: &reqwest::Client, url: &str) -> usize {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .await
        .unwrap();
    response.bytes().await.unwrap().len()
}

fn upstream_client(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = start_server(&runtime);
    let url = format!("http://{addr}/v2/models/m/infer");
    let hyper = hyper_client();
    let reqwest = reqwest_client();

    let mut group = c.benchmark_group("upstream_client");
    group.bench_function("hyper_util/sequential", |b| {
        b.to_async(&runtime).iter(|| via_hyper(&hyper, &url));
    });
    group.bench_function("reqwest/sequential", |b| {
        b.to_async(&runtime).iter(|| via_reqwest(&reqwest, &url));
    });
    group.bench_function(format!("hyper_util/concurrent_{CONCURRENT}"), |b| {
        b.to_async(&runtime).iter(|| async {
            let calls = (0..CONCURRENT).map(|_| via_hyper(&hyper, &url));
            futures_util::future::join_all(calls).await
        });
    });
    group.bench_function(format!("reqwest/concurrent_{CONCURRENT}"), |b| {
        b.to_async(&runtime).iter(|| async {
            let calls = (0..CONCURRENT).map(|_| via_reqwest(&reqwest, &url));
            futures_util::future::join_all(calls).await
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = upstream_client
}
criterion_main!(benches);
