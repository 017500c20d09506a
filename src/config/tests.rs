//! Config parsing and checking: the example file, and one test per kind of mistake.

use super::*;
use std::collections::HashMap;

const SERVER: &str = r#"
[server]
public_listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:9090"
data_dir = "data"
"#;

const ONE_MODEL: &str = r#"
[[models]]
name = "m"
protocol = "openai"
[[models.versions]]
version = "v1"
upstream = "http://127.0.0.1:9000/base/"
"#;

/// The `[ledger]` table every test config gets, appended at the end so
/// line numbers of the rest stay as written.
const LEDGER: &str = "\n[ledger]\norigin = \"test.example/log\"\nkey_file = \"test.key\"\n";

/// Writes a TEST-ONLY signing key (mode 0600) as `test.key` in `dir`.
fn write_test_key(dir: &Path) {
    let pem =
        super::keyfile::encode_pem(&ed25519_dalek::SigningKey::from_bytes(&[42; 32])).unwrap();
    std::fs::write(dir.join("test.key"), pem.as_bytes()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("test.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
}

/// A directory holding the test key, shared by the tests that need no files of their own.
fn key_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        write_test_key(&dir);
        dir
    })
}

fn test_env(vars: &[(&str, &str)]) -> Environment {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Environment::fixed(vars, key_dir())
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(&format!("{text}{LEDGER}"), "test.toml", &test_env(&[]))
}

fn error(text: &str) -> ConfigError {
    parse(text).expect_err("config should be refused")
}

/// Loads `example` (the shipped config's text, or a variant) as on a fresh
/// checkout after the README's keygen step.
fn load_example(example: &str) -> Result<Config, ConfigError> {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("config")).unwrap();
    std::fs::create_dir_all(root.path().join("data")).unwrap();
    std::fs::write(root.path().join("config/govgate.toml"), example).unwrap();
    write_test_key(&root.path().join("data"));
    std::fs::rename(
        root.path().join("data/test.key"),
        root.path().join("data/govgate.key"),
    )
    .unwrap();
    Config::load(&root.path().join("config/govgate.toml"))
}

const EXAMPLE: &str = include_str!("../../config/govgate.toml");

#[test]
fn shipped_example_is_accepted() {
    let config = load_example(EXAMPLE).unwrap();
    assert!(config.model("credit-scoring").unwrap().kpi.is_none());
    assert_eq!(config.ledger.origin, "govgate.example/local");
    assert_eq!(config.models.len(), 3);
    let credit = config.model("credit-scoring").unwrap();
    assert_eq!(credit.default_version, "2");
    assert_eq!(
        credit.version("1").unwrap().upstream_model.as_deref(),
        Some("credit-scoring-v1")
    );
    assert_eq!(
        config.model("fraud").unwrap().path_prefix.as_deref(),
        Some("/models/fraud")
    );
}

#[test]
fn shipped_example_kpi_section_is_valid_once_uncommented() {
    // Every line from `# [models.kpi]` to the blank line after it.
    let mut inside = false;
    let text: String = EXAMPLE
        .lines()
        .map(|line| {
            inside = (inside && !line.trim().is_empty()) || line == "# [models.kpi]";
            let line = if inside {
                line.strip_prefix("# ").unwrap_or(line)
            } else {
                line
            };
            format!("{line}\n")
        })
        .collect();
    assert_ne!(text, EXAMPLE, "the example has a commented [models.kpi]");
    let config = load_example(&text).unwrap();
    let kpi = config.model("credit-scoring").unwrap().kpi.clone().unwrap();
    assert_eq!((kpi.window, kpi.min_group_size), (10_000, 30));
    let names = |fields: &[super::KpiField]| -> Vec<String> {
        fields.iter().map(|f| f.name.clone()).collect()
    };
    assert_eq!(names(&kpi.attributes), ["sex", "age_group"]);
    assert_eq!(names(&kpi.features), ["credit_amount", "duration_months"]);
    assert_eq!(
        kpi.attributes[1].source,
        super::Source::Header("x-govgate-attr-age_group".to_owned())
    );
}

#[test]
fn minimal_config_gets_defaults_and_normalized_upstream() {
    let config = parse(&format!("{SERVER}{ONE_MODEL}")).unwrap();
    assert_eq!(config.server.caller_header.as_str(), "x-govgate-caller");
    assert_eq!(config.server.data_dir, key_dir().join("data"));
    assert_eq!(config.ledger.origin, "test.example/log");
    assert_eq!(
        config.ledger.payload_mode,
        crate::decision::PayloadMode::Full
    );
    assert_eq!(config.limits.max_request_body_bytes, 4 * 1024 * 1024);
    assert!(!config.server.half_close);
    assert_eq!(config.limits.max_header_bytes, 64 * 1024);
    assert_eq!(config.limits.max_headers, 100);
    assert_eq!(config.limits.public_max_connections, 8_192);
    assert_eq!(config.limits.admin_max_connections, 256);
    assert_eq!(config.limits.upstream_pool_max_idle_per_host, 256);
    assert_eq!(config.timeouts.header_read, Duration::from_secs(10));
    assert_eq!(config.timeouts.keep_alive_idle, Duration::from_secs(60));
    assert_eq!(config.timeouts.upstream_pool_idle, Duration::from_secs(30));
    let model = config.model("m").unwrap();
    assert_eq!(model.default_version, "v1");
    assert_eq!(
        model.versions[0].upstream.to_string(),
        "http://127.0.0.1:9000/base"
    );
}

#[test]
fn unknown_key_names_key_line_and_file() {
    let err = error(&format!("{SERVER}{ONE_MODEL}upstream_modle = \"x\"\n"));
    assert_eq!(err.file, "test.toml");
    assert!(err.key.starts_with("models[0].versions[0]"), "{err}");
    assert!(err.key.contains("line 13"), "{err}");
    assert!(
        err.message.contains("unknown field `upstream_modle`"),
        "{err}"
    );
}

