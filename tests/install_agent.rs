//! Black-box tests for `install-agent`: plans on fixture host roots (no
//! root needed), and end-to-end runs against real systemd nodes booted
//! with systemd-nspawn (root only; see `e2e`).

pub(crate) mod agent_pkg;
mod e2e;
mod node;
mod standin;
mod vendors;

use std::fs;
use std::path::Path;

use crate::harness::{self, run, tool, TestDir};

/// A host root holding an os-release file and (empty) host programs.
fn host_with_os_release(dir: &TestDir, text: &str, programs: &[&str]) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    dir.write("host/etc/os-release", text);
    for program in programs {
        let path = dir.write(format!("host{program}"), "#!/bin/sh\nexit 0\n");
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir.join("host")
}

/// The test agent's profile over two package files that exist (plan only
/// hashes them at install time) with their real sums.
fn profile_fixture(dir: &TestDir) -> std::path::PathBuf {
    let deb = dir.write("packages/tinyagent.deb", "a deb");
    let rpm = dir.write("packages/tinyagent.rpm", "an rpm");
    agent_pkg::profile(
        dir.path(),
        "tinyagent.toml",
        "1.0.0",
        &agent_pkg::Source::Path(&deb, &agent_pkg::sha256(&deb)),
        &agent_pkg::Source::Path(&rpm, &agent_pkg::sha256(&rpm)),
    )
}

#[test]
fn plan_on_debian_root_chooses_the_deb_and_lists_a_fresh_install() {
    let dir = TestDir::new("ia-plan-deb");
    let os = fs::read_to_string(
        harness::fixtures("install-agent").join("os-release/debian-12.os-release"),
    )
    .unwrap();
    let host = host_with_os_release(&dir, &os, &["/usr/bin/apt-get", "/usr/bin/dpkg"]);
    let profile = profile_fixture(&dir);
    dir.write("creds/token", "plan-canary-token\n");
    let r = run(tool("install-agent")
        .args(["plan", "--profile"])
        .arg(&profile)
        .arg("--host-root")
        .arg(&host)
        .arg("--credentials-dir")
        .arg(dir.join("creds")));
    r.assert_code(0);
    let j = r.json();
    assert_eq!(j["tool"], "install-agent");
    assert_eq!(j["status"], "planned");
    assert_eq!(j["host"]["os_id"], "debian");
    assert_eq!(j["package"]["format"], "deb");
    assert_eq!(j["package"]["arch"], agent_pkg::arch());
    assert_eq!(j["package"]["version"], "1.0.0");
    assert_eq!(j["package"]["installer"], "apt-get");
    let steps: Vec<&str> = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["install", "configure", "enable", "activate", "start"]
    );
    assert!(j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "planned"));
    assert!(!r.stdout.contains("plan-canary-token") && !r.stderr.contains("plan-canary-token"));
}

#[test]
fn plan_of_the_placeholder_profile_names_the_values_to_set() {
    let dir = TestDir::new("ia-plan-not-configured");
    let os = fs::read_to_string(
        harness::fixtures("install-agent").join("os-release/debian-12.os-release"),
    )
    .unwrap();
    let host = host_with_os_release(&dir, &os, &["/usr/bin/apt-get", "/usr/bin/dpkg"]);
    let profile = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../install-agent/profiles/qualys-cloud-agent.toml");
    dir.write("creds/customer_id", "plan-canary-customer\n");
    let r = run(tool("install-agent")
        .args(["plan", "--profile"])
        .arg(&profile)
        .arg("--host-root")
        .arg(&host)
        .arg("--credentials-dir")
        .arg(dir.join("creds")));
    r.assert_code(0);
    let j = r.json();
    assert_eq!(j["status"], "not_configured", "{}", r.stdout);
    let gaps = j["not_configured"].as_array().unwrap();
    let whats: Vec<&str> = gaps.iter().map(|g| g["what"].as_str().unwrap()).collect();
    assert_eq!(whats.len(), 3, "{whats:?}");
    assert!(whats[0].contains("placeholder"), "{whats:?}");
    assert!(whats[1].contains("not in the image"), "{whats:?}");
    assert!(whats[2].contains("activation_id"), "{whats:?}");
    let sets: Vec<&str> = gaps
        .iter()
        .flat_map(|g| g["set"].as_array().unwrap())
        .map(|s| s.as_str().unwrap())
        .collect();
    for needle in [
        "bootstrap.packages (an entry {format: deb, arch: ",
        "profile qualys-cloud-agent [[package]] deb/",
        "credentials.activationId",
        "credentials.existingSecret with the key activation_id or ACTIVATION_ID",
    ] {
        assert!(
            sets.iter().any(|s| s.contains(needle)),
            "{needle}: {sets:?}"
        );
    }
    assert!(j["reason"]
        .as_str()
        .unwrap()
        .starts_with("not configured: "));
    assert!(!r.stdout.contains("plan-canary-customer"));
}

