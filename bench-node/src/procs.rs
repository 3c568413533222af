//! Finding the Kubernetes processes in the host's `/proc`.
//!
//! kube-bench runs `ps -C <name>`, which matches the 15-character `comm`
//! (truncated names, rancher/cis-operator#119) and falls back to a literal
//! name when nothing runs. Here every `/proc/<pid>/cmdline` is read once
//! and the program is recognised from its own argv: the basename of
//! argv[0], or the sub-command of `hyperkube`, `k3s` and friends.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cmdline::split_cmdline;
use crate::definitions::Component;

/// The longest command line or environment we read (a component's argv is
/// a few KiB; more is not a Kubernetes component, and is skipped).
const MAX_CMDLINE: u64 = 1 << 20;
/// The longest `cgroup` file we read (one line per hierarchy).
const MAX_CGROUP: u64 = 64 << 10;

/// What a process is, as far as the checks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcKind {
    Component(Component),
    /// k3s runs kubelet, kube-proxy and (as `server`) the control plane
    /// inside its own process.
    K3s {
        server: bool,
    },
    /// The RKE2 supervisor; it starts a real kubelet process as a child.
    Rke2 {
        server: bool,
    },
}

/// A recognised process.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub kind: ProcKind,
    /// The full argv.
    pub argv: Vec<String>,
    /// Index in `argv` where the flags start (after `hyperkube kubelet`).
    pub flags_from: usize,
    /// Whether the process shares the mount namespace of PID 1; a kubelet of
    /// a kind/k3d node in a container does not.
    pub host_mount_ns: bool,
}

impl Process {
    pub fn flag_args(&self) -> &[String] {
        self.argv.get(self.flags_from..).unwrap_or(&[])
    }

    /// The program path as started (argv[0]).
    pub fn program(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }
}

/// Recognises a command line.
pub fn classify(argv: &[String]) -> Option<(ProcKind, usize)> {
    let program = argv.first()?;
    let base = program.rsplit('/').next().unwrap_or(program);
    let sub = argv.get(1).map(String::as_str).unwrap_or("");
    let component = |name: &str| -> Option<Component> {
        Some(match name {
            "kubelet" => Component::Kubelet,
            "kube-proxy" | "proxy" => Component::KubeProxy,
            "kube-apiserver" | "apiserver" => Component::KubeApiserver,
            "kube-controller-manager" | "controller-manager" => Component::KubeControllerManager,
            "kube-scheduler" | "scheduler" => Component::KubeScheduler,
            "etcd" => Component::Etcd,
            _ => return None,
        })
    };
    match base {
        "hyperkube" => component(sub).map(|c| (ProcKind::Component(c), 2)),
        "k3s" => match sub {
            "server" => Some((ProcKind::K3s { server: true }, 2)),
            "agent" => Some((ProcKind::K3s { server: false }, 2)),
            _ => None,
        },
        "rke2" => match sub {
            "server" => Some((ProcKind::Rke2 { server: true }, 2)),
            "agent" => Some((ProcKind::Rke2 { server: false }, 2)),
            _ => None,
        },
        // "proxy" and friends only count under hyperkube.
        "kubelet"
        | "kube-proxy"
        | "kube-apiserver"
        | "kube-controller-manager"
        | "kube-scheduler"
        | "etcd" => component(base).map(|c| (ProcKind::Component(c), 1)),
        _ => None,
    }
}

/// Scans `proc_dir` (the host's `/proc`) for Kubernetes processes. Processes
/// that vanish or cannot be read while scanning are skipped.
pub fn scan(proc_dir: &Path) -> std::io::Result<Vec<Process>> {
    let own_pid = std::process::id();
    let host_ns = fs::read_link(proc_dir.join("1/ns/mnt")).ok();
    let mut found = Vec::new();
    for entry in fs::read_dir(proc_dir)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own_pid && proc_dir == Path::new("/proc") {
            continue;
        }
        let dir = entry.path();
        let Ok(raw) = read_proc_file(&dir.join("cmdline"), MAX_CMDLINE) else {
            continue;
        };
        let argv = split_cmdline(&raw);
        let Some((kind, flags_from)) = classify(&argv) else {
            continue;
        };
        let ns = fs::read_link(dir.join("ns/mnt")).ok();
        let host_mount_ns = match (&host_ns, &ns) {
            (Some(h), Some(n)) => h == n,
            _ => true,
        };
        found.push(Process {
            pid,
            kind,
            argv,
            flags_from,
            host_mount_ns,
        });
    }
    // Host processes first, then by pid: the node's own kubelet wins over
    // the kubelets of nested (kind, k3d) nodes.
    found.sort_by_key(|p| (!p.host_mount_ns, p.pid));
    Ok(found)
}

/// Reads a `<proc>/<pid>/…` file: opened non-blocking, refused unless a
/// regular file (a FIFO or device planted in a fake or hostile `/proc`
/// must neither block nor stream gigabytes), at most `max` bytes (more is
/// an error, not a truncated read).
fn read_proc_file(path: &Path, max: u64) -> anyhow::Result<Vec<u8>> {
    nodeguard_common::input::read_regular_file(path, max)
}

/// Whether `proc_dir` holds any process directory at all (a `/proc` that is
/// not mounted under the host root is an empty directory).
pub fn has_processes(proc_dir: &Path) -> bool {
    fs::read_dir(proc_dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
    })
}

/// `/proc/<pid>/environ` as `KEY=value` pairs (for etcd's `ETCD_*`).
pub fn environ(proc_dir: &Path, pid: u32) -> Vec<(String, String)> {
    let Ok(raw) = read_proc_file(&proc_dir.join(pid.to_string()).join("environ"), MAX_CMDLINE)
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&raw)
        .split('\0')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The systemd unit a process runs in, from its cgroup path
