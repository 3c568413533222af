//! Parsers for the release files that predate os-release
//! (`/etc/redhat-release`, `/etc/system-release`, `/etc/SuSE-release`,
//! `/etc/lsb-release`, `/etc/alpine-release`, `/etc/debian_version`, …).
//!
//! They are only consulted when a host has no usable os-release (CentOS and
//! RHEL 6, SLES 11, Ubuntu 10.04, Amazon Linux 2 images with an empty
//! `/etc/os-release`). The distribution is always derived from the file's
//! *content*: a CentOS 6 host has only `redhat-release`, an Oracle host has a
//! `redhat-release` that claims RHEL, and on Rocky `centos-release` is a
//! symlink to `rocky-release`.

use crate::os_release;

/// What a legacy release file says about the OS, in os-release terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyRelease {
    /// os-release style ID (`centos`, `rhel`, `amzn`, `sles`, …), or `None`
    /// when the file parsed but names a product we do not know.
    pub id: Option<&'static str>,
    /// Product name as written (`CentOS`, `Amazon Linux AMI`).
    pub name: Option<String>,
    /// The whole first line, as a display name.
    pub pretty_name: Option<String>,
    /// Version as written (`6.10`, `2018.03`, `11.3`).
    pub version_id: Option<String>,
    /// Codename (`Final`, `Karoo`, `lucid`).
    pub codename: Option<String>,
}

/// The shape of a legacy file, which decides how it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyFormat {
    /// One line `<product> release <version> (<codename>)`: the Red Hat family
    /// files and Amazon's `system-release`.
    ReleaseLine,
    /// `/etc/SuSE-release`: product line plus `VERSION = ` / `PATCHLEVEL = `.
    Suse,
    /// `/etc/lsb-release`: `DISTRIB_ID=…` assignments.
    Lsb,
    /// `/etc/alpine-release`: the version alone.
    Alpine,
    /// `/etc/debian_version`: a version (`12.8`) or a codename (`trixie/sid`).
    DebianVersion,
}

/// Legacy files in the order that gives the most specific answer: vendor
/// files before `system-release` (which Amazon alone relies on), and that
/// before `redhat-release`, which derivatives fill with RHEL's name.
pub const LEGACY_FILES: &[(&str, LegacyFormat)] = &[
    ("etc/oracle-release", LegacyFormat::ReleaseLine),
    ("etc/rocky-release", LegacyFormat::ReleaseLine),
    ("etc/almalinux-release", LegacyFormat::ReleaseLine),
    ("etc/centos-release", LegacyFormat::ReleaseLine),
    ("etc/system-release", LegacyFormat::ReleaseLine),
    ("etc/redhat-release", LegacyFormat::ReleaseLine),
    ("etc/SuSE-release", LegacyFormat::Suse),
    ("etc/alpine-release", LegacyFormat::Alpine),
    ("etc/lsb-release", LegacyFormat::Lsb),
    ("etc/debian_version", LegacyFormat::DebianVersion),
];

/// Product names (lower case, matched as substrings, first hit wins, so the
/// longer names come first) and the os-release ID their vendor uses today.
const PRODUCT_IDS: &[(&str, &str)] = &[
    ("red hat enterprise linux coreos", "rhcos"),
    ("red hat", "rhel"),
    // lsb_release's DISTRIB_ID spellings on RHEL and Oracle Linux.
    ("redhatenterprise", "rhel"),
    ("enterpriseenterprise", "ol"),
    ("centos", "centos"),
    ("rocky", "rocky"),
    ("almalinux", "almalinux"),
    ("oracle", "ol"),
    ("enterprise linux enterprise linux", "ol"),
    ("amazon linux", "amzn"),
    ("fedora", "fedora"),
    ("scientific linux", "scientific"),
    ("cloudlinux", "cloudlinux"),
    ("eurolinux", "eurolinux"),
    ("miracle linux", "miraclelinux"),
    ("tencentos", "tencentos"),
    ("openeuler", "openeuler"),
    ("kylin", "kylin"),
    ("suse linux enterprise server", "sles"),
    ("suse linux enterprise desktop", "sled"),
    ("opensuse", "opensuse"),
    ("cbl-mariner", "mariner"),
    ("azure linux", "azurelinux"),
    ("photon", "photon"),
    ("ubuntu", "ubuntu"),
    ("debian", "debian"),
    ("alpine", "alpine"),
];

