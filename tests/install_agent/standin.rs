//! Stand-in vendor packages for the shipped agent profiles (Sysdig
//! `draios-agent`, CrowdStrike `falcon-sensor`, `wazuh-agent`), built for
//! real with `dpkg-deb` and `rpmbuild`, for amd64 and arm64.
//!
//! Each stand-in implements the part of its vendor's *public* install
//! interface that the profile drives — the package and service names, the
//! files the vendor documents, the activation tool and its options, and a
//! registration marker — with small POSIX shell programs, so the same
//! package contents work on any architecture (the `arm64` packages differ in
//! their architecture metadata, and they record which architecture they are
//! so a test can tell which one was installed). What each program does is
//! documented beside it; the profiles in `install-agent/profiles/` cite the
//! vendor documents.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Package architectures, named as in the profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86_64.
    Amd64,
    /// aarch64.
    Arm64,
}

impl Arch {
    /// Both, in a fixed order.
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// The profile / Debian name.
    pub fn deb(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The RPM name.
    pub fn rpm(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }

    /// The architecture of the machine running the tests.
    pub fn native() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::Amd64
        }
    }
}

/// Package formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.deb`
    Deb,
    /// `.rpm`
    Rpm,
}

impl Format {
    /// The profile name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Deb => "deb",
            Format::Rpm => "rpm",
        }
    }
}

/// One file of a stand-in package.
struct PkgFile {
    path: &'static str,
    mode: u32,
    text: String,
    /// A configuration file (dpkg conffile / rpm `%config(noreplace)`).
    config: bool,
}

/// The three vendors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// Sysdig agent, package `draios-agent`, service `dragent`.
    Sysdig,
    /// CrowdStrike Falcon sensor, package and service `falcon-sensor`.
    Falcon,
    /// Wazuh agent, package and service `wazuh-agent`.
    Wazuh,
}

impl Vendor {
    /// The shipped profile's file name (in `install-agent/profiles/`).
    pub fn profile_file(self) -> &'static str {
        match self {
            Vendor::Sysdig => "sysdig-agent.toml",
            Vendor::Falcon => "falcon-sensor.toml",
            Vendor::Wazuh => "wazuh-agent.toml",
        }
    }

    /// The agent name in reports (the profile's `name`).
    pub fn agent(self) -> &'static str {
        match self {
            Vendor::Sysdig => "sysdig-agent",
            Vendor::Falcon => "falcon-sensor",
            Vendor::Wazuh => "wazuh-agent",
        }
    }

    /// The package name in the host's package database.
    pub fn package(self) -> &'static str {
        match self {
            Vendor::Sysdig => "draios-agent",
            Vendor::Falcon => "falcon-sensor",
            Vendor::Wazuh => "wazuh-agent",
        }
    }

    /// The systemd unit (without `.service`).
    pub fn service(self) -> &'static str {
        match self {
            Vendor::Sysdig => "dragent",
            Vendor::Falcon => "falcon-sensor",
            Vendor::Wazuh => "wazuh-agent",
        }
    }

    /// The stand-in's first and second version (upstream part; packages
    /// get release `1`).
    pub fn versions(self) -> [&'static str; 2] {
        match self {
            Vendor::Sysdig => ["13.5.0", "13.6.1"],
            Vendor::Falcon => ["7.18.0", "7.19.0"],
            Vendor::Wazuh => ["4.9.2", "4.10.1"],
        }
    }

    /// The file the running stand-in daemon writes its version and
    /// architecture into (`"<version> <arch>\n"`), once it runs.
    pub fn daemon_stamp(self) -> &'static str {
        match self {
            Vendor::Sysdig => "/opt/draios/run/standin-daemon",
            Vendor::Falcon => "/var/lib/falcon-standin/daemon",
            Vendor::Wazuh => "/var/ossec/var/run/standin-daemon",
        }
    }

    /// The environment the stand-in daemon was started with (to prove host
    /// processes get a clean one).
    pub fn daemon_env(self) -> &'static str {
        match self {
            Vendor::Sysdig => "/opt/draios/run/standin-env",
            Vendor::Falcon => "/var/lib/falcon-standin/env",
            Vendor::Wazuh => "/var/ossec/var/run/standin-env",
        }
    }

    fn files(self, version: &str, arch: Arch) -> Vec<PkgFile> {
        let fill = |t: &str| {
            t.replace("@VERSION@", version)
                .replace("@ARCH@", arch.deb())
        };
        let exec = |path, text: &str| PkgFile {
            path,
            mode: 0o755,
            text: fill(text),
            config: false,
        };
        match self {
            Vendor::Sysdig => vec![
                exec("/opt/draios/bin/dragent", SYSDIG_DRAGENT),
                PkgFile {
                    path: "/opt/draios/etc/dragent.default.yaml",
                    mode: 0o644,
                    text: fill(SYSDIG_DEFAULT_YAML),
                    config: false,
                },
            ],
            Vendor::Falcon => vec![
                exec("/opt/CrowdStrike/falconctl", FALCON_FALCONCTL),
                exec("/opt/CrowdStrike/falcond", FALCON_FALCOND),
            ],
            Vendor::Wazuh => vec![
                exec("/var/ossec/bin/wazuh-agentd", WAZUH_AGENTD),
                PkgFile {
                    path: "/var/ossec/etc/ossec.conf",
                    mode: 0o640,
                    // The packaged default changes between versions, as
                    // Wazuh's does: the upgrade must keep the rendered one.
                    text: fill(WAZUH_DEFAULT_OSSEC_CONF),
                    config: true,
                },
            ],
        }
    }

    fn unit(self) -> String {
        let (desc, exec) = match self {
            Vendor::Sysdig => (
                "Sysdig Agent (nodeguard stand-in)",
                "/opt/draios/bin/dragent",
            ),
            Vendor::Falcon => (
                "CrowdStrike Falcon Sensor (nodeguard stand-in)",
                "/opt/CrowdStrike/falcond",
            ),
            Vendor::Wazuh => (
                "Wazuh agent (nodeguard stand-in)",
                "/var/ossec/bin/wazuh-agentd",
            ),
        };
        format!(
            "[Unit]\nDescription={desc}\nAfter=network-online.target\n\n[Service]\nExecStart={exec}\n\
             Restart=on-failure\nRestartSec=1\n\n[Install]\nWantedBy=multi-user.target\n"
        )
    }
}

