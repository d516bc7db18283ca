//! One module per subcommand.

pub mod chat;
pub mod doctor;
#[cfg(feature = "local")]
pub mod models;
pub mod pull;
pub mod run;
pub mod serve;
pub mod verify;

use crate::cli::ModelsArgs;
use crate::error::CliResult;

/// Runs `agentgen models` (the catalog ships with the local backend).
pub fn models_cmd(args: &ModelsArgs) -> CliResult {
    #[cfg(feature = "local")]
    return models::run(args);
    #[cfg(not(feature = "local"))]
    {
        let _ = args;
        Err(crate::error::CliError::FeatureMissing {
            feature: "local",
            what: "feature, which the model catalog needs",
        })
    }
}
