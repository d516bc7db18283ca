//! The model cache: where pulled GGUF files live, and how tests and the CLI find them.
//!
//! The cache directory is `$AGENTGEN_HOME/models` when `AGENTGEN_HOME` is set, otherwise
//! `agentgen/models` under the platform cache directory (`$XDG_CACHE_HOME`, by default
//! `~/.cache`, on Linux). Files in it are complete, verified models: `pull` writes into a hidden
//! temporary file in the same directory and renames it into place only once size and sha256
//! match, so a name without a leading dot is never a partial download.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Environment variable naming agentgen's home directory; models go in its `models` folder.
pub const AGENTGEN_HOME_ENV: &str = "AGENTGEN_HOME";

/// Environment variable a test run sets to the path of the GGUF that real-model tests load.
pub const TEST_MODEL_ENV: &str = "AGENTGEN_TEST_MODEL";

/// File name of the default model (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M) in the cache.
pub const DEFAULT_MODEL_FILE: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

/// Prefix of the temporary files `pull` writes in the cache directory; [`ModelCache::list`]
/// skips them (and every other hidden file).
pub const PARTIAL_PREFIX: &str = ".agentgen-partial-";

/// The directory holding pulled models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCache {
    /// The directory itself; it need not exist yet (`pull` creates it).
    pub root: PathBuf,
}

/// One model file found in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    /// The file name, e.g. `qwen2.5-coder-0.5b-instruct-q4_k_m.gguf`.
    pub name: String,
    /// Full path of the file.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

impl ModelCache {
    /// A cache rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The cache the environment selects: `$AGENTGEN_HOME/models` when `AGENTGEN_HOME` is set
    /// and non-empty, else `agentgen/models` under the platform cache directory. Without either
    /// (no home directory at all) it falls back to `.agentgen/models` in the working directory
    /// and logs a warning.
    pub fn from_env() -> Self {
        Self::resolve(std::env::var_os(AGENTGEN_HOME_ENV), dirs::cache_dir())
    }

    /// The rule behind [`ModelCache::from_env`], with the environment passed in.
    fn resolve(agentgen_home: Option<std::ffi::OsString>, cache_dir: Option<PathBuf>) -> Self {
        if let Some(home) = agentgen_home.filter(|v| !v.is_empty()) {
            return Self::new(PathBuf::from(home).join("models"));
        }
        match cache_dir {
            Some(dir) => Self::new(dir.join("agentgen").join("models")),
            None => {
                tracing::warn!(
                    "no cache directory for this user and {AGENTGEN_HOME_ENV} is unset; \
                     using .agentgen/models in the working directory"
                );
                Self::new(PathBuf::from(".agentgen").join("models"))
            }
        }
    }

    /// Where a model file of this name lives (or will live) in the cache.
    pub fn path_for(&self, file_name: &str) -> PathBuf {
        self.root.join(file_name)
    }

    /// The model files in the cache, sorted by name, skipping hidden and partial files. A cache
    /// directory that does not exist yet is an empty cache.
    pub fn list(&self) -> io::Result<Vec<CachedFile>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            files.push(CachedFile { name, path: entry.path(), size: meta.len() });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }
}

/// The cache path of the default model's file in the cache [`ModelCache::from_env`] selects.
pub fn default_model_path() -> PathBuf {
    ModelCache::from_env().path_for(DEFAULT_MODEL_FILE)
}

/// The GGUF that real-model tests load: `$AGENTGEN_TEST_MODEL` when set (it must exist), else
/// the default model in the cache when it is there. Otherwise an error saying how to get it.
pub fn test_model_path() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(TEST_MODEL_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{TEST_MODEL_ENV} is set to {}, but no file is there; point it at a GGUF file \
                 or unset it to use the model cache",
                path.display()
            ))
        };
    }
    let path = default_model_path();
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "the test model is not at {}; fetch it with `agentgen pull` (or run the whole suite \
             with `cargo xtask test`, which fetches it), or set {TEST_MODEL_ENV} to a GGUF file",
            path.display()
        ))
    }
}

