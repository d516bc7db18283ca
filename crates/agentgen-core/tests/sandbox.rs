//! The sandbox against real python3 and bash: no TCP connection (to a listener this test opens
//! on 127.0.0.1), no writes outside its directory, fork bombs and memory hogs contained,
//! background processes killed with the block. Each restriction is shown to matter by running
//! the same code with it lifted. Linux only: that is where the default policy can be enforced.
#![cfg(target_os = "linux")]

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use agentgen_core::sandbox::{Limits, RunOutput, Sandbox, SandboxError, SandboxPolicy, Writes};
use agentgen_core::CancellationToken;

async fn run_in(sandbox: &Sandbox, language: &str, code: &str, timeout: Duration) -> RunOutput {
    let (program, name) = match language {
        "python" => ("python3", "block.py"),
        _ => ("bash", "block.sh"),
    };
    let file = sandbox.write_file(name, code.as_bytes()).await.unwrap();
    sandbox
        .run(program, &[OsString::from(file)], timeout, 64 * 1024, &CancellationToken::new())
        .await
        .unwrap()
}

async fn run(policy: SandboxPolicy, language: &str, code: &str) -> RunOutput {
    let sandbox = Sandbox::new(policy).await.unwrap();
    run_in(&sandbox, language, code, Duration::from_secs(20)).await
}

/// Processes whose working directory is `dir` (a sandbox's processes start there).
fn processes_in(dir: &Path) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
            .unwrap_or(true);
        if !zombie && std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c == dir) {
            found.push(pid);
        }
    }
    found
}

/// Tries TCP (which Landlock alone would also stop) and UDP (which only the network namespace
/// stops) to ports the test listens on.
const CONNECT: &str = r#"
import socket
try:
    socket.create_connection(("127.0.0.1", TCP_PORT), timeout=3)
    print("tcp connected")
except OSError as e:
    print("tcp refused:", e.errno)
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hello", ("127.0.0.1", UDP_PORT))
    print("udp sent")
except OSError as e:
    print("udp refused:", e.errno)
"#;

#[tokio::test]
async fn code_cannot_reach_the_network_but_can_when_it_is_allowed() {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let code = CONNECT
        .replace("TCP_PORT", &tcp.local_addr().unwrap().port().to_string())
        .replace("UDP_PORT", &udp.local_addr().unwrap().port().to_string());

    let isolated = run(SandboxPolicy::default(), "python", &code).await;
    // 13: Landlock denies the TCP connect; 101 (ENETUNREACH): the namespace's loopback is down.
    assert_eq!(isolated.exit_code, Some(0), "{isolated:?}");
    assert!(isolated.output.starts_with("tcp refused: "), "{}", isolated.output);
    assert!(isolated.output.ends_with("udp refused: 101\n"), "{}", isolated.output);

    let allowed = run(SandboxPolicy::default().allow_network(), "python", &code).await;
    assert_eq!(allowed.output, "tcp connected\nudp sent\n", "with the network allowed");
    let mut buf = [0u8; 16];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
}

#[tokio::test]
async fn code_writes_only_beneath_its_directory() {
    // A directory anyone may write to, so that only Landlock stands in the way.
    let outside = tempfile::tempdir().unwrap();
    std::fs::set_permissions(outside.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .unwrap();
    let target = outside.path().join("escaped.txt");
    let code = format!(
        r#"
import os
os.makedirs("sub/deeper", exist_ok=True)
open("sub/deeper/inside.txt", "w").write("ok")
os.rename("sub/deeper/inside.txt", "sub/moved.txt")
with open("/dev/null", "w") as f:
    f.write("discarded")
try:
    open({target:?}, "w").write("escaped")
    print("wrote outside")
except OSError as e:
    print("outside refused:", e.errno)
"#,
        target = target.to_str().unwrap()
    );

    let sandbox = Sandbox::new(SandboxPolicy::default()).await.unwrap();
    let out = run_in(&sandbox, "python", &code, Duration::from_secs(20)).await;
    assert_eq!(out.output, "outside refused: 13\n", "{out:?}");
    assert!(!target.exists());
    assert_eq!(std::fs::read_to_string(sandbox.dir().join("sub/moved.txt")).unwrap(), "ok");

    let anywhere = SandboxPolicy { writes: Writes::Anywhere, ..SandboxPolicy::default() };
    let out = run(anywhere, "python", &code).await;
    assert_eq!(out.output, "wrote outside\n", "without Landlock the same write succeeds");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "escaped");
}

#[tokio::test]
async fn a_symlink_left_by_code_does_not_redirect_the_next_block_s_file() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, "untouched").unwrap();
    let sandbox = Sandbox::new(SandboxPolicy::default()).await.unwrap();
    let plant = format!("ln -s {:?} next.py\n", victim.to_str().unwrap());
    let out = run_in(&sandbox, "bash", &plant, Duration::from_secs(20)).await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert!(sandbox.dir().join("next.py").is_symlink());
    sandbox.write_file("next.py", b"print('next')").await.unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    assert!(!sandbox.dir().join("next.py").is_symlink());
    assert!(sandbox.write_file("../escape.py", b"x").await.is_err());
}

