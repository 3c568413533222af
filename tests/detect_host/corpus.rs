//! Ansible's distribution-facts corpus (49 real hosts), each materialised as
//! a host root and detected through the library; checked against a reviewed
//! table and cross-checked with Ansible's own answer.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use serde_json::Value;

use super::detect_lib;
use crate::harness::{self, TestDir};

/// Writes a corpus entry's `input` files under `dir`. When a host had both
/// os-release files with the same text, `/etc/os-release` becomes the
/// relative symlink real hosts use, so the corpus also exercises links.
fn materialise(entry: &Value, dir: &TestDir) {
    let input = entry["input"].as_object().expect("input object");
    for (path, text) in input {
        let rel = path.trim_start_matches('/');
        if rel == "etc/os-release"
            && input.get("/usr/lib/os-release") == Some(text)
            && !text.as_str().unwrap_or_default().is_empty()
        {
            std::fs::create_dir_all(dir.join("etc")).unwrap();
            symlink("../usr/lib/os-release", dir.join(rel)).unwrap();
            continue;
        }
        dir.write(rel, text.as_str().expect("file text"));
    }
}

/// One reviewed expectation for a corpus host.
struct Expect {
    fixture: &'static str,
    id: &'static str,
    version_id: Option<&'static str>,
    family: &'static str,
    manager: &'static str,
    immutable: bool,
    source: &'static str,
}

const fn e(
    fixture: &'static str,
    id: &'static str,
    version_id: Option<&'static str>,
    family: &'static str,
    manager: &'static str,
    immutable: bool,
    source: &'static str,
) -> Expect {
    Expect {
        fixture,
        id,
        version_id,
        family,
        manager,
        immutable,
        source,
    }
}

const ETC: &str = "/etc/os-release";
const USR: &str = "/usr/lib/os-release";

