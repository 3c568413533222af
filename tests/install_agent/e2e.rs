//! End-to-end: install-agent against real systemd nodes (root only).
//!
//! Every test boots its own node from a fresh overlay of the cached rootfs
//! and runs install-agent from *outside* with `--target-pid` of the node's
//! init, exactly as the DaemonSet pod reaches the host through hostPID.
//! Nodes boot one at a time (2-core CI). Every byte install-agent prints,
//! plus the node's journal and console and the HTTPS server's log, is
//! collected and searched for the credential values at the end of each test.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod deb_lifecycle;
mod hardening;

use super::agent_pkg::{self, Source};
use super::node::{rootfs, Node};
use crate::harness::{self, run, tool, RunResult, TestDir};

/// The credential canaries: none may appear in any output or log.
const TOKEN: &str = "ngcanary-tok-7Qx2Z9";
const PROXY_PASSWORD: &str = "ngcanary-proxypw-41vB";
/// A variable of the "pod" that must not reach host processes.
const POD_ENV_SECRET: &str = "ngcanary-podenv-k3M8";

/// Serialises node tests: one booted node at a time on a 2-core machine.
fn node_slot() -> std::sync::MutexGuard<'static, ()> {
    harness::exclusive("install-agent-node")
}

/// Everything the test saw, for the leak check.
#[derive(Default)]
struct Transcript(Vec<(String, String)>);

impl Transcript {
    fn add(&mut self, what: &str, text: &str) {
        self.0.push((what.to_owned(), text.to_owned()));
    }

    /// Run like `harness::run` (stdin closed, `NODEGUARD_*` of the caller's
    /// shell removed) but at `RUST_LOG=debug`, so that every command line
    /// and decision install-agent logs is searched for secrets too.
    fn run(&mut self, what: &str, cmd: &mut Command) -> RunResult {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("NODEGUARD_") {
                cmd.env_remove(&key);
            }
        }
        // Downloads go to 127.0.0.1 only: no proxy of the machine's applies
        // unless the test sets one.
        for var in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            if !cmd.get_envs().any(|(k, _)| k == var) {
                cmd.env_remove(var);
            }
        }
        cmd.env("RUST_LOG", "debug")
            .env("POD_SECRET_ENV", POD_ENV_SECRET);
        let out = cmd
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
        let r = RunResult {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.add(&format!("{what} stdout"), &r.stdout);
        self.add(&format!("{what} stderr"), &r.stderr);
        r
    }

    fn assert_no_secrets(&self) {
        for (what, text) in &self.0 {
            for secret in [TOKEN, PROXY_PASSWORD, POD_ENV_SECRET] {
                assert!(
                    !text.contains(secret),
                    "credential {secret} leaked into {what}:\n{text}"
                );
            }
        }
    }
}

/// `install-agent <command>` against a node.
fn ia(node: &Node, command: &str, profile: &Path, creds: &Path, extra: &[&str]) -> Command {
    let mut cmd = tool("install-agent");
    // harness::run strips NODEGUARD_* and RUST_LOG; set what we need after.
    cmd.arg(command)
        .arg("--profile")
        .arg(profile)
        .arg("--credentials-dir")
        .arg(creds)
        .arg("--target-pid")
        .arg(node.init.to_string())
        .args(extra);
    cmd
}

/// A v1.0.0 test agent .deb taken from a path, its profile (with no usable
/// rpm entry) and the credentials directory: the setup of the tests that
/// exercise something other than fetching.
fn deb_from_path(dir: &TestDir) -> (PathBuf, PathBuf) {
    let (deb, sum) = agent_pkg::build_deb(dir.path(), "1.0.0");
    let none = "0".repeat(64);
    let profile = agent_pkg::profile(
        dir.path(),
        "p.toml",
        "1.0.0",
        &Source::Path(&deb, &sum),
        &Source::Path(Path::new("/x.rpm"), &none),
    );
    (profile, write_creds(dir, false))
}

