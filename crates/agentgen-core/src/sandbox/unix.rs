//! The Unix side of the sandbox: what the parent checks and prepares, what the child does to
//! itself between `fork` and `exec`, and how every process of a run is found and killed.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use super::{Network, SandboxError, SandboxPolicy, Writes};

/// The uid and gid a root caller's code runs as.
const NOBODY: (u32, u32) = (65534, 65534);

/// What [`prepare`] found and made for one sandbox.
#[derive(Debug)]
pub(super) struct Prepared {
    /// The uid and gid the program runs as, when not the caller's.
    runner: Option<(u32, u32)>,
    setup: ChildSetup,
    /// Keeps the Landlock ruleset open while the sandbox lives (the child gets its number).
    #[cfg(target_os = "linux")]
    _ruleset: Option<std::os::fd::OwnedFd>,
}

/// What the child does to itself before `exec`: plain numbers only, so that doing it allocates
/// nothing.
#[derive(Debug, Clone, Copy)]
struct ChildSetup {
    cpu: libc::rlim_t,
    cpu_hard: libc::rlim_t,
    address_space: libc::rlim_t,
    file_size: libc::rlim_t,
    open_files: libc::rlim_t,
    processes: libc::rlim_t,
    /// `unshare` flags: a new user namespace, with a new network namespace when isolated.
    namespaces: libc::c_int,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    ruleset: Option<i32>,
}

/// Checks that this system can enforce `policy` for a sandbox in `dir` and prepares it.
pub(super) async fn prepare(policy: &SandboxPolicy, dir: &Path) -> Result<Prepared, SandboxError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let runner = (root && policy.drop_root).then_some(NOBODY);
    if let Some((uid, gid)) = runner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|e| SandboxError::WorkDir { path: dir.to_owned(), message: e.to_string() })?;
    }
    // A user namespace of its own gives the run its own process count and lets every process
    // of it be found; with the network allowed it is used where the kernel permits one.
    let isolated = policy.network == Network::Isolated;
    let namespaces = match probe_namespaces(runner, isolated).await {
        Ok(flags) => flags,
        Err(reason) if isolated => {
            return Err(SandboxError::NetworkIsolationUnavailable { reason });
        }
        Err(_) => 0,
    };
    #[cfg(target_os = "linux")]
    let ruleset = match policy.writes {
        Writes::Anywhere => None,
        Writes::WorkDirOnly => {
            let unavailable = |reason| SandboxError::WriteIsolationUnavailable { reason };
            let abi = super::landlock::abi().map_err(unavailable)?;
            let (fd, _) = super::landlock::write_ruleset(dir, abi, isolated)
                .map_err(|e| unavailable(format!("building the Landlock ruleset: {e}")))?;
            Some(fd)
        }
    };
    #[cfg(not(target_os = "linux"))]
    if policy.writes == Writes::WorkDirOnly {
        return Err(SandboxError::WriteIsolationUnavailable {
            reason: "Landlock exists only on Linux".into(),
        });
    }
    let setup = ChildSetup {
        cpu: clamp(cpu_resource(), policy.limits.cpu_seconds),
        cpu_hard: clamp(cpu_resource(), policy.limits.cpu_seconds.saturating_add(1)),
        address_space: clamp(as_resource(), policy.limits.address_space_bytes),
        file_size: clamp(fsize_resource(), policy.limits.file_size_bytes),
        open_files: clamp(nofile_resource(), policy.limits.open_files),
        processes: clamp(nproc_resource(), policy.limits.processes),
        namespaces,
        #[cfg(target_os = "linux")]
        ruleset: ruleset.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
        #[cfg(not(target_os = "linux"))]
        ruleset: None,
    };
    Ok(Prepared {
        runner,
        setup,
        #[cfg(target_os = "linux")]
        _ruleset: ruleset,
    })
}

/// Hands a file the parent wrote in the sandbox directory to the user the program runs as.
pub(super) fn give_to_runner(prepared: &Prepared, file: &std::fs::File) -> io::Result<()> {
    match prepared.runner {
        Some((uid, gid)) => std::os::unix::fs::fchown(file, Some(uid), Some(gid)),
        None => Ok(()),
    }
}

