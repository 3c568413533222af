//! Host facts: what install-agent needs to know about the node.
//!
//! The facts come from `detect-host`'s library API; this module is the thin
//! seam between the two (the [`HostFactsSource`] trait), so plan selection
//! is tested on plain [`HostFacts`] values and the source can be swapped.
//! [`DetectHost`] is the real source: `detect_host::detect`, mapped onto
//! the few facts package selection needs.

use anyhow::Result;
use serde::Serialize;

use crate::profile::{Arch, PackageFormat};
use nodeguard_common::hostroot::HostRoot;

/// Init systems we distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// systemd is PID 1 of the host (`/run/systemd/system` exists).
    Systemd,
    /// Something else, or not determinable from files.
    Other,
}

/// The facts plan selection and execution use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// os-release `ID` (lower-cased), empty if unknown.
    pub os_id: String,
    /// os-release `VERSION_ID`, if any.
    pub version_id: Option<String>,
    /// os-release `PRETTY_NAME`, if any.
    pub pretty_name: Option<String>,
    /// Family: debian, rhel, suse, or another detector-specific word.
    pub family: String,
    /// Native package format, if the host has a package manager we drive.
    pub package_format: Option<PackageFormat>,
    /// Preferred package manager (apt, dnf, yum, zypper, …), if known.
    pub package_manager: Option<String>,
    /// Host CPU architecture, if it maps to a package architecture.
    pub arch: Option<Arch>,
    /// Kernel machine name (`uname -m`).
    pub machine: String,
    /// Immutable / image-based OS where packages cannot be installed.
    pub immutable: bool,
    /// Init system.
    pub init: Init,
}

/// Something that can tell install-agent about a host root.
pub trait HostFactsSource {
    /// Gather the facts of the host mounted at `root`.
    fn facts(&self, root: &HostRoot) -> Result<HostFacts>;
}

/// Facts from detect-host's library (the default [`HostFactsSource`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct DetectHost;

impl HostFactsSource for DetectHost {
    fn facts(&self, root: &HostRoot) -> Result<HostFacts> {
        Ok(from_detected(&detect_host::detect(root)?))
    }
}

/// Map detect-host's report onto what install-agent needs.
pub fn from_detected(d: &detect_host::HostFacts) -> HostFacts {
    use detect_host::{InitSystem, PackageFormat as DetectedFormat, PackageManager};
    let package_format = match d.package.format {
        DetectedFormat::Deb => Some(PackageFormat::Deb),
        DetectedFormat::Rpm => Some(PackageFormat::Rpm),
        DetectedFormat::Apk | DetectedFormat::None => None,
    };
    let package_manager = match d.package.manager {
        PackageManager::None => None,
        other => Some(other.as_str().to_owned()),
    };
    // Packages must match the userland (a 32-bit userland on a 64-bit
    // kernel exists); detect-host reads it from a host binary's ELF header.
    let platform = d.arch.userland.as_deref().unwrap_or(&d.arch.platform);
    HostFacts {
        os_id: d.os.id.clone(),
        version_id: d.os.version_id.clone(),
        pretty_name: d.os.pretty_name.clone(),
        family: d.os.family.as_str().to_owned(),
        package_format,
        package_manager,
        arch: Arch::from_machine(platform),
        machine: d.arch.machine.clone(),
        immutable: d.os.immutable,
        init: if d.init == InitSystem::Systemd {
            Init::Systemd
        } else {
            Init::Other
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Facts for a host root holding only `os_release`, as detect-host
    /// sees it (the kernel machine is this machine's).
    pub(crate) fn facts_for(os_release: &str) -> HostFacts {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        std::fs::write(dir.path().join("etc/os-release"), os_release).expect("write");
        let root = HostRoot::open(dir.path()).expect("root");
        DetectHost.facts(&root).expect("detect")
    }

    #[test]
    fn debian_is_deb_via_apt() {
        let f = facts_for("ID=debian\nVERSION_ID=\"12\"\n");
        assert_eq!(f.package_format, Some(PackageFormat::Deb));
        assert_eq!(f.package_manager.as_deref(), Some("apt"));
        assert!(!f.immutable);
    }

    #[test]
    fn fedora_coreos_is_immutable() {
        let f = facts_for("ID=fedora\nVERSION_ID=40\nVARIANT_ID=coreos\n");
        assert!(f.immutable);
    }
}