/// Sysdig `dragent`: reads `/opt/draios/etc/dragent.yaml` (the file the
/// vendor's docs and install script write: `customerid` = access key,
/// `collector`, `collector_port`, `ssl`, `tags`), refuses to run without an
/// access key (as the real agent cannot connect without one), and once it
/// has one "connects": it writes `/opt/draios/logs/running`, the file Sysdig
/// documents as present while the agent is connected to the backend.
const SYSDIG_DRAGENT: &str = r#"#!/bin/sh
# nodeguard stand-in for the Sysdig agent daemon @VERSION@ (@ARCH@)
conf=/opt/draios/etc/dragent.yaml
mkdir -p /opt/draios/logs /opt/draios/run
env > /opt/draios/run/standin-env
rm -f /opt/draios/logs/running
key=$(sed -n 's/^customerid: *//p' "$conf" 2>/dev/null)
collector=$(sed -n 's/^collector: *//p' "$conf" 2>/dev/null)
port=$(sed -n 's/^collector_port: *//p' "$conf" 2>/dev/null)
if [ -z "$key" ]; then
  echo "dragent: no customerid (access key) in $conf" >> /opt/draios/logs/draios.log
  exit 1
fi
echo "@VERSION@ @ARCH@" > /opt/draios/run/standin-daemon
echo "dragent @VERSION@: connecting to ${collector:-collector.sysdigcloud.com}:${port:-6443}" >> /opt/draios/logs/draios.log
sleep 0.3
echo "@VERSION@" > /opt/draios/logs/running
while :; do sleep 5; done
"#;

const SYSDIG_DEFAULT_YAML: &str = "# Sysdig agent defaults (nodeguard stand-in @VERSION@); \
site settings go in dragent.yaml\nlog:\n  file_priority: info\n";

