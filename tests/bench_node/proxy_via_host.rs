//! kube-proxy read through the host root, not `/proc/<pid>/root`: an LSM
//! (the runtime's default AppArmor profile, SELinux `container_t`) denies
//! following another process's root, but not reading its mount table.

use super::fixture::Node;
use super::worker::{Change, Worker, KUBECONFIG, PROXY_PID};

/// Where the kubelet keeps kube-proxy's ConfigMap volume on the host.
const VOLUME: &str = "/var/lib/kubelet/pods/5f1c/volumes/kubernetes.io~configmap/kube-proxy";

/// A worker whose kube-proxy pod root is unreachable (as under an LSM),
/// with its config only in the kubelet's volume directory (the ConfigMap
/// layout: `config.conf -> ..data/config.conf`), and both mount tables.
fn worker_without_proc_root(label: &str, proxy_config_change: Change) -> Node {
    let node = Worker::default().with(proxy_config_change).build(label);
    let pod_root = node.dir.join(format!("proc/{PROXY_PID}/root"));
    let config = std::fs::read_to_string(pod_root.join("var/lib/kube-proxy/config.conf")).unwrap();
    std::fs::remove_dir_all(&pod_root).unwrap();
    node.file(
        &format!("{VOLUME}/..2026_12_04/config.conf"),
        &config,
        0o644,
    )
    .file(
        &format!("{VOLUME}/..2026_12_04/kubeconfig.conf"),
        KUBECONFIG,
        0o644,
    )
    .symlink(&format!("{VOLUME}/..data"), "..2026_12_04")
    .symlink(&format!("{VOLUME}/config.conf"), "..data/config.conf")
    .symlink(
        &format!("{VOLUME}/kubeconfig.conf"),
        "..data/kubeconfig.conf",
    );
    node.file(
        &format!("/proc/{PROXY_PID}/mountinfo"),
        &format!(
            "1200 1100 0:70 / / rw,relatime - overlay overlay rw,lowerdir=/x\n\
             1201 1200 8:1 {VOLUME} /var/lib/kube-proxy ro,relatime - ext4 /dev/sda1 rw\n"
        ),
        0o444,
    )
    .file(
        "/proc/1/mountinfo",
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n",
        0o444,
    );
    node
}

#[test]
fn kube_proxy_config_is_found_through_its_mounts_on_the_host() {
    let node = worker_without_proc_root(
        "proxy-via-host",
        Change::Proxy(
            "metricsBindAddress: 127.0.0.1:10249",
            "metricsBindAddress: 0.0.0.0:10249",
        ),
    );
    let r = node.results(&["--check", "4.3.1", "--check", "4.1.3"]);
    let metrics = r.expect("4.3.1", "FAIL");
    assert_eq!(metrics["actual"], "metricsBindAddress=0.0.0.0:10249");
    let detail = metrics["source_detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("{VOLUME}/config.conf")),
        "{detail}"
    );
    // The kubeconfig named in the config is found the same way (mode 644).
    let kubeconfig = r.expect("4.1.3", "WARN");
    assert!(
        kubeconfig
            .to_string()
            .contains(&format!("{VOLUME}/kubeconfig.conf")),
        "{kubeconfig:#}"
    );
    let warnings = r.doc["warnings"].to_string();
    assert!(!warnings.contains("/root"), "{warnings}");
}

#[test]
fn an_unreachable_proc_root_is_said_in_one_warning() {
    // No mount tables either: the old way, /proc/<pid>/root, is tried and
    // its failure is one warning naming the path.
    let node = worker_without_proc_root("proxy-no-root", Change::Arg("--v=2"));
    std::fs::remove_file(node.dir.join(format!("proc/{PROXY_PID}/mountinfo"))).unwrap();
    let out = node.run(&["--check", "4.3.1"]);
    out.assert_code(0);
    let doc = out.json();
    let warnings: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .filter(|w| w.contains(&format!("proc/{PROXY_PID}/root")))
        .collect();
    assert_eq!(warnings.len(), 1, "{doc:#}");
    assert!(
        warnings[0].contains("read on the host instead"),
        "{}",
        warnings[0]
    );
}
