//! scan-images against stand-in crictl/trivy programs.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::harness::{self, TestDir};

const NGINX_DIGEST: &str =
    "docker.io/library/nginx@sha256:0a399eb16751829e1af26fea27b20c3ec28d7ab1fb72182879dcae1cca21206a";
const REDIS_DIGEST: &str =
    "docker.io/library/redis@sha256:541209804a009ab69e97a06504706cfe83be2693150885fa08ed05a91f19b4ee";

/// A node as the stand-ins see it: canned crictl answers, canned Trivy
/// reports, a cache and output dir, and logs of every invocation.
struct Node {
    dir: TestDir,
}

impl Node {
    /// A containerd node: three nginx replicas and one redis (fixture
    /// `crictl/containerd`), nginx reporting debian-buster's findings and
    /// everything else sl-micro's clean report.
    fn containerd() -> Self {
        let node = Self::with_runtime("containerd", "containerd", "1.7.22");
        node.report_for(NGINX_DIGEST, "debian-buster");
        node
    }

    fn with_runtime(fixture: &str, name: &str, version: &str) -> Self {
        let dir = TestDir::new("scan-images");
        let src = harness::fixtures("scan-images")
            .join("crictl")
            .join(fixture);
        for entry in std::fs::read_dir(&src).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join("crictl").join(entry.file_name()))
                .or_else(|_| {
                    std::fs::create_dir_all(dir.join("crictl"))?;
                    std::fs::copy(entry.path(), dir.join("crictl").join(entry.file_name()))
                })
                .unwrap();
        }
        dir.write(
            "crictl/version.txt",
            format!("Version:  0.1.0\nRuntimeName:  {name}\nRuntimeVersion:  {version}\nRuntimeApiVersion:  v1\n"),
        );
        let clean =
            std::fs::read(harness::shared_fixtures().join("trivy/sl-micro-rancher5.4.json"))
                .unwrap();
        dir.write("reports/default.json", clean);
        // A seeded, current DB: no download needed.
        dir.write(
            "cache/trivy/db/metadata.json",
            r#"{"Version":2,"NextUpdate":"2999-01-01T00:00:00Z","UpdatedAt":"2026-11-20T06:00:00Z","DownloadedAt":"2026-11-20T07:00:00Z"}"#,
        );
        std::fs::create_dir_all(dir.join("state")).unwrap();
        std::fs::create_dir_all(dir.join("hostroot")).unwrap();
        let node = Self { dir };
        node.trivy_mode("", "");
        node
    }

    /// scan-images starts Trivy with an empty environment, so the stand-in's
    /// settings are baked into a wrapper script.
    fn trivy_mode(&self, mode: &str, only: &str) {
        let d = self.dir.path().display();
        let script = format!(
            "#!/bin/sh\nexport FAKE_TRIVY_LOG={d}/trivy.log FAKE_TRIVY_REPORTS={d}/reports \
             FAKE_TRIVY_STATE={d}/state FAKE_TRIVY_MODE='{mode}' FAKE_TRIVY_ONLY='{only}'\nexec {} \"$@\"\n",
            Self::stand_in("trivy").display()
        );
        let path = self.dir.write("bin/trivy", script);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }

    fn report_for(&self, target: &str, shared_fixture: &str) {
        let name: String = target
            .chars()
            .map(|c| if "/:@".contains(c) { '_' } else { c })
            .collect();
        let bytes =
            std::fs::read(harness::shared_fixtures().join(format!("trivy/{shared_fixture}.json")))
                .unwrap();
        self.dir.write(format!("reports/{name}.json"), bytes);
    }

    fn stand_in(name: &str) -> PathBuf {
        harness::fixtures("scan-images").join("bin").join(name)
    }

    fn cmd(&self) -> Command {
        self.cmd_for(
            "unix:///run/containerd/containerd.sock",
            &Self::stand_in("crictl"),
        )
    }

    fn cmd_for(&self, endpoint: &str, crictl: &std::path::Path) -> Command {
        let mut cmd = self.build(crictl);
        cmd.args(["--runtime-endpoint", endpoint]);
        cmd
    }

    fn cmd_with_trivy(&self, mode: &str, only: &str) -> Command {
        self.trivy_mode(mode, only);
        self.cmd()
    }

    fn cmd_discovering_the_socket(&self) -> Command {
        self.build(&Self::stand_in("crictl"))
    }

    fn build(&self, crictl: &std::path::Path) -> Command {
        let mut cmd = harness::tool("scan-images");
        cmd.arg("--crictl")
            .arg(crictl)
            .arg("--trivy")
            .arg(self.dir.join("bin/trivy"))
            .arg("--host-root")
            .arg(self.dir.join("hostroot"))
            .arg("--node-name")
            .arg("node-1")
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .arg("--output-dir")
            .arg(self.dir.join("out"))
            .arg("--skip-java-db")
            .env("FAKE_CRICTL_DIR", self.dir.join("crictl"))
            .env("FAKE_CRICTL_LOG", self.dir.join("crictl.log"))
            .env("FAKE_TRIVY_PROBE", "must-not-reach-trivy");
        cmd
    }

    fn trivy_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("trivy.log")).unwrap_or_default()
    }

    fn trivy_scans(&self) -> Vec<String> {
        self.trivy_log()
            .lines()
            .filter(|l| l.starts_with("ARGV ") && !l.contains("--download-"))
            .map(str::to_string)
            .collect()
    }

    fn out_files(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("out")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn image<'a>(report: &'a Value, tag_or_digest: &str) -> &'a Value {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            i["repo_tags"]
                .as_array()
                .unwrap()
                .iter()
                .chain(i["repo_digests"].as_array().unwrap())
                .any(|t| t.as_str().unwrap().contains(tag_or_digest))
        })
        .unwrap_or_else(|| panic!("no image {tag_or_digest} in {report:#}"))
}

