//! Our own host roots (`tests/fixtures/detect-host/<case>/rootfs`, built
//! from the distributions' published os-release files) run through the
//! binary and compared with their golden `expected.json`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{host_part, run_on};
use crate::harness;

fn own_cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(harness::fixtures("detect-host"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.join("rootfs").is_dir())
        .collect();
    cases.sort();
    cases
}

#[test]
fn own_host_roots_match_their_golden_reports() {
    let cases = own_cases();
    assert!(cases.len() >= 18, "fixture cases missing: {cases:?}");
    let update = std::env::var_os("NODEGUARD_UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let got = host_part(&run_on(&case.join("rootfs")));
        let golden = case.join("expected.json");
        if update {
            let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
            std::fs::write(&golden, text).unwrap();
            continue;
        }
        let want: Value = serde_json::from_str(
            &std::fs::read_to_string(&golden)
                .unwrap_or_else(|e| panic!("{}: {e}", golden.display())),
        )
        .unwrap();
        if got != want {
            failures.push(format!(
                "{}\n--- want\n{want:#}\n--- got\n{got:#}",
                case.display()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// The headline facts of the own cases, stated once more by hand so a
/// careless golden update cannot hide a regression in them.
#[test]
fn own_host_roots_headline_facts() {
    // (case, id, version_id, family, package format, manager, immutable)
    type Headline = (
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static str,
        &'static str,
        &'static str,
        bool,
    );
    #[rustfmt::skip]
    let cases: &[Headline] = &[
        ("alpine-3.20", "alpine", Some("3.20.7"), "alpine", "apk", "apk", false),
        ("amazon-linux-2023", "amzn", Some("2023"), "rhel", "rpm", "dnf", false),
        ("fedora-coreos-34", "fedora", Some("34"), "rhel", "rpm", "rpm-ostree", true),
        ("rhcos-4.13", "rhcos", Some("4.13"), "rhel", "rpm", "rpm-ostree", true),
        ("rhcos-rhel-10", "rhel", Some("10.1"), "rhel", "rpm", "rpm-ostree", true),
        ("bottlerocket-1.47", "bottlerocket", Some("1.47.0"), "other", "none", "none", true),
        ("talos-1.8", "talos", Some("v1.8.3"), "other", "none", "none", true),
        ("cos-97", "cos", Some("97"), "other", "none", "none", true),
        ("azurelinux-3", "azurelinux", Some("3.0"), "other", "rpm", "tdnf", false),
        ("azurelinux-2-mariner", "mariner", Some("2.0"), "other", "rpm", "tdnf", false),
        ("ubuntu-22.04", "ubuntu", Some("22.04"), "debian", "deb", "apt", false),
        ("ubuntu-24.04", "ubuntu", Some("24.04"), "debian", "deb", "apt", false),
        ("debian-12", "debian", Some("12"), "debian", "deb", "apt", false),
        ("absolute-symlink-os-release", "ubuntu", Some("24.04"), "debian", "deb", "apt", false),
        ("escapes-and-comments", "example-linux", Some("9.4"), "rhel", "rpm", "dnf", false),
        ("garbage-etc-os-release", "sles", Some("15.6"), "suse", "rpm", "zypper", false),
        ("garbage-around-valid-id", "debian", Some("12"), "debian", "deb", "apt", false),
        ("no-release-files", "unknown", None, "other", "none", "none", false),
        ("unknown-os", "frobnix", Some("0.9"), "other", "rpm", "zypper", false),
    ];
    let root = harness::fixtures("detect-host");
    for &(case, id, version_id, family, format, manager, immutable) in cases {
        let doc = run_on(&root.join(case).join("rootfs"));
        let os = &doc["os"];
        assert_eq!(os["id"], id, "{case}");
        assert_eq!(os["version_id"].as_str(), version_id, "{case}");
        assert_eq!(os["family"], family, "{case}");
        assert_eq!(os["immutable"], immutable, "{case}");
        assert_eq!(doc["package"]["format"], format, "{case}");
        assert_eq!(doc["package"]["manager"], manager, "{case}");
    }
}

#[test]
fn absolute_symlink_is_not_followed_to_this_machine() {
    let rootfs = harness::fixtures("detect-host").join("absolute-symlink-os-release/rootfs");
    let link = std::fs::read_link(rootfs.join("etc/os-release"))
        .expect("the fixture's etc/os-release must be a symlink (check the checkout kept it)");
    assert_eq!(link, Path::new("/usr/lib/os-release"));
    let doc = run_on(&rootfs);
    assert_eq!(doc["os"]["id"], "ubuntu");
    assert_eq!(doc["os"]["source"], "/etc/os-release");
    assert_eq!(doc["os"]["source_resolved"], "/usr/lib/os-release");
    // Had the link been followed by the kernel, this machine's own file
    // would have been read; the test only discriminates when that differs.
    let own = std::fs::read_to_string("/usr/lib/os-release").unwrap_or_default();
    if own.lines().any(|l| l == "ID=ubuntu") {
        eprintln!("note: this machine is Ubuntu too; the absolute-link test cannot tell");
    }
}

#[test]
fn escapes_comments_and_unknown_keys_are_parsed_like_systemd() {
    let doc = run_on(&harness::fixtures("detect-host").join("escapes-and-comments/rootfs"));
    let fields = &doc["os"]["fields"];
    assert_eq!(fields["NAME"], "Example \"Quoted\" Linux");
    assert_eq!(
        fields["VERSION"],
        "9.4 ($HOME `tick` back\\slash \\n stays)"
    );
    assert_eq!(fields["PRETTY_NAME"], "Example Linux 9.4");
    assert_eq!(fields["VARIANT_ID"], "server");
    assert_eq!(
        fields["BUG_REPORT_URL"],
        "https://example.invalid/bugs#contact_us"
    );
    assert_eq!(fields["EXAMPLE_MULTILINE"], "first line\nsecond line");
    assert_eq!(fields["ID_LIKE_TRAP"], "nope");
    assert_eq!(fields["VERSION_ID_EXTRA"], "nope");
    assert_eq!(fields["LAST_LINE"], "no-final-newline");
    assert_eq!(doc["os"]["id_like"], json!(["rhel", "centos", "fedora"]));
    assert_eq!(doc["os"]["version_id"], "9.4");
    let warnings = doc["warnings"].to_string();
    assert!(
        warnings.contains("line 17: line without '=' ignored"),
        "{warnings}"
    );
}

#[test]
fn garbage_release_files_warn_and_fall_back() {
    let doc = run_on(&harness::fixtures("detect-host").join("garbage-etc-os-release/rootfs"));
    assert_eq!(doc["os"]["source"], "/usr/lib/os-release");
    let warnings = doc["warnings"].to_string();
    assert!(
        warnings.contains("/etc/os-release has no ID; ignored"),
        "{warnings}"
    );
    assert!(warnings.contains("invalid UTF-8"), "{warnings}");
}

#[test]
fn no_release_files_is_unknown_not_this_machine() {
    let doc = run_on(&harness::fixtures("detect-host").join("no-release-files/rootfs"));
    assert_eq!(doc["os"]["id"], "unknown");
    assert_eq!(doc["os"]["source"], Value::Null);
    assert_eq!(doc["package"]["manager"], "none");
    assert!(doc["warnings"].to_string().contains("OS unknown"));
}