#[test]
fn toml_syntax_error_names_line() {
    let err = error("[server\n");
    assert!(err.key.contains("line 1"), "{err}");
}

#[test]
fn missing_server_table_is_named() {
    let err = error(ONE_MODEL);
    assert!(err.message.contains("missing field `server`"), "{err}");
}

#[test]
fn each_mistake_names_its_key() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            SERVER.replace("127.0.0.1:9090", "localhost"),
            "server.admin_listen",
            "not an IP address",
        ),
        (
            SERVER.replace("127.0.0.1:9090", "127.0.0.1:8080"),
            "server.admin_listen",
            "must differ",
        ),
        (
            format!("{SERVER}caller_header = \"bad header\"\n"),
            "server.caller_header",
            "not a valid HTTP header",
        ),
        (
            format!("{SERVER}[limits]\nmax_request_body_bytes = 0\n"),
            "limits.max_request_body_bytes",
            "greater than 0",
        ),
        (
            format!("{SERVER}[timeouts]\nidle_ms = 0\n"),
            "timeouts.idle_ms",
            "greater than 0",
        ),
        (
            format!("{SERVER}[timeouts]\nheader_read_ms = 0\n"),
            "timeouts.header_read_ms",
            "greater than 0",
        ),
        (
            format!("{SERVER}[limits]\nmax_header_bytes = 100\n"),
            "limits.max_header_bytes",
            "between 1024 and 262144",
        ),
        (
            format!("{SERVER}[limits]\nmax_headers = 0\n"),
            "limits.max_headers",
            "between 1 and 1000",
        ),
        (
            format!("{SERVER}[limits]\ncapture_bytes = 67108865\n"),
            "limits.capture_bytes",
            "between 0 and 67108864",
        ),
        (
            format!("{SERVER}[limits]\npublic_max_connections = 0\n"),
            "limits.public_max_connections",
            "greater than 0",
        ),
        (SERVER.to_owned(), "models", "no models"),
        (
            format!("{SERVER}[upstream_tls]\nca_file = \"/nonexistent/ca.pem\"\n{ONE_MODEL}"),
            "upstream_tls.ca_file",
            "cannot read",
        ),
        (
            format!("{SERVER}{ONE_MODEL}").replace("\"openai\"", "\"grpc\""),
            "models[0].protocol",
            "unknown protocol `grpc`",
        ),
        (
            format!("{SERVER}{ONE_MODEL}").replace("name = \"m\"", "name = \"a b\""),
            "models[0].name",
            "must be 1 to 128",
        ),
        (
            format!("{SERVER}{ONE_MODEL}").replace("http://127.0.0.1:9000/base/", "ftp://x"),
            "models[0].versions[0].upstream",
            "http:// or https://",
        ),
        (
            format!("{SERVER}{ONE_MODEL}").replace("/base/", "/?q=1"),
            "models[0].versions[0].upstream",
            "query string",
        ),
        (
            format!("{SERVER}{ONE_MODEL}{ONE_MODEL}"),
            "models[1].name",
            "declared twice",
        ),
        (
            format!(
                "{SERVER}{ONE_MODEL}[[models.versions]]\nversion = \"v2\"\nupstream = \"http://h\"\n"
            ),
            "models[0].default_version",
            "more than one version",
        ),
        (
            format!("{SERVER}{ONE_MODEL}").replace(
                "protocol = \"openai\"",
                "protocol = \"openai\"\ndefault_version = \"v9\"",
            ),
            "models[0].default_version",
            "not one of",
        ),
        (
            format!("{SERVER}{ONE_MODEL}").replace("\"openai\"", "\"http\""),
            "models[0].path_prefix",
            "required for protocol `http`",
        ),
        (
            format!("{SERVER}{ONE_MODEL}")
                .replace("\"openai\"", "\"http\"\npath_prefix = \"/v1/x\""),
            "models[0].path_prefix",
            "overlaps",
        ),
        (
            format!("{SERVER}{ONE_MODEL}").replace("\"openai\"", "\"http\"\npath_prefix = \"/x/\""),
            "models[0].path_prefix",
            "must start with",
        ),
        (
            format!("{SERVER}{ONE_MODEL}")
                .replace("\"openai\"", "\"openai\"\npath_prefix = \"/x\""),
            "models[0].path_prefix",
            "only models with protocol `http`",
        ),
        (
            format!("{SERVER}{ONE_MODEL}[models.credential]\nenv = \"NOPE\"\n"),
            "models[0].credential.env",
            "`NOPE` is not set",
        ),
        (
            format!("{SERVER}{ONE_MODEL}[models.credential]\nheader = \"x\"\n"),
            "models[0].credential",
            "exactly one of",
        ),
        (
            format!("{SERVER}{ONE_MODEL}[models.versions.credential]\nenv = \"NOPE\"\n"),
            "models[0].versions[0].credential.env",
            "not set",
        ),
    ];
    for (text, key, message) in cases {
        let err = error(&text);
        assert_eq!(err.key, key, "{err}");
        assert!(
            err.message.contains(message),
            "expected `{message}` in: {err}"
        );
        assert!(
            err.to_string().starts_with(&format!("test.toml: {key}: ")),
            "{err}"
        );
    }
}

#[test]
fn credential_from_env_is_prefixed_sensitive_and_hidden_from_debug() {
    let text = format!("{SERVER}{ONE_MODEL}[models.versions.credential]\nenv = \"KEY\"\n");
    let config = Config::parse(
        &format!("{text}{LEDGER}"),
        "test.toml",
        &test_env(&[("KEY", "s3cret")]),
    )
    .unwrap();
    let credential = config.models[0].versions[0].credential.as_ref().unwrap();
    assert_eq!(credential.header.as_str(), "authorization");
    assert_eq!(credential.value, "Bearer s3cret");
    assert!(credential.value.is_sensitive());
    assert!(!format!("{config:?}").contains("s3cret"));
}

