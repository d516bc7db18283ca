//! A small pure-Rust reader for the metadata header of a GGUF file.
//!
//! It checks the magic and version and reads every key/value pair without loading llama.cpp
//! or any tensor data, so callers can tell a GGUF from another file and read
//! `tokenizer.chat_template`, the architecture or the trained context length cheaply.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::FormatError;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";

/// One metadata value of a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// Unsigned integer (u8, u16, u32 or u64 on disk).
    U64(u64),
    /// Signed integer (i8, i16, i32 or i64 on disk).
    I64(i64),
    /// Floating point (f32 or f64 on disk).
    F64(f64),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string (invalid UTF-8 is replaced, never dropped).
    String(String),
    /// Array of values.
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an unsigned integer, when it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Self::U64(v) => Some(*v),
            Self::I64(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// The array, when this is one.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            Self::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// The metadata of a GGUF file: format version, tensor count and the key/value pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufMeta {
    /// GGUF format version (2 or 3).
    pub version: u32,
    /// Number of tensors the file declares.
    pub tensor_count: u64,
    /// Every metadata key with its value.
    pub kv: BTreeMap<String, GgufValue>,
}

impl GgufMeta {
    /// The value of a key.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.kv.get(key)
    }

    /// The string value of a key.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(GgufValue::as_str)
    }

    /// The integer value of a key.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(GgufValue::as_u64)
    }

    /// `general.architecture`, e.g. `qwen2`.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// The model's own Jinja chat template (`tokenizer.chat_template`).
    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template")
    }

    /// The trained context length (`<arch>.context_length`).
    pub fn context_length(&self) -> Option<u64> {
        let arch = self.architecture()?;
        self.get_u64(&format!("{arch}.context_length"))
    }

    /// Bytes of an f16 KV cache per token of context: layers × (K + V) heads × head size × 2.
    /// `None` when the architecture's attention sizes are missing.
    pub fn kv_bytes_per_token(&self) -> Option<u64> {
        let arch = self.architecture()?;
        let key = |k: &str| self.get_u64(&format!("{arch}.{k}"));
        let layers = key("block_count")?;
        let heads = key("attention.head_count")?;
        let kv_heads = key("attention.head_count_kv").unwrap_or(heads);
        let head_size = key("embedding_length")?.checked_div(heads)?;
        let k = key("attention.key_length").unwrap_or(head_size);
        let v = key("attention.value_length").unwrap_or(head_size);
        Some(layers * kv_heads * (k + v) * 2)
    }

    /// The text of a token id from `tokenizer.ggml.tokens`.
    pub fn token_text(&self, id: u64) -> Option<&str> {
        let tokens = self.get("tokenizer.ggml.tokens")?.as_array()?;
        tokens.get(usize::try_from(id).ok()?)?.as_str()
    }

    /// The texts of the control and user-defined tokens (`tokenizer.ggml.token_type` 3 and 4):
    /// what tokenizing with special parsing turns into those tokens.
    pub fn special_token_texts(&self) -> Vec<String> {
        let (Some(types), Some(tokens)) = (
            self.get("tokenizer.ggml.token_type").and_then(GgufValue::as_array),
            self.get("tokenizer.ggml.tokens").and_then(GgufValue::as_array),
        ) else {
            return Vec::new();
        };
        types
            .iter()
            .zip(tokens)
            .filter(|(t, _)| matches!(t.as_u64(), Some(3 | 4)))
            .filter_map(|(_, text)| text.as_str().map(str::to_owned))
            .collect()
    }

    /// The BOS token text, when the model declares one.
    pub fn bos_token(&self) -> Option<&str> {
        self.token_text(self.get_u64("tokenizer.ggml.bos_token_id")?)
    }

    /// The EOS token text, when the model declares one.
    pub fn eos_token(&self) -> Option<&str> {
        self.token_text(self.get_u64("tokenizer.ggml.eos_token_id")?)
    }
}

/// Whether the file at `path` starts with the GGUF magic (false for short or unreadable files).
pub fn is_gguf(path: impl AsRef<Path>) -> bool {
    let mut magic = [0u8; 4];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == GGUF_MAGIC
}

/// Reads the metadata of the GGUF file at `path` (no tensor data is read).
///
/// Errors: [`FormatError::Io`] when the file cannot be read, [`FormatError::NotGguf`] when it
/// does not start with the GGUF magic, [`FormatError::Gguf`] when the header is malformed.
pub fn read_gguf_metadata(path: impl AsRef<Path>) -> Result<GgufMeta, FormatError> {
    let path = path.as_ref();
    let file =
        File::open(path).map_err(|e| FormatError::Io { path: path.to_owned(), source: e })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    let mut r = Reader { inner: BufReader::new(file), path: path.to_owned(), left: len };
    let mut magic = [0u8; 4];
    r.read_bytes(&mut magic).map_err(|_| FormatError::NotGguf { path: path.to_owned() })?;
    if magic != GGUF_MAGIC {
        return Err(FormatError::NotGguf { path: path.to_owned() });
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(r.bad(format!("unsupported GGUF version {version} (2 and 3 are read)")));
    }
    let tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    let mut kv = BTreeMap::new();
    for _ in 0..kv_count {
        let key = r.string()?;
        let ty = r.u32()?;
        let value = r.value(ty, 0)?;
        kv.insert(key, value);
    }
    Ok(GgufMeta { version, tensor_count, kv })
}

struct Reader<R> {
    inner: R,
    path: PathBuf,
    /// Bytes left in the file: a declared length beyond it is an error, not a huge allocation.
    left: u64,
}

impl<R: Read> Reader<R> {
    fn bad(&self, reason: impl Into<String>) -> FormatError {
        FormatError::Gguf { path: self.path.clone(), reason: reason.into() }
    }

