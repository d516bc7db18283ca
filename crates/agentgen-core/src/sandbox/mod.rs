//! Runs untrusted programs (model-written code) in a sandbox: a fresh working directory, an
//! environment allow-list, resource limits, no network and no writes outside the directory,
//! all of the program's processes killed when it ends, times out or is cancelled.
//!
//! What is enforced on Linux:
//!
//! - **Working directory**: a fresh temporary directory per [`Sandbox`], removed when it is
//!   dropped; `HOME` and `TMPDIR` point into it.
//! - **Environment**: cleared, then only the variables named in
//!   [`SandboxPolicy::env_allow`] are copied from the caller (by default `PATH` and the locale
//!   ones, no keys) and [`SandboxPolicy::env_set`] is added.
//! - **Processes**: the program runs in a user namespace of its own (where the kernel allows
//!   one: always with network isolation) and leads its own process group; when it exits, times
//!   out or is cancelled (or the run's future is dropped) every process of the group and of the
//!   namespace gets `SIGKILL`, so children that left the group (`setsid`) do not survive it
//!   either. Pipes are read only until then, so `sleep 999 &` neither outlives the run nor holds
//!   it open. Without a user namespace (network allowed on a kernel that refuses one) only the
//!   group is killed.
//! - **Limits**: `RLIMIT_CPU`, `RLIMIT_AS`, `RLIMIT_NPROC`, `RLIMIT_FSIZE`, `RLIMIT_NOFILE`,
//!   `RLIMIT_CORE` = 0 (see [`Limits`]), never above the caller's own hard limits.
//!   `RLIMIT_NPROC` does not bind root outside a user namespace, and code has no business
//!   running as root anyway, so when the caller is root the program runs as
//!   `nobody` (uid and gid 65534) unless [`SandboxPolicy::drop_root`] is off. In a user
//!   namespace the process limit counts the run's own processes; without one, all of that
//!   user's.
//! - **Network** ([`Network::Isolated`], the default): a new user and network namespace with
//!   only a loopback device that is down, so no connection to anything, 127.0.0.1 included. Where
//!   the kernel does not allow one, [`Sandbox::new`] refuses with
//!   [`SandboxError::NetworkIsolationUnavailable`]; [`Network::Allowed`] is the opt-out. With
//!   Landlock ABI 4 or later, TCP `bind` and `connect` are also denied by Landlock.
//! - **Filesystem writes** ([`Writes::WorkDirOnly`], the default): Landlock lets the program
//!   create, write, truncate, rename or remove only beneath its working directory (and write to
//!   `/dev/null`). Where Landlock is missing, [`Sandbox::new`] refuses with
//!   [`SandboxError::WriteIsolationUnavailable`]; [`Writes::Anywhere`] is the opt-out. Reading
//!   is not restricted: the program can read whatever the user it runs as can read.
//! - `no_new_privs` is always set, so set-uid programs (`sudo`, `su`) gain nothing.
//!
//! Elsewhere namespaces and Landlock do not exist: the default policy is refused, and with
//! both relaxed only the process group, the limits and the environment apply.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod landlock;
#[cfg(unix)]
#[allow(unsafe_code)]
mod unix;
#[cfg(unix)]
use unix as os;

/// Whether the program may use the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// No network: a new network namespace (refused where none can be made).
    #[default]
    Isolated,
    /// The caller's network.
    Allowed,
}

/// Where the program may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Writes {
    /// Only beneath its working directory, enforced by Landlock (refused without it).
    #[default]
    WorkDirOnly,
    /// Wherever the user it runs as may write.
    Anywhere,
}

/// Resource limits set on the program (each process of it; `processes` for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU seconds per process (`RLIMIT_CPU`); `SIGXCPU`, then `SIGKILL`, past it.
    pub cpu_seconds: u64,
    /// Address space per process in bytes (`RLIMIT_AS`): allocations beyond it fail.
    pub address_space_bytes: u64,
    /// Processes and threads (`RLIMIT_NPROC`): `fork` fails beyond it.
    pub processes: u64,
    /// Largest file it may write, in bytes (`RLIMIT_FSIZE`).
    pub file_size_bytes: u64,
    /// Open files per process (`RLIMIT_NOFILE`).
    pub open_files: u64,
}

impl Default for Limits {
    /// 60 CPU seconds, 2 GiB of address space, 64 processes, 64 MiB files, 256 open files.
    fn default() -> Self {
        Self {
            cpu_seconds: 60,
            address_space_bytes: 2 << 30,
            processes: 64,
            file_size_bytes: 64 << 20,
            open_files: 256,
        }
    }
}