/// (`0::/system.slice/kubelet.service`).
pub fn systemd_unit(proc_dir: &Path, pid: u32) -> Option<String> {
    let raw = read_proc_file(&proc_dir.join(pid.to_string()).join("cgroup"), MAX_CGROUP).ok()?;
    let text = String::from_utf8(raw).ok()?;
    text.lines().find_map(|line| {
        let path = line.rsplit(':').next()?;
        path.split('/')
            .rev()
            .find(|part| part.ends_with(".service"))
            .map(str::to_string)
    })
}

/// The chart values that lift bench-node's confinement when an LSM denies
/// it another process's `/proc/<pid>/root`.
pub const LSM_VALUES: nodeguard_common::lsm::ChartValues<'static> =
    nodeguard_common::lsm::ChartValues {
        apparmor: "benchNode.appArmorProfile",
        selinux: "benchNode.seLinuxType",
    };

/// One line for a failure to open `/proc/<pid>/root`: an `EACCES`/`EPERM`
/// names the LSM that likely denied it and the chart value that fixes it;
/// anything else says the host's paths are read instead.
pub fn proc_root_error(
    src: &dyn nodeguard_common::lsm::LsmSource,
    path: &Path,
    err: &std::io::Error,
) -> String {
    let fallback = "its paths are read on the host instead";
    match nodeguard_common::lsm::diagnose_with(src, path, err, &LSM_VALUES) {
        Some(line) => format!("{line} ({fallback})"),
        None => format!("cannot open {}: {err} ({fallback})", path.display()),
    }
}

/// The directory through which a process's own filesystem view is reached.
pub fn process_root(proc_dir: &Path, pid: u32) -> PathBuf {
    proc_dir.join(pid.to_string()).join("root")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn recognises_components_by_program_name() {
        assert_eq!(
            classify(&argv(&["/usr/bin/kubelet", "--v=2"])),
            Some((ProcKind::Component(Component::Kubelet), 1))
        );
        assert_eq!(
            classify(&argv(&["/hyperkube", "kubelet", "--v=2"])),
            Some((ProcKind::Component(Component::Kubelet), 2))
        );
        assert_eq!(
            classify(&argv(&["/usr/local/bin/k3s", "agent"])),
            Some((ProcKind::K3s { server: false }, 2))
        );
        // A grep for kubelet, or a shell wrapper, is not the kubelet.
        assert_eq!(classify(&argv(&["grep", "kubelet"])), None);
        assert_eq!(classify(&argv(&["/bin/sh", "-c", "kubelet --v=2"])), None);
        assert_eq!(classify(&argv(&["proxy"])), None);
    }

    #[test]
    fn unit_from_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("42")).unwrap();
        std::fs::write(
            dir.path().join("42/cgroup"),
            "0::/system.slice/kubelet.service\n",
        )
        .unwrap();
        assert_eq!(
            systemd_unit(dir.path(), 42).as_deref(),
            Some("kubelet.service")
        );
        assert_eq!(systemd_unit(dir.path(), 43), None);
    }

    struct Fake(&'static [(&'static str, &'static str)]);

    impl nodeguard_common::lsm::LsmSource for Fake {
        fn read(&self, path: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, text)| (*text).to_owned())
        }
    }

    const CAPS: (&str, &str) = (
        nodeguard_common::lsm::SELF_STATUS,
        "CapEff:\t00000000a80c25fb\n",
    );

    #[test]
    fn a_denied_proc_root_names_the_lsm_and_the_chart_value() {
        use nodeguard_common::lsm::{ATTR_CURRENT, LSM_LIST};
        let path = Path::new("/host/proc/812/root");
        let eacces = std::io::Error::from_raw_os_error(nix::libc::EACCES);
        let apparmor = Fake(&[
            (LSM_LIST, "capability,apparmor"),
            (ATTR_CURRENT, "cri-containerd.apparmor.d (enforce)"),
            CAPS,
        ]);
        let line = proc_root_error(&apparmor, path, &eacces);
        assert!(
            line.contains("AppArmor") && line.contains("benchNode.appArmorProfile"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let selinux = Fake(&[
            (LSM_LIST, "selinux"),
            (ATTR_CURRENT, "system_u:system_r:container_t:s0:c1,c2"),
            CAPS,
        ]);
        let eperm = std::io::Error::from_raw_os_error(nix::libc::EPERM);
        let line = proc_root_error(&selinux, path, &eperm);
        assert!(
            line.contains("SELinux") && line.contains("benchNode.seLinuxType"),
            "{line}"
        );
        let line = proc_root_error(&Fake(&[CAPS]), path, &eacces);
        assert!(
            line.contains("AppArmor or SELinux")
                && line.contains("benchNode.appArmorProfile")
                && line.contains("benchNode.seLinuxType"),
            "{line}"
        );
        let enoent = std::io::Error::from_raw_os_error(nix::libc::ENOENT);
        let line = proc_root_error(&apparmor, path, &enoent);
        assert!(
            !line.contains("AppArmor") && line.contains("812/root"),
            "{line}"
        );
    }

    #[test]
    fn devices_and_oversized_files_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("42")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("42/environ")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("42/cgroup")).unwrap();
        assert!(environ(dir.path(), 42).is_empty());
        assert_eq!(systemd_unit(dir.path(), 42), None);
        let big = vec![b'a'; usize::try_from(MAX_CMDLINE).unwrap() + 1];
        std::fs::create_dir_all(dir.path().join("43")).unwrap();
        std::fs::write(dir.path().join("43/cmdline"), big).unwrap();
        assert!(read_proc_file(&dir.path().join("43/cmdline"), MAX_CMDLINE).is_err());
    }
}
