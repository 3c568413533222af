//! The host's OS identity: which release file decides, and what it says.
//!
//! Order (see the crate docs for why):
//! 1. `/etc/os-release`, else `/usr/lib/os-release` — one of them, never
//!    merged. A file that is empty or has no `ID` is skipped with a warning
//!    (Amazon Linux 2 images with an empty `/etc/os-release` exist);
//! 2. the legacy files in [`legacy::LEGACY_FILES`] order, identified by
//!    their content;
//! 3. otherwise `id` = `unknown` and a warning. Nothing is ever taken from
//!    the machine the tool runs on.

use std::collections::BTreeMap;
use std::io;

use nodeguard_common::HostRoot;
use serde::{Deserialize, Serialize};

use crate::classify::{self, Family, Identity};
use crate::legacy::{self, LegacyRelease};
use crate::os_release::{self, OsRelease};

/// The os-release files, in the spec's order of precedence.
pub const OS_RELEASE_PATHS: &[&str] = &["etc/os-release", "usr/lib/os-release"];

/// Marker file of an ostree-booted (image-based) host.
pub const OSTREE_BOOTED_PATH: &str = "run/ostree-booted";

/// Release files are a few hundred bytes; anything past this is hostile.
pub const MAX_RELEASE_FILE_BYTES: u64 = 64 * 1024;

/// Parse issues reported per file before they are summarised.
const MAX_ISSUES_PER_FILE: usize = 5;

/// The `id` reported when no file identifies the OS.
pub const UNKNOWN_ID: &str = "unknown";

/// `os` in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsFacts {
    /// `ID` as written (`ubuntu`, `rhel`, `openEuler`), or the ID a legacy
    /// file's product maps to, or `unknown`.
    pub id: String,
    /// `ID_LIKE`, split on whitespace, closest first.
    pub id_like: Vec<String>,
    /// `NAME`.
    pub name: Option<String>,
    /// `PRETTY_NAME` (for legacy files: their first line).
    pub pretty_name: Option<String>,
    /// `VERSION_ID` verbatim (legacy: the version in the file's text).
    pub version_id: Option<String>,
    /// `VERSION`.
    pub version: Option<String>,
    /// `VERSION_CODENAME`, else `UBUNTU_CODENAME`, else a legacy codename.
    pub version_codename: Option<String>,
    /// Leading number of `version_id`, when there is one.
    pub version_major: Option<u64>,
    /// `VARIANT_ID`.
    pub variant_id: Option<String>,
    /// Package lineage.
    pub family: Family,
    /// Image-based / read-only host.
    pub immutable: bool,
    /// Host path of the file that decided (`/etc/os-release`), or `null`.
    pub source: Option<String>,
    /// Where `source` really lives after following symlinks inside the host
    /// root (`/usr/lib/os-release`).
    pub source_resolved: Option<String>,
    /// Every assignment of the os-release file used, unknown keys included.
    pub fields: BTreeMap<String, String>,
}

impl OsFacts {
    /// The fields classification looks at, borrowed from this report.
    pub fn identity(&self) -> Identity<'_> {
        Identity {
            id: &self.id,
            id_like: &self.id_like,
            variant_id: self.variant_id.as_deref(),
            version_id: self.version_id.as_deref(),
            platform_id: self.fields.get("PLATFORM_ID").map(String::as_str),
        }
    }
}

/// The raw identity before classification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawIdentity {
    pub id: Option<String>,
    pub id_like: Vec<String>,
    pub name: Option<String>,
    pub pretty_name: Option<String>,
    pub version_id: Option<String>,
    pub version: Option<String>,
    pub version_codename: Option<String>,
    pub variant_id: Option<String>,
    pub platform_id: Option<String>,
    pub fields: BTreeMap<String, String>,
}

/// The identity an os-release file states.
pub fn identity_from_os_release(release: &OsRelease) -> RawIdentity {
    let get = |key: &str| release.get_nonempty(key).map(str::to_owned);
    RawIdentity {
        id: get("ID"),
        id_like: release
            .get("ID_LIKE")
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        name: get("NAME"),
        pretty_name: get("PRETTY_NAME"),
        version_id: get("VERSION_ID"),
        version: get("VERSION"),
        version_codename: get("VERSION_CODENAME").or_else(|| get("UBUNTU_CODENAME")),
        variant_id: get("VARIANT_ID"),
        platform_id: get("PLATFORM_ID"),
        fields: release.fields.clone(),
    }
}

