//! A running container's root filesystem as a plain directory Trivy can
//! walk.
//!
//! `/proc/<pid>/root` is a magic symlink: Trivy (0.76) `lstat`s the target
//! it is given, sees a symlink, and walks nothing, printing an empty report
//! and no error. A trailing `/` or `/.` does not help (Go cleans paths
//! lexically). So the container's root is found by device instead: the
//! filesystem `/proc/<pid>/root` leads to (an overlay mount on containerd
//! and CRI-O) is also mounted in the host's mount namespace, at a real path
//! (`…/io.containerd.runtime.v2.task/k8s.io/<id>/rootfs`,
//! `/var/lib/containers/storage/overlay/<id>/merged`); the host's
//! `mountinfo` names it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nodeguard_common::lsm::{self, ChartValues, LsmSource, SystemFiles};

/// The chart values that lift scan-images' confinement when an LSM denies
/// it another process's `/proc/<pid>/root` (the CRI-O fallback).
pub const LSM_VALUES: ChartValues<'static> = ChartValues {
    apparmor: "scanImages.appArmorProfile",
    selinux: "scanImages.seLinuxType",
};

/// One line for a failure to follow `/proc/<pid>/root`: an `EACCES` or
/// `EPERM` names the LSM that likely denied it (AppArmor or SELinux) and
/// the chart value that fixes it; anything else says what is needed.
pub fn proc_root_error(src: &dyn LsmSource, proc_root: &Path, err: &std::io::Error) -> String {
    lsm::diagnose_with(src, proc_root, err, &LSM_VALUES).unwrap_or_else(|| {
        format!(
            "{} is not readable (hostPID and CAP_SYS_PTRACE needed): {err}",
            proc_root.display()
        )
    })
}

