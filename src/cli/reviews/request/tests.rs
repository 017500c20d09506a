//! From the command line to the call: method, path, query and body.

use super::*;
use crate::cli::{Cli, Command};
use clap::Parser;
use clap::error::ErrorKind;

/// `govgate reviews ARGS`, parsed as the binary parses it.
fn parse(args: &[&str]) -> Result<super::super::ReviewsArgs, clap::Error> {
    let line = ["govgate", "reviews"].iter().chain(args);
    match Cli::try_parse_from(line)?.command {
        Command::Reviews(args) => Ok(args),
        other => panic!("parsed as {other:?}"),
    }
}

/// The call `govgate reviews ARGS` makes, or why it makes none.
fn call(args: &[&str]) -> anyhow::Result<Call> {
    build(&parse(args).expect("valid command line").command)
}

/// The message of the usage error `govgate reviews ARGS` stops at.
fn refused(args: &[&str]) -> String {
    format!("{:#}", call(args).expect_err("a usage error"))
}

#[test]
fn list_sends_only_the_filters_given() {
    let plain = call(&["list"]).unwrap();
    assert_eq!(
        plain,
        Call {
            method: Method::GET,
            path: "/admin/reviews".into(),
            body: None,
            shows: Shows::List,
        }
    );
    let args = [
        "list",
        "--status",
        "all",
        "--model",
        "credit scoring/eu",
        "--kind",
        "hold",
        "--older-than",
        "10m",
        "--limit",
        "5",
    ];
    assert_eq!(
        call(&args).unwrap().path,
        "/admin/reviews?status=all&model=credit%20scoring%2Feu&kind=hold&older_than=600&limit=5"
    );
    assert_eq!(
        call(&["list", "--kind", "flag", "--status", "decided"])
            .unwrap()
            .path,
        "/admin/reviews?status=decided&kind=flag"
    );
}

#[test]
fn durations_are_a_whole_number_and_one_unit() {
    for (text, seconds) in [
        ("90s", 90),
        ("10m", 600),
        ("2h", 7200),
        ("1d", 86_400),
        ("0s", 0),
    ] {
        assert_eq!(parse_duration(text), Ok(seconds), "{text}");
    }
    for text in [
        "", "90", "s", "1h30m", "1.5h", "-1m", "+1m", "1 h", "2H", "1w", "1é", "١s",
    ] {
        assert!(parse_duration(text).is_err(), "{text:?} accepted");
    }
    assert!(parse_duration("99999999999999999999d").is_err());
    assert_eq!(
        parse_duration("213503982334601d"),
        Ok(213_503_982_334_601 * 86_400)
    );
    assert!(parse_duration("213503982334602d").is_err(), "overflows u64");
    let err = parse(&["list", "--older-than", "1h30m"]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ValueValidation);
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("90s, 10m, 2h, 1d"), "{err}");
}

#[test]
fn show_and_decide_encode_the_review_id() {
    let show = call(&["show", "3f2a/../x"]).unwrap();
    assert_eq!(
        (show.method, show.path.as_str(), show.body, show.shows),
        (
            Method::GET,
            "/admin/reviews/3f2a%2F..%2Fx",
            None,
            Shows::Review
        )
    );
    let decide = call(&["decide", "3f2a", "approve"]).unwrap();
    assert_eq!(decide.method, Method::POST);
    assert_eq!(decide.path, "/admin/reviews/3f2a/decide");
    assert_eq!(decide.body, Some(json!({"verdict": "approve"})));
    assert_eq!(decide.shows, Shows::Decided);
}

#[test]
fn rejections_and_overrides_need_a_reason_before_any_call() {
    let approve = call(&["decide", "r", "approve", "--reason", "fine"]).unwrap();
    assert_eq!(
        approve.body,
        Some(json!({"verdict": "approve", "reason": "fine"}))
    );
    let reject = call(&["decide", "r", "reject", "--reason", "PII in prompt"]).unwrap();
    assert_eq!(
        reject.body,
        Some(json!({"verdict": "reject", "reason": "PII in prompt"}))
    );
    assert!(refused(&["decide", "r", "reject"]).contains("to reject you must give --reason"));
    let no_reason = refused(&["decide", "r", "override", "--answer-json", "{}"]);
    assert!(
        no_reason.contains("to override you must give --reason"),
        "{no_reason}"
    );
}