/// The test model for a real-model test: `None` (the test skips) when
/// `AGENTGEN_SKIP_MODEL_TESTS=1`, else the path from [`test_model_path`].
///
/// # Panics
/// When the model cannot be found: a real-model test without its model must fail, not pass.
#[cfg(feature = "testing")]
pub fn model_for_tests() -> Option<PathBuf> {
    if std::env::var("AGENTGEN_SKIP_MODEL_TESTS").as_deref() == Ok("1") {
        eprintln!("AGENTGEN_SKIP_MODEL_TESTS=1: skipping a real-model test");
        return None;
    }
    Some(test_model_path().unwrap_or_else(|e| panic!("real-model test needs the test model: {e}")))
}

/// The lowercase hex sha256 of a file, read in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    Ok(sha256_reader(File::open(path)?, u64::MAX)?.sha256)
}

/// The size and lowercase hex sha256 of what `reader` yields, streamed in 1 MiB blocks.
/// More than `max_bytes` is an [`io::ErrorKind::FileTooLarge`] error (a device or a growing
/// file never hashes forever).
pub fn sha256_reader(mut reader: impl Read, max_bytes: u64) -> io::Result<Digest256> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > max_bytes {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("more than {max_bytes} bytes"),
            ));
        }
        hasher.update(&buf[..n]);
    }
    Ok(Digest256 { size, sha256: hex::encode(hasher.finalize()) })
}

/// What [`sha256_reader`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest256 {
    /// Bytes read.
    pub size: u64,
    /// Lowercase hex sha256.
    pub sha256: String,
}

/// Removes `.agentgen-partial-*` files older than `max_age` left in `dir` by interrupted pulls
/// (a pull in progress keeps writing its own, so it is never that old); returns how many.
pub fn clean_stale_partials(dir: &Path, max_age: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(PARTIAL_PREFIX))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > max_age))
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn sha256_of_known_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::File::create(&path).unwrap().write_all(b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sha256_spans_several_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        assert_eq!(sha256_file(&path).unwrap(), hex::encode(Sha256::digest(&data)));
    }

    #[test]
    fn a_reader_past_its_cap_is_refused() {
        let e = sha256_reader(std::io::repeat(0).take(10), 9).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(sha256_reader(std::io::repeat(0).take(10), 10).unwrap().size, 10);
    }

    #[test]
    fn sha256_of_missing_file_is_not_found() {
        let err = sha256_file(Path::new("/nonexistent/agentgen/x")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn list_skips_hidden_and_partial_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::new(dir.path());
        std::fs::write(cache.path_for("b.gguf"), b"12345").unwrap();
        std::fs::write(cache.path_for("a.gguf"), b"1").unwrap();
        std::fs::write(cache.path_for(&format!("{PARTIAL_PREFIX}x")), b"1").unwrap();
        std::fs::create_dir(cache.path_for("sub")).unwrap();
        let files = cache.list().unwrap();
        let names: Vec<_> = files.iter().map(|f| (f.name.as_str(), f.size)).collect();
        assert_eq!(names, vec![("a.gguf", 1), ("b.gguf", 5)]);
    }

    #[test]
    fn list_of_missing_directory_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModelCache::new(dir.path().join("does-not-exist"));
        assert!(cache.list().unwrap().is_empty());
    }

    #[test]
    fn resolve_prefers_agentgen_home_then_cache_dir() {
        let c = ModelCache::resolve(Some("/h".into()), Some("/c".into()));
        assert_eq!(c.root, PathBuf::from("/h/models"));
        let c = ModelCache::resolve(Some("".into()), Some("/c".into()));
        assert_eq!(c.root, PathBuf::from("/c/agentgen/models"));
        let c = ModelCache::resolve(None, Some("/c".into()));
        assert_eq!(c.root, PathBuf::from("/c/agentgen/models"));
        let c = ModelCache::resolve(None, None);
        assert_eq!(c.root, PathBuf::from(".agentgen/models"));
    }

    #[test]
    fn path_for_joins_root() {
        let cache = ModelCache::new("/some/root");
        assert_eq!(
            cache.path_for(DEFAULT_MODEL_FILE),
            PathBuf::from("/some/root").join(DEFAULT_MODEL_FILE)
        );
    }
}
