//! Every failure the issue names, against stand-in crictl/trivy: each is
//! named, nothing is half-written, and one image never stops the others.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use super::node::{image, Node, REDIS_DIGEST};
use crate::harness;

#[test]
fn without_any_db_the_run_fails_naming_the_db_path() {
    let node = Node::containerd();
    std::fs::remove_file(node.dir.join("cache/trivy/db/metadata.json")).unwrap();
    let result = harness::run(&mut node.cmd_with_trivy("nodb", ""));
    result.assert_code(2);
    assert!(
        result.stdout.is_empty(),
        "no report on error: {}",
        result.stdout
    );
    assert!(
        result.stderr.contains("no Trivy vulnerability DB at"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("cache/trivy/db"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("mirror.gcr.io"),
        "the download error is quoted: {}",
        result.stderr
    );
}

#[test]
fn a_stale_db_is_used_when_the_update_fails() {
    let node = Node::containerd();
    node.dir.write(
        "cache/trivy/db/metadata.json",
        r#"{"Version":2,"NextUpdate":"2020-01-01T00:00:00Z","UpdatedAt":"2019-12-31T18:00:00Z","DownloadedAt":"2020-01-01T00:00:00Z"}"#,
    );
    let result = harness::run(&mut node.cmd_with_trivy("nodb", ""));
    result.assert_code(0);
    let report = result.json();
    assert_eq!(report["db"]["status"], "stale");
    assert!(
        report["db"]["error"].as_str().unwrap().contains("download"),
        "{report:#}"
    );
    assert_eq!(report["summary"]["db_updated_at"], "2019-12-31T18:00:00Z");
}

#[test]
fn missing_crictl_is_named() {
    let node = Node::containerd();
    let result = harness::run(&mut node.cmd_for(
        "unix:///x.sock",
        std::path::Path::new("/nonexistent/crictl"),
    ));
    result.assert_code(2);
    assert!(result.stdout.is_empty());
    assert!(
        result.stderr.contains("/nonexistent/crictl not found"),
        "{}",
        result.stderr
    );
    assert!(result.stderr.contains("--crictl"), "{}", result.stderr);
}

#[test]
fn a_runtime_socket_that_is_down_is_named() {
    let node = Node::containerd();
    let metrics = node.dir.join("scan.prom");
    let result = harness::run(
        node.cmd()
            .env("FAKE_CRICTL_MODE", "down")
            .arg("--metrics-file")
            .arg(&metrics),
    );
    result.assert_code(2);
    assert!(result.stdout.is_empty());
    assert!(
        result
            .stderr
            .contains("unix:///run/containerd/containerd.sock"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("connection refused"),
        "crictl's stderr is quoted: {}",
        result.stderr
    );
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains("nodeguard_scan_images_last_run_success 0"),
        "{prom}"
    );
    assert!(node.trivy_scans().is_empty());
}

#[test]
fn garbage_json_from_crictl_is_an_error_not_a_panic() {
    let node = Node::containerd();
    let result = harness::run(node.cmd().env("FAKE_CRICTL_MODE", "garbage"));
    result.assert_code(2);
    assert!(
        result
            .stderr
            .contains("`crictl ps -o json` printed invalid JSON"),
        "{}",
        result.stderr
    );
    assert!(!result.stderr.contains("panicked"), "{}", result.stderr);
}

#[test]
fn a_trivy_crash_fails_only_that_image() {
    let node = Node::containerd();
    let metrics = node.dir.join("scan.prom");
    let result = harness::run(
        node.cmd_with_trivy("crash", "redis")
            .arg("--metrics-file")
            .arg(&metrics),
    );
    result.assert_code(0);
    let report = result.json();
    let redis = image(&report, "redis@");
    assert_eq!(redis["status"], "failed");
    let error = redis["error"].as_str().unwrap();
    assert!(error.contains("exited with status 2"), "{error}");
    assert!(
        error.contains("nil pointer dereference"),
        "Trivy's stderr is quoted: {error}"
    );
    assert!(
        error.contains(REDIS_DIGEST),
        "the command is named: {error}"
    );
    assert_eq!(redis["report_path"], Value::Null);
    assert_eq!(image(&report, "nginx:1.27")["status"], "scanned");
    assert_eq!(report["summary"]["failed"], 1);
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains("nodeguard_scan_images_scan_failures 1"),
        "{prom}"
    );
    assert!(
        !prom.contains("docker.io/library/redis"),
        "no series for a failed scan: {prom}"
    );
    // Failures are not cached: the next run tries again.
    node.trivy_mode("", "");
    let again = harness::run(&mut node.cmd());
    let report = again.json();
    assert_eq!(image(&report, "redis@")["status"], "scanned");
    assert_eq!(image(&report, "nginx:1.27")["status"], "cached");
}

#[test]
fn a_hanging_trivy_is_killed_with_its_children() {
    let node = Node::containerd();
    let started = std::time::Instant::now();
    let result = harness::run(
        node.cmd_with_trivy("hang", "nginx")
            .args(["--timeout", "3s"]),
    );
    result.assert_code(0);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    let report = result.json();
    let nginx = image(&report, "nginx:1.27");
    assert_eq!(nginx["status"], "failed");
    assert!(
        nginx["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 3s"),
        "{nginx:#}"
    );
    assert_eq!(image(&report, "redis@")["status"], "scanned");
    let pid: i32 = std::fs::read_to_string(node.dir.join("state/hang-child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !process_alive(pid),
        "Trivy's child {pid} survived the timeout"
    );
    // The scratch dir of the killed scan is gone.
    let work: Vec<_> = std::fs::read_dir(node.dir.join("cache/work"))
        .unwrap()
        .collect();
    assert!(work.is_empty(), "{work:?}");
}

fn process_alive(pid: i32) -> bool {
    // A zombie is dead for our purpose; /proc/<pid>/stat shows state Z.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn a_busy_cache_lock_is_retried() {
    let node = Node::containerd();
    let result = harness::run(
        node.cmd_with_trivy("lock-once", "nginx")
            .args(["--lock-retries", "2"]),
    );
    result.assert_code(0);
    let report = result.json();
    assert_eq!(
        image(&report, "nginx:1.27")["status"],
        "scanned",
        "{report:#}"
    );
    assert_eq!(
        report["summary"]["trivy_runs"], 3,
        "lock error, retry, other image"
    );
    assert!(
        result.stderr.contains("cache is locked"),
        "{}",
        result.stderr
    );
}

#[test]
fn an_unreadable_trivy_report_fails_the_image() {
    let node = Node::containerd();
    let result = harness::run(&mut node.cmd_with_trivy("garbage", "nginx"));
    result.assert_code(0);
    let report = result.json();
    let nginx = image(&report, "nginx:1.27");
    assert_eq!(nginx["status"], "failed");
    assert!(
        nginx["error"].as_str().unwrap().contains("not valid JSON"),
        "{nginx:#}"
    );
    assert!(
        node.out_files().iter().all(|f| !f.starts_with("a2abf6c4")),
        "{:?}",
        node.out_files()
    );
}

#[test]
fn a_full_output_disk_fails_the_image_and_leaves_no_partial_file() {
    skip_unless_root!("mounts a tiny tmpfs as the output dir");
    let node = Node::containerd();
    let out = node.dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(mount.success(), "mount tmpfs");
    let _unmount = Unmount(out.clone());
    let result = harness::run(&mut node.cmd_with_trivy("big", "nginx"));
    result.assert_code(0);
    let report = result.json();
    let nginx = image(&report, "nginx:1.27");
    assert_eq!(nginx["status"], "failed");
    let error = nginx["error"].as_str().unwrap();
    assert!(
        error.contains("No space left on device") || error.contains("os error 28"),
        "{error}"
    );
    assert!(
        error.contains(out.to_str().unwrap()),
        "the path is named: {error}"
    );
    assert_eq!(image(&report, "redis@")["status"], "scanned");
    let files = node.out_files();
    assert_eq!(
        files.len(),
        1,
        "only redis' report, no temp file: {files:?}"
    );
    assert!(!files[0].starts_with('.'), "{files:?}");
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn an_unwritable_metrics_file_is_an_error_with_no_report() {
    let node = Node::containerd();
    let result = harness::run(
        node.cmd()
            .arg("--metrics-file")
            .arg("/nonexistent-dir/scan.prom"),
    );
    result.assert_code(2);
    assert!(result.stdout.is_empty(), "no report: {}", result.stdout);
    assert!(
        result.stderr.contains("/nonexistent-dir"),
        "{}",
        result.stderr
    );
}

/// Regression: `--trivy ./trivy` (and a relative `--crictl`) failed every
/// image with "program not found" (Trivy runs in its work directory), and
/// the run still exited 0. Relative paths are resolved at start.
#[test]
fn relative_program_paths_are_resolved_first() {
    let node = Node::containerd();
    let crictl = node.dir.write(
        "bin/crictl",
        std::fs::read(Node::stand_in("crictl")).unwrap(),
    );
    std::fs::set_permissions(&crictl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let d = node.dir.path();
    let mut cmd = harness::tool("scan-images");
    cmd.current_dir(d)
        .args(["--crictl", "./bin/crictl", "--trivy", "./bin/trivy"])
        .args([
            "--runtime-endpoint",
            "unix:///run/containerd/containerd.sock",
        ])
        .arg("--host-root")
        .arg(d.join("hostroot"))
        .args(["--node-name", "node-1", "--skip-java-db"])
        .arg("--cache-dir")
        .arg(d.join("cache"))
        .arg("--output-dir")
        .arg(d.join("out"))
        .env("FAKE_CRICTL_DIR", d.join("crictl"))
        .env("FAKE_CRICTL_LOG", d.join("crictl.log"));
    let result = harness::run(&mut cmd);
    result.assert_code(0);
    let report = result.json();
    assert_eq!(report["summary"]["failed"], 0, "{report:#}");
    assert_eq!(image(&report, "nginx:1.27")["status"], "scanned");
}

/// Regression: when every scan failed the run exited 0, as if the node
/// were clean. It exits 3, with the report naming each failure.
#[test]
fn every_scan_failing_exits_3_with_the_report() {
    let node = Node::containerd();
    let result = harness::run(&mut node.cmd_with_trivy("crash", ""));
    result.assert_code(3);
    let report = result.json();
    assert_eq!(report["summary"]["scanned"], 0);
    assert!(report["summary"]["failed"].as_u64().unwrap() > 0);
    assert!(
        result.stderr.contains("every scan failed"),
        "{}",
        result.stderr
    );
    // One image scanned is enough for a normal exit.
    let result = harness::run(&mut node.cmd_with_trivy("crash", "redis"));
    result.assert_code(0);
}

/// Runs `cmd` under `timeout(1)`: a blocking read fails the test instead
/// of hanging it.
fn run_bounded(cmd: &Command) -> harness::RunResult {
    let mut bounded = Command::new("timeout");
    bounded.args(["-k", "5", "60"]).arg(cmd.get_program());
    bounded.args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => bounded.env(key, value),
            None => bounded.env_remove(key),
        };
    }
    let result = harness::run(&mut bounded);
    assert_ne!(result.code, 124, "scan-images hung:\n{}", result.stderr);
    result
}

/// Regression: Trivy's DB `metadata.json` was read whole and blocking:
/// a FIFO there hung the run, a huge file took the memory.
#[test]
fn trivy_db_metadata_is_type_checked_and_capped() {
    for (what, make) in [("FIFO", "mkfifo \"$1\""), ("huge", "truncate -s 3G \"$1\"")] {
        let node = Node::containerd();
        let meta = node.dir.join("cache/trivy/db/metadata.json");
        std::fs::remove_file(&meta).unwrap();
        let status = Command::new("sh")
            .args(["-c", make, "sh"])
            .arg(&meta)
            .status()
            .unwrap();
        assert!(status.success());
        let result = run_bounded(&node.cmd());
        result.assert_code(2);
        assert!(
            result.stderr.contains("metadata.json"),
            "{what}: {}",
            result.stderr
        );
        assert_eq!(result.stdout, "", "{what}");
    }
}

/// Regression: Trivy's output report was read whole and blocking: a FIFO
/// there hung the scan, a huge one took the memory. Each fails its image.
#[test]
fn trivy_output_report_is_type_checked_and_capped() {
    for (mode, says) in [("fifo-report", "FIFO"), ("huge-report", "limit")] {
        let node = Node::containerd();
        let result = run_bounded(&node.cmd_with_trivy(mode, "redis"));
        result.assert_code(0);
        let report = result.json();
        let redis = image(&report, "redis@");
        assert_eq!(redis["status"], "failed", "{mode}");
        let error = redis["error"].as_str().unwrap();
        assert!(
            error.contains("report.json") && error.contains(says),
            "{mode}: {error}"
        );
        assert_eq!(image(&report, "nginx:1.27")["status"], "scanned");
    }
}
