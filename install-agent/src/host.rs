//! Host facts: what install-agent needs to know about the node.
//!
//! The facts come from `detect-host`'s library API; this module is the thin
//! seam between the two (the [`HostFactsSource`] trait), so plan selection
//! is tested on plain [`HostFacts`] values and the source can be swapped.
//! [`OsReleaseFacts`] is a small built-in source used until/unless the
//! detect-host library is linked: os-release only, which is what package
//! selection needs.

use std::io;

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

/// Distributions (os-release `ID`) that are image-based: no package can be
/// installed into their read-only `/usr`, whatever tools exist.
const IMMUTABLE_IDS: &[&str] = &[
    "bottlerocket",
    "talos",
    "cos",
    "flatcar",
    "coreos",
    "fedora-coreos",
    "rhcos",
    "opensuse-microos",
    "sl-micro",
    "suse-microos",
    "alp-dolomite",
    "clear-linux-os",
];

/// os-release based facts (the built-in [`HostFactsSource`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsReleaseFacts;

impl HostFactsSource for OsReleaseFacts {
    fn facts(&self, root: &HostRoot) -> Result<HostFacts> {
        let text = match root.read_limited("/etc/os-release", 64 * 1024) {
            Ok(bytes) if !bytes.iter().all(u8::is_ascii_whitespace) => bytes,
            Ok(_) | Err(_) => match root.read_limited("/usr/lib/os-release", 64 * 1024) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "cannot read {}",
                        root.display_path("/usr/lib/os-release").display()
                    )))
                }
            },
        };
        let machine = nix::sys::utsname::uname()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_default();
        let init = if root.exists("/run/systemd/system") {
            Init::Systemd
        } else {
            Init::Other
        };
        Ok(facts_from_os_release(
            &String::from_utf8_lossy(&text),
            &machine,
            init,
        ))
    }
}

/// Derive facts from os-release text (pure; the unit-tested part).
pub fn facts_from_os_release(text: &str, machine: &str, init: Init) -> HostFacts {
    let field = |key: &str| os_release_field(text, key);
    let os_id = field("ID").unwrap_or_default().to_ascii_lowercase();
    let id_like: Vec<String> = field("ID_LIKE")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let variant = field("VARIANT_ID").unwrap_or_default();
    let immutable = IMMUTABLE_IDS.contains(&os_id.as_str())
        // Fedora CoreOS/IoT/Silverblue say ID=fedora with an image variant.
        || (os_id == "fedora" && matches!(variant.as_str(), "coreos" | "iot" | "silverblue" | "kinoite"))
        || id_like.iter().any(|l| l == "coreos");
    let ids: Vec<&str> = std::iter::once(os_id.as_str())
        .chain(id_like.iter().map(String::as_str))
        .collect();
    let (family, format, manager) = classify(&ids, &os_id, field("VERSION_ID").as_deref());
    HostFacts {
        os_id,
        version_id: field("VERSION_ID"),
        pretty_name: field("PRETTY_NAME"),
        family: family.to_owned(),
        package_format: if immutable { None } else { format },
        package_manager: if immutable {
            None
        } else {
            manager.map(str::to_owned)
        },
        arch: Arch::from_machine(machine),
        machine: machine.to_owned(),
        immutable,
        init,
    }
}

fn classify(
    ids: &[&str],
    os_id: &str,
    version_id: Option<&str>,
) -> (&'static str, Option<PackageFormat>, Option<&'static str>) {
    let has = |names: &[&str]| ids.iter().any(|i| names.contains(i));
    if has(&["debian", "ubuntu"]) {
        return ("debian", Some(PackageFormat::Deb), Some("apt"));
    }
    if has(&[
        "suse",
        "opensuse",
        "sles",
        "opensuse-leap",
        "opensuse-tumbleweed",
        "sled",
    ]) {
        return ("suse", Some(PackageFormat::Rpm), Some("zypper"));
    }
    if has(&[
        "rhel",
        "fedora",
        "centos",
        "amzn",
        "rocky",
        "almalinux",
        "ol",
        "openeuler",
        "kylin",
        "tencentos",
        "miraclelinux",
        "eurolinux",
    ]) {
        let major = version_id
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse::<u32>().ok());
        let old_yum = match os_id {
            "amzn" => major.is_none_or(|m| m < 2022),
            "fedora" => major.is_some_and(|m| m < 22),
            // The RHEL-8-era derivatives with their own numbering
            // (TencentOS 3, openEuler, Kylin V10) ship dnf; the installer
            // falls back to whichever of dnf/yum/rpm exists anyway.
            "rhel" | "centos" | "ol" | "scientific" | "almalinux" | "rocky" | "eurolinux"
            | "miraclelinux" => major.is_some_and(|m| m < 8),
            _ => false,
        };
        return (
            "rhel",
            Some(PackageFormat::Rpm),
            Some(if old_yum { "yum" } else { "dnf" }),
        );
    }
    ("other", None, None)
}

/// One os-release field, unquoted (the subset of shell quoting the spec allows).
fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines().rev().find_map(|line| {
        let (k, v) = line.trim().split_once('=')?;
        if k.trim() != key || line.trim_start().starts_with('#') {
            return None;
        }
        let v = v.trim();
        let unquoted = if v.len() >= 2
            && (v.starts_with('"') && v.ends_with('"') || v.starts_with('\'') && v.ends_with('\''))
        {
            &v[1..v.len() - 1]
        } else {
            v
        };
        let value = unquoted
            .replace("\\\"", "\"")
            .replace("\\$", "$")
            .replace("\\\\", "\\");
        (!value.is_empty()).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_is_deb_via_apt() {
        let f = facts_from_os_release("ID=debian\nVERSION_ID=\"12\"\n", "x86_64", Init::Systemd);
        assert_eq!(f.package_format, Some(PackageFormat::Deb));
        assert_eq!(f.package_manager.as_deref(), Some("apt"));
        assert_eq!(f.arch, Some(Arch::Amd64));
        assert!(!f.immutable);
    }

    #[test]
    fn commented_keys_are_ignored() {
        let f = facts_from_os_release("ID=sles\n# ID=debian\n", "aarch64", Init::Other);
        assert_eq!(f.os_id, "sles");
        assert_eq!(f.family, "suse");
    }

    #[test]
    fn fedora_coreos_variant_is_immutable() {
        let f = facts_from_os_release("ID=fedora\nVARIANT_ID=coreos\n", "x86_64", Init::Systemd);
        assert!(f.immutable);
        assert_eq!(f.package_format, None);
    }
}
