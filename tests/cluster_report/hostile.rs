//! Hostile and odd input through the binary: wrapping counts, future
//! dates, multibyte timestamps, devices, pipes and endless lines. Anything
//! that could block runs under `timeout(1)`, so a regression fails the
//! test instead of hanging CI.

use std::process::Command;

use serde_json::Value;

use super::{fixtures, report, NOW};
use crate::harness::{bin, run, RunResult, TestDir};

/// Seconds any one run may take before it counts as hung.
const HANG_LIMIT: &str = "20";

/// Runs `bash -c script` with `$CR` set to the binary, under `timeout`.
fn bash(script: &str) -> RunResult {
    let result = run(Command::new("timeout")
        .args(["-k", "5", HANG_LIMIT, "bash", "-c", script])
        .env("CR", bin("cluster-report")));
    assert_ne!(result.code, 124, "hung: {script}\n{}", result.stderr);
    result
}

/// One scan-images record.
fn scan_line(node: &str, run_id: &str, timestamp: &str, critical: &str) -> String {
    format!(
        r#"{{"schema_version":1,"tool":"scan-images","version":"0.1.0","run_id":"{run_id}","node":"{node}","timestamp":"{timestamp}","record":"image","image_id":"sha256:{run_id}","repo_tags":["app:{run_id}"],"status":"scanned","vulnerabilities":{{"CRITICAL":{critical}}}}}"#
    )
}

/// Regression: two nodes with 2^63 criticals summed to 0 and
/// `--fail-on critical` exited 0.
#[test]
fn critical_counts_saturate_and_still_fail() {
    let dir = TestDir::new("cluster-report-wrap");
    let big = (1u64 << 63).to_string();
    let text = format!(
        "{}\n{}\n",
        scan_line("n1", "r1", "2026-11-24T01:00:00Z", &big),
        scan_line("n2", "r2", "2026-11-24T01:00:00Z", &big)
    );
    let path = dir.write("wrap.jsonl", text);
    let path = path.to_str().unwrap();
    let result = run(Command::new(bin("cluster-report")).args([
        path,
        "--now",
        NOW,
        "--fail-on",
        "critical",
    ]));
    result.assert_code(1);
    assert_eq!(
        result.json()["summary"]["vulnerabilities"]["CRITICAL"],
        Value::from(u64::MAX)
    );
}

/// Regression: a record dated 2099 replaced the node's real latest run
/// (0 criticals, no warning, exit 0).
#[test]
fn future_records_do_not_mask_the_newest_plausible_run() {
    let dir = TestDir::new("cluster-report-future");
    let text = format!(
        "{}\n{}\n",
        scan_line("n1", "real", "2026-11-24T01:00:00Z", "4"),
        scan_line("n1", "forged", "2099-01-01T00:00:00Z", "0")
    );
    let path = dir.write("future.jsonl", text);
    let path = path.to_str().unwrap();
    let result = run(Command::new(bin("cluster-report")).args([
        path,
        "--now",
        NOW,
        "--fail-on",
        "critical",
    ]));
    result.assert_code(1);
    let r = result.json();
    assert_eq!(r["summary"]["vulnerabilities"]["CRITICAL"], 4);
    assert_eq!(r["summary"]["nodes_with_clock_skew"], 1);
    assert_eq!(r["clock_skew"][0]["node"], "n1");
    assert_eq!(r["clock_skew"][0]["used"], "newest_plausible_run");
    assert_eq!(r["nodes"][0]["tools"]["scan-images"]["run_id"], "real");
    assert_eq!(r["nodes"][0]["tools"]["scan-images"]["clock_skew"], true);
    assert!(r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("clock skew")));
    // Within the tolerance, a slightly fast clock is a normal run.
    let ahead = scan_line("n1", "ahead", "2026-11-24T02:04:00Z", "1");
    let path = dir.write("ahead.jsonl", ahead + "\n");
    let r = report(&[path.to_str().unwrap(), "--now", NOW]);
    assert_eq!(r["summary"]["nodes_with_clock_skew"], 0);
    assert_eq!(r["clock_skew"], serde_json::json!([]));
}

/// Regression: a timestamp with a multibyte character aborted the run.
#[test]
fn multibyte_timestamp_is_a_malformed_line() {
    let dir = TestDir::new("cluster-report-utf8");
    let good = std::fs::read_to_string(fixtures().join("logs/node-a.jsonl")).unwrap();
    let text = format!("{}\n{good}", scan_line("n9", "x", "A€BCDE", "1"));
    let path = dir.write("utf8.jsonl", text);
    let r = report(&[path.to_str().unwrap(), "--now", NOW]);
    assert_eq!(r["source"]["malformed_lines"], 1);
}

/// Devices are refused at once (they used to be read forever), for the
/// inputs, `--expect-nodes` and `--prometheus-token-file`.
#[test]
fn devices_are_refused_not_read() {
    let logs = fixtures().join("logs");
    let logs = logs.to_str().unwrap();
    for (script, named) in [
        ("\"$CR\" /dev/zero".to_owned(), "/dev/zero"),
        (
            format!("\"$CR\" {logs} --now {NOW} --expect-nodes /dev/zero"),
            "/dev/zero",
        ),
        (
            "\"$CR\" --prometheus http://127.0.0.1:1 --prometheus-token-file /dev/zero".to_owned(),
            "/dev/zero",
        ),
    ] {
        let result = bash(&script);
        result.assert_code(2);
        assert!(
            result.stderr.contains(named) && result.stderr.contains("device"),
            "{script}: {}",
            result.stderr
        );
        assert_eq!(result.stdout, "", "{script}");
    }
}

/// Pipes keep working: `--expect-nodes <(kubectl …)`, an input from
/// `<(…)`, and stdin; a pipe without a line end is capped, not hoarded.
#[test]
fn pipes_are_read_as_capped_streams() {
    let logs = fixtures().join("logs");
    let logs = logs.to_str().unwrap();
    let result = bash(&format!(
        "\"$CR\" {logs} --now {NOW} --expect-nodes <(printf 'node/node-a\\nnode/node-z')"
    ));
    result.assert_code(0);
    let r = result.json();
    assert_eq!(r["summary"]["nodes_missing"], 1);
    let silent: Vec<&Value> = r["missing"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["reason"] == "no results from this node")
        .map(|m| &m["node"])
        .collect();
    assert_eq!(silent, ["node-z"], "the last line has no newline");

    let node_a = fixtures().join("logs/node-a.jsonl");
    let result = bash(&format!("\"$CR\" <(cat {}) --now {NOW}", node_a.display()));
    result.assert_code(0);
    assert_eq!(result.json()["summary"]["nodes"], 1);

    // 80 MiB without a newline, from a pipe: refused with the line number.
    let result = bash("head -c 83886080 /dev/zero | tr '\\0' x | \"$CR\" -");
    result.assert_code(2);
    assert!(
        result
            .stderr
            .contains("<stdin>: line 1: a record longer than"),
        "{}",
        result.stderr
    );
    // An endless node list from a pipe is capped too.
    let result = bash(&format!(
        "\"$CR\" {logs} --now {NOW} --expect-nodes <(yes node-x)"
    ));
    result.assert_code(2);
    assert!(result.stderr.contains("larger than"), "{}", result.stderr);
}
