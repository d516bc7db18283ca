//! The kernel's own records in `/proc`, read as the verifier needs them: TCP/UDP tables,
//! which process holds a socket, a process's memory maps, its seccomp state and network
//! interfaces. Linux only; elsewhere every reader returns an error (and the verifier fails).

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// One row of `/proc/…/net/{tcp,tcp6,udp,udp6}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SocketRow {
    /// Local address.
    pub local: SocketAddr,
    /// Remote address (unspecified for listening or unconnected sockets).
    pub remote: SocketAddr,
    /// Kernel state (`0A` is a TCP listener, `01` established).
    pub state: u8,
    /// Owner's uid.
    pub uid: u32,
    /// Socket inode.
    pub inode: u64,
}

fn parse_v4(hex: &str) -> Option<Ipv4Addr> {
    let n = u32::from_str_radix(hex, 16).ok()?;
    // The kernel prints the address as a native-endian u32 of network-order bytes.
    Some(Ipv4Addr::from(n.to_ne_bytes()))
}

fn parse_v6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(4).enumerate() {
        let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Some(Ipv6Addr::from(bytes))
}

fn parse_endpoint(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(parse_v4(ip)?),
        _ => IpAddr::V6(parse_v6(ip)?),
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses a TCP or UDP table.
pub(crate) fn parse_socket_table(text: &str) -> Vec<SocketRow> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 {
                return None;
            }
            Some(SocketRow {
                local: parse_endpoint(cols[1])?,
                remote: parse_endpoint(cols[2])?,
                state: u8::from_str_radix(cols[3], 16).ok()?,
                uid: cols[7].parse().ok()?,
                inode: cols[9].parse().ok()?,
            })
        })
        .collect()
}

/// Reads one of `root/net/{tcp,tcp6,udp,udp6}` (`root` is `/proc/self` or `/proc/PID`).
pub(crate) fn socket_table(root: &Path, name: &str) -> io::Result<Vec<SocketRow>> {
    let path = root.join("net").join(name);
    std::fs::read_to_string(&path)
        .map(|t| parse_socket_table(&t))
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The IPv4 address behind an IPv4-mapped IPv6 one, so both spellings compare equal.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// Whether an address stays on this machine (loopback, or unspecified: not connected).
pub(crate) fn stays_local(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    ip.is_loopback() || ip.is_unspecified()
}

/// The socket inodes a process holds, from `/proc/PID/fd`.
pub(crate) fn socket_inodes(pid: u32) -> io::Result<HashSet<u64>> {
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    let mut inodes = HashSet::new();
    for entry in entries {
        let entry = entry?;
        // A descriptor closed between listing and reading is no longer held: skip it.
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        if let Some(inode) = socket_inode(&target) {
            inodes.insert(inode);
        }
    }
    Ok(inodes)
}

fn socket_inode(link: &Path) -> Option<u64> {
    link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Who holds a socket inode: the processes found, and how many processes of the socket's
/// owner could not be inspected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Holders {
    /// Processes with a descriptor on the socket.
    pub pids: Vec<u32>,
    /// Processes of the owner's uid whose descriptors could not be read.
    pub unreadable: Vec<u32>,
}

/// Finds every process holding socket `inode`, looking at the processes of user `uid` (the
/// socket's owner as the kernel records it).
pub(crate) fn socket_holders(inode: u64, uid: u32) -> io::Result<Holders> {
    use std::os::unix::fs::MetadataExt;
    let mut holders = Holders::default();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // A process that exited meanwhile holds nothing.
        let Ok(meta) = entry.metadata() else { continue };
        if meta.uid() != uid {
            continue;
        }
        let fd_dir = entry.path().join("fd");
        let fds = match std::fs::read_dir(&fd_dir) {
            Ok(fds) => fds,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => {
                holders.unreadable.push(pid);
                continue;
            }
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).ok().and_then(|t| socket_inode(&t)) == Some(inode)
        });
        if holds {
            holders.pids.push(pid);
        }
    }
    Ok(holders)
}

/// A file mapped into a process, from `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct MappedFile {
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Inode.
    pub inode: u64,
    /// The path the kernel shows (may end in ` (deleted)`).
    pub path: String,
}

/// Parses `/proc/PID/maps`: the distinct files mapped.
pub(crate) fn parse_maps(text: &str) -> Vec<MappedFile> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut cols = line.splitn(6, ' ');
        let (Some(_range), Some(_perms), Some(_offset), Some(dev), Some(inode)) =
            (cols.next(), cols.next(), cols.next(), cols.next(), cols.next())
        else {
            continue;
        };
        let path = cols.next().unwrap_or("").trim_start().to_owned();
        let Ok(inode) = inode.parse::<u64>() else { continue };
        let Some((major, minor)) = dev.split_once(':') else { continue };
        let (Ok(major), Ok(minor)) =
            (u32::from_str_radix(major, 16), u32::from_str_radix(minor, 16))
        else {
            continue;
        };
        if inode == 0 {
            continue;
        }
        let file = MappedFile { major, minor, inode, path };
        if seen.insert(file.clone()) {
            out.push(file);
        }
    }
    out
}