#[tokio::test]
async fn a_fork_bomb_is_held_to_the_process_limit_and_killed_with_the_block() {
    let policy = SandboxPolicy {
        limits: Limits { processes: 16, ..Limits::default() },
        ..SandboxPolicy::default()
    };
    // Counts the forks it gets, stopping at 300 should the limit not hold.
    let code = r#"
import os, time
n = 0
try:
    while n < 300:
        if os.fork() == 0:
            time.sleep(999)
            os._exit(0)
        n += 1
    print("forks", n, "unlimited")
except OSError as e:
    print("forks", n, "errno", e.errno)
"#;
    let sandbox = Sandbox::new(policy.clone()).await.unwrap();
    let out = run_in(&sandbox, "python", code, Duration::from_secs(20)).await;
    let forks: usize = out.output.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(forks < 16 && out.output.ends_with("errno 11\n"), "{out:?}");
    assert_eq!(out.leftovers_killed, forks, "every sleeping child was killed");
    assert_eq!(processes_in(sandbox.dir()), Vec::<i32>::new());

    // The classic one: its bomb runs on until the block ends (the shell itself may find no
    // fork left for `sleep` and run into the timeout); nothing of it outlives the block.
    let sandbox = Sandbox::new(policy).await.unwrap();
    let started = Instant::now();
    let out = run_in(&sandbox, "bash", ":(){ :|:& };:\nsleep 1\n", Duration::from_secs(3)).await;
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    assert!(out.exit_code == Some(0) || out.timed_out, "{out:?}");
    assert_eq!(processes_in(sandbox.dir()), Vec::<i32>::new());
}

#[tokio::test]
async fn a_memory_hog_gets_memory_error_under_the_address_space_limit() {
    let code = "chunks = []\nwhile len(chunks) < 48:\n    chunks.append(bytearray(16 << 20))\nprint('got', len(chunks) * 16, 'MiB')\n";
    let capped = SandboxPolicy {
        limits: Limits { address_space_bytes: 256 << 20, ..Limits::default() },
        ..SandboxPolicy::default()
    };
    let out = run(capped, "python", code).await;
    assert_eq!(out.exit_code, Some(1), "{out:?}");
    assert!(out.output.contains("MemoryError"), "{}", out.output);

    let roomy = SandboxPolicy {
        limits: Limits { address_space_bytes: 4 << 30, ..Limits::default() },
        ..SandboxPolicy::default()
    };
    let out = run(roomy, "python", code).await;
    assert_eq!(out.output, "got 768 MiB\n", "with room the same code finishes");
}

#[tokio::test]
async fn cpu_time_and_file_size_are_limited() {
    let policy = SandboxPolicy {
        limits: Limits { cpu_seconds: 1, file_size_bytes: 1 << 20, ..Limits::default() },
        ..SandboxPolicy::default()
    };
    let sandbox = Sandbox::new(policy).await.unwrap();
    let started = Instant::now();
    let out = run_in(&sandbox, "python", "while True:\n    pass\n", Duration::from_secs(30)).await;
    assert_eq!(out.signal, Some(libc::SIGXCPU), "{out:?}");
    assert!(!out.timed_out && started.elapsed() < Duration::from_secs(15));

    let code = "try:\n    open('big', 'wb').write(b'x' * (2 << 20))\n    print('wrote 2 MiB')\nexcept OSError as e:\n    print('refused:', e.errno)\n";
    let out = run_in(&sandbox, "python", code, Duration::from_secs(20)).await;
    assert_eq!(out.output, "refused: 27\n", "EFBIG: {out:?}");
    assert_eq!(std::fs::metadata(sandbox.dir().join("big")).unwrap().len(), 1 << 20);
}

