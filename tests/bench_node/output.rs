//! Output formats: kube-bench's JSON shape (validated against real
//! kube-bench output), JSON Lines, metrics, exit codes.

use std::process::Command;

use serde_json::Value;

use super::worker::{Change, Worker};
use crate::harness;

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of `reference` is in `ours` with the same JSON type, level by
/// level (first element of each array).
fn assert_same_shape(reference: &Value, ours: &Value, path: &str) {
    match (reference, ours) {
        (Value::Object(r), Value::Object(o)) => {
            for (key, rv) in r {
                let ov = o
                    .get(key)
                    .unwrap_or_else(|| panic!("{path}.{key} missing in our output: {ours:#}"));
                assert_eq!(json_type(rv), json_type(ov), "{path}.{key}");
                assert_same_shape(rv, ov, &format!("{path}.{key}"));
            }
        }
        (Value::Array(r), Value::Array(o)) => {
            if let (Some(rf), Some(of)) = (r.first(), o.first()) {
                assert_same_shape(rf, of, &format!("{path}[0]"));
            }
        }
        _ => {}
    }
}

#[test]
fn kube_bench_format_matches_real_kube_bench_output() {
    let fixtures = harness::shared_fixtures().join("kube-bench");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("result.json")).unwrap())
            .unwrap();
    let node = Worker::default()
        .with(Change::Config(
            "rotateCertificates: true",
            "rotateCertificates: false",
        ))
        .build("kb-format");
    let out = node.run(&["--format", "kube-bench", "--targets", "node"]);
    out.assert_code(0);
    let ours = out.json();
    assert_same_shape(&reference, &ours, "$");

    // The current kube-bench keys the 2020 samples predate.
    let check = &ours["Controls"][0]["tests"][0]["results"][0];
    for key in ["AuditEnv", "IsMultiple"] {
        assert!(check.get(key).is_some(), "{key} missing: {check:#}");
    }
    assert_eq!(ours["Controls"][0]["version"], "cis-1.12");
    assert_eq!(ours["Controls"][0]["detected_version"], "1.31");
    assert_eq!(ours["Controls"][0]["node_type"], "node");

    // Totals agree with the checks, and the failing one is there.
    let mut counted = [0u64; 4];
    let mut rotate = None;
    for control in ours["Controls"].as_array().unwrap() {
        for group in control["tests"].as_array().unwrap() {
            for r in group["results"].as_array().unwrap() {
                let i = ["PASS", "FAIL", "WARN", "INFO"]
                    .iter()
                    .position(|s| r["status"] == *s)
                    .unwrap();
                counted[i] += 1;
                if r["test_number"] == "4.2.10" {
                    rotate = Some(r.clone());
                }
            }
        }
    }
    let totals = &ours["Totals"];
    assert_eq!(
        [
            &totals["total_pass"],
            &totals["total_fail"],
            &totals["total_warn"],
            &totals["total_info"]
        ]
        .map(|v| v.as_u64().unwrap()),
        counted
    );
    let rotate = rotate.expect("4.2.10 present");
    assert_eq!(rotate["status"], "FAIL");
    assert_eq!(rotate["scored"], true);
    assert!(rotate["test_desc"]
        .as_str()
        .unwrap()
        .ends_with("(Automated)"));
    assert_eq!(rotate["actual_value"], "rotateCertificates=false");
    assert_eq!(rotate["test_info"][0], rotate["remediation"]);

    // The same check objects fit the --nototals sample too.
    let no_totals: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("result_no_totals.json")).unwrap(),
    )
    .unwrap();
    assert_same_shape(&no_totals[0], &ours["Controls"][0], "$[0]");
}

#[test]
fn json_envelope_has_results_and_summary() {
    let out = Worker::default()
        .build("envelope")
        .run(&["--targets", "node"]);
    out.assert_code(0);
    let doc = out.json();
    for key in [
        "schema_version",
        "tool",
        "version",
        "run_id",
        "node",
        "started_at",
        "finished_at",
        "duration_ms",
        "results",
        "summary",
    ] {
        assert!(doc.get(key).is_some(), "{key} missing");
    }
    assert_eq!(doc["tool"], "bench-node");
    assert_eq!(doc["node"], "fixture-node");
    let first = &doc["results"][0];
    for key in [
        "id",
        "title",
        "section",
        "status",
        "scored",
        "expected",
        "actual",
        "remediation",
    ] {
        assert!(first.get(key).is_some(), "{key} missing in {first:#}");
    }
    assert_eq!(doc["summary"]["total"], 25);
    assert_eq!(doc["summary"]["pass"], 25);
}