fn write_creds(dir: &TestDir, with_proxy: bool) -> PathBuf {
    dir.write("creds/token", format!("{TOKEN}\n"));
    if with_proxy {
        dir.write(
            "creds/https_proxy",
            format!("http://agentuser:{PROXY_PASSWORD}@proxy.invalid:3128\n"),
        );
    }
    dir.join("creds")
}

fn step_names(j: &Value) -> Vec<String> {
    j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_installed(node: &Node, version: &str) {
    let (code, out) = node.sh("dpkg-query -W -f='${db:Status-Abbrev} ${Version}' tinyagent");
    assert_eq!(
        (code, out.trim()),
        (0, format!("ii  {version}").as_str()),
        "dpkg-query"
    );
}

fn assert_service_active(node: &Node) {
    let (_, out) = node.sh("systemctl is-enabled tinyagent; systemctl is-active tinyagent");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["enabled", "active"],
        "unit state"
    );
}

fn assert_config(node: &Node, with_proxy: bool) {
    let path = node.path("/etc/tinyagent/agent.conf");
    let meta = fs::metadata(&path).expect("agent.conf");
    assert_eq!(meta.mode() & 0o7777, 0o600, "config mode");
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "config owner");
    let text = fs::read_to_string(&path).unwrap();
    let mut want = format!("token={TOKEN}\nserver=https://collector.invalid/ingest\n");
    if with_proxy {
        want.push_str(&format!(
            "proxy=http://agentuser:{PROXY_PASSWORD}@proxy.invalid:3128\n"
        ));
    }
    assert_eq!(text, want);
}