#[test]
fn plan_refuses_immutable_and_unknown_hosts_with_a_reason() {
    for (fixture, cause_word) in [
        ("bottlerocket-1.20.os-release", "immutable"),
        ("talos-1.7.os-release", "immutable"),
        ("fedora-coreos-40.os-release", "immutable"),
    ] {
        let dir = TestDir::new("ia-plan-immutable");
        let os = fs::read_to_string(
            harness::fixtures("install-agent")
                .join("os-release")
                .join(fixture),
        )
        .unwrap();
        let host = host_with_os_release(&dir, &os, &[]);
        let profile = profile_fixture(&dir);
        let r = run(tool("install-agent")
            .args(["plan", "--profile"])
            .arg(&profile)
            .arg("--host-root")
            .arg(&host));
        r.assert_code(0);
        let j = r.json();
        assert_eq!(j["status"], "unsupported", "{fixture}");
        assert!(
            j["reason"].as_str().unwrap().contains(cause_word),
            "{fixture}: {}",
            j["reason"]
        );
        assert_eq!(j["host"]["immutable"], true);
        assert!(j["package"].is_null());
    }
}

#[test]
fn plan_on_a_shared_fixture_rhel_root_chooses_the_rpm() {
    let dir = TestDir::new("ia-plan-rhel");
    let fixture = harness::shared_fixtures().join("os-release/ansible/rockylinux_8_3.json");
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&fixture).unwrap()).unwrap();
    // Rocky 8 prefers dnf; this root only has rpm, so rpm it is.
    let host = host_with_os_release(
        &dir,
        json["input"]["/etc/os-release"].as_str().unwrap(),
        &["/usr/bin/rpm"],
    );
    let profile = profile_fixture(&dir);
    let r = run(tool("install-agent")
        .args(["plan", "--profile"])
        .arg(&profile)
        .arg("--host-root")
        .arg(&host));
    r.assert_code(0);
    let j = r.json();
    assert_eq!(j["host"]["family"], "rhel");
    assert_eq!(j["package"]["format"], "rpm");
    assert_eq!(j["package"]["installer"], "rpm");
}

#[test]
fn invalid_profile_is_an_error_naming_the_file_and_key() {
    let dir = TestDir::new("ia-bad-profile");
    let profile = dir.write("bad.toml", "name = \"x\"\nservise = \"x\"\n");
    let r = run(tool("install-agent")
        .args(["plan", "--profile"])
        .arg(&profile)
        .arg("--host-root")
        .arg(dir.path()));
    r.assert_code(2);
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.contains("bad.toml") && r.stderr.contains("servise"),
        "{}",
        r.stderr
    );
}

#[test]
fn help_documents_exit_codes() {
    let r = run(tool("install-agent").arg("--help"));
    r.assert_code(0);
    for needle in ["Exit codes:", "sha256", "--adopt", "immutable OS"] {
        assert!(
            r.stdout.contains(needle) || r.stdout.contains(&needle.to_lowercase()),
            "{needle} missing:\n{}",
            r.stdout
        );
    }
}
