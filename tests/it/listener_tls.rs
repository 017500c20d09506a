//! TLS on the gateway's own listeners (`[server.public_tls]`,
//! `[server.admin_tls]`): TLS 1.2 and 1.3 with ALPN, plain HTTP refused on
//! a TLS port, the certificate reloaded under traffic when its files
//! change or on SIGHUP, and a bad certificate at reload keeping the old one.

use crate::models;
use crate::support::{Gateway, TestUpstream};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::Digest;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A private CA that issues certificates for 127.0.0.1.
pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    pub(crate) pem: String,
}

impl Ca {
    pub(crate) fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            der: cert.der().clone(),
            pem: cert.pem(),
        }
    }

    /// Writes a new server certificate and key to `dir/server.crt` and
    /// `dir/server.key` (each replaced whole, by rename); returns the
    /// certificate.
    pub(crate) fn issue_into(&self, dir: &Path) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        replace(&dir.join("server.key"), key.serialize_pem().as_bytes());
        replace(&dir.join("server.crt"), cert.pem().as_bytes());
        cert.der().clone()
    }

    /// A client certificate whose only name is the URI `uri`, and its key.
    pub(crate) fn client_identity(
        &self,
        uri: &str,
    ) -> (
        CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        (cert.der().clone(), key)
    }

    /// A client that trusts `server_ca` and presents `identity`.
    pub(crate) fn client_with_roots_of(
        &self,
        server_ca: &Ca,
        identity: (
            CertificateDer<'static>,
            rustls::pki_types::PrivateKeyDer<'static>,
        ),
    ) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(server_ca.der.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![identity.0], identity.1)
        .unwrap();
        TlsConnector::from(Arc::new(config))
    }

    /// The CA's own certificate.
    pub(crate) fn der(&self) -> CertificateDer<'static> {
        self.der.clone()
    }

    pub(crate) fn client(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        // The exchanges here are HTTP/1.1 written by hand (HTTP/2 by ALPN:
        // tests/it/http2.rs).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Every connection a full handshake: a resumed session reports the
        // certificate of the session it resumes, not the one served now.
        config.resumption = rustls::client::Resumption::disabled();
        TlsConnector::from(Arc::new(config))
    }
}

fn replace(path: &Path, bytes: &[u8]) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, bytes).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

pub(crate) fn tls_section(table: &str, dir: &Path, reload_check_secs: u64) -> String {
    format!(
        "[server.{table}]\ncert_file = \"{}\"\nkey_file = \"{}\"\nreload_check_secs = {reload_check_secs}\n",
        dir.join("server.crt").display(),
        dir.join("server.key").display()
    )
}

fn addr_of(url: &str) -> String {
    url.split_once("://")
        .unwrap()
        .1
        .trim_end_matches('/')
        .to_owned()
}