#[test]
fn answers_are_only_for_overrides_and_required_there() {
    let missing = refused(&["decide", "r", "override", "--reason", "x"]);
    assert!(
        missing.contains("--answer-file PATH or --answer-json JSON"),
        "{missing}"
    );
    for extra in [
        ["--answer-json", "{}"],
        ["--status", "403"],
        ["--content-type", "text/plain"],
    ] {
        let args = ["decide", "r", "reject", "--reason", "x", extra[0], extra[1]];
        assert!(refused(&args).contains("only for override"), "{extra:?}");
    }
}

#[test]
fn inline_answers_are_sent_as_json_with_defaults() {
    let args = [
        "decide",
        "r",
        "override",
        "--reason",
        "score capped",
        "--answer-json",
        r#"{"score": 0.5}"#,
    ];
    assert_eq!(
        call(&args).unwrap().body,
        Some(json!({
            "verdict": "override",
            "reason": "score capped",
            "answer": {"status": 200, "content_type": "application/json", "body": {"score": 0.5}},
        }))
    );
    let args = [
        "decide",
        "r",
        "override",
        "--reason",
        "x",
        "--answer-json",
        r#""denied""#,
        "--status",
        "403",
        "--content-type",
        "text/plain",
    ];
    assert_eq!(
        call(&args).unwrap().body.unwrap()["answer"],
        json!({"status": 403, "content_type": "text/plain", "body": "denied"})
    );
    let bad = parse(&["decide", "r", "override", "--answer-json", "{oops"]).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::ValueValidation);
    let status = parse(&["decide", "r", "override", "--status", "99"]).unwrap_err();
    assert_eq!(status.kind(), ErrorKind::ValueValidation);
    let both = [
        "decide",
        "r",
        "override",
        "--answer-json",
        "1",
        "--answer-file",
        "f",
    ];
    assert_eq!(
        parse(&both).unwrap_err().kind(),
        ErrorKind::ArgumentConflict
    );
}

#[test]
fn answer_files_are_json_when_they_parse_and_the_type_allows() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let json_file = write("a.json", b"{\"score\": 0.1}\n");
    let text_file = write("a.txt", b"line one\nline two\n");
    let answer = |file: &str, content_type: Option<&str>| {
        let mut args = vec!["decide", "r", "override", "--reason", "x"];
        args.extend(["--answer-file", file]);
        args.extend(content_type.iter().flat_map(|t| ["--content-type", *t]));
        call(&args).map(|call| call.body.unwrap()["answer"].clone())
    };
    let sent = |body: Value, content_type: &str| json!({"status": 200, "content_type": content_type, "body": body});
    assert_eq!(
        answer(&json_file, None).unwrap(),
        sent(json!({"score": 0.1}), "application/json")
    );
    assert_eq!(
        answer(&json_file, Some("application/problem+json; charset=utf-8")).unwrap(),
        sent(
            json!({"score": 0.1}),
            "application/problem+json; charset=utf-8"
        )
    );
    assert_eq!(
        answer(&json_file, Some("text/plain")).unwrap(),
        sent(json!("{\"score\": 0.1}\n"), "text/plain")
    );
    assert_eq!(
        answer(&text_file, None).unwrap(),
        sent(json!("line one\nline two\n"), "text/plain; charset=utf-8")
    );
    let binary = write("a.bin", &[0xff, 0xfe, 0x00]);
    let err = format!("{:#}", answer(&binary, None).unwrap_err());
    assert!(err.contains("neither JSON nor UTF-8"), "{err}");
    let missing = dir.path().join("nope").to_str().unwrap().to_owned();
    let err = format!("{:#}", answer(&missing, None).unwrap_err());
    assert!(err.contains("cannot read the answer file"), "{err}");
}

#[test]
fn json_content_types_are_recognised_by_their_essence() {
    for json in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/vnd.api+json",
    ] {
        assert!(is_json(json), "{json}");
    }
    for other in ["text/plain", "application/jsonl", "text/json+x", ""] {
        assert!(!is_json(other), "{other}");
    }
}
