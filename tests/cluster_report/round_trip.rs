//! A multi-node run of the real tools on fixture hosts, their JSON Lines
//! shipped three different ways (plain, `kubectl logs --prefix`, CRI log
//! files with split lines), read back by `cluster-report`: every record is
//! accounted for and every finding is in the report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::report;
use crate::harness::{run, shared_fixtures, tool, RunResult, TestDir};

/// The fixture hosts: node name, os-release fixture, and whether its kubelet
/// allows anonymous requests (a CIS 4.2.1 failure).
const HOSTS: &[(&str, &str, bool)] = &[
    ("rt-debian", "debian_10", false),
    ("rt-ubuntu", "ubuntu_18.04", true),
    ("rt-rocky", "rockylinux_8_3", true),
];

/// One tool's JSON Lines output on one node (the tool must have succeeded).
fn jsonl(name: &str, result: &RunResult) -> Option<Vec<Value>> {
    assert!(
        result.code == 0 || result.code == 1,
        "{name} failed ({}):\n{}",
        result.code,
        result.stderr
    );
    Some(result.json_lines())
}

/// The os-release of a host in the shared Ansible fixtures (JSON files
/// holding each release file's text under `input`).
fn os_release(name: &str) -> String {
    let path = shared_fixtures().join(format!("os-release/ansible/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["input"]["/etc/os-release"]
        .as_str()
        .unwrap_or_else(|| panic!("{} has no /etc/os-release", path.display()))
        .to_owned()
}

/// A fixture node: os-release, a kubelet process and its config.
pub(super) fn build_host(root: &Path, os: &str, anonymous: bool) {
    let write = |rel: &str, body: &str| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    write("etc/os-release", &os_release(os));
    write("etc/hosts", "127.0.0.1 localhost\n");
    write(
        "etc/kubernetes/kubelet.conf",
        "apiVersion: v1\nkind: Config\n",
    );
    write(
        "var/lib/kubelet/config.yaml",
        &format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nauthentication:\n  anonymous:\n    enabled: {anonymous}\n"
        ),
    );
    write(
        "proc/4242/cmdline",
        "/usr/bin/kubelet\0--config=/var/lib/kubelet/config.yaml\0--kubeconfig=/etc/kubernetes/kubelet.conf\0",
    );
    write("proc/4242/comm", "kubelet\n");
}

/// Runs the tools on one fixture host; returns their JSON Lines.
fn run_node(dir: &TestDir, node: &str, os: &str, anonymous: bool) -> Vec<Value> {
    let root = dir.join(node);
    build_host(&root, os, anonymous);
    let common = |cmd: &mut std::process::Command| {
        cmd.arg("--host-root")
            .arg(&root)
            .args(["--node-name", node, "--format", "jsonl"]);
    };
    let mut lines = Vec::new();

    let mut detect = tool("detect-host");
    common(&mut detect);
    lines.extend(jsonl("detect-host", &run(&mut detect)).unwrap_or_default());

    let baseline = dir.join(format!("{node}.baseline"));
    let mut init = tool("fim-check");
    init.arg("init")
        .arg("--baseline")
        .arg(&baseline)
        .args(["--path", "/etc"]);
    common(&mut init);
    if jsonl("fim-check", &run(&mut init)).is_some() {
        // The node changes after its baseline: one edit, one new file.
        std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost evil.example\n").unwrap();
        std::fs::write(root.join(format!("etc/{node}-dropped.conf")), "x\n").unwrap();
        let mut check = tool("fim-check");
        check
            .arg("check")
            .arg("--baseline")
            .arg(&baseline)
            .args(["--path", "/etc"]);
        common(&mut check);
        lines.extend(jsonl("fim-check", &run(&mut check)).unwrap_or_default());
    }

    let mut bench = tool("bench-node");
    common(&mut bench);
    lines.extend(jsonl("bench-node", &run(&mut bench)).unwrap_or_default());
    lines
}

/// How each node's lines reach the report: plain, kubectl, CRI file.
fn ship(index: usize, node: &str, lines: &[Value]) -> String {
    let mut out = String::new();
    for line in lines {
        let text = serde_json::to_string(line).unwrap();
        match index % 3 {
            0 => out.push_str(&text),
            1 => out.push_str(&format!("[pod/nodeguard-{node}/tool] {text}")),
            _ => {
                // CRI: pieces of at most 100 bytes, a stderr line between.
                let bytes = text.as_bytes();
                let mut pieces = bytes.chunks(100).peekable();
                while let Some(piece) = pieces.next() {
                    let tag = if pieces.peek().is_some() { "P" } else { "F" };
                    let piece = std::str::from_utf8(piece)
                        .unwrap_or_else(|_| panic!("ASCII JSON expected"));
                    out.push_str(&format!(
                        "2026-11-24T01:00:00.000000001Z stdout {tag} {piece}\n"
                    ));
                    if tag == "P" {
                        out.push_str("2026-11-24T01:00:00.000000002Z stderr F tool: working\n");
                    }
                }
                continue;
            }
        }
        out.push('\n');
    }
    out
}

#[test]
fn multi_node_json_lines_round_trip_with_nothing_lost() {
    let dir = TestDir::new("cluster-report-round-trip");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut produced: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (index, (node, os, anonymous)) in HOSTS.iter().enumerate() {
        let lines = run_node(&dir, node, os, *anonymous);
        std::fs::write(logs.join(format!("{node}.log")), ship(index, node, &lines)).unwrap();
        produced.insert((*node).to_owned(), lines);
    }
    let total: usize = produced.values().map(Vec::len).sum();
    if total == 0 {
        eprintln!("SKIPPED: no node tool is implemented in this tree");
        return;
    }

    let r = report(&[logs.to_str().unwrap()]);
    // Every record read and used; nothing malformed, nothing superseded.
    assert_eq!(r["source"]["records"], total, "{}", r["source"]);
    assert_eq!(r["source"]["malformed_lines"], 0, "{}", r["warnings"]);
    assert_eq!(r["source"]["superseded_records"], 0);
    assert_eq!(r["summary"]["nodes"], produced.len());

    for (node, lines) in &produced {
        let row = r["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == node.as_str())
            .unwrap_or_else(|| panic!("{node} missing from the report"));
        // Every tool's run, by its run id (fim-check: the check, whose
        // lines are the only ones shipped).
        let runs: BTreeSet<(&str, &str)> = lines
            .iter()
            .map(|l| (l["tool"].as_str().unwrap(), l["run_id"].as_str().unwrap()))
            .collect();
        for (tool, run_id) in &runs {
            assert_eq!(row["tools"][tool]["run_id"], *run_id, "{node} {tool}");
        }
        assert_eq!(
            row["tools"].as_object().unwrap().len(),
            runs.len(),
            "{node}: {}",
            row["tools"]
        );
        // Every FIM change path of the latest check.
        let changes: BTreeSet<&str> = lines
            .iter()
            .filter(|l| l["tool"] == "fim-check" && l["record"] == "change")
            .map(|l| l["path"].as_str().unwrap())
            .collect();
        if !changes.is_empty() {
            let fim = r["fim_changes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["node"] == node.as_str())
                .unwrap();
            let reported: BTreeSet<&str> = fim["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["path"].as_str().unwrap())
                .collect();
            assert_eq!(reported, changes, "{node}");
            assert!(
                changes.iter().any(|p| p.ends_with("etc/hosts")),
                "{changes:?}"
            );
        }
        // Every failing CIS check is listed with this node.
        let failed: BTreeSet<&str> = lines
            .iter()
            .filter(|l| l["tool"] == "bench-node" && l["status"] == "FAIL")
            .map(|l| l["id"].as_str().unwrap())
            .collect();
        for id in &failed {
            let check = r["cis_failures"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == *id)
                .unwrap();
            assert!(
                check["node_names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|n| n == node.as_str()),
                "{node} {id}"
            );
        }
        let summary = lines
            .iter()
            .find(|l| l["tool"] == "bench-node" && l["record"] == "summary");
        if let Some(summary) = summary {
            assert_eq!(row["cis"]["FAIL"], summary["summary"]["fail"], "{node}");
            assert_eq!(row["cis"]["PASS"], summary["summary"]["pass"], "{node}");
        }
        // detect-host's OS name.
        if let Some(host) = lines.iter().find(|l| l["tool"] == "detect-host") {
            assert_eq!(row["os"], host["os"]["pretty_name"], "{node}");
        }
    }
    // The kubelet that allows anonymous requests fails 4.2.1 on exactly the
    // nodes configured so (when bench-node ran).
    if produced
        .values()
        .flatten()
        .any(|l| l["tool"] == "bench-node")
    {
        let check = r["cis_failures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "4.2.1")
            .unwrap();
        let mut expected: Vec<&str> = HOSTS.iter().filter(|h| h.2).map(|h| h.0).collect();
        expected.sort_unstable();
        assert_eq!(check["node_names"], serde_json::json!(expected));
    }
}
