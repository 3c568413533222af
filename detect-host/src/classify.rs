//! Pure judgements on an OS identity: family, immutability, and which package
//! format and manager to expect. No I/O here; the caller confirms the manager
//! by looking for its binary under the host root.
//!
//! Decisions are made on `ID` first, with explicit tables, and only then on
//! `ID_LIKE`: `ID_LIKE` is a "closest first" hint, not a family (Oracle and
//! Amazon Linux 2023 say `fedora`, Flatcar says `coreos`).

use serde::{Deserialize, Serialize};

/// Package-ecosystem lineage, grouped as Ansible's `os_family` groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Debian, Ubuntu and derivatives (deb + apt).
    Debian,
    /// RHEL, its rebuilds, Fedora, Amazon Linux and the CoreOS variants (rpm).
    Rhel,
    /// SLES and openSUSE, including the transactional Micro editions (rpm).
    Suse,
    /// Alpine Linux (apk).
    Alpine,
    /// Container-optimised and independent distributions, and unknown OSes.
    Other,
}

/// On-disk package format of the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageFormat {
    Deb,
    Rpm,
    Apk,
    /// No package manager an agent installer can use.
    None,
}

/// The tool used to install packages on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageManager {
    Apt,
    Dnf,
    Yum,
    Zypper,
    Tdnf,
    Apk,
    /// Image-based RPM hosts (Fedora CoreOS, RHCOS): layering, needs a reboot.
    RpmOstree,
    /// SUSE's transactional hosts (MicroOS, SL Micro): snapshot, needs a reboot.
    TransactionalUpdate,
    None,
}

impl Family {
    /// The name used in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Debian => "debian",
            Rhel => "rhel",
            Suse => "suse",
            Alpine => "alpine",
            Other => "other",
        }
    }
}

impl PackageFormat {
    /// The name used in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageFormat::Deb => "deb",
            PackageFormat::Rpm => "rpm",
            PackageFormat::Apk => "apk",
            PackageFormat::None => "none",
        }
    }
}

impl PackageManager {
    /// The name used in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Pm::Apt => "apt",
            Pm::Dnf => "dnf",
            Pm::Yum => "yum",
            Pm::Zypper => "zypper",
            Pm::Tdnf => "tdnf",
            Pm::Apk => "apk",
            Pm::RpmOstree => "rpm-ostree",
            Pm::TransactionalUpdate => "transactional-update",
            Pm::None => "none",
        }
    }

    /// Paths (relative to the host root) where the manager's binary lives,
    /// most usual first. Symlinks are followed inside the host root.
    pub fn binaries(self) -> &'static [&'static str] {
        match self {
            PackageManager::Apt => &["usr/bin/apt-get"],
            PackageManager::Dnf => &["usr/bin/dnf", "usr/bin/dnf5", "usr/bin/dnf-3"],
            PackageManager::Yum => &["usr/bin/yum"],
            PackageManager::Zypper => &["usr/bin/zypper"],
            PackageManager::Tdnf => &["usr/bin/tdnf"],
            PackageManager::Apk => &["sbin/apk", "usr/sbin/apk", "usr/bin/apk"],
            PackageManager::RpmOstree => &["usr/bin/rpm-ostree"],
            PackageManager::TransactionalUpdate => &["usr/sbin/transactional-update"],
            PackageManager::None => &[],
        }
    }

    /// The package format this manager installs.
    pub fn format(self) -> PackageFormat {
        match self {
            PackageManager::Apt => PackageFormat::Deb,
            PackageManager::Apk => PackageFormat::Apk,
            PackageManager::None => PackageFormat::None,
            _ => PackageFormat::Rpm,
        }
    }
}

/// The identity fields classification looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity<'a> {
    /// `ID`, any case.
    pub id: &'a str,
    /// `ID_LIKE`, closest first.
    pub id_like: &'a [String],
    /// `VARIANT_ID`.
    pub variant_id: Option<&'a str>,
    /// `VERSION_ID`.
    pub version_id: Option<&'a str>,
    /// `PLATFORM_ID` (`platform:el8`), set by the dnf-era Red Hat family.
    pub platform_id: Option<&'a str>,
}

