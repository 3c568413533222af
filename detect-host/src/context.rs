//! Warnings about *where* the tool looks, which no file can tell by itself:
//!
//! - the host root is `/` but this process runs in a container (a pod's
//!   service-account environment, `/.dockerenv`, `/run/.containerenv`): the
//!   report then describes the container image, not the node — the usual
//!   DaemonSet mistake of forgetting the host mount;
//! - the host root is Bottlerocket's admin or control container (Amazon
//!   Linux 2), whose host filesystem is mounted at `/.bottlerocket/rootfs`.

use nodeguard_common::HostRoot;

/// Marker files container engines put in a container's root.
pub const CONTAINER_MARKERS: &[&str] = &[".dockerenv", "run/.containerenv"];

/// Where Bottlerocket mounts the host's root into its host containers.
pub const BOTTLEROCKET_HOST_ROOTFS: &str = ".bottlerocket/rootfs";

/// What was observed; every field is cheap to gather.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The host root is this process's own `/`.
    pub root_is_own: bool,
    /// `KUBERNETES_SERVICE_HOST` is set: we run in a pod.
    pub in_pod: bool,
    /// A container marker file exists in our own root.
    pub container_marker: Option<&'static str>,
    /// `/.bottlerocket/rootfs/usr/lib/os-release` exists under the host root.
    pub bottlerocket_rootfs: bool,
}

/// The warnings a context deserves.
pub fn warnings(ctx: &Context) -> Vec<String> {
    let mut out = Vec::new();
    if ctx.root_is_own && (ctx.in_pod || ctx.container_marker.is_some()) {
        let why = if ctx.in_pod {
            "KUBERNETES_SERVICE_HOST is set".to_owned()
        } else {
            format!("/{} exists", ctx.container_marker.unwrap_or_default())
        };
        out.push(format!(
            "host root is / but this process runs in a container ({why}): the report \
             describes the container image, not the node; mount the host's / \
             (e.g. at /host) and pass --host-root"
        ));
    }
    if ctx.bottlerocket_rootfs {
        out.push(format!(
            "this is a Bottlerocket host container; the host itself is at \
             /{BOTTLEROCKET_HOST_ROOTFS}: pass --host-root /{BOTTLEROCKET_HOST_ROOTFS}"
        ));
    }
    out
}

/// Observes the context of a run against `root`.
pub fn gather(root: &HostRoot) -> Context {
    let root_is_own = root.is_own_root();
    Context {
        root_is_own,
        in_pod: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
        container_marker: if root_is_own {
            CONTAINER_MARKERS
                .iter()
                .copied()
                .find(|rel| root.symlink_metadata(rel).is_ok())
        } else {
            None
        },
        bottlerocket_rootfs: root
            .metadata(format!("{BOTTLEROCKET_HOST_ROOTFS}/usr/lib/os-release"))
            .is_ok_and(|m| m.is_file()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_root_in_a_pod_warns() {
        let ctx = Context {
            root_is_own: true,
            in_pod: true,
            ..Context::default()
        };
        let w = warnings(&ctx);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("KUBERNETES_SERVICE_HOST"), "{w:?}");
    }

    #[test]
    fn own_root_with_container_marker_warns() {
        let ctx = Context {
            root_is_own: true,
            container_marker: Some(".dockerenv"),
            ..Context::default()
        };
        assert!(warnings(&ctx)[0].contains("/.dockerenv exists"));
    }

    #[test]
    fn mounted_host_root_in_a_pod_is_fine() {
        let ctx = Context {
            root_is_own: false,
            in_pod: true,
            ..Context::default()
        };
        assert!(warnings(&ctx).is_empty());
        assert!(warnings(&Context::default()).is_empty());
    }

    #[test]
    fn bottlerocket_admin_container_points_at_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let os_release = dir.path().join(".bottlerocket/rootfs/usr/lib/os-release");
        std::fs::create_dir_all(os_release.parent().unwrap()).unwrap();
        std::fs::write(&os_release, "ID=bottlerocket\n").unwrap();
        let ctx = gather(&HostRoot::open(dir.path()).unwrap());
        assert!(ctx.bottlerocket_rootfs);
        assert!(warnings(&ctx)[0].contains("--host-root /.bottlerocket/rootfs"));
    }
}