/// What a sandboxed program may do. The default is the strict one: no network, writes only in
/// its directory, the default [`Limits`], `PATH` and locale variables only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// Network access.
    pub network: Network,
    /// Where it may write.
    pub writes: Writes,
    /// Resource limits.
    pub limits: Limits,
    /// Names of the caller's environment variables the program sees.
    pub env_allow: Vec<String>,
    /// Variables set for the program (after `HOME` and `TMPDIR`, so they may override them).
    pub env_set: Vec<(String, String)>,
    /// The directory in which each sandbox's working directory is made (the system temporary
    /// directory when `None`); the user the program runs as must be able to reach it.
    pub work_root: Option<PathBuf>,
    /// When the caller is root, run the program as `nobody` (65534:65534).
    pub drop_root: bool,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        Self {
            network: Network::Isolated,
            writes: Writes::WorkDirOnly,
            limits: Limits::default(),
            env_allow: ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM"]
                .into_iter()
                .map(String::from)
                .collect(),
            env_set: Vec::new(),
            work_root: None,
            drop_root: true,
        }
    }
}

impl SandboxPolicy {
    /// The same policy with network access.
    pub fn allow_network(mut self) -> Self {
        self.network = Network::Allowed;
        self
    }
}

/// Why a sandbox could not be made or a program not run in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// No new network namespace can be made here (kernel, container or platform), and the
    /// policy does not allow the network.
    #[error("network isolation is unavailable ({reason}); allow the network explicitly to run without it")]
    NetworkIsolationUnavailable {
        /// What failed.
        reason: String,
    },
    /// Landlock is missing here, and the policy restricts writes to the working directory.
    #[error("write isolation (Landlock) is unavailable ({reason}); allow writes anywhere explicitly to run without it")]
    WriteIsolationUnavailable {
        /// What failed.
        reason: String,
    },
    /// This platform has no sandbox at all.
    #[error("sandboxed execution is not supported on this platform")]
    Unsupported,
    /// The working directory or a file in it could not be made.
    #[error("sandbox directory {path}: {message}")]
    WorkDir {
        /// The path.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The program could not be started (missing interpreter, exec failure).
    #[error("could not start `{program}`: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        message: String,
    },
    /// The caller cancelled the run; its processes were killed.
    #[error("cancelled")]
    Cancelled,
}

/// How a sandboxed run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// The exit code, when the program exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did (9 for the timeout, 24 for the CPU limit…).
    pub signal: Option<i32>,
    /// Whether the timeout ended it.
    pub timed_out: bool,
    /// Standard output and error, interleaved as they arrived, cut at the cap.
    pub output: String,
    /// Bytes of output produced in all.
    pub total_bytes: usize,
    /// Processes of the run still alive when it ended (background children) that were killed.
    pub leftovers_killed: usize,
}

/// A working directory and a policy to run programs under. Blocks run in the same `Sandbox`
/// share its directory; make a new one for a fresh directory.
#[derive(Debug)]
pub struct Sandbox {
    policy: SandboxPolicy,
    /// Holds `work`; removed with everything in it when the sandbox is dropped.
    _root: tempfile::TempDir,
    work: PathBuf,
    #[cfg(unix)]
    os: os::Prepared,
}

/// How long output is still read once the program's processes are killed.
const PIPE_GRACE: Duration = Duration::from_millis(500);

