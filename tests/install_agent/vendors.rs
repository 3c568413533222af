//! The shipped vendor profiles (`sysdig-agent`, `falcon-sensor`,
//! `wazuh-agent`) through their whole life on a booted systemd node, with
//! stand-in packages that implement each vendor's install interface (see
//! `standin.rs`): plan, install, converged re-run, status, a rotated
//! setting, upgrade to the stand-in's second version, uninstall (and
//! reinstall, then purge), first
//! as DEB, then — on the same node, made RPM-flavoured after the purge left
//! it clean — as RPM.
//!
//! The profile under test is the shipped file, unchanged; the stand-ins
//! replace its package list through `--packages-file` (what the chart's
//! `bootstrap.packages` renders), for both architectures: the tool must
//! pick the node's. The DEB phase reads the Secret's keys in the profile's
//! own spelling, the RPM phase in the vendor's (the `[credentials.aliases]`).
//! Packages for the other architecture are built and their metadata
//! checked; `arm64_packages_on_an_emulated_arm64_node` installs them.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::node::{rootfs, Node};
use super::standin::{self, Arch, Entry, Format, Vendor};
use crate::harness::{self, tool, RunResult, TestDir};

/// Credential canaries: none may appear in any output, log or journal.
const SYSDIG_KEY: &str = "ngcanary-sysdig-key-5Tq1";
const FALCON_CID: &str = "C0FFEE0123456789ABCDEF0123456789-4E";
const FALCON_TOKEN: &str = "ngcanary-falcon-tok-8Wz3";
const WAZUH_PASSWORD: &str = "ngcanary-wazuh-pw-2Lm7";
const SECRETS: [&str; 4] = [SYSDIG_KEY, FALCON_CID, FALCON_TOKEN, WAZUH_PASSWORD];
/// A variable of the "pod" that must not reach host processes.
const POD_ENV_SECRET: &str = "ngcanary-podenv-v9Rr";

/// The credential files of a vendor's Secret: (profile name, the vendor's
/// name for it, value).
fn credentials(vendor: Vendor) -> Vec<(&'static str, &'static str, &'static str)> {
    match vendor {
        Vendor::Sysdig => vec![
            ("access_key", "ACCESS_KEY", SYSDIG_KEY),
            ("collector", "COLLECTOR", "ingest.nodeguard.invalid"),
            ("tags", "TAGS", "cluster:ci,role:node"),
        ],
        Vendor::Falcon => vec![
            ("cid", "FALCONCTL_OPT_CID", FALCON_CID),
            (
                "provisioning_token",
                "FALCONCTL_OPT_PROVISIONING_TOKEN",
                FALCON_TOKEN,
            ),
            ("tags", "FALCONCTL_OPT_TAGS", "ci,nodeguard"),
        ],
        Vendor::Wazuh => vec![
            (
                "manager_address",
                "WAZUH_MANAGER",
                "wazuh-manager.nodeguard.invalid",
            ),
            (
                "registration_password",
                "WAZUH_REGISTRATION_PASSWORD",
                WAZUH_PASSWORD,
            ),
            ("agent_group", "WAZUH_AGENT_GROUP", "k8s-nodes"),
        ],
    }
}

/// Everything install-agent printed plus the node's journal, for the leak
/// check.
#[derive(Default)]
struct Transcript(Vec<(String, String)>);