/// Map a product name or lsb `DISTRIB_ID` to an os-release ID.
pub fn id_for_product(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    PRODUCT_IDS
        .iter()
        .find(|(needle, _)| lower.contains(needle))
        .map(|&(_, id)| id)
}

/// Parse one legacy file. `None` when it holds nothing usable (empty, or an
/// lsb-release with only `LSB_VERSION`, as redhat-lsb writes on EL6).
pub fn parse(format: LegacyFormat, bytes: &[u8]) -> Option<LegacyRelease> {
    let text = String::from_utf8_lossy(bytes);
    match format {
        LegacyFormat::ReleaseLine => parse_release_line(&text),
        LegacyFormat::Suse => parse_suse_release(&text),
        LegacyFormat::Lsb => parse_lsb_release(bytes),
        LegacyFormat::Alpine => parse_alpine_release(&text),
        LegacyFormat::DebianVersion => parse_debian_version(&text),
    }
}

fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

fn starts_with_digit(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// `CentOS release 6.10 (Final)`, `Red Hat Enterprise Linux Server release
/// 7.9 (Maipo)`, `Amazon Linux AMI release 2018.03`, `Amazon Linux 2`,
/// `CBL-Mariner 2.0.20220527`.
pub fn parse_release_line(text: &str) -> Option<LegacyRelease> {
    let line = first_line(text)?;
    let words: Vec<&str> = line.split_whitespace().collect();
    // The version is the word after "release", else the first word that
    // starts with a digit (files without the word "release").
    let version_at = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("release"))
        .map(|i| i + 1)
        .filter(|&i| words.get(i).is_some_and(|w| starts_with_digit(w)))
        .or_else(|| words.iter().position(|w| starts_with_digit(w)));
    let name_end = version_at.map_or(words.len(), |i| {
        if i > 0 && words[i - 1].eq_ignore_ascii_case("release") {
            i - 1
        } else {
            i
        }
    });
    let name = words[..name_end].join(" ");
    let version_id = version_at.map(|i| {
        words[i]
            .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
            .to_owned()
    });
    let codename = line
        .rfind('(')
        .and_then(|open| {
            line[open + 1..]
                .find(')')
                .map(|len| &line[open + 1..open + 1 + len])
        })
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    Some(LegacyRelease {
        id: id_for_product(&name),
        name: Some(name).filter(|n| !n.is_empty()),
        pretty_name: Some(line.to_owned()),
        version_id,
        codename,
    })
}

/// `/etc/SuSE-release` (SLES up to 12, openSUSE up to 42):
/// ```text
/// SUSE Linux Enterprise Server 11 (x86_64)
/// VERSION = 11
/// PATCHLEVEL = 3
/// ```
/// The version is `VERSION`, plus `.PATCHLEVEL` when it is not 0, which is the
/// `VERSION_ID` later SLES releases write (`12` for 12 GA, `12.1` for SP1).
pub fn parse_suse_release(text: &str) -> Option<LegacyRelease> {
    let product = first_line(text)?;
    let value = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
    };
    let version = value("VERSION").filter(|v| !v.is_empty());
    let version_id = match (version, value("PATCHLEVEL")) {
        (Some(v), Some(p)) if !p.is_empty() && p != "0" => Some(format!("{v}.{p}")),
        (v, _) => v,
    };
    let name = product
        .split_once(" (")
        .map_or(product, |(name, _)| name)
        .trim()
        .to_owned();
    Some(LegacyRelease {
        id: id_for_product(&name),
        name: Some(name),
        pretty_name: Some(product.to_owned()),
        version_id,
        codename: value("CODENAME").filter(|c| !c.is_empty()),
    })
}