/// The identity a legacy release file states.
pub fn identity_from_legacy(release: &LegacyRelease) -> RawIdentity {
    RawIdentity {
        id: release.id.map(str::to_owned),
        name: release.name.clone(),
        pretty_name: release.pretty_name.clone(),
        version_id: release.version_id.clone(),
        version_codename: release.codename.clone(),
        ..RawIdentity::default()
    }
}

/// Reads a release file if it is a regular file of sane size. Missing is
/// `None` silently; anything else odd is `None` plus a warning.
pub fn read_release_file(
    root: &HostRoot,
    rel: &str,
    warnings: &mut Vec<String>,
) -> Option<Vec<u8>> {
    match root.metadata(rel) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => {
            // A FIFO or device would block or never end; a directory is junk.
            warnings.push(format!("/{rel} is not a regular file; ignored"));
            return None;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            warnings.push(format!("/{rel} ignored: {e}"));
            return None;
        }
    }
    match root.read_limited(rel, MAX_RELEASE_FILE_BYTES) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            warnings.push(format!("/{rel} ignored: {e}"));
            None
        }
    }
}

/// The host path a root-relative path resolves to (`/usr/lib/os-release`).
fn resolved_host_path(root: &HostRoot, rel: &str) -> Option<String> {
    let real = root.resolve(rel).ok()?;
    let inside = real.strip_prefix(root.path()).ok()?;
    Some(format!("/{}", inside.display()))
}

fn push_parse_issues(rel: &str, release: &OsRelease, warnings: &mut Vec<String>) {
    for issue in release.issues.iter().take(MAX_ISSUES_PER_FILE) {
        warnings.push(format!("/{rel}: {issue}"));
    }
    let more = release.issues.len().saturating_sub(MAX_ISSUES_PER_FILE);
    if more > 0 {
        warnings.push(format!("/{rel}: {more} more parse issues"));
    }
}

/// Where the identity came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    pub identity: RawIdentity,
    /// Root-relative path of the deciding file.
    pub source: Option<&'static str>,
}

/// Finds the file that identifies the OS and reads its identity.
pub fn find_identity(root: &HostRoot, warnings: &mut Vec<String>) -> Sourced {
    let (found, partial) = find_os_release(root, warnings);
    if let Some(found) = found {
        return found;
    }
    let (found, unrecognised) = find_legacy(root, warnings);
    found.or(partial).or(unrecognised).unwrap_or(Sourced {
        identity: RawIdentity::default(),
        source: None,
    })
}

/// The os-release file with an `ID`, else (second) the first one that had
/// assignments but no `ID`, used only if no legacy file does better.
fn find_os_release(
    root: &HostRoot,
    warnings: &mut Vec<String>,
) -> (Option<Sourced>, Option<Sourced>) {
    let mut partial = None;
    for &rel in OS_RELEASE_PATHS {
        let Some(bytes) = read_release_file(root, rel, warnings) else {
            continue;
        };
        let release = os_release::parse(&bytes);
        push_parse_issues(rel, &release, warnings);
        let identity = identity_from_os_release(&release);
        let sourced = Sourced {
            identity,
            source: Some(rel),
        };
        if sourced.identity.id.is_some() {
            return (Some(sourced), None);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            warnings.push(format!("/{rel} is empty; ignored"));
            continue;
        }
        warnings.push(format!("/{rel} has no ID; ignored"));
        if !release.is_empty() {
            partial.get_or_insert(sourced);
        }
    }
    (None, partial)
}

/// The first legacy file whose product we recognise, else (second) the
/// first one that parsed at all.
fn find_legacy(root: &HostRoot, warnings: &mut Vec<String>) -> (Option<Sourced>, Option<Sourced>) {
    let mut unrecognised = None;
    for &(rel, format) in legacy::LEGACY_FILES {
        let Some(bytes) = read_release_file(root, rel, warnings) else {
            continue;
        };
        let Some(release) = legacy::parse(format, &bytes) else {
            continue;
        };
        let sourced = Sourced {
            identity: identity_from_legacy(&release),
            source: Some(rel),
        };
        if release.id.is_some() {
            return (Some(sourced), None);
        }
        unrecognised.get_or_insert(sourced);
    }
    (None, unrecognised)
}