/// Reviewed by hand against each fixture's files (not generated from our
/// output). `manager` is what the OS uses; the corpus has no binaries, so
/// `manager_present` is false everywhere and a warning says so.
#[rustfmt::skip]
const CORPUS: &[Expect] = &[
    e("almalinux_8_3_beta.json", "almalinux", Some("8.3"), "rhel", "dnf", false, ETC),
    e("alp-dolomite.json", "alp-dolomite", Some("1.0"), "suse", "transactional-update", true, ETC),
    e("amazon_linux_2.json", "amzn", Some("2"), "rhel", "yum", false, ETC),
    e("amazon_linux_2016.03.json", "amzn", Some("2016.03"), "rhel", "yum", false, ETC),
    e("amazon_linux_2018.03.json", "amzn", Some("2018.03"), "rhel", "yum", false, ETC),
    // Empty /etc/os-release: the legacy system-release decides.
    e("amazon_linux_2_karoo.json", "amzn", Some("2"), "rhel", "yum", false, "/etc/system-release"),
    e("amazon_linux_release_2.json", "amzn", Some("2"), "rhel", "yum", false, "/etc/system-release"),
    // No os-release; the lsb-release holds only LSB_VERSION and is skipped.
    e("centos_6.7.json", "centos", Some("6.7"), "rhel", "yum", false, "/etc/system-release"),
    e("centos_8_1.json", "centos", Some("8"), "rhel", "dnf", false, ETC),
    e("centos_stream_8.json", "centos", Some("8"), "rhel", "dnf", false, ETC),
    e("clearlinux_26580.json", "clear-linux-os", Some("26580"), "other", "none", false, ETC),
    e("clearlinux_28120.json", "clear-linux-os", Some("28120"), "other", "none", false, ETC),
    e("core_os_1911.5.0.json", "coreos", Some("1911.5.0"), "other", "none", true, USR),
    e("core_os_976.0.0.json", "coreos", Some("976.0.0"), "other", "none", true, ETC),
    e("debian_10.json", "debian", Some("10"), "debian", "apt", false, ETC),
    e("debian_7.9.json", "debian", Some("7"), "debian", "apt", false, ETC),
    e("debian_stretch_sid.json", "debian", None, "debian", "apt", false, ETC),
    e("eurolinux_8.5.json", "eurolinux", Some("8.5"), "rhel", "dnf", false, ETC),
    e("fedora_22.json", "fedora", Some("22"), "rhel", "dnf", false, ETC),
    e("fedora_25.json", "fedora", Some("25"), "rhel", "dnf", false, ETC),
    e("fedora_31.json", "fedora", Some("31"), "rhel", "dnf", false, ETC),
    e("flatcar_2492.0.0.json", "flatcar", Some("2492.0.0"), "other", "none", true, USR),
    e("flatcar_3139.2.0.json", "flatcar", Some("3139.2.0"), "other", "none", true, ETC),
    e("kylin_linux_advanced_server_v10.json", "kylin", Some("V10"), "rhel", "dnf", false, ETC),
    e("miracle_linux_9.json", "miraclelinux", Some("9.2"), "rhel", "dnf", false, ETC),
    e("openeuler_20.03.json", "openEuler", Some("20.03"), "rhel", "dnf", false, ETC),
    e("opensuse-microos-20241205.json", "opensuse-microos", Some("20241205"), "suse", "transactional-update", true, ETC),
    e("opensuse_13.2.json", "opensuse", Some("13.2"), "suse", "zypper", false, ETC),
    e("opensuse_leap_15.0.json", "opensuse-leap", Some("15.0"), "suse", "zypper", false, ETC),
    e("opensuse_leap_15.1.json", "opensuse-leap", Some("15.1"), "suse", "zypper", false, ETC),
    e("opensuse_leap_42.1.json", "opensuse", Some("42.1"), "suse", "zypper", false, ETC),
    e("opensuse_tumbleweed_20160917.json", "opensuse", Some("20160917"), "suse", "zypper", false, ETC),
    e("redhat_6.7.json", "rhel", Some("6.7"), "rhel", "yum", false, "/etc/system-release"),
    e("redhat_7.2.json", "rhel", Some("7.2"), "rhel", "yum", false, ETC),
    e("redhat_7.7.json", "rhel", Some("7.7"), "rhel", "yum", false, ETC),
    e("rockylinux_8_3.json", "rocky", Some("8.3"), "rhel", "dnf", false, ETC),
    e("sl-micro.json", "sl-micro", Some("6.0"), "suse", "transactional-update", true, ETC),
    e("sles_11.3.json", "sles", Some("11.3"), "suse", "zypper", false, "/etc/SuSE-release"),
    e("sles_11.4.json", "sles", Some("11.4"), "suse", "zypper", false, ETC),
    e("sles_12_sp0.json", "sles", Some("12"), "suse", "zypper", false, ETC),
    e("sles_12_sp1.json", "sles", Some("12.1"), "suse", "zypper", false, ETC),
    e("sles_15_6.json", "sles", Some("15.6"), "suse", "zypper", false, ETC),
    e("sles_16_0.json", "sles", Some("16.0"), "suse", "zypper", false, ETC),
    e("tencentos_3_1.json", "tencentos", Some("3.1"), "rhel", "dnf", false, ETC),
    e("ubuntu_10.04_guess.json", "ubuntu", Some("10.04"), "debian", "apt", false, "/etc/lsb-release"),
    e("ubuntu_12.04.json", "ubuntu", Some("12.04"), "debian", "apt", false, ETC),
    e("ubuntu_14.04.json", "ubuntu", Some("14.04"), "debian", "apt", false, ETC),
    e("ubuntu_16.04.json", "ubuntu", Some("16.04"), "debian", "apt", false, ETC),
    e("ubuntu_18.04.json", "ubuntu", Some("18.04"), "debian", "apt", false, ETC),
];

/// Where our `version_id` deliberately differs from Ansible's
/// `distribution_version`: we report `VERSION_ID` verbatim, Ansible adds
/// precision from other files (or, for sid, from its mocked `distro`).
const VERSION_DIFFERENCES: &[(&str, Option<&str>, &str)] = &[
    ("centos_8_1.json", Some("8"), "8.1"),
    ("debian_7.9.json", Some("7"), "7.9"),
    ("debian_stretch_sid.json", None, "9.8"),
];

/// Ansible's `os_family` in our vocabulary. Ansible names Flatcar, Clear
/// Linux and CoreOS as their own families (or none); all are `other` here.
fn ansible_family(result: &Value) -> &'static str {
    match result["os_family"].as_str() {
        Some("RedHat") => "rhel",
        Some("Debian") => "debian",
        Some("Suse") => "suse",
        Some("Alpine") => "alpine",
        _ => "other",
    }
}