/// What the ID alone tells us.
#[derive(Debug, Clone, Copy)]
struct Known {
    family: Family,
    immutable: bool,
    /// Package managers of a mutable host of this ID, preferred first; empty
    /// means "decide by family".
    managers: &'static [PackageManager],
}

const fn known(family: Family, immutable: bool, managers: &'static [PackageManager]) -> Known {
    Known {
        family,
        immutable,
        managers,
    }
}

use Family::{Alpine, Debian, Other, Rhel, Suse};
use PackageManager as Pm;

/// Every `ID` we classify explicitly (lower case).
const KNOWN_IDS: &[(&str, Known)] = &[
    ("debian", known(Debian, false, &[])),
    ("ubuntu", known(Debian, false, &[])),
    ("raspbian", known(Debian, false, &[])),
    ("devuan", known(Debian, false, &[])),
    ("ubuntu-core", known(Debian, true, &[Pm::None])),
    ("rhel", known(Rhel, false, &[])),
    ("centos", known(Rhel, false, &[])),
    ("rocky", known(Rhel, false, &[])),
    ("almalinux", known(Rhel, false, &[])),
    ("ol", known(Rhel, false, &[])),
    ("amzn", known(Rhel, false, &[])),
    ("fedora", known(Rhel, false, &[])),
    ("rhcos", known(Rhel, true, &[])),
    ("scos", known(Rhel, true, &[])),
    ("scientific", known(Rhel, false, &[])),
    ("cloudlinux", known(Rhel, false, &[])),
    ("eurolinux", known(Rhel, false, &[])),
    ("miraclelinux", known(Rhel, false, &[])),
    ("tencentos", known(Rhel, false, &[])),
    ("openeuler", known(Rhel, false, &[])),
    ("kylin", known(Rhel, false, &[])),
    ("anolis", known(Rhel, false, &[])),
    ("alinux", known(Rhel, false, &[])),
    ("virtuozzo", known(Rhel, false, &[])),
    ("sles", known(Suse, false, &[])),
    ("sles_sap", known(Suse, false, &[])),
    ("sled", known(Suse, false, &[])),
    ("opensuse", known(Suse, false, &[])),
    ("opensuse-leap", known(Suse, false, &[])),
    ("opensuse-tumbleweed", known(Suse, false, &[])),
    ("opensuse-slowroll", known(Suse, false, &[])),
    ("opensuse-microos", known(Suse, true, &[])),
    ("suse-microos", known(Suse, true, &[])),
    ("sle-micro", known(Suse, true, &[])),
    ("sl-micro", known(Suse, true, &[])),
    ("sle-micro-rancher", known(Suse, true, &[])),
    ("alp-dolomite", known(Suse, true, &[])),
    ("alpine", known(Alpine, false, &[])),
    ("bottlerocket", known(Other, true, &[Pm::None])),
    ("talos", known(Other, true, &[Pm::None])),
    ("flatcar", known(Other, true, &[Pm::None])),
    ("coreos", known(Other, true, &[Pm::None])),
    ("cos", known(Other, true, &[Pm::None])),
    ("k3os", known(Other, true, &[Pm::None])),
    ("clear-linux-os", known(Other, false, &[Pm::None])),
    ("mariner", known(Other, false, &[Pm::Tdnf])),
    ("azurelinux", known(Other, false, &[Pm::Tdnf])),
    ("photon", known(Other, false, &[Pm::Tdnf])),
    ("wolfi", known(Other, false, &[Pm::Apk])),
    ("chainguard", known(Other, false, &[Pm::Apk])),
];

/// `VARIANT_ID`s of image-based (ostree) editions of mutable IDs: Fedora
/// CoreOS, RHCOS 9+ and RHEL-10-based RHCOS (`ID=rhel`), Fedora IoT and the
/// Atomic desktops.
const IMMUTABLE_VARIANTS: &[&str] = &["coreos", "iot", "silverblue", "kinoite", "sericea", "onyx"];

/// Knowledge about a lower-cased ID, if we have any.
fn lookup(id: &str) -> Option<Known> {
    KNOWN_IDS
        .iter()
        .find(|(known_id, _)| *known_id == id)
        .map(|&(_, k)| k)
}

/// Whether we classify this ID explicitly (as opposed to via `ID_LIKE`).
pub fn is_known_id(id: &str) -> bool {
    lookup(&id.to_ascii_lowercase()).is_some()
}