#[test]
fn anthropic_credentials_default_to_a_bare_x_api_key_replacing_both_caller_keys() {
    let anthropic = ONE_MODEL.replace("\"openai\"", "\"anthropic\"");
    let parsed = |extra: &str| {
        let text = format!("{SERVER}{anthropic}[models.credential]\nenv = \"KEY\"\n{extra}");
        Config::parse(
            &format!("{text}{LEDGER}"),
            "test.toml",
            &test_env(&[("KEY", "sk-ant-s3cret")]),
        )
        .unwrap()
    };
    let config = parsed("");
    assert_eq!(config.models[0].protocol, Protocol::Anthropic);
    let credential = config.models[0].versions[0].credential.as_ref().unwrap();
    assert_eq!(credential.header.as_str(), "x-api-key");
    assert_eq!(credential.value, "sk-ant-s3cret");
    assert!(credential.value.is_sensitive());
    let replaced: Vec<&str> = credential.replaces.iter().map(|h| h.as_str()).collect();
    assert_eq!(replaced, ["x-api-key", "authorization"]);
    // Header and prefix set in the file win; the caller's keys still go.
    let config = parsed("header = \"authorization\"\nprefix = \"Bearer \"\n");
    let credential = config.models[0].credential.as_ref().unwrap();
    assert_eq!(credential.header.as_str(), "authorization");
    assert_eq!(credential.value, "Bearer sk-ant-s3cret");
    let replaced: Vec<&str> = credential.replaces.iter().map(|h| h.as_str()).collect();
    assert_eq!(replaced, ["authorization", "x-api-key"]);
    // Other protocols replace only their own header, as before.
    let text = format!("{SERVER}{ONE_MODEL}[models.credential]\nenv = \"KEY\"\n");
    let config = Config::parse(
        &format!("{text}{LEDGER}"),
        "test.toml",
        &test_env(&[("KEY", "k")]),
    )
    .unwrap();
    let credential = config.models[0].credential.as_ref().unwrap();
    assert_eq!(credential.value, "Bearer k");
    let replaced: Vec<&str> = credential.replaces.iter().map(|h| h.as_str()).collect();
    assert_eq!(replaced, ["authorization"]);
}

#[test]
fn credential_from_file_relative_to_config_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.txt"), "abc\n").unwrap();
    write_test_key(dir.path());
    let text = format!(
        "{SERVER}{ONE_MODEL}[models.versions.credential]\nfile = \"key.txt\"\nheader = \"api-key\"\nprefix = \"\"\n{LEDGER}"
    );
    let config = Config::parse(
        &text,
        "test.toml",
        &Environment::fixed(HashMap::new(), dir.path()),
    )
    .unwrap();
    let credential = config.models[0].versions[0].credential.as_ref().unwrap();
    assert_eq!(credential.header.as_str(), "api-key");
    assert_eq!(credential.value, "abc");
}

#[test]
fn ca_file_without_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
    write_test_key(dir.path());
    let text = format!("{SERVER}[upstream_tls]\nca_file = \"ca.pem\"\n{ONE_MODEL}{LEDGER}");
    let err = Config::parse(
        &text,
        "test.toml",
        &Environment::fixed(HashMap::new(), dir.path()),
    )
    .unwrap_err();
    assert_eq!(err.key, "upstream_tls.ca_file");
    assert!(err.message.contains("no PEM certificates"), "{err}");
}

#[test]
fn ledger_mistakes_name_their_key() {
    let with = |ledger: &str| {
        Config::parse(
            &format!("{SERVER}{ONE_MODEL}{ledger}"),
            "test.toml",
            &test_env(&[]),
        )
    };
    let cases = [
        (
            "\n[ledger]\norigin = \"a b\"\nkey_file = \"test.key\"\n",
            "ledger.origin",
            "without spaces",
        ),
        (
            "\n[ledger]\norigin = \"o\"\nkey_file = \"nope.key\"\n",
            "ledger.key_file",
            "govgate keygen",
        ),
        (
            "\n[ledger]\norigin = \"o\"\nkey_file = \"test.key\"\npayloads = \"all\"\n",
            "ledger.payloads",
            "unknown mode",
        ),
        ("", "(file)", "missing field `ledger`"),
    ];
    for (ledger, key, message) in cases {
        let err = with(ledger).unwrap_err();
        assert!(err.key.starts_with(key) || key == "(file)", "{err}");
        assert!(err.message.contains(message), "{err}");
    }
}

#[test]
fn world_readable_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_test_key(dir.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("test.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let err = Config::parse(
            &format!("{SERVER}{ONE_MODEL}{LEDGER}"),
            "t",
            &Environment::fixed(HashMap::new(), dir.path()),
        )
        .unwrap_err();
        assert_eq!(err.key, "ledger.key_file");
        assert!(err.message.contains("chmod 600"), "{err}");
    }
}

#[test]
fn unreadable_credential_file_is_named_without_secret() {
    let text = format!("{SERVER}{ONE_MODEL}[models.versions.credential]\nfile = \"missing.key\"\n");
    let err = error(&text);
    assert_eq!(err.key, "models[0].versions[0].credential.file");
    assert!(err.message.contains("missing.key"), "{err}");
}