/// `/etc/lsb-release`: `DISTRIB_ID`, `DISTRIB_RELEASE`, `DISTRIB_CODENAME`,
/// `DISTRIB_DESCRIPTION`, in os-release syntax.
pub fn parse_lsb_release(bytes: &[u8]) -> Option<LegacyRelease> {
    let lsb = os_release::parse(bytes);
    let distrib_id = lsb.get_nonempty("DISTRIB_ID")?;
    Some(LegacyRelease {
        id: id_for_product(distrib_id),
        name: Some(distrib_id.to_owned()),
        pretty_name: lsb.get_nonempty("DISTRIB_DESCRIPTION").map(str::to_owned),
        version_id: lsb.get_nonempty("DISTRIB_RELEASE").map(str::to_owned),
        codename: lsb.get_nonempty("DISTRIB_CODENAME").map(str::to_owned),
    })
}

/// `/etc/alpine-release`: `3.20.3`.
pub fn parse_alpine_release(text: &str) -> Option<LegacyRelease> {
    let version = first_line(text)?;
    Some(LegacyRelease {
        id: Some("alpine"),
        name: Some("Alpine Linux".to_owned()),
        pretty_name: Some(format!("Alpine Linux v{version}")),
        version_id: Some(version.to_owned()),
        codename: None,
    })
}

