//! Running subprocesses and finding the workspace, with errors that name the command.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};

/// What can go wrong in an xtask command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program could not be started.
    #[error("cannot start `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why.
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("`{cmd}` failed ({status})")]
    Failed {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: ExitStatus,
    },
    /// The machine lacks something and xtask cannot install it.
    #[error("{0}")]
    Missing(String),
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}

/// Prints a step heading on stderr.
pub fn step(what: &str) {
    eprintln!("\n==> {what}");
}

/// The process exit code for a child's status.
pub fn exit_code(status: ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1).max(1)),
        None => ExitCode::FAILURE,
    }
}

/// A command line that remembers how to print itself.
#[derive(Debug)]
pub struct Cmd {
    inner: Command,
    shown: String,
}

impl Cmd {
    /// A command running `program`.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let shown = program.as_ref().to_string_lossy().into_owned();
        Self { inner: Command::new(program), shown }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.shown.push(' ');
        self.shown.push_str(&arg.as_ref().to_string_lossy());
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.inner.env(key, value);
        self
    }

    /// Sets the working directory.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.inner.current_dir(dir);
        self
    }

    /// Runs it with inherited stdio and returns its status.
    pub fn status(mut self) -> Result<ExitStatus, Error> {
        eprintln!("$ {}", self.shown);
        self.inner.status().map_err(|source| Error::Spawn { cmd: self.shown.clone(), source })
    }

    /// Runs it with inherited stdio; a non-zero exit is an error.
    pub fn status_ok(self) -> Result<(), Error> {
        let shown = self.shown.clone();
        let status = self.status()?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Failed { cmd: shown, status })
        }
    }

    /// Runs it quietly and returns its stdout when it succeeds, `None` when it cannot start or
    /// fails (for probing what is installed).
    pub fn probe(mut self) -> Option<String> {
        let out = self.inner.stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts it with stdout piped (stderr inherited).
    pub fn spawn_piped(mut self) -> Result<Child, Error> {
        eprintln!("$ {}", self.shown);
        self.inner
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn { cmd: self.shown.clone(), source })
    }

    /// Starts it in the background with stdout and stderr going to `log`.
    pub fn spawn_logged(mut self, log: &Path) -> Result<Child, Error> {
        eprintln!("$ {} > {}", self.shown, log.display());
        let file = std::fs::File::create(log)
            .map_err(|source| Error::Spawn { cmd: self.shown.clone(), source })?;
        let err =
            file.try_clone().map_err(|source| Error::Spawn { cmd: self.shown.clone(), source })?;
        self.inner
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|source| Error::Spawn { cmd: self.shown.clone(), source })
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Where the workspace and its build outputs are.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The workspace root.
    pub root: PathBuf,
    /// Cargo's target directory.
    pub target_dir: PathBuf,
    /// The cargo executable that started xtask.
    pub cargo: OsString,
}

impl Workspace {
    /// Finds the workspace through `cargo metadata`.
    pub fn locate() -> Result<Self, Error> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .ok_or_else(|| Error::Other("xtask has no parent folder".into()))?
            .to_path_buf();
        let meta = Cmd::new(&cargo)
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .current_dir(&root)
            .probe()
            .ok_or_else(|| Error::Other("`cargo metadata` failed".into()))?;
        let meta: serde_json::Value = serde_json::from_str(&meta)
            .map_err(|e| Error::Other(format!("cargo metadata is not JSON: {e}")))?;
        let target_dir = meta["target_directory"]
            .as_str()
            .map(PathBuf::from)
            .ok_or_else(|| Error::Other("cargo metadata lacks target_directory".into()))?;
        Ok(Self { root, target_dir, cargo })
    }

    /// A cargo command run in the workspace root.
    pub fn cargo<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Cmd::new(&self.cargo).args(args).current_dir(&self.root)
    }

    /// The dev-profile `agentgen` binary (built by `cargo build -p agentgen-cli`).
    pub fn agentgen_bin(&self) -> PathBuf {
        self.target_dir.join("debug").join(format!("agentgen{}", std::env::consts::EXE_SUFFIX))
    }

    /// The benchmark runner with these arguments, built and run by cargo.
    pub fn bench_runner(&self, args: &[String]) -> Cmd {
        self.cargo(["run", "-p", "benches", "--bin", "agentgen-bench", "--"]).args(args)
    }

    /// The code-task run (`agentgen-codebench`) of the `agentgen` binary: 3 problems when
    /// `quick`, else 20.
    pub fn codebench_runner(&self, quick: bool, out: &Path) -> Cmd {
        let cmd = self.cargo(["run", "-p", "benches", "--bin", "agentgen-codebench", "--"]);
        let cmd = cmd.arg("--agentgen").arg(self.agentgen_bin());
        let cmd = if quick { cmd.arg("--quick") } else { cmd };
        cmd.arg("--out").arg(out)
    }

    /// The hostile load run (`agentgen-load`): 10 s when `quick`, else 60 s.
    pub fn load_runner(&self, quick: bool, out: &Path) -> Cmd {
        let cmd = self.cargo(["run", "-p", "benches", "--bin", "agentgen-load", "--"]);
        let cmd = if quick { cmd.arg("--quick") } else { cmd };
        cmd.arg("--out").arg(out)
    }
}
