//! Starting `agentgen serve` on a free loopback port for the Python client tests and
//! `verify-local`, and stopping it gracefully.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::cmd::{Cmd, Error};

/// How long the server may take to load the model and answer `/health` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// A running `agentgen serve`, stopped when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Where its output goes.
    pub log: PathBuf,
}

impl Server {
    /// Starts `agentgen serve` (with `extra` flags) on a free loopback port and waits until
    /// `/health` answers 200.
    pub fn start(agentgen: &Path, log: &Path, extra: &[&str]) -> Result<Self, Error> {
        let port = free_port()?;
        let child = Cmd::new(agentgen)
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string(), "--no-pull"])
            .args(extra)
            .spawn_logged(log)?;
        let mut server = Self { child, port, log: log.to_path_buf() };
        server.wait_ready()?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self) -> Result<(), Error> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Other(format!(
                    "agentgen serve exited ({status}) before it was ready; its log:\n{}",
                    log_tail(&self.log)
                )));
            }
            if http_get_status(self.port, "/health") == Some(200) {
                eprintln!(
                    "server ready on {} after {:.1} s",
                    self.base_url(),
                    start.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if start.elapsed() > READY_TIMEOUT {
                return Err(Error::Other(format!(
                    "agentgen serve not ready after {} s; its log:\n{}",
                    READY_TIMEOUT.as_secs(),
                    log_tail(&self.log)
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Asks the server to shut down gracefully (SIGTERM), killing it after a deadline.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Cmd::new("kill").args(["-TERM", &pid]).probe();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::Other(format!("cannot bind a loopback port: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| Error::Other(e.to_string()))
}

/// The HTTP status of `GET path` on 127.0.0.1:port, or `None` when nothing answers.
pub fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    // One write: `write!` may split the request over several segments.
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status_line(&String::from_utf8_lossy(&head))
}

/// The status code of an HTTP/1.x response's first line.
pub fn parse_status_line(head: &str) -> Option<u16> {
    let mut parts = head.lines().next()?.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

/// The last lines of a log file.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 200 OK\r\ncontent-length: 2"), Some(200));
        assert_eq!(parse_status_line("HTTP/1.1 503 Service Unavailable\r\n"), Some(503));
        assert_eq!(parse_status_line("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line(""), None);
    }

    #[test]
    fn health_probe_reads_a_real_http_answer() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 512];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "the client closed before finishing its request");
                request.extend_from_slice(&buf[..n]);
            }
            assert!(String::from_utf8_lossy(&request).starts_with("GET /health HTTP/1.1"));
            conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
        });
        assert_eq!(http_get_status(port, "/health"), Some(503));
        server.join().unwrap();
    }

    #[test]
    fn nothing_listening_is_none() {
        let port = free_port().unwrap();
        assert_eq!(http_get_status(port, "/health"), None);
    }
}
