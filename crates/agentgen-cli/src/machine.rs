//! What this machine offers a CPU model: instruction-set features, cores and memory, read from
//! `/proc` on Linux (unknown elsewhere).

use serde::Serialize;

/// CPU features that matter to llama.cpp's kernels, in the order `doctor` lists them.
pub const INTERESTING_FLAGS: &[&str] = &[
    "sse3",
    "ssse3",
    "sse4_1",
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    // Arm (`Features` line).
    "neon",
    "asimd",
    "asimddp",
    "sve",
    "sve2",
    "i8mm",
    "bf16",
];

/// The CPU.
#[derive(Debug, Clone, Serialize)]
pub struct CpuInfo {
    /// Model name, when the OS says.
    pub model: Option<String>,
    /// Physical cores.
    pub physical_cores: usize,
    /// Logical CPUs this process may use.
    pub logical_cpus: usize,
    /// Which of [`INTERESTING_FLAGS`] the CPU has.
    pub features: Vec<String>,
    /// Which of [`INTERESTING_FLAGS`] it lacks.
    pub missing_features: Vec<String>,
}

/// Memory, in bytes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RamInfo {
    /// Installed.
    pub total_bytes: u64,
    /// Available for new work without swapping.
    pub available_bytes: u64,
}

/// Reads the CPU description.
pub fn cpu_info() -> CpuInfo {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let (model, flags) = parse_cpuinfo(&text);
    let arch_has_flags = !flags.is_empty();
    let relevant: Vec<&str> = INTERESTING_FLAGS
        .iter()
        .copied()
        .filter(|f| {
            // Only list features of this architecture as missing.
            let arm = matches!(*f, "neon" | "asimd" | "asimddp" | "sve" | "sve2" | "i8mm" | "bf16");
            arm == cfg!(target_arch = "aarch64")
        })
        .collect();
    CpuInfo {
        model,
        physical_cores: num_cpus::get_physical(),
        logical_cpus: num_cpus::get(),
        features: relevant
            .iter()
            .filter(|f| flags.contains(&f.to_string()))
            .map(|f| f.to_string())
            .collect(),
        missing_features: if arch_has_flags {
            relevant
                .iter()
                .filter(|f| !flags.contains(&f.to_string()))
                .map(|f| f.to_string())
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// The model name and the flag set from `/proc/cpuinfo` text (first processor only).
pub fn parse_cpuinfo(text: &str) -> (Option<String>, Vec<String>) {
    let mut model = None;
    let mut flags = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let key = key.trim();
        if model.is_none() && (key == "model name" || key == "Model" || key == "cpu model") {
            model = Some(value.trim().to_owned());
        }
        if flags.is_empty() && (key == "flags" || key == "Features") {
            flags = value.split_whitespace().map(str::to_owned).collect();
        }
    }
    (model, flags)
}

/// Reads memory totals; `None` when the OS does not say.
pub fn ram_info() -> Option<RamInfo> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// `MemTotal` and `MemAvailable` from `/proc/meminfo` text.
pub fn parse_meminfo(text: &str) -> Option<RamInfo> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib * 1024)
        })
    };
    let total_bytes = field("MemTotal")?;
    let available_bytes = field("MemAvailable").or_else(|| field("MemFree"))?;
    Some(RamInfo { total_bytes, available_bytes })
}

/// Bytes as GiB with one decimal.
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_flags_and_model_are_read() {
        let text = "processor\t: 0\nmodel name\t: Test CPU @ 3GHz\nflags\t\t: fpu sse3 avx2 fma avx512f\n\n\
                    processor\t: 1\nflags\t\t: fpu\n";
        let (model, flags) = parse_cpuinfo(text);
        assert_eq!(model.as_deref(), Some("Test CPU @ 3GHz"));
        assert!(flags.contains(&"avx512f".to_owned()));
        assert!(!flags.contains(&"avx".to_owned()));
    }

    #[test]
    fn meminfo_is_read_in_bytes() {
        let ram =
            parse_meminfo("MemTotal:       2048 kB\nMemFree:  10 kB\nMemAvailable:   1024 kB\n")
                .unwrap();
        assert_eq!(ram.total_bytes, 2048 * 1024);
        assert_eq!(ram.available_bytes, 1024 * 1024);
        assert!(parse_meminfo("nothing").is_none());
    }
}
