//! Locality attestation: what `GET /v1/locality` reports, and hashing the served GGUF.

use std::io::Read;
use std::path::{Path, PathBuf};

use agentgen_core::Locality;
use serde::{Deserialize, Serialize};

/// The model file a server attests to serving; it is hashed once the backend is installed
/// (after the model is loaded), through a descriptor on the file the engine mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelAttestationSource {
    /// Path of the GGUF the backend loaded.
    pub model_path: PathBuf,
}

impl ModelAttestationSource {
    /// Attest to this model file.
    pub fn file(model_path: impl Into<PathBuf>) -> Self {
        Self { model_path: model_path.into() }
    }
}

/// Size and SHA-256 of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// Reads a whole file and returns its size and SHA-256. Blocking: call it off the async runtime.
pub fn hash_file(path: &Path) -> std::io::Result<FileDigest> {
    hash_reader(std::fs::File::open(path)?, u64::MAX)
}

/// Streams at most `limit` bytes of `reader` through SHA-256 in 1 MiB blocks; more is an error
/// (`FileTooLarge`), so a file that grows while it is read cannot keep the reader busy forever.
pub fn hash_reader(reader: impl Read, limit: u64) -> std::io::Result<FileDigest> {
    let d = agentgen_models::sha256_reader(reader, limit)?;
    Ok(FileDigest { size: d.size, sha256: d.sha256 })
}

/// The attested model file, hashed once the backend has loaded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelDigest {
    /// Size and hash of the file opened.
    pub digest: FileDigest,
    /// Whether this process maps that very file (same device and inode).
    pub mapped: bool,
}

/// Opens `path`, checks it is a regular file, and hashes it through that open descriptor; on
/// Linux also says whether this process maps the same file (device and inode), i.e. whether
/// what is hashed is what the engine mmapped, not a file swapped in at the same path since.
pub(crate) fn hash_model(path: &Path) -> Result<ModelDigest, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let meta = file.metadata().map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mapped = crate::procfs::mapped_files(None)
        .map(|maps| maps.iter().any(|m| crate::procfs::is_mapping_of(&meta, m)))
        .unwrap_or(false);
    let digest = hash_reader(file, meta.len())
        .map_err(|e| format!("cannot hash {}: {e}", path.display()))?;
    Ok(ModelDigest { digest, mapped })
}

/// The body of `GET /v1/locality`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attestation {
    /// Where the backend's model runs.
    pub locality: Locality,
    /// The backend's name (`local`, `groq`…).
    pub backend: String,
    /// The model id served.
    pub model: String,
    /// Absolute path of the GGUF being served, when the backend runs a file.
    pub model_path: Option<String>,
    /// Its size in bytes, measured once the model was loaded.
    pub model_size: Option<u64>,
    /// Its SHA-256, computed once the model was loaded.
    pub model_sha256: Option<String>,
    /// Why the model file could not be hashed, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_hash_error: Option<String>,
    /// Whether the server process maps the hashed file (same device and inode): the hash is
    /// of the file the engine loaded. Computed once the model is loaded.
    #[serde(default)]
    pub model_mapped: bool,
    /// How the process is kept off the network, when it is sealed.
    #[serde(default)]
    pub seal: Option<crate::seal::SealInfo>,
    /// The server's process id.
    pub pid: u32,
    /// The server's host name.
    pub hostname: String,
    /// The socket addresses the server listens on.
    pub bind_addresses: Vec<String>,
    /// Whether any backend that runs a model elsewhere is configured.
    pub remote_backend_configured: bool,
}

/// This machine's host name.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