fn assert_clean_host_env(node: &Node) {
    for file in [
        "/var/lib/tinyagent/agent-env",
        "/var/lib/tinyagent/activate-env",
    ] {
        let env = fs::read_to_string(node.path(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            !env.contains(POD_ENV_SECRET) && !env.contains("RUST_LOG") && !env.contains(TOKEN),
            "{file}:\n{env}"
        );
    }
}

fn finish(t: &mut Transcript, node: &Node) {
    t.add("node journal", &node.journal());
    t.add("node console", &node.console_log());
    t.assert_no_secrets();
}

#[test]
fn a_run_killed_mid_install_is_recovered_by_the_next() {
    skip_unless_root!("boots a systemd node with systemd-nspawn on an overlay mount");
    let rootfs = match rootfs() {
        Ok(r) => r,
        Err(why) => return eprintln!("SKIPPED: {why}"),
    };
    let _slot = node_slot();
    let dir = TestDir::new("ia-e2e-kill");
    let mut t = Transcript::default();
    let (profile, creds) = deb_from_path(&dir);
    // The package's postinst sleeps while this marker exists.
    let node = Node::boot("kill", &rootfs, |root| {
        fs::write(root.join("etc/tinyagent-slow-postinst"), "").unwrap();
    });

    let mut cmd = ia(&node, "install", &profile, &creds, &[]);
    cmd.env("POD_SECRET_ENV", POD_ENV_SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // Kill it (as an eviction would) once the package transaction runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, active) =
            node.sh("systemctl is-active nodeguard-install-agent-tinyagent-package.service");
        if active.trim() == "active" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the install transient unit never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "install-agent ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A second run (the next pod of a rolling update) finds the host lock
    // held and gives up after --lock-timeout, changing nothing.
    let r = t.run(
        "concurrent",
        &mut ia(&node, "install", &profile, &creds, &["--lock-timeout", "0"]),
    );
    r.assert_code(4);
    assert!(
        r.stdout.is_empty() && r.stderr.contains("host lock"),
        "{}",
        r.stderr
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let record =
        fs::read_to_string(node.path("/var/lib/nodeguard/install-agent/tinyagent.json")).unwrap();
    assert!(
        record.contains("\"in_progress\": {"),
        "journal entry left by the killed run:\n{record}"
    );

    let r = t.run(
        "after kill",
        &mut ia(&node, "install", &profile, &creds, &[]),
    );
    r.assert_code(0);
    let j = r.json();
    // The package is fetched and verified in the pod first; the first
    // thing done on the host is the recovery.
    let steps = step_names(&j);
    assert_eq!(steps[..2], ["fetch", "recover"], "{}", r.stdout);
    let detail = j["steps"][1]["detail"].as_str().unwrap();
    assert!(
        detail.contains("interrupted") && detail.contains("stale staging"),
        "{detail}"
    );
    assert_installed(&node, "1.0.0");
    assert_config(&node, false);
    assert_service_active(&node);
    let record =
        fs::read_to_string(node.path("/var/lib/nodeguard/install-agent/tinyagent.json")).unwrap();
    assert!(
        record.contains("\"in_progress\": null"),
        "journal cleared:\n{record}"
    );
    let r = t.run("rerun", &mut ia(&node, "install", &profile, &creds, &[]));
    assert_eq!(r.json()["status"], "converged");
    finish(&mut t, &node);
}

#[test]
fn installs_with_only_sys_admin_sys_chroot_sys_ptrace_in_the_bounding_set() {
    skip_unless_root!("boots a systemd node and drops capabilities with setpriv");
    let rootfs = match rootfs() {
        Ok(r) => r,
        Err(why) => return eprintln!("SKIPPED: {why}"),
    };
    let _slot = node_slot();
    let dir = TestDir::new("ia-e2e-caps");
    let mut t = Transcript::default();
    let (profile, creds) = deb_from_path(&dir);
    let node = Node::boot("caps", &rootfs, |_| {});
    let bounded = |args: &[&str]| {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--bounding-set",
            "-all,+sys_admin,+sys_chroot,+sys_ptrace",
            "--",
        ])
        .arg(harness::bin("install-agent"))
        .args(args);
        cmd
    };
    let target = node.init.to_string();
    let base = [
        "--profile",
        profile.to_str().unwrap(),
        "--credentials-dir",
        creds.to_str().unwrap(),
        "--target-pid",
        &target,
    ];
    // Prove the bound holds: the tool's own capabilities are exactly these.
    let mut probe = Command::new("setpriv");
    probe.args([
        "--bounding-set",
        "-all,+sys_admin,+sys_chroot,+sys_ptrace",
        "--",
        "grep",
        "^CapEff",
        "/proc/self/status",
    ]);
    let caps = run(&mut probe);
    assert_eq!(
        caps.stdout.split_whitespace().nth(1),
        Some("00000000002c0000"),
        "{}",
        caps.stdout
    );

    let r = t.run(
        "bounded install",
        &mut bounded(&[&["install"], &base[..]].concat()),
    );
    r.assert_code(0);
    assert_eq!(r.json()["status"], "changed", "{}", r.stdout);
    assert_installed(&node, "1.0.0");
    assert_service_active(&node);
    let r = t.run(
        "bounded rerun",
        &mut bounded(&[&["install"], &base[..]].concat()),
    );
    assert_eq!(r.json()["status"], "converged");
    let r = t.run(
        "bounded uninstall",
        &mut bounded(&[&["uninstall"], &base[..]].concat()),
    );
    r.assert_code(0);
    assert_eq!(r.json()["status"], "removed");

    // The fallback for hosts without systemd: direct execution in the host
    // namespaces, with install-agent's own (here: full) privileges.
    let r = t.run(
        "direct install",
        &mut ia(
            &node,
            "install",
            &profile,
            &creds,
            &["--exec-mode", "direct"],
        ),
    );
    r.assert_code(0);
    let j = r.json();
    assert!(
        j["host"]["exec"].as_str().unwrap().ends_with("(direct)"),
        "{}",
        j["host"]["exec"]
    );
    assert_installed(&node, "1.0.0");
    assert_service_active(&node);
    finish(&mut t, &node);
}

#[test]
fn rpm_agent_on_an_rpm_flavoured_node() {
    skip_unless_root!("boots a systemd node with systemd-nspawn on an overlay mount");
    let rootfs = match rootfs() {
        Ok(r) => r,
        Err(why) => return eprintln!("SKIPPED: {why}"),
    };
    let _slot = node_slot();
    let dir = TestDir::new("ia-e2e-rpm");
    let mut t = Transcript::default();
    let (rpm, sum) = agent_pkg::build_rpm(dir.path(), "1.0.0");
    let none = "0".repeat(64);
    let profile = agent_pkg::profile(
        dir.path(),
        "p.toml",
        "1.0.0",
        &Source::Path(Path::new("/x.deb"), &none),
        &Source::Path(&rpm, &sum),
    );
    let creds = write_creds(&dir, false);
    let rhel = fs::read_to_string(
        harness::fixtures("install-agent").join("os-release/rhel-9.4.os-release"),
    )
    .unwrap();
    let node = Node::boot("rpm", &rootfs, |root| {
        // os-release says RHEL; the userland stays Debian's (no real RHEL
        // rootfs can be had offline), with an rpm database at the RHEL path.
        let _ = fs::remove_file(root.join("etc/os-release"));
        fs::write(root.join("etc/os-release"), &rhel).unwrap();
        fs::create_dir_all(root.join("var/lib/rpm")).unwrap();
    });
    let (code, out) = node.sh("rpm --dbpath /var/lib/rpm --initdb");
    assert_eq!(code, 0, "{out}");

    // Installed by someone else (a golden image, Ansible): hands off
    // unless --adopt.
    fs::copy(&rpm, node.path("/root/tinyagent.rpm")).unwrap();
    let (code, out) = node.sh("rpm --dbpath /var/lib/rpm -i /root/tinyagent.rpm");
    assert_eq!(code, 0, "{out}");
    let r = t.run(
        "foreign install",
        &mut ia(&node, "install", &profile, &creds, &[]),
    );
    r.assert_code(6);
    assert_eq!(r.json()["status"], "not-owned");
    assert!(
        !node.path("/etc/tinyagent/agent.conf").exists(),
        "nothing changed"
    );
    let r = t.run(
        "foreign uninstall",
        &mut ia(&node, "uninstall", &profile, &creds, &[]),
    );
    r.assert_code(6);
    let r = t.run(
        "adopt",
        &mut ia(&node, "install", &profile, &creds, &["--adopt"]),
    );
    r.assert_code(0);
    assert_eq!(
        step_names(&r.json()),
        ["configure", "enable", "activate", "start", "verify"],
        "{}",
        r.stdout
    );

    let r = t.run(
        "rpm status",
        &mut ia(&node, "status", &profile, &creds, &[]),
    );
    r.assert_code(0);
    let j = r.json();
    assert_eq!(j["host"]["os_id"], "rhel");
    assert_eq!(j["package"]["format"], "rpm");
    assert_eq!(
        j["package"]["installer"], "rpm",
        "no dnf/yum on this node: rpm itself"
    );
    let (code, out) = node.sh("rpm --dbpath /var/lib/rpm -q tinyagent");
    assert_eq!((code, out.trim()), (0, "tinyagent-1.0.0-1.noarch"));
    assert_config(&node, false);
    assert_service_active(&node);
    let r = t.run(
        "rpm rerun",
        &mut ia(&node, "install", &profile, &creds, &[]),
    );
    assert_eq!(r.json()["status"], "converged", "{}", r.stdout);
    let r = t.run(
        "rpm uninstall",
        &mut ia(&node, "uninstall", &profile, &creds, &[]),
    );
    r.assert_code(0);
    let (code, _) = node.sh("rpm --dbpath /var/lib/rpm -q tinyagent");
    assert_eq!(code, 1, "rpm removed");
    assert!(!node.path("/etc/tinyagent/agent.conf").exists());
    finish(&mut t, &node);
}