#[test]
fn each_image_is_scanned_once_and_the_rerun_is_cached() {
    let node = Node::containerd();
    let metrics = node.dir.join("metrics/scan.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    let result = harness::run(node.cmd().arg("--metrics-file").arg(&metrics));
    result.assert_code(0);
    let report = result.json();
    assert_eq!(report["tool"], "scan-images");
    assert_eq!(report["summary"]["images"], 2, "{report:#}");
    assert_eq!(report["summary"]["containers"], 4);
    assert_eq!(report["summary"]["scanned"], 2);
    assert_eq!(report["summary"]["trivy_runs"], 2);
    assert_eq!(report["summary"]["db_updated_at"], "2026-11-20T06:00:00Z");

    let nginx = image(&report, "nginx:1.27");
    assert_eq!(nginx["status"], "scanned");
    assert_eq!(
        nginx["containers"].as_array().unwrap().len(),
        3,
        "three replicas, one image"
    );
    assert_eq!(nginx["containers"][0]["namespace"], "shop");
    assert_eq!(nginx["containers"][0]["pod"], "web-7d4b9c-aaaaa");
    assert_eq!(nginx["containers"][0]["container"], "nginx");
    assert_eq!(nginx["vulnerabilities"]["CRITICAL"], 1);
    assert_eq!(nginx["vulnerabilities"]["LOW"], 1);
    assert_eq!(
        nginx["scan_target"], NGINX_DIGEST,
        "the repo digest, not the config ID"
    );
    assert_eq!(nginx["error"], Value::Null);
    let report_path = PathBuf::from(nginx["report_path"].as_str().unwrap());
    assert!(report_path.starts_with(node.dir.join("out")));
    let full: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(
        full["ArtifactName"], "testdata/fixtures/images/debian-buster.tar.gz",
        "the full Trivy report is kept"
    );
    let redis = image(&report, "redis@");
    assert_eq!(redis["vulnerabilities"]["CRITICAL"], 0);
    assert_eq!(redis["scan_target"], REDIS_DIGEST);

    // Trivy: one process per unique image, the node's store, the k8s.io
    // namespace, a private TMPDIR, none of our environment.
    let scans = node.trivy_scans();
    assert_eq!(scans.len(), 2, "{}", node.trivy_log());
    for scan in &scans {
        assert!(
            scan.contains("image --image-src containerd --scanners vuln"),
            "{scan}"
        );
        assert!(scan.contains("--skip-db-update"), "{scan}");
    }
    let log = node.trivy_log();
    assert!(
        log.contains(
            "CONTAINERD_ADDRESS=/run/containerd/containerd.sock CONTAINERD_NAMESPACE=k8s.io"
        ),
        "{log}"
    );
    assert!(
        !log.contains("must-not-reach-trivy"),
        "environment leaked into Trivy: {log}"
    );
    let tmpdirs: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("TMPDIR=").nth(1))
        .collect();
    assert_ne!(
        tmpdirs[0].split(' ').next(),
        tmpdirs[1].split(' ').next(),
        "private TMPDIR per scan"
    );

    // crictl: always -r, inspect never needed for a clean join.
    let crictl_log = std::fs::read_to_string(node.dir.join("crictl.log")).unwrap();
    assert!(
        crictl_log
            .lines()
            .all(|l| l.starts_with("-r unix:///run/containerd/containerd.sock")),
        "{crictl_log}"
    );
    assert!(!crictl_log.contains("inspect"), "{crictl_log}");

    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(prom.contains("nodeguard_scan_images_vulnerabilities{severity=\"CRITICAL\",image_repository=\"docker.io/library/nginx\",image_tag=\"1.27\",image_digest=\"sha256:0a399eb16751829e1af26fea27b20c3ec28d7ab1fb72182879dcae1cca21206a\"} 1"), "{prom}");
    assert!(
        prom.contains("image_repository=\"docker.io/library/redis\",image_tag=\"\""),
        "{prom}"
    );
    assert!(
        prom.contains("nodeguard_scan_images_scan_failures 0"),
        "{prom}"
    );
    assert!(
        prom.contains("nodeguard_scan_images_last_success_timestamp_seconds"),
        "{prom}"
    );

    // Unchanged images, unchanged DB: no Trivy at all.
    let again = harness::run(&mut node.cmd());
    again.assert_code(0);
    let report = again.json();
    assert_eq!(report["summary"]["cached"], 2, "{report:#}");
    assert_eq!(report["summary"]["trivy_runs"], 0);
    assert_eq!(node.trivy_scans().len(), 2, "no new Trivy process");
    assert_eq!(
        image(&report, "nginx:1.27")["vulnerabilities"]["CRITICAL"],
        1
    );
    assert_eq!(
        image(&report, "nginx:1.27")["report_path"]
            .as_str()
            .unwrap(),
        report_path.to_str().unwrap()
    );

    // --ttl 0: everything is rescanned; --keep 1 then leaves one report per image.
    let third = harness::run(node.cmd().args(["--ttl", "0s", "--keep", "1"]));
    assert_eq!(third.json()["summary"]["scanned"], 2);
    assert_eq!(node.out_files().len(), 2, "{:?}", node.out_files());
}

