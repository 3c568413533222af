//! The JSON Lines lane, end to end through the binary.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::{fixtures, report, NOW};
use crate::harness::{run, tool, TestDir};

fn fixture_report() -> Value {
    let logs = fixtures().join("logs");
    let expect = fixtures().join("expected-nodes.txt");
    report(&[
        logs.to_str().unwrap(),
        "--now",
        NOW,
        "--expect-nodes",
        expect.to_str().unwrap(),
    ])
}

#[test]
fn envelope_and_input_accounting() {
    let r = fixture_report();
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["tool"], "cluster-report");
    assert_eq!(r["source"]["kind"], "jsonl");
    assert_eq!(r["source"]["inputs"].as_array().unwrap().len(), 3);
    // 43 physical lines: 33 records used (2 of them from an older run of
    // node-b's scanner, superseded), 2 log lines, nothing malformed.
    assert_eq!(r["source"]["records"], 33);
    assert_eq!(r["source"]["superseded_records"], 2);
    assert_eq!(r["source"]["other_lines"], 2);
    assert_eq!(r["source"]["malformed_lines"], 0);
    assert_eq!(r["warnings"], json!([]));
}

#[test]
fn summary_counts_latest_runs_only() {
    let s = &fixture_report()["summary"];
    assert_eq!(s["nodes"], 3);
    assert_eq!(s["nodes_expected"], 4);
    assert_eq!(s["nodes_missing"], 1);
    // node-c's fim-check ran 6 h before NOW (stale after 2 h); its
    // detect-host report is as old but detect-host does not loop.
    assert_eq!(s["nodes_stale"], 1);
    // node-b's older scan said 7 criticals; the newer one says 2.
    assert_eq!(
        s["vulnerabilities"],
        json!({"CRITICAL": 4, "HIGH": 10, "MEDIUM": 18, "LOW": 2, "UNKNOWN": 0})
    );
    assert_eq!(s["nodes_with_critical"], 2);
    assert_eq!(s["images"], 3);
    assert_eq!(s["cis_failed_checks"], 2);
    assert_eq!(s["fim_changes"], 6);
    assert_eq!(s["agents_not_converged"], 1);
    assert_eq!(s["agents_inactive"], 1);
}

#[test]
fn worst_images_count_their_nodes() {
    let r = fixture_report();
    let images = r["images"].as_array().unwrap();
    assert_eq!(images[0]["image"], "docker.io/library/nginx:1.25.3");
    assert_eq!(images[0]["digest"], "sha256:aa11");
    assert_eq!(images[0]["nodes"], 2);
    assert_eq!(images[0]["vulnerabilities"]["CRITICAL"], 2);
    let redis = images
        .iter()
        .find(|i| i["image"] == "docker.io/library/redis:7.2")
        .unwrap();
    assert_eq!(
        redis["unscanned_nodes"], 1,
        "a failed scan is not a clean image"
    );
    // --top cuts the list, not the totals.
    let logs = fixtures().join("logs");
    let top = report(&[logs.to_str().unwrap(), "--now", NOW, "--top-images", "1"]);
    assert_eq!(top["images"].as_array().unwrap().len(), 1);
    assert_eq!(top["images_total"], 3);
}

#[test]
fn cis_fim_agents_stale_and_missing() {
    let r = fixture_report();
    assert_eq!(r["cis_failures"][0]["id"], "4.2.1");
    assert_eq!(
        r["cis_failures"][0]["node_names"],
        json!(["node-a", "node-b"])
    );
    assert_eq!(r["cis_failures"][1]["id"], "4.1.1");
    assert_eq!(r["cis_failures"][1]["nodes"], 1);

    let fim = r["fim_changes"].as_array().unwrap();
    assert_eq!(fim.len(), 2, "node-b's clean check is not listed");
    assert_eq!(fim[1]["node"], "node-c");
    assert_eq!(fim[1]["baseline_authenticated"], false);
    // node-c's long summary record was split by the runtime into CRI
    // partial lines: rejoined, its paths are all there.
    assert_eq!(fim[1]["changes"].as_array().unwrap().len(), 4);
    assert_eq!(fim[1]["added"], 3);

    let agents = r["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2, "install-agent steps are not agents");
    assert_eq!(
        agents[1],
        json!({"node": "node-b", "agent": "qualys-cloud-agent", "version": "6.1.0.28", "converged": false, "service_active": false})
    );

    assert_eq!(
        r["stale"],
        json!([{"node": "node-c", "tool": "fim-check", "last_success": 1_795_464_000.0, "age_seconds": 21_600.0}])
    );
    let missing: Vec<(&str, &str)> = r["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["node"].as_str().unwrap(), m["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        missing,
        [
            ("node-c", "some tools sent no results"),
            ("node-d", "no results from this node")
        ]
    );
    assert_eq!(
        r["nodes"][2]["missing_tools"],
        json!(["install-agent", "scan-images", "bench-node"])
    );
}

#[test]
fn stdin_reads_kubectl_logs() {
    let text = std::fs::read(fixtures().join("logs/node-b.kubectl.log")).unwrap();
    let mut child = Command::new(crate::harness::bin("cluster-report"))
        .args(["-", "--now", NOW])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["source"]["inputs"], json!(["<stdin>"]));
    assert_eq!(r["summary"]["nodes"], 1);
    assert_eq!(r["nodes"][0]["node"], "node-b");
}

