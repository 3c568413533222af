//! CPU architecture and kernel release.
//!
//! Both come from `uname(2)` of the running kernel. A container shares the
//! node's kernel, so in a pod these describe the host, whatever the host root
//! points at. The platform spelling is the one of the node label
//! `kubernetes.io/arch` (Go's `GOARCH`), which manifests and image indexes use.

use serde::{Deserialize, Serialize};

/// `arch` in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchFacts {
    /// The kernel's machine name: `x86_64`, `aarch64`, `armv7l`, …
    pub machine: String,
    /// The Kubernetes/Go name: `amd64`, `arm64`, `arm`, …
    pub platform: String,
}

/// `kernel` in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelFacts {
    /// `uname -r`, e.g. `6.1.0-28-amd64`.
    pub release: String,
}

/// The `kubernetes.io/arch` / `GOARCH` name for a kernel machine name.
/// Names we do not know are passed through lower-cased.
pub fn platform_for(machine: &str) -> String {
    let machine = machine.trim().to_ascii_lowercase();
    let platform = match machine.as_str() {
        "x86_64" | "amd64" | "x64" => "amd64",
        "aarch64" | "arm64" | "aarch64_be" => "arm64",
        "armv6l" | "armv7l" | "armv7" | "armv8l" | "arm" | "armhf" => "arm",
        "i386" | "i486" | "i586" | "i686" | "x86" => "386",
        "ppc64le" => "ppc64le",
        "ppc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        "mips64" => "mips64",
        other => other,
    };
    platform.to_owned()
}

/// Reads `uname(2)`.
pub fn gather() -> (ArchFacts, KernelFacts) {
    let uts = nix::sys::utsname::uname();
    let (machine, release) = match &uts {
        Ok(uts) => (
            uts.machine().to_string_lossy().into_owned(),
            uts.release().to_string_lossy().into_owned(),
        ),
        // uname(2) cannot fail on Linux; keep the report well-formed anyway.
        Err(_) => ("unknown".to_owned(), "unknown".to_owned()),
    };
    let platform = platform_for(&machine);
    (ArchFacts { machine, platform }, KernelFacts { release })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_kernel_machine_names_to_kubernetes_arch() {
        let cases = [
            ("x86_64", "amd64"),
            ("aarch64", "arm64"),
            ("armv7l", "arm"),
            ("armv8l", "arm"),
            ("i686", "386"),
            ("ppc64le", "ppc64le"),
            ("s390x", "s390x"),
            ("riscv64", "riscv64"),
            ("loongarch64", "loong64"),
            ("X86_64", "amd64"),
            ("sparc64", "sparc64"),
        ];
        for (machine, platform) in cases {
            assert_eq!(platform_for(machine), platform, "{machine}");
        }
    }

    #[test]
    fn gather_reports_this_kernel() {
        let (arch, kernel) = gather();
        assert!(!arch.machine.is_empty());
        assert_eq!(arch.platform, platform_for(&arch.machine));
        assert!(!kernel.release.is_empty());
    }
}