#[test]
fn a_new_db_means_a_rescan_and_one_download_per_cycle() {
    let node = Node::containerd();
    std::fs::remove_file(node.dir.join("cache/trivy/db/metadata.json")).unwrap();
    let result = harness::run(&mut node.cmd());
    result.assert_code(0);
    let report = result.json();
    assert_eq!(report["db"]["status"], "updated");
    assert_eq!(report["db"]["updated_at"], "2026-11-20T06:00:00.123456Z");
    let downloads = node
        .trivy_log()
        .lines()
        .filter(|l| l.contains("--download-db-only"))
        .count();
    assert_eq!(downloads, 1);
    assert_eq!(
        report["summary"]["trivy_runs"], 3,
        "one DB update + two scans"
    );
}

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
fn no_socket_under_the_host_root_lists_what_was_tried() {
    let node = Node::containerd();
    let result = harness::run(&mut node.cmd_discovering_the_socket());
    result.assert_code(2);
    assert!(
        result.stderr.contains("no container runtime socket found"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("hostroot/run/crio/crio.sock"),
        "{}",
        result.stderr
    );

    // A socket under the host root is found and passed with -r.
    let sock_dir = node.dir.join("hostroot/run/k3s/containerd");
    std::fs::create_dir_all(&sock_dir).unwrap();
    let _listener =
        std::os::unix::net::UnixListener::bind(sock_dir.join("containerd.sock")).unwrap();
    let result = harness::run(&mut node.cmd_discovering_the_socket());
    result.assert_code(0);
    let report = result.json();
    let endpoint = report["runtime"]["endpoint"].as_str().unwrap();
    assert!(
        endpoint.ends_with("hostroot/run/k3s/containerd/containerd.sock"),
        "{endpoint}"
    );
    let crictl_log = std::fs::read_to_string(node.dir.join("crictl.log")).unwrap();
    assert!(
        crictl_log
            .lines()
            .all(|l| l.starts_with(&format!("-r {endpoint}"))),
        "{crictl_log}"
    );
    let log = node.trivy_log();
    assert!(
        log.contains("hostroot/run/k3s/containerd/containerd.sock CONTAINERD_NAMESPACE=k8s.io"),
        "{log}"
    );
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
            .args(["--timeout", "2s"]),
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
            .contains("timed out after 2s"),
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
fn images_over_the_size_limit_are_skipped_with_the_reason() {
    let node = Node::containerd();
    let result = harness::run(node.cmd().args(["--max-image-size", "50MB"]));
    result.assert_code(0);
    let report = result.json();
    let nginx = image(&report, "nginx:1.27");
    assert_eq!(nginx["status"], "skipped");
    assert!(
        nginx["error"]
            .as_str()
            .unwrap()
            .contains("72955450 bytes, over --max-image-size 50000000"),
        "{nginx:#}"
    );
    assert_eq!(image(&report, "redis@")["status"], "scanned");
    assert_eq!(report["summary"]["skipped"], 1);
    assert_eq!(node.trivy_scans().len(), 1);
}

#[test]
fn concurrent_scans_each_get_their_own_scratch() {
    let node = Node::containerd();
    let result = harness::run(node.cmd().args(["--concurrency", "4"]));
    result.assert_code(0);
    let report = result.json();
    assert_eq!(report["summary"]["scanned"], 2, "{report:#}");
    let log = node.trivy_log();
    let mut tmpdirs: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("TMPDIR=").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    tmpdirs.sort_unstable();
    tmpdirs.dedup();
    assert_eq!(tmpdirs.len(), 2, "{log}");
    let work: Vec<_> = std::fs::read_dir(node.dir.join("cache/work"))
        .unwrap()
        .collect();
    assert!(work.is_empty(), "scratch dirs are removed: {work:?}");
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
fn fail_on_sets_exit_code_one() {
    let node = Node::containerd();
    let result = harness::run(node.cmd().args(["--fail-on", "critical"]));
    result.assert_code(1);
    assert_eq!(result.json()["summary"]["fail_on_triggered"], true);
    let result =
        harness::run(
            node.cmd()
                .args(["--fail-on", "critical", "--severity", "HIGH,MEDIUM"]),
        );
    result.assert_code(0);
    let scans = node.trivy_scans();
    assert!(
        scans.last().unwrap().contains("--severity HIGH,MEDIUM"),
        "{scans:?}"
    );
}

#[test]
fn jsonl_has_one_line_per_image_and_a_summary() {
    let node = Node::containerd();
    let result = harness::run(node.cmd().args(["--format", "jsonl"]));
    result.assert_code(0);
    let lines = result.json_lines();
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["record"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["image", "image", "summary"]);
    assert_eq!(lines[2]["summary"]["images"], 2);
    assert!(lines.iter().all(|l| l["node"] == "node-1"));
}

#[test]
fn crio_images_are_scanned_through_a_running_root() {
    let node = Node::with_runtime("crio", "cri-o", "1.30.4");
    let id = format!("d1{}", "0".repeat(62));
    std::fs::copy(
        node.dir.join("crictl/inspect-d1.json"),
        node.dir.join(format!("crictl/inspect-{id}.json")),
    )
    .unwrap();
    let root = node.dir.join("hostroot/proc/4242/root");
    std::fs::create_dir_all(&root).unwrap();
    let result =
        harness::run(&mut node.cmd_for("unix:///run/crio/crio.sock", &Node::stand_in("crictl")));
    result.assert_code(0);
    let report = result.json();
    assert_eq!(report["runtime"]["kind"], "cri-o");
    let ovn = image(&report, "ocp-v4.0-art-dev@");
    assert_eq!(ovn["status"], "scanned", "{ovn:#}");
    assert_eq!(ovn["source"], "rootfs");
    assert!(ovn["note"].as_str().unwrap().contains("CRI-O"), "{ovn:#}");
    assert_eq!(ovn["scan_target"], root.to_str().unwrap());
    assert!(ovn["image_id"]
        .as_str()
        .unwrap()
        .starts_with("sha256:c0e1d0b2"));
    // The dns image's only container has no inspect answer: named failure.
    let dns = image(&report, "dns:v4.16");
    assert_eq!(dns["status"], "failed");
    assert!(
        dns["error"]
            .as_str()
            .unwrap()
            .contains("no running container of this image has a readable root"),
        "{dns:#}"
    );
    let scans = node.trivy_scans();
    assert_eq!(scans.len(), 1, "{scans:?}");
    assert!(
        scans[0].starts_with("ARGV rootfs --scanners vuln"),
        "{scans:?}"
    );
}

#[test]
fn host_scan_skips_container_storage() {
    let node = Node::containerd();
    node.dir.write(
        "hostroot/var/lib/dpkg/status",
        "Package: bash\nStatus: install ok installed\nVersion: 5.2\n",
    );
    let result = harness::run(node.cmd().arg("--host"));
    result.assert_code(0);
    let report = result.json();
    assert_eq!(report["host"]["status"], "scanned", "{report:#}");
    let scans = node.trivy_scans();
    let host_scan = scans.iter().find(|s| s.starts_with("ARGV rootfs")).unwrap();
    assert!(host_scan.contains("--pkg-types os"), "{host_scan}");
    assert!(host_scan.contains("var/lib/containerd"), "{host_scan}");
    assert!(host_scan.ends_with("hostroot"), "{host_scan}");
    // Unchanged package DB: cached; a package change: rescanned.
    let again = harness::run(node.cmd().arg("--host"));
    assert_eq!(again.json()["host"]["status"], "cached");
    node.dir.write(
        "hostroot/var/lib/dpkg/status",
        "Package: bash\nStatus: install ok installed\nVersion: 5.3\n\n",
    );
    let third = harness::run(node.cmd().arg("--host"));
    assert_eq!(third.json()["host"]["status"], "scanned");
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