/// Falcon `falconctl`: `-s [-f] --cid=… [--provisioning-token=…]
/// [--tags=…] [--apd=…] [--aph=…] [--app=…]` stores the options, `-g
/// --cid|--aid|--tags|…` prints them as `name="value"`, `-d [-f] --aid`
/// deletes the agent id. A CID must be 32 hex digits, `-`, a 2-digit
/// checksum ("CID with checksum"); setting one over an existing one needs
/// `-f` (CrowdStrike's install scripts always pass it).
/// Options live in `/opt/CrowdStrike/falconstore` (the real sensor's store
/// is binary; this one is text, mode 0600).
const FALCON_FALCONCTL: &str = r#"#!/bin/sh
# nodeguard stand-in for /opt/CrowdStrike/falconctl @VERSION@ (@ARCH@)
store=/opt/CrowdStrike/falconstore
usage() { echo "usage: falconctl -s|-g|-d [-f] --option[=value]..." >&2; exit 2; }
get() { sed -n "s/^$1=//p" "$store" 2>/dev/null; }
put() {
  umask 077
  { grep -v "^$1=" "$store" 2>/dev/null; printf '%s=%s\n' "$1" "$2"; } > "$store.new"
  mv "$store.new" "$store"
}
[ $# -ge 2 ] || usage
mode=$1; shift
force=0
for a in "$@"; do [ "$a" = -f ] && force=1; done
for a in "$@"; do
  case "$a" in
    -f) continue ;;
    --*) ;;
    *) usage ;;
  esac
  opt=${a#--}; name=${opt%%=*}
  case "$name" in
    cid|provisioning-token|tags|apd|aph|app|aid|trace|backend|billing) ;;
    *) echo "falconctl: unknown option --$name" >&2; exit 2 ;;
  esac
  case "$mode" in
    -s)
      case "$opt" in *=*) value=${opt#*=} ;; *) usage ;; esac
      if [ "$name" = cid ]; then
        if ! printf '%s' "$value" | grep -Eq '^[0-9A-Fa-f]{32}-[0-9A-Fa-f]{2}$'; then
          echo "falconctl: invalid CID (expected 32 hex digits, '-', 2-digit checksum)" >&2; exit 3
        fi
        if [ -n "$(get cid)" ] && [ "$force" = 0 ]; then
          echo "falconctl: CID is already set; use -f to overwrite" >&2; exit 4
        fi
      fi
      put "$name" "$value" ;;
    -g)
      v=$(get "$name")
      if [ -n "$v" ]; then printf '%s="%s".\n' "$name" "$v"; else echo "$name is not set."; exit 1; fi ;;
    -d)
      [ "$force" = 1 ] || { echo "falconctl: -d needs -f" >&2; exit 2; }
      put "$name" "" ;;
    *) usage ;;
  esac
done
exit 0
"#;

/// Falcon `falcond` (the `falcon-sensor` unit's program): refuses to run
/// without a CID (the documented "CID not set" failure), and once running
/// "registers" by getting an agent id (AID), stored with `falconctl`'s
/// options and printed by `falconctl -g --aid`.
const FALCON_FALCOND: &str = r#"#!/bin/sh
# nodeguard stand-in for the Falcon sensor daemon @VERSION@ (@ARCH@)
store=/opt/CrowdStrike/falconstore
mkdir -p /var/lib/falcon-standin
env > /var/lib/falcon-standin/env
cid=$(sed -n 's/^cid=//p' "$store" 2>/dev/null)
if [ -z "$cid" ]; then
  echo "falcon-sensor: CID is not set; run falconctl -s --cid=<CID>" >&2
  exit 1
fi
echo "@VERSION@ @ARCH@" > /var/lib/falcon-standin/daemon
if [ -z "$(sed -n 's/^aid=//p' "$store")" ]; then
  sleep 0.3
  aid=$(tr -d '-' < /proc/sys/kernel/random/uuid)
  /opt/CrowdStrike/falconctl -s -f --aid="$aid"
  echo "falcon-sensor @VERSION@: registered, aid $aid"
fi
while :; do sleep 5; done
"#;

