//! Bad input: clear per-check errors naming the path, never a panic, never
//! a read outside the host root.

use super::fixture::Node;
use super::worker::{Worker, KUBEADM_CONFIG, KUBELET_PID};

#[test]
fn malformed_kubelet_config_is_a_per_check_error() {
    let worker = Worker {
        config: "apiVersion: kubelet.config.k8s.io/v1beta1\nauthentication:\n  anonymous: [enabled: false\n".into(),
        ..Worker::default()
    };
    let node = worker.build("malformed");
    let out = node.run(&["--targets", "node"]);
    out.assert_code(0);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let r = super::fixture::Results::from_doc(out.json());
    let anon = r.expect("4.2.1", "FAIL");
    assert_eq!(anon["reason"], "error");
    let detail = anon["detail"].as_str().unwrap();
    assert!(
        detail.contains("/var/lib/kubelet/config.yaml") && detail.contains("invalid YAML"),
        "{detail}"
    );
    // Checks that do not need the file are still judged.
    r.expect("4.2.7", "PASS");
    r.expect("4.1.5", "PASS");
    // The broken file's mode can still be checked.
    r.expect("4.1.9", "PASS");
    let components = r.doc["components"].to_string();
    assert!(components.contains("invalid YAML"), "{components}");
}

#[test]
fn a_config_that_is_not_a_mapping_is_an_error() {
    let worker = Worker {
        config: "- just\n- a list\n".into(),
        ..Worker::default()
    };
    let r = worker.build("not-mapping").results(&["--check", "4.2.1"]);
    let anon = r.expect("4.2.1", "FAIL");
    assert!(
        anon["detail"]
            .as_str()
            .unwrap()
            .contains("not a YAML mapping"),
        "{anon:#}"
    );
}

#[test]
fn a_wrongly_typed_value_is_an_error_not_a_verdict() {
    let worker = Worker {
        config: KUBEADM_CONFIG.replace("readOnlyPort: 0", "readOnlyPort: \"closed\""),
        ..Worker::default()
    };
    let r = worker.build("bad-type").results(&["--check", "4.2.4"]);
    let port = r.expect("4.2.4", "WARN");
    assert_eq!(port["reason"], "error");
    assert!(
        port["detail"].as_str().unwrap().contains("readOnlyPort"),
        "{port:#}"
    );
}

#[test]
fn config_symlinks_never_leave_the_host_root() {
    // A permissive config outside the host root: following the link with
    // the kernel would read it and pass 4.2.1. Resolution stays inside.
    let outside = crate::harness::TestDir::new("bench-node-outside");
    let outside_file = outside.write(
        "config.yaml",
        "authentication:\n  anonymous:\n    enabled: false\n",
    );
    let node = Node::new("symlink-escape");
    node.symlink(
        "/var/lib/kubelet/config.yaml",
        outside_file.to_str().unwrap(),
    )
    .proc(
        KUBELET_PID,
        &["/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml"],
    );
    let r = node.results(&["--targets", "node", "--kubernetes-version", "1.31"]);
    let anon = r.expect("4.2.1", "FAIL");
    let detail = anon["detail"].as_str().unwrap();
    assert!(
        detail.contains("symlink") && detail.contains("inside the host root"),
        "{detail}"
    );
    let perms = r.get("4.1.9");
    assert_eq!(perms["reason"], "error", "{perms:#}");

    // A relative escape is clamped at the root: it reads the fixture's own
    // /etc/passwd, which is not a kubelet config.
    let node = Node::new("symlink-dotdot");
    node.symlink(
        "/var/lib/kubelet/config.yaml",
        "../../../../../../../../etc/passwd",
    )
    .proc(
        KUBELET_PID,
        &["/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml"],
    );
    let r = node.results(&["--check", "4.2.1", "--kubernetes-version", "1.31"]);
    assert_eq!(r.expect("4.2.1", "FAIL")["reason"], "error");
}

