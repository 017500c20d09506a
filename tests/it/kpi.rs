//! Fairness and drift KPIs through the real proxy.

use crate::models;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;

#[tokio::test]
async fn protected_attribute_headers_never_reach_the_upstream() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let reply = send(
        Method::POST,
        &gateway.url("/v2/models/scorer/infer"),
        &[
            ("x-govgate-attr-sex", "female"),
            ("X-Govgate-Attr-Age-Group", "young"),
            ("x-other", "kept"),
        ],
        "{}",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = upstream.only_request();
    assert!(
        seen.headers
            .keys()
            .all(|name| !name.as_str().starts_with("x-govgate-attr-")),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.headers["x-other"], "kept");
}