    fn read_bytes(&mut self, buf: &mut [u8]) -> Result<(), FormatError> {
        self.inner.read_exact(buf).map_err(|e| self.bad(format!("truncated header: {e}")))?;
        self.left = self.left.saturating_sub(buf.len() as u64);
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut b = [0u8; N];
        self.read_bytes(&mut b)?;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, FormatError> {
        let len = self.u64()?;
        if len > self.left {
            return Err(self.bad(format!("string of {len} bytes runs past the end of the file")));
        }
        let mut buf = vec![0u8; len as usize];
        self.read_bytes(&mut buf)?;
        Ok(String::from_utf8(buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    fn value(&mut self, ty: u32, depth: u32) -> Result<GgufValue, FormatError> {
        Ok(match ty {
            0 => GgufValue::U64(u8::from_le_bytes(self.array()?).into()),
            1 => GgufValue::I64(i8::from_le_bytes(self.array()?).into()),
            2 => GgufValue::U64(u16::from_le_bytes(self.array()?).into()),
            3 => GgufValue::I64(i16::from_le_bytes(self.array()?).into()),
            4 => GgufValue::U64(self.u32()?.into()),
            5 => GgufValue::I64(i32::from_le_bytes(self.array()?).into()),
            6 => GgufValue::F64(f32::from_le_bytes(self.array()?).into()),
            7 => GgufValue::Bool(self.array::<1>()?[0] != 0),
            8 => GgufValue::String(self.string()?),
            9 => {
                if depth > 4 {
                    return Err(self.bad("arrays nested too deep"));
                }
                let elem = self.u32()?;
                let count = self.u64()?;
                // Every element takes at least one byte on disk.
                if count > self.left {
                    return Err(self.bad(format!("array of {count} items runs past the end")));
                }
                let mut items = Vec::with_capacity(count.min(1 << 20) as usize);
                for _ in 0..count {
                    items.push(self.value(elem, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64()?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array()?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array()?)),
            other => return Err(self.bad(format!("unknown metadata value type {other}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gguf_string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    /// A minimal valid GGUF v3 header with a few keys and no tensors.
    fn tiny_gguf() -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        gguf_string(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes());
        gguf_string(&mut b, "qwen2");
        gguf_string(&mut b, "qwen2.context_length");
        b.extend(4u32.to_le_bytes());
        b.extend(32768u32.to_le_bytes());
        gguf_string(&mut b, "tokenizer.ggml.tokens");
        b.extend(9u32.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        gguf_string(&mut b, "<s>");
        gguf_string(&mut b, "</s>");
        gguf_string(&mut b, "tokenizer.ggml.eos_token_id");
        b.extend(4u32.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        b
    }

    fn write_tmp(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn reads_a_small_header() {
        let f = write_tmp(&tiny_gguf());
        assert!(is_gguf(f.path()));
        let meta = read_gguf_metadata(f.path()).unwrap();
        assert_eq!(meta.version, 3);
        assert_eq!(meta.architecture(), Some("qwen2"));
        assert_eq!(meta.context_length(), Some(32768));
        assert_eq!(meta.eos_token(), Some("</s>"));
        assert_eq!(meta.bos_token(), None);
    }

    #[test]
    fn not_gguf_is_a_typed_error() {
        let f = write_tmp(b"PK\x03\x04 definitely a zip");
        assert!(!is_gguf(f.path()));
        let err = read_gguf_metadata(f.path()).unwrap_err();
        assert!(matches!(err, FormatError::NotGguf { .. }), "{err}");
        let empty = write_tmp(b"");
        assert!(matches!(read_gguf_metadata(empty.path()), Err(FormatError::NotGguf { .. })));
    }

    #[test]
    fn truncated_or_lying_headers_are_errors_not_panics() {
        let full = tiny_gguf();
        for cut in [6, 20, 40, full.len() - 3] {
            let f = write_tmp(&full[..cut]);
            let err = read_gguf_metadata(f.path()).unwrap_err();
            assert!(matches!(err, FormatError::Gguf { .. }), "cut {cut}: {err}");
        }
        // A string that claims to be larger than the file.
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(u64::MAX.to_le_bytes());
        let err = read_gguf_metadata(write_tmp(&b).path()).unwrap_err();
        assert!(err.to_string().contains("past the end"), "{err}");
    }

    #[test]
    fn kv_bytes_per_token_from_attention_sizes() {
        let mut kv = BTreeMap::new();
        kv.insert("general.architecture".into(), GgufValue::String("qwen2".into()));
        let meta = |kv: &BTreeMap<String, GgufValue>| GgufMeta {
            version: 3,
            tensor_count: 0,
            kv: kv.clone(),
        };
        assert_eq!(meta(&kv).kv_bytes_per_token(), None, "no sizes, no figure");
        // Qwen2.5-0.5B: 24 layers, 14 heads of 64 (896 wide), 2 KV heads.
        for (k, v) in [
            ("qwen2.block_count", 24),
            ("qwen2.attention.head_count", 14),
            ("qwen2.attention.head_count_kv", 2),
            ("qwen2.embedding_length", 896),
        ] {
            kv.insert(k.into(), GgufValue::U64(v));
        }
        assert_eq!(meta(&kv).kv_bytes_per_token(), Some(24 * 2 * (64 + 64) * 2));
        kv.insert("qwen2.attention.key_length".into(), GgufValue::U64(128));
        assert_eq!(meta(&kv).kv_bytes_per_token(), Some(24 * 2 * (128 + 64) * 2));
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = read_gguf_metadata("/nonexistent/dir/model.gguf").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/dir/model.gguf"), "{err}");
    }
}
