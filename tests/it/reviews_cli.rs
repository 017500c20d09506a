//! `govgate reviews ...` and `govgate policies ...`: what the commands
//! settle before calling the admin API (usage, token, connection), each
//! exiting 2 with a message and nothing on stdout.

use std::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_govgate");

/// How one run ended: exit code and stderr (stdout must stay empty).
fn govgate(token: Option<&str>, admin: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut command = std::process::Command::new(BIN);
    command
        .args(args)
        .env_remove("GOVGATE_TOKEN")
        .env("GOVGATE_ADMIN_URL", admin)
        .env("GOVGATE_LOG", "warn");
    if let Some(token) = token {
        command.env("GOVGATE_TOKEN", token);
    }
    let output = command.output().expect("run govgate");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
    (output.status.code(), stderr)
}

#[test]
fn usage_problems_exit_2_without_calling_the_api() {
    // A listener nobody accepts on: any call would leave a connection.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let admin = format!("http://{}", listener.local_addr().unwrap());
    let id = "3f9c0d1e2a3b4c5d6e7f8091a2b3c4d5";
    let cases: [(&[&str], &str); 7] = [
        (
            &["decide", id, "reject"],
            "to reject you must give --reason",
        ),
        (
            &["decide", id, "override", "--answer-json", "{}"],
            "to override you must give --reason",
        ),
        (
            &["decide", id, "override", "--reason", "capped"],
            "--answer-file PATH or --answer-json JSON",
        ),
        (
            &["decide", id, "approve", "--status", "403"],
            "only for override",
        ),
        (
            &[
                "decide",
                id,
                "override",
                "--reason",
                "x",
                "--answer-file",
                "/nonexistent/a.json",
            ],
            "cannot read the answer file /nonexistent/a.json",
        ),
        (&["decide", id, "release"], "invalid value 'release'"),
        (&["list", "--older-than", "1h30m"], "90s, 10m, 2h, 1d"),
    ];
    for (args, message) in cases {
        let args: Vec<&str> = std::iter::once("reviews")
            .chain(args.iter().copied())
            .collect();
        let (code, stderr) = govgate(Some("a-token"), &admin, &args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: wanted {message:?} in {stderr}"
        );
    }
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(err) if err.kind() == std::io::ErrorKind::WouldBlock),
        "a command called the API: {accepted:?}"
    );
}

#[test]
fn no_token_or_no_admin_api_exits_2() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    for args in [
        &["reviews", "list"][..],
        &["reviews", "show", "3f9c"],
        &["policies", "show"],
        &["policies", "reload"],
    ] {
        let (code, stderr) = govgate(None, &closed, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("GOVGATE_TOKEN is not set"), "{stderr}");
        let (code, stderr) = govgate(Some("a-token"), &closed, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("cannot reach the admin API"), "{stderr}");
        assert!(!stderr.contains("a-token"), "the token is never echoed");
    }
    let (code, stderr) = govgate(Some("t"), "https://127.0.0.1:9090", &["policies", "show"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("plain http://"), "{stderr}");
}