/// The files a process maps.
pub(crate) fn mapped_files(pid: Option<u32>) -> io::Result<Vec<MappedFile>> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/maps"),
        None => "/proc/self/maps".to_owned(),
    };
    std::fs::read_to_string(&path)
        .map(|t| parse_maps(&t))
        .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}

/// Splits a `st_dev` into the major and minor numbers `/proc/PID/maps` prints.
pub(crate) fn dev_major_minor(dev: u64) -> (u32, u32) {
    // Linux's encoding (glibc's gnu_dev_major/gnu_dev_minor); the masks keep each within u32.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
    let minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
    (major as u32, minor as u32)
}

/// Whether an open file's metadata is the file a mapping shows.
pub(crate) fn is_mapping_of(meta: &std::fs::Metadata, m: &MappedFile) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (major, minor) = dev_major_minor(meta.dev());
    major == m.major && minor == m.minor && meta.ino() == m.inode
}

/// The seccomp fields of `/proc/PID/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeccompState {
    /// `Seccomp:` 0 none, 1 strict, 2 filter.
    pub mode: u8,
    /// `Seccomp_filters:` how many filters (kernels from 5.9; `None` before).
    pub filters: Option<u32>,
    /// `NoNewPrivs:`.
    pub no_new_privs: bool,
}

/// Parses the seccomp fields of a status file.
pub(crate) fn parse_seccomp(status: &str) -> Option<SeccompState> {
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).map(str::to_owned)
    };
    Some(SeccompState {
        mode: field("Seccomp:")?.parse().ok()?,
        filters: field("Seccomp_filters:").and_then(|v| v.parse().ok()),
        no_new_privs: field("NoNewPrivs:")? == "1",
    })
}

/// The seccomp state of a process (`None`: this process).
pub(crate) fn seccomp_state(pid: Option<u32>) -> io::Result<SeccompState> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    parse_seccomp(&text).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{path} shows no seccomp state"))
    })
}

/// The network interfaces a process sees, from `/proc/PID/net/dev`.
pub(crate) fn interfaces(pid: u32) -> io::Result<Vec<String>> {
    let path = format!("/proc/{pid}/net/dev");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    Ok(text
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_owned()))
        .collect())
}

/// The network namespace of a process (`None`: this one), as `net:[inode]`.
pub(crate) fn net_namespace(pid: Option<u32>) -> io::Result<String> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/ns/net"),
        None => "/proc/self/ns/net".to_owned(),
    };
    std::fs::read_link(&path)
        .map(|t| t.display().to_string())
        .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_rows_parse_both_families() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 20 4 30 10 -1\n";
        let rows = parse_socket_table(v4);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(rows[0].remote, "127.0.0.1:50000".parse().unwrap());
        assert_eq!((rows[0].state, rows[0].uid, rows[0].inode), (1, 1000, 4242));
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 7 1 0000000000000000 20 4 30 10 -1\n";
        let rows = parse_socket_table(v6);
        assert_eq!(rows[0].local, "[::1]:8080".parse().unwrap());
        assert_eq!(canonical(rows[0].remote), "127.0.0.1:50000".parse().unwrap());
        assert!(stays_local(rows[0].remote.ip()));
        assert!(!stays_local("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn maps_give_distinct_files_with_device_and_inode() {
        let text = "7f00-7f10 r--s 00000000 fd:01 1234 /models/m.gguf\n7f10-7f20 r--s 00001000 fd:01 1234 /models/m.gguf\n7f20-7f30 rw-p 00000000 00:00 0 \n7f30-7f40 r-xp 00000000 103:02 99 /usr/lib/libc.so.6\n";
        let files = parse_maps(text);
        assert_eq!(files.len(), 2);
        assert_eq!((files[0].major, files[0].minor, files[0].inode), (0xfd, 1, 1234));
        assert_eq!(files[0].path, "/models/m.gguf");
        assert_eq!((files[1].major, files[1].minor), (0x103, 2));
    }

    #[test]
    fn this_process_maps_its_own_executable() {
        let exe = std::fs::metadata("/proc/self/exe").unwrap();
        let maps = mapped_files(None).unwrap();
        assert!(maps.iter().any(|m| is_mapping_of(&exe, m)), "{maps:?}");
        let state = seccomp_state(None).unwrap();
        assert!(state.mode <= 2);
        assert!(socket_inodes(std::process::id()).is_ok());
    }
}
