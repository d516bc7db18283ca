//! Landlock (Linux 5.13+) through its three system calls: the parent builds a ruleset that
//! allows writes only beneath the sandbox directory (and to `/dev/null`), and, from ABI 4 on,
//! no TCP bind or connect; the child enforces it on itself right before `exec`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: libc::c_int = 1;

const FS_WRITE_FILE: u64 = 1 << 1;
const FS_REMOVE_DIR: u64 = 1 << 4;
const FS_REMOVE_FILE: u64 = 1 << 5;
const FS_MAKE_CHAR: u64 = 1 << 6;
const FS_MAKE_DIR: u64 = 1 << 7;
const FS_MAKE_REG: u64 = 1 << 8;
const FS_MAKE_SOCK: u64 = 1 << 9;
const FS_MAKE_FIFO: u64 = 1 << 10;
const FS_MAKE_BLOCK: u64 = 1 << 11;
const FS_MAKE_SYM: u64 = 1 << 12;
/// ABI 2: renames and links across directories.
const FS_REFER: u64 = 1 << 13;
/// ABI 3: `truncate` and `O_TRUNC`.
const FS_TRUNCATE: u64 = 1 << 14;
/// ABI 4.
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;

/// `struct landlock_ruleset_attr` (the kernel accepts it larger than it knows if the rest is 0).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the kernel's header).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version of the running kernel, or why there is none.
pub(super) fn abi() -> Result<u32, String> {
    // SAFETY: with a null attribute, size 0 and the VERSION flag, the call reads no memory and
    // only returns the ABI version (or -1 and errno).
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if v < 1 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENOSYS) => "the kernel has no Landlock (Linux 5.13 or later)".to_owned(),
            Some(libc::EOPNOTSUPP) => "Landlock is disabled at boot (lsm=)".to_owned(),
            _ => format!("landlock_create_ruleset: {e}"),
        });
    }
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

/// The write rights this ABI knows.
fn write_rights(abi: u32) -> u64 {
    let mut rights = FS_WRITE_FILE
        | FS_REMOVE_DIR
        | FS_REMOVE_FILE
        | FS_MAKE_CHAR
        | FS_MAKE_DIR
        | FS_MAKE_REG
        | FS_MAKE_SOCK
        | FS_MAKE_FIFO
        | FS_MAKE_BLOCK
        | FS_MAKE_SYM;
    if abi >= 2 {
        rights |= FS_REFER;
    }
    if abi >= 3 {
        rights |= FS_TRUNCATE;
    }
    rights
}

/// A ruleset that allows writing only beneath `dir` (and to `/dev/null`) and, when `deny_tcp`
/// and the ABI allows, no TCP at all. Returns the ruleset and whether TCP is denied by it.
pub(super) fn write_ruleset(dir: &Path, abi: u32, deny_tcp: bool) -> io::Result<(OwnedFd, bool)> {
    let rights = write_rights(abi);
    let tcp = deny_tcp && abi >= 4;
    let attr = RulesetAttr {
        handled_access_fs: rights,
        handled_access_net: if tcp { NET_BIND_TCP | NET_CONNECT_TCP } else { 0 },
    };
    // SAFETY: `attr` is a live, initialised `landlock_ruleset_attr` prefix of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("ruleset fd out of range"))?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd) };
    add_path_rule(&ruleset, dir, rights, true)?;
    let file_rights = FS_WRITE_FILE | if abi >= 3 { FS_TRUNCATE } else { 0 };
    if Path::new("/dev/null").exists() {
        add_path_rule(&ruleset, Path::new("/dev/null"), file_rights, false)?;
    }
    Ok((ruleset, tcp))
}

fn add_path_rule(ruleset: &OwnedFd, path: &Path, rights: u64, dir: bool) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL byte"))?;
    let flags = libc::O_PATH | libc::O_CLOEXEC | if dir { libc::O_DIRECTORY } else { 0 };
    // SAFETY: `c_path` is a NUL-terminated string that lives across the call.
    let raw = unsafe { libc::open(c_path.as_ptr(), flags) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let parent = unsafe { OwnedFd::from_raw_fd(raw) };
    let attr = PathBeneathAttr { allowed_access: rights, parent_fd: parent.as_raw_fd() };
    // SAFETY: `attr` is a live `landlock_path_beneath_attr`; both descriptors are open.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Enforces `ruleset` on the calling process (and what it executes). Async-signal-safe: one
/// system call, no allocation; `no_new_privs` must already be set.
pub(super) fn restrict_self(ruleset: RawFd) -> io::Result<()> {
    // SAFETY: a plain system call on a descriptor number; it reads no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