const TOKEN_HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[test]
fn governance_settings_are_read_with_safe_defaults() {
    let config = parse(&format!(
        "{SERVER}{ONE_MODEL}\n[[admin.tokens]]\nprincipal = \"alice@example\"\nroles = [\"proposer\", \"approver:ai_officer\"]\ntoken_sha256 = \"{TOKEN_HASH}\"\n\
         [governance.approval]\napprovers = 2\nrequired_roles = [\"ai_officer\"]\n\
         [governance.approval.high_risk]\napprovers = 3\nrequired_roles = [\"ai_officer\", \"security_officer\"]\n"
    ))
    .unwrap();
    assert_eq!(config.admin_tokens.len(), 1);
    assert_eq!(config.admin_tokens[0].principal, "alice@example");
    assert_eq!(config.admin_tokens[0].token_sha256[0], 0x9f);
    assert_eq!(config.approval.default.approvers, 2);
    assert_eq!(
        config.approval.high_risk.as_ref().unwrap().required_roles,
        vec!["ai_officer", "security_officer"]
    );
    let version = &config.models[0].versions[0];
    assert_eq!(
        version.risk_class, "high",
        "unclassified versions count as high risk"
    );
    assert_eq!(version.change_ref, "config");
    assert!(config.models[0].approval.is_none());

    let plain = parse(&format!("{SERVER}{ONE_MODEL}")).unwrap();
    assert_eq!(plain.approval.default.approvers, 2, "four eyes by default");
    assert!(plain.admin_tokens.is_empty());
}

#[test]
fn governance_mistakes_name_their_key() {
    let token = |roles: &str, hash: &str| {
        format!(
            "\n[[admin.tokens]]\nprincipal = \"p\"\nroles = {roles}\ntoken_sha256 = \"{hash}\"\n"
        )
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (
            token("[\"root\"]", TOKEN_HASH),
            "admin.tokens[0].roles[0]",
            "unknown role `root`",
        ),
        (
            token("[\"approver:AI\"]", TOKEN_HASH),
            "admin.tokens[0].roles[0]",
            "unknown role",
        ),
        (token("[]", TOKEN_HASH), "admin.tokens[0].roles", "at least one"),
        (
            token("[\"admin\"]", "abc"),
            "admin.tokens[0].token_sha256",
            "64 hex digits",
        ),
        (
            format!("{}{}", token("[\"admin\"]", TOKEN_HASH), token("[\"auditor\"]", TOKEN_HASH)),
            "admin.tokens[1].principal",
            "has two tokens",
        ),
        (
            "\n[governance.approval]\napprovers = 0\n".to_owned(),
            "governance.approval.approvers",
            "1 to 16",
        ),
        (
            "\n[governance.approval]\napprovers = 1\nrequired_roles = [\"a\", \"b\"]\n".to_owned(),
            "governance.approval.required_roles",
            "different approver",
        ),
        (
            "\n[governance.approval]\napprovers = 2\n[governance.approval.high_risk]\napprovers = 1\n"
                .to_owned(),
            "governance.approval.high_risk.approvers",
            "not fewer",
        ),
    ];
    for (extra, key, message) in cases {
        let err = error(&format!("{SERVER}{ONE_MODEL}{extra}"));
        assert_eq!(err.key, key, "{err}");
        assert!(err.message.contains(message), "{err}");
    }
    let err = error(&format!("{SERVER}{ONE_MODEL}risk_class = \"extreme\"\n"));
    assert_eq!(err.key, "models[0].versions[0].risk_class", "{err}");
    let err = error(&format!(
        "{SERVER}{ONE_MODEL}[models.approval]\napprovers = 2\nrequired_roles = [\"x y\"]\n"
    ));
    assert_eq!(err.key, "models[0].approval.required_roles[0]", "{err}");
}

const KPI_MODEL: &str = r#"
[[models]]
name = "credit"
protocol = "kserve_v2"
[models.kpi]
window = 500
reference_rows = 500
[models.kpi.outcome]
tensor = "score"
threshold = 0.5
[[models.kpi.attributes]]
name = "sex"
header = true
[[models.kpi.attributes]]
name = "age_group"
tensor = "protected"
column = 1
[[models.kpi.features]]
name = "credit_amount"
kind = "numeric"
tensor = "numeric"
column = 1
[[models.kpi.features]]
name = "purpose"
kind = "categorical"
pointer = "/parameters/purpose"
[[models.versions]]
version = "1"
upstream = "http://127.0.0.1:9000"
"#;

#[test]
fn kpi_settings_are_read_with_defaults() {
    let config = parse(&format!("{SERVER}{KPI_MODEL}")).unwrap();
    let kpi = config.models[0].kpi.clone().unwrap();
    assert_eq!((kpi.window, kpi.reference_rows), (500, 500));
    assert_eq!((kpi.min_group_size, kpi.max_groups), (30, 50));
    assert_eq!(kpi.outcome_rule, OutcomeRule::Score { threshold: 0.5 });
    assert_eq!(
        kpi.attributes[0].source,
        Source::Header("x-govgate-attr-sex".into())
    );
    assert_eq!(
        kpi.attributes[1].source,
        Source::Body {
            side: crate::kpi::Side::Request,
            selector: crate::kpi::Selector::Tensor {
                name: "protected".into(),
                column: Some(1)
            }
        }
    );
    assert_eq!(kpi.features[0].kind, FeatureKind::Numeric);
    assert_eq!(kpi.features[1].kind, FeatureKind::Categorical);
    assert!(
        parse(&format!("{SERVER}{ONE_MODEL}")).unwrap().models[0]
            .kpi
            .is_none()
    );
}

