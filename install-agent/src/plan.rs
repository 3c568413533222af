//! Package selection: which entry of a profile fits a host, and with which
//! of the host's own tools it is installed — or why the host is unsupported.
//!
//! Pure functions over [`HostFacts`]; the choice is made from os-release
//! facts (via detect-host), never by probing whether `dpkg` or `rpm` happens
//! to exist (a RHEL host can carry `dpkg`, a Debian host `rpm`).

use serde::Serialize;

use crate::host::HostFacts;
use crate::profile::{PackageEntry, PackageFormat, Profile};

/// The host tool that installs and removes packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Installer {
    /// `apt-get install ./pkg.deb`: resolves dependencies.
    AptGet,
    /// `dpkg -i`: when apt-get is absent.
    Dpkg,
    /// `dnf install ./pkg.rpm`.
    Dnf,
    /// `yum install ./pkg.rpm`.
    Yum,
    /// `zypper install ./pkg.rpm`.
    Zypper,
    /// `rpm -U`: when no resolver is present.
    Rpm,
}

impl Installer {
    /// Host path of the program.
    pub fn program(self) -> &'static str {
        match self {
            Self::AptGet => "/usr/bin/apt-get",
            Self::Dpkg => "/usr/bin/dpkg",
            Self::Dnf => "/usr/bin/dnf",
            Self::Yum => "/usr/bin/yum",
            Self::Zypper => "/usr/bin/zypper",
            Self::Rpm => "/usr/bin/rpm",
        }
    }

    /// The package format it handles.
    pub fn format(self) -> PackageFormat {
        match self {
            Self::AptGet | Self::Dpkg => PackageFormat::Deb,
            Self::Dnf | Self::Yum | Self::Zypper | Self::Rpm => PackageFormat::Rpm,
        }
    }
}

/// Why a host cannot get the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unsupported {
    /// Short machine-readable cause.
    pub cause: &'static str,
    /// A sentence for people.
    pub reason: String,
}

/// A supported host's choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection<'a> {
    /// The profile's package entry for this host.
    pub entry: &'a PackageEntry,
    /// The host tool that installs it.
    pub installer: Installer,
}

/// Pick the package entry and installer for a host.
///
/// `has_program` answers whether a host path exists and is executable (it
/// is consulted only to fall back from a resolver to the base tool, e.g.
/// `dnf` → `rpm` on a host without dnf).
pub fn select<'a>(
    profile: &'a Profile,
    facts: &HostFacts,
    has_program: &dyn Fn(&str) -> bool,
) -> Result<Selection<'a>, Unsupported> {
    if facts.immutable {
        return Err(Unsupported {
            cause: "immutable-os",
            reason: format!(
                "{} is an image-based (immutable) OS: packages cannot be installed into its read-only /usr; \
                 use the vendor's containerized agent or image extension on such nodes",
                display_os(facts)
            ),
        });
    }
    let Some(format) = facts.package_format else {
        return Err(Unsupported {
            cause: "no-package-manager",
            reason: format!(
                "{} has no DEB or RPM package manager that install-agent drives",
                display_os(facts)
            ),
        });
    };
    let Some(arch) = facts.arch else {
        return Err(Unsupported {
            cause: "unsupported-arch",
            reason: format!(
                "machine {:?} maps to no package architecture (only amd64 and arm64)",
                facts.machine
            ),
        });
    };
    let Some(entry) = profile
        .packages
        .iter()
        .find(|p| p.format == format && p.arch == arch)
    else {
        return Err(Unsupported {
            cause: "no-package-for-host",
            reason: format!(
                "profile {} has no {format} package for {arch} ({})",
                profile.name,
                display_os(facts)
            ),
        });
    };
    let preferred = match (format, facts.package_manager.as_deref()) {
        (PackageFormat::Deb, _) => [Installer::AptGet, Installer::Dpkg].as_slice(),
        (PackageFormat::Rpm, Some("zypper")) => &[Installer::Zypper, Installer::Rpm],
        (PackageFormat::Rpm, Some("yum")) => &[Installer::Yum, Installer::Dnf, Installer::Rpm],
        (PackageFormat::Rpm, _) => &[Installer::Dnf, Installer::Yum, Installer::Rpm],
    };
    let installer = preferred
        .iter()
        .copied()
        .find(|i| has_program(i.program()))
        .ok_or_else(|| Unsupported {
            cause: "no-package-manager",
            reason: format!(
                "{} should have {} but none of {} exists on the host",
                display_os(facts),
                format,
                preferred
                    .iter()
                    .map(|i| i.program())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    Ok(Selection { entry, installer })
}

fn display_os(facts: &HostFacts) -> String {
    match (&facts.os_id, &facts.version_id) {
        (id, _) if id.is_empty() => "this host (no os-release ID)".to_owned(),
        (id, Some(v)) => format!("{id} {v}"),
        (id, None) => id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{facts_from_os_release, Init};

    const PROFILE: &str = r#"
name = "tinyagent"
service = "tinyagent"
[[package]]
format = "deb"
arch = "amd64"
version = "1.0.0"
path = "/p/a.deb"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[[package]]
format = "rpm"
arch = "amd64"
version = "1.0.0-1"
path = "/p/a.rpm"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
"#;

    fn all(_: &str) -> bool {
        true
    }

    #[test]
    fn rpm_host_without_dnf_falls_back_to_rpm() {
        let p = Profile::parse(PROFILE).expect("profile");
        let f = facts_from_os_release("ID=rhel\nVERSION_ID=9.4\n", "x86_64", Init::Systemd);
        let s = select(&p, &f, &|prog| prog == "/usr/bin/rpm").expect("supported");
        assert_eq!(s.installer, Installer::Rpm);
        assert_eq!(s.entry.format, PackageFormat::Rpm);
    }

    #[test]
    fn missing_arch_entry_is_unsupported_with_reason() {
        let p = Profile::parse(PROFILE).expect("profile");
        let f = facts_from_os_release("ID=ubuntu\nVERSION_ID=22.04\n", "aarch64", Init::Systemd);
        let err = select(&p, &f, &all).expect_err("no arm64");
        assert_eq!(err.cause, "no-package-for-host");
        assert!(
            err.reason.contains("deb package for arm64"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn unknown_machine_is_unsupported_not_generic() {
        let p = Profile::parse(PROFILE).expect("profile");
        let f = facts_from_os_release("ID=debian\n", "riscv64", Init::Systemd);
        assert_eq!(
            select(&p, &f, &all).expect_err("riscv").cause,
            "unsupported-arch"
        );
    }

    #[test]
    fn debian_host_that_also_has_rpm_still_gets_the_deb() {
        let p = Profile::parse(PROFILE).expect("profile");
        let f = facts_from_os_release("ID=debian\nVERSION_ID=12\n", "x86_64", Init::Systemd);
        let s = select(&p, &f, &all).expect("supported");
        assert_eq!(
            (s.entry.format, s.installer),
            (PackageFormat::Deb, Installer::AptGet)
        );
    }
}
