//! `agentgen verify-local URL`: checks that a server's model runs on this machine. The server's
//! API key, when it needs one, comes from the configuration (`server.api_key`,
//! `AGENTGEN_SERVER__API_KEY`).

use crate::cli::VerifyArgs;
use crate::config::Settings;
use crate::error::{CliError, CliResult};

/// Runs `agentgen verify-local`.
#[cfg(feature = "server")]
pub async fn run(args: &VerifyArgs, settings: &Settings) -> CliResult {
    use agentgen_server::verify::Outcome;
    use agentgen_server::{verify_local_with, VerifyOptions};

    let opts = VerifyOptions {
        api_key: settings.server.api_key.as_ref().map(|k| k.expose().to_owned()),
        ..VerifyOptions::default()
    };
    let report = verify_local_with(&args.url, &opts).await;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        for c in &report.checks {
            let mark = match c.outcome {
                Outcome::Pass => "pass",
                Outcome::Fail => "FAIL",
                Outcome::Skip => "skip",
            };
            outln!("{mark:>4}  {:<15} {}", c.name, c.detail);
        }
        outln!(
            "{}",
            if report.pass { "PASS: the server runs its model on this machine" } else { "FAIL" }
        );
    }
    if report.pass {
        Ok(())
    } else {
        Err(CliError::NotLocal(report.reasons.join("; ")))
    }
}

/// Runs `agentgen verify-local`.
#[cfg(not(feature = "server"))]
pub async fn run(_args: &VerifyArgs, _settings: &Settings) -> CliResult {
    Err(CliError::FeatureMissing { feature: "server", what: "feature, which `verify-local` needs" })
}