#[test]
fn kpi_mistakes_name_their_key() {
    let cases = [
        (
            "threshold = 0.5",
            "threshold = 0.5\npositive = [\"yes\"]",
            "models[0].kpi.outcome",
        ),
        (
            "tensor = \"score\"\nthreshold",
            "pointer = \"predictions\"\nthreshold",
            "models[0].kpi.outcome.pointer",
        ),
        (
            "name = \"sex\"\nheader = true",
            "name = \"sex\"\nheader = true\ntensor = \"x\"",
            "models[0].kpi.attributes[0]",
        ),
        (
            "kind = \"numeric\"",
            "kind = \"ordinal\"",
            "models[0].kpi.features[0].kind",
        ),
        ("window = 500", "window = 0", "models[0].kpi.window"),
        ("window = 500", "window = 1000001", "models[0].kpi.window"),
        (
            "reference_rows = 500",
            "reference_rows = 500\nmax_groups = 10001",
            "models[0].kpi.max_groups",
        ),
        (
            "reference_rows = 500",
            "reference_rows = 1000001",
            "models[0].kpi.reference_rows",
        ),
        (
            "name = \"age_group\"",
            "name = \"sex\"",
            "models[0].kpi.attributes[1].name",
        ),
        (
            "pointer = \"/parameters/purpose\"",
            "pointer = \"/a/*/b/*\"",
            "models[0].kpi.features[1].pointer",
        ),
    ];
    for (from, to, key) in cases {
        let text = format!("{SERVER}{}", KPI_MODEL.replacen(from, to, 1));
        assert_ne!(text, format!("{SERVER}{KPI_MODEL}"), "{from}");
        let err = error(&text);
        assert_eq!(err.key, key, "{from} -> {to}: {err}");
    }
}

#[test]
fn offline_commands_load_without_credentials() {
    let text = format!(
        "{SERVER}{ONE_MODEL}[models.credential]\nenv = \"NOPE\"\n\
         [upstream_tls]\nca_file = \"missing.pem\"\n{LEDGER}"
    );
    // The gateway needs the credential and the CA file...
    let err = Config::parse(&text, "test.toml", &test_env(&[])).unwrap_err();
    assert_eq!(err.key, "upstream_tls.ca_file", "{err}");
    // ...the offline commands need neither.
    let offline = OfflineConfig::parse(&text, "test.toml", key_dir()).unwrap();
    assert_eq!(offline.data_dir, key_dir().join("data"));
    assert_eq!(offline.ledger.origin, "test.example/log");
    // What they do need is still checked, and a typo is still an error.
    let no_key = text.replace("test.key", "absent.key");
    let err = OfflineConfig::parse(&no_key, "test.toml", key_dir()).unwrap_err();
    assert_eq!(err.key, "ledger.key_file", "{err}");
    let typo = text.replace("data_dir", "datadir");
    assert!(OfflineConfig::parse(&typo, "test.toml", key_dir()).is_err());
}

#[test]
fn the_ledgers_queue_and_batch_are_bounded() {
    let with = |extra: &str| {
        Config::parse(
            &format!("{SERVER}{ONE_MODEL}{LEDGER}{extra}"),
            "test.toml",
            &test_env(&[]),
        )
    };
    let most = with("queue_len = 1048576\nmax_batch = 65536\n").unwrap();
    assert_eq!(
        (most.ledger.queue_len, most.ledger.max_batch),
        (1 << 20, 1 << 16)
    );
    for (extra, key) in [
        ("queue_len = 1048577\n", "ledger.queue_len"),
        ("queue_len = 0\n", "ledger.queue_len"),
        ("max_batch = 65537\n", "ledger.max_batch"),
        ("max_batch = 0\n", "ledger.max_batch"),
    ] {
        let err = with(extra).unwrap_err();
        assert_eq!(err.key, key, "{extra}: {err}");
        assert!(err.message.contains("must be between 1 and"), "{err}");
    }
}

#[test]
fn witnesses_are_read_with_defaults_and_their_mistakes_named() {
    let vkey = crate::ledger::cosignature::Cosigner::new(
        "w.example/1",
        ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
    )
    .unwrap()
    .public()
    .vkey();
    let with = |extra: &str| {
        Config::parse(
            &format!("{SERVER}{ONE_MODEL}{LEDGER}{extra}"),
            "test.toml",
            &test_env(&[]),
        )
    };
    let table = |name: &str, url: &str, key: &str| {
        format!("[[ledger.witnesses]]\nname = \"{name}\"\nurl = \"{url}\"\nvkey = \"{key}\"\n")
    };
    let config = with(&table("w1", "https://w.example/submit/", &vkey)).unwrap();
    let witnessing = &config.ledger.witnesses;
    assert_eq!(witnessing.interval, Duration::from_secs(10));
    assert_eq!(witnessing.threshold, 1, "default: every witness");
    assert_eq!(
        witnessing.witnesses[0].add_checkpoint.to_string(),
        "https://w.example/submit/add-checkpoint"
    );
    assert_eq!(witnessing.witnesses[0].timeout, Duration::from_secs(5));
    assert!(with("").unwrap().ledger.witnesses.witnesses.is_empty());

    // The log's own (signed-note, type 0x01) key is not a witness key.
    let log_vkey = crate::ledger::checkpoint::NoteSigner::new(
        "w.example/1",
        ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
    )
    .unwrap()
    .verifier()
    .vkey();
    let two = format!(
        "{}{}",
        table("w1", "http://a", &vkey),
        table("w1", "http://b", &vkey)
    );
    let cases = [
        (table("w1", "ftp://a", &vkey), "ledger.witnesses[0].url"),
        (table("w 1", "http://a", &vkey), "ledger.witnesses[0].name"),
        (
            table("w1", "http://a", &log_vkey),
            "ledger.witnesses[0].vkey",
        ),
        (two, "ledger.witnesses[1].name"),
    ];
    for (extra, key) in &cases {
        let err = with(extra).unwrap_err();
        assert_eq!(err.key, *key, "{err}");
    }
    let threshold = format!(
        "{LEDGER}witness_threshold = 2\n{}",
        table("w1", "http://a", &vkey)
    );
    let err = Config::parse(
        &format!("{SERVER}{ONE_MODEL}{threshold}"),
        "test.toml",
        &test_env(&[]),
    )
    .unwrap_err();
    assert_eq!(err.key, "ledger.witness_threshold", "{err}");
}

