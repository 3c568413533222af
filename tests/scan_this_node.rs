//! `scripts/scan-this-node`: a one-screen summary with the full JSON
//! reports in its state directory; `--json` keeps the stream of reports.

use std::path::Path;
use std::process::Command;

use crate::harness::{self, TestDir};

fn script(dir: &TestDir, root: &Path) -> Command {
    let bin_dir = harness::bin("detect-host").parent().unwrap().to_path_buf();
    let mut cmd = Command::new("sh");
    cmd.arg(harness::workspace_root().join("scripts/scan-this-node"))
        .env("NODEGUARD_BIN_DIR", bin_dir)
        .env("NODEGUARD_HOST_ROOT", root)
        .env("NODEGUARD_STATE_DIR", dir.join("state"))
        // No crictl or trivy: scan-images is skipped.
        .env("PATH", "/usr/bin:/bin")
        // The caller's format must not leak into the reports.
        .env("NODEGUARD_FORMAT", "text")
        .env_remove("NODEGUARD_PRETTY");
    cmd
}

fn host(dir: &TestDir) -> std::path::PathBuf {
    dir.write(
        "root/etc/os-release",
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    );
    dir.write("root/etc/hostname", "summary-node\n");
    dir.write("root/etc/kubernetes/kubelet.conf", "a\n");
    dir.join("root")
}

fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn one_screen_summary_and_full_reports_in_the_state_dir() {
    let dir = TestDir::new("scan-this-node");
    let root = host(&dir);
    let (code, stdout, stderr) = output(&mut script(&dir, &root));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.lines().count() <= 24, "one screen: {stdout}");
    assert!(
        stdout.starts_with("nodeguard on summary-node, host root "),
        "{stdout}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let row = |tool: &str| {
        *lines
            .iter()
            .find(|l| l.starts_with(&format!("{tool} ")))
            .unwrap_or_else(|| panic!("no {tool} line: {stdout}"))
    };
    assert!(
        row("detect-host").contains("ok        Debian GNU/Linux 12 (bookworm)"),
        "{stdout}"
    );
    assert!(
        row("fim-check").contains("0 added, 0 removed, 0 changed of ")
            && row("fim-check").contains("(baseline created now)"),
        "{stdout}"
    );
    assert!(row("scan-images").contains("skipped"), "{stdout}");
    let reports = dir.join("state/reports");
    assert!(stdout.contains(&reports.display().to_string()), "{stdout}");
    for tool in ["detect-host", "bench-node", "fim-check"] {
        let text = std::fs::read_to_string(reports.join(format!("{tool}.json"))).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{tool}.json is not one JSON document ({e}): {text}"));
        assert_eq!(doc["tool"], tool);
    }
    // The counts are the report's.
    let bench: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("bench-node.json")).unwrap()).unwrap();
    let s = &bench["summary"];
    assert!(
        row("bench-node").contains(&format!(
            "{} checks: {} FAIL, {} WARN, {} PASS, {} INFO",
            s["total"], s["fail"], s["warn"], s["pass"], s["info"]
        )),
        "{stdout}"
    );

    // A change shows in the next summary.
    dir.write("root/etc/kubernetes/kubelet.conf", "changed\n");
    let (code, stdout, _) = output(&mut script(&dir, &root));
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("0 added, 0 removed, 1 changed of "),
        "{stdout}"
    );
    assert!(!stdout.contains("baseline created now"), "{stdout}");
}

#[test]
fn a_failing_tool_is_an_error_line_and_exit_2() {
    let dir = TestDir::new("scan-this-node-err");
    let (code, stdout, _) = output(&mut script(&dir, &dir.join("missing")));
    assert_eq!(code, 2, "{stdout}");
    let detect = stdout
        .lines()
        .find(|l| l.starts_with("detect-host "))
        .unwrap();
    assert!(
        detect.contains("error") && detect.contains("missing"),
        "{stdout}"
    );
    assert!(!dir.join("state/reports/detect-host.json").exists());
}

#[test]
fn json_keeps_the_stream_of_reports() {
    let dir = TestDir::new("scan-this-node-json");
    let root = host(&dir);
    let (code, stdout, stderr) = output(script(&dir, &root).arg("--json"));
    assert_eq!(code, 0, "{stderr}");
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("not a stream of JSON documents ({e}): {stdout}"));
    let tools: Vec<&str> = docs.iter().map(|d| d["tool"].as_str().unwrap()).collect();
    assert_eq!(
        tools,
        ["detect-host", "bench-node", "fim-check"],
        "{stdout}"
    );
    assert!(stdout.contains("\n  \"tool\""), "pretty: {stdout}");
    assert!(stderr.contains("scan-images skipped"), "{stderr}");
}
