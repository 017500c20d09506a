//! OPA's built-in families the engine is built with: each used by a policy
//! that loads (trial evaluations included) and decides as OPA would. The
//! expected values are OPA's documented examples
//! (<https://www.openpolicyagent.org/docs/policy-reference>), or follow
//! from the standard the built-in implements where OPA's page shows none.

use super::*;
use serde_json::{Value, json};

/// Loads `rules` (the body of a file in package `govgate`) and evaluates
/// it on a request from `caller` whose body is `request`.
fn decide(rules: &str, caller: &str, request: Value) -> Verdict {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("package govgate\n\n{rules}\n");
    std::fs::write(dir.path().join("p.rego"), text).unwrap();
    let set = PolicySet::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let input = PolicyInput::request(
        "m",
        "v1",
        "high",
        caller,
        "00000000000000000000000000000000",
        request,
    );
    set.evaluate(&input).unwrap()
}

/// The flags `rules` raise for `request` (from `svc-loans`).
fn flags(rules: &str, request: Value) -> Vec<String> {
    decide(rules, "svc-loans", request)
        .all
        .flag
        .iter()
        .cloned()
        .collect()
}

/// The one example the issue names: `check-config` refused this policy
/// with "could not find function regex.match".
#[test]
fn regex_match_decides_on_the_caller() {
    let rules = "deny contains \"caller pattern\" if {\n\
        \tinput.stage == \"request\"\n\
        \tnot regex.match(`^svc-[a-z]+$`, input.caller)\n}\n\
        flag contains \"doc example\" if {\n\
        \tregex.match(`^[a-z]+\\[[0-9]+\\]$`, \"foo[1]\")\n\
        \tregex.find_n(`[oa]+`, \"foo bar baz\", -1) == [\"oo\", \"a\", \"a\"]\n\
        \tregex.split(`a`, \"banana\") == [\"b\", \"n\", \"n\", \"\"]\n}\n";
    assert_eq!(decide(rules, "svc-loans", Value::Null).action, Action::Flag);
    assert_eq!(decide(rules, "alice", Value::Null).action, Action::Deny);
    assert_eq!(decide(rules, "svc-Loans", Value::Null).action, Action::Deny);
}

/// Business hours in a time zone, from a time in the request.
#[test]
fn time_clock_weekday_and_parsing() {
    let rules = "hold contains \"outside business hours\" if {\n\
        \tns := time.parse_rfc3339_ns(input.request.at)\n\
        \t[hour, _, _] := time.clock([ns, \"Europe/Paris\"])\n\
        \tnot hour >= 9\n}\n\
        hold contains \"weekend\" if {\n\
        \tns := time.parse_rfc3339_ns(input.request.at)\n\
        \ttime.weekday(ns) in {\"Saturday\", \"Sunday\"}\n}\n\
        flag contains \"epoch\" if {\n\
        \ttime.date(0) == [1970, 1, 1]\n\
        \ttime.weekday(0) == \"Thursday\"\n\
        \ttime.parse_duration_ns(\"1h\") == 3600000000000\n\
        \ttime.now_ns() > 0\n}\n";
    // 07:30 UTC is 08:30 in Paris in winter (UTC+1), a Monday.
    let early = decide(rules, "svc", json!({"at": "2026-12-07T07:30:00Z"}));
    assert_eq!(early.action, Action::Hold);
    assert_eq!(early.reasons, ["outside business hours"]);
    let on_time = decide(rules, "svc", json!({"at": "2026-12-07T08:30:00Z"}));
    assert_eq!(on_time.action, Action::Flag, "{on_time:?}");
    let saturday = decide(rules, "svc", json!({"at": "2026-12-05T12:00:00Z"}));
    assert_eq!(saturday.reasons, ["weekend"]);
}