impl Sandbox {
    /// Makes a fresh working directory and checks that this system can enforce `policy`.
    pub async fn new(policy: SandboxPolicy) -> Result<Self, SandboxError> {
        let root = policy.work_root.clone().unwrap_or_else(std::env::temp_dir);
        let dir_err = |e: std::io::Error| SandboxError::WorkDir {
            path: root.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(&root).map_err(dir_err)?;
        let dir = tempfile::Builder::new()
            .prefix("agentgen-sandbox-")
            .tempdir_in(&root)
            .map_err(dir_err)?;
        // The working directory sits in one the caller owns, so code running as another user
        // (nobody) cannot rename it away and put a symlink in its place for the caller to follow.
        let work = dir.path().join("work");
        std::fs::create_dir(&work).map_err(dir_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
                .map_err(dir_err)?;
            let os = os::prepare(&policy, &work).await?;
            Ok(Self { policy, _root: dir, work, os })
        }
        #[cfg(not(unix))]
        {
            let _ = (policy, dir, work);
            Err(SandboxError::Unsupported)
        }
    }

    /// The working directory.
    pub fn dir(&self) -> &Path {
        &self.work
    }

    /// The policy.
    pub fn policy(&self) -> &SandboxPolicy {
        &self.policy
    }

    /// Writes `contents` to the new file `name` (a plain file name) in the working directory,
    /// owned by the user the program runs as, and returns its path. Whatever earlier code left
    /// under that name is removed first and never followed: a symlink planted there cannot
    /// make the caller write elsewhere.
    pub async fn write_file(&self, name: &str, contents: &[u8]) -> Result<PathBuf, SandboxError> {
        let path = self.dir().join(name);
        let err = |e: std::io::Error| SandboxError::WorkDir {
            path: path.clone(),
            message: e.to_string(),
        };
        let plain = Path::new(name).file_name().is_some_and(|f| f == name) && name != "..";
        if !plain {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a plain file name",
            )));
        }
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
            _ => {}
        }
        // `create_new` is O_CREAT | O_EXCL: it fails on anything (a symlink too) put there since.
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(err)?;
        tokio::io::AsyncWriteExt::write_all(&mut file, contents).await.map_err(err)?;
        let file = file.into_std().await;
        #[cfg(unix)]
        os::give_to_runner(&self.os, &file).map_err(err)?;
        drop(file);
        Ok(path)
    }

    /// Runs `program` with `args` in the working directory, killing it and everything it
    /// started after `timeout`, on `cancel`, or once it exits; keeps `output_cap` bytes of
    /// output.
    pub async fn run(
        &self,
        program: &str,
        args: &[OsString],
        timeout: Duration,
        output_cap: usize,
        cancel: &CancellationToken,
    ) -> Result<RunOutput, SandboxError> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(self.dir())
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in &self.policy.env_allow {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        if std::env::var_os("PATH").is_none() || !self.policy.env_allow.iter().any(|n| n == "PATH")
        {
            cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
        }
        cmd.env("HOME", self.dir()).env("TMPDIR", self.dir());
        for (k, v) in &self.policy.env_set {
            cmd.env(k, v);
        }
        #[cfg(unix)]
        os::configure(&self.os, &mut cmd);
        let mut child = cmd.spawn().map_err(|e| SandboxError::Spawn {
            program: program.to_owned(),
            message: e.to_string(),
        })?;
        #[cfg(unix)]
        let mut reaper = os::Reaper::new(&self.os, child.id());

        let buf = Mutex::new((Vec::<u8>::new(), 0usize));
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let pipes = async {
            tokio::join!(drain(stdout, &buf, output_cap), drain(stderr, &buf, output_cap))
        };
        tokio::pin!(pipes);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pipes_done = false;
        enum End {
            Exited(std::process::ExitStatus),
            WaitFailed,
            TimedOut,
            Cancelled,
        }
        let end = loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break End::Cancelled,
                _ = tokio::time::sleep_until(deadline) => break End::TimedOut,
                status = child.wait() => break status.map_or(End::WaitFailed, End::Exited),
                _ = &mut pipes, if !pipes_done => pipes_done = true,
            }
        };
        #[cfg(unix)]
        let leftovers = reaper.kill_all(matches!(end, End::Exited(_)));
        #[cfg(not(unix))]
        let leftovers = 0;
        let status = match end {
            End::Exited(status) => Some(status),
            _ => {
                let _ = child.start_kill();
                tokio::time::timeout(PIPE_GRACE, child.wait()).await.ok().and_then(Result::ok)
            }
        };
        if !pipes_done {
            let _ = tokio::time::timeout(PIPE_GRACE, &mut pipes).await;
        }
        if matches!(end, End::Cancelled) {
            return Err(SandboxError::Cancelled);
        }
        let (bytes, total) = {
            let guard = buf.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (guard.0.clone(), guard.1)
        };
        let timed_out = matches!(end, End::TimedOut);
        let exited = matches!(end, End::Exited(_));
        #[cfg(unix)]
        let signal = if exited {
            status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s))
        } else {
            None
        };
        #[cfg(not(unix))]
        let signal = None;
        Ok(RunOutput {
            exit_code: if exited { status.and_then(|s| s.code()) } else { None },
            signal,
            timed_out,
            output: String::from_utf8_lossy(&bytes).into_owned(),
            total_bytes: total,
            leftovers_killed: if exited { leftovers } else { 0 },
        })
    }
}

/// Reads a pipe to its end, keeping at most `cap` bytes in all and counting the rest.
async fn drain<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<R>,
    buf: &Mutex<(Vec<u8>, usize)>,
    cap: usize,
) {
    let Some(mut pipe) = pipe else { return };
    let mut chunk = [0u8; 4096];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut guard = buf.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let room = cap.saturating_sub(guard.0.len());
                guard.0.extend_from_slice(&chunk[..n.min(room)]);
                guard.1 += n;
            }
        }
    }
}