pub(crate) async fn connect(connector: &TlsConnector, url: &str) -> TlsStream<TcpStream> {
    assert!(
        url.starts_with("https://"),
        "the ready line says https: {url}"
    );
    let tcp = TcpStream::connect(addr_of(url)).await.unwrap();
    connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

/// One HTTP/1.1 request on an open connection; the status and body of
/// its answer (read by its Content-Length).
async fn exchange(
    stream: &mut TlsStream<TcpStream>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn served_certificate(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[tokio::test]
async fn both_listeners_speak_tls_1_2_and_1_3_with_alpn_and_refuse_plain_http() {
    let upstream = TestUpstream::start().await;
    let ca = Ca::new();
    let certs = tempfile::tempdir().unwrap();
    let issued = ca.issue_into(certs.path());
    let gateway = Gateway::start_pending(
        &format!(
            "{}{}",
            tls_section("public_tls", certs.path(), 0),
            tls_section("admin_tls", certs.path(), 0)
        ),
        &models(&upstream.url()),
    )
    .await;

    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let connector = ca.client(versions);
        let mut admin = connect(&connector, &gateway.admin).await;
        let (status, body) = exchange(&mut admin, "GET", "/healthz", "").await;
        assert_eq!(status, 200, "{body}");
        let (status, metrics) = exchange(&mut admin, "GET", "/metrics", "").await;
        assert_eq!(
            status, 200,
            "a second request on the kept-alive TLS connection"
        );
        assert!(
            metrics.contains("govgate_connections_open{listener=\"admin\"} 1"),
            "{metrics}"
        );
        let session = admin.get_ref().1;
        assert_eq!(session.protocol_version(), Some(versions[0].version));
        assert_eq!(
            session.alpn_protocol(),
            Some(&b"http/1.1"[..]),
            "the client offered http/1.1 alone"
        );
        assert_eq!(served_certificate(&admin), issued);

        let mut public = connect(&connector, &gateway.public).await;
        // No version is active yet: the gateway's own refusal, over TLS.
        let (status, body) = exchange(
            &mut public,
            "POST",
            "/v2/models/scorer/infer",
            r#"{"inputs":[1]}"#,
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("model_version_not_approved"), "{body}");
    }

    // Plain HTTP on a TLS port: no answer in clear, the connection closes.
    let mut plain = TcpStream::connect(addr_of(&gateway.admin)).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer))
        .await
        .expect("the connection is closed");
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "answered in clear");
    let metrics = exchange(
        &mut connect(&ca.client(&[&rustls::version::TLS13]), &gateway.admin).await,
        "GET",
        "/metrics",
        "",
    )
    .await
    .1;
    assert!(
        metrics.contains(
            "govgate_connections_refused_total{listener=\"admin\",reason=\"tls_handshake\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_changed_certificate_is_served_to_new_connections_under_traffic_and_a_bad_one_is_not() {
    let upstream = TestUpstream::start().await;
    let ca = Ca::new();
    let certs = tempfile::tempdir().unwrap();
    let first = ca.issue_into(certs.path());
    // The admin listener stays plain so the test harness approves the
    // version; the public one reloads its files every second.
    let gateway = Gateway::start_with(
        &tls_section("public_tls", certs.path(), 1),
        &models(&upstream.url()),
    )
    .await;
    let connector = ca.client(&[&rustls::version::TLS13, &rustls::version::TLS12]);
    let mut kept = connect(&connector, &gateway.public).await;
    assert_eq!(served_certificate(&kept), first);

    // Steady traffic on new connections throughout: none may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let traffic = {
        let (stop, served, connector, url) = (
            stop.clone(),
            served.clone(),
            connector.clone(),
            gateway.public.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut stream = connect(&connector, &url).await;
                let (status, body) = exchange(
                    &mut stream,
                    "POST",
                    "/v2/models/scorer/infer",
                    r#"{"inputs":[1]}"#,
                )
                .await;
                assert_eq!(status, 200, "{body}");
                served.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let second = ca.issue_into(certs.path());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let fresh = connect(&connector, &gateway.public).await;
        if served_certificate(&fresh) == second {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The connection made before keeps its session and still serves.
    let (status, _) = exchange(
        &mut kept,
        "POST",
        "/v2/models/scorer/infer",
        r#"{"inputs":[2]}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(served_certificate(&kept), first);

    // A certificate file that does not parse: the current one stays.
    replace(
        &certs.path().join("server.crt"),
        b"-----BEGIN CERTIFICATE-----\nnot base64\n",
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !gateway
        .metrics()
        .await
        .contains("govgate_tls_reloads_total{listener=\"public\",result=\"failed\"} 1")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bad file was never looked at"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh = connect(&connector, &gateway.public).await;
    assert_eq!(
        served_certificate(&fresh),
        second,
        "the last good certificate stays"
    );

    stop.store(true, Ordering::Relaxed);
    traffic.await.expect("no request failed during the reloads");
    assert!(served.load(Ordering::Relaxed) > 0);
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("govgate_tls_reloads_total{listener=\"public\",result=\"ok\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn sighup_reloads_the_certificate_when_files_are_not_watched() {
    let upstream = TestUpstream::start().await;
    let ca = Ca::new();
    let certs = tempfile::tempdir().unwrap();
    let first = ca.issue_into(certs.path());
    let gateway = Gateway::start_with(
        &tls_section("public_tls", certs.path(), 0),
        &models(&upstream.url()),
    )
    .await;
    let connector = ca.client(&[&rustls::version::TLS13]);
    let second = ca.issue_into(certs.path());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = connect(&connector, &gateway.public).await;
    assert_eq!(
        served_certificate(&before),
        first,
        "no reload without SIGHUP"
    );

    gateway.signal("HUP");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut fresh = connect(&connector, &gateway.public).await;
        if served_certificate(&fresh) == second {
            let (status, _) = exchange(
                &mut fresh,
                "POST",
                "/v2/models/scorer/infer",
                r#"{"inputs":[1]}"#,
            )
            .await;
            assert_eq!(status, 200, "the gateway serves on after SIGHUP");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "SIGHUP did not reload the certificate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_key_that_does_not_fit_the_certificate_is_refused_by_check_config_and_at_start() {
    let ca = Ca::new();
    let certs = tempfile::tempdir().unwrap();
    ca.issue_into(certs.path());
    let other = tempfile::tempdir().unwrap();
    ca.issue_into(other.path());
    std::fs::copy(
        other.path().join("server.key"),
        certs.path().join("server.key"),
    )
    .unwrap();
    let upstream = TestUpstream::start().await;
    let mut gateway = Gateway::start(&models(&upstream.url())).await;
    gateway.stop().await;
    let config = std::fs::read_to_string(gateway.dir.path().join("govgate.toml")).unwrap();
    let with_tls = config.replacen(
        "data_dir = \"data\"\n",
        &format!(
            "data_dir = \"data\"\n{}",
            tls_section("public_tls", certs.path(), 0)
        ),
        1,
    );
    std::fs::write(gateway.dir.path().join("govgate.toml"), with_tls).unwrap();
    let checked = std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .args(["check-config", "--config"])
        .arg(gateway.dir.path().join("govgate.toml"))
        .env("TEST_UPSTREAM_KEY", "test-secret")
        .output()
        .unwrap();
    assert!(!checked.status.success());
    let said = String::from_utf8_lossy(&checked.stderr);
    assert!(said.contains("server.public_tls"), "{said}");
    assert!(said.contains("does not fit"), "{said}");
    let serve = std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .args(["serve", "--config"])
        .arg(gateway.dir.path().join("govgate.toml"))
        .env("TEST_UPSTREAM_KEY", "test-secret")
        .output()
        .unwrap();
    assert!(!serve.status.success());
    let said = String::from_utf8_lossy(&serve.stderr);
    assert!(said.contains("server.public_tls"), "{said}");
    assert!(said.contains("does not fit"), "{said}");
}

#[tokio::test]
async fn a_client_certificate_names_the_caller_and_one_from_another_ca_is_refused() {
    let upstream = TestUpstream::start().await;
    let ca = Ca::new();
    let certs = tempfile::tempdir().unwrap();
    ca.issue_into(certs.path());
    let clients = Ca::new();
    let client_ca = certs.path().join("clients.pem");
    std::fs::write(&client_ca, &clients.pem).unwrap();
    let mtls = |required: bool| {
        format!(
            "[auth.mtls]\nca_file = \"{}\"\nidentity = \"san_uri\"\nrequired = {required}\n",
            client_ca.display()
        )
    };
    // An API key too, which the certificate outranks; it never goes upstream.
    let key = "ggk_certificate-and-key";
    let key_sha256 = format!("{:x}", sha2::Sha256::digest(key.as_bytes()));
    let gateway = Gateway::start_with(
        &tls_section("public_tls", certs.path(), 0),
        &format!(
            "{}[[auth.api_keys]]\nid = \"k1\"\ncaller = \"svc-key\"\nkey_sha256 = \"{key_sha256}\"\n{}",
            mtls(false),
            models(&upstream.url())
        ),
    )
    .await;
    let spiffe = "spiffe://bank.example/ns/lending/sa/svc-loans";
    let mut stream = connect(
        &clients.client_with_roots_of(&ca, clients.client_identity(spiffe)),
        &gateway.public,
    )
    .await;
    let (status, body) = exchange(
        &mut stream,
        "POST",
        "/v2/models/scorer/infer",
        r#"{"inputs":[1]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(last_decision(&gateway).await["caller"], spiffe);
    let mut stream = connect(
        &clients.client_with_roots_of(&ca, clients.client_identity(spiffe)),
        &gateway.public,
    )
    .await;
    let request = format!(
        "POST /v2/models/scorer/infer HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {key}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(
        last_decision(&gateway).await["caller"],
        spiffe,
        "the certificate outranks the key"
    );
    let sent = upstream.seen().pop().unwrap();
    assert!(
        sent.headers.get("authorization").is_none(),
        "the gateway key went upstream"
    );

    // Without a certificate (not required): served, the caller as before.
    let mut stream = connect(&ca.client(&[&rustls::version::TLS13]), &gateway.public).await;
    let (status, _) = exchange(
        &mut stream,
        "POST",
        "/v2/models/scorer/infer",
        r#"{"inputs":[2]}"#,
    )
    .await;
    assert_eq!(status, 200);

    // A certificate from a CA the gateway does not trust: no handshake.
    let stranger = Ca::new();
    let connector = stranger.client_with_roots_of(
        &ca,
        stranger.client_identity("spiffe://evil.example/svc-loans"),
    );
    let refused = handshake_refused(&connector, &gateway.public).await;
    assert!(refused, "a certificate from an unknown CA was accepted");

    let mut gateway = gateway;
    gateway.stop().await;
    let path = gateway.dir.path().join("govgate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("required = false", "required = true")).unwrap();
    gateway.restart().await;
    let refused = handshake_refused(&ca.client(&[&rustls::version::TLS13]), &gateway.public).await;
    assert!(
        refused,
        "required: a client without a certificate was served"
    );
    let mut stream = connect(
        &clients.client_with_roots_of(&ca, clients.client_identity(spiffe)),
        &gateway.public,
    )
    .await;
    let (status, _) = exchange(&mut stream, "GET", "/v2/health/live", "").await;
    assert_eq!(status, 200);
}

/// Whether the gateway refuses `connector`'s handshake: at once, or (TLS
/// 1.3, where the client finishes first) with the first read.
async fn handshake_refused(connector: &TlsConnector, url: &str) -> bool {
    let tcp = TcpStream::connect(addr_of(url)).await.unwrap();
    let shaken = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await;
    match shaken {
        Err(_) => true,
        Ok(mut stream) => {
            let _ = stream
                .write_all(b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n")
                .await;
            let mut buf = [0u8; 64];
            !matches!(stream.read(&mut buf).await, Ok(n) if n > 0)
        }
    }
}

/// The latest decision entry, read on the (plain) admin listener.
async fn last_decision(gateway: &Gateway) -> serde_json::Value {
    gateway.decisions().await.pop().expect("a decision")
}
