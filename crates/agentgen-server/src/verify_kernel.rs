//! The verifier's checks that ask the kernel, not the server: who holds the connection, what
//! that process executes and maps, whether it is sealed, and what its sockets reach.
//! Blocking (reads `/proc`, hashes files): run off the async runtime.

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::attest::{hash_reader, Attestation};
use crate::procfs::{self, canonical, stays_local};
use crate::verify::Check;

/// Largest executable hashed.
const MAX_EXE_BYTES: u64 = 4 << 30;

/// Finds the process holding the server end of the connection `local -> peer` in the kernel's
/// TCP tables, and compares it with the pid the server reported.
pub(crate) fn socket_owner(
    local: SocketAddr,
    peer: SocketAddr,
    reported: Option<u32>,
) -> (Check, Option<u32>) {
    let name = "socket_owner";
    let mut rows = Vec::new();
    for table in ["tcp", "tcp6"] {
        match procfs::socket_table(Path::new("/proc/self"), table) {
            Ok(r) => rows.extend(r),
            Err(e) => {
                return (
                    Check::fail(name, format!("cannot read the kernel's TCP table: {e}")),
                    None,
                )
            }
        }
    }
    let (local, peer) = (canonical(local), canonical(peer));
    let Some(row) = rows
        .iter()
        .find(|r| canonical(r.local) == peer && canonical(r.remote) == local && r.inode != 0)
    else {
        return (
            Check::fail(
                name,
                format!("the kernel has no socket {peer} -> {local}: the server end is not on this machine's network stack"),
            ),
            None,
        );
    };
    let holders = match procfs::socket_holders(row.inode, row.uid) {
        Ok(h) => h,
        Err(e) => return (Check::fail(name, format!("cannot list processes: {e}")), None),
    };
    let conn =
        format!("connection {peer} <- {local} is socket inode {} (uid {})", row.inode, row.uid);
    match holders.pids.as_slice() {
        [] if !holders.unreadable.is_empty() => (
            Check::fail(
                name,
                format!(
                    "{conn}; its holder is among processes whose descriptors cannot be read: {:?}",
                    holders.unreadable
                ),
            ),
            None,
        ),
        [] => (Check::fail(name, format!("{conn}; no process holds it")), None),
        [pid] => {
            let pid = *pid;
            let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| format!("<exe unreadable: {e}>"));
            let seen = format!("{conn}, held by process {pid} ({exe})");
            match reported {
                Some(r) if r != pid => {
                    (Check::fail(name, format!("{seen}; the server reports pid {r}")), Some(pid))
                }
                Some(_) => {
                    (Check::new(name, true, format!("{seen}, the pid it reports")), Some(pid))
                }
                None => (Check::new(name, true, seen), Some(pid)),
            }
        }
        many => (Check::fail(name, format!("{conn}, held by several processes {many:?}")), None),
    }
}

/// The checks on the process found by [`socket_owner`], and the GGUF verified, if any.
#[derive(Debug, Clone)]
pub(crate) struct Inspected {
    pub checks: Vec<Check>,
    pub model_path: Option<PathBuf>,
}

/// `executable`, `model_file`, `model_hash`, `network_seal`, `no_outbound` for process `pid`.
pub(crate) fn inspect(pid: u32, claim: Option<&Attestation>, max_model: u64) -> Inspected {
    let mut checks = vec![executable(pid)];
    let (file_check, opened) = model_file(pid, claim, max_model);
    checks.push(file_check);
    let mut model_path = None;
    checks.push(match opened {
        Some((path, file, size)) => {
            let c = model_hash(&path, file, size, claim);
            if c.passed() {
                model_path = Some(path);
            }
            c
        }
        None => Check::fail("model_hash", "no model file of the process to hash"),
    });
    checks.push(network_seal(pid, claim));
    checks.push(no_outbound(pid));
    Inspected { checks, model_path }
}

fn executable(pid: u32) -> Check {
    let name = "executable";
    let link = match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(l) => l,
        Err(e) => return Check::fail(name, format!("cannot read /proc/{pid}/exe: {e}")),
    };
    match std::fs::File::open(format!("/proc/{pid}/exe"))
        .and_then(|f| hash_reader(f, MAX_EXE_BYTES))
    {
        Ok(d) => Check::new(
            name,
            true,
            format!("{} ({} bytes, sha256 {})", link.display(), d.size, d.sha256),
        ),
        Err(e) => {
            Check::fail(name, format!("cannot hash {} of process {pid}: {e}", link.display()))
        }
    }
}