impl Transcript {
    /// Like `harness::run` (stdin closed, the caller's `NODEGUARD_*` and
    /// proxies removed) but at `RUST_LOG=debug`, so every command line and
    /// decision install-agent logs is searched too.
    fn run(&mut self, what: &str, cmd: &mut Command) -> RunResult {
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("NODEGUARD_") || k.to_ascii_lowercase().ends_with("_proxy") {
                cmd.env_remove(&key);
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
        self.0.push((format!("{what} stdout"), r.stdout.clone()));
        self.0.push((format!("{what} stderr"), r.stderr.clone()));
        r
    }

    fn finish(mut self, node: &Node) {
        self.0.push(("node journal".into(), node.journal()));
        self.0.push(("node console".into(), node.console_log()));
        for (what, text) in &self.0 {
            for secret in SECRETS.iter().chain([&POD_ENV_SECRET]) {
                assert!(
                    !text.contains(secret),
                    "credential {secret} leaked into {what}:\n{text}"
                );
            }
        }
    }
}

fn step_names(j: &Value) -> Vec<String> {
    j["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_owned())
        .collect()
}

/// Built stand-ins: `[version index][entry]`, every format and arch.
fn build_all(dir: &Path, vendor: Vendor) -> [Vec<Entry>; 2] {
    let versions = vendor.versions();
    let build = |v: &str| {
        let mut entries = Vec::new();
        for format in [Format::Deb, Format::Rpm] {
            for arch in Arch::ALL {
                let built = standin::build(dir, vendor, v, arch, format);
                entries.push(Entry {
                    format,
                    arch,
                    built,
                });
            }
        }
        entries
    };
    [build(versions[0]), build(versions[1])]
}

/// The architecture recorded in a built package's own metadata.
fn package_arch(entry: &Entry) -> String {
    let out = match entry.format {
        Format::Deb => Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&entry.built.path)
            .arg("Architecture")
            .output(),
        Format::Rpm => Command::new("rpm")
            .args(["-qp", "--qf", "%{ARCH}"])
            .arg(&entry.built.path)
            .output(),
    }
    .expect("reading package metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Every built package says the architecture it was built for.
fn assert_arch_metadata(entries: &[Entry]) {
    for e in entries {
        let want = match e.format {
            Format::Deb => e.arch.deb(),
            Format::Rpm => e.arch.rpm(),
        };
        assert_eq!(package_arch(e), want, "{}", e.built.path.display());
    }
}

/// One vendor's node and what the phases share.
struct Life {
    vendor: Vendor,
    node: Node,
    dir: TestDir,
    creds: PathBuf,
    t: Transcript,
    arch: Arch,
}

impl Life {
    /// `install-agent <command>` with the shipped profile and `packages`
    /// as its package list.
    fn ia(&mut self, what: &str, command: &str, packages: &Path, extra: &[&str]) -> RunResult {
        let mut cmd = tool("install-agent");
        cmd.arg(command)
            .arg("--profile")
            .arg(shipped(self.vendor))
            .arg("--packages-file")
            .arg(packages)
            .arg("--credentials-dir")
            .arg(&self.creds)
            .arg("--target-pid")
            .arg(self.node.init.to_string())
            .args(extra);
        self.t.run(&format!("{:?} {what}", self.vendor), &mut cmd)
    }

    fn packages_file(&self, name: &str, entries: &[Entry]) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(&path, standin::package_tables(entries)).expect("packages file");
        path
    }

    /// `(version, arch)` of the installed package, as the node's package
    /// database reports it; `None` when it is not installed.
    fn installed(&self, format: Format) -> Option<(String, String)> {
        let pkg = self.vendor.package();
        let (code, out) = match format {
            Format::Deb => self.node.sh(&format!(
                "dpkg-query -W -f='${{db:Status-Abbrev}}|${{Version}}|${{Architecture}}' {pkg}"
            )),
            Format::Rpm => self.node.sh(&format!(
                "rpm --dbpath /var/lib/rpm -q --qf '%{{VERSION}}-%{{RELEASE}}|%{{ARCH}}' {pkg}"
            )),
        };
        if code != 0 {
            return None;
        }
        let fields: Vec<&str> = out.trim().split('|').collect();
        match (format, fields.as_slice()) {
            (Format::Deb, [status, v, a]) if status.starts_with("ii") => {
                Some(((*v).to_owned(), (*a).to_owned()))
            }
            (Format::Rpm, [v, a]) => Some(((*v).to_owned(), (*a).to_owned())),
            _ => None,
        }
    }

    fn assert_installed(&self, format: Format, version: &str) {
        let arch = match format {
            Format::Deb => self.arch.deb(),
            Format::Rpm => self.arch.rpm(),
        };
        assert_eq!(
            self.installed(format),
            Some((version.to_owned(), arch.to_owned())),
            "{} in the {} database",
            self.vendor.package(),
            format.as_str()
        );
    }

    fn assert_unit(&self, want: &[&str]) {
        let unit = self.vendor.service();
        let (_, out) = self.node.sh(&format!(
            "systemctl is-enabled {unit}.service; systemctl is-active {unit}.service"
        ));
        assert_eq!(out.split_whitespace().collect::<Vec<_>>(), want, "{unit}");
    }

    /// Wait for a node file to hold `want` (the stand-ins work in the
    /// background, as the real agents do).
    fn wait_for(&self, path: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = fs::read_to_string(self.node.path(path)).unwrap_or_default();
            if want(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never became ready: {text:?}\n{}",
                self.node.sh("journalctl --no-pager -n 60").1
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The running daemon is this version of the stand-in, for this arch,
    /// started with a clean environment.
    fn assert_daemon(&self, version: &str) {
        let want = format!("{version} {}\n", self.arch.deb());
        self.wait_for(self.vendor.daemon_stamp(), |t| t == want);
        let env = fs::read_to_string(self.node.path(self.vendor.daemon_env())).expect("env");
        assert!(
            !env.contains(POD_ENV_SECRET) && !env.contains("RUST_LOG"),
            "daemon environment:\n{env}"
        );
    }

    fn assert_root_only(&self, path: &str) {
        let meta = fs::metadata(self.node.path(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(meta.mode() & 0o7777, 0o600, "{path} mode");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{path} owner");
    }

    /// What the vendor interface must show once the agent is configured,
    /// activated and registered; returns the agent's identity (which an
    /// upgrade must keep).
    fn assert_vendor_state(&self) -> String {
        match self.vendor {
            Vendor::Sysdig => {
                let path = "/opt/draios/etc/dragent.yaml";
                self.assert_root_only(path);
                let text = fs::read_to_string(self.node.path(path)).expect("dragent.yaml");
                assert_eq!(
                    text,
                    format!(
                        "# managed by nodeguard install-agent; changes are overwritten\n\
                         customerid: {SYSDIG_KEY}\ncollector: ingest.nodeguard.invalid\n\
                         collector_port: 6443\nssl: true\nssl_verify_certificate: true\n\
                         tags: cluster:ci,role:node\n"
                    )
                );
                self.wait_for("/opt/draios/logs/running", |t| !t.is_empty());
                let log = self.wait_for("/opt/draios/logs/draios.log", |t| {
                    t.contains("connecting to ingest.nodeguard.invalid:6443")
                });
                assert!(!log.contains(SYSDIG_KEY));
                String::new()
            }
            Vendor::Falcon => {
                let store = "/opt/CrowdStrike/falconstore";
                let text = self.wait_for(store, |t| t.contains("\naid=") || t.starts_with("aid="));
                for line in [
                    format!("cid={FALCON_CID}"),
                    format!("provisioning-token={FALCON_TOKEN}"),
                    "tags=ci,nodeguard".to_owned(),
                ] {
                    assert!(text.lines().any(|l| l == line), "{line} in falconstore");
                }
                // Options without a value were left out, not set empty.
                assert!(
                    !text
                        .lines()
                        .any(|l| ["apd=", "aph=", "app="].iter().any(|p| l.starts_with(p))),
                    "falconstore:\n{text}"
                );
                self.assert_root_only(store);
                let (code, aid) = self.node.sh("/opt/CrowdStrike/falconctl -g --aid");
                assert_eq!(code, 0, "registered: {aid}");
                aid
            }
            Vendor::Wazuh => {
                let conf = "/var/ossec/etc/ossec.conf";
                self.assert_root_only(conf);
                let text = fs::read_to_string(self.node.path(conf)).expect("ossec.conf");
                for want in [
                    "<address>wazuh-manager.nodeguard.invalid</address>",
                    "<port>1514</port>",
                    "<enabled>yes</enabled>",
                    "<groups>k8s-nodes</groups>",
                ] {
                    assert!(text.contains(want), "{want} in ossec.conf:\n{text}");
                }
                // Optional values not given: their lines are left out.
                assert!(
                    !text.contains("<agent_name>") && !text.contains("<manager_address>"),
                    "{text}"
                );
                self.assert_root_only("/var/ossec/etc/authd.pass");
                assert_eq!(
                    fs::read_to_string(self.node.path("/var/ossec/etc/authd.pass")).unwrap(),
                    format!("{WAZUH_PASSWORD}\n")
                );
                self.wait_for("/var/ossec/var/run/wazuh-agentd.state", |t| {
                    t == "status='connected'\n"
                });
                let log = fs::read_to_string(self.node.path("/var/ossec/logs/ossec.log")).unwrap();
                assert!(log.contains("(with password)"), "{log}");
                self.wait_for("/var/ossec/etc/client.keys", |t| t.starts_with("001 "))
            }
        }
    }

    /// Files uninstall removes (credentials, identity) and files only a
    /// purge removes.
    fn uninstall_paths(&self) -> (&'static [&'static str], &'static str) {
        match self.vendor {
            Vendor::Sysdig => (&["/opt/draios/etc/dragent.yaml"], "/opt/draios"),
            Vendor::Falcon => (&["/opt/CrowdStrike/falconstore"], "/opt/CrowdStrike"),
            Vendor::Wazuh => (
                &[
                    "/var/ossec/etc/ossec.conf",
                    "/var/ossec/etc/authd.pass",
                    "/var/ossec/etc/client.keys",
                ],
                "/var/ossec",
            ),
        }
    }

    /// plan, install, converged re-run, status.
    fn installs(&mut self, format: Format, v1: &Path, version: &str) -> String {
        let r = self.ia("plan", "plan", v1, &[]);
        r.assert_code(0);
        let j = r.json();
        assert_eq!(j["status"], "planned", "{}", r.stdout);
        assert_eq!(j["package"]["format"], format.as_str());
        assert_eq!(j["package"]["arch"], self.arch.deb());
        assert_eq!(step_names(&j)[0], "install");

        let r = self.ia("install", "install", v1, &[]);
        r.assert_code(0);
        let j = r.json();
        assert_eq!(j["status"], "changed", "{}", r.stdout);
        // Registration is the agent's own, asynchronous business: the
        // install report may still say `registered: false`; `status` below
        // must say true once the vendor's marker exists.
        for field in ["installed", "active", "activated"] {
            assert_eq!(j[field], true, "{field}: {}", r.stdout);
        }
        assert_eq!(j["agent"], self.vendor.agent());
        assert_eq!(j["package"]["name"], self.vendor.package());
        assert_eq!(
            step_names(&j).last().map(String::as_str),
            Some("verify"),
            "{}",
            r.stdout
        );
        self.assert_installed(format, version);
        self.assert_unit(&["enabled", "active"]);
        self.assert_daemon(version.trim_end_matches("-1"));
        let identity = self.assert_vendor_state();

        let r = self.ia("rerun", "install", v1, &[]);
        r.assert_code(0);
        let j = r.json();
        assert_eq!(
            (j["status"].as_str(), j["changed"].as_bool()),
            (Some("converged"), Some(false)),
            "{}",
            r.stdout
        );
        assert_eq!(step_names(&j), ["converge"]);
        let r = self.ia("status", "status", v1, &[]);
        r.assert_code(0);
        let j = r.json();
        assert_eq!(j["status"], "healthy", "{}", r.stdout);
        assert_eq!(j["registered"], true, "{}", r.stdout);
        identity
    }

    /// A changed setting in the Secret reaches the agent through the
    /// vendor's interface (re-rendered file, or re-run activation) and a
    /// restart, keeping its identity; then the original comes back.
    fn rotates(&mut self, v1: &Path, identity: &str) {
        let (name, _, original) = credentials(self.vendor)[2];
        let (rotated, step, file, line) = match self.vendor {
            Vendor::Sysdig => (
                "cluster:rotated",
                "configure",
                "/opt/draios/etc/dragent.yaml",
                "tags: cluster:rotated",
            ),
            Vendor::Falcon => (
                "rotated",
                "activate",
                "/opt/CrowdStrike/falconstore",
                "tags=rotated",
            ),
            Vendor::Wazuh => (
                "rotated",
                "configure",
                "/var/ossec/etc/ossec.conf",
                "      <groups>rotated</groups>",
            ),
        };
        let creds = self.creds.join(name);
        fs::write(&creds, format!("{rotated}\n")).expect("rotate");
        let r = self.ia("rotated", "install", v1, &[]);
        r.assert_code(0);
        let steps = step_names(&r.json());
        assert!(
            steps.iter().any(|s| s == step) && steps.iter().any(|s| s == "restart"),
            "{}",
            r.stdout
        );
        let text = fs::read_to_string(self.node.path(file)).expect(file);
        assert!(text.lines().any(|l| l == line), "{line} in {file}:\n{text}");
        assert_eq!(self.assert_vendor_state_after_rotation(), identity);
        fs::write(&creds, format!("{original}\n")).expect("restore");
        let r = self.ia("restored", "install", v1, &[]);
        r.assert_code(0);
        assert_eq!(r.json()["status"], "changed", "{}", r.stdout);
    }

    /// The identity part of the vendor state (the rest names the original
    /// setting).
    fn assert_vendor_state_after_rotation(&self) -> String {
        match self.vendor {
            Vendor::Sysdig => String::new(),
            Vendor::Falcon => self.node.sh("/opt/CrowdStrike/falconctl -g --aid").1,
            Vendor::Wazuh => {
                fs::read_to_string(self.node.path("/var/ossec/etc/client.keys")).unwrap_or_default()
            }
        }
    }

    /// Upgrade to the stand-in's second version; the agent keeps its
    /// configuration and identity.
    fn upgrades(&mut self, format: Format, v2: &Path, version: &str, identity: &str) {
        let r = self.ia("upgrade", "install", v2, &[]);
        r.assert_code(0);
        let j = r.json();
        let steps = step_names(&j);
        assert!(
            steps.iter().any(|s| s == "upgrade") && !steps.iter().any(|s| s == "configure"),
            "{}",
            r.stdout
        );
        self.assert_installed(format, version);
        self.assert_unit(&["enabled", "active"]);
        self.assert_daemon(version.trim_end_matches("-1"));
        assert_eq!(self.assert_vendor_state(), identity, "identity kept");
        let r = self.ia("rerun v2", "install", v2, &[]);
        assert_eq!(r.json()["status"], "converged", "{}", r.stdout);
    }

    fn uninstalls(&mut self, format: Format, profile: &Path, purge: bool) {
        let extra: &[&str] = if purge { &["--purge"] } else { &[] };
        let r = self.ia("uninstall", "uninstall", profile, extra);
        r.assert_code(0);
        assert_eq!(r.json()["status"], "removed", "{}", r.stdout);
        assert_eq!(self.installed(format), None, "package removed");
        let (_, state) = self.node.sh(&format!(
            "systemctl show -p LoadState --value {}.service",
            self.vendor.service()
        ));
        assert_eq!(state.trim(), "not-found");
        let (removed, purged) = self.uninstall_paths();
        for gone in removed {
            assert!(!self.node.path(gone).exists(), "{gone} left behind");
        }
        assert_eq!(
            self.node.path(purged).exists(),
            !purge,
            "{purged} after uninstall (purge: {purge})"
        );
        let record = format!(
            "/var/lib/nodeguard/install-agent/{}.json",
            self.vendor.agent()
        );
        assert!(!self.node.path(&record).exists(), "record removed");
        let r = self.ia("uninstall again", "uninstall", profile, extra);
        r.assert_code(0);
        assert_eq!(r.json()["status"], "absent");
    }
}

/// Make the node RPM-flavoured: os-release says RHEL 9.4, an rpm database
/// at the RHEL path (the userland stays Debian's; see docs/install-agent.md).
fn make_rpm_node(node: &Node) {
    let rhel = fs::read_to_string(
        harness::fixtures("install-agent").join("os-release/rhel-9.4.os-release"),
    )
    .expect("rhel os-release fixture");
    let os_release = node.path("/etc/os-release");
    let _ = fs::remove_file(&os_release);
    fs::write(&os_release, rhel).expect("os-release");
    let (code, out) = node.sh("mkdir -p /var/lib/rpm && rpm --dbpath /var/lib/rpm --initdb");
    assert_eq!(code, 0, "{out}");
}

/// Back to the node's own (Debian) os-release after an RPM phase.
fn make_deb_node(node: &Node) {
    let os_release = node.path("/etc/os-release");
    if fs::symlink_metadata(&os_release).is_ok_and(|m| m.file_type().is_symlink()) {
        return;
    }
    fs::remove_file(&os_release).expect("os-release");
    std::os::unix::fs::symlink("../usr/lib/os-release", &os_release).expect("symlink");
}

/// Build the stand-ins and the credentials of `vendor`, then drive both
/// formats on `node` (left clean: everything purged); returns the node.
///
/// `full`: also uninstall without purge and reinstall in the DEB phase
/// (left out on the emulated node, where every host command costs ~10x).
fn lifecycle(vendor: Vendor, node: Node, arch: Arch, full: bool) -> Node {
    let dir = TestDir::new(&format!("ia-vendor-{}", vendor.service()));
    let built = build_all(&dir.join("pkgs"), vendor);
    assert_arch_metadata(&built[0]);
    assert_arch_metadata(&built[1]);
    for (name, vendor_name, value) in credentials(vendor) {
        dir.write(format!("creds/{name}"), format!("{value}\n"));
        dir.write(format!("vendor-creds/{vendor_name}"), format!("{value}\n"));
    }
    make_deb_node(&node);
    let mut life = Life {
        vendor,
        node,
        creds: dir.join("creds"),
        dir,
        t: Transcript::default(),
        arch,
    };
    let v1 = life.packages_file("v1-packages.toml", &built[0]);
    let v2 = life.packages_file("v2-packages.toml", &built[1]);
    let [first, second] = vendor.versions().map(|v| format!("{v}-1"));

    // DEB: install, converge, upgrade, uninstall, reinstall, purge.
    let identity = life.installs(Format::Deb, &v1, &first);
    if full {
        life.rotates(&v1, &identity);
    }
    life.upgrades(Format::Deb, &v2, &second, &identity);
    if full {
        life.uninstalls(Format::Deb, &v2, false);
        life.installs(Format::Deb, &v2, &second);
    }
    life.uninstalls(Format::Deb, &v2, true);

    // RPM on the same node, now clean: install, converge, upgrade, purge.
    make_rpm_node(&life.node);
    life.creds = life.dir.join("vendor-creds");
    let identity = life.installs(Format::Rpm, &v1, &first);
    let r = life.ia("rpm status", "status", &v1, &[]);
    assert_eq!(r.json()["host"]["os_id"], "rhel");
    assert_eq!(r.json()["package"]["installer"], "rpm");
    life.upgrades(Format::Rpm, &v2, &second, &identity);
    life.uninstalls(Format::Rpm, &v2, true);

    let Life { t, node, .. } = life;
    t.finish(&node);
    node
}

fn native_lifecycle(vendor: Vendor) {
    let rootfs = match rootfs() {
        Ok(r) => r,
        Err(why) => return eprintln!("SKIPPED: {why}"),
    };
    let _slot = harness::exclusive("install-agent-node");
    let node = Node::boot(vendor.service(), &rootfs, |_| {});
    drop(lifecycle(vendor, node, Arch::native(), true));
}

#[test]
fn sysdig_agent_profile_lifecycle_deb_and_rpm() {
    skip_unless_root!("boots a systemd node with systemd-nspawn on an overlay mount");
    native_lifecycle(Vendor::Sysdig);
}

#[test]
fn falcon_sensor_profile_lifecycle_deb_and_rpm() {
    skip_unless_root!("boots a systemd node with systemd-nspawn on an overlay mount");
    native_lifecycle(Vendor::Falcon);
}

#[test]
fn wazuh_agent_profile_lifecycle_deb_and_rpm() {
    skip_unless_root!("boots a systemd node with systemd-nspawn on an overlay mount");
    native_lifecycle(Vendor::Wazuh);
}

/// The emulated arm64 node's rootfs and why it cannot be used.
fn arm64_rootfs() -> Result<PathBuf, String> {
    let native = rootfs()?;
    let rootfs = native.with_file_name("rootfs-arm64");
    if !rootfs.join(".nodeguard-stamp").is_file() {
        return Err(format!(
            "no arm64 node rootfs at {} (run tests/setup/install-agent-arm64.sh as root)",
            rootfs.display()
        ));
    }
    // Flag F: the kernel opened qemu at registration, so it also runs
    // arm64 binaries inside the node's mount namespace.
    let binfmt = fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64").unwrap_or_default();
    let flags = binfmt
        .lines()
        .find_map(|l| l.strip_prefix("flags: "))
        .unwrap_or_default();
    if !binfmt.starts_with("enabled") || !flags.contains('F') {
        return Err(
            "qemu-aarch64 is not registered with binfmt_misc (flag F); run tests/setup/install-agent-arm64.sh"
                .to_owned(),
        );
    }
    Ok(rootfs)
}

/// An emulated node, ended with SIGKILL to its init before `Node`'s own
/// shutdown: an emulated systemd takes longer to stop than `Node` waits,
/// and would outlive the test. The node is throwaway; nothing is lost.
struct Emulated(Option<Node>);

impl Drop for Emulated {
    fn drop(&mut self) {
        if let Some(node) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &node.init.to_string()])
                .status();
            drop(node);
        }
    }
}

/// The arm64 packages on an arm64 node: a Debian arm64 rootfs whose every
/// binary (systemd, dpkg, rpm, the stand-ins' shell) runs under qemu-user,
/// booted like the native nodes. install-agent itself stays native and
/// must pick the arm64 packages from the node's userland.
#[test]
fn arm64_packages_on_an_emulated_arm64_node() {
    skip_unless_root!("boots an emulated arm64 systemd node with systemd-nspawn");
    if std::env::var_os("NODEGUARD_ARM64_NODE").is_some_and(|v| v == "skip") {
        return eprintln!("SKIPPED: NODEGUARD_ARM64_NODE=skip");
    }
    if Arch::native() == Arch::Arm64 {
        return eprintln!("SKIPPED: this machine is arm64; the native tests cover arm64");
    }
    let rootfs = match arm64_rootfs() {
        Ok(r) => r,
        Err(why) => return eprintln!("SKIPPED: {why}"),
    };
    let _slot = harness::exclusive("install-agent-node");
    // One node for the three vendors: an emulated boot costs far more than
    // a native one, and each lifecycle leaves the node purged.
    let started = Instant::now();
    let mut node = Emulated(Some(Node::boot("arm64", &rootfs, |_| {})));
    eprintln!(
        "arm64 node booted in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for vendor in [Vendor::Sysdig, Vendor::Falcon, Vendor::Wazuh] {
        let started = Instant::now();
        let booted = node.0.take().expect("node");
        node.0 = Some(lifecycle(vendor, booted, Arch::Arm64, false));
        eprintln!(
            "arm64 {} lifecycle (deb and rpm): {:.1} s",
            vendor.agent(),
            started.elapsed().as_secs_f64()
        );
    }
}

/// A fixture host root: `os-release` plus the package tools as files whose
/// ELF header says `machine` (62 = x86_64, 183 = aarch64), which is how
/// install-agent tells the userland's architecture.
fn fixture_host(dir: &TestDir, os_release: &str, tools: &[&str], machine: u16) -> PathBuf {
    let os = fs::read_to_string(
        harness::fixtures("install-agent")
            .join("os-release")
            .join(os_release),
    )
    .expect("os-release fixture");
    dir.write("host/etc/os-release", os);
    let mut elf = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00".to_vec();
    elf.extend_from_slice(&machine.to_le_bytes());
    elf.resize(64, 0);
    for t in tools {
        let path = dir.write(format!("host{t}"), &elf);
        fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    dir.join("host")
}

fn plan(profile: &Path, host: &Path, extra: &[&str]) -> RunResult {
    crate::harness::run(
        tool("install-agent")
            .arg("plan")
            .arg("--profile")
            .arg(profile)
            .arg("--host-root")
            .arg(host)
            .args(extra),
    )
}

fn shipped(vendor: Vendor) -> PathBuf {
    crate::harness::workspace_root()
        .join("install-agent/profiles")
        .join(vendor.profile_file())
}

/// As shipped (placeholder sums, packages not in the image, no Secret),
/// each profile plans `not_configured`, naming the values to set, among
/// them the vendor's own spelling of the required credential.
#[test]
fn shipped_vendor_profiles_are_not_configured_until_packages_and_credentials_are_set() {
    let dir = TestDir::new("ia-vendor-notconf");
    let host = fixture_host(
        &dir,
        "debian-12.os-release",
        &["/usr/bin/dpkg", "/usr/bin/apt-get"],
        62,
    );
    for (vendor, alias) in [
        (Vendor::Sysdig, "ACCESS_KEY"),
        (Vendor::Falcon, "FALCONCTL_OPT_CID"),
        (Vendor::Wazuh, "WAZUH_MANAGER"),
    ] {
        let r = plan(&shipped(vendor), &host, &[]);
        r.assert_code(0);
        let j = r.json();
        assert_eq!(j["status"], "not_configured", "{}", r.stdout);
        assert_eq!(j["agent"], vendor.agent());
        assert_eq!(j["package"]["name"], vendor.package());
        let items = j["not_configured"].as_array().expect("not_configured");
        let whats: Vec<&str> = items.iter().filter_map(|i| i["what"].as_str()).collect();
        assert!(whats.iter().any(|w| w.contains("placeholder")), "{whats:?}");
        let sets = serde_json::to_string(items).unwrap();
        assert!(
            sets.contains("bootstrap.packages") && sets.contains(alias),
            "{sets}"
        );
    }
}

/// The same credential under the profile's name and the vendor's is an
/// error naming both (nothing is guessed).
#[test]
fn a_vendor_credential_given_under_both_spellings_is_refused_naming_both() {
    let dir = TestDir::new("ia-vendor-twice");
    let host = fixture_host(
        &dir,
        "debian-12.os-release",
        &["/usr/bin/dpkg", "/usr/bin/apt-get"],
        62,
    );
    dir.write("creds/manager_address", "wazuh-a.invalid\n");
    dir.write("creds/WAZUH_MANAGER", "wazuh-b.invalid\n");
    let creds = dir.join("creds");
    let r = plan(
        &shipped(Vendor::Wazuh),
        &host,
        &["--credentials-dir", creds.to_str().unwrap()],
    );
    r.assert_code(2);
    assert!(
        r.stdout.is_empty()
            && r.stderr.contains("manager_address")
            && r.stderr.contains("WAZUH_MANAGER"),
        "{}",
        r.stderr
    );
}

/// An arm64 userland gets the arm64 stand-in and an amd64 one the amd64
/// stand-in, for DEB and RPM hosts, from one package list (no node needed;
/// the packages are real, so their sums and metadata are too).
#[test]
fn each_architecture_gets_its_own_package() {
    if ["dpkg-deb", "rpmbuild"].iter().any(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .map_or(true, |o| !o.status.success())
    }) {
        return eprintln!("SKIPPED: dpkg-deb or rpmbuild missing (tests/setup/install-agent.sh)");
    }
    let dir = TestDir::new("ia-vendor-arch");
    let vendor = Vendor::Falcon;
    let version = vendor.versions()[0];
    let mut entries = Vec::new();
    for format in [Format::Deb, Format::Rpm] {
        for arch in Arch::ALL {
            let built = standin::build(dir.path(), vendor, version, arch, format);
            entries.push(Entry {
                format,
                arch,
                built,
            });
        }
    }
    assert_arch_metadata(&entries);
    let packages = dir.write("packages.toml", standin::package_tables(&entries));
    dir.write("creds/cid", format!("{FALCON_CID}\n"));
    let creds = dir.join("creds");
    for (os, tools, format) in [
        (
            "debian-12.os-release",
            ["/usr/bin/dpkg", "/usr/bin/apt-get"],
            Format::Deb,
        ),
        (
            "rhel-9.4.os-release",
            ["/usr/bin/rpm", "/usr/bin/dnf"],
            Format::Rpm,
        ),
    ] {
        for (arch, machine) in [(Arch::Amd64, 62), (Arch::Arm64, 183)] {
            let host_dir = TestDir::new("ia-vendor-arch-host");
            let host = fixture_host(&host_dir, os, &tools, machine);
            let r = plan(
                &shipped(vendor),
                &host,
                &[
                    "--packages-file",
                    packages.to_str().unwrap(),
                    "--credentials-dir",
                    creds.to_str().unwrap(),
                ],
            );
            r.assert_code(0);
            let j = r.json();
            let want = entries
                .iter()
                .find(|e| e.format == format && e.arch == arch)
                .unwrap();
            assert_eq!(j["status"], "planned", "{}", r.stdout);
            assert_eq!(
                (
                    j["package"]["format"].as_str(),
                    j["package"]["arch"].as_str(),
                    j["package"]["sha256"].as_str()
                ),
                (
                    Some(format.as_str()),
                    Some(arch.deb()),
                    Some(want.built.sha256.as_str())
                ),
                "{os} {arch:?}: {}",
                r.stdout
            );
            assert!(!r.stdout.contains(FALCON_CID) && !r.stderr.contains(FALCON_CID));
        }
    }
}
