//! The host's package format and manager: expected from the OS identity,
//! confirmed by looking for the manager's binary under the host root. The
//! binary is never run.

use nodeguard_common::HostRoot;
use serde::{Deserialize, Serialize};

use crate::classify::{self, Identity, PackageFormat, PackageManager};

/// `package` in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageFacts {
    /// `deb`, `rpm`, `apk` or `none`.
    pub format: PackageFormat,
    /// `apt`, `dnf`, `yum`, `zypper`, `tdnf`, `apk`, `rpm-ostree`,
    /// `transactional-update` or `none`.
    pub manager: PackageManager,
    /// Whether the manager's binary exists under the host root.
    pub manager_present: bool,
    /// Host path of that binary, when present.
    pub manager_path: Option<String>,
}

/// Decides the package facts. `find_binary` returns the host path of the
/// first existing binary of a manager; it is the only access to the host,
/// so the decision is testable without one.
pub fn decide(
    identity: &Identity<'_>,
    immutable: bool,
    find_binary: impl Fn(PackageManager) -> Option<String>,
) -> (PackageFacts, Option<String>) {
    let expected = classify::expected_managers(identity, immutable);
    if expected == [PackageManager::None] {
        return (none(), None);
    }
    // Unknown OS: the host's binaries are host evidence, so look for any.
    let (candidates, probing) = if expected.is_empty() {
        (classify::PROBE_ORDER.to_vec(), true)
    } else {
        (expected, false)
    };
    for &manager in &candidates {
        if let Some(path) = find_binary(manager) {
            let facts = PackageFacts {
                format: manager.format(),
                manager,
                manager_present: true,
                manager_path: Some(path),
            };
            return (facts, None);
        }
    }
    if probing {
        return (none(), None);
    }
    let manager = candidates[0];
    let warning = format!(
        "expected package manager {} but none of {} exists under the host root",
        manager.as_str(),
        manager
            .binaries()
            .iter()
            .map(|b| format!("/{b}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let facts = PackageFacts {
        format: manager.format(),
        manager,
        manager_present: false,
        manager_path: None,
    };
    (facts, Some(warning))
}

fn none() -> PackageFacts {
    PackageFacts {
        format: PackageFormat::None,
        manager: PackageManager::None,
        manager_present: false,
        manager_path: None,
    }
}

/// The host path of the first regular file among the manager's binaries.
pub fn find_binary(root: &HostRoot, manager: PackageManager) -> Option<String> {
    manager
        .binaries()
        .iter()
        .find(|rel| root.metadata(rel).is_ok_and(|m| m.is_file()))
        .map(|rel| format!("/{rel}"))
}

/// Reads the package facts of the host.
pub fn gather(
    root: &HostRoot,
    identity: &Identity<'_>,
    immutable: bool,
    warnings: &mut Vec<String>,
) -> PackageFacts {
    let (facts, warning) = decide(identity, immutable, |m| find_binary(root, m));
    warnings.extend(warning);
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(id: &str, version_id: Option<&'static str>) -> Identity<'static> {
        Identity {
            id: Box::leak(id.to_owned().into_boxed_str()),
            version_id,
            ..Identity::default()
        }
    }

    #[test]
    fn confirms_the_expected_manager() {
        let (facts, warning) = decide(&ident("ubuntu", Some("24.04")), false, |m| {
            (m == PackageManager::Apt).then(|| "/usr/bin/apt-get".to_owned())
        });
        assert_eq!(facts.manager, PackageManager::Apt);
        assert_eq!(facts.format, PackageFormat::Deb);
        assert!(facts.manager_present);
        assert_eq!(facts.manager_path.as_deref(), Some("/usr/bin/apt-get"));
        assert_eq!(warning, None);
    }

    #[test]
    fn falls_back_to_the_alternative_that_exists() {
        // CentOS 7 with dnf installed from EPEL but yum removed (unusual, real).
        let (facts, _) = decide(&ident("centos", Some("7")), false, |m| {
            (m == PackageManager::Dnf).then(|| "/usr/bin/dnf".to_owned())
        });
        assert_eq!(facts.manager, PackageManager::Dnf);
    }

    #[test]
    fn missing_binary_keeps_expectation_and_warns() {
        let (facts, warning) = decide(&ident("rhel", Some("9.4")), false, |_| None);
        assert_eq!(facts.manager, PackageManager::Dnf);
        assert_eq!(facts.format, PackageFormat::Rpm);
        assert!(!facts.manager_present);
        let warning = warning.expect("warns");
        assert!(
            warning.contains("dnf") && warning.contains("/usr/bin/dnf"),
            "{warning}"
        );
    }

    #[test]
    fn no_manager_os_reports_none_even_if_binaries_exist() {
        let (facts, warning) = decide(&ident("bottlerocket", None), true, |_| Some("/x".into()));
        assert_eq!(facts.manager, PackageManager::None);
        assert_eq!(facts.format, PackageFormat::None);
        assert!(!facts.manager_present);
        assert_eq!(warning, None);
    }

    #[test]
    fn unknown_os_probes_binaries() {
        let (facts, _) = decide(&ident("unknown", None), false, |m| {
            (m == PackageManager::Zypper).then(|| "/usr/bin/zypper".to_owned())
        });
        assert_eq!(facts.manager, PackageManager::Zypper);
        assert_eq!(facts.format, PackageFormat::Rpm);
        let (facts, warning) = decide(&ident("unknown", None), false, |_| None);
        assert_eq!(facts.manager, PackageManager::None);
        assert_eq!(warning, None);
    }
}