#[test]
fn glob_match_as_documented() {
    let rules = "flag contains \"github\" if glob.match(\"*.github.com\", [], input.request.host)\n\
        flag contains \"dots\" if glob.match(\"*.github.com\", [\".\"], input.request.host)\n\
        flag contains \"any\" if glob.match(\"*hub.com\", null, input.request.host)\n\
        flag contains \"colons\" if glob.match(\"*:github:com\", [\":\"], \"api:github:com\")\n\
        flag contains \"super\" if glob.match(\"api.**.com\", [], input.request.host)\n";
    // OPA: an empty delimiter list means ["."], so `*` does not cross a
    // dot there; null means no delimiter; `**` crosses delimiters.
    assert_eq!(
        flags(rules, json!({"host": "api.cdn.github.com"})),
        ["any", "colons", "super"]
    );
    assert_eq!(
        flags(rules, json!({"host": "api.github.com"})),
        ["any", "colons", "dots", "github", "super"]
    );
}

#[test]
fn net_cidr_contains_as_documented() {
    let rules = "deny contains \"outside the office network\" if {\n\
        \tnot net.cidr_contains(\"10.0.0.0/8\", input.request.client_ip)\n}\n\
        flag contains \"doc example\" if {\n\
        \tnet.cidr_contains(\"127.0.0.0/24\", \"127.0.0.1\")\n\
        \tnet.cidr_contains(\"127.0.0.0/24\", \"127.0.0.0/25\")\n\
        \tnot net.cidr_contains(\"127.0.0.0/24\", \"127.0.1.1\")\n}\n";
    let inside = decide(rules, "svc", json!({"client_ip": "10.1.2.3"}));
    assert_eq!(inside.action, Action::Flag);
    let outside = decide(rules, "svc", json!({"client_ip": "192.168.1.1"}));
    assert_eq!(outside.action, Action::Deny);
}

#[test]
fn semver_compare_and_is_valid() {
    // SemVer 2.0.0, section 11: 1.0.0-alpha < 1.0.0 < 2.0.0.
    let rules = "deny contains \"client too old\" if {\n\
        \tsemver.compare(input.request.client_version, \"1.4.0\") < 0\n}\n\
        flag contains \"doc example\" if {\n\
        \tsemver.compare(\"1.0.0\", \"2.0.0\") == -1\n\
        \tsemver.compare(\"1.0.0-alpha\", \"1.0.0\") == -1\n\
        \tsemver.is_valid(\"1.0.0\")\n\
        \tnot semver.is_valid(\"1.0\")\n}\n";
    let old = decide(rules, "svc", json!({"client_version": "1.3.9"}));
    assert_eq!(old.action, Action::Deny);
    let new = decide(rules, "svc", json!({"client_version": "1.10.0"}));
    assert_eq!(new.action, Action::Flag);
}

#[test]
fn encodings_base64_base64url_hex_urlquery() {
    let rules = "flag contains \"base64\" if {\n\
        \tbase64.encode(\"hello\") == \"aGVsbG8=\"\n\
        \tbase64.decode(\"aGVsbG8=\") == \"hello\"\n\
        \tbase64.is_valid(\"aGVsbG8=\")\n}\n\
        flag contains \"base64url\" if {\n\
        \tbase64url.encode(\"subjects?_d\") == \"c3ViamVjdHM_X2Q=\"\n\
        \tbase64url.encode_no_pad(\"subjects?_d\") == \"c3ViamVjdHM_X2Q\"\n\
        \tbase64url.decode(\"c3ViamVjdHM_X2Q=\") == \"subjects?_d\"\n}\n\
        flag contains \"hex\" if {\n\
        \thex.encode(\"hello\") == \"68656c6c6f\"\n\
        \thex.decode(\"68656c6c6f\") == \"hello\"\n}\n\
        flag contains \"urlquery\" if {\n\
        \turlquery.encode(\"a b&c\") == \"a+b%26c\"\n\
        \turlquery.decode(\"a+b%26c\") == \"a b&c\"\n\
        \turlquery.encode_object({\"q\": \"x y\"}) == \"q=x+y\"\n\
        \turlquery.decode_object(\"a=1&a=2\") == {\"a\": [\"1\", \"2\"]}\n}\n\
        deny contains \"token for someone else\" if {\n\
        \tclaims := json.unmarshal(base64url.decode(input.request.claims))\n\
        \tclaims.sub != input.caller\n}\n";
    let claims = |sub: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE.encode(format!("{{\"sub\":\"{sub}\"}}"))
    };
    let mine = decide(rules, "svc-a", json!({"claims": claims("svc-a")}));
    assert_eq!(mine.action, Action::Flag);
    let all: Vec<_> = mine.all.flag.iter().cloned().collect();
    assert_eq!(all, ["base64", "base64url", "hex", "urlquery"]);
    let theirs = decide(rules, "svc-a", json!({"claims": claims("svc-b")}));
    assert_eq!(theirs.action, Action::Deny);
}

