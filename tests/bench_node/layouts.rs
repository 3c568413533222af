//! k3s, RKE2, EKS and kubeadm layouts: files and settings are found where
//! each distribution keeps them.

use super::fixture::{go_binary_with_version, Node};

const K3S_DEFAULTS_DROP_IN: &str = "\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
clusterDNS:
- 10.43.0.10
clusterDomain: cluster.local
failSwapOn: false
";

#[test]
fn k3s_agent_with_embedded_kubelet() {
    // k3s runs the kubelet inside its own process: no kubelet in /proc, its
    // arguments are k3s' built-ins plus kubelet-arg from config.yaml.
    let node = Node::new("k3s");
    node.proc(640, &["/usr/local/bin/k3s", "agent"])
        .cgroup(640, "k3s-agent.service")
        .file("/usr/local/bin/k3s", "", 0o755)
        .file(
            "/etc/rancher/k3s/config.yaml",
            "server: https://10.0.0.5:6443\ntoken-file: /etc/rancher/k3s/token\nkubelet-arg:\n  - \"seccomp-default=true\"\n  - \"pod-max-pids=1024\"\n  - \"streaming-connection-idle-timeout=5m\"\n",
            0o600,
        )
        .file("/etc/rancher/k3s/config.yaml.d/50-rotate.yaml", "kubelet-arg+:\n  - \"event-qps=10\"\n", 0o600)
        .file("/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/00-k3s-defaults.conf", K3S_DEFAULTS_DROP_IN, 0o600)
        .file("/var/lib/rancher/k3s/agent/kubelet.kubeconfig", "apiVersion: v1\n", 0o600)
        .file("/var/lib/rancher/k3s/agent/kubeproxy.kubeconfig", "apiVersion: v1\n", 0o600)
        .file("/var/lib/rancher/k3s/agent/client-ca.crt", "-----BEGIN CERTIFICATE-----\n", 0o644)
        .file("/etc/systemd/system/k3s-agent.service", "[Service]\nExecStart=/usr/local/bin/k3s agent\n", 0o644);
    let r = node.results(&["--targets", "node", "--kubernetes-version", "1.31"]);
    assert_eq!(r.doc["layout"], "k3s");
    let anon = r.expect("4.2.1", "PASS");
    assert_eq!(anon["source"], "flag");
    assert!(
        anon["source_detail"].as_str().unwrap().contains("k3s"),
        "{anon:#}"
    );
    r.expect("4.2.3", "PASS");
    r.expect("4.2.4", "PASS");
    r.expect("4.2.14", "PASS");
    r.expect("4.2.13", "PASS");
    assert_eq!(r.expect("4.2.8", "PASS")["actual"], "eventRecordQPS=10");
    r.expect("4.1.5", "PASS");
    r.expect("4.1.7", "PASS");
    let conf = r.expect("4.1.9", "PASS");
    assert!(
        conf["actual"]
            .as_str()
            .unwrap()
            .contains("00-k3s-defaults.conf"),
        "{conf:#}"
    );
    // The unit from the process's cgroup, at 0644: too open.
    let unit = r.expect("4.1.1", "FAIL");
    assert_eq!(unit["source"], "process", "{unit:#}");
    assert!(
        unit["actual"]
            .as_str()
            .unwrap()
            .contains("k3s-agent.service"),
        "{unit:#}"
    );
    r.expect("4.1.3", "PASS");
}

