//! Reaching a containerised process's files through the host root, not
//! through `/proc/<pid>/root`.
//!
//! Following another process's `/proc/<pid>/root` is a ptrace-read access
//! check: the runtime's default AppArmor profile and SELinux's
//! `container_t` deny it, so bench-node would need a weaker confinement.
//! `/proc/<pid>/mountinfo` has no such check, and says for every mount of
//! the process which filesystem (`major:minor`) and which directory of it
//! (`root`) is mounted where. The host's own table (`/proc/1/mountinfo`)
//! says where that same directory is in the host's tree, which bench-node
//! reads through its host-root mount. kube-proxy's config, a ConfigMap
//! volume at `/var/lib/kube-proxy`, is then found at
//! `/var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~configmap/kube-proxy`.

use std::path::Path;

/// The largest mount table read (thousands of mounts are ~1 MiB).
const MAX_MOUNTINFO: u64 = 16 << 20;

/// One line of a mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the filesystem.
    pub dev: String,
    /// The directory of the filesystem that is mounted (unescaped).
    pub root: String,
    /// Where it is mounted, in the process's view (unescaped).
    pub point: String,
}

/// A mount table: `/proc/<pid>/mountinfo`, in mount order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountTable(pub Vec<Mount>);

impl MountTable {
    /// Reads `<proc_dir>/<pid>/mountinfo` (a capped regular file).
    pub fn read(proc_dir: &Path, pid: u32) -> anyhow::Result<MountTable> {
        let path = proc_dir.join(pid.to_string()).join("mountinfo");
        let bytes = nodeguard_common::input::read_regular_file(&path, MAX_MOUNTINFO)?;
        Ok(MountTable::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// Parses mountinfo text; malformed lines are skipped.
    pub fn parse(text: &str) -> MountTable {
        MountTable(
            text.lines()
                .filter_map(|line| {
                    let mut fields = line.split(' ');
                    let _id = fields.next()?;
                    let _parent = fields.next()?;
                    let dev = fields.next()?;
                    let root = fields.next()?;
                    let point = fields.next()?;
                    (dev.contains(':') && root.starts_with('/') && point.starts_with('/')).then(
                        || Mount {
                            dev: dev.to_owned(),
                            root: unescape(root),
                            point: unescape(point),
                        },
                    )
                })
                .collect(),
        )
    }

    /// The mount that holds `path`: the deepest mount point above it, the
    /// last mounted when several share one.
    fn holding(&self, path: &str) -> Option<(&Mount, String)> {
        self.0
            .iter()
            .filter_map(|m| below(path, &m.point).map(|rest| (m, rest)))
            .fold(
                None,
                |best: Option<(&Mount, String)>, (m, rest)| match best {
                    Some((b, _)) if b.point.len() > m.point.len() => best,
                    _ => Some((m, rest)),
                },
            )
    }
}

/// A containerised process's mount table and the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessView {
    /// `/proc/<pid>/mountinfo`.
    pub own: MountTable,
    /// `/proc/1/mountinfo`.
    pub host: MountTable,
}

impl ProcessView {
    /// A path of the process as a host path (see [`host_path`]).
    pub fn host_path(&self, path: &str) -> Option<String> {
        host_path(&self.own, &self.host, path)
    }
}

/// `path` as seen by the process whose mounts are `process`, as a path in
/// the host's tree (per the host's table `host`); `None` when the
/// filesystem is not mounted in the host's namespace, or only elsewhere.
pub fn host_path(process: &MountTable, host: &MountTable, path: &str) -> Option<String> {
    let (mount, rest) = process.holding(path)?;
    let target = join(&mount.root, &rest);
    host.0
        .iter()
        .filter(|m| m.dev == mount.dev)
        .filter_map(|m| below(&target, &m.root).map(|inner| (m, inner)))
        // The host mount showing the most of the filesystem: its root is
        // the shortest (the whole filesystem at `/` wins over a bind).
        .min_by_key(|(m, _)| m.root.len())
        .map(|(m, inner)| join(&m.point, &inner))
}

/// What follows `prefix` in `path` ("" for `path` itself), component-wise:
/// `/var/lib` is not below `/var/li`.
fn below(path: &str, prefix: &str) -> Option<String> {
    if prefix == "/" {
        return Some(path.trim_start_matches('/').to_owned());
    }
    let rest = path.strip_prefix(prefix.trim_end_matches('/'))?;
    if rest.is_empty() {
        return Some(String::new());
    }
    rest.strip_prefix('/').map(str::to_owned)
}

fn join(dir: &str, rest: &str) -> String {
    if rest.is_empty() {
        return dir.to_owned();
    }
    format!("{}/{rest}", dir.trim_end_matches('/'))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`; an
/// escape past 255 is kept as written.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = bytes
            .get(i + 1..i + 4)
            .filter(|d| b == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| {
                let n = d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0'));
                u8::try_from(n).ok()
            });
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kube-proxy's mounts in a kubeadm pod (root filesystem 8:1; a
    /// projected token on tmpfs 0:60).
    const PROXY: &str = "\
1200 1100 0:70 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/x
1201 1200 8:1 /var/lib/kubelet/pods/u1/volumes/kubernetes.io~configmap/kube-proxy /var/lib/kube-proxy ro,relatime - ext4 /dev/sda1 rw
1202 1200 0:60 / /var/run/secrets/kubernetes.io/serviceaccount ro,relatime - tmpfs tmpfs rw
1203 1200 8:1 /run/xtables.lock /run/xtables.lock rw - ext4 /dev/sda1 rw
1204 1200 8:1 /mnt/with\\040space /data rw - ext4 /dev/sda1 rw";

    /// The host's mounts: `/` from 8:1, the token tmpfs under the pod dir,
    /// the container's overlay at its task dir.
    const HOST: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 22 0:60 / /var/lib/kubelet/pods/u1/volumes/kubernetes.io~projected/kube-api-access-x rw - tmpfs tmpfs rw
91 22 0:70 / /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs rw - overlay overlay rw";

    fn map(path: &str) -> Option<String> {
        host_path(&MountTable::parse(PROXY), &MountTable::parse(HOST), path)
    }

    #[test]
    fn a_configmap_volume_maps_to_the_pod_directory() {
        assert_eq!(
            map("/var/lib/kube-proxy/config.conf").as_deref(),
            Some("/var/lib/kubelet/pods/u1/volumes/kubernetes.io~configmap/kube-proxy/config.conf")
        );
        assert_eq!(
            map("/var/lib/kube-proxy").as_deref(),
            Some("/var/lib/kubelet/pods/u1/volumes/kubernetes.io~configmap/kube-proxy")
        );
    }

    #[test]
    fn tmpfs_overlay_file_binds_and_escapes_map_too() {
        assert_eq!(
            map("/var/run/secrets/kubernetes.io/serviceaccount/token").as_deref(),
            Some(
                "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~projected/kube-api-access-x/token"
            )
        );
        assert_eq!(
            map("/usr/local/bin/kube-proxy").as_deref(),
            Some("/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs/usr/local/bin/kube-proxy")
        );
        assert_eq!(
            map("/run/xtables.lock").as_deref(),
            Some("/run/xtables.lock")
        );
        assert_eq!(map("/data/f").as_deref(), Some("/mnt/with space/f"));
        // `/var/lib/kube-proxy-x` is not inside `/var/lib/kube-proxy`.
        assert_eq!(
            map("/var/lib/kube-proxy-x/f").as_deref(),
            Some("/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs/var/lib/kube-proxy-x/f")
        );
    }

    #[test]
    fn unknown_filesystems_and_garbage_map_to_nothing() {
        let proxy = MountTable::parse("1 0 0:99 / / rw - tmpfs t rw\ngarbage\n\n1 2 3");
        assert_eq!(proxy.0.len(), 1);
        assert_eq!(host_path(&proxy, &MountTable::parse(HOST), "/etc/x"), None);
        assert_eq!(unescape("/a\\777\\04"), "/a\\777\\04");
    }
}