/// Opens the model file the process maps: the attested path when there is one (it must be a
/// regular file, mapped by `pid` with the same device and inode, and a GGUF), else the one GGUF
/// the process maps. Returns the open file so the hash reads exactly that file.
fn model_file(
    pid: u32,
    claim: Option<&Attestation>,
    max: u64,
) -> (Check, Option<(PathBuf, std::fs::File, u64)>) {
    let name = "model_file";
    let maps = match procfs::mapped_files(Some(pid)) {
        Ok(m) => m,
        Err(e) => return (Check::fail(name, format!("cannot read the process's maps: {e}")), None),
    };
    let candidates: Vec<PathBuf> = match claim.and_then(|a| a.model_path.clone()) {
        Some(p) => vec![PathBuf::from(p)],
        None => maps
            .iter()
            .map(|m| PathBuf::from(&m.path))
            .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
            .collect(),
    };
    if candidates.is_empty() {
        return (
            Check::fail(
                name,
                format!("the server names no model file and process {pid} maps no .gguf"),
            ),
            None,
        );
    }
    let mut why = Vec::new();
    for path in candidates {
        match open_mapped(&path, &maps, max) {
            Ok((file, size)) => {
                return (
                    Check::new(
                        name,
                        true,
                        format!("process {pid} maps {} (regular file, {size} bytes, GGUF, same device and inode)", path.display()),
                    ),
                    Some((path, file, size)),
                )
            }
            Err(e) => why.push(format!("{}: {e}", path.display())),
        }
    }
    (Check::fail(name, format!("process {pid}: {}", why.join("; "))), None)
}

fn open_mapped(
    path: &Path,
    maps: &[procfs::MappedFile],
    max: u64,
) -> Result<(std::fs::File, u64), String> {
    // Look at the path before opening it: opening a FIFO would block.
    let pre = std::fs::metadata(path).map_err(|e| format!("cannot stat it here: {e}"))?;
    if !pre.is_file() {
        let ft = pre.file_type();
        let kind = if ft.is_char_device() {
            "a character device"
        } else if ft.is_block_device() {
            "a block device"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(format!("is {kind}, not a model file; nothing hashed"));
    }
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open it here: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot stat it: {e}"))?;
    if !meta.is_file() {
        return Err("is no longer a regular file".into());
    }
    if meta.len() > max {
        return Err(format!("is {} bytes, over the {max}-byte cap", meta.len()));
    }
    if !maps.iter().any(|m| procfs::is_mapping_of(&meta, m)) {
        return Err(
            "the process does not map this file (no mapping with its device and inode)".into()
        );
    }
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic).map_err(|e| format!("cannot read its header: {e}"))?;
    if &magic != b"GGUF" {
        return Err(format!("does not start with the GGUF magic (starts with {magic:02x?})"));
    }
    // Rewind: the hash reads this same open file from byte 0.
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(0)).map_err(|e| format!("cannot rewind it: {e}"))?;
    Ok((file, meta.len()))
}

fn model_hash(path: &Path, file: std::fs::File, size: u64, claim: Option<&Attestation>) -> Check {
    let name = "model_hash";
    let started = Instant::now();
    let digest = match hash_reader(file, size) {
        Ok(d) => d,
        Err(e) => return Check::fail(name, format!("cannot hash {}: {e}", path.display())),
    };
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let rate = format!("{:.0} MB/s", digest.size as f64 / 1e6 / secs);
    let Some(a) = claim else {
        return Check::fail(
            name,
            format!(
                "{} hashes to {} ({rate}) but the server attests no hash",
                path.display(),
                digest.sha256
            ),
        );
    };
    if !a.model_mapped {
        return Check::fail(
            name,
            format!(
                "the server's hash is not of the file it mapped (model_mapped false): {}",
                a.model_hash_error.clone().unwrap_or_default()
            ),
        );
    }
    match (a.model_size, a.model_sha256.as_deref()) {
        (Some(s), Some(h)) if s == digest.size && h.eq_ignore_ascii_case(&digest.sha256) => {
            Check::new(
                name,
                true,
                format!(
                    "{}: {s} bytes, sha256 {h}, matches (hashed here in {:.2} s, {rate})",
                    path.display(),
                    secs
                ),
            )
        }
        (Some(s), Some(h)) => Check::fail(
            name,
            format!(
                "{} is {} bytes with sha256 {}, the server attests {s} bytes with sha256 {h}",
                path.display(),
                digest.size,
                digest.sha256
            ),
        ),
        _ => Check::fail(
            name,
            format!(
                "the server attests no hash: {}",
                a.model_hash_error.clone().unwrap_or_default()
            ),
        ),
    }
}