/// Reads and classifies the host's OS identity.
pub fn gather(root: &HostRoot, warnings: &mut Vec<String>) -> OsFacts {
    let Sourced { identity, source } = find_identity(root, warnings);
    let ostree_booted = root.exists(OSTREE_BOOTED_PATH);
    let mut facts = classify_identity(&identity, ostree_booted);
    facts.source = source.map(|rel| format!("/{rel}"));
    facts.source_resolved = source.and_then(|rel| resolved_host_path(root, rel));
    match (&identity.id, source) {
        (None, None) => warnings.push(
            "no os-release or legacy release file under the host root; OS unknown".to_owned(),
        ),
        (None, Some(rel)) => warnings.push(format!("/{rel} does not identify the OS; OS unknown")),
        (Some(id), _)
            if !classify::is_known_id(id)
                && facts.family == Family::Other
                && !identity.id_like.is_empty() =>
        {
            warnings.push(format!(
                "OS ID {id:?} and ID_LIKE {:?} are not recognised; family other",
                identity.id_like.join(" ")
            ));
        }
        (Some(id), _) if !classify::is_known_id(id) && facts.family == Family::Other => {
            warnings.push(format!("OS ID {id:?} is not recognised; family other"));
        }
        _ => {}
    }
    facts
}

/// Classifies an identity into the report's `os` object (pure).
pub fn classify_identity(raw: &RawIdentity, ostree_booted: bool) -> OsFacts {
    let id = raw.id.clone().unwrap_or_else(|| UNKNOWN_ID.to_owned());
    let ident = Identity {
        id: &id,
        id_like: &raw.id_like,
        variant_id: raw.variant_id.as_deref(),
        version_id: raw.version_id.as_deref(),
        platform_id: raw.platform_id.as_deref(),
    };
    let family = classify::family(&ident);
    let immutable = classify::is_immutable(&ident, ostree_booted);
    OsFacts {
        id_like: raw.id_like.clone(),
        name: raw.name.clone(),
        pretty_name: raw.pretty_name.clone(),
        version_id: raw.version_id.clone(),
        version: raw.version.clone(),
        version_codename: raw.version_codename.clone(),
        version_major: raw.version_id.as_deref().and_then(classify::version_major),
        variant_id: raw.variant_id.clone(),
        family,
        immutable,
        source: None,
        source_resolved: None,
        fields: raw.fields.clone(),
        id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn raw(id: &str, like: &str) -> RawIdentity {
        RawIdentity {
            id: Some(id.to_owned()),
            id_like: like.split_whitespace().map(str::to_owned).collect(),
            ..RawIdentity::default()
        }
    }

    #[test]
    fn classification_uses_variant_and_ostree_evidence() {
        let mut fcos = raw("fedora", "");
        fcos.variant_id = Some("coreos".into());
        assert!(classify_identity(&fcos, false).immutable);
        assert!(!classify_identity(&raw("fedora", ""), false).immutable);
        assert!(classify_identity(&raw("centos", "rhel fedora"), true).immutable);
    }

    #[test]
    fn missing_id_is_reported_as_unknown() {
        let facts = classify_identity(&RawIdentity::default(), false);
        assert_eq!(facts.id, UNKNOWN_ID);
        assert_eq!(facts.family, Family::Other);
    }

    #[test]
    fn legacy_identity_keeps_codename_and_version() {
        let legacy = legacy::parse_release_line("CentOS release 6.10 (Final)\n").unwrap();
        let facts = classify_identity(&identity_from_legacy(&legacy), false);
        assert_eq!(facts.id, "centos");
        assert_eq!(facts.version_id.as_deref(), Some("6.10"));
        assert_eq!(facts.version_major, Some(6));
        assert_eq!(facts.version_codename.as_deref(), Some("Final"));
        assert_eq!(facts.family, Family::Rhel);
    }

    /// Builds a host root from (path, content) pairs; content `@target`
    /// makes a symlink.
    fn host(files: &[(&str, &str)]) -> (tempfile::TempDir, HostRoot) {
        let dir = tempfile::tempdir().unwrap();
        for (rel, content) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            match content.strip_prefix('@') {
                Some(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
                None => std::fs::write(&path, content).unwrap(),
            }
        }
        let root = HostRoot::open(dir.path()).unwrap();
        (dir, root)
    }

    fn detect(files: &[(&str, &str)]) -> (OsFacts, Vec<String>) {
        let (_dir, root) = host(files);
        let mut warnings = Vec::new();
        (gather(&root, &mut warnings), warnings)
    }

    #[test]
    fn oracle_release_beats_its_rhel_claiming_redhat_release() {
        let (facts, _) = detect(&[
            ("etc/oracle-release", "Oracle Linux Server release 6.10\n"),
            ("etc/system-release", "@oracle-release"),
            (
                "etc/redhat-release",
                "Red Hat Enterprise Linux Server release 6.10 (Santiago)\n",
            ),
        ]);
        assert_eq!(facts.id, "ol");
        assert_eq!(facts.version_id.as_deref(), Some("6.10"));
        assert_eq!(facts.source.as_deref(), Some("/etc/oracle-release"));
    }

    #[test]
    fn rocky_centos_release_symlink_is_read_by_content() {
        let (facts, _) = detect(&[
            ("etc/rocky-release", "Rocky Linux release 8.3\n"),
            ("etc/centos-release", "@rocky-release"),
            ("etc/redhat-release", "@rocky-release"),
        ]);
        assert_eq!(facts.id, "rocky");
        assert_eq!(facts.source_resolved.as_deref(), Some("/etc/rocky-release"));
    }

    #[test]
    fn centos_6_with_only_redhat_release() {
        let (facts, warnings) = detect(&[("etc/redhat-release", "CentOS release 6.10 (Final)\n")]);
        assert_eq!(facts.id, "centos");
        assert_eq!(facts.version_id.as_deref(), Some("6.10"));
        assert_eq!(facts.family, Family::Rhel);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn etc_os_release_wins_and_is_never_merged() {
        let (facts, _) = detect(&[
            ("etc/os-release", "ID=debian\n"),
            (
                "usr/lib/os-release",
                "ID=debian\nVERSION_ID=12\nNAME=Debian\n",
            ),
        ]);
        assert_eq!(facts.version_id, None);
        assert_eq!(facts.name, None);
        assert_eq!(facts.source.as_deref(), Some("/etc/os-release"));
    }

    #[test]
    fn unrecognised_legacy_product_is_unknown_with_its_text() {
        let (facts, warnings) = detect(&[("etc/redhat-release", "Frobnix OS release 3.1 (Zed)\n")]);
        assert_eq!(facts.id, UNKNOWN_ID);
        assert_eq!(facts.version_id.as_deref(), Some("3.1"));
        assert_eq!(
            facts.pretty_name.as_deref(),
            Some("Frobnix OS release 3.1 (Zed)")
        );
        assert!(
            warnings.iter().any(|w| w.contains("OS unknown")),
            "{warnings:?}"
        );
    }

    /// Every release file path detection may read, filled with arbitrary
    /// bytes: detection must neither panic nor fail, and must still produce
    /// a well-formed identity.
    const ALL_RELEASE_FILES: &[&str] = &[
        "etc/os-release",
        "usr/lib/os-release",
        "etc/oracle-release",
        "etc/centos-release",
        "etc/system-release",
        "etc/redhat-release",
        "etc/SuSE-release",
        "etc/alpine-release",
        "etc/lsb-release",
        "etc/debian_version",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_release_files_never_break_detection(
            files in proptest::collection::vec(
                (0..ALL_RELEASE_FILES.len(), proptest::collection::vec(any::<u8>(), 0..300)),
                0..6,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            for (index, bytes) in &files {
                let path = dir.path().join(ALL_RELEASE_FILES[*index]);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, bytes).unwrap();
            }
            let root = HostRoot::open(dir.path()).unwrap();
            let mut warnings = Vec::new();
            let facts = gather(&root, &mut warnings);
            prop_assert!(!facts.id.is_empty());
            prop_assert!(facts.id_like.iter().all(|l| !l.is_empty() && !l.contains(char::is_whitespace)));
            prop_assert!(facts.fields.keys().all(|k| !k.is_empty()));
            if facts.source.is_none() {
                prop_assert_eq!(facts.id.as_str(), UNKNOWN_ID);
            }
            // The report must serialise (no invalid strings reach JSON).
            prop_assert!(serde_json::to_string(&facts).is_ok());
        }

        #[test]
        fn legacy_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            for &(_, format) in legacy::LEGACY_FILES {
                if let Some(release) = legacy::parse(format, &bytes) {
                    let _ = classify_identity(&identity_from_legacy(&release), false);
                }
            }
        }
    }
}
