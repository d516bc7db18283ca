//! The CLI's backend features build alone: `--no-default-features --features groq` (models,
//! pull and the Groq/OpenAI-compatible client, with no llama.cpp and no C++ compiler) and
//! `--features local` (the in-process engine with no HTTP client in its dependency tree).
//! Each is checked twice: `cargo tree` must not list what the feature set rules out, and the
//! binary must build (the groq build with `CXX` pointing at a program that always fails).

use crate::cmd::{Error, Workspace};

/// One feature set of `agentgen-cli` and the packages its tree must not hold.
struct FeatureSet {
    features: &'static str,
    forbidden: &'static [&'static str],
    /// Environment for the build: proves what the build does not need.
    env: &'static [(&'static str, &'static str)],
}

const SETS: [FeatureSet; 2] = [
    FeatureSet {
        features: "groq",
        forbidden: &["agentgen-local", "llama-cpp-2", "llama-cpp-sys-2", "cmake", "bindgen"],
        env: &[("CXX", "false")],
    },
    FeatureSet {
        features: "local",
        forbidden: &["agentgen-groq", "agentgen-server", "reqwest", "hyper", "axum", "h2"],
        env: &[],
    },
];

/// The packages `cargo tree` lists for the CLI with `features` (normal and build edges).
fn tree(ws: &Workspace, features: &str) -> Result<Vec<String>, Error> {
    let out = ws
        .cargo([
            "tree",
            "-p",
            "agentgen-cli",
            "--no-default-features",
            "--features",
            features,
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .probe()
        .ok_or_else(|| Error::Other(format!("`cargo tree --features {features}` failed")))?;
    let mut packages: Vec<String> =
        out.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect();
    packages.sort_unstable();
    packages.dedup();
    Ok(packages)
}

/// Checks and builds each feature set, then rebuilds the default CLI (the feature builds
/// write the same binary path). Returns a one-line summary.
pub fn check(ws: &Workspace) -> Result<String, Error> {
    let mut summary = Vec::new();
    for set in &SETS {
        let packages = tree(ws, set.features)?;
        let found: Vec<&str> =
            set.forbidden.iter().copied().filter(|f| packages.iter().any(|p| p == f)).collect();
        if !found.is_empty() {
            return Err(Error::Other(format!(
                "`--features {}` pulls in {}",
                set.features,
                found.join(", ")
            )));
        }
        let mut build = ws.cargo([
            "build",
            "-p",
            "agentgen-cli",
            "--no-default-features",
            "--features",
            set.features,
        ]);
        for (k, v) in set.env {
            build = build.env(k, v);
        }
        build.status_ok()?;
        summary.push(format!(
            "{} ({} packages, none of {})",
            set.features,
            packages.len(),
            set.forbidden.len()
        ));
    }
    ws.cargo(["build", "-p", "agentgen-cli"]).status_ok()?;
    Ok(summary.join("; "))
}