#[test]
fn uuid_parse_and_rfc4122() {
    // RFC 9562's example of a version 4 UUID.
    let rules = "flag contains \"v4\" if {\n\
        \tparsed := uuid.parse(input.request.trace)\n\
        \tparsed.version == 4\n\
        \tparsed.variant == \"RFC4122\"\n}\n\
        flag contains \"generated\" if {\n\
        \tid := uuid.rfc4122(\"k\")\n\
        \tregex.match(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, id)\n\
        \tid == uuid.rfc4122(\"k\")\n}\n";
    assert_eq!(
        flags(
            rules,
            json!({"trace": "919108f7-52d1-4320-9bac-f847db4148a8"})
        ),
        ["generated", "v4"]
    );
    assert_eq!(flags(rules, json!({"trace": "not a uuid"})), ["generated"]);
}

#[test]
fn json_schema_verify_and_match() {
    let rules = "deny contains \"request does not match its schema\" if {\n\
        \tschema := {\"type\": \"object\", \"required\": [\"amount\"],\n\
        \t\t\"properties\": {\"amount\": {\"type\": \"number\", \"maximum\": 10000}}}\n\
        \t[false, _] := json.match_schema(input.request, schema)\n}\n\
        flag contains \"schema is valid\" if {\n\
        \t[true, null] == json.verify_schema({\"type\": \"string\"})\n}\n";
    assert_eq!(
        decide(rules, "svc", json!({"amount": 500})).action,
        Action::Flag
    );
    assert_eq!(
        decide(rules, "svc", json!({"amount": 50000})).action,
        Action::Deny
    );
    assert_eq!(decide(rules, "svc", json!({})).action, Action::Deny);
}

#[test]
fn yaml_unmarshal_marshal_is_valid() {
    let rules = "flag contains \"yaml\" if {\n\
        \tyaml.unmarshal(\"a: 1\\nb: [x, y]\\n\") == {\"a\": 1, \"b\": [\"x\", \"y\"]}\n\
        \tyaml.unmarshal(yaml.marshal({\"k\": [1, 2]})) == {\"k\": [1, 2]}\n\
        \tyaml.is_valid(\"a: 1\")\n\
        \tnot yaml.is_valid(\"a: [\")\n}\n";
    assert_eq!(flags(rules, Value::Null), ["yaml"]);
}

/// Policies must not reach the network or the process: these OPA
/// built-ins do not exist here, and a policy naming one does not load.
#[test]
fn network_and_runtime_builtins_are_absent() {
    for call in [
        "http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1/\"})",
        "opa.runtime()",
        "net.lookup_ip_addr(\"example.com\")",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let text =
            format!("package govgate\n\nflag contains \"x\" if {{\n\tx := {call}\n\tx != 0\n}}\n");
        std::fs::write(dir.path().join("p.rego"), text).unwrap();
        match PolicySet::load(dir.path()) {
            Err(err) => assert!(
                err.to_string().contains("could not find function"),
                "{call}: {err}"
            ),
            Ok(_) => panic!("{call} loads"),
        }
    }
}
