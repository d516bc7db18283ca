//! Locality attestation: what `GET /v1/locality` reports, and hashing the served GGUF.

use std::io::Read;
use std::path::{Path, PathBuf};

use agentgen_core::Locality;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The model file a server attests to serving; it is hashed once, when the server starts.
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
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok(FileDigest { size, sha256: hex::encode(hasher.finalize()) })
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
    /// Its size in bytes, measured when the server started.
    pub model_size: Option<u64>,
    /// Its SHA-256, computed when the server started.
    pub model_sha256: Option<String>,
    /// Why the model file could not be hashed, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_hash_error: Option<String>,
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