#[test]
fn fail_on_conditions_set_exit_1() {
    let logs = fixtures().join("logs");
    let logs = logs.to_str().unwrap();
    run(tool("cluster-report").args([logs, "--now", NOW, "--fail-on", "critical"])).assert_code(1);
    run(tool("cluster-report").args([logs, "--now", NOW, "--fail-on", "stale,missing"]))
        .assert_code(1);
    // Measured right after node-c's run, nothing is stale (the other
    // nodes' later runs are within the clock-skew tolerance given here;
    // beyond it they would be future-dated, and a tool with only a
    // future-dated run counts as stale).
    let early = "2026-11-23T20:30:00Z";
    run(tool("cluster-report").args([
        logs,
        "--now",
        early,
        "--stale-after",
        "12h",
        "--clock-skew-tolerance",
        "6h",
        "--fail-on",
        "stale",
    ]))
    .assert_code(0);
    run(tool("cluster-report").args([
        logs,
        "--now",
        early,
        "--stale-after",
        "12h",
        "--fail-on",
        "stale",
    ]))
    .assert_code(1);
}

#[test]
fn output_files_are_written_whole() {
    let dir = TestDir::new("cluster-report-out");
    let json_path = dir.join("report.json");
    let html_path = dir.join("report.html");
    let logs = fixtures().join("logs");
    let result = run(tool("cluster-report").args([
        logs.to_str().unwrap(),
        "--now",
        NOW,
        "--output",
        json_path.to_str().unwrap(),
        "--html",
        html_path.to_str().unwrap(),
    ]));
    result.assert_code(0);
    assert_eq!(result.stdout, "", "--output takes the report off stdout");
    let written: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(written["summary"]["nodes"], 3);
    let page = std::fs::read_to_string(&html_path).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    // The hostile path from node-a's FIM change is text, not markup.
    assert!(page.contains("/usr/local/bin/&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script>alert(1)"));
    // Self-contained: nothing fetched from anywhere.
    for external in ["http://", "https://", "src=", "@import", "url("] {
        assert!(!page.contains(external), "page references {external}");
    }
}

#[test]
fn bad_input_is_counted_and_named() {
    let dir = TestDir::new("cluster-report-bad");
    let good = std::fs::read_to_string(fixtures().join("logs/node-a.jsonl")).unwrap();
    let mut text = String::from("{\"schema_version\":1,\"tool\":\"fim-check\",\"node\":\"x\"\n");
    text.push_str("\u{1}\u{2} binary garbage\n");
    text.push_str(&good);
    text.push_str("{\"schema_version\":9,\"tool\":\"fim-check\",\"node\":\"x\",\"timestamp\":\"2026-11-24T00:00:00Z\"}\n");
    let path = dir.write("mixed.jsonl", text);
    let r = report(&[path.to_str().unwrap(), "--now", NOW]);
    assert_eq!(r["source"]["malformed_lines"], 1);
    assert_eq!(r["source"]["unsupported_records"], 1);
    let warnings = r["warnings"].as_array().unwrap();
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("mixed.jsonl:1: not a JSON record"),
        "{warnings:?}"
    );
    assert!(warnings
        .iter()
        .any(|w| w.as_str().unwrap().contains("schema_version 9")));
    assert_eq!(r["summary"]["nodes"], 1);
    // Non-UTF-8 bytes are a malformed line, not a crash.
    let binary = dir.write("binary.jsonl", [good.as_bytes(), b"\xff\xfe{\n"].concat());
    let r = report(&[binary.to_str().unwrap(), "--now", NOW]);
    assert_eq!(r["source"]["malformed_lines"], 1);
}

#[test]
fn errors_exit_2_naming_the_input() {
    let result = run(tool("cluster-report").args(["/nonexistent/nodeguard-logs"]));
    result.assert_code(2);
    assert!(
        result.stderr.contains("/nonexistent/nodeguard-logs"),
        "{}",
        result.stderr
    );
    assert_eq!(result.stdout, "");

    let dir = TestDir::new("cluster-report-empty");
    let path = dir.write("app.log", "just a log line\n{\"level\":\"info\"}\n");
    let result = run(tool("cluster-report").arg(&path));
    result.assert_code(2);
    assert!(
        result.stderr.contains("no nodeguard results found"),
        "{}",
        result.stderr
    );

    let result = run(&mut tool("cluster-report"));
    result.assert_code(2);
    assert!(result.stderr.contains("--prometheus"), "{}", result.stderr);
}

#[test]
fn devices_are_written_to_not_replaced() {
    // `--html /dev/null` once replaced the machine's /dev/null with a
    // regular file (atomic rename over a device): never again.
    let logs = fixtures().join("logs");
    let result = run(tool("cluster-report").args([
        logs.to_str().unwrap(),
        "--now",
        NOW,
        "--html",
        "/dev/null",
        "--output",
        "/dev/null",
    ]));
    result.assert_code(0);
    let meta = std::fs::metadata("/dev/null").unwrap();
    assert!(!meta.is_file(), "/dev/null was replaced by a regular file");
}