#[test]
fn tiles_default_to_the_public_listener_and_can_move_or_stop() {
    let default = parse(&format!("{SERVER}{ONE_MODEL}")).unwrap();
    assert_eq!(
        default.tiles,
        TilesConfig::Public {
            cache_bytes: 32 * 1024 * 1024
        }
    );
    let own = parse(&format!(
        "{SERVER}[tiles]\nlisten = \"127.0.0.1:8443\"\nmax_connections = 10\ncache_mb = 0\n{ONE_MODEL}"
    ))
    .unwrap();
    assert_eq!(
        own.tiles,
        TilesConfig::Own {
            listen: "127.0.0.1:8443".parse().unwrap(),
            max_connections: 10,
            cache_bytes: 0
        }
    );
    let off = parse(&format!("{SERVER}[tiles]\nenabled = false\n{ONE_MODEL}")).unwrap();
    assert_eq!(off.tiles, TilesConfig::Off);
    for (table, key) in [
        ("listen = \"127.0.0.1:8080\"", "tiles.listen"),
        ("listen = \"nowhere\"", "tiles.listen"),
        (
            "listen = \"127.0.0.1:1\"\nmax_connections = 0",
            "tiles.max_connections",
        ),
        ("cache_mb = 70000", "tiles.cache_mb"),
    ] {
        let err = error(&format!("{SERVER}[tiles]\n{table}\n{ONE_MODEL}"));
        assert_eq!(err.key, key, "{table}: {err}");
    }
    assert!(
        error(&format!("{SERVER}[tiles]\nlisten_on = \"x\"\n{ONE_MODEL}"))
            .message
            .contains("unknown field")
    );
}

#[test]
fn jwt_accepts_only_asymmetric_algorithms_and_exactly_one_key_source() {
    let jwt = |extra: &str| {
        parse(&format!(
            "{SERVER}{ONE_MODEL}\n[auth.jwt]\nissuer = \"https://idp\"\naudience = \"gw\"\n{extra}"
        ))
    };
    let url = "jwks_url = \"https://idp/jwks.json\"\n";
    let ok = jwt(url).unwrap();
    let checked = ok.auth.jwt.unwrap();
    assert_eq!(checked.leeway_secs, 60);
    assert_eq!(checked.caller_claim, "sub");
    assert_eq!(checked.algorithms.len(), 3);
    for refused in ["none", "HS256", "RS384"] {
        let err = jwt(&format!("{url}algorithms = [\"{refused}\"]\n")).unwrap_err();
        assert!(
            err.to_string().contains("auth.jwt.algorithms"),
            "{refused}: {err}"
        );
    }
    for sources in ["", "jwks_url = \"https://idp/j\"\njwks_file = \"j.json\"\n"] {
        let err = jwt(sources).unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
    }
    let err = jwt("jwks_url = \"ftp://idp/j\"\n").unwrap_err();
    assert!(err.to_string().contains("auth.jwt.jwks_url"), "{err}");
    assert_eq!(checked.cache_entries, 10_000);
    let off = jwt(&format!("{url}cache_entries = 0\n")).unwrap();
    assert_eq!(off.auth.jwt.unwrap().cache_entries, 0);
    let err = jwt(&format!("{url}cache_entries = 1000001\n")).unwrap_err();
    assert!(err.to_string().contains("auth.jwt.cache_entries"), "{err}");
}

#[test]
fn admin_jwt_maps_claim_values_to_known_roles_and_names_its_keys() {
    let admin = |extra: &str| {
        parse(&format!(
            "{SERVER}{ONE_MODEL}\n[admin.jwt]\nissuer = \"https://idp\"\naudience = \"gw-admin\"\n\
             jwks_url = \"https://idp/jwks.json\"\n{extra}"
        ))
    };
    let ok =
        admin("[admin.jwt.roles]\n\"ai-officers\" = [\"approver:ai_officer\", \"reviewer\"]\n")
            .unwrap();
    let people = ok.admin_jwt.unwrap();
    assert_eq!(
        people.jwt.caller_claim, "sub",
        "principal_claim defaults to sub"
    );
    assert_eq!(people.roles_claim, "groups");
    assert_eq!(people.jwt.policy_claims, vec!["groups"]);
    assert_eq!(
        people.roles["ai-officers"],
        vec!["approver:ai_officer", "reviewer"]
    );

    let err = admin("").unwrap_err();
    assert_eq!(err.key, "admin.jwt.roles", "{err}");
    let err = admin("[admin.jwt.roles]\n\"x\" = [\"superuser\"]\n").unwrap_err();
    assert!(err.key.starts_with("admin.jwt.roles"), "{err}");
    let err =
        admin("algorithms = [\"HS256\"]\n[admin.jwt.roles]\n\"x\" = [\"auditor\"]\n").unwrap_err();
    assert_eq!(err.key, "admin.jwt.algorithms", "{err}");
    let err =
        admin("caller_claim = \"sub\"\n[admin.jwt.roles]\n\"x\" = [\"auditor\"]\n").unwrap_err();
    assert!(
        err.to_string().contains("caller_claim"),
        "unknown keys refused: {err}"
    );
}

