//! Node layouts (kubeadm, k3s, RKE2, EKS, Bottlerocket, GKE, AKS) and where
//! each keeps the files the checks look at.
//!
//! These paths are a fallback: a file the running kubelet names on its
//! command line (or in its config) always wins. They are used when no
//! process is visible (no `hostPID`) or the component does not say.

use serde::Serialize;

use nodeguard_common::hostroot::HostRoot;

use crate::procs::{ProcKind, Process};

/// How the node was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    Kubeadm,
    K3s,
    Rke2,
    /// EKS optimized AMI on Amazon Linux 2.
    EksAl2,
    /// EKS optimized AMI on Amazon Linux 2023 (nodeadm).
    EksAl2023,
    Bottlerocket,
    /// GKE on Container-Optimized OS.
    Gke,
    Aks,
    /// Anything else: only what the processes say is used.
    Plain,
}

impl Layout {
    /// Detects the layout from running processes and marker files.
    pub fn detect(host: &HostRoot, processes: &[Process]) -> Layout {
        let running = |pred: &dyn Fn(ProcKind) -> bool| processes.iter().any(|p| pred(p.kind));
        if running(&|k| matches!(k, ProcKind::K3s { .. })) || host.exists("/var/lib/rancher/k3s") {
            return Layout::K3s;
        }
        if running(&|k| matches!(k, ProcKind::Rke2 { .. })) || host.exists("/var/lib/rancher/rke2")
        {
            return Layout::Rke2;
        }
        if os_release_id(host).as_deref() == Some("bottlerocket") {
            return Layout::Bottlerocket;
        }
        if host.exists("/etc/kubernetes/kubelet/config.json") || host.exists("/etc/eks/nodeadm") {
            return Layout::EksAl2023;
        }
        if host.exists("/etc/kubernetes/kubelet/kubelet-config.json") || host.exists("/etc/eks") {
            return Layout::EksAl2;
        }
        if host.exists("/home/kubernetes/kubelet-config.yaml") {
            return Layout::Gke;
        }
        if host.exists("/etc/kubernetes/azure.json") {
            return Layout::Aks;
        }
        if host.exists("/etc/kubernetes/kubelet.conf")
            || host.exists("/var/lib/kubelet/kubeadm-flags.env")
            || host.exists("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf")
            || host.exists("/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf")
        {
            return Layout::Kubeadm;
        }
        Layout::Plain
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::Kubeadm => "kubeadm",
            Layout::K3s => "k3s",
            Layout::Rke2 => "rke2",
            Layout::EksAl2 => "eks-al2",
            Layout::EksAl2023 => "eks-al2023",
            Layout::Bottlerocket => "bottlerocket",
            Layout::Gke => "gke",
            Layout::Aks => "aks",
            Layout::Plain => "plain",
        }
    }

    /// The kubelet's kubeconfig.
    pub fn kubelet_kubeconfig(self) -> &'static [&'static str] {
        match self {
            Layout::Kubeadm => &["/etc/kubernetes/kubelet.conf"],
            Layout::K3s => &["/var/lib/rancher/k3s/agent/kubelet.kubeconfig"],
            Layout::Rke2 => &["/var/lib/rancher/rke2/agent/kubelet.kubeconfig"],
            Layout::EksAl2 | Layout::EksAl2023 | Layout::Gke | Layout::Aks => {
                &["/var/lib/kubelet/kubeconfig"]
            }
            Layout::Bottlerocket => &["/etc/kubernetes/kubelet/kubeconfig"],
            Layout::Plain => &[],
        }
    }

    /// The kubelet's `--config` file.
    pub fn kubelet_config(self) -> &'static [&'static str] {
        match self {
            Layout::Kubeadm => &["/var/lib/kubelet/config.yaml"],
            Layout::EksAl2 => &["/etc/kubernetes/kubelet/kubelet-config.json"],
            Layout::EksAl2023 => &["/etc/kubernetes/kubelet/config.json"],
            Layout::Bottlerocket => &["/etc/kubernetes/kubelet/config"],
            Layout::Gke => &["/home/kubernetes/kubelet-config.yaml"],
            Layout::Aks => &["/etc/default/kubeletconfig.json"],
            Layout::K3s | Layout::Rke2 | Layout::Plain => &[],
        }
    }

    /// The kubelet's `--config-dir` drop-in directory.
    pub fn kubelet_config_dir(self) -> Option<&'static str> {
        match self {
            Layout::K3s => Some("/var/lib/rancher/k3s/agent/etc/kubelet.conf.d"),
            Layout::Rke2 => Some("/var/lib/rancher/rke2/agent/etc/kubelet.conf.d"),
            Layout::EksAl2023 => Some("/etc/kubernetes/kubelet/config.json.d"),
            _ => None,
        }
    }

    /// The CA bundle the kubelet verifies clients against.
    pub fn kubelet_client_ca(self) -> &'static [&'static str] {
        match self {
            Layout::Kubeadm | Layout::EksAl2 | Layout::EksAl2023 | Layout::Bottlerocket => {
                &["/etc/kubernetes/pki/ca.crt"]
            }
            Layout::K3s => &["/var/lib/rancher/k3s/agent/client-ca.crt"],
            Layout::Rke2 => &["/var/lib/rancher/rke2/agent/client-ca.crt"],
            Layout::Gke => &["/etc/srv/kubernetes/pki/ca-certificates.crt"],
            Layout::Aks => &["/etc/kubernetes/certs/ca.crt"],
            Layout::Plain => &[],
        }
    }

    /// Systemd units that may run the kubelet, most specific first.
    pub fn kubelet_units(self) -> &'static [&'static str] {
        match self {
            Layout::K3s => &["k3s.service", "k3s-agent.service"],
            Layout::Rke2 => &["rke2-server.service", "rke2-agent.service"],
            _ => &["kubelet.service"],
        }
    }

    /// kube-proxy's kubeconfig when no kube-proxy process says.
    pub fn proxy_kubeconfig(self) -> &'static [&'static str] {
        match self {
            Layout::K3s => &["/var/lib/rancher/k3s/agent/kubeproxy.kubeconfig"],
            Layout::Rke2 => &["/var/lib/rancher/rke2/agent/kubeproxy.kubeconfig"],
            Layout::EksAl2 | Layout::EksAl2023 => &["/var/lib/kube-proxy/kubeconfig"],
            _ => &["/etc/kubernetes/proxy.conf"],
        }
    }

    /// Static pod manifests of the control plane.
    pub fn manifest_dir(self) -> &'static str {
        match self {
            Layout::Rke2 => "/var/lib/rancher/rke2/agent/pod-manifests",
            _ => "/etc/kubernetes/manifests",
        }
    }

    /// The control plane's PKI directory.
    pub fn pki_dir(self) -> &'static str {
        match self {
            Layout::K3s => "/var/lib/rancher/k3s/server/tls",
            Layout::Rke2 => "/var/lib/rancher/rke2/server/tls",
            _ => "/etc/kubernetes/pki",
        }
    }

    /// Cluster-admin kubeconfigs written by the installer.
    pub fn admin_kubeconfigs(self) -> &'static [&'static str] {
        match self {
            Layout::K3s => &["/etc/rancher/k3s/k3s.yaml"],
            Layout::Rke2 => &["/etc/rancher/rke2/rke2.yaml"],
            _ => &[
                "/etc/kubernetes/admin.conf",
                "/etc/kubernetes/super-admin.conf",
            ],
        }
    }

    pub fn cni_dir(self) -> &'static str {
        match self {
            Layout::K3s => "/var/lib/rancher/k3s/agent/etc/cni/net.d",
            _ => "/etc/cni/net.d",
        }
    }

    pub fn etcd_data_dir(self) -> &'static str {
        match self {
            Layout::K3s => "/var/lib/rancher/k3s/server/db/etcd",
            Layout::Rke2 => "/var/lib/rancher/rke2/server/db/etcd",
            _ => "/var/lib/etcd",
        }
    }
}

/// `ID=` of the host's os-release.
fn os_release_id(host: &HostRoot) -> Option<String> {
    let text = host
        .read_limited("/etc/os-release", 64 * 1024)
        .or_else(|_| host.read_limited("/usr/lib/os-release", 64 * 1024))
        .ok()?;
    String::from_utf8_lossy(&text).lines().find_map(|line| {
        line.strip_prefix("ID=")
            .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
    })
}

/// Systemd unit directories, in systemd's precedence order.
pub const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// k3s' built-in kubelet arguments (pkg/daemons/agent), applied before the
/// user's `kubelet-arg` entries.
pub const K3S_KUBELET_ARGS: &[&str] = &[
    "--anonymous-auth=false",
    "--authentication-token-webhook=true",
    "--authorization-mode=Webhook",
    "--client-ca-file=/var/lib/rancher/k3s/agent/client-ca.crt",
    "--kubeconfig=/var/lib/rancher/k3s/agent/kubelet.kubeconfig",
    "--read-only-port=0",
    "--tls-cert-file=/var/lib/rancher/k3s/agent/serving-kubelet.crt",
    "--tls-private-key-file=/var/lib/rancher/k3s/agent/serving-kubelet.key",
];