/// `/etc/debian_version`: `12.8` on a release, `trixie/sid` on testing (and
/// on Ubuntu, which is why it comes last).
pub fn parse_debian_version(text: &str) -> Option<LegacyRelease> {
    let line = first_line(text)?;
    let (version_id, codename) = if starts_with_digit(line) {
        (Some(line.to_owned()), None)
    } else {
        (None, Some(line.to_owned()))
    };
    Some(LegacyRelease {
        id: Some("debian"),
        name: Some("Debian GNU/Linux".to_owned()),
        pretty_name: Some(format!("Debian GNU/Linux {line}")),
        version_id,
        codename,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> LegacyRelease {
        parse_release_line(text).expect("parses")
    }

    #[test]
    fn release_lines_of_the_red_hat_family() {
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            (
                "CentOS release 6.10 (Final)\n",
                "centos",
                "6.10",
                Some("Final"),
            ),
            (
                "CentOS Linux release 7.8.2003 (Core) \n",
                "centos",
                "7.8.2003",
                Some("Core"),
            ),
            ("CentOS Stream release 9\n", "centos", "9", None),
            (
                "Red Hat Enterprise Linux Server release 6.7 (Santiago)\n",
                "rhel",
                "6.7",
                Some("Santiago"),
            ),
            ("Oracle Linux Server release 8.10\n", "ol", "8.10", None),
            (
                "Rocky Linux release 9.3 (Blue Onyx)\n",
                "rocky",
                "9.3",
                Some("Blue Onyx"),
            ),
            (
                "Fedora release 22 (Twenty Two)\n",
                "fedora",
                "22",
                Some("Twenty Two"),
            ),
            (
                "Amazon Linux AMI release 2018.03\n",
                "amzn",
                "2018.03",
                None,
            ),
            (
                "Amazon Linux release 2 (Karoo)\n",
                "amzn",
                "2",
                Some("Karoo"),
            ),
            ("Amazon Linux 2\n", "amzn", "2", None),
            (
                "Red Hat Enterprise Linux CoreOS release 4.16\n",
                "rhcos",
                "4.16",
                None,
            ),
            (
                "CBL-Mariner 2.0.20220527\n",
                "mariner",
                "2.0.20220527",
                None,
            ),
        ];
        for &(text, id, version, codename) in cases {
            let r = line(text);
            assert_eq!(r.id, Some(id), "{text:?}");
            assert_eq!(r.version_id.as_deref(), Some(version), "{text:?}");
            assert_eq!(r.codename.as_deref(), codename, "{text:?}");
        }
    }

    #[test]
    fn release_line_keeps_product_name_and_unknown_products() {
        let r = line("Amazon Linux AMI release 2018.03\n");
        assert_eq!(r.name.as_deref(), Some("Amazon Linux AMI"));
        let r = line("Frobnix OS release 3.1 (Zed)\n");
        assert_eq!(r.id, None);
        assert_eq!(r.name.as_deref(), Some("Frobnix OS"));
        assert_eq!(r.version_id.as_deref(), Some("3.1"));
    }

    #[test]
    fn release_line_without_version_and_empty_file() {
        let r = line("Some Linux\n");
        assert_eq!(r.version_id, None);
        assert_eq!(r.name.as_deref(), Some("Some Linux"));
        assert_eq!(parse_release_line("\n  \n"), None);
    }

    #[test]
    fn suse_release_adds_nonzero_patchlevel() {
        let sles11 = "SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 3\n";
        let r = parse_suse_release(sles11).unwrap();
        assert_eq!(
            (r.id, r.version_id.as_deref()),
            (Some("sles"), Some("11.3"))
        );
        let sles12 = "SUSE Linux Enterprise Server 12 (x86_64)\nVERSION = 12\nPATCHLEVEL = 0\n";
        let r = parse_suse_release(sles12).unwrap();
        assert_eq!(r.version_id.as_deref(), Some("12"));
        let os132 = "openSUSE 13.2 (x86_64)\nVERSION = 13.2\nCODENAME = Harlequin\n";
        let r = parse_suse_release(os132).unwrap();
        assert_eq!(r.id, Some("opensuse"));
        assert_eq!(r.version_id.as_deref(), Some("13.2"));
        assert_eq!(r.codename.as_deref(), Some("Harlequin"));
        assert_eq!(r.name.as_deref(), Some("openSUSE 13.2"));
    }

    #[test]
    fn lsb_release_needs_a_distrib_id() {
        let r = parse_lsb_release(b"DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=10.04\nDISTRIB_CODENAME=lucid\nDISTRIB_DESCRIPTION=\"Ubuntu 10.04.4 LTS\"\n").unwrap();
        assert_eq!(r.id, Some("ubuntu"));
        assert_eq!(r.version_id.as_deref(), Some("10.04"));
        assert_eq!(r.codename.as_deref(), Some("lucid"));
        assert_eq!(r.pretty_name.as_deref(), Some("Ubuntu 10.04.4 LTS"));
        assert_eq!(
            parse_lsb_release(b"LSB_VERSION=base-4.0-amd64:core-4.0-noarch\n"),
            None
        );
        let rhel = parse_lsb_release(b"DISTRIB_ID=RedHatEnterpriseServer\nDISTRIB_RELEASE=6.7\n");
        assert_eq!(rhel.and_then(|r| r.id), Some("rhel"));
        let oracle = parse_lsb_release(b"DISTRIB_ID=EnterpriseEnterpriseServer\n");
        assert_eq!(oracle.and_then(|r| r.id), Some("ol"));
    }

    #[test]
    fn debian_version_is_a_version_or_a_codename() {
        let r = parse_debian_version("12.8\n").unwrap();
        assert_eq!(r.version_id.as_deref(), Some("12.8"));
        let r = parse_debian_version("trixie/sid\n").unwrap();
        assert_eq!(r.version_id, None);
        assert_eq!(r.codename.as_deref(), Some("trixie/sid"));
    }

    #[test]
    fn alpine_release_is_the_version() {
        let r = parse_alpine_release("3.20.3\n").unwrap();
        assert_eq!(
            (r.id, r.version_id.as_deref()),
            (Some("alpine"), Some("3.20.3"))
        );
    }

    #[test]
    fn garbage_never_panics() {
        let garbage: &[&[u8]] = &[
            b"",
            b"\xff\xfe\x00(",
            b"release",
            b"( release (",
            b"x release 1 ((",
            b")(",
        ];
        for bytes in garbage {
            for &(_, format) in LEGACY_FILES {
                let _ = parse(format, bytes);
            }
        }
    }
}