/// Sets the user, the process group and the child's own setup on `cmd`.
pub(super) fn configure(prepared: &Prepared, cmd: &mut Command) {
    if let Some((uid, gid)) = prepared.runner {
        cmd.uid(uid).gid(gid);
    }
    cmd.process_group(0);
    let setup = prepared.setup;
    // `ChildSetup::apply` runs between fork and exec. The ruleset descriptor it names stays
    // open in the parent for as long as the sandbox lives.
    // SAFETY: it only calls setrlimit, unshare, prctl and the Landlock system call, all
    // async-signal-safe, on a copy of plain numbers, and builds its errors with
    // `io::Error::last_os_error`, which does not allocate.
    unsafe {
        cmd.pre_exec(move || setup.apply());
    }
}

// The resource constants have a different integer type on each libc; these keep `clamp` and
// `apply` free of it.
macro_rules! set_limit {
    ($resource:expr, $soft:expr, $hard:expr) => {{
        let limit = libc::rlimit { rlim_cur: $soft, rlim_max: $hard };
        // SAFETY: `limit` is a live, initialised rlimit for the duration of the call.
        if unsafe { libc::setrlimit($resource, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }};
}

macro_rules! resource_fn {
    ($name:ident, $resource:ident) => {
        fn $name() -> impl Fn(&mut libc::rlimit) -> i32 {
            // SAFETY: `out` is a live, writable rlimit for the duration of the call.
            |out: &mut libc::rlimit| unsafe { libc::getrlimit(libc::$resource, out) }
        }
    };
}

resource_fn!(cpu_resource, RLIMIT_CPU);
resource_fn!(as_resource, RLIMIT_AS);
resource_fn!(fsize_resource, RLIMIT_FSIZE);
resource_fn!(nofile_resource, RLIMIT_NOFILE);
resource_fn!(nproc_resource, RLIMIT_NPROC);

/// `wanted`, but no more than the caller's own hard limit (which the child could not raise).
fn clamp(get: impl Fn(&mut libc::rlimit) -> i32, wanted: u64) -> libc::rlim_t {
    let wanted = libc::rlim_t::try_from(wanted).unwrap_or(libc::RLIM_INFINITY);
    let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    if get(&mut current) != 0 || current.rlim_max == libc::RLIM_INFINITY {
        return wanted;
    }
    wanted.min(current.rlim_max)
}

impl ChildSetup {
    /// Runs in the child between fork and exec: async-signal-safe, allocation-free.
    fn apply(&self) -> io::Result<()> {
        set_limit!(libc::RLIMIT_CPU, self.cpu, self.cpu_hard.max(self.cpu));
        set_limit!(libc::RLIMIT_AS, self.address_space, self.address_space);
        set_limit!(libc::RLIMIT_FSIZE, self.file_size, self.file_size);
        set_limit!(libc::RLIMIT_NOFILE, self.open_files, self.open_files);
        set_limit!(libc::RLIMIT_CORE, 0, 0);
        #[cfg(target_os = "linux")]
        if self.namespaces != 0 {
            // SAFETY: unshare takes flags only.
            if unsafe { libc::unshare(self.namespaces) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // After the new user namespace, so that the limit counts this run's processes only.
        set_limit!(libc::RLIMIT_NPROC, self.processes, self.processes);
        #[cfg(target_os = "linux")]
        {
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(fd) = self.ruleset {
                super::landlock::restrict_self(fd)?;
            }
        }
        Ok(())
    }
}

/// The `unshare` flags a child running as `runner` can use here: a new user namespace, and a
/// new network namespace when `net`. Tried once per process, runner and `net` with
/// `/bin/sh -c 'exit 0'`.
async fn probe_namespaces(runner: Option<(u32, u32)>, net: bool) -> Result<libc::c_int, String> {
    type Cell = tokio::sync::OnceCell<Result<libc::c_int, String>>;
    static CELLS: [Cell; 4] =
        [Cell::const_new(), Cell::const_new(), Cell::const_new(), Cell::const_new()];
    let cell = &CELLS[usize::from(runner.is_some()) * 2 + usize::from(net)];
    cell.get_or_init(|| probe_once(runner, net)).await.clone()
}

#[cfg(target_os = "linux")]
async fn probe_once(runner: Option<(u32, u32)>, net: bool) -> Result<libc::c_int, String> {
    let flags = libc::CLONE_NEWUSER | if net { libc::CLONE_NEWNET } else { 0 };
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "exit 0"])
        .env_clear()
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some((uid, gid)) = runner {
        cmd.uid(uid).gid(gid);
    }
    // SAFETY: the closure runs between fork and exec and only calls unshare (async-signal-safe);
    // its error holds the errno inline, without allocating.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(flags) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let what = if net { "CLONE_NEWUSER | CLONE_NEWNET" } else { "CLONE_NEWUSER" };
    let mut child = cmd.spawn().map_err(|e| format!("unshare({what}) failed: {e}"))?;
    match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(flags),
        Ok(Ok(status)) => Err(format!("the probe in new namespaces exited with {status}")),
        Ok(Err(e)) => Err(format!("waiting for the probe: {e}")),
        Err(_) => Err("the probe in new namespaces did not exit within 5 s".to_owned()),
    }
}

#[cfg(not(target_os = "linux"))]
async fn probe_once(_runner: Option<(u32, u32)>, _net: bool) -> Result<libc::c_int, String> {
    Err("namespaces exist only on Linux".to_owned())
}

/// Kills every process of one run: its process group and, where the run has its own user
/// namespace, every process in that namespace (children that left the group included). Does
/// so when dropped if [`kill_all`](Self::kill_all) was not called.
#[derive(Debug)]
pub(super) struct Reaper {
    pgid: Option<i32>,
    /// `/proc/PID/ns/user`'s target for the run's namespace.
    namespace: Option<PathBuf>,
    /// Whether the group leader is still unreaped (so the group's number cannot be reused).
    leader_unreaped: bool,
    done: bool,
}

/// Sweeps over the process table before giving up on a run that keeps forking.
#[cfg(target_os = "linux")]
const MAX_SWEEPS: usize = 200;

impl Reaper {
    /// Watches the run whose first process is `pid`.
    pub(super) fn new(prepared: &Prepared, pid: Option<u32>) -> Self {
        let pgid = pid.and_then(|p| i32::try_from(p).ok());
        let namespace = match (prepared.setup.namespaces != 0, pgid) {
            (true, Some(p)) => std::fs::read_link(format!("/proc/{p}/ns/user")).ok(),
            _ => None,
        };
        Self { pgid, namespace, leader_unreaped: true, done: false }
    }

    /// Kills everything the run left; `leader_reaped` says the first process was waited for.
    /// Returns how many processes other than the leader were still alive.
    pub(super) fn kill_all(&mut self, leader_reaped: bool) -> usize {
        self.leader_unreaped = !leader_reaped;
        self.done = true;
        let Some(pgid) = self.pgid else { return 0 };
        if self.leader_unreaped {
            // SAFETY: kill takes numbers only; the leader is not reaped, so `pgid` is this run's.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        sweep(pgid, self.namespace.as_deref(), self.leader_unreaped)
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if !self.done {
            self.kill_all(false);
        }
    }
}

/// Kills, pass after pass, every live process of group `pgid` or of user namespace
/// `namespace`, and counts them (the group leader excepted).
#[cfg(target_os = "linux")]
fn sweep(pgid: i32, namespace: Option<&Path>, leader_unreaped: bool) -> usize {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..MAX_SWEEPS {
        let mut found = 0;
        let Ok(entries) = std::fs::read_dir("/proc") else { break };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            // After the command name: state, ppid, pgrp.
            let mut fields =
                stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace();
            let state = fields.next().unwrap_or("Z");
            let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
            if state == "Z" || state == "X" {
                continue;
            }
            let ours = group == Some(pgid)
                || namespace.is_some_and(|ns| {
                    std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|l| l == ns)
                });
            if ours {
                // SAFETY: kill takes numbers only.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                found += 1;
                if pid != pgid || !leader_unreaped {
                    seen.insert(pid);
                }
            }
        }
        if found == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    seen.len()
}

#[cfg(not(target_os = "linux"))]
fn sweep(pgid: i32, _namespace: Option<&Path>, leader_unreaped: bool) -> usize {
    if !leader_unreaped {
        // SAFETY: kill takes numbers only. The leader was reaped, so if the group has no member
        // left its number could in principle have been reused; without /proc there is no way
        // to check.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    0
}