/// Mount points (unescaped) of mounts of device `major:minor` whose root is
/// the filesystem's root, in `/proc/<pid>/mountinfo` order.
pub fn mount_points_for(mountinfo: &str, major: u64, minor: u64) -> Vec<String> {
    let want = format!("{major}:{minor}");
    mountinfo
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (_id, _parent, dev, root, point) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            (dev == want && root == "/").then(|| unescape(point))
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        // `\\777` does not fit a byte: kept as written, never wrapped.
        let escaped = octal.and_then(|d| {
            let value = d
                .iter()
                .fold(0u32, |n, digit| n * 8 + u32::from(digit - b'0'));
            u8::try_from(value).ok()
        });
        match (bytes.get(i), escaped) {
            (Some(b'\\'), Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (Some(&b), _) => {
                out.push(b);
                i += 1;
            }
            (None, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host directory holding the root filesystem of process `pid`, under
/// `host_root`. Reads `<host_root>/proc/<pid>/root` (needs `hostPID` and
/// `CAP_SYS_PTRACE`) and the host's mount table (`<host_root>/proc/1/mountinfo`).
pub fn container_rootfs(host_root: &Path, pid: u32) -> Result<PathBuf> {
    let proc_root = host_root.join(format!("proc/{pid}/root"));
    let dev = std::fs::metadata(&proc_root)
        .map_err(|e| anyhow::anyhow!(proc_root_error(&SystemFiles, &proc_root, &e)))?
        .dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let table_path = host_root.join("proc/1/mountinfo");
    let table = nodeguard_common::input::read_regular_file_to_string(&table_path, 64 << 20)
        .with_context(|| format!("reading the host's mount table {}", table_path.display()))?;
    // A container's root is its own mount, never the host's `/`; among
    // several mounts of the device the deepest is the container's.
    let mut points: Vec<String> = mount_points_for(&table, major, minor)
        .into_iter()
        .filter(|p| p != "/")
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let candidate = host_root.join(point.trim_start_matches('/'));
        // Same device seen from here: not a path hidden under another mount.
        if std::fs::metadata(&candidate).is_ok_and(|m| m.is_dir() && m.dev() == dev) {
            return Ok(candidate);
        }
    }
    bail!(
        "the root filesystem of pid {pid} (device {major}:{minor}) is not mounted anywhere under {} \
         according to {}",
        host_root.display(),
        table_path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
45 27 0:40 / /run/containerd/io.containerd.runtime.v2.task/k8s.io/7a9a/rootfs rw,relatime - overlay overlay rw,lowerdir=/a
46 27 0:40 /etc /elsewhere rw - overlay overlay rw
57 27 0:49 / /var/lib/containers/storage/overlay/3f1c/merged rw - overlay overlay rw
58 27 0:50 / /mnt/with\\040space rw - tmpfs tmpfs rw";

    #[test]
    fn finds_the_mount_point_of_a_device_root() {
        assert_eq!(
            mount_points_for(MOUNTINFO, 0, 40),
            vec!["/run/containerd/io.containerd.runtime.v2.task/k8s.io/7a9a/rootfs".to_string()],
            "the /etc bind of the same device is not the root"
        );
        assert_eq!(
            mount_points_for(MOUNTINFO, 0, 49),
            vec!["/var/lib/containers/storage/overlay/3f1c/merged"]
        );
        assert_eq!(mount_points_for(MOUNTINFO, 0, 50), vec!["/mnt/with space"]);
        assert!(mount_points_for(MOUNTINFO, 0, 99).is_empty());
        assert!(mount_points_for("garbage\n\n1 2", 0, 40).is_empty());
        // Regression: an escape past 255 overflowed a byte.
        assert_eq!(unescape("/a\\777b\\04"), "/a\\777b\\04");
    }

    struct Fake(&'static [(&'static str, &'static str)]);

    impl LsmSource for Fake {
        fn read(&self, path: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, text)| (*text).to_owned())
        }
    }

    const CAPS: (&str, &str) = (lsm::SELF_STATUS, "CapEff:\t00000000a80c25fb\n");

    #[test]
    fn a_denied_proc_root_names_the_lsm_and_the_chart_value() {
        let path = Path::new("/host/proc/42/root");
        let eacces = std::io::Error::from_raw_os_error(nix::libc::EACCES);
        let apparmor = Fake(&[
            (lsm::LSM_LIST, "lockdown,capability,apparmor"),
            (lsm::ATTR_CURRENT, "cri-containerd.apparmor.d (enforce)"),
            CAPS,
        ]);
        let line = proc_root_error(&apparmor, path, &eacces);
        assert!(
            line.contains("AppArmor") && line.contains("scanImages.appArmorProfile"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
        let selinux = Fake(&[
            (lsm::LSM_LIST, "selinux"),
            (lsm::ATTR_CURRENT, "system_u:system_r:container_t:s0:c1,c2"),
            CAPS,
        ]);
        let eperm = std::io::Error::from_raw_os_error(nix::libc::EPERM);
        let line = proc_root_error(&selinux, path, &eperm);
        assert!(
            line.contains("SELinux") && line.contains("scanImages.seLinuxType"),
            "{line}"
        );
        let unknown = proc_root_error(&Fake(&[CAPS]), path, &eacces);
        assert!(
            unknown.contains("AppArmor or SELinux")
                && unknown.contains("scanImages.appArmorProfile")
                && unknown.contains("scanImages.seLinuxType"),
            "{unknown}"
        );
        // Not a denial: no LSM is blamed.
        let enoent = std::io::Error::from_raw_os_error(nix::libc::ENOENT);
        let line = proc_root_error(&apparmor, path, &enoent);
        assert!(
            line.contains("is not readable") && !line.contains("AppArmor"),
            "{line}"
        );
    }

    #[test]
    fn resolves_through_a_fake_host_root() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path();
        std::fs::create_dir_all(host.join("proc/42/root")).unwrap();
        std::fs::create_dir_all(host.join("state/task/rootfs")).unwrap();
        std::fs::create_dir_all(host.join("proc/1")).unwrap();
        let dev = std::fs::metadata(host.join("proc/42/root")).unwrap().dev();
        let (ma, mi) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
        std::fs::write(
            host.join("proc/1/mountinfo"),
            format!(
                "1 0 {ma}:{mi} / / rw - x x rw\n2 0 {ma}:{mi} /sub /elsewhere rw - x x rw\n\
                 3 0 {ma}:{mi} / /state/task/rootfs rw - x x rw\n"
            ),
        )
        .unwrap();
        assert_eq!(
            container_rootfs(host, 42).unwrap(),
            host.join("state/task/rootfs")
        );
        let err = container_rootfs(host, 43).unwrap_err();
        assert!(
            format!("{err:#}").contains("proc/43/root is not readable"),
            "{err:#}"
        );
        std::fs::write(host.join("proc/1/mountinfo"), "").unwrap();
        let err = container_rootfs(host, 42).unwrap_err();
        assert!(
            format!("{err:#}").contains("is not mounted anywhere"),
            "{err:#}"
        );
    }
}