#[tokio::test]
async fn background_processes_die_with_the_block_and_do_not_hold_it_open() {
    let sandbox = Sandbox::new(SandboxPolicy::default()).await.unwrap();
    let started = Instant::now();
    let out = run_in(
        &sandbox,
        "bash",
        "sleep 999 &\nsetsid sleep 998 &\necho started\n",
        Duration::from_secs(60),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!((out.exit_code, out.output.as_str()), (Some(0), "started\n"));
    assert_eq!(out.leftovers_killed, 2, "both sleeps, the one that left the group too");
    assert_eq!(processes_in(sandbox.dir()), Vec::<i32>::new());

    let started = Instant::now();
    let out = run_in(
        &sandbox,
        "bash",
        "sleep 999 &\necho waiting\nsleep 997\n",
        Duration::from_millis(500),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(out.timed_out);
    assert_eq!(out.output, "waiting\n");
    assert_eq!(processes_in(sandbox.dir()), Vec::<i32>::new());
}

#[tokio::test]
async fn cancelling_a_run_kills_it() {
    let sandbox = Sandbox::new(SandboxPolicy::default()).await.unwrap();
    let file = sandbox.write_file("b.sh", b"sleep 996 &\nsleep 995\n").await.unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let res =
        sandbox.run("bash", &[OsString::from(file)], Duration::from_secs(60), 1024, &cancel).await;
    assert_eq!(res, Err(agentgen_core::sandbox::SandboxError::Cancelled));
    assert_eq!(processes_in(sandbox.dir()), Vec::<i32>::new());
}

#[tokio::test]
async fn dropping_a_run_kills_it() {
    let sandbox = Sandbox::new(SandboxPolicy::default()).await.unwrap();
    let file = sandbox.write_file("b.sh", b"setsid sleep 994 &\nsleep 993\n").await.unwrap();
    let cancel = CancellationToken::new();
    let args = [OsString::from(file)];
    let run = sandbox.run("bash", &args, Duration::from_secs(60), 1024, &cancel);
    assert!(tokio::time::timeout(Duration::from_millis(500), run).await.is_err());
    assert_eq!(processes_in(sandbox.dir()), Vec::<i32>::new());
}

#[tokio::test]
async fn with_the_network_allowed_the_run_still_has_its_own_namespace() {
    let sandbox = Sandbox::new(SandboxPolicy::default().allow_network()).await.unwrap();
    let out =
        run_in(&sandbox, "bash", "setsid sleep 992 &\necho ok\n", Duration::from_secs(20)).await;
    assert_eq!((out.output.as_str(), out.leftovers_killed), ("ok\n", 1));
    assert_eq!(processes_in(sandbox.dir()), Vec::<i32>::new());
}

/// Where no user namespace can be made, the default policy is refused with a typed error and
/// an explicit `allow_network` still runs (Landlock still on). The test runs itself again in a
/// user namespace whose `max_user_namespaces` is 0 (util-linux `unshare`).
#[tokio::test]
async fn without_namespaces_isolation_is_refused_unless_the_network_is_allowed() {
    const INNER: &str = "AGENTGEN_SANDBOX_TEST_NO_NAMESPACES";
    if std::env::var_os(INNER).is_none() {
        let exe = std::env::current_exe().unwrap();
        let out = tokio::process::Command::new("unshare")
            .args(["-r", "sh", "-c"])
            .arg("echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" \"$@\"")
            .arg(exe)
            .args([
                "--exact",
                "without_namespaces_isolation_is_refused_unless_the_network_is_allowed",
                "--nocapture",
            ])
            .env(INNER, "1")
            .output()
            .await
            .expect("util-linux unshare");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("inner checks passed"), "{text}");
        return;
    }
    // Root inside that namespace, but 65534 is not mapped there: keep the caller's uid.
    let policy = SandboxPolicy { drop_root: false, ..SandboxPolicy::default() };
    match Sandbox::new(policy.clone()).await {
        Err(SandboxError::NetworkIsolationUnavailable { reason }) => {
            assert!(reason.contains("unshare"), "{reason}")
        }
        other => panic!("expected NetworkIsolationUnavailable, got {other:?}"),
    }
    let sandbox = Sandbox::new(policy.allow_network()).await.unwrap();
    let out = run_in(
        &sandbox,
        "bash",
        "echo ran > here.txt && cat here.txt && touch /tmp/x-$$ 2>&1 || echo no write",
        Duration::from_secs(20),
    )
    .await;
    assert!(out.output.starts_with("ran\n") && out.output.ends_with("no write\n"), "{out:?}");
    println!("inner checks passed");
}

/// Spawn cost: `cargo test -p agentgen-core --test sandbox -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn spawn_overhead() {
    let cancel = CancellationToken::new();
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut plain = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let status = tokio::process::Command::new("true").status().await.unwrap();
        plain.push(t.elapsed());
        assert!(status.success());
    }
    println!("spawn+wait of `true`, median of 50: plain {:?}", median(plain));
    let policies = [
        ("default (user+net namespace, Landlock)", SandboxPolicy::default()),
        ("network allowed (user namespace, Landlock)", SandboxPolicy::default().allow_network()),
        (
            "network allowed, writes anywhere",
            SandboxPolicy { writes: Writes::Anywhere, ..SandboxPolicy::default().allow_network() },
        ),
    ];
    for (name, policy) in policies {
        let t = Instant::now();
        let sandbox = Sandbox::new(policy).await.unwrap();
        let made = t.elapsed();
        let mut runs = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let out =
                sandbox.run("true", &[], Duration::from_secs(5), 1024, &cancel).await.unwrap();
            runs.push(t.elapsed());
            assert_eq!(out.exit_code, Some(0));
        }
        println!("  sandboxed, {name}: {:?} (new sandbox {made:?})", median(runs));
    }
}