fn network_seal(pid: u32, claim: Option<&Attestation>) -> Check {
    let name = "network_seal";
    let (theirs, mine) = match (procfs::seccomp_state(Some(pid)), procfs::seccomp_state(None)) {
        (Ok(t), Ok(m)) => (t, m),
        (Err(e), _) | (_, Err(e)) => {
            return Check::fail(name, format!("cannot read the seccomp state: {e}"))
        }
    };
    let (their_ns, my_ns, ifaces) = match (
        procfs::net_namespace(Some(pid)),
        procfs::net_namespace(None),
        procfs::interfaces(pid),
    ) {
        (Ok(t), Ok(m), Ok(i)) => (t, m, i),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return Check::fail(name, format!("cannot read the network namespace: {e}"))
        }
    };
    let more_filters = match (theirs.filters, mine.filters) {
        (Some(t), Some(m)) => t > m,
        _ => true,
    };
    let by_seccomp = theirs.mode == 2 && theirs.no_new_privs && more_filters;
    let by_namespace = their_ns != my_ns && ifaces.iter().all(|i| i == "lo");
    let filters = |s: procfs::SeccompState| s.filters.map_or("?".to_owned(), |f| f.to_string());
    let seen = format!(
        "Seccomp: {} ({} filters; this verifier has {}), NoNewPrivs: {}, network namespace {their_ns} ({}), interfaces: {}",
        theirs.mode,
        filters(theirs),
        filters(mine),
        u8::from(theirs.no_new_privs),
        if their_ns == my_ns { "this verifier's" } else { "its own" },
        ifaces.join(", ")
    );
    let claimed = claim.and_then(|a| a.seal.as_ref()).map(|s| s.mechanism.as_str());
    if by_seccomp || by_namespace {
        let how = if by_seccomp { "a seccomp filter" } else { "a namespace with only lo" };
        Check::new(
            name,
            true,
            format!("sealed by {how} (server reports {}): {seen}", claimed.unwrap_or("no seal")),
        )
    } else if let Some(m) = claimed {
        Check::fail(name, format!("the server claims a {m} seal the kernel does not show: {seen}"))
    } else {
        Check::fail(
            name,
            format!("not sealed: the process can open connections off this machine: {seen}"),
        )
    }
}

/// `no_outbound`: process `pid` holds no socket that reaches another machine.
pub(crate) fn no_outbound(pid: u32) -> Check {
    let name = "no_outbound";
    let inodes = match procfs::socket_inodes(pid) {
        Ok(i) => i,
        Err(e) => {
            return Check::fail(name, format!("cannot read process {pid}'s descriptors: {e}"))
        }
    };
    let root = PathBuf::from(format!("/proc/{pid}"));
    let mut tables = Vec::new();
    for table in ["tcp", "tcp6", "udp", "udp6", "raw", "raw6"] {
        match procfs::socket_table(&root, table) {
            Ok(rows) => tables.push((table, rows)),
            Err(e) => return Check::fail(name, format!("cannot read its {table} table: {e}")),
        }
    }
    // Connections it accepted arrive on a port it listens on; any other connection is one it
    // opened, and one opened even to loopback could reach a relay that forwards it off the
    // machine. A UDP or raw socket can send anywhere without connecting.
    let listening_ports: Vec<u16> = tables
        .iter()
        .filter(|(t, _)| t.starts_with("tcp"))
        .flat_map(|(_, rows)| rows.iter())
        .filter(|r| inodes.contains(&r.inode) && r.state == 0x0A)
        .map(|r| r.local.port())
        .collect();
    let mut outbound = Vec::new();
    let (mut listening, mut accepted, mut seen) = (0, 0, 0usize);
    for (table, rows) in &tables {
        for row in rows.iter().filter(|r| inodes.contains(&r.inode)) {
            seen += 1;
            if !table.starts_with("tcp") {
                outbound.push(format!(
                    "a {table} socket {} -> {} (inode {})",
                    row.local, row.remote, row.inode
                ));
            } else if row.state == 0x0A {
                listening += 1;
            } else if listening_ports.contains(&row.local.port()) && stays_local(row.remote.ip()) {
                accepted += 1;
            } else if listening_ports.contains(&row.local.port()) {
                outbound.push(format!(
                    "a client off this machine: {table} {} <- {}",
                    row.local, row.remote
                ));
            } else {
                outbound.push(format!(
                    "an outgoing connection {table} {} -> {}",
                    row.local, row.remote
                ));
            }
        }
    }
    match std::fs::read_to_string(root.join("net/packet")) {
        Ok(text) => {
            for inode in text
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(8)?.parse::<u64>().ok())
            {
                if inodes.contains(&inode) {
                    outbound.push(format!("a packet socket (inode {inode})"));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Check::fail(name, format!("cannot read its packet table: {e}")),
    }
    let others = inodes.len().saturating_sub(seen);
    let summary = format!(
        "process {pid} holds {} sockets: {listening} listening, {accepted} accepted from this machine, {others} other (Unix, netlink)",
        inodes.len()
    );
    if outbound.is_empty() {
        Check::new(name, true, format!("{summary}; none reaches another machine"))
    } else {
        Check::fail(name, format!("{summary}; reaching off this machine: {}", outbound.join(", ")))
    }
}
