//! What every subprocess test of the `agentgen` binary shares.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The binary under test (`$AGENTGEN_BIN` when set: another build of it) with a clean
/// environment: no keys, no AGENTGEN_* settings but the model cache, the test model and the
/// Python to use, no RUST_LOG, no OTEL_* (no trace export), an empty user config directory,
/// and `work` as its directory.
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
        if k.starts_with("OTEL_") {
            cmd.env_remove(&k);
        }
        if k.starts_with("AGENTGEN_")
            && !matches!(k.as_str(), "AGENTGEN_HOME" | "AGENTGEN_TEST_MODEL" | "AGENTGEN_PYTHON")
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// One plain HTTP/1.1 request to `addr` (`Connection: close`): the status and the body.
#[allow(dead_code)] // not every test binary that shares this module speaks HTTP
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}
