//! The ledger as C2SP tlog-tiles: a client that knows only the spec (and
//! RFC 6962) rebuilds the signed root from the served tiles, finds every
//! entry in the bundles, and gets the caching headers the spec asks for;
//! Go's sumdb/tlog and sumdb/note read the same log (ignored without Go).

use crate::models;
use crate::support::{Gateway, TestUpstream, send};
use govgate::ledger::checkpoint::{Checkpoint, NoteVerifier};
use http::Method;
use sha2::{Digest, Sha256};
use std::path::Path;

type Hash = [u8; 32];

/// Entries beyond the gateway's own: one full tile and a partial one.
const REQUESTS: usize = 300;

/// Sends `count` requests no model serves: each is recorded (`unmatched`).
async fn record_decisions(gateway: &Gateway, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(25) {
        let replies = futures_util::future::join_all(chunk.iter().map(|i| {
            let path = format!("/no-such-model/{i}");
            async move { gateway.get(&path).await }
        }))
        .await;
        for reply in replies {
            assert_eq!(reply.status, 404);
            ids.push(reply.decision_id());
        }
    }
    ids
}

async fn fetch(url: &str) -> crate::support::client::Reply {
    send(Method::GET, url, &[], "").await
}

fn leaf(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0])
        .chain_update(data)
        .finalize()
        .into()
}

