//! Where kube-bench is wrong, bench-node must be right (issue numbers are
//! kube-bench's).

use super::fixture::Node;
use super::worker::{Change, Worker, KUBEADM_CONFIG, KUBELET_PID};

#[test]
fn config_path_comes_from_the_kubelets_own_command_line() {
    // #948/#1256: kube-bench reads the first file of a fixed list. Here the
    // kubelet runs with a config elsewhere; a stale, insecure
    // /var/lib/kubelet/config.yaml must not be judged.
    let node = Node::new("config-path");
    node.file(
        "/var/lib/kubelet/config.yaml",
        "authentication:\n  anonymous:\n    enabled: true\nreadOnlyPort: 10255\n",
        0o644,
    )
    .file("/etc/kubernetes/kubelet-config.yaml", KUBEADM_CONFIG, 0o600)
    .file("/etc/kubernetes/kubelet.conf", "apiVersion: v1\n", 0o600)
    .proc(
        KUBELET_PID,
        &[
            "/usr/bin/kubelet",
            "--config",
            "/etc/kubernetes/kubelet-config.yaml",
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
        ],
    );
    let r = node.results(&["--targets", "node", "--kubernetes-version", "1.31"]);
    let anon = r.expect("4.2.1", "PASS");
    assert!(
        anon["source_detail"]
            .as_str()
            .unwrap()
            .contains("/etc/kubernetes/kubelet-config.yaml"),
        "{anon:#}"
    );
    r.expect("4.2.4", "PASS");
    let perms = r.expect("4.1.9", "PASS");
    assert!(
        perms["actual"]
            .as_str()
            .unwrap()
            .starts_with("/etc/kubernetes/kubelet-config.yaml "),
        "{perms:#}"
    );
}

#[test]
fn a_key_missing_from_flags_and_config_takes_the_kubelet_default() {
    // #1256, #852: absent keys are not "not set"; with --config the
    // KubeletConfiguration defaults are anonymous=false, authz Webhook.
    let trimmed = KUBEADM_CONFIG
        .replace("  anonymous:\n    enabled: false\n", "")
        .replace("authorization:\n  mode: Webhook\n", "authorization:\n");
    let worker = Worker {
        config: trimmed,
        ..Worker::default()
    };
    let r = worker
        .build("defaults")
        .results(&["--check", "4.2.1,4.2.2"]);
    for id in ["4.2.1", "4.2.2"] {
        let result = r.expect(id, "PASS");
        assert_eq!(result["source"], "default", "{result:#}");
        assert!(result["source_detail"]
            .as_str()
            .unwrap()
            .contains("config-file default"));
    }
}

#[test]
fn without_a_config_file_the_flag_defaults_apply() {
    // No --config: the kubelet's flag defaults are the insecure ones.
    let node = Node::new("flag-defaults");
    node.file("/etc/kubernetes/kubelet.conf", "apiVersion: v1\n", 0o600)
        .proc(
            KUBELET_PID,
            &[
                "/usr/bin/kubelet",
                "--kubeconfig=/etc/kubernetes/kubelet.conf",
            ],
        );
    let r = node.results(&["--targets", "node", "--kubernetes-version", "1.30"]);
    let anon = r.expect("4.2.1", "FAIL");
    assert_eq!(anon["source"], "default");
    assert_eq!(anon["actual"], "--anonymous-auth=true");
    r.expect("4.2.2", "FAIL");
    r.expect("4.2.4", "WARN");
    // No config file: 4.1.9/4.1.10 do not apply (kube-bench: FAIL).
    let conf = r.expect("4.1.9", "INFO");
    assert_eq!(conf["reason"], "not_applicable");
}

#[test]
fn flags_override_the_config_file() {
    let r = Worker::default()
        .with(Change::Arg("--anonymous-auth=true"))
        .with(Change::Arg("--read-only-port=10255"))
        .build("flags-win")
        .results(&["--check", "4.2"]);
    assert_eq!(r.expect("4.2.1", "FAIL")["source"], "flag");
    assert_eq!(r.expect("4.2.4", "WARN")["source"], "flag");
}

