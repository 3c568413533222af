//! Hostile trees (escaping and looping links, FIFOs, huge files), runtime
//! sockets, init evidence, errors, output formats, metrics, and this machine
//! compared with Python's own os-release reader.

use std::os::unix::fs::symlink;
use std::path::Path;

use serde_json::{json, Value};

use super::run_on;
use crate::harness::{self, TestDir};

const UBUNTU: &str = "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\n";

#[test]
fn symlinks_escaping_the_root_are_clamped_inside_it() {
    let dir = TestDir::new("detect-host-escape");
    dir.write("usr/lib/os-release", UBUNTU);
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    // ../../../../usr/lib/os-release climbs above the root: it must stay inside.
    symlink(
        "../../../../../../usr/lib/os-release",
        dir.join("etc/os-release"),
    )
    .unwrap();
    let doc = run_on(dir.path());
    assert_eq!(doc["os"]["id"], "ubuntu");
    assert_eq!(doc["os"]["source_resolved"], "/usr/lib/os-release");
}

#[test]
fn symlink_loops_fifos_and_huge_files_are_warnings() {
    let dir = TestDir::new("detect-host-hostile");
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::create_dir_all(dir.join("usr/lib")).unwrap();
    symlink("os-release", dir.join("etc/os-release")).unwrap();
    // A FIFO would block a naive reader forever.
    let status = std::process::Command::new("mkfifo")
        .arg(dir.join("usr/lib/os-release"))
        .status()
        .expect("mkfifo");
    assert!(status.success());
    // 1 MiB system-release: hostile, not data.
    dir.write(
        "etc/system-release",
        "Amazon Linux release 2 (Karoo)\n".repeat(40_000),
    );
    dir.write(
        "etc/redhat-release",
        "CentOS Linux release 7.9.2009 (Core)\n",
    );
    let doc = run_on(dir.path());
    assert_eq!(doc["os"]["id"], "centos");
    assert_eq!(doc["os"]["source"], "/etc/redhat-release");
    let warnings = doc["warnings"].to_string();
    assert!(warnings.contains("symbolic links"), "{warnings}");
    assert!(
        warnings.contains("/usr/lib/os-release is not a regular file"),
        "{warnings}"
    );
    assert!(warnings.contains("byte limit"), "{warnings}");
}

#[test]
fn runtime_sockets_and_kubelet_are_reported() {
    let dir = TestDir::new("detect-host-runtime");
    dir.write("etc/os-release", UBUNTU);
    std::fs::create_dir_all(dir.join("run/containerd")).unwrap();
    std::fs::create_dir_all(dir.join("run/k3s/containerd")).unwrap();
    let _containerd =
        std::os::unix::net::UnixListener::bind(dir.join("run/containerd/containerd.sock")).unwrap();
    let _k3s =
        std::os::unix::net::UnixListener::bind(dir.join("run/k3s/containerd/containerd.sock"))
            .unwrap();
    // A regular file where CRI-O's socket would be is not a socket.
    dir.write("run/crio/crio.sock", "");
    // /var/run -> ../run, as on every current distribution.
    std::fs::create_dir_all(dir.join("var")).unwrap();
    symlink("../run", dir.join("var/run")).unwrap();
    dir.write("usr/local/bin/k3s", "");
    dir.write("var/lib/rancher/k3s/agent/kubelet.kubeconfig", "");
    let doc = run_on(dir.path());
    assert_eq!(
        doc["runtime"],
        json!({
            "sockets": [
                {"runtime": "containerd", "path": "/run/containerd/containerd.sock"},
                {"runtime": "k3s-containerd", "path": "/run/k3s/containerd/containerd.sock"}
            ],
            "kubelet": {
                "present": true,
                "binaries": ["/usr/local/bin/k3s"],
                "configs": ["/var/lib/rancher/k3s/agent/kubelet.kubeconfig"]
            }
        })
    );
}

/// A 32-bit ARM userland (Raspberry Pi OS style) under whatever kernel runs
/// the tests: the report must name the userland and warn about the mismatch.
#[test]
fn userland_architecture_comes_from_host_binaries() {
    let dir = TestDir::new("detect-host-userland");
    dir.write(
        "etc/os-release",
        "ID=raspbian\nID_LIKE=debian\nVERSION_ID=\"12\"\n",
    );
    // ELF32, little-endian, e_machine 40 (ARM), padded like a real header.
    let mut elf = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0];
    elf.resize(18, 0);
    elf.extend_from_slice(&40u16.to_le_bytes());
    elf.resize(52, 0);
    dir.write("usr/bin/apt-get", &elf);
    let doc = run_on(dir.path());
    assert_eq!(doc["arch"]["userland"], "arm");
    assert_eq!(doc["arch"]["userland_source"], "/usr/bin/apt-get");
    let warnings = doc["warnings"].to_string();
    if doc["arch"]["platform"] != "arm" {
        assert!(warnings.contains("userland arm"), "{warnings}");
    }
}

#[test]
fn init_from_run_systemd_and_proc_comm() {
    let dir = TestDir::new("detect-host-init");
    dir.write("etc/os-release", UBUNTU);
    dir.write("proc/1/comm", "systemd\n");
    let doc = run_on(dir.path());
    assert_eq!(doc["init"], "systemd");
    assert_eq!(doc["init_source"], "/proc/1/comm");
    std::fs::create_dir_all(dir.join("run/systemd/system")).unwrap();
    let doc = run_on(dir.path());
    assert_eq!(doc["init_source"], "/run/systemd/system");
}

