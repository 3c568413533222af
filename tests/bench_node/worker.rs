//! Every worker check (section 4) passes on a hardened kubeadm node and
//! fails on that node with one thing changed: one table row per check.

use super::fixture::{can_chown, go_binary_with_version, Node, Results};

/// The kubelet config kubeadm 1.31 writes, hardened where CIS asks.
pub const KUBEADM_CONFIG: &str = "\
apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: \"\"
cpuManagerReconcilePeriod: 0s
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMaximumGCAge: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: \"0\"
  verbosity: 0
makeIPTablesUtilChains: true
memorySwap: {}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
podPidsLimit: 4096
readOnlyPort: 0
rotateCertificates: true
runtimeRequestTimeout: 0s
seccompDefault: true
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
tlsCertFile: /var/lib/kubelet/pki/kubelet.crt
tlsCipherSuites:
- TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
- TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
- TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
tlsPrivateKeyFile: /var/lib/kubelet/pki/kubelet.key
volumeStatsAggPeriod: 0s
";

const KUBEADM_DROP_IN: &str = "\
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
";

pub const KUBECONFIG: &str = "\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTi==
    server: https://10.0.0.10:6443
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
";

pub const PROXY_CONFIG: &str = "\
apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
clusterCIDR: 10.244.0.0/16
kind: KubeProxyConfiguration
metricsBindAddress: 127.0.0.1:10249
mode: iptables
";

pub const KUBELET_PID: u32 = 812;
pub const PROXY_PID: u32 = 1490;

/// A change applied to the hardened worker.
#[derive(Clone, Copy, Debug)]
pub enum Change {
    Mode(&'static str, u32),
    Owner(&'static str, u32, u32),
    /// Replace text in the kubelet config file.
    Config(&'static str, &'static str),
    /// Extra kubelet command-line argument.
    Arg(&'static str),
    /// Replace text in kube-proxy's config (inside its pod).
    Proxy(&'static str, &'static str),
}

/// The hardened kubeadm worker, with changes applied.
pub struct Worker {
    pub config: String,
    pub args: Vec<&'static str>,
    pub proxy_config: String,
    pub changes: Vec<Change>,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            config: KUBEADM_CONFIG.to_string(),
            args: Vec::new(),
            proxy_config: PROXY_CONFIG.to_string(),
            changes: Vec::new(),
        }
    }
}

impl Worker {
    pub fn with(mut self, change: Change) -> Self {
        match change {
            Change::Config(from, to) => {
                assert!(self.config.contains(from), "config lacks {from:?}");
                self.config = self.config.replace(from, to);
            }
            Change::Proxy(from, to) => {
                assert!(
                    self.proxy_config.contains(from),
                    "proxy config lacks {from:?}"
                );
                self.proxy_config = self.proxy_config.replace(from, to);
            }
            Change::Arg(arg) => self.args.push(arg),
            Change::Mode(..) | Change::Owner(..) => self.changes.push(change),
        }
        self
    }