/// Wazuh `wazuh-agentd`: reads `/var/ossec/etc/ossec.conf`
/// (`<client><server><address>` and the `<enrollment>` block, as
/// documented), refuses the packaged placeholder address `MANAGER_IP`,
/// and with enrollment enabled "enrolls": it writes the agent's key to
/// `/var/ossec/etc/client.keys` (`<id> <name> <ip> <key>`), using the
/// password in `etc/authd.pass` when the file exists (the documented
/// default path), and reports `status='connected'` in
/// `/var/ossec/var/run/wazuh-agentd.state`.
const WAZUH_AGENTD: &str = r#"#!/bin/sh
# nodeguard stand-in for wazuh-agentd @VERSION@ (@ARCH@)
conf=/var/ossec/etc/ossec.conf
run=/var/ossec/var/run
mkdir -p "$run" /var/ossec/logs
env > "$run/standin-env"
log() { echo "$(date '+%Y/%m/%d %H:%M:%S') wazuh-agentd: $*" >> /var/ossec/logs/ossec.log; }
address=$(sed -n 's:.*<address>\(.*\)</address>.*:\1:p' "$conf" | head -n 1)
if [ -z "$address" ] || [ "$address" = MANAGER_IP ]; then
  log "ERROR: no manager address in $conf (set <client><server><address>)"
  exit 1
fi
echo "@VERSION@ @ARCH@" > "$run/standin-daemon"
echo "status='pending'" > "$run/wazuh-agentd.state"
if [ ! -s /var/ossec/etc/client.keys ]; then
  if ! grep -q '<enabled>yes</enabled>' "$conf"; then
    log "ERROR: not enrolled and enrollment is disabled"
    exit 1
  fi
  name=$(sed -n 's:.*<agent_name>\(.*\)</agent_name>.*:\1:p' "$conf" | head -n 1)
  [ -n "$name" ] || name=$(cat /etc/hostname)
  how="without password"
  [ -s /var/ossec/etc/authd.pass ] && how="with password"
  sleep 0.3
  umask 027
  key=$(tr -d '-' < /proc/sys/kernel/random/uuid)
  echo "001 $name any $key" > /var/ossec/etc/client.keys
  log "enrolled as '$name' at $address ($how)"
fi
echo "status='connected'" > "$run/wazuh-agentd.state"
log "connected to $address"
while :; do sleep 5; done
"#;

const WAZUH_DEFAULT_OSSEC_CONF: &str = "<!-- Wazuh agent configuration as packaged \
(nodeguard stand-in @VERSION@) -->
<ossec_config>
  <client>
    <server>
      <address>MANAGER_IP</address>
      <port>1514</port>
      <protocol>tcp</protocol>
    </server>
    <enrollment>
      <enabled>yes</enabled>
    </enrollment>
  </client>
</ossec_config>
";

fn write_file(root: &Path, rel: &str, mode: u32, text: &str) {
    let path = root.join(rel.trim_start_matches('/'));
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(&path, text).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn check(what: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A built stand-in package.
#[derive(Debug, Clone)]
pub struct Built {
    /// The package file.
    pub path: PathBuf,
    /// Its sha256.
    pub sha256: String,
    /// The version the package database reports (`<upstream>-1`).
    pub version: String,
}

/// Build the stand-in of `vendor` at `version` for `arch` in `format`.
pub fn build(dir: &Path, vendor: Vendor, version: &str, arch: Arch, format: Format) -> Built {
    match format {
        Format::Deb => build_deb(dir, vendor, version, arch),
        Format::Rpm => build_rpm(dir, vendor, version, arch),
    }
}

fn build_deb(dir: &Path, vendor: Vendor, version: &str, arch: Arch) -> Built {
    let name = vendor.package();
    let full = format!("{version}-1");
    let root = dir.join(format!("deb-{name}-{full}-{}", arch.deb()));
    let files = vendor.files(version, arch);
    for f in &files {
        write_file(&root, f.path, f.mode, &f.text);
    }
    let unit = root.join(format!("lib/systemd/system/{}.service", vendor.service()));
    fs::create_dir_all(unit.parent().expect("parent")).expect("mkdir");
    fs::write(&unit, vendor.unit()).expect("unit");
    fs::create_dir_all(root.join("DEBIAN")).expect("mkdir");
    let conffiles: String = files
        .iter()
        .filter(|f| f.config)
        .map(|f| format!("{}\n", f.path))
        .collect();
    if !conffiles.is_empty() {
        fs::write(root.join("DEBIAN/conffiles"), conffiles).expect("conffiles");
    }
    fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {full}\nArchitecture: {}\nMaintainer: nodeguard tests <dev@nodeguard.invalid>\n\
             Description: nodeguard stand-in for the vendor's {name} package\n",
            arch.deb()
        ),
    )
    .expect("control");
    let deb = dir.join(format!("{name}_{full}_{}.deb", arch.deb()));
    let out = Command::new("dpkg-deb")
        .arg("--root-owner-group")
        .arg("--build")
        .arg(&root)
        .arg(&deb)
        .output()
        .expect("dpkg-deb");
    check("dpkg-deb", &out);
    let sha256 = super::agent_pkg::sha256(&deb);
    Built {
        path: deb,
        sha256,
        version: full,
    }
}

