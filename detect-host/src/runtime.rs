//! Container runtime sockets and kubelet presence under the host root.
//!
//! Only existence is checked (a socket must be a socket); nothing is
//! connected to, so the tool needs no access beyond a read-only host mount.

use std::os::unix::fs::FileTypeExt;

use nodeguard_common::HostRoot;
use serde::{Deserialize, Serialize};

/// `runtime` in the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeFacts {
    /// CRI/runtime sockets that exist, in [`SOCKETS`] order.
    pub sockets: Vec<RuntimeSocket>,
    /// Kubelet binaries and configuration found.
    pub kubelet: KubeletFacts,
}

/// One runtime socket that exists on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeSocket {
    /// `containerd`, `crio`, `k3s-containerd`, `cri-dockerd` or `docker`.
    pub runtime: String,
    /// Host path of the socket, e.g. `/run/containerd/containerd.sock`.
    pub path: String,
}

/// `runtime.kubelet` in the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeletFacts {
    /// True when a kubelet binary or a kubelet config exists.
    pub present: bool,
    /// Host paths of kubelet binaries (or of k3s/RKE2, which embed it).
    pub binaries: Vec<String>,
    /// Host paths of kubelet configuration files and kubeconfigs.
    pub configs: Vec<String>,
}

/// Runtime sockets by runtime name. `/var/run` is a link to `/run` on every
/// current distribution and is resolved inside the root, so each socket is
/// listed once. K3s and RKE2 share the embedded containerd's path.
pub const SOCKETS: &[(&str, &str)] = &[
    ("containerd", "run/containerd/containerd.sock"),
    ("crio", "run/crio/crio.sock"),
    ("k3s-containerd", "run/k3s/containerd/containerd.sock"),
    ("cri-dockerd", "run/cri-dockerd.sock"),
    ("docker", "run/docker.sock"),
];

/// Where distributions and installers put the kubelet binary.
pub const KUBELET_BINARIES: &[&str] = &[
    "usr/bin/kubelet",
    "usr/local/bin/kubelet",
    "opt/bin/kubelet",
    "home/kubernetes/bin/kubelet",
    "var/lib/rancher/rke2/bin/kubelet",
    "usr/local/bin/k3s",
];

/// kubelet configs: kubeadm, EKS (AL2 and AL2023 nodeadm), Bottlerocket,
/// GKE/COS, k3s and RKE2.
pub const KUBELET_CONFIGS: &[&str] = &[
    "var/lib/kubelet/config.yaml",
    "etc/kubernetes/kubelet.conf",
    "etc/kubernetes/kubelet/kubelet-config.json",
    "etc/kubernetes/kubelet/config.json",
    "etc/kubernetes/kubelet/config",
    "home/kubernetes/kubelet-config.yaml",
    "var/lib/rancher/k3s/agent/kubelet.kubeconfig",
    "var/lib/rancher/rke2/agent/kubelet.kubeconfig",
];

/// Looks for the sockets, binaries and configs under the host root.
pub fn gather(root: &HostRoot) -> RuntimeFacts {
    let host = |rel: &str| format!("/{rel}");
    let sockets = SOCKETS
        .iter()
        .filter(|(_, rel)| root.metadata(rel).is_ok_and(|m| m.file_type().is_socket()))
        .map(|&(runtime, rel)| RuntimeSocket {
            runtime: runtime.to_owned(),
            path: host(rel),
        })
        .collect();
    let files = |paths: &[&str]| -> Vec<String> {
        paths
            .iter()
            .filter(|rel| root.metadata(rel).is_ok_and(|m| m.is_file()))
            .map(|rel| host(rel))
            .collect()
    };
    let binaries = files(KUBELET_BINARIES);
    let configs = files(KUBELET_CONFIGS);
    RuntimeFacts {
        sockets,
        kubelet: KubeletFacts {
            present: !binaries.is_empty() || !configs.is_empty(),
            binaries,
            configs,
        },
    }
}
