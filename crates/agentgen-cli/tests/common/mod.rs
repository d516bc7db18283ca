//! What every subprocess test of the `agentgen` binary shares.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary under test (`$AGENTGEN_BIN` when set: another build of it) with a clean
/// environment: no keys, no AGENTGEN_* settings but the model cache, the test model and the
/// Python to use, no RUST_LOG, an empty user config directory, and `work` as its directory.
pub fn agentgen(work: &Path) -> Command {
    let bin = std::env::var_os("AGENTGEN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_agentgen")));
    let mut cmd = Command::new(bin);
    cmd.current_dir(work)
        .env("XDG_CONFIG_HOME", work.join("config-home"))
        .env_remove("GROQ_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("RUST_LOG")
        .env_remove("AGENTGEN_CONFIG");
    for (k, _) in std::env::vars() {
        if k.starts_with("AGENTGEN_")
            && !matches!(k.as_str(), "AGENTGEN_HOME" | "AGENTGEN_TEST_MODEL" | "AGENTGEN_PYTHON")
        {
            cmd.env_remove(k);
        }
    }
    cmd
}