#[test]
fn missing_host_root_is_exit_2_naming_the_path() {
    let dir = TestDir::new("detect-host-missing");
    let missing = dir.join("no/such/root");
    let result = harness::run(
        harness::tool("detect-host")
            .arg("--host-root")
            .arg(&missing),
    );
    result.assert_code(2);
    assert!(
        result.stdout.is_empty(),
        "no report on error: {}",
        result.stdout
    );
    assert!(
        result.stderr.contains(&missing.display().to_string()),
        "{}",
        result.stderr
    );
}

#[test]
fn host_root_that_is_a_file_is_exit_2() {
    let dir = TestDir::new("detect-host-file");
    let file = dir.write("not-a-dir", "x");
    let result = harness::run(harness::tool("detect-host").arg("--host-root").arg(&file));
    result.assert_code(2);
    assert!(
        result.stderr.contains("not a directory"),
        "{}",
        result.stderr
    );
}

#[test]
fn host_root_from_environment_and_jsonl_output() {
    let rootfs = harness::fixtures("detect-host").join("debian-12/rootfs");
    let result = harness::run(
        harness::tool("detect-host")
            .env("NODEGUARD_HOST_ROOT", &rootfs)
            .args(["--format", "jsonl"]),
    );
    result.assert_code(0);
    let lines = result.json_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["record"], "report");
    assert_eq!(lines[0]["os"]["id"], "debian");
    assert_eq!(lines[0]["tool"], "detect-host");
}

#[test]
fn metrics_file_carries_the_os_info() {
    let dir = TestDir::new("detect-host-metrics");
    let rootfs = harness::fixtures("detect-host").join("amazon-linux-2023/rootfs");
    let metrics = dir.join("detect-host.prom");
    let result = harness::run(
        harness::tool("detect-host")
            .arg("--host-root")
            .arg(&rootfs)
            .arg("--metrics-file")
            .arg(&metrics),
    );
    result.assert_code(0);
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.contains("# TYPE nodeguard_detect_host_os_info gauge"),
        "{text}"
    );
    assert!(
        text.contains("id=\"amzn\"") && text.contains("package_manager=\"dnf\""),
        "{text}"
    );
    assert!(
        text.contains("nodeguard_detect_host_last_success_timestamp_seconds"),
        "{text}"
    );
}

/// This machine, read by us and by Python's own os-release reader
/// (`platform.freedesktop_os_release()`, Python ≥ 3.10), must agree.
#[test]
fn this_machine_agrees_with_python_platform_module() {
    let doc = run_on(Path::new("/"));
    // The distribution's interpreter, not a developer's pyenv shim.
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import json, platform; print(json.dumps(platform.freedesktop_os_release()))",
        ])
        .output()
        .expect("python3 is part of the test environment");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["os"]["id"], python["ID"]);
    assert_eq!(doc["os"]["fields"]["VERSION_ID"], python["VERSION_ID"]);
    assert_eq!(doc["os"]["pretty_name"], python["PRETTY_NAME"]);
    assert_eq!(doc["host_root"], "/");
    assert_ne!(doc["os"]["family"], "other");
    assert_eq!(doc["package"]["manager_present"], true);
    assert_eq!(doc["arch"]["userland"], doc["arch"]["platform"]);
}

/// The classic DaemonSet mistake: no host mount, default --host-root /.
#[test]
fn own_root_inside_a_pod_is_flagged() {
    let result =
        harness::run(harness::tool("detect-host").env("KUBERNETES_SERVICE_HOST", "10.96.0.1"));
    result.assert_code(0);
    let doc = result.json();
    super::assert_valid(&doc);
    assert!(
        doc["warnings"]
            .to_string()
            .contains("describes the container image"),
        "{doc:#}"
    );
}

/// This machine seen the way a pod sees its node: the whole `/` bind-mounted
/// recursively at another path (what a `hostPath: /` volume is), in a
/// private mount namespace that disappears with the command. Every fact must
/// be the same as when reading `/` directly.
#[test]
fn this_machine_through_a_recursive_bind_mount_matches_its_own_root() {
    skip_unless_root!("bind-mounting / needs CAP_SYS_ADMIN");
    let dir = TestDir::new("detect-host-rbind");
    let mountpoint = dir.join("host");
    std::fs::create_dir(&mountpoint).unwrap();
    let bin = harness::bin("detect-host");
    let script = format!(
        "mount --rbind / '{mnt}' && exec '{bin}' --host-root '{mnt}'",
        mnt = mountpoint.display(),
        bin = bin.display()
    );
    let through_mount = harness::run(
        std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(&script),
    );
    through_mount.assert_code(0);
    let mounted = through_mount.json();
    super::assert_valid(&mounted);
    let own = run_on(Path::new("/"));
    assert_eq!(mounted["host_root"], mountpoint.display().to_string());
    for key in [
        "os",
        "package",
        "arch",
        "kernel",
        "init",
        "init_source",
        "runtime",
    ] {
        assert_eq!(mounted[key], own[key], "{key} differs through the mount");
    }
}
