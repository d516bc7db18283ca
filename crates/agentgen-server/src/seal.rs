//! Sealed serving: once the listener is bound and the model is loaded, the process loses the
//! ability to reach any other machine, enforced by the kernel for the rest of its life.
//!
//! Mechanism: a seccomp filter installed on every thread at once (`SECCOMP_FILTER_FLAG_TSYNC`),
//! which answers `EPERM` to the system calls that could open a new path off the machine:
//! `socket` (every family: internet, packet, netlink, and Unix sockets that could reach a relay
//! process), `socketpair`, `connect`, `io_uring_setup` (io_uring can create and connect sockets
//! without those system calls), and `ptrace`, `process_vm_writev` and `pidfd_getfd` (borrowing
//! another process's sockets or making it connect). Already accepted connections keep working
//! and `accept4` stays allowed, so the bound listener keeps serving. The filter is inherited by
//! any child process and cannot be removed. It can be seen from outside: `/proc/PID/status`
//! shows `Seccomp: 2` and `NoNewPrivs: 1`.
//!
//! Why not a network namespace: `unshare(CLONE_NEWUSER | CLONE_NEWNET)` needs a single-threaded
//! process (the async runtime and llama.cpp's threads already run when the model is loaded), is
//! refused where unprivileged user namespaces are off, and a namespace with only `lo` still
//! lets the process connect to a Unix socket on the file system, where a relay could forward
//! its traffic. The filter closes that too.

use serde::{Deserialize, Serialize};

/// How a sealed server is kept off the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SealMechanism {
    /// A seccomp filter on every thread refuses creating and connecting sockets.
    Seccomp,
}

impl SealMechanism {
    /// The name reported by `/v1/locality`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seccomp => "seccomp",
        }
    }
}

/// What sealing did, as `/v1/locality` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealInfo {
    /// The mechanism.
    pub mechanism: SealMechanism,
    /// The system calls refused with `EPERM` from then on.
    pub refused_syscalls: Vec<String>,
    /// How long installing the seal took, in microseconds.
    pub install_micros: u64,
}

/// Why a process cannot be sealed. A server asked to be sealed refuses to start with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Not Linux, or a CPU architecture the filter is not built for.
    #[error("--sealed needs Linux seccomp filters on x86_64 or aarch64; this is {os}/{arch}")]
    Unsupported {
        /// The operating system.
        os: &'static str,
        /// The CPU architecture.
        arch: &'static str,
    },
    /// The kernel lacks seccomp filters or the `errno` action (`CONFIG_SECCOMP_FILTER`).
    #[error("--sealed needs the kernel's seccomp filters (CONFIG_SECCOMP_FILTER): {detail}")]
    KernelMissing {
        /// What was seen.
        detail: String,
    },
    /// The filter could not be compiled.
    #[error("cannot build the seal's seccomp filter: {0}")]
    Filter(String),
    /// `prctl(PR_SET_NO_NEW_PRIVS)` was refused.
    #[error("--sealed: the kernel refused no_new_privs: {0}")]
    NoNewPrivs(std::io::Error),
    /// `seccomp(SECCOMP_SET_MODE_FILTER)` was refused.
    #[error("--sealed: the kernel refused the seccomp filter: {0}")]
    Install(std::io::Error),
    /// One thread could not take the filter (it runs under an incompatible one).
    #[error("--sealed: thread {tid} could not take the seccomp filter")]
    ThreadSync {
        /// The thread that refused.
        tid: i64,
    },
}

/// The system calls the seal refuses.
pub const REFUSED_SYSCALLS: [&str; 7] = [
    "socket",
    "socketpair",
    "connect",
    "io_uring_setup",
    "ptrace",
    "process_vm_writev",
    "pidfd_getfd",
];

/// Checks, without changing anything, that [`seal`] can work here.
pub fn probe() -> Result<(), SealError> {
    imp::probe()
}

