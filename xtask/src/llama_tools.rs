//! `cargo xtask llama-tools`: builds llama.cpp's own `llama-bench` against the llama.cpp
//! source that `llama-cpp-sys-2` vendors, the very version the local engine links, with the
//! same CPU flags (native SIMD, OpenMP, no AMX), so the benchmark's ours/theirs ratios compare
//! engines and not builds.
//!
//! `llama-cpp-sys-2` ships llama.cpp's libraries but not its tools' sources; those two files
//! (`tools/llama-bench/{llama-bench,main}.cpp`) come from the llama.cpp that the
//! `llama-cpp-python` source package vendors, fetched from the Python package index.

use std::path::{Path, PathBuf};

use crate::cmd::{self, Cmd, Error, Workspace};

/// The source package that carries llama-bench's sources, pinned.
const TOOL_SOURCE_PACKAGE: &str = "llama-cpp-python==0.3.36";

/// The tools built.
pub const TOOLS: [&str; 1] = ["llama-bench"];

/// Where the tools land: `<target>/llama.cpp/build/bin` (llama.cpp's CMake project sets its
/// own runtime output folder, `bin` in the build tree).
pub fn bin_dir(ws: &Workspace) -> PathBuf {
    ws.target_dir.join("llama.cpp").join("build").join("bin")
}

/// The built `llama-bench`, when `cargo xtask llama-tools` has run.
pub fn llama_bench(ws: &Workspace) -> Option<PathBuf> {
    Some(bin_dir(ws).join("llama-bench")).filter(|p| p.is_file())
}

/// The llama.cpp source folder inside the `llama-cpp-sys-2` package cargo resolved.
fn vendored_source(ws: &Workspace) -> Result<PathBuf, Error> {
    let meta = ws
        .cargo(["metadata", "--format-version", "1", "--offline"])
        .probe()
        .or_else(|| ws.cargo(["metadata", "--format-version", "1"]).probe())
        .ok_or_else(|| Error::Other("`cargo metadata` failed".into()))?;
    let meta: serde_json::Value = serde_json::from_str(&meta)
        .map_err(|e| Error::Other(format!("cargo metadata is not JSON: {e}")))?;
    let manifest = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "llama-cpp-sys-2")
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or_else(|| Error::Other("llama-cpp-sys-2 is not among the dependencies".into()))?;
    let source = Path::new(manifest).with_file_name("llama.cpp");
    if !source.join("CMakeLists.txt").is_file() {
        return Err(Error::Missing(format!("{} holds no llama.cpp source", source.display())));
    }
    Ok(source)
}

/// Copies a folder tree.
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    let io = |what: &str, p: &Path| {
        let p = p.display().to_string();
        let what = what.to_owned();
        move |e: std::io::Error| Error::Other(format!("cannot {what} {p}: {e}"))
    };
    std::fs::create_dir_all(to).map_err(io("create", to))?;
    for entry in std::fs::read_dir(from).map_err(io("read", from))? {
        let entry = entry.map_err(io("read", from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(io("read", &src))?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(io("copy", &src))?;
        }
    }
    Ok(())
}

/// Fetches llama-bench's two source files into `dest` from [`TOOL_SOURCE_PACKAGE`].
fn fetch_bench_sources(scratch: &Path, dest: &Path) -> Result<(), Error> {
    let python = if cfg!(windows) { "python" } else { "python3" };
    cmd::step(&format!("fetching llama-bench's sources ({TOOL_SOURCE_PACKAGE})"));
    Cmd::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet", "-d"])
        .arg(scratch)
        .arg(TOOL_SOURCE_PACKAGE)
        .status_ok()?;
    let archive = std::fs::read_dir(scratch)
        .map_err(|e| Error::Other(format!("cannot read {}: {e}", scratch.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .ok_or_else(|| Error::Other("pip downloaded no source archive".into()))?;
    Cmd::new("tar")
        .args(["-xzf"])
        .arg(&archive)
        .arg("-C")
        .arg(scratch)
        .args(["--wildcards", "*/vendor/llama.cpp/tools/llama-bench/*"])
        .status_ok()?;
    let stem = archive
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.gz"))
        .ok_or_else(|| Error::Other("odd source archive name".into()))?;
    let tool = scratch.join(stem).join("vendor/llama.cpp/tools/llama-bench");
    std::fs::create_dir_all(dest)
        .map_err(|e| Error::Other(format!("cannot create {}: {e}", dest.display())))?;
    for file in ["llama-bench.cpp", "main.cpp", "CMakeLists.txt"] {
        std::fs::copy(tool.join(file), dest.join(file))
            .map_err(|e| Error::Other(format!("{file} is not in {}: {e}", archive.display())))?;
    }
    Ok(())
}

/// Configures and builds the tools; returns their folder.
pub fn build(ws: &Workspace) -> Result<PathBuf, Error> {
    let vendored = vendored_source(ws)?;
    let root = ws.target_dir.join("llama.cpp");
    let source = root.join("src");
    let build = root.join("build");
    if !source.join("tools/llama-bench/llama-bench.cpp").is_file() {
        cmd::step(&format!("copying llama.cpp from {}", vendored.display()));
        let _ = std::fs::remove_dir_all(&source);
        copy_tree(&vendored, &source)?;
        let bench_dir = source.join("tools/llama-bench");
        if !vendored.join("tools/llama-bench/llama-bench.cpp").is_file() {
            fetch_bench_sources(&root.join("download"), &bench_dir)?;
        }
        // Only llama-bench: the other tools' sources are not shipped.
        std::fs::write(
            source.join("tools/CMakeLists.txt"),
            "find_package(Threads REQUIRED)\nllama_add_compile_flags()\nadd_subdirectory(llama-bench)\n",
        )
        .map_err(|e| Error::Other(format!("cannot write tools/CMakeLists.txt: {e}")))?;
    }
    cmd::step("configuring llama.cpp");
    let mut configure = Cmd::new("cmake").arg("-S").arg(&source).arg("-B").arg(&build).args([
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=OFF",
        "-DGGML_NATIVE=ON",
        "-DGGML_OPENMP=ON",
        "-DLLAMA_CURL=OFF",
        "-DLLAMA_OPENSSL=OFF",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_SERVER=OFF",
        "-DLLAMA_BUILD_APP=OFF",
        "-DLLAMA_BUILD_TOOLS=ON",
    ]);
    if cfg!(target_arch = "x86_64") {
        // As the engine's build (.cargo/config.toml): AMX kernels die on VMs that list AMX.
        let no_amx = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16";
        configure = configure.env("CFLAGS", no_amx).env("CXXFLAGS", no_amx);
    }
    configure.status_ok()?;
    cmd::step("building llama-bench");
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get()).to_string();
    Cmd::new("cmake")
        .arg("--build")
        .arg(&build)
        .args(["--config", "Release", "-j", &jobs, "--target"])
        .args(TOOLS)
        .status_ok()?;
    let dir = bin_dir(ws);
    for tool in TOOLS {
        if !dir.join(tool).is_file() {
            return Err(Error::Other(format!("{tool} was not built in {}", dir.display())));
        }
    }
    Ok(dir)
}