#[test]
fn the_background_verification_takes_a_share_of_one_core_above_zero_and_at_most_one() {
    let with = |extra: &str| {
        Config::parse(
            &format!("{SERVER}{ONE_MODEL}{LEDGER}{extra}"),
            "test.toml",
            &test_env(&[]),
        )
    };
    let default = with("").unwrap();
    assert_eq!(default.ledger.verify_cpu_share.get(), 0.05);
    let half = with("verify_cpu_share = 0.5\n").unwrap();
    assert_eq!(half.ledger.verify_cpu_share.get(), 0.5);
    for refused in ["0", "1.5", "-0.1"] {
        let err = with(&format!("verify_cpu_share = {refused}\n")).unwrap_err();
        assert_eq!(err.key, "ledger.verify_cpu_share", "{err}");
        assert!(err.to_string().contains("share of one core"), "{err}");
    }
}

#[test]
fn policy_approval_is_none_by_default_a_word_or_a_checked_policy() {
    let with = |review: &str| parse(&format!("{SERVER}{ONE_MODEL}\n[review]\n{review}\n"));
    assert_eq!(with("").unwrap().review.policy_approval, None);
    assert_eq!(
        with("policy_approval = \"none\"")
            .unwrap()
            .review
            .policy_approval,
        None
    );
    let level = with("policy_approval = { approvers = 2, required_roles = [\"ai_officer\"] }")
        .unwrap()
        .review
        .policy_approval
        .unwrap();
    assert_eq!(
        (level.approvers, level.required_roles),
        (2, vec!["ai_officer".to_owned()])
    );
    // A typo must not switch change control off.
    let word = with("policy_approval = \"nope\"").unwrap_err().to_string();
    assert!(word.contains("review.policy_approval"), "{word}");
    let zero = with("policy_approval = { approvers = 0 }")
        .unwrap_err()
        .to_string();
    assert!(zero.contains("review.policy_approval.approvers"), "{zero}");
}

#[test]
fn the_review_queue_is_bounded_by_count_and_kept_bytes() {
    let with = |review: &str| parse(&format!("{SERVER}{ONE_MODEL}\n[review]\n{review}\n"));
    let defaults = with("").unwrap().review;
    assert_eq!(
        (defaults.max_pending, defaults.max_kept_bytes),
        (10_000, 256 << 20)
    );
    // A larger hold limit raises the default byte bound with it.
    let large = with("max_held_bytes = 536870912").unwrap().review;
    assert_eq!(large.max_kept_bytes, 512 << 20);
    let set = with("max_pending = 3\nmax_kept_bytes = 20000000")
        .unwrap()
        .review;
    assert_eq!((set.max_pending, set.max_kept_bytes), (3, 20_000_000));
    for (line, key) in [
        ("max_pending = 0", "review.max_pending"),
        ("max_pending = 1000001", "review.max_pending"),
        ("max_kept_bytes = 1000", "review.max_kept_bytes"),
    ] {
        let err = with(line).unwrap_err().to_string();
        assert!(err.contains(key), "{line}: {err}");
    }
}

const RISK: &str = r#"
[[risks]]
id = "r1"
title = "Errors"
owner = "ops"
models = ["m@v2"]
[[risks.indicators]]
kpi = "error_rate"
threshold = 0.05
direction = "above"
"#;

#[test]
fn a_risk_register_gets_defaults_and_keeps_a_pinned_version() {
    let config = parse(&format!("{SERVER}{ONE_MODEL}{RISK}")).unwrap();
    let register = &config.risks;
    assert_eq!(register.eval_every, Duration::from_secs(30));
    assert_eq!(register.window, Duration::from_secs(300));
    let risk = &register.risks[0];
    assert_eq!(risk.models[0].to_string(), "m@v2");
    assert_eq!(risk.indicators[0].kpi, RiskKpi::ErrorRate);
    assert_eq!(risk.indicators[0].min_count, 10);
    assert_eq!(risk.indicators[0].for_secs, 0);
    assert!(risk.indicators[0].direction.beyond(0.06, 0.05));
    assert!(!risk.indicators[0].direction.beyond(0.05, 0.05));
    assert!(
        parse(&format!("{SERVER}{ONE_MODEL}"))
            .unwrap()
            .risks
            .risks
            .is_empty()
    );
}

#[test]
fn risk_register_settings_and_sources_are_checked() {
    let with = |table: &str| error(&format!("{table}\n{SERVER}{ONE_MODEL}{RISK}"));
    let err = with("[risk_register]\neval_every_secs = 0");
    assert_eq!(err.key, "risk_register.eval_every_secs");
    let err = with("[risk_register]\neval_every_secs = 60\nwindow_secs = 30");
    assert_eq!(err.key, "risk_register.window_secs");
    let err = with("[risk_register]\nfile = \"risks.toml\"");
    assert_eq!(err.key, "risk_register.file");
    assert!(err.message.contains("not both"), "{err}");
    let err = error(&format!(
        "[risk_register]\nfile = \"missing-risks.toml\"\n{SERVER}{ONE_MODEL}"
    ));
    assert!(err.message.contains("cannot read"), "{err}");
    let err = error(&format!(
        "{SERVER}{ONE_MODEL}{}",
        RISK.replace("kpi = \"error_rate\"", "kpi = \"psi\"")
    ));
    assert_eq!(err.key, "risks[0].indicators[0].feature");
    let err = error(&format!(
        "{SERVER}{ONE_MODEL}{}",
        RISK.replace(
            "kpi = \"error_rate\"",
            "kpi = \"error_rate\"\nfeature = \"x\""
        )
    ));
    assert!(err.message.contains("takes no feature"), "{err}");
    let err = error(&format!(
        "{SERVER}{ONE_MODEL}{}",
        RISK.replace("\"r1\"", "\"r 1\"")
    ));
    assert_eq!(err.key, "risks[0].id");
}

