//! The alert rules: promtool on the plain file, and the chart's
//! PrometheusRule rendered by Helm's engine equal to it and passing the same
//! unit tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{fixtures, require};
use crate::harness::{run, workspace_root, TestDir};

fn rules_dir() -> PathBuf {
    workspace_root().join("manifests/rules")
}

fn promtool(args: &[&Path]) -> crate::harness::RunResult {
    run(Command::new("promtool").args(args))
}

#[test]
fn promtool_checks_and_unit_tests_pass() {
    if require("promtool", "alert rule tests").is_none() {
        return;
    }
    let rules = rules_dir().join("nodeguard.rules.yml");
    let check = promtool(&[Path::new("check"), Path::new("rules"), &rules]);
    check.assert_code(0);
    assert!(
        check.stdout.contains("SUCCESS: 18 rules found"),
        "{}",
        check.stdout
    );
    let tests = rules_dir().join("tests/nodeguard.rules.test.yml");
    let result = promtool(&[Path::new("test"), Path::new("rules"), &tests]);
    result.assert_code(0);
}

#[test]
fn promtool_unit_tests_can_fail() {
    if require("promtool", "alert rule tests").is_none() {
        return;
    }
    // The same tests against rules whose critical threshold is off by one:
    // the fire/resolve expectations must catch it.
    let dir = TestDir::new("rules-mutant");
    let rules = std::fs::read_to_string(rules_dir().join("nodeguard.rules.yml")).unwrap();
    let mutant = rules.replace(
        r#"nodeguard_scan_images_vulnerabilities{severity="CRITICAL"} > 0"#,
        r#"nodeguard_scan_images_vulnerabilities{severity="CRITICAL"} > 2"#,
    );
    assert_ne!(rules, mutant);
    dir.write("nodeguard.rules.yml", mutant);
    let tests =
        std::fs::read_to_string(rules_dir().join("tests/nodeguard.rules.test.yml")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    let test_file = dir.write("tests/t.yml", tests);
    let result = promtool(&[Path::new("test"), Path::new("rules"), &test_file]);
    result.assert_code(1);
    let output = format!("{}{}", result.stdout, result.stderr);
    assert!(
        output.contains("alertname: NodeguardCriticalVulnerabilities"),
        "{output}"
    );
}

/// The venv's Python with Helm's engine (tests/setup/deploy.sh installs it).
fn helm_python() -> Option<PathBuf> {
    let venv = std::env::var_os("NODEGUARD_VENV")
        .map_or_else(|| PathBuf::from("/opt/nodeguard-venv"), PathBuf::from);
    let python = venv.join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import helm_python, yaml"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "helm-python-sdk missing from {} in CI",
            venv.display()
        );
        eprintln!(
            "SKIPPED: helm-python-sdk not in {} (tests/setup/deploy.sh installs it)",
            venv.display()
        );
    }
    ok.then_some(python)
}

fn render_rules(python: &Path, dir: &TestDir, values: &str) -> (PathBuf, serde_json::Value) {
    let out = dir.join("rendered.rules.yml");
    let chart = workspace_root().join("manifests/chart/nodeguard");
    let result = run(Command::new(python)
        .arg(fixtures().join("render-prometheusrule.py"))
        .arg(&chart)
        .arg(&out)
        .arg(values));
    result.assert_code(0);
    (out, serde_json::from_str(&result.stdout).unwrap())
}

#[test]
fn chart_prometheusrule_equals_the_plain_rules_and_passes_their_tests() {
    if !workspace_root()
        .join("manifests/chart/nodeguard/Chart.yaml")
        .is_file()
    {
        eprintln!("SKIPPED: the chart skeleton is not in this tree yet");
        return;
    }
    let (Some(python), Some(_)) = (helm_python(), require("promtool", "alert rule tests")) else {
        return;
    };
    let dir = TestDir::new("rules-chart");
    let (rendered, metadata) = render_rules(
        &python,
        &dir,
        "{\"prometheusRule\":{\"labels\":{\"release\":\"kube-prometheus-stack\"}}}",
    );
    assert_eq!(metadata["namespace"], "nodeguard");
    assert_eq!(metadata["labels"]["release"], "kube-prometheus-stack");
    // Same rules as the plain file (comments aside): compare parsed YAML.
    let same = Command::new(&python)
        .args([
            "-c",
            "import sys, yaml; a, b = (yaml.safe_load(open(p)) for p in sys.argv[1:]); sys.exit(0 if a == b else 1)",
        ])
        .arg(&rendered)
        .arg(rules_dir().join("nodeguard.rules.yml"))
        .status()
        .unwrap();
    assert!(
        same.success(),
        "chart PrometheusRule differs from manifests/rules/nodeguard.rules.yml: {}",
        rendered.display()
    );
    // And the unit tests pass on the rendered file itself.
    let tests = std::fs::read_to_string(rules_dir().join("tests/nodeguard.rules.test.yml"))
        .unwrap()
        .replace("../nodeguard.rules.yml", rendered.to_str().unwrap());
    let test_file = dir.write("rendered.test.yml", tests);
    promtool(&[Path::new("test"), Path::new("rules"), &test_file]).assert_code(0);

    // Thresholds follow values.
    let (custom, _) = render_rules(
        &python,
        &dir,
        "{\"prometheusRule\":{\"cisFailedChecksThreshold\":3,\"staleAfterIntervals\":3},\"scanImages\":{\"intervalSeconds\":600}}",
    );
    let text = std::fs::read_to_string(custom).unwrap();
    assert!(
        text.contains("(nodeguard_bench_node_check_failed == 1) > 3"),
        "{text}"
    );
    assert!(
        text.contains("nodeguard_scan_images_last_success_timestamp_seconds > 1980"),
        "{text}"
    );
}