#[test]
fn jsonl_has_one_line_per_check_and_a_summary() {
    let out = Worker::default()
        .build("jsonl")
        .run(&["--format", "jsonl", "--targets", "node"]);
    out.assert_code(0);
    for line in out.stdout.lines() {
        assert!(line.len() < 8192, "line too long for CRI-O: {}", line.len());
    }
    let lines = out.json_lines();
    assert_eq!(lines.len(), 26);
    assert!(lines[..25].iter().all(|l| l["record"] == "check"));
    assert_eq!(lines[25]["record"], "summary");
    assert_eq!(lines[25]["summary"]["pass"], 25);
    assert!(lines.iter().all(|l| l["run_id"] == lines[0]["run_id"]));
}

#[test]
fn fail_on_sets_the_exit_code() {
    let hardened = Worker::default().build("fail-on-ok");
    hardened
        .run(&["--fail-on", "FAIL", "--targets", "node"])
        .assert_code(0);
    let broken = Worker::default()
        .with(Change::Arg("--anonymous-auth=true"))
        .build("fail-on-fail");
    broken.run(&["--targets", "node"]).assert_code(0);
    broken
        .run(&["--fail-on", "FAIL", "--targets", "node"])
        .assert_code(1);
    // A Manual check failing is WARN: only --fail-on WARN counts it.
    let warned = Worker::default()
        .with(Change::Arg("--hostname-override=x"))
        .build("fail-on-warn");
    warned
        .run(&["--fail-on", "FAIL", "--targets", "node"])
        .assert_code(0);
    warned
        .run(&["--fail-on", "WARN", "--targets", "node"])
        .assert_code(1);
}

#[test]
fn metrics_file_has_every_status_and_failed_scored_checks() {
    let node = Worker::default()
        .with(Change::Arg("--anonymous-auth=true"))
        .with(Change::Arg("--hostname-override=x"))
        .build("metrics");
    let metrics = node.dir.join("out/bench-node.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    node.run(&[
        "--targets",
        "node",
        "--metrics-file",
        metrics.to_str().unwrap(),
    ])
    .assert_code(0);
    let text = std::fs::read_to_string(&metrics).unwrap();
    for status in ["PASS", "FAIL", "WARN", "INFO"] {
        assert!(
            text.contains(&format!(
                "nodeguard_bench_node_checks{{status=\"{status}\"}}"
            )),
            "{status} series missing:\n{text}"
        );
    }
    assert!(
        text.contains("nodeguard_bench_node_checks{status=\"INFO\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("nodeguard_bench_node_check_failed{id=\"4.2.1\"} 1"),
        "{text}"
    );
    // 4.2.7 is Manual: WARN, not a failed scored check.
    assert!(!text.contains("id=\"4.2.7\""), "{text}");
    assert!(
        text.contains("nodeguard_bench_node_last_success_timestamp_seconds"),
        "{text}"
    );

    match harness_promtool() {
        Some(promtool) => {
            let out = Command::new(promtool)
                .args(["check", "metrics"])
                .stdin(std::fs::File::open(&metrics).unwrap())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "promtool check metrics: {stderr}");
        }
        None => eprintln!("SKIPPED (promtool not installed): exposition-format check"),
    }

    // A failed run keeps the last good series and stamps the failure.
    let out = harness::run(harness::tool("bench-node").args([
        "--host-root",
        "/nonexistent/host",
        "--metrics-file",
        metrics.to_str().unwrap(),
    ]));
    assert_eq!(out.code, 2);
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.contains("nodeguard_bench_node_check_failed{id=\"4.2.1\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("nodeguard_bench_node_last_run_success 0"),
        "{text}"
    );
}

fn harness_promtool() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    })
}
