//! Witness cosignatures end to end, against a witness that is not ours: a
//! C2SP tlog-witness written in Python from the specs
//! (tests/witness/witness.py), run on an ephemeral port. The gateway
//! collects and serves cosignatures, a restart serves them again, bundles
//! carry them, both verifiers apply a k-of-n policy, and the witness
//! refuses a split view signed with the log's own key.

use crate::models;
use crate::support::gateway::TEST_ORIGIN;
use crate::support::governance::admin_call;
use crate::support::{Gateway, TestUpstream, send};
use govgate::ledger::checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
use govgate::ledger::cosignature::{Cosigner, CosignerKey, WitnessPolicy};
use http::Method;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A running Python witness; killed when dropped.
pub(crate) struct Witness {
    url: String,
    vkey: String,
    dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl Witness {
    pub(crate) async fn start(name: &str, seed: u8) -> Witness {
        let dir = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(crate::support::pyenv::python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/witness/witness.py"
            ))
            .args(["--name", name, "--seed", &format!("{seed:02x}").repeat(32)])
            .arg("--logs")
            .arg(dir.path().join("logs"))
            .arg("--state")
            .arg(dir.path().join("state.json"))
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the Python witness");
        let stdout = child.stdout.take().unwrap();
        let line = tokio::time::timeout(
            Duration::from_secs(30),
            BufReader::new(stdout).lines().next_line(),
        )
        .await
        .expect("the witness listens within 30 s")
        .unwrap()
        .expect("the witness printed its address");
        let mut words = line.split(' ');
        let (Some("listening"), Some(url), Some("vkey"), Some(vkey)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            panic!("unexpected witness line: {line}");
        };
        Witness {
            url: url.to_owned(),
            vkey: vkey.to_owned(),
            dir,
            _child: child,
        }
    }

    /// Makes the witness accept checkpoints of the log with `vkey`.
    pub(crate) fn trust(&self, vkey: &str) {
        std::fs::write(self.dir.path().join("logs"), format!("{vkey}\n")).unwrap();
    }

    pub(crate) fn config(&self, name: &str) -> String {
        format!(
            "[[ledger.witnesses]]\nname = \"{name}\"\nurl = \"{}\"\nvkey = \"{}\"\ntimeout_ms = 5000\n",
            self.url, self.vkey
        )
    }

    fn key(&self) -> CosignerKey {
        CosignerKey::parse(&self.vkey).unwrap()
    }
}

async fn cosigned(gateway: &Gateway) -> crate::support::client::Reply {
    admin_call(
        &gateway.admin,
        None,
        Method::GET,
        "/ledger/checkpoint/cosigned",
        "",
    )
    .await
}

/// A round now, as `ops` (role admin); the answer's JSON.
pub(crate) async fn submit(gateway: &Gateway) -> serde_json::Value {
    let reply = admin_call(
        &gateway.admin,
        Some("ops"),
        Method::POST,
        "/ledger/witnesses/submit",
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

pub(crate) fn results(answer: &serde_json::Value) -> Vec<String> {
    answer["witnesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            format!(
                "{}:{}",
                w["witness"].as_str().unwrap(),
                w["result"].as_str().unwrap()
            )
        })
        .collect()
}

fn size_of(note: &str, vkey: &str) -> u64 {
    let body = NoteVerifier::parse(vkey).unwrap().open(note).unwrap();
    Checkpoint::parse(body).unwrap().size
}

/// A cosigner key no witness here holds.
fn stranger() -> String {
    Cosigner::new("stranger.example/w", ed25519_dalek_key(9))
        .unwrap()
        .public()
        .vkey()
}

