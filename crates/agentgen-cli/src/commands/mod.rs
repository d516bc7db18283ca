//! One module per subcommand.

pub mod chat;
pub mod doctor;
pub mod models;
pub mod pull;
pub mod run;
pub mod serve;
pub mod sessions;
pub mod team;
pub mod verify;

use crate::cli::ModelsArgs;
use crate::error::CliResult;

/// Runs `agentgen models` (the catalog needs no backend feature).
pub fn models_cmd(args: &ModelsArgs) -> CliResult {
    models::run(args)
}