fn build_rpm(dir: &Path, vendor: Vendor, version: &str, arch: Arch) -> Built {
    let name = vendor.package();
    let top = dir.join(format!("rpm-{name}-{version}-{}", arch.rpm()));
    let sources = top.join("SOURCES");
    let files = vendor.files(version, arch);
    let unit_name = format!("{}.service", vendor.service());
    let mut install = String::new();
    let mut list = String::new();
    for (i, f) in files.iter().enumerate() {
        let src = format!("f{i}");
        write_file(&sources, &src, f.mode, &f.text);
        install.push_str(&format!(
            "install -D -m {:o} %{{_sourcedir}}/{src} %{{buildroot}}{}\n",
            f.mode, f.path
        ));
        list.push_str(&if f.config {
            format!("%config(noreplace) {}\n", f.path)
        } else {
            format!("{}\n", f.path)
        });
    }
    fs::write(sources.join(&unit_name), vendor.unit()).expect("unit");
    install.push_str(&format!(
        "install -D -m 644 %{{_sourcedir}}/{unit_name} %{{buildroot}}/usr/lib/systemd/system/{unit_name}\n"
    ));
    list.push_str(&format!("/usr/lib/systemd/system/{unit_name}\n"));
    // No scriptlets and no automatic requirements: the package installs
    // into the node's own rpm database (its userland is Debian's).
    let spec = format!(
        "%global debug_package %{{nil}}\n%global __os_install_post %{{nil}}\n\
         Name: {name}\nVersion: {version}\nRelease: 1\nSummary: nodeguard stand-in for {name}\n\
         License: Apache-2.0\nAutoReqProv: no\n\n%description\nnodeguard stand-in for the vendor's {name} package\n\n\
         %install\n{install}\n%files\n{list}"
    );
    let spec_path = top.join(format!("{name}.spec"));
    fs::write(&spec_path, spec).expect("spec");
    let out = Command::new("rpmbuild")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .args(["--target", arch.rpm(), "--nodeps", "-bb"])
        .arg(&spec_path)
        .output()
        .expect("rpmbuild");
    check("rpmbuild", &out);
    let rpm = top.join(format!(
        "RPMS/{a}/{name}-{version}-1.{a}.rpm",
        a = arch.rpm()
    ));
    assert!(rpm.is_file(), "rpmbuild made no {}", rpm.display());
    let sha256 = super::agent_pkg::sha256(&rpm);
    Built {
        path: rpm,
        sha256,
        version: format!("{version}-1"),
    }
}

/// A package entry for a profile / `--packages-file`.
#[derive(Debug, Clone)]
pub struct Entry {
    /// deb or rpm.
    pub format: Format,
    /// amd64 or arm64.
    pub arch: Arch,
    /// The built package.
    pub built: Built,
}

/// The `[[package]]` tables for `entries` (path-sourced): a profile's
/// package list, or a `--packages-file`.
pub fn package_tables(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| {
            format!(
                "\n[[package]]\nformat = \"{}\"\narch = \"{}\"\nversion = \"{}\"\npath = \"{}\"\nsha256 = \"{}\"\n",
                e.format.as_str(),
                e.arch.deb(),
                e.built.version,
                e.built.path.display(),
                e.built.sha256
            )
        })
        .collect()
}