fn corpus_dir() -> PathBuf {
    harness::shared_fixtures().join("os-release/ansible")
}

#[test]
fn every_corpus_host_has_a_reviewed_expectation() {
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap_or_else(|e| panic!("{}: {e}", corpus_dir().display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS.iter().map(|x| x.fixture.to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    assert_eq!(on_disk.len(), 49);
}

#[test]
fn corpus_hosts_are_detected_as_reviewed() {
    let mut failures = Vec::new();
    for expect in CORPUS {
        let text = std::fs::read_to_string(corpus_dir().join(expect.fixture)).unwrap();
        let entry: Value = serde_json::from_str(&text).unwrap();
        let dir = TestDir::new("detect-host-corpus");
        materialise(&entry, &dir);
        let facts = detect_lib(dir.path());
        let got = (
            facts.os.id.as_str(),
            facts.os.version_id.as_deref(),
            facts.os.family.as_str(),
            facts.package.manager.as_str(),
            facts.os.immutable,
            facts.os.source.as_deref().unwrap_or("-"),
        );
        let want = (
            expect.id,
            expect.version_id,
            expect.family,
            expect.manager,
            expect.immutable,
            expect.source,
        );
        if got != want {
            failures.push(format!("{}: got {got:?}, want {want:?}", expect.fixture));
        }
        // Cross-check with Ansible's answer for the same machine.
        let result = &entry["result"];
        if ansible_family(result) != facts.os.family.as_str() {
            failures.push(format!(
                "{}: family {} but Ansible says {}",
                expect.fixture,
                facts.os.family.as_str(),
                result["os_family"]
            ));
        }
        let ansible_version = result["distribution_version"].as_str().unwrap_or_default();
        let documented = VERSION_DIFFERENCES
            .iter()
            .find(|(f, _, _)| *f == expect.fixture);
        match documented {
            Some(&(_, ours, theirs))
                if facts.os.version_id.as_deref() != ours || ansible_version != theirs =>
            {
                failures.push(format!(
                    "{}: documented version difference no longer holds",
                    expect.fixture
                ));
            }
            None if facts.os.version_id.as_deref() != Some(ansible_version) => {
                failures.push(format!(
                    "{}: version_id {:?} but Ansible says {ansible_version:?}",
                    expect.fixture, facts.os.version_id
                ));
            }
            _ => {}
        }
        // The corpus has no package manager binaries.
        if facts.package.manager_present {
            failures.push(format!(
                "{}: manager_present without a binary",
                expect.fixture
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn corpus_os_release_fields_match_the_files() {
    // Our parser against the corpus: every key Ansible's `distro` parsed
    // (lower-cased) must have the same value in our `fields`.
    let mut compared = 0;
    for expect in CORPUS {
        let text = std::fs::read_to_string(corpus_dir().join(expect.fixture)).unwrap();
        let entry: Value = serde_json::from_str(&text).unwrap();
        let Some(theirs) = entry["distro"]["os_release_info"].as_object() else {
            continue;
        };
        let dir = TestDir::new("detect-host-fields");
        materialise(&entry, &dir);
        let facts = detect_lib(dir.path());
        if !expect.source.ends_with("os-release") {
            continue;
        }
        let ours: BTreeMap<String, &String> = facts
            .os
            .fields
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        for (key, value) in theirs {
            // `distro` adds derived keys (`codename`) that are not in the file.
            let Some(ours) = ours.get(key) else { continue };
            assert_eq!(
                Some(ours.as_str()),
                value.as_str(),
                "{}: {key}",
                expect.fixture
            );
            compared += 1;
        }
    }
    assert!(compared > 200, "only {compared} fields compared");
}

#[test]
fn corpus_symlinked_os_release_resolves_inside_the_root() {
    let text = std::fs::read_to_string(corpus_dir().join("ubuntu_18.04.json")).unwrap();
    let entry: Value = serde_json::from_str(&text).unwrap();
    let dir = TestDir::new("detect-host-link");
    materialise(&entry, &dir);
    assert!(std::fs::symlink_metadata(dir.join("etc/os-release"))
        .unwrap()
        .file_type()
        .is_symlink());
    let facts = detect_lib(dir.path());
    assert_eq!(facts.os.source.as_deref(), Some("/etc/os-release"));
    assert_eq!(
        facts.os.source_resolved.as_deref(),
        Some("/usr/lib/os-release")
    );
}