#[test]
fn http2_settings_default_and_are_checked() {
    let config = parse(&format!("{SERVER}{ONE_MODEL}")).unwrap();
    assert_eq!(config.server.http2, Http2Settings::default());
    assert_eq!(config.server.http2.max_concurrent_streams, 100);
    assert_eq!(config.models[0].versions[0].http, UpstreamHttp::Http1);
    let config = parse(&format!(
        "{SERVER}[server.http2]\nmax_concurrent_streams = 7\nkeep_alive_interval_ms = 0\n{ONE_MODEL}"
    ))
    .unwrap();
    assert_eq!(config.server.http2.max_concurrent_streams, 7);
    assert_eq!(config.server.http2.keep_alive_interval, None);
    for (line, key) in [
        (
            "max_concurrent_streams = 0",
            "server.http2.max_concurrent_streams",
        ),
        ("max_frame_bytes = 1000", "server.http2.max_frame_bytes"),
        (
            "initial_stream_window_bytes = 10",
            "server.http2.initial_stream_window_bytes",
        ),
        ("max_streams = 5", "server.http2"),
    ] {
        let err = error(&format!("{SERVER}[server.http2]\n{line}\n{ONE_MODEL}"));
        assert!(err.key.starts_with(key), "{line}: {err}");
    }
}

#[test]
fn upstream_http_comes_from_the_version_else_the_model() {
    let text = format!(
        "{SERVER}{}",
        ONE_MODEL
            .replace(
                "protocol = \"openai\"",
                "protocol = \"openai\"\nhttp = \"auto\"\ndefault_version = \"v1\"",
            )
            .replace(
                "upstream = \"http://127.0.0.1:9000/base/\"",
                "upstream = \"http://127.0.0.1:9000/base/\"\n[[models.versions]]\nversion = \"v2\"\nupstream = \"http://127.0.0.1:9001\"\nhttp = \"http2\""
            )
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.models[0].http, UpstreamHttp::Auto);
    assert_eq!(config.models[0].versions[0].http, UpstreamHttp::Auto);
    assert_eq!(config.models[0].versions[1].http, UpstreamHttp::Http2);
    let err = error(&text.replace("\"http2\"", "\"h2\""));
    assert_eq!(err.key, "models[0].versions[1].http", "{err}");
}

#[test]
fn cluster_takes_its_url_from_the_environment_and_checks_the_replica_id() {
    let with = |cluster: &str| {
        Config::parse(
            &format!("{SERVER}{ONE_MODEL}{cluster}{LEDGER}"),
            "test.toml",
            &test_env(&[("DB", "host=/run/pg user=govgate password=pw")]),
        )
    };
    let config = with("[cluster]\nurl = { env = \"DB\" }\nreplica_id = \"gw-1\"\n").unwrap();
    let cluster = config.cluster.expect("[cluster]");
    assert_eq!(cluster.url.0, "host=/run/pg user=govgate password=pw");
    assert_eq!(cluster.replica_id, "gw-1");
    assert_eq!(cluster.lease, Duration::from_secs(15));
    assert_eq!(cluster.max_staleness, Duration::from_secs(300));
    assert!(
        !format!("{:?}", cluster.url).contains("pw"),
        "the URL is never printed"
    );
    assert!(
        parse(&format!("{SERVER}{ONE_MODEL}"))
            .unwrap()
            .cluster
            .is_none()
    );
    for (cluster, key, says) in [
        (
            "[cluster]\nurl = { env = \"DB\" }\nreplica_id = \"GW_1\"\n",
            "cluster.replica_id",
            "a-z 0-9 -",
        ),
        (
            "[cluster]\nurl = { env = \"DB\" }\nreplica_id = \"-gw\"\n",
            "cluster.replica_id",
            "not starting or ending",
        ),
        (
            "[cluster]\nurl = { env = \"DB\" }\nreplica_id = \"gw\"\nlease_secs = 2\n",
            "cluster.lease_secs",
            "at least 3",
        ),
        (
            "[cluster]\nurl = { env = \"DB\" }\nreplica_id = \"gw\"\nmax_staleness_secs = 1\n",
            "cluster.max_staleness_secs",
            "at least 2",
        ),
        (
            "[cluster]\nurl = { env = \"NOPE\" }\nreplica_id = \"gw\"\n",
            "cluster.url.env",
            "`NOPE` is not set",
        ),
    ] {
        let err = with(cluster).expect_err(cluster);
        assert_eq!(err.key, key, "{err}");
        assert!(err.message.contains(says), "{err}");
    }
}

#[test]
fn a_grpc_model_speaks_http2_to_its_upstream_and_refuses_anything_else() {
    let grpc = ONE_MODEL.replace("protocol = \"openai\"", "protocol = \"kserve_v2_grpc\"");
    let config = parse(&format!("{SERVER}{grpc}")).unwrap();
    assert_eq!(
        config.models[0].protocol,
        crate::decision::Protocol::KserveV2Grpc
    );
    assert_eq!(config.models[0].http, UpstreamHttp::Http2);
    assert_eq!(config.models[0].versions[0].http, UpstreamHttp::Http2);
    for (http, key) in [("http1", "models[0].http"), ("auto", "models[0].http")] {
        let text = grpc.replace(
            "protocol = \"kserve_v2_grpc\"",
            &format!("protocol = \"kserve_v2_grpc\"\nhttp = \"{http}\""),
        );
        let err = error(&format!("{SERVER}{text}"));
        assert_eq!(err.key, key, "{err}");
        assert!(err.message.contains("needs HTTP/2"), "{err}");
    }
    let text = grpc.replace(
        "upstream = \"http://127.0.0.1:9000/base/\"",
        "upstream = \"http://127.0.0.1:9000/base/\"\nhttp = \"http1\"",
    );
    let err = error(&format!("{SERVER}{text}"));
    assert_eq!(err.key, "models[0].versions[0].http", "{err}");
}
