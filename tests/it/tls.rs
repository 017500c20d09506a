//! `https://` upstreams: trusted through `upstream_tls.ca_file`, refused
//! (502) when the certificate chains to no trusted root.

use crate::models;
use crate::support::{Gateway, TestUpstream, send};
use http::Method;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A private CA (PEM) and a server certificate for 127.0.0.1 signed by it.
pub(crate) fn private_ca() -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    (ca_cert.pem(), vec![server_cert.der().clone()], key)
}

#[tokio::test]
async fn https_upstream_is_served_when_its_ca_is_configured_and_refused_otherwise() {
    let (ca_pem, chain, key) = private_ca();
    let upstream = TestUpstream::start_tls(chain, key).await;
    let url = format!("https://127.0.0.1:{}", upstream.addr.port());
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let body = r#"{"inputs":[]}"#;

    let trusting = Gateway::start(&format!(
        "[upstream_tls]\nca_file = \"{}\"\n{}",
        ca_file.display(),
        models(&url)
    ))
    .await;
    let reply = send(
        Method::POST,
        &trusting.url("/v2/models/scorer/infer"),
        &[],
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body, body.as_bytes());
    assert_eq!(
        upstream.only_request().path_and_query,
        "/v2/models/scorer-two/infer"
    );

    let distrusting = Gateway::start(&models(&url)).await;
    let reply = send(
        Method::POST,
        &distrusting.url("/v2/models/scorer/infer"),
        &[],
        body,
    )
    .await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.error_code(), "upstream_unreachable");
    assert_eq!(
        upstream.seen().len(),
        1,
        "nothing was sent over the untrusted connection"
    );
}
