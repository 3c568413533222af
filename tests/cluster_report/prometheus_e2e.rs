//! The metrics lane with the real components: the real fim-check and
//! bench-node write their `--metrics-file` on a fixture host (scan-images',
//! which needs a CRI runtime and a Trivy DB, is written with common's
//! metrics writer, as scan-images does), `promtool check metrics` passes on
//! each, `prometheus-node-exporter` serves them on loopback, `prometheus`
//! scrapes it with the shipped rules. A critical vulnerability and a FIM
//! change fire their alerts; `cluster-report --prometheus` reads the same
//! series; rescanning the fixed image and `fim-check update` resolve them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nodeguard_common::metrics::{write_run_metrics, Metrics};
use serde_json::Value;

use super::require;
use crate::harness::{run, tool, workspace_root, TestDir};

/// A child process killed (and reaped) when the test ends, pass or fail.
struct Daemon {
    name: &'static str,
    child: Child,
}

impl Daemon {
    fn start(name: &'static str, cmd: &mut Command, log: &Path) -> Daemon {
        let log = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Daemon { name, child }
    }

    fn assert_running(&mut self, log: &Path) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early ({status}):\n{}",
                self.name,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, then released for the daemon to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on loopback; the body, or `None` while nothing listens.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_owned())
}

/// Polls `probe` every 250 ms until it returns `Some`, at most `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Names of the alerts firing now, with their `node` label.
fn firing(prometheus: u16) -> Option<Vec<(String, String)>> {
    let body = http_get(prometheus, "/api/v1/alerts")?;
    let answer: Value = serde_json::from_str(&body).ok()?;
    Some(
        answer["data"]["alerts"]
            .as_array()?
            .iter()
            .filter(|a| a["state"] == "firing")
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                    a["labels"]["node"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect(),
    )
}

/// Writes the scanner's textfile as scan-images does (common's metrics
/// writer, atomic, same names and HELP). scan-images itself needs a CRI
/// runtime and a Trivy DB; its own tests check its metrics file.
fn write_scan_textfile(dir: &Path, critical: f64) {
    let mut scan = Metrics::new("scan-images");
    let vulns = scan.gauge(
        "vulnerabilities",
        "Vulnerabilities (package x CVE findings) in images running on the node, by severity.",
    );
    for (severity, count) in [
        ("CRITICAL", critical),
        ("HIGH", 3.0),
        ("MEDIUM", 0.0),
        ("LOW", 0.0),
        ("UNKNOWN", 0.0),
    ] {
        vulns.sample(
            &[
                ("severity", severity),
                ("image_repository", "docker.io/library/nginx"),
                ("image_tag", "1.25.3"),
                ("image_digest", "sha256:aa11"),
            ],
            count,
        );
    }
    scan.gauge("scan_failures", "Image scans that failed in the last run.")
        .sample(&[], 0.0);
    write_run_metrics(
        &dir.join("nodeguard_scan_images.prom"),
        &scan,
        "0.1.0",
        true,
    )
    .unwrap();
}

/// Runs a tool, which must succeed (exit 0 or 1); always `true`.
fn run_tool(name: &str, args: &[&std::ffi::OsStr]) -> bool {
    let result = run(tool(name).args(args));
    assert!(
        result.code == 0 || result.code == 1,
        "{name} {args:?} failed:\n{}",
        result.stderr
    );
    true
}

/// The FIM's textfile: from the real fim-check (init, a change, check) when
/// it is in the tree, else written like it. Returns whether it was real.
fn fim_textfile(dir: &TestDir, host: &Path, textfiles: &Path) -> bool {
    let baseline = dir.join("fim.baseline");
    let metrics = textfiles.join("nodeguard_fim_check.prom");
    let common: Vec<&std::ffi::OsStr> = vec![
        "--host-root".as_ref(),
        host.as_os_str(),
        "--node-name".as_ref(),
        "e2e-node".as_ref(),
        "--path".as_ref(),
        "/etc".as_ref(),
        "--baseline".as_ref(),
        baseline.as_os_str(),
    ];
    if !run_tool("fim-check", &[&["init".as_ref()], &common[..]].concat()) {
        let mut fim = Metrics::new("fim-check");
        let changes = fim.gauge(
            "changes",
            "Paths added, removed or changed since the baseline, by kind (last run).",
        );
        for (kind, count) in [("added", 1.0), ("removed", 0.0), ("changed", 1.0)] {
            changes.sample(&[("kind", kind)], count);
        }
        write_run_metrics(&metrics, &fim, "0.1.0", true).unwrap();
        return false;
    }
    std::fs::write(host.join("etc/hosts"), "127.0.0.1 localhost evil.example\n").unwrap();
    std::fs::write(host.join("etc/dropped.conf"), "x\n").unwrap();
    let check = [
        &[
            "check".as_ref(),
            "--metrics-file".as_ref(),
            metrics.as_os_str(),
        ],
        &common[..],
    ]
    .concat();
    assert!(run_tool("fim-check", &check));
    true
}

/// After the operator accepts the change: `fim-check update`, then the next
/// check finds nothing.
fn fim_accept(dir: &TestDir, host: &Path, textfiles: &Path, real: bool) {
    let metrics = textfiles.join("nodeguard_fim_check.prom");
    if !real {
        let mut fim = Metrics::new("fim-check");
        let changes = fim.gauge(
            "changes",
            "Paths added, removed or changed since the baseline, by kind (last run).",
        );
        for kind in ["added", "removed", "changed"] {
            changes.sample(&[("kind", kind)], 0.0);
        }
        write_run_metrics(&metrics, &fim, "0.1.0", true).unwrap();
        return;
    }
    let baseline = dir.join("fim.baseline");
    let common: Vec<&std::ffi::OsStr> = vec![
        "--host-root".as_ref(),
        host.as_os_str(),
        "--node-name".as_ref(),
        "e2e-node".as_ref(),
        "--path".as_ref(),
        "/etc".as_ref(),
        "--baseline".as_ref(),
        baseline.as_os_str(),
    ];
    assert!(run_tool(
        "fim-check",
        &[&["update".as_ref()], &common[..]].concat()
    ));
    let check = [
        &[
            "check".as_ref(),
            "--metrics-file".as_ref(),
            metrics.as_os_str(),
        ],
        &common[..],
    ]
    .concat();
    assert!(run_tool("fim-check", &check));
}

/// `promtool check metrics` on a textfile: no complaint at all.
fn lint(promtool: &Path, file: &Path) {
    let body = std::fs::read(file).unwrap();
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics on {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alerts_fire_and_resolve_with_real_prometheus() {
    let (Some(_), Some(_), Some(promtool)) = (
        require("prometheus", "end-to-end alerting"),
        require("prometheus-node-exporter", "end-to-end alerting"),
        require("promtool", "checking the textfiles"),
    ) else {
        return;
    };
    let dir = TestDir::new("cluster-report-e2e");
    let textfiles = dir.join("textfile");
    std::fs::create_dir_all(&textfiles).unwrap();
    let host = dir.join("host");
    super::round_trip::build_host(&host, "debian_10", true);
    write_scan_textfile(&textfiles, 2.0);
    let real_fim = fim_textfile(&dir, &host, &textfiles);
    // bench-node's real metrics: failing checks by id (4.2.1: anonymous auth).
    let bench_metrics = textfiles.join("nodeguard_bench_node.prom");
    let real_bench = run_tool(
        "bench-node",
        &[
            "--host-root".as_ref(),
            host.as_os_str(),
            "--node-name".as_ref(),
            "e2e-node".as_ref(),
            "--metrics-file".as_ref(),
            bench_metrics.as_os_str(),
        ],
    );
    for entry in std::fs::read_dir(&textfiles).unwrap() {
        lint(&promtool, &entry.unwrap().path());
    }

    let exporter_port = free_port();
    let exporter_log = dir.join("node-exporter.log");
    let mut exporter = Daemon::start(
        "prometheus-node-exporter",
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{exporter_port}"))
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!(
                "--collector.textfile.directory={}",
                textfiles.display()
            )),
        &exporter_log,
    );

    let prometheus_port = free_port();
    let rules = workspace_root().join("manifests/rules/nodeguard.rules.yml");
    // The `node` label stands in for the Kubernetes relabelling
    // (__meta_kubernetes_pod_node_name → node) described in the docs.
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: node-exporter\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n        labels:\n          node: e2e-node\n",
        rules.display()
    );
    let config_path = dir.write("prometheus.yml", config);
    let prometheus_log = dir.join("prometheus.log");
    let mut prometheus = Daemon::start(
        "prometheus",
        Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .arg("--web.enable-lifecycle"),
        &prometheus_log,
    );

    let limit = Duration::from_secs(60);
    let metrics = wait_for("node-exporter to serve the textfiles", limit, || {
        exporter.assert_running(&exporter_log);
        http_get(exporter_port, "/metrics").filter(|m| m.contains("nodeguard_fim_check_changes"))
    });
    assert!(
        metrics.contains("node_textfile_scrape_error 0"),
        "{metrics}"
    );

    let alerts = wait_for("both alerts to fire", limit, || {
        prometheus.assert_running(&prometheus_log);
        firing(prometheus_port).filter(|a| {
            a.iter()
                .any(|(n, _)| n == "NodeguardCriticalVulnerabilities")
                && a.iter().any(|(n, _)| n == "NodeguardFileIntegrityChanged")
        })
    });
    assert!(
        alerts.iter().all(|(_, node)| node == "e2e-node"),
        "{alerts:?}"
    );
    assert!(
        !alerts.iter().any(|(n, _)| n == "NodeguardResultsStale"),
        "fresh results are not stale: {alerts:?}"
    );

    // The report from the same Prometheus.
    let url = format!("http://127.0.0.1:{prometheus_port}");
    let result = run(tool("cluster-report").args(["--prometheus", &url]));
    result.assert_code(0);
    let report = result.json();
    assert_eq!(report["source"]["kind"], "prometheus");
    assert_eq!(report["summary"]["nodes"], 1);
    assert_eq!(report["summary"]["vulnerabilities"]["CRITICAL"], 2);
    assert_eq!(
        report["images"][0]["image"],
        "docker.io/library/nginx:1.25.3"
    );
    assert_eq!(report["fim_changes"][0]["node"], "e2e-node");
    assert_eq!(report["fim_changes"][0]["changed"], 1);
    assert_eq!(report["fim_changes"][0]["added"], 1);
    if real_bench {
        let failing: Vec<&str> = report["cis_failures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert!(failing.contains(&"4.2.1"), "{failing:?}");
        assert_eq!(report["nodes"][0]["tools"]["bench-node"]["stale"], false);
    }
    let node = &report["nodes"][0];
    assert_eq!(node["tools"]["scan-images"]["version"], "0.1.0");
    assert_eq!(node["tools"]["scan-images"]["stale"], false);
    // No kube-state-metrics here: said, not hidden.
    assert!(
        report["warnings"].to_string().contains("kube_node_info"),
        "{}",
        report["warnings"]
    );

    // The image is fixed and rescanned, the change accepted: both resolve.
    write_scan_textfile(&textfiles, 0.0);
    fim_accept(&dir, &host, &textfiles, real_fim);
    wait_for("both alerts to resolve", limit, || {
        prometheus.assert_running(&prometheus_log);
        firing(prometheus_port).filter(Vec::is_empty)
    });

    // A Prometheus that answers with an error is named in exit 2.
    let bad =
        run(tool("cluster-report").args(["--prometheus", &format!("{url}/nonexistent-prefix")]));
    bad.assert_code(2);
    assert!(
        bad.stderr.contains("/nonexistent-prefix/api/v1/query"),
        "{}",
        bad.stderr
    );
}

/// `promtool test rules` with input series taken from the real tools'
/// `--metrics-file` output (fim-check and bench-node on a fixture node):
/// the FIM alert fires for exactly the kinds that changed, nothing else
/// fires on a freshly-run node with five failing CIS checks.
#[test]
fn rules_unit_tests_on_real_tool_metrics() {
    let Some(promtool) = require("promtool", "alert rule tests") else {
        return;
    };
    let dir = TestDir::new("cluster-report-real-metrics");
    let textfiles = dir.join("textfile");
    std::fs::create_dir_all(&textfiles).unwrap();
    let host = dir.join("host");
    super::round_trip::build_host(&host, "debian_10", true);
    if !fim_textfile(&dir, &host, &textfiles) {
        eprintln!("SKIPPED: fim-check is a placeholder in this tree");
        return;
    }
    let bench = textfiles.join("nodeguard_bench_node.prom");
    let _ = run_tool(
        "bench-node",
        &[
            "--host-root".as_ref(),
            host.as_os_str(),
            "--node-name".as_ref(),
            "e2e-node".as_ref(),
            "--metrics-file".as_ref(),
            bench.as_os_str(),
        ],
    );

    // Every sample of every file becomes an input series, as scraped.
    let mut series = String::new();
    for entry in std::fs::read_dir(&textfiles).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (metric, value) = line.rsplit_once(' ').unwrap();
            let scrape = r#"node="e2e-node",instance="10.0.0.9:9100",job="node-exporter""#;
            let metric = match metric.strip_suffix('}') {
                Some(head) => format!("{head},{scrape}}}"),
                None => format!("{metric}{{{scrape}}}"),
            };
            series.push_str(&format!(
                "      - series: '{metric}'\n        values: '{value}x15'\n"
            ));
        }
    }
    let fim = std::fs::read_to_string(textfiles.join("nodeguard_fim_check.prom")).unwrap();

    // The kinds fim-check counted, with their counts, from its own file.
    let changed: Vec<(&str, String)> = ["added", "removed", "changed"]
        .into_iter()
        .filter_map(|kind| {
            let prefix = format!("nodeguard_fim_check_changes{{kind=\"{kind}\"}} ");
            let value = fim.lines().find_map(|l| l.strip_prefix(prefix.as_str()))?;
            (value != "0").then(|| (kind, value.to_owned()))
        })
        .collect();
    assert!(!changed.is_empty(), "the fixture changed files:\n{fim}");
    let mut fim_alerts = String::new();
    for (kind, count) in &changed {
        fim_alerts.push_str(&format!(
            "          - exp_labels: {{severity: warning, kind: {kind}, node: e2e-node, instance: \"10.0.0.9:9100\", job: node-exporter}}\n            exp_annotations:\n              summary: \"Files {kind} on e2e-node\"\n              description: \"fim-check found {count} {kind} files against the baseline on e2e-node. Review them (cluster-report lists the paths), then accept with `fim-check update` or investigate.\"\n"
        ));
    }
    let rules = crate::harness::workspace_root().join("manifests/rules/nodeguard.rules.yml");
    let test = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{series}    alert_rule_test:\n      - eval_time: 5m\n        alertname: NodeguardFileIntegrityChanged\n        exp_alerts:\n{fim_alerts}      - eval_time: 5m\n        alertname: NodeguardCISFailures\n        exp_alerts: []\n      - eval_time: 5m\n        alertname: NodeguardResultsStale\n        exp_alerts: []\n      - eval_time: 5m\n        alertname: NodeguardFIMBaselineUnauthenticated\n        exp_alerts: []\n",
        rules.display()
    );
    let test_file = dir.write("real.test.yml", test);
    let result = run(Command::new(&promtool)
        .arg("test")
        .arg("rules")
        .arg(&test_file));
    assert_eq!(
        result.code,
        0,
        "{}{}\n--- test file\n{}",
        result.stdout,
        result.stderr,
        std::fs::read_to_string(&test_file).unwrap()
    );
}
