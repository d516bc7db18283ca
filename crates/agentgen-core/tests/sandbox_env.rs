//! Sandboxed code does not see the caller's keys. One test in its own binary, because it sets
//! an environment variable in this process before any other thread exists.
#![cfg(target_os = "linux")]

use std::ffi::OsString;
use std::time::Duration;

use agentgen_core::sandbox::{Sandbox, SandboxPolicy};
use agentgen_core::CancellationToken;

const KEY_NAME: &str = "AGENTGEN_TEST_API_KEY";
const KEY: &str = "sk-test-0123456789abcdef";

async fn env_of(policy: SandboxPolicy) -> String {
    let sandbox = Sandbox::new(policy).await.unwrap();
    let code = format!(
        "import os\nprint(os.environ.get({KEY_NAME:?}, 'absent'))\nprint(sorted(os.environ))\nprint(os.environ['HOME'] == os.getcwd())\n"
    );
    let file = sandbox.write_file("env.py", code.as_bytes()).await.unwrap();
    let out = sandbox
        .run(
            "python3",
            &[OsString::from(file)],
            Duration::from_secs(20),
            16 * 1024,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    out.output
}

#[test]
fn code_cannot_read_a_key_from_the_environment() {
    // SAFETY (of the test): no other thread exists yet; the runtime is built afterwards.
    std::env::set_var(KEY_NAME, KEY);
    std::env::set_var("GROQ_API_KEY", KEY);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let out = env_of(SandboxPolicy::default()).await;
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("absent"), "{out}");
        let names = lines.next().unwrap();
        assert!(!names.contains("KEY") && !names.contains(KEY), "{names}");
        for name in names.trim_matches(['[', ']']).split(", ") {
            let name = name.trim_matches('\'');
            assert!(
                ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "HOME", "TMPDIR", "PWD"]
                    .contains(&name)
                    || name.starts_with("LC_"),
                "unexpected variable {name} in {names}"
            );
        }
        assert_eq!(lines.next(), Some("True"), "HOME is the sandbox directory");

        // Allowed by name, the same code reads it: the check above could fail.
        let mut policy = SandboxPolicy::default();
        policy.env_allow.push(KEY_NAME.to_owned());
        let out = env_of(policy).await;
        assert_eq!(out.lines().next(), Some(KEY));
    });
}