/// Seals this process: from now on no thread of it, and no child it starts, can create or
/// connect a socket. Irreversible.
pub fn seal() -> Result<SealInfo, SealError> {
    let started = std::time::Instant::now();
    imp::install()?;
    let info = SealInfo {
        mechanism: SealMechanism::Seccomp,
        refused_syscalls: REFUSED_SYSCALLS.iter().map(|s| (*s).to_owned()).collect(),
        install_micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    };
    tracing::info!(
        mechanism = info.mechanism.as_str(),
        micros = info.install_micros,
        "sealed: this process can no longer open or connect sockets"
    );
    Ok(info)
}

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod imp {
    use std::collections::BTreeMap;

    use seccompiler::{sock_filter, BpfProgram, SeccompAction, SeccompFilter, TargetArch};

    use super::SealError;

    fn arch() -> TargetArch {
        #[cfg(target_arch = "x86_64")]
        {
            TargetArch::x86_64
        }
        #[cfg(target_arch = "aarch64")]
        {
            TargetArch::aarch64
        }
    }

    pub(super) fn probe() -> Result<(), SealError> {
        let status = std::fs::read_to_string("/proc/self/status")
            .map_err(|e| SealError::KernelMissing { detail: format!("/proc/self/status: {e}") })?;
        if !status.lines().any(|l| l.starts_with("Seccomp:")) {
            return Err(SealError::KernelMissing {
                detail: "the kernel reports no seccomp state (built without CONFIG_SECCOMP)".into(),
            });
        }
        let actions =
            std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").map_err(|e| {
                SealError::KernelMissing {
                    detail: format!("/proc/sys/kernel/seccomp/actions_avail: {e}"),
                }
            })?;
        if !actions.split_whitespace().any(|a| a == "errno") {
            return Err(SealError::KernelMissing {
                detail: format!(
                    "the kernel's seccomp actions are `{}`, without errno",
                    actions.trim()
                ),
            });
        }
        program().map(|_| ())
    }

    fn program() -> Result<BpfProgram, SealError> {
        let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = [
            libc::SYS_socket,
            libc::SYS_socketpair,
            libc::SYS_connect,
            libc::SYS_io_uring_setup,
            libc::SYS_ptrace,
            libc::SYS_process_vm_writev,
            libc::SYS_pidfd_getfd,
        ]
        .into_iter()
        .map(|nr| (nr, Vec::new()))
        .collect();
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            arch(),
        )
        .map_err(|e| SealError::Filter(e.to_string()))?;
        let mut program: BpfProgram = filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| SealError::Filter(e.to_string()))?;
        // On x86_64 the x32 ABI reaches the same kernel entry points with numbers offset by
        // 0x4000_0000 under the same audit architecture; refuse every such call, so `socket`
        // cannot be reached as x32's `socket`. The first three instructions check the
        // architecture; the guard goes right after them (jumps are relative and none crosses it).
        if cfg!(target_arch = "x86_64") {
            const X32_SYSCALL_BIT: u32 = 0x4000_0000;
            let guard = [
                // Load the system call number (offset 0 of seccomp_data).
                sock_filter { code: 0x20, jt: 0, jf: 0, k: 0 },
                // If nr >= X32_SYSCALL_BIT fall through to the refusal, else skip it.
                sock_filter { code: 0x35, jt: 0, jf: 1, k: X32_SYSCALL_BIT },
                sock_filter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
                },
            ];
            if program.len() < 3 {
                return Err(SealError::Filter("the compiled filter has no arch check".into()));
            }
            program.splice(3..3, guard);
        }
        Ok(program)
    }

    pub(super) fn install() -> Result<(), SealError> {
        probe()?;
        let program = program()?;
        seccompiler::apply_filter_all_threads(&program).map_err(|e| match e {
            seccompiler::Error::Prctl(io) => SealError::NoNewPrivs(io),
            seccompiler::Error::Seccomp(io) => SealError::Install(io),
            seccompiler::Error::ThreadSync(tid) => SealError::ThreadSync { tid },
            other => SealError::Filter(other.to_string()),
        })
    }
}

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
mod imp {
    use super::SealError;

    fn unsupported() -> SealError {
        SealError::Unsupported { os: std::env::consts::OS, arch: std::env::consts::ARCH }
    }

    pub(super) fn probe() -> Result<(), SealError> {
        Err(unsupported())
    }

    pub(super) fn install() -> Result<(), SealError> {
        Err(unsupported())
    }
}

#[cfg(all(test, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::process::Command;

    use super::*;

    const CHILD_ENV: &str = "AGENTGEN_SEAL_TEST_CHILD_PORT";

    /// Sealing is irreversible, so it runs in a child process: this test binary again, running
    /// only [`sealed_child`] with the port of a listener the parent holds.
    #[test]
    fn a_sealed_process_cannot_open_or_connect_sockets() {
        probe().expect("this kernel can seal");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "seal::tests::sealed_child", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, port.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("child: sealed, every way out refused"), "{stdout}");
        assert!(
            matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the sealed child reached the listener"
        );
    }

    #[test]
    fn sealed_child() {
        let Ok(port) = std::env::var(CHILD_ENV) else { return };
        // Opened before the seal: keeps working after it.
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let info = seal().expect("seal");
        assert_eq!(info.mechanism, SealMechanism::Seccomp);
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(status.lines().any(|l| l == "Seccomp:\t2"), "{status}");

        let err = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        let err = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        let err = std::os::unix::net::UnixStream::pair().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        let err =
            std::os::unix::net::UnixStream::connect("/nonexistent-agentgen-relay").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        #[cfg(target_arch = "x86_64")]
        {
            // The x32 ABI's number for socket(AF_INET, SOCK_STREAM, 0).
            // SAFETY: a raw system call with integer arguments only; it touches no memory.
            let rc = unsafe {
                libc::syscall(0x4000_0000 | libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0)
            };
            assert_eq!(rc, -1);
            assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EPERM));
        }
        // A thread started after the seal inherits it.
        let err =
            std::thread::spawn(|| TcpStream::connect("127.0.0.1:9").unwrap_err()).join().unwrap();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        // What was open before still works.
        use std::io::{Read, Write};
        a.write_all(b"ok").unwrap();
        let mut buf = [0u8; 2];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ok");
        println!("child: sealed, every way out refused");
    }
}
