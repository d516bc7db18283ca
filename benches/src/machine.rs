//! What machine the figures were measured on.

use serde::{Deserialize, Serialize};

/// CPU, cores, memory and OS of this machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU's brand string.
    pub cpu: String,
    /// Physical cores, when the OS tells.
    pub physical_cores: Option<usize>,
    /// Logical CPUs (hardware threads).
    pub logical_cpus: usize,
    /// Total RAM in bytes.
    pub ram_bytes: u64,
    /// OS name and version.
    pub os: String,
    /// CPU architecture (`x86_64`, `aarch64`…).
    pub arch: String,
}

impl Machine {
    /// Reads this machine's description.
    pub fn detect() -> Self {
        let mut sys = sysinfo::System::new();
        sys.refresh_memory();
        sys.refresh_cpu_all();
        let cpu = sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_owned())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "unknown CPU".into());
        Self {
            cpu,
            physical_cores: sys.physical_core_count(),
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ram_bytes: sys.total_memory(),
            os: sysinfo::System::long_os_version().unwrap_or_else(|| std::env::consts::OS.into()),
            arch: std::env::consts::ARCH.into(),
        }
    }

    /// One line: `CPU, 2 cores / 4 threads, 23.4 GiB RAM, OS`.
    pub fn summary(&self) -> String {
        let cores = match self.physical_cores {
            Some(p) => format!("{p} cores / {} threads", self.logical_cpus),
            None => format!("{} threads", self.logical_cpus),
        };
        format!(
            "{}, {cores}, {:.1} GiB RAM, {} ({})",
            self.cpu,
            self.ram_bytes as f64 / (1u64 << 30) as f64,
            self.os,
            self.arch
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_has_cpus_and_memory() {
        let m = Machine::detect();
        assert!(m.logical_cpus >= 1);
        assert!(m.ram_bytes > 0);
        assert!(m.summary().contains("GiB RAM"), "{}", m.summary());
    }
}