fn ed25519_dalek_key(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

#[tokio::test]
async fn witnesses_cosign_the_log_and_verifiers_apply_a_k_of_n_policy() {
    let upstream = TestUpstream::start().await;
    let (w1, w2) = tokio::join!(
        Witness::start("w1.example/w", 1),
        Witness::start("w2.example/w", 2)
    );
    let rest = format!(
        "witness_interval_secs = 3600\n{}{}{}",
        w1.config("w1"),
        w2.config("w2"),
        models(&upstream.url())
    );
    let mut gateway = Gateway::start(&rest).await;

    // The witnesses do not know this log yet: nothing is cosigned.
    let none = cosigned(&gateway).await;
    assert_eq!(none.status, 404, "{}", none.text());
    assert_eq!(none.json()["error"]["code"], "not_cosigned");
    let refused = submit(&gateway).await;
    assert_eq!(results(&refused), ["w1:refused", "w2:refused"], "{refused}");
    assert!(refused.to_string().contains("404"), "{refused}");

    w1.trust(&gateway.vkey);
    w2.trust(&gateway.vkey);
    // On demand only for admins.
    for (principal, status) in [(None, 401), (Some("auditor"), 403)] {
        let reply = admin_call(
            &gateway.admin,
            principal,
            Method::POST,
            "/ledger/witnesses/submit",
            "",
        )
        .await;
        assert_eq!(reply.status, status, "{}", reply.text());
    }
    let first = submit(&gateway).await;
    assert_eq!(results(&first), ["w1:cosigned", "w2:cosigned"], "{first}");
    let note = cosigned(&gateway).await.text();
    let size = size_of(&note, &gateway.vkey);
    let both =
        WitnessPolicy::new(vec![("w1".into(), w1.key()), ("w2".into(), w2.key())], 2).unwrap();
    assert_eq!(both.check(&note).unwrap().len(), 2, "{note}");

    // The log grows: the witnesses check a consistency proof from the
    // size they hold (the Python witness answers 422 if it does not verify).
    for _ in 0..3 {
        assert_eq!(gateway.infer("{}").await.status, 200);
    }
    let grown = submit(&gateway).await;
    assert_eq!(results(&grown), ["w1:cosigned", "w2:cosigned"], "{grown}");
    let note = cosigned(&gateway).await.text();
    let grown_size = size_of(&note, &gateway.vkey);
    assert!(grown_size > size, "{grown_size} > {size}");
    assert_eq!(grown["cosigned_size"], grown_size);
    both.check(&note).unwrap();
    // The tiles' /checkpoint serves the latest checkpoint, which is the
    // cosigned one, with the same cosignature lines.
    let tiles_checkpoint = send(
        Method::GET,
        &format!("{}/govgate/log/checkpoint", gateway.public),
        &[],
        "",
    )
    .await;
    assert_eq!(tiles_checkpoint.status, 200);
    assert_eq!(tiles_checkpoint.text(), note, "cosigned on /checkpoint too");
    let metrics = gateway.metrics().await;
    for name in ["w1", "w2"] {
        assert!(
            metrics.contains(&format!(
                "govgate_witness_cosigned_size_entries{{witness=\"{name}\"}} {grown_size}"
            )),
            "{metrics}"
        );
    }
    assert!(metrics.contains(&format!("govgate_witness_served_size_entries {grown_size}")));
    for result in ["refused", "cosigned"] {
        let line =
            format!("govgate_witness_submissions_total{{result=\"{result}\",witness=\"w1\"}}");
        assert!(metrics.contains(&line), "{metrics}");
    }

    // The Python verifier applies the policy to the served checkpoint.
    let file = gateway.dir.path().join("cosigned.txt");
    std::fs::write(&file, &note).unwrap();
    let python = |witnesses: &[String], k: &str| {
        let mut args = vec![
            "cosigned".to_owned(),
            "--vkey".into(),
            gateway.vkey.clone(),
            "--checkpoint".into(),
            file.display().to_string(),
            "--witness-threshold".into(),
            k.into(),
        ];
        for w in witnesses {
            args.extend(["--witness".into(), w.clone()]);
        }
        crate::support::python_verifier(&args)
    };
    let w1_arg = format!("w1={}", w1.vkey);
    let w2_arg = format!("w2={}", w2.vkey);
    let stranger_arg = format!("w3={}", stranger());
    let ok = python(&[w1_arg.clone(), w2_arg.clone()], "2");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let short = python(&[w1_arg.clone(), stranger_arg.clone()], "2");
    assert_eq!(short.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&short.stdout).contains("witness policy not met: 1 of the 2"),
        "{}",
        String::from_utf8_lossy(&short.stdout)
    );

    // A restart serves the kept cosigned checkpoint again, even with a
    // witness gone (2 of 2 cannot be met for the new checkpoint).
    gateway.stop().await;
    drop(w2);
    gateway.restart().await;
    assert_eq!(cosigned(&gateway).await.text(), note);
    let after = submit(&gateway).await;
    assert_eq!(
        results(&after),
        ["w1:cosigned", "w2:unreachable"],
        "{after}"
    );
    assert_eq!(cosigned(&gateway).await.text(), note);

    // An export from the running gateway carries it too, with the proof
    // linking it to the bundle's checkpoint, and meets the policy.
    let online = gateway.dir.path().join("online-bundle");
    let admin = gateway.admin.clone();
    let out = online.clone();
    let exported = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
            .args(["export", "--admin-url", &admin, "--out"])
            .arg(&out)
            .env(
                "GOVGATE_TOKEN",
                crate::support::governance::token("auditor"),
            )
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    assert!(
        String::from_utf8_lossy(&exported.stdout).contains("added the cosigned checkpoint"),
        "{}",
        String::from_utf8_lossy(&exported.stdout)
    );
    assert_eq!(
        std::fs::read_to_string(online.join("cosigned-checkpoint.txt")).unwrap(),
        note
    );
    let online_policy = std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
        .args([
            "verify",
            "--bundle",
            online.to_str().unwrap(),
            "--vkey",
            &gateway.vkey,
        ])
        .args(["--witness", &w1_arg, "--witness-threshold", "1"])
        .output()
        .unwrap();
    assert!(
        online_policy.status.success(),
        "{}",
        String::from_utf8_lossy(&online_policy.stderr)
    );
    gateway.stop().await;

    // The bundle carries it, with the consistency proof to its own checkpoint.
    let bundle = gateway.dir.path().join("bundle");
    let export = gateway.cli(&["export", "--out", bundle.to_str().unwrap()]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("cosigned-checkpoint.txt")).unwrap(),
        note
    );
    let dir = bundle.to_str().unwrap();
    let verify = |witnesses: &[&String], k: Option<&str>| {
        let mut args = vec!["verify", "--bundle", dir, "--vkey", &gateway.vkey];
        for w in witnesses {
            args.extend(["--witness", w.as_str()]);
        }
        if let Some(k) = k {
            args.extend(["--witness-threshold", k]);
        }
        std::process::Command::new(env!("CARGO_BIN_EXE_govgate"))
            .args(&args)
            .output()
            .unwrap()
    };
    let two = verify(&[&w1_arg, &w2_arg], None);
    assert!(
        two.status.success(),
        "{}",
        String::from_utf8_lossy(&two.stderr)
    );
    assert!(String::from_utf8_lossy(&two.stdout).contains("witness policy ok: 2 of 2"));
    let one = verify(&[&w1_arg], Some("1"));
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let unmet = verify(&[&w1_arg, &stranger_arg], Some("2"));
    assert_eq!(unmet.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unmet.stderr);
    assert!(
        stderr.contains("witness policy not met: 1 of the 2"),
        "{stderr}"
    );
    for (witnesses, k, code) in [
        (vec![w1_arg.clone(), w2_arg.clone()], "2", Some(0)),
        (vec![w1_arg.clone()], "1", Some(0)),
        (vec![w1_arg.clone(), stranger_arg.clone()], "2", Some(1)),
    ] {
        let mut args = vec!["bundle".to_owned(), "--vkey".into(), gateway.vkey.clone()];
        for w in witnesses {
            args.extend(["--witness".into(), w]);
        }
        args.extend(["--witness-threshold".into(), k.into(), dir.into()]);
        let out = crate::support::python_verifier(&args);
        assert_eq!(
            out.status.code(),
            code,
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // A cosigned checkpoint that does not extend the bundle's fails both.
    std::fs::write(
        bundle.join("cosigned-proof.txt"),
        format!("{}\n", "A".repeat(43) + "="),
    )
    .unwrap();
    let broken = verify(&[&w1_arg, &w2_arg], None);
    assert_eq!(
        broken.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );
    let out = crate::support::python_verifier(&[
        "bundle",
        "--vkey",
        &gateway.vkey,
        "--witness",
        &w1_arg,
        "--witness",
        &w2_arg,
        dir,
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// POSTs an add-checkpoint body straight to the witness.
async fn add_checkpoint(witness: &Witness, body: String) -> crate::support::client::Reply {
    crate::support::send(
        Method::POST,
        &format!("{}/add-checkpoint", witness.url),
        &[],
        body,
    )
    .await
}

#[tokio::test]
async fn the_witness_refuses_a_split_view_signed_with_the_logs_key() {
    let upstream = TestUpstream::start().await;
    let witness = Witness::start("w1.example/w", 1).await;
    let rest = format!(
        "witness_interval_secs = 3600\n{}{}",
        witness.config("w1"),
        models(&upstream.url())
    );
    let mut gateway = Gateway::start(&rest).await;
    witness.trust(&gateway.vkey);
    assert_eq!(results(&submit(&gateway).await), ["w1:cosigned"]);
    let cosigned_before = cosigned(&gateway).await.text();
    let size = size_of(&cosigned_before, &gateway.vkey);

    // Whoever holds the log's key (a copy of the store restarted
    // elsewhere) signs another root at the same size, and a larger tree
    // that does not extend the witnessed one.
    let pem = std::fs::read_to_string(gateway.dir.path().join("test.key")).unwrap();
    let key = govgate::config::keyfile::decode_pem(&pem).unwrap();
    let signer = NoteSigner::new(TEST_ORIGIN, key).unwrap();
    let sign = |size: u64, root: [u8; 32]| {
        signer
            .sign(
                &Checkpoint {
                    origin: TEST_ORIGIN.to_owned(),
                    size,
                    root,
                }
                .body(),
            )
            .unwrap()
    };
    let same_size =
        add_checkpoint(&witness, format!("old {size}\n\n{}", sign(size, [7; 32]))).await;
    assert_eq!(same_size.status, 409, "{}", same_size.text());
    let hash = "B".repeat(43) + "=";
    let larger = add_checkpoint(
        &witness,
        format!("old {size}\n{hash}\n{hash}\n\n{}", sign(size + 3, [9; 32])),
    )
    .await;
    assert_eq!(larger.status, 422, "{}", larger.text());
    // From scratch, the witness says what it holds.
    let fresh = add_checkpoint(&witness, format!("old 0\n\n{}", sign(1, [1; 32]))).await;
    assert_eq!(fresh.status, 409);
    assert_eq!(fresh.text(), format!("{size}\n"));

    // The real log still extends what the witness holds.
    assert_eq!(gateway.infer("{}").await.status, 200);
    assert_eq!(results(&submit(&gateway).await), ["w1:cosigned"]);
    let note = cosigned(&gateway).await.text();
    let size = size_of(&note, &gateway.vkey);
    assert!(size > size_of(&cosigned_before, &gateway.vkey));

    // A gateway that lost its witness state asks from size 0, is told the
    // size the witness holds (409) and proves consistency from there.
    gateway.stop().await;
    std::fs::remove_file(gateway.dir.path().join("data/witnesses/state.json")).unwrap();
    gateway.restart().await;
    assert_eq!(results(&submit(&gateway).await), ["w1:cosigned"]);
    let note = cosigned(&gateway).await.text();
    assert!(size_of(&note, &gateway.vkey) > size);
}

#[tokio::test]
async fn a_second_log_under_the_same_origin_and_key_is_refused_by_the_witness() {
    let upstream = TestUpstream::start().await;
    let witness = Witness::start("w1.example/w", 1).await;
    let rest = format!(
        "witness_interval_secs = 3600\n{}{}",
        witness.config("w1"),
        models(&upstream.url())
    );
    let (first, mut second) = tokio::join!(Gateway::start(&rest), Gateway::start(&rest));
    witness.trust(&first.vkey);
    assert_eq!(results(&submit(&first).await), ["w1:cosigned"]);
    let witnessed = size_of(&cosigned(&first).await.text(), &first.vkey);

    // The second gateway becomes a copy of the first's key on another
    // machine: no key record, no store, so it starts a new tree under the
    // same origin and key, which its own history check cannot see.
    second.stop().await;
    let dir = second.dir.path();
    std::fs::copy(first.dir.path().join("test.key"), dir.join("test.key")).unwrap();
    std::fs::remove_file(dir.join("test.key.state")).unwrap();
    std::fs::remove_dir_all(dir.join("data/ledger")).unwrap();
    let _ = std::fs::remove_dir_all(dir.join("data/witnesses"));
    second.restart().await;
    second.vkey = first.vkey.clone();
    // Its tree grows past the witnessed size (every request is recorded,
    // refused ones too), so it can only be told apart by its root.
    while second.checkpoint().await.size <= witnessed {
        second.infer("{}").await;
    }
    let refused = submit(&second).await;
    assert_eq!(results(&refused), ["w1:refused"], "{refused}");
    assert!(
        refused["witnesses"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("422"),
        "{refused}"
    );
    let none = cosigned(&second).await;
    assert_eq!(none.status, 404, "{}", none.text());

    // The first log still extends what the witness holds.
    assert_eq!(results(&submit(&first).await), ["w1:cosigned"]);
}

/// `/metrics` of a gateway whose witness has cosigned: every witness
/// family (for the checks of docs/metrics.md in promtool.rs).
pub(crate) async fn cosigned_scrape() -> String {
    let upstream = TestUpstream::start().await;
    let witness = Witness::start("w1.example/w", 1).await;
    let rest = format!(
        "witness_interval_secs = 3600\n{}{}",
        witness.config("w1"),
        models(&upstream.url())
    );
    let gateway = Gateway::start(&rest).await;
    witness.trust(&gateway.vkey);
    assert_eq!(results(&submit(&gateway).await), ["w1:cosigned"]);
    gateway.metrics().await
}

/// After an online key rotation the checkpoints are signed by the new key:
/// witnessing sends those (and checks the cosignatures over them) rather
/// than refusing them as not signed by the key the gateway started with.
#[tokio::test]
async fn witnessing_follows_an_online_key_rotation() {
    let upstream = TestUpstream::start().await;
    let witness = Witness::start("w1.example/w", 1).await;
    let rest = format!(
        "witness_interval_secs = 3600\n{}{}",
        witness.config("w1"),
        models(&upstream.url())
    );
    let gateway = Gateway::start(&rest).await;
    witness.trust(&gateway.vkey);
    let first = submit(&gateway).await;
    assert_eq!(results(&first), ["w1:cosigned"], "{first}");
    let before = size_of(&cosigned(&gateway).await.text(), &gateway.vkey);

    let rotated = admin_call(
        &gateway.admin,
        Some("ops"),
        Method::POST,
        "/admin/ledger/rotate-key",
        "",
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    let new_vkey = rotated.json()["new_vkey"].as_str().unwrap().to_owned();
    assert_ne!(new_vkey, gateway.vkey);
    // The witness is told of the new key, as its operator would be.
    std::fs::write(
        witness.dir.path().join("logs"),
        format!("{}\n{new_vkey}\n", gateway.vkey),
    )
    .unwrap();
    assert_eq!(gateway.infer("{}").await.status, 200);

    let after = submit(&gateway).await;
    assert_eq!(results(&after), ["w1:cosigned"], "{after}");
    let note = cosigned(&gateway).await.text();
    let size = size_of(&note, &new_vkey);
    assert!(size > before, "{size} > {before}");
    let policy = WitnessPolicy::new(vec![("w1".into(), witness.key())], 1).unwrap();
    assert_eq!(policy.check(&note).unwrap().len(), 1, "{note}");
}