    pub fn build(&self, label: &str) -> Node {
        let node = Node::new(label);
        node.file("/usr/bin/kubelet", "", 0o755);
        std::fs::write(
            node.dir.join("usr/bin/kubelet"),
            go_binary_with_version("v1.31.4"),
        )
        .expect("kubelet binary");
        node.file(
            "/usr/lib/systemd/system/kubelet.service",
            "[Unit]\nDescription=kubelet: The Kubernetes Node Agent\n[Service]\nExecStart=/usr/bin/kubelet\nRestart=always\n[Install]\nWantedBy=multi-user.target\n",
            0o600,
        )
        .file(
            "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
            KUBEADM_DROP_IN,
            0o600,
        )
        .file("/etc/kubernetes/kubelet.conf", KUBECONFIG, 0o600)
        .file(
            "/etc/kubernetes/pki/ca.crt",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            0o644,
        )
        .file("/var/lib/kubelet/config.yaml", &self.config, 0o600)
        .file(
            "/var/lib/kubelet/kubeadm-flags.env",
            "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.10\"\n",
            0o644,
        );
        let mut argv = vec![
            "/usr/bin/kubelet",
            "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "--config=/var/lib/kubelet/config.yaml",
            "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
            "--pod-infra-container-image=registry.k8s.io/pause:3.10",
        ];
        argv.extend(self.args.iter().copied());
        node.proc(KUBELET_PID, &argv)
            .cgroup(KUBELET_PID, "kubelet.service");
        // kube-proxy runs in a pod: its files live in its own mount namespace.
        node.proc_in_ns(
            PROXY_PID,
            &[
                "/usr/local/bin/kube-proxy",
                "--config=/var/lib/kube-proxy/config.conf",
                "--hostname-override=node-1",
            ],
            "mnt:[4026532777]",
        );
        let pod_root = format!("/proc/{PROXY_PID}/root");
        node.file(
            &format!("{pod_root}/var/lib/kube-proxy/config.conf"),
            &self.proxy_config,
            0o600,
        )
        .file(
            &format!("{pod_root}/var/lib/kube-proxy/kubeconfig.conf"),
            KUBECONFIG,
            0o600,
        );
        for change in &self.changes {
            match *change {
                Change::Mode(path, mode) => node.chmod(&resolve(path), mode),
                Change::Owner(path, uid, gid) => node.chown(&resolve(path), uid, gid),
                _ => {}
            }
        }
        node
    }
}

/// `proxy:` paths are inside kube-proxy's pod.
fn resolve(path: &str) -> String {
    match path.strip_prefix("proxy:") {
        Some(p) => format!("/proc/{PROXY_PID}/root{p}"),
        None => path.to_string(),
    }
}

const UNIT: &str = "/usr/lib/systemd/system/kubelet.service";
const DROP_IN: &str = "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf";
const KUBELET_KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
const CA: &str = "/etc/kubernetes/pki/ca.crt";
const CONFIG: &str = "/var/lib/kubelet/config.yaml";
const PROXY_KUBECONFIG: &str = "proxy:/var/lib/kube-proxy/kubeconfig.conf";

/// One row per worker check: the change that makes it fail, and the
/// status it must then have (WARN for Manual checks).
pub const FAILING: &[(&str, Change, &str)] = &[
    ("4.1.1", Change::Mode(DROP_IN, 0o644), "FAIL"),
    ("4.1.2", Change::Owner(UNIT, 1000, 1000), "FAIL"),
    ("4.1.3", Change::Mode(PROXY_KUBECONFIG, 0o644), "WARN"),
    ("4.1.4", Change::Owner(PROXY_KUBECONFIG, 1000, 0), "WARN"),
    ("4.1.5", Change::Mode(KUBELET_KUBECONFIG, 0o640), "FAIL"),
    ("4.1.6", Change::Owner(KUBELET_KUBECONFIG, 0, 1000), "FAIL"),
    ("4.1.7", Change::Mode(CA, 0o666), "WARN"),
    ("4.1.8", Change::Owner(CA, 1000, 0), "WARN"),
    ("4.1.9", Change::Mode(CONFIG, 0o644), "FAIL"),
    ("4.1.10", Change::Owner(CONFIG, 1000, 1000), "FAIL"),
    (
        "4.2.1",
        Change::Config(
            "anonymous:\n    enabled: false",
            "anonymous:\n    enabled: true",
        ),
        "FAIL",
    ),
    (
        "4.2.2",
        Change::Arg("--authorization-mode=AlwaysAllow"),
        "FAIL",
    ),
    (
        "4.2.3",
        Change::Config(
            "  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\n",
            "",
        ),
        "FAIL",
    ),
    (
        "4.2.4",
        Change::Config("readOnlyPort: 0", "readOnlyPort: 10255"),
        "WARN",
    ),
    (
        "4.2.5",
        Change::Arg("--streaming-connection-idle-timeout=0s"),
        "WARN",
    ),
    (
        "4.2.6",
        Change::Config(
            "makeIPTablesUtilChains: true",
            "makeIPTablesUtilChains: false",
        ),
        "FAIL",
    ),
    (
        "4.2.7",
        Change::Arg("--hostname-override=worker-7.internal"),
        "WARN",
    ),
    (
        "4.2.8",
        Change::Config("memorySwap: {}", "memorySwap: {}\neventRecordQPS: -1"),
        "WARN",
    ),
    (
        "4.2.9",
        Change::Config("tlsPrivateKeyFile: /var/lib/kubelet/pki/kubelet.key\n", ""),
        "WARN",
    ),
    (
        "4.2.10",
        Change::Config("rotateCertificates: true", "rotateCertificates: false"),
        "FAIL",
    ),
    (
        "4.2.11",
        Change::Config(
            "memorySwap: {}",
            "memorySwap: {}\nfeatureGates:\n  RotateKubeletServerCertificate: false",
        ),
        "WARN",
    ),
    (
        "4.2.12",
        Change::Config(
            "tlsCipherSuites:\n",
            "tlsCipherSuites:\n- TLS_RSA_WITH_AES_128_CBC_SHA\n",
        ),
        "WARN",
    ),
    ("4.2.13", Change::Config("podPidsLimit: 4096\n", ""), "WARN"),
    (
        "4.2.14",
        Change::Config("seccompDefault: true", "seccompDefault: false"),
        "WARN",
    ),
    (
        "4.3.1",
        Change::Proxy(
            "metricsBindAddress: 127.0.0.1:10249",
            "metricsBindAddress: 0.0.0.0:10249",
        ),
        "FAIL",
    ),
];

fn needs_chown(change: Change) -> bool {
    matches!(change, Change::Owner(..))
}

#[test]
fn hardened_worker_passes_every_node_check() {
    let node = Worker::default().build("hardened");
    let r = node.results(&["--targets", "node"]);
    assert_eq!(r.by_id.len(), 25, "{:#}", r.doc);
    for id in r.by_id.keys() {
        if !can_chown() && ["4.1.2", "4.1.4", "4.1.6", "4.1.8", "4.1.10"].contains(&id.as_str()) {
            eprintln!("SKIPPED (needs root to chown fixtures): owner check {id}");
            continue;
        }
        r.expect(id, "PASS");
    }
    assert_eq!(r.doc["layout"], "kubeadm");
    assert_eq!(r.doc["kubernetes_version"]["git_version"], "v1.31.4");
    assert_eq!(r.doc["summary"]["fail"], 0);
}

#[test]
fn every_worker_check_fails_when_its_setting_is_broken() {
    // Owner rows need root; CI runs as root.
    for (id, change, status) in FAILING {
        if needs_chown(*change) && !can_chown() {
            eprintln!("SKIPPED (needs root to chown fixtures): {id}");
            continue;
        }
        let node = Worker::default().with(*change).build(&format!("fail-{id}"));
        let r = node.results(&["--targets", "node"]);
        let result = r.expect(id, status);
        assert!(
            result.get("reason").is_none_or(|v| v == "manual_failed"),
            "{id}: {result:#}"
        );
    }
}

#[test]
fn every_worker_check_has_a_failing_row() {
    let node = Worker::default().build("ids");
    let r: Results = node.results(&["--targets", "node"]);
    let ids: Vec<&str> = FAILING.iter().map(|(id, _, _)| *id).collect();
    for id in r.by_id.keys() {
        assert!(ids.contains(&id.as_str()), "no failing fixture for {id}");
    }
}

#[test]
fn sources_say_which_layer_decided() {
    let node = Worker::default()
        .with(Change::Arg("--anonymous-auth=false"))
        .build("sources");
    let r = node.results(&["--check", "4.2"]);
    assert_eq!(r.get("4.2.1")["source"], "flag");
    assert_eq!(r.get("4.2.2")["source"], "config");
    // eventRecordQPS is absent: the 1.31 default (50) decides.
    let qps = r.expect("4.2.8", "PASS");
    assert_eq!(qps["source"], "default");
    assert_eq!(qps["actual"], "eventRecordQPS=50");
    // kubeadm writes 0s, which the kubelet replaces with its 4h default.
    let idle = r.expect("4.2.5", "PASS");
    assert_eq!(idle["source"], "default");
    assert!(
        idle["actual"].as_str().unwrap().contains("4h0m0s"),
        "{idle:#}"
    );
    // Whole files never appear in `actual`.
    for result in r.by_id.values() {
        let actual = result["actual"].as_str().unwrap();
        assert!(!actual.contains("apiVersion"), "{result:#}");
    }
}
