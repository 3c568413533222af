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
    use crate::host::tests::facts_for;
    use crate::host::HostFacts;
    use crate::profile::Arch;

    /// detect-host's facts for an os-release, on a machine of our choosing.
    fn facts_from_os_release(text: &str, machine: &str) -> HostFacts {
        let mut f = facts_for(text);
        f.machine = machine.to_owned();
        f.arch = Arch::from_machine(machine);
        f
    }

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
        let f = facts_from_os_release("ID=rhel\nVERSION_ID=9.4\n", "x86_64");
        let s = select(&p, &f, &|prog| prog == "/usr/bin/rpm").expect("supported");
        assert_eq!(s.installer, Installer::Rpm);
        assert_eq!(s.entry.format, PackageFormat::Rpm);
    }

    #[test]
    fn missing_arch_entry_is_unsupported_with_reason() {
        let p = Profile::parse(PROFILE).expect("profile");
        let f = facts_from_os_release("ID=ubuntu\nVERSION_ID=22.04\n", "aarch64");
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
        let f = facts_from_os_release("ID=debian\n", "riscv64");
        assert_eq!(
            select(&p, &f, &all).expect_err("riscv").cause,
            "unsupported-arch"
        );
    }

    #[test]
    fn debian_host_that_also_has_rpm_still_gets_the_deb() {
        let p = Profile::parse(PROFILE).expect("profile");
        let f = facts_from_os_release("ID=debian\nVERSION_ID=12\n", "x86_64");
        let s = select(&p, &f, &all).expect("supported");
        assert_eq!(
            (s.entry.format, s.installer),
            (PackageFormat::Deb, Installer::AptGet)
        );
    }

    /// Expected selection per fixture host: the package format and
    /// installer, or the unsupported cause.
    const EXPECTED: &[(&str, &str)] = &[
        ("almalinux_8_3_beta", "rpm dnf"),
        ("alp-dolomite", "immutable-os"),
        ("amazon_linux_2", "rpm yum"),
        ("amazon_linux_2016.03", "rpm yum"),
        ("amazon_linux_2018.03", "rpm yum"),
        // Empty or missing os-release: detect-host's legacy release files.
        ("amazon_linux_2_karoo", "rpm yum"),
        ("amazon_linux_release_2", "rpm yum"),
        ("centos_6.7", "rpm yum"),
        ("centos_8_1", "rpm dnf"),
        ("centos_stream_8", "rpm dnf"),
        // swupd, no DEB/RPM manager.
        ("clearlinux_26580", "no-package-manager"),
        ("clearlinux_28120", "no-package-manager"),
        ("core_os_1911.5.0", "immutable-os"),
        ("core_os_976.0.0", "immutable-os"),
        ("debian_10", "deb apt-get"),
        ("debian_7.9", "deb apt-get"),
        ("debian_stretch_sid", "deb apt-get"),
        ("eurolinux_8.5", "rpm dnf"),
        ("fedora_22", "rpm dnf"),
        ("fedora_25", "rpm dnf"),
        ("fedora_31", "rpm dnf"),
        ("flatcar_2492.0.0", "immutable-os"),
        ("flatcar_3139.2.0", "immutable-os"),
        ("kylin_linux_advanced_server_v10", "rpm dnf"),
        ("miracle_linux_9", "rpm dnf"),
        ("openeuler_20.03", "rpm dnf"),
        ("opensuse-microos-20241205", "immutable-os"),
        ("opensuse_13.2", "rpm zypper"),
        ("opensuse_leap_15.0", "rpm zypper"),
        ("opensuse_leap_15.1", "rpm zypper"),
        ("opensuse_leap_42.1", "rpm zypper"),
        ("opensuse_tumbleweed_20160917", "rpm zypper"),
        ("redhat_6.7", "rpm yum"),
        ("redhat_7.2", "rpm yum"),
        ("redhat_7.7", "rpm yum"),
        ("rockylinux_8_3", "rpm dnf"),
        ("sl-micro", "immutable-os"),
        ("sles_11.3", "rpm zypper"),
        ("sles_11.4", "rpm zypper"),
        ("sles_12_sp0", "rpm zypper"),
        ("sles_12_sp1", "rpm zypper"),
        ("sles_15_6", "rpm zypper"),
        ("sles_16_0", "rpm zypper"),
        ("tencentos_3_1", "rpm dnf"),
        ("ubuntu_10.04_guess", "deb apt-get"),
        ("ubuntu_12.04", "deb apt-get"),
        ("ubuntu_14.04", "deb apt-get"),
        ("ubuntu_16.04", "deb apt-get"),
        ("ubuntu_18.04", "deb apt-get"),
        // tests/fixtures/install-agent/os-release
        ("amazon-linux-2023", "rpm dnf"),
        ("bottlerocket-1.20", "immutable-os"),
        ("cos-109", "immutable-os"),
        ("debian-12", "deb apt-get"),
        ("fedora-coreos-40", "immutable-os"),
        ("rhcos-4.16", "immutable-os"),
        ("rhel-9.4", "rpm dnf"),
        ("talos-1.7", "immutable-os"),
    ];

    fn outcome(p: &Profile, f: &HostFacts) -> String {
        match select(p, f, &all) {
            Ok(s) => format!(
                "{} {}",
                s.entry.format,
                s.installer.program().rsplit('/').next().unwrap_or_default()
            ),
            Err(u) => u.cause.to_owned(),
        }
    }

    /// detect-host's facts for a fixture host: every file of the Ansible
    /// sample (os-release and the legacy release files) written into a root.
    fn facts_of_ansible_fixture(path: &std::path::Path) -> HostFacts {
        let text = std::fs::read_to_string(path).expect("read fixture");
        let json: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
        let dir = tempfile::tempdir().expect("tempdir");
        for (file, content) in json["input"].as_object().expect("input") {
            let target = dir.path().join(file.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
            std::fs::write(target, content.as_str().unwrap_or_default()).expect("write");
        }
        let root = nodeguard_common::hostroot::HostRoot::open(dir.path()).expect("root");
        let mut f =
            crate::host::HostFactsSource::facts(&crate::host::DetectHost, &root).expect("detect");
        f.arch = Some(Arch::Amd64);
        f
    }

    #[test]
    fn plan_selection_over_every_os_release_fixture() {
        let p = Profile::parse(PROFILE).expect("profile");
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let shared = std::env::var_os("NODEGUARD_SHARED_FIXTURES")
            .map_or_else(
                || manifest.join("../../shared/fixtures"),
                std::path::PathBuf::from,
            )
            .join("os-release/ansible");
        let ours = manifest.join("../tests/fixtures/install-agent/os-release");
        let mut seen = Vec::new();
        let mut mismatches = Vec::new();
        for (dir, ext) in [(&shared, "json"), (&ours, "os-release")] {
            let entries = std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("fixtures {}: {e}", dir.display()));
            for entry in entries {
                let path = entry.expect("entry").path();
                if path.extension().and_then(|e| e.to_str()) != Some(ext) {
                    continue;
                }
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .expect("stem")
                    .to_owned();
                let facts = if ext == "json" {
                    facts_of_ansible_fixture(&path)
                } else {
                    let mut f = facts_for(&std::fs::read_to_string(&path).expect("read"));
                    f.arch = Some(Arch::Amd64);
                    f
                };
                let got = outcome(&p, &facts);
                match EXPECTED.iter().find(|(name, _)| *name == stem) {
                    Some((_, want)) if *want == got => {}
                    Some((_, want)) => mismatches.push(format!("{stem}: want {want}, got {got}")),
                    None => mismatches.push(format!("{stem}: no expectation (got {got})")),
                }
                seen.push(stem);
            }
        }
        for (name, _) in EXPECTED {
            if !seen.iter().any(|s| s == name) {
                mismatches.push(format!("{name}: fixture missing"));
            }
        }
        assert!(
            mismatches.is_empty(),
            "plan selection mismatches:\n{}",
            mismatches.join("\n")
        );
    }
}