#[test]
fn odd_quoting_in_a_rewritten_command_line() {
    // A wrapper passed the whole command as one string (no NULs), with
    // quotes the shell would have removed.
    let node = Node::new("quoting");
    node.file("/var/lib/kubelet/config.yaml", KUBEADM_CONFIG, 0o600).proc_raw(
        KUBELET_PID,
        br#"/usr/bin/kubelet --config="/var/lib/kubelet/config.yaml" --hostname-override='worker a' --node-labels=role=worker"#,
    );
    let r = node.results(&["--check", "4.2.1,4.2.7", "--kubernetes-version", "1.31"]);
    r.expect("4.2.1", "PASS");
    assert_eq!(
        r.expect("4.2.7", "WARN")["actual"],
        "--hostname-override=worker a"
    );
}

#[test]
fn garbage_in_proc_does_not_panic() {
    let node = Node::new("garbage-proc");
    node.proc_raw(77, &[0xff, 0xfe, 0, 0, b'k', 0xc3])
        .proc_raw(78, b"")
        .proc_raw(KUBELET_PID, b"/usr/bin/kubelet\0--config\0")
        .dir("/proc/self");
    let out = node.run(&["--targets", "node"]);
    out.assert_code(0);
    let r = super::fixture::Results::from_doc(out.json());
    // `--config` without a value: the kubelet runs without a file.
    assert_eq!(r.status("4.1.9"), "INFO");
}

#[test]
fn unusable_host_root_is_an_error_exit() {
    let out = crate::harness::run(
        crate::harness::tool("bench-node").args(["--host-root", "/nonexistent/host"]),
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("/nonexistent/host"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let out = crate::harness::run(crate::harness::tool("bench-node").args(["--targets", "moon"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("moon"), "{}", out.stderr);
    // A typo in --check is an error, not an empty (all-clear) report.
    let out = crate::harness::run(crate::harness::tool("bench-node").args(["--check", "4.9.1"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("4.9.1"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn planted_fifos_do_not_hang_the_run() {
    // A FIFO where the config and the kubelet binary should be: a blocking
    // open would hang forever.
    let node = Worker::default().build("fifo");
    for path in ["var/lib/kubelet/config.yaml", "usr/bin/kubelet"] {
        let real = node.dir.join(path);
        std::fs::remove_file(&real).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(&real)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let out = run_bounded(&node, &["--targets", "node"]);
    out.assert_code(0);
    let r = super::fixture::Results::from_doc(out.json());
    assert_eq!(r.expect("4.2.1", "FAIL")["reason"], "error");
    assert!(r.doc["kubernetes_version"].is_null());
}

/// Runs bench-node on `node` under `timeout(1)`: a blocking read fails
/// the test instead of hanging it.
fn run_bounded(node: &Node, extra: &[&str]) -> crate::harness::RunResult {
    let mut cmd = std::process::Command::new("timeout");
    cmd.args(["-k", "5", "30"])
        .arg(crate::harness::bin("bench-node"))
        .arg("--host-root")
        .arg(node.root())
        .args(extra);
    let out = crate::harness::run(&mut cmd);
    assert_ne!(out.code, 124, "bench-node hung:\n{}", out.stderr);
    out
}

fn mkfifo(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Regression: a FIFO or character device where `<proc>/<pid>/cmdline`,
/// `cgroup` or `environ` should be blocked the run, or read gigabytes.
#[test]
fn special_files_in_proc_neither_block_nor_flood() {
    let node = Worker::default().build("proc-fifos");
    let proc_dir = node.dir.join("proc");
    // A process whose cmdline is a FIFO, one whose cmdline is /dev/zero.
    mkfifo(&proc_dir.join("300/cmdline"));
    node.symlink("/proc/301/cmdline", "/dev/zero");
    // The kubelet's cgroup and environ are a FIFO and /dev/zero.
    mkfifo(&proc_dir.join(format!("{KUBELET_PID}/cgroup")));
    node.symlink(&format!("/proc/{KUBELET_PID}/environ"), "/dev/zero");
    // An etcd whose environ is a FIFO (its ETCD_* settings are read).
    node.proc(400, &["/usr/local/bin/etcd", "--data-dir=/var/lib/etcd"]);
    mkfifo(&proc_dir.join("400/environ"));
    let out = run_bounded(&node, &["--targets", "node,etcd"]);
    out.assert_code(0);
    let r = super::fixture::Results::from_doc(out.json());
    // The kubelet is still found and judged from its command line.
    r.expect("4.2.1", "PASS");
}
