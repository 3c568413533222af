//! CPU architecture and kernel release.
//!
//! `machine` and the kernel release come from `uname(2)` of the running
//! kernel. A container shares the node's kernel, so in a pod these describe
//! the host, whatever the host root points at. The platform spelling is the
//! one of the node label `kubernetes.io/arch` (Go's `GOARCH`), which
//! manifests and image indexes use.
//!
//! The kernel's architecture is not always the userland's: Raspberry Pi OS
//! and other 32-bit userlands run on 64-bit kernels, and a binary under
//! qemu-user sees the emulated machine. Packages must match the userland, so
//! `userland` is read from the ELF header of a host binary (nothing is run).

use nodeguard_common::HostRoot;
use serde::{Deserialize, Serialize};

/// `arch` in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchFacts {
    /// The kernel's machine name: `x86_64`, `aarch64`, `armv7l`, …
    pub machine: String,
    /// The Kubernetes/Go name: `amd64`, `arm64`, `arm`, …
    pub platform: String,
    /// The host userland's architecture in the same spelling, from the ELF
    /// header of a host binary; `null` when none could be read.
    pub userland: Option<String>,
    /// Host path of the binary `userland` was read from.
    pub userland_source: Option<String>,
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

/// Host binaries whose ELF header tells the userland's architecture, tried
/// after the package manager's binary (which must match the packages).
pub const USERLAND_PROBES: &[&str] = &[
    "bin/sh",
    "usr/bin/env",
    "usr/lib/systemd/systemd",
    "bin/busybox",
];

/// ELF identification plus `e_machine`: the first 20 bytes.
const ELF_HEADER_PREFIX: u64 = 20;

/// The `kubernetes.io/arch` name of an ELF file's machine, from its first
/// bytes; `None` for anything that is not an ELF header we know.
pub fn elf_platform(header: &[u8]) -> Option<&'static str> {
    if header.len() < 20 || header[..4] != *b"\x7fELF" {
        return None;
    }
    let is_64 = match header[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little_endian = match header[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let machine_bytes = [header[18], header[19]];
    let machine = if little_endian {
        u16::from_le_bytes(machine_bytes)
    } else {
        u16::from_be_bytes(machine_bytes)
    };
    // e_machine values from the System V ABI / <elf.h>.
    let platform = match (machine, is_64, little_endian) {
        (3, false, _) => "386",
        (62, true, _) => "amd64",
        (40, false, _) => "arm",
        (183, true, _) => "arm64",
        (21, true, true) => "ppc64le",
        (21, true, false) => "ppc64",
        (22, true, _) => "s390x",
        (243, true, _) => "riscv64",
        (258, true, _) => "loong64",
        (8, true, true) => "mips64le",
        (8, true, false) => "mips64",
        _ => return None,
    };
    Some(platform)
}

/// The userland architecture: the first of `candidates` (host paths) that is
/// a regular file with a known ELF header. Returns (platform, host path).
pub fn userland(root: &HostRoot, candidates: &[&str]) -> Option<(String, String)> {
    candidates.iter().find_map(|rel| {
        let rel = rel.trim_start_matches('/');
        // Never open a FIFO or device planted where a binary should be.
        if !root.metadata(rel).is_ok_and(|m| m.is_file()) {
            return None;
        }
        let header = read_prefix(root, rel, ELF_HEADER_PREFIX)?;
        elf_platform(&header).map(|p| (p.to_owned(), format!("/{rel}")))
    })
}

fn read_prefix(root: &HostRoot, rel: &str, len: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut header = Vec::new();
    root.open_file(rel)
        .ok()?
        .take(len)
        .read_to_end(&mut header)
        .ok()?;
    Some(header)
}

/// Reads `uname(2)`, and the userland's ELF machine from the first readable
/// of `userland_candidates` (host paths).
pub fn gather(root: &HostRoot, userland_candidates: &[&str]) -> (ArchFacts, KernelFacts) {
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
    let (userland, userland_source) = userland(root, userland_candidates).unzip();
    (
        ArchFacts {
            machine,
            platform,
            userland,
            userland_source,
        },
        KernelFacts { release },
    )
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

    /// A minimal ELF identification + e_machine.
    fn elf(class: u8, data: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', class, data, 1, 0];
        h.resize(18, 0);
        let m = if data == 1 {
            machine.to_le_bytes()
        } else {
            machine.to_be_bytes()
        };
        h.extend_from_slice(&m);
        h
    }

    #[test]
    fn elf_headers_map_to_kubernetes_arch() {
        assert_eq!(elf_platform(&elf(2, 1, 62)), Some("amd64"));
        assert_eq!(elf_platform(&elf(2, 1, 183)), Some("arm64"));
        assert_eq!(elf_platform(&elf(1, 1, 40)), Some("arm"));
        assert_eq!(elf_platform(&elf(1, 1, 3)), Some("386"));
        assert_eq!(elf_platform(&elf(2, 1, 21)), Some("ppc64le"));
        assert_eq!(elf_platform(&elf(2, 2, 22)), Some("s390x"));
        assert_eq!(elf_platform(&elf(2, 1, 243)), Some("riscv64"));
    }

    #[test]
    fn non_elf_and_odd_headers_are_none() {
        assert_eq!(elf_platform(b"#!/bin/sh\nexit 0\n  "), None);
        assert_eq!(elf_platform(&elf(2, 1, 62)[..19]), None);
        assert_eq!(elf_platform(&elf(3, 1, 62)), None);
        assert_eq!(elf_platform(&elf(2, 1, 9999)), None);
        // x86-64's machine number in a 32-bit file is not amd64.
        assert_eq!(elf_platform(&elf(1, 1, 62)), None);
    }

    #[test]
    fn userland_of_this_machine_matches_its_kernel() {
        let root = HostRoot::open("/").unwrap();
        let (arch, _) = gather(&root, USERLAND_PROBES);
        // True on any machine that runs its native userland (CI does).
        assert_eq!(arch.userland.as_deref(), Some(arch.platform.as_str()));
        assert!(arch.userland_source.is_some());
    }

    #[test]
    fn userland_skips_scripts_and_fifos() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/sh"), "#!/bin/busybox sh\n").unwrap();
        std::fs::write(dir.path().join("bin/busybox"), elf(1, 1, 40)).unwrap();
        let root = HostRoot::open(dir.path()).unwrap();
        assert_eq!(
            userland(&root, USERLAND_PROBES),
            Some(("arm".to_owned(), "/bin/busybox".to_owned()))
        );
        assert_eq!(userland(&root, &["usr/bin/missing"]), None);
    }

    #[test]
    fn gather_reports_this_kernel() {
        let root = HostRoot::open("/").unwrap();
        let (arch, kernel) = gather(&root, &[]);
        assert!(!arch.machine.is_empty());
        assert_eq!(arch.platform, platform_for(&arch.machine));
        assert!(!kernel.release.is_empty());
    }
}