#[test]
fn config_dir_drop_ins_override_the_config_file_in_lexical_order() {
    let node = Worker::default()
        .with(Change::Arg("--config-dir=/etc/kubernetes/kubelet.conf.d"))
        .build("drop-ins");
    node.file("/etc/kubernetes/kubelet.conf.d/10-open.conf", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nreadOnlyPort: 10255\nseccompDefault: false\n", 0o600)
        .file("/etc/kubernetes/kubelet.conf.d/20-close.conf", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nreadOnlyPort: 0\n", 0o600)
        // Not *.conf: the kubelet ignores it, and so must we.
        .file("/etc/kubernetes/kubelet.conf.d/30-ignored.yaml", "readOnlyPort: 9999\n", 0o644);
    let r = node.results(&["--targets", "node"]);
    let port = r.expect("4.2.4", "PASS");
    assert!(
        port["source_detail"]
            .as_str()
            .unwrap()
            .contains("20-close.conf"),
        "{port:#}"
    );
    let seccomp = r.expect("4.2.14", "WARN");
    assert!(
        seccomp["source_detail"]
            .as_str()
            .unwrap()
            .contains("10-open.conf"),
        "{seccomp:#}"
    );
    // The drop-ins' modes are checked with the config file's.
    let perms = r.expect("4.1.9", "PASS");
    assert!(
        perms["actual"].as_str().unwrap().contains("20-close.conf"),
        "{perms:#}"
    );
    node.chmod("/etc/kubernetes/kubelet.conf.d/10-open.conf", 0o644);
    node.results(&["--targets", "node"]).expect("4.1.9", "FAIL");
}

#[test]
fn missing_files_are_not_applicable_not_failures() {
    // #1881: kube-bench FAILs 4.1.x when a file does not exist.
    let node = Node::new("absent");
    node.file("/var/lib/kubelet/config.yaml", KUBEADM_CONFIG, 0o600)
        .proc(
            KUBELET_PID,
            &["/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml"],
        );
    let r = node.results(&["--targets", "node", "--kubernetes-version", "1.31"]);
    for id in ["4.1.1", "4.1.2", "4.1.3", "4.1.4", "4.1.5", "4.1.6"] {
        let result = r.expect(id, "INFO");
        assert_eq!(result["reason"], "not_applicable", "{result:#}");
    }
    // #335: no kube-proxy (a CNI replaces it) is not a failure either.
    let proxy = r.expect("4.3.1", "INFO");
    assert!(
        proxy["detail"]
            .as_str()
            .unwrap()
            .contains("kube-proxy does not run"),
        "{proxy:#}"
    );
    assert_eq!(r.doc["summary"]["fail"], 0, "{:#}", r.doc);
}

#[test]
fn durations_are_compared_as_durations() {
    // kube-bench compares strings: "0s" is not "0", so 4.2.5 passes.
    let r = Worker::default()
        .with(Change::Arg("--streaming-connection-idle-timeout=0h0m0s"))
        .build("zero-duration")
        .results(&["--check", "4.2.5"]);
    let idle = r.expect("4.2.5", "WARN");
    assert_eq!(idle["actual"], "streamingConnectionIdleTimeout=0s");
    let r = Worker::default()
        .with(Change::Arg("--streaming-connection-idle-timeout=5m"))
        .build("five-minutes")
        .results(&["--check", "4.2.5"]);
    assert_eq!(
        r.expect("4.2.5", "PASS")["actual"],
        "streamingConnectionIdleTimeout=5m0s"
    );
}

#[test]
fn seccomp_default_is_judged_by_value_not_presence() {
    // 4.2.14: kube-bench passes `seccompDefault: false` because it is set.
    let r = Worker::default()
        .with(Change::Config(
            "seccompDefault: true",
            "seccompDefault: false",
        ))
        .build("seccomp")
        .results(&["--check", "4.2.14"]);
    assert_eq!(r.expect("4.2.14", "WARN")["actual"], "seccompDefault=false");
}

#[test]
fn kube_proxy_metrics_come_from_its_config_not_its_kubeconfig() {
    // 4.3.1: kube-bench reads the proxy kubeconfig and passes. With
    // --config, kube-proxy ignores its flags (kubernetes#107156), so a
    // loopback flag does not save a 0.0.0.0 config either.
    let node = Worker::default()
        .with(Change::Proxy(
            "metricsBindAddress: 127.0.0.1:10249",
            "metricsBindAddress: 0.0.0.0:10249",
        ))
        .build("proxy-metrics");
    let pid = super::worker::PROXY_PID;
    node.proc_in_ns(
        pid,
        &[
            "kube-proxy",
            "--config=/var/lib/kube-proxy/config.conf",
            "--metrics-bind-address=127.0.0.1:10249",
        ],
        "mnt:[4026532777]",
    );
    let r = node.results(&["--check", "4.3.1"]);
    let result = r.expect("4.3.1", "FAIL");
    assert_eq!(result["actual"], "metricsBindAddress=0.0.0.0:10249");
    assert!(result["source_detail"]
        .as_str()
        .unwrap()
        .contains("/var/lib/kube-proxy/config.conf"));
}

#[test]
fn unknown_version_is_said_not_guessed() {
    // No kubelet binary to read: the version is unknown (kube-bench would
    // silently assume 1.18). eventRecordQPS's default changed in 1.27 (5 to
    // 50); both pass `>= 0`, so 4.2.8 is still decided, and says both.
    let node = Worker::default().build("no-version");
    std::fs::remove_file(node.dir.join("usr/bin/kubelet")).unwrap();
    let r = node.results(&["--check", "4.2.8,4.2.1"]);
    assert!(r.doc["kubernetes_version"].is_null());
    let warnings = r.doc["warnings"].to_string();
    assert!(
        warnings.contains("Kubernetes version unknown"),
        "{warnings}"
    );
    let qps = r.expect("4.2.8", "PASS");
    assert_eq!(qps["actual"], "eventRecordQPS=5 or 50");
    assert!(
        qps["source_detail"]
            .as_str()
            .unwrap()
            .contains("--kubernetes-version"),
        "{qps:#}"
    );
    r.expect("4.2.1", "PASS");
    // An explicit version picks the default of that release.
    let r = node.results(&["--check", "4.2.8", "--kubernetes-version", "v1.26.3"]);
    assert_eq!(r.expect("4.2.8", "PASS")["actual"], "eventRecordQPS=5");
}

#[test]
fn version_from_the_kubelet_package_when_the_binary_says_nothing() {
    // A kubelet built with -trimpath records no link flags; kubeadm nodes
    // installed it from pkgs.k8s.io, and dpkg knows the version.
    let node = Worker::default().build("dpkg-version");
    std::fs::write(node.dir.join("usr/bin/kubelet"), b"\x7fELF not really").unwrap();
    node.file(
        "/var/lib/dpkg/status",
        "Package: kubeadm\nStatus: install ok installed\nVersion: 1.30.1-1.1\n\nPackage: kubelet\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.30.8-1.1\n",
        0o644,
    );
    let r = node.results(&["--check", "4.2.8"]);
    assert_eq!(r.doc["kubernetes_version"]["git_version"], "v1.30.8");
    assert!(r.doc["kubernetes_version"]["source"]
        .as_str()
        .unwrap()
        .contains("dpkg"));
    r.expect("4.2.8", "PASS");
}