#[test]
fn rke2_kubelet_version_from_its_data_directory() {
    let node = Node::new("rke2");
    let bin = "/var/lib/rancher/rke2/data/v1.30.2-rke2r1-5e1a2b3c4d5e/bin/kubelet";
    node.proc(700, &["/usr/local/bin/rke2", "agent"])
        .proc(
            733,
            &[
                bin,
                "--volume-plugin-dir=/var/lib/kubelet/volumeplugins",
                "--file-check-frequency=5s",
                "--sync-frequency=30s",
                "--address=0.0.0.0",
                "--anonymous-auth=false",
                "--authentication-token-webhook=true",
                "--authorization-mode=Webhook",
                "--client-ca-file=/var/lib/rancher/rke2/agent/client-ca.crt",
                "--config-dir=/var/lib/rancher/rke2/agent/etc/kubelet.conf.d",
                "--kubeconfig=/var/lib/rancher/rke2/agent/kubelet.kubeconfig",
                "--read-only-port=0",
                "--tls-cert-file=/var/lib/rancher/rke2/agent/serving-kubelet.crt",
                "--tls-private-key-file=/var/lib/rancher/rke2/agent/serving-kubelet.key",
            ],
        )
        .cgroup(733, "rke2-agent.service")
        .file("/var/lib/rancher/rke2/agent/etc/kubelet.conf.d/00-rke2-defaults.conf", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nseccompDefault: true\npodPidsLimit: 2048\n", 0o600)
        .file("/var/lib/rancher/rke2/agent/kubelet.kubeconfig", "apiVersion: v1\n", 0o600)
        .file("/var/lib/rancher/rke2/agent/client-ca.crt", "-----BEGIN CERTIFICATE-----\n", 0o644)
        .file("/usr/local/lib/systemd/system/rke2-agent.service", "[Service]\nExecStart=/usr/local/bin/rke2 agent\n", 0o600);
    let r = node.results(&["--targets", "node"]);
    assert_eq!(r.doc["layout"], "rke2");
    assert_eq!(r.doc["kubernetes_version"]["git_version"], "v1.30.2-rke2r1");
    r.expect("4.2.1", "PASS");
    r.expect("4.2.14", "PASS");
    r.expect("4.2.13", "PASS");
    r.expect("4.1.1", "PASS");
    r.expect("4.1.5", "PASS");
    r.expect("4.1.9", "PASS");
}

#[test]
fn eks_al2023_json_config_with_space_separated_flags() {
    let node = Node::new("eks-al2023");
    node.file("/usr/bin/kubelet", "", 0o755);
    std::fs::write(
        node.dir.join("usr/bin/kubelet"),
        go_binary_with_version("v1.31.2-eks-7f9249a"),
    )
    .unwrap();
    node.proc(
        1200,
        &[
            "/usr/bin/kubelet",
            "--config",
            "/etc/kubernetes/kubelet/config.json",
            "--config-dir",
            "/etc/kubernetes/kubelet/config.json.d",
            "--kubeconfig",
            "/var/lib/kubelet/kubeconfig",
            "--image-credential-provider-bin-dir",
            "/etc/eks/image-credential-provider",
            "--node-ip=10.0.12.34",
            "--cloud-provider=external",
        ],
    )
    .cgroup(1200, "kubelet.service")
    .file(
        "/etc/kubernetes/kubelet/config.json",
        r#"{"apiVersion":"kubelet.config.k8s.io/v1beta1","kind":"KubeletConfiguration","address":"0.0.0.0","authentication":{"anonymous":{"enabled":false},"webhook":{"cacheTTL":"2m0s","enabled":true},"x509":{"clientCAFile":"/etc/kubernetes/pki/ca.crt"}},"authorization":{"mode":"Webhook","webhook":{"cacheAuthorizedTTL":"5m0s","cacheUnauthorizedTTL":"30s"}},"clusterDomain":"cluster.local","featureGates":{"RotateKubeletServerCertificate":true},"protectKernelDefaults":true,"readOnlyPort":0,"serverTLSBootstrap":true,"tlsCipherSuites":["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256","TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"]}"#,
        0o644,
    )
    .file("/etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf", r#"{"apiVersion":"kubelet.config.k8s.io/v1beta1","kind":"KubeletConfiguration","clusterDNS":["172.20.0.10"],"maxPods":29}"#, 0o644)
    .file("/var/lib/kubelet/kubeconfig", "apiVersion: v1\n", 0o600)
    .file("/etc/kubernetes/pki/ca.crt", "-----BEGIN CERTIFICATE-----\n", 0o644)
    .file("/etc/systemd/system/kubelet.service", "[Service]\nExecStart=/usr/bin/kubelet $NODEADM_KUBELET_ARGS\n", 0o644);
    let r = node.results(&["--targets", "node"]);
    assert_eq!(r.doc["layout"], "eks-al2023");
    assert_eq!(
        r.doc["kubernetes_version"]["git_version"],
        "v1.31.2-eks-7f9249a"
    );
    r.expect("4.2.1", "PASS");
    r.expect("4.2.4", "PASS");
    r.expect("4.2.12", "PASS");
    // nodeadm writes the config 0644: a real finding on EKS.
    r.expect("4.1.9", "FAIL");
    r.expect("4.1.1", "FAIL");
    r.expect("4.1.5", "PASS");
    // serverTLSBootstrap instead of tlsCertFile: CIS 4.2.9 (Manual) warns.
    r.expect("4.2.9", "WARN");
}

#[test]
fn eks_al2_without_host_pid_falls_back_to_the_layout() {
    // No process visible (the pod lacks hostPID): the layout's config file
    // is used, and the report says so.
    let node = Node::new("eks-al2");
    node.file(
        "/etc/kubernetes/kubelet/kubelet-config.json",
        r#"{"kind":"KubeletConfiguration","apiVersion":"kubelet.config.k8s.io/v1beta1","authentication":{"anonymous":{"enabled":false},"x509":{"clientCAFile":"/etc/kubernetes/pki/ca.crt"}},"authorization":{"mode":"Webhook"},"readOnlyPort":0}"#,
        0o644,
    )
    .file("/var/lib/kubelet/kubeconfig", "apiVersion: v1\n", 0o600)
    .file("/etc/eks/release", "BASE_AMI_ID=\"ami-0\"\n", 0o644);
    let r = node.results(&["--targets", "node", "--kubernetes-version", "1.29"]);
    assert_eq!(r.doc["layout"], "eks-al2");
    assert!(
        r.doc["warnings"].to_string().contains("no kubelet process"),
        "{}",
        r.doc["warnings"]
    );
    r.expect("4.2.1", "PASS");
    r.expect("4.1.9", "FAIL");
    r.expect("4.1.5", "PASS");
}

#[test]
fn bottlerocket_paths() {
    let node = Node::new("bottlerocket");
    node.file("/etc/os-release", "NAME=Bottlerocket\nID=bottlerocket\nVERSION_ID=1.20.0\n", 0o644)
        .file("/etc/kubernetes/kubelet/config", "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\nauthentication:\n  x509:\n    clientCAFile: \"/etc/kubernetes/pki/ca.crt\"\nreadOnlyPort: 0\n", 0o600)
        .file("/etc/kubernetes/kubelet/kubeconfig", "apiVersion: v1\n", 0o600)
        .file("/etc/kubernetes/pki/ca.crt", "-----BEGIN CERTIFICATE-----\n", 0o644)
        .proc(900, &["/usr/bin/kubelet", "--config", "/etc/kubernetes/kubelet/config", "--kubeconfig", "/etc/kubernetes/kubelet/kubeconfig"]);
    let r = node.results(&["--targets", "node", "--kubernetes-version", "1.30"]);
    assert_eq!(r.doc["layout"], "bottlerocket");
    r.expect("4.1.5", "PASS");
    r.expect("4.1.9", "PASS");
    r.expect("4.1.7", "PASS");
    r.expect("4.2.3", "PASS");
}

#[test]
fn gke_cos_paths() {
    let node = Node::new("gke");
    node.file("/home/kubernetes/kubelet-config.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nauthentication:\n  anonymous:\n    enabled: false\n  webhook:\n    enabled: true\n  x509:\n    clientCAFile: /etc/srv/kubernetes/pki/ca-certificates.crt\nauthorization:\n  mode: Webhook\nreadOnlyPort: 10255\n", 0o644)
        .file("/var/lib/kubelet/kubeconfig", "apiVersion: v1\n", 0o644)
        .file("/etc/srv/kubernetes/pki/ca-certificates.crt", "-----BEGIN CERTIFICATE-----\n", 0o644)
        .proc(1300, &["/home/kubernetes/bin/kubelet", "--v=2", "--cloud-provider=external", "--kubeconfig=/var/lib/kubelet/kubeconfig", "--config=/home/kubernetes/kubelet-config.yaml"]);
    let r = node.results(&["--targets", "node", "--kubernetes-version", "1.30"]);
    assert_eq!(r.doc["layout"], "gke");
    // #852: GKE's real config decides 4.2.1-4.2.3, not a kubeconfig.
    r.expect("4.2.1", "PASS");
    r.expect("4.2.2", "PASS");
    r.expect("4.2.3", "PASS");
    r.expect("4.2.4", "WARN");
    r.expect("4.1.5", "FAIL");
    r.expect("4.1.7", "PASS");
}

#[test]
fn aks_paths_and_no_proc_warning() {
    // Host mounted without its /proc: the layout decides, and the report
    // says why the flags are unknown.
    let node = Node::new("aks");
    std::fs::remove_dir_all(node.dir.join("proc")).unwrap();
    node.dir("/proc")
        .file("/etc/kubernetes/azure.json", "{\"cloud\": \"AzurePublicCloud\", \"aadClientSecret\": \"s3cr3t\"}", 0o600)
        .file("/etc/default/kubeletconfig.json", r#"{"kind":"KubeletConfiguration","apiVersion":"kubelet.config.k8s.io/v1beta1","authentication":{"anonymous":{"enabled":false},"x509":{"clientCAFile":"/etc/kubernetes/certs/ca.crt"}},"authorization":{"mode":"Webhook"},"readOnlyPort":0}"#, 0o644)
        .file("/var/lib/kubelet/kubeconfig", "apiVersion: v1\n", 0o600)
        .file("/etc/kubernetes/certs/ca.crt", "-----BEGIN CERTIFICATE-----\n", 0o644);
    let out = node.run(&["--targets", "node", "--kubernetes-version", "1.31"]);
    out.assert_code(0);
    // azure.json holds cloud credentials: it is never read into the report.
    assert!(!out.stdout.contains("s3cr3t"));
    let r = super::fixture::Results::from_doc(out.json());
    assert_eq!(r.doc["layout"], "aks");
    assert!(
        r.doc["warnings"].to_string().contains("lists no processes"),
        "{}",
        r.doc["warnings"]
    );
    r.expect("4.2.1", "PASS");
    r.expect("4.1.5", "PASS");
    r.expect("4.1.7", "PASS");
    r.expect("4.1.9", "FAIL");
}

#[test]
fn k3s_server_control_plane_is_unobservable_not_absent() {
    // The API server runs inside the k3s process: its checks cannot be
    // judged from the node, which is a WARN for review, not "not applicable".
    let node = Node::new("k3s-server");
    node.proc(500, &["/usr/local/bin/k3s", "server", "--cluster-init"])
        .file(
            "/var/lib/rancher/k3s/agent/kubelet.kubeconfig",
            "apiVersion: v1\n",
            0o600,
        );
    let r = node.results(&["--kubernetes-version", "1.31"]);
    assert!(
        r.doc["targets"].to_string().contains("master"),
        "{}",
        r.doc["targets"]
    );
    let anon = r.expect("1.2.1", "WARN");
    assert_eq!(anon["reason"], "unobservable");
    assert!(
        anon["detail"].as_str().unwrap().contains("apiserver-arg"),
        "{anon:#}"
    );
    r.expect("1.3.2", "WARN");
}

const RKE2_ETCD_CONFIG: &str = "\
advertise-client-urls: https://10.0.0.5:2379
client-transport-security:
  cert-file: /var/lib/rancher/rke2/server/tls/etcd/server-client.crt
  client-cert-auth: true
  key-file: /var/lib/rancher/rke2/server/tls/etcd/server-client.key
  trusted-ca-file: /var/lib/rancher/rke2/server/tls/etcd/server-ca.crt
data-dir: /var/lib/rancher/rke2/server/db/etcd
election-timeout: 5000
heartbeat-interval: 500
listen-client-urls: https://127.0.0.1:2379,https://10.0.0.5:2379
name: server-1
peer-transport-security:
  cert-file: /var/lib/rancher/rke2/server/tls/etcd/peer-server-client.crt
  client-cert-auth: true
  key-file: /var/lib/rancher/rke2/server/tls/etcd/peer-server-client.key
  trusted-ca-file: /var/lib/rancher/rke2/server/tls/etcd/peer-ca.crt
";

#[test]
fn rke2_etcd_is_judged_from_its_config_file() {
    // RKE2 runs etcd with --config-file; etcd then ignores its flags and
    // ETCD_* variables (#1978: kube-bench FAILs these on RKE2).
    let node = Node::new("rke2-etcd");
    node.proc(700, &["/usr/local/bin/rke2", "server"])
        .file(
            "/var/lib/rancher/rke2/agent/pod-manifests/etcd.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n    - etcd\n    args:\n    - --config-file=/var/lib/rancher/rke2/server/db/etcd/config\n    - --client-cert-auth=false\n    image: index.docker.io/rancher/hardened-etcd:v3.5.13-k3s1-build20240531\n    name: etcd\n",
            0o600,
        )
        .file("/var/lib/rancher/rke2/server/db/etcd/config", RKE2_ETCD_CONFIG, 0o600)
        .dir("/var/lib/rancher/rke2/server/db/etcd/member");
    node.chmod("/var/lib/rancher/rke2/server/db/etcd", 0o700);
    let r = node.results(&[
        "--targets",
        "etcd,master",
        "--check",
        "2,1.1.7,1.1.11",
        "--kubernetes-version",
        "1.30",
    ]);
    for id in ["2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "1.1.7", "1.1.11"] {
        r.expect(id, "PASS");
    }
    let auth = r.get("2.2");
    assert_eq!(auth["source"], "config");
    assert_eq!(
        auth["actual"],
        "client-transport-security.client-cert-auth=true"
    );
    assert!(r.get("1.1.11")["actual"]
        .as_str()
        .unwrap()
        .starts_with("/var/lib/rancher/rke2/server/db/etcd "));
    // No auto-tls key: etcd's default (false) decides.
    assert_eq!(r.get("2.3")["source"], "default");
}
