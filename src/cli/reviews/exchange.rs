//! One call to the admin API for `govgate reviews` and `govgate policies`,
//! with the token, refusals and exit codes of `govgate models`.

use crate::cli::admin_client::AdminClient;
use crate::cli::models::{self, Failure};
use http::Method;
use serde_json::Value;
use std::process::ExitCode;

/// Where the admin API is and how to print its answer.
#[derive(Debug, clap::Args)]
pub(in crate::cli) struct AdminOptions {
    /// The gateway's admin API (plain HTTP).
    #[arg(
        long,
        value_name = "URL",
        env = "GOVGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:9090",
        global = true
    )]
    pub(in crate::cli) admin_url: String,
    /// Print the admin API's JSON answer as it came, instead of text or a table.
    #[arg(long, global = true)]
    pub(in crate::cli) json: bool,
}

/// Calls `method path` with `body` and prints the answer: as it came with
/// `--json`, else as `render` puts it. A refusal is printed as `govgate
/// models` prints it, with the policy set the gateway keeps, if it says.
pub(in crate::cli) fn perform(
    admin: &AdminOptions,
    method: &Method,
    path: &str,
    body: Option<&Value>,
    render: impl FnOnce(&Value) -> String,
) -> Result<(), Failure> {
    let token = models::token()?;
    models::check_admin_url(&admin.admin_url)?;
    let runtime = crate::cli::runtime(std::num::NonZeroUsize::new(1))?;
    let client = AdminClient::new(&admin.admin_url, &token);
    let (status, bytes) = runtime.block_on(client.call_raw(method.clone(), path, body))?;
    let value: Option<Value> = serde_json::from_slice(&bytes).ok();
    if !status.is_success() {
        let failure = models::refusal(&client, status, value.as_ref(), &bytes, admin.json);
        if let (Failure::Refused, Some(kept)) = (&failure, value.as_ref().and_then(kept_set)) {
            eprintln!("  the gateway keeps policy set {kept}");
        }
        return Err(failure);
    }
    let Some(value) = value.filter(Value::is_object) else {
        return Err(models::not_the_api(&client, status).into());
    };
    crate::cli::print_out(&if admin.json {
        models::with_newline(&bytes)
    } else {
        render(&value)
    });
    Ok(())
}

/// The policy set a refused reload left in force.
fn kept_set(answer: &Value) -> Option<&Value> {
    Some(&answer["error"]["kept_set_seq"]).filter(|seq| seq.is_u64())
}

/// 0 done, 1 refused (already printed), 2 could not be carried out.
pub(in crate::cli) fn exit_code(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused) => ExitCode::from(1),
        Err(Failure::Trouble(err)) => {
            eprintln!("govgate: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use serde_json::json;

    #[test]
    fn admin_options_go_before_or_after_the_subcommand() {
        let admin = |line: &[&str]| match Cli::try_parse_from(line).unwrap().command {
            Command::Reviews(args) => args.admin,
            other => panic!("parsed as {other:?}"),
        };
        let url = "http://10.0.0.1:9090";
        let options = admin(&["govgate", "reviews", "list", "--json", "--admin-url", url]);
        assert!(options.json);
        assert_eq!(options.admin_url, url);
        assert!(admin(&["govgate", "reviews", "--json", "show", "r"]).json);
        assert!(!admin(&["govgate", "reviews", "show", "r"]).json);
    }

    #[test]
    fn a_refused_reload_names_the_set_kept() {
        let refused = json!({"error": {"code": "policy_invalid",
            "message": "broken.rego:3: rego_parse_error", "kept_set_seq": 5}});
        assert_eq!(kept_set(&refused), Some(&json!(5)));
        let other = json!({"error": {"code": "forbidden", "message": "m"}});
        assert_eq!(kept_set(&other), None);
    }
}