fn node(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// RFC 6962 MTH of `leaves`, written out here from the RFC.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
            node(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

fn hashes(body: &[u8]) -> Vec<Hash> {
    assert_eq!(body.len() % 32, 0);
    body.chunks(32).map(|h| h.try_into().unwrap()).collect()
}

/// Splits an entry bundle: big-endian uint16 length, then the entry.
fn bundle_entries(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut entries = Vec::new();
    while !body.is_empty() {
        let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
        entries.push(body[2..2 + len].to_vec());
        body = &body[2 + len..];
    }
    entries
}

/// The checkpoint served at `prefix`, its signature checked.
async fn served_checkpoint(prefix: &str, vkey: &str) -> (String, Checkpoint) {
    let reply = fetch(&format!("{prefix}/checkpoint")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(reply.headers["cache-control"], "public, max-age=2");
    let note = reply.text();
    let verifier = NoteVerifier::parse(vkey).unwrap();
    let checkpoint = Checkpoint::parse(verifier.open(&note).unwrap()).unwrap();
    (note, checkpoint)
}

#[tokio::test]
async fn tiles_on_the_public_listener_hash_to_the_signed_checkpoint() {
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    assert_eq!(gateway.tiles, gateway.url("/govgate/log"));
    record_decisions(&gateway, REQUESTS).await;
    let prefix = gateway.url("/govgate/log");
    let (_, checkpoint) = served_checkpoint(&prefix, &gateway.vkey).await;
    let size = checkpoint.size as usize;
    assert!(
        (257..512).contains(&size),
        "one full tile and a partial one: {size}"
    );
    let partial = size - 256;

    // Level 0: one full tile (immutable), one partial of the rest.
    let full = fetch(&format!("{prefix}/tile/0/000")).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.headers["content-type"], "application/octet-stream");
    assert_eq!(
        full.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(full.body.len(), 8192);
    let rest = fetch(&format!("{prefix}/tile/0/001.p/{partial}")).await;
    assert_eq!(rest.status, 200);
    assert_eq!(rest.headers["cache-control"], "public, max-age=60");
    let mut leaves = hashes(&full.body);
    leaves.extend(hashes(&rest.body));
    assert_eq!(leaves.len(), size);
    assert_eq!(
        mth(&leaves),
        checkpoint.root,
        "tiles hash to the signed root"
    );

    // Level 1: one hash, the root of the full level 0 tile.
    let level1 = fetch(&format!("{prefix}/tile/1/000.p/1")).await;
    assert_eq!(level1.status, 200);
    assert_eq!(hashes(&level1.body), vec![mth(&leaves[..256])]);

    // Bundles: every entry, in order, hashing to its leaf, byte for byte
    // what the admin API serves.
    let mut entries = bundle_entries(&fetch(&format!("{prefix}/tile/entries/000")).await.body);
    let last = fetch(&format!("{prefix}/tile/entries/001.p/{partial}")).await;
    assert_eq!(last.headers["cache-control"], "public, max-age=60");
    entries.extend(bundle_entries(&last.body));
    assert_eq!(entries.len(), size);
    for (seq, entry) in entries.iter().enumerate() {
        assert_eq!(leaf(entry), leaves[seq], "entry {seq} hashes to its leaf");
    }
    assert_eq!(entries[..], gateway.entry_lines().await[..size]);

    // An older tree's partial tile is a prefix of the current one.
    let older = fetch(&format!("{prefix}/tile/0/001.p/1")).await;
    assert_eq!(older.body, rest.body[..32]);

    // Nothing beyond the log, nothing the spec does not spell, no writes.
    for missing in [
        format!("tile/0/001.p/{}", partial + 1),
        "tile/0/001".to_owned(),
        "tile/1/000".to_owned(),
        "tile/entries/002.p/1".to_owned(),
        "tile/0/1".to_owned(),
        "tile/0/000.p/0".to_owned(),
        "tile/0/x000/000".to_owned(),
        "tile/64/000".to_owned(),
    ] {
        let reply = fetch(&format!("{prefix}/{missing}")).await;
        assert_eq!(reply.status, 404, "{missing}");
        assert_eq!(reply.error_code(), "tile_not_found", "{missing}");
    }
    let post = send(Method::POST, &format!("{prefix}/tile/0/000"), &[], "x").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.error_code(), "method_not_allowed");
    let head = send(Method::HEAD, &format!("{prefix}/tile/0/000"), &[], "").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let metrics = gateway.metrics().await;
    for counted in [
        "govgate_tiles_requests_total{result=\"checkpoint\"} 1",
        "govgate_tiles_requests_total{result=\"read\"} 6",
        "govgate_tiles_requests_total{result=\"cached\"} 1",
        "govgate_tiles_requests_total{result=\"not_found\"} 8",
    ] {
        assert!(metrics.contains(counted), "no `{counted}` in:\n{metrics}");
    }
}

#[tokio::test]
async fn tiles_on_a_listener_of_their_own_or_off() {
    let upstream = TestUpstream::start().await;
    let own = Gateway::start(&format!(
        "[tiles]\nlisten = \"127.0.0.1:0\"\n{}",
        models(&upstream.url())
    ))
    .await;
    assert!(own.tiles.starts_with("http://127.0.0.1:"), "{}", own.tiles);
    assert_ne!(own.tiles, own.public);
    let (note, checkpoint) = served_checkpoint(&own.tiles, &own.vkey).await;
    assert!(note.starts_with(crate::support::gateway::TEST_ORIGIN));
    let leaves = fetch(&format!("{}/tile/0/000.p/{}", own.tiles, checkpoint.size)).await;
    assert_eq!(mth(&hashes(&leaves.body)), checkpoint.root);
    let unknown = fetch(&format!("{}/other", own.tiles)).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "route_not_found");
    // Not also on the public listener: there the path is the proxy's.
    let public = own.get("/govgate/log/checkpoint").await;
    assert_eq!(public.status, 404);
    assert_ne!(public.headers["content-type"], "text/plain; charset=utf-8");

    let off = Gateway::start(&format!(
        "[tiles]\nenabled = false\n{}",
        models(&upstream.url())
    ))
    .await;
    assert_eq!(off.tiles, "off");
    assert_eq!(off.get("/govgate/log/checkpoint").await.status, 404);
}

/// Builds tests/go/tilecheck offline against Debian's
/// golang-golang-x-mod-dev (GOPATH mode, no module download).
fn build_tilecheck(out: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/tilecheck");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-cache");
    let built = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(out)
        .arg(".")
        .current_dir(source)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", cache)
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .output()
        .expect("run go (Debian packages golang-go golang-golang-x-mod-dev)");
    assert!(
        built.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
}

#[tokio::test]
#[ignore = "needs go (Debian packages golang-go golang-golang-x-mod-dev); run with: cargo test -- --include-ignored"]
async fn go_tlog_client_reads_the_tiles() {
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("tilecheck");
    let build = tokio::task::spawn_blocking({
        let bin = bin.clone();
        move || build_tilecheck(&bin)
    });
    let upstream = TestUpstream::start().await;
    let gateway = Gateway::start(&models(&upstream.url())).await;
    let ids = record_decisions(&gateway, 40).await;
    // An old checkpoint of a small tree (partial tiles only), then growth
    // past a full tile.
    let (old, _) = served_checkpoint(&gateway.tiles, &gateway.vkey).await;
    record_decisions(&gateway, REQUESTS).await;
    let id = &ids[7];
    let receipt = gateway.get(&format!("/govgate/receipts/{id}")).await;
    let entry = gateway.get(&format!("/govgate/receipts/{id}/entry")).await;
    assert_eq!((receipt.status.as_u16(), entry.status.as_u16()), (200, 200));
    std::fs::write(work.path().join("old"), old).unwrap();
    std::fs::write(work.path().join("receipt"), &receipt.body).unwrap();
    std::fs::write(work.path().join("entry"), &entry.body).unwrap();
    build.await.unwrap();

    let dir = work.path().to_owned();
    let checked = tokio::task::spawn_blocking({
        let (prefix, vkey) = (gateway.tiles.clone(), gateway.vkey.clone());
        move || tilecheck(&bin, &prefix, &vkey, &dir)
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success() && said.starts_with("ok size="),
        "tilecheck: {said}{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    // The same log under another key's name: the checkpoint is refused.
    let stranger = govgate::ledger::checkpoint::NoteSigner::new(
        crate::support::gateway::TEST_ORIGIN,
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    )
    .unwrap()
    .verifier()
    .vkey();
    let refused = tilecheck(
        &work.path().join("tilecheck"),
        &gateway.tiles,
        &stranger,
        work.path(),
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("verifying the checkpoint's signature"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// Runs the Go client on the log at `prefix` with the files in `dir`.
fn tilecheck(bin: &Path, prefix: &str, vkey: &str, dir: &Path) -> std::process::Output {
    std::process::Command::new(bin)
        .arg(prefix)
        .arg(vkey)
        .args(["old", "receipt", "entry"].map(|f| dir.join(f)))
        .output()
        .expect("run tilecheck")
}