/// The family of an OS: its `ID` if known, else the first known entry of
/// `ID_LIKE` (Flatcar's `coreos` is skipped there: it means "Container Linux",
/// not a package lineage), else [`Family::Other`].
pub fn family(identity: &Identity<'_>) -> Family {
    if let Some(k) = lookup(&identity.id.to_ascii_lowercase()) {
        return k.family;
    }
    identity
        .id_like
        .iter()
        .map(|like| like.to_ascii_lowercase())
        .filter(|like| like != "coreos")
        .find_map(|like| lookup(&like))
        .map_or(Other, |k| k.family)
}

/// Whether the host is image-based/read-only: by ID, by an ostree
/// `VARIANT_ID`, or because `/run/ostree-booted` exists on the host.
pub fn is_immutable(identity: &Identity<'_>, ostree_booted: bool) -> bool {
    let by_id = lookup(&identity.id.to_ascii_lowercase()).is_some_and(|k| k.immutable);
    let by_variant = identity
        .variant_id
        .is_some_and(|v| IMMUTABLE_VARIANTS.contains(&v.to_ascii_lowercase().as_str()));
    by_id || by_variant || ostree_booted
}

/// Leading number of a version (`"9.4"` → 9, `"V10"`/`"v1.8.3"` → 10/1,
/// `"2018.03"` → 2018), if there is one.
pub fn version_major(version_id: &str) -> Option<u64> {
    let digits: String = version_id
        .trim()
        .trim_start_matches(['v', 'V'])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Whether a Red Hat family host uses dnf rather than yum: EL 8+ and
/// rebuilds, Fedora 22+, Amazon Linux 2022+; every dnf-era release also sets
/// `PLATFORM_ID`.
fn prefers_dnf(identity: &Identity<'_>) -> bool {
    if identity.platform_id.is_some_and(|p| !p.trim().is_empty()) {
        return true;
    }
    let major = identity.version_id.and_then(version_major);
    match identity.id.to_ascii_lowercase().as_str() {
        "fedora" => major.is_none_or(|m| m >= 22),
        // AL1 (2016.03, 2018.03) and AL2 use yum; AL2022/AL2023 use dnf.
        "amzn" => major.is_some_and(|m| m >= 2022),
        "openeuler" | "kylin" | "anolis" | "alinux" => true,
        _ => major.is_some_and(|m| (8..1000).contains(&m)),
    }
}

/// Package managers to look for, preferred first. The first whose binary
/// exists under the host root is the answer; when none exists the first is
/// reported as expected-but-missing. `[None]` means the OS has no usable
/// package manager; an empty list means "unknown OS: probe every manager".
pub fn expected_managers(identity: &Identity<'_>, immutable: bool) -> Vec<PackageManager> {
    let id = identity.id.to_ascii_lowercase();
    if let Some(k) = lookup(&id) {
        if !k.managers.is_empty() {
            return k.managers.to_vec();
        }
    }
    match (family(identity), immutable) {
        (Debian, false) => vec![Pm::Apt],
        (Debian, true) => vec![Pm::None],
        (Rhel, true) => vec![Pm::RpmOstree],
        (Rhel, false) if prefers_dnf(identity) => vec![Pm::Dnf, Pm::Yum],
        (Rhel, false) => vec![Pm::Yum, Pm::Dnf],
        (Suse, true) => vec![Pm::TransactionalUpdate],
        (Suse, false) => vec![Pm::Zypper],
        (Alpine, _) => vec![Pm::Apk],
        (Other, true) => vec![Pm::None],
        (Other, false) => Vec::new(),
    }
}

/// Managers probed, in this order, when the OS is not recognised.
pub const PROBE_ORDER: &[PackageManager] = &[
    Pm::Apt,
    Pm::Dnf,
    Pm::Yum,
    Pm::Zypper,
    Pm::Apk,
    Pm::Tdnf,
    Pm::RpmOstree,
    Pm::TransactionalUpdate,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn ident<'a>(id: &'a str, like: &'a [String]) -> Identity<'a> {
        Identity {
            id,
            id_like: like,
            ..Identity::default()
        }
    }

    fn like(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn families_follow_the_id_table_before_id_like() {
        let cases = [
            ("ubuntu", "debian", Debian),
            ("debian", "", Debian),
            ("ol", "fedora", Rhel),
            ("amzn", "fedora", Rhel),
            ("openEuler", "", Rhel),
            ("sles", "", Suse),
            ("opensuse-microos", "suse opensuse", Suse),
            ("alpine", "", Alpine),
            ("flatcar", "coreos", Other),
            ("bottlerocket", "", Other),
            ("mariner", "", Other),
            ("azurelinux", "", Other),
            ("clear-linux-os", "clear-linux-os", Other),
        ];
        for (id, l, expected) in cases {
            assert_eq!(family(&ident(id, &like(l))), expected, "{id}");
        }
    }

    #[test]
    fn unknown_ids_fall_back_to_id_like_in_order() {
        assert_eq!(family(&ident("linuxmint", &like("ubuntu debian"))), Debian);
        assert_eq!(family(&ident("navy", &like("rhel centos fedora"))), Rhel);
        assert_eq!(family(&ident("postmarketos", &like("alpine"))), Alpine);
        assert_eq!(family(&ident("newcoreos", &like("coreos"))), Other);
        assert_eq!(family(&ident("hobby", &like("nothing known"))), Other);
        assert_eq!(family(&ident("unknown", &[])), Other);
    }

    #[test]
    fn immutability_by_id_variant_or_ostree() {
        assert!(is_immutable(&ident("talos", &[]), false));
        assert!(is_immutable(&ident("sl-micro", &[]), false));
        assert!(!is_immutable(&ident("fedora", &[]), false));
        let fcos = Identity {
            id: "fedora",
            variant_id: Some("coreos"),
            ..Identity::default()
        };
        assert!(is_immutable(&fcos, false));
        assert!(is_immutable(&ident("centos", &[]), true));
        assert!(!is_immutable(&ident("ubuntu", &[]), false));
    }

    #[test]
    fn version_major_parses_leading_numbers_only() {
        assert_eq!(version_major("9.4"), Some(9));
        assert_eq!(version_major("V10"), Some(10));
        assert_eq!(version_major("v1.8.3"), Some(1));
        assert_eq!(version_major("2018.03"), Some(2018));
        assert_eq!(version_major("rolling"), None);
        assert_eq!(version_major(""), None);
        assert_eq!(version_major("99999999999999999999999"), None);
    }

    #[test]
    fn red_hat_family_picks_dnf_or_yum_by_release() {
        let m = |id: &str, v: &str| {
            let i = Identity {
                id,
                version_id: Some(v),
                ..Identity::default()
            };
            expected_managers(&i, false)[0]
        };
        assert_eq!(m("rhel", "7.9"), Pm::Yum);
        assert_eq!(m("rhel", "8.10"), Pm::Dnf);
        assert_eq!(m("centos", "6"), Pm::Yum);
        assert_eq!(m("amzn", "2"), Pm::Yum);
        assert_eq!(m("amzn", "2018.03"), Pm::Yum);
        assert_eq!(m("amzn", "2023"), Pm::Dnf);
        assert_eq!(m("fedora", "21"), Pm::Yum);
        assert_eq!(m("fedora", "40"), Pm::Dnf);
        assert_eq!(m("kylin", "V10"), Pm::Dnf);
        let tencent = Identity {
            id: "tencentos",
            version_id: Some("3.1"),
            platform_id: Some("platform:el8"),
            ..Identity::default()
        };
        assert_eq!(expected_managers(&tencent, false)[0], Pm::Dnf);
    }

    #[test]
    fn image_based_hosts_get_their_transactional_manager() {
        let rhcos = Identity {
            id: "rhel",
            variant_id: Some("coreos"),
            ..Identity::default()
        };
        assert_eq!(expected_managers(&rhcos, true), vec![Pm::RpmOstree]);
        assert_eq!(
            expected_managers(&ident("sl-micro", &[]), true),
            vec![Pm::TransactionalUpdate]
        );
        assert_eq!(
            expected_managers(&ident("bottlerocket", &[]), true),
            vec![Pm::None]
        );
        assert_eq!(
            expected_managers(&ident("ubuntu-core", &[]), true),
            vec![Pm::None]
        );
        assert_eq!(
            expected_managers(&ident("azurelinux", &[]), false),
            vec![Pm::Tdnf]
        );
        assert!(expected_managers(&ident("unknown", &[]), false).is_empty());
    }
}
