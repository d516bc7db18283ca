//! `agentgen team check FILE` and `agentgen team new [--kind TYPE]`.

use std::io::Write;
use std::path::Path;

use crate::error::{CliError, CliResult};
use crate::team::{self, TeamKind, TeamSpec};

/// Checks a team file and prints what it describes.
pub fn check(path: &Path) -> CliResult {
    let (spec, _) = load(path)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}: ok", path.display())
        .and_then(|()| out.write_all(team::show(&spec).as_bytes()))
        .map_err(|e| CliError::io("writing to stdout", e))
}

/// Prints the starter file of a team type.
pub fn new(kind: &str) -> CliResult {
    let kind: TeamKind = kind.parse().map_err(CliError::Usage)?;
    std::io::stdout()
        .lock()
        .write_all(team::starter(kind).as_bytes())
        .map_err(|e| CliError::io("writing to stdout", e))
}

/// Reads a team file of either format: AutoGen component JSON (a `.json` name, or text that
/// starts with `{`) or TOML. Also returns the team-file TOML (the JSON's conversion), which a
/// journaled run keeps to resume from.
pub fn load(path: &Path) -> CliResult<(TeamSpec, String)> {
    let text = team::read(path)?;
    if !team::autogen::is_component_json(path, &text) {
        return Ok((TeamSpec::parse(&text, path)?, text));
    }
    let converted = team::autogen::to_toml(&text, path)?;
    match TeamSpec::parse(&converted, path) {
        Ok(spec) => Ok((spec, converted)),
        Err(e) => Err(team::autogen::relocate(e, &converted, &text).into()),
    }
}
