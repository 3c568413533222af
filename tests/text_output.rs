//! `--format text` on every tool: the key lines, no colour when piped or
//! with NO_COLOR, colour when forced (`CLICOLOR_FORCE=1`), errors unchanged,
//! and a report piped into a reader that stops early (`| head`) ends
//! quietly. (bench-node's kube-bench layout: tests/bench_node/text.rs.)

use std::io::Read;
use std::process::{Command, Stdio};

use crate::harness::{self, run, tool, TestDir};

const ESC: char = '\u{1b}';

/// A host root with Debian's os-release and apt.
fn debian_root(dir: &TestDir) -> std::path::PathBuf {
    let os = std::fs::read_to_string(
        harness::fixtures("install-agent").join("os-release/debian-12.os-release"),
    )
    .unwrap();
    dir.write("host/etc/os-release", os);
    dir.write("host/etc/hostname", "text-node\n");
    for program in ["/usr/bin/apt-get", "/usr/bin/dpkg"] {
        let path = dir.write(format!("host{program}"), "#!/bin/sh\nexit 0\n");
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    dir.join("host")
}

fn detect_host(dir: &TestDir) -> Command {
    let mut cmd = tool("detect-host");
    cmd.arg("--host-root").arg(debian_root(dir));
    for var in ["NO_COLOR", "CLICOLOR_FORCE", "CLICOLOR"] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn detect_host_is_one_short_block_without_colour_when_piped() {
    let dir = TestDir::new("text-detect");
    let r = run(detect_host(&dir).args(["--format", "text"]));
    r.assert_code(0);
    let text = &r.stdout;
    assert!(!text.contains(ESC), "{text:?}");
    assert!(text.starts_with("detect-host "), "{text}");
    assert!(text.contains("· node text-node ·"), "{text}");
    assert!(
        text.contains("OS         Debian GNU/Linux 12 (bookworm) (id debian, family debian)\n"),
        "{text}"
    );
    assert!(text.contains("Packages   deb via apt"), "{text}");
    assert!(text.lines().count() < 20, "one short block: {text}");

    // The environment variable works like the flag.
    let r = run(detect_host(&dir).env("NODEGUARD_FORMAT", "text"));
    r.assert_code(0);
    assert!(r.stdout.contains("Packages   deb via apt"), "{}", r.stdout);
}

#[test]
fn host_controlled_text_cannot_drive_the_terminal() {
    // A hostile host sets its os-release name to terminal control
    // sequences (window title, clear screen, carriage return): a person
    // reading the text report sees them escaped, never acted on, also
    // when colour is forced.
    let dir = TestDir::new("text-hostile");
    let root = debian_root(&dir);
    dir.write(
        "host/etc/os-release",
        "ID=debian\nVERSION_ID=12\nPRETTY_NAME=\"Debian\u{1b}]0;owned\u{7}\u{1b}[2J\rX\"\n",
    );
    let mut cmd = tool("detect-host");
    cmd.arg("--host-root")
        .arg(&root)
        .args(["--format", "text"])
        .env("CLICOLOR_FORCE", "1")
        .env_remove("NO_COLOR");
    let r = run(&mut cmd);
    r.assert_code(0);
    let os_line = r
        .stdout
        .lines()
        .find(|l| l.contains("Debian"))
        .unwrap_or_else(|| panic!("no OS line: {:?}", r.stdout));
    assert!(
        os_line.contains("\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{d}X"),
        "{os_line:?}"
    );
    for raw in ["\u{1b}]", "\u{7}", "\u{1b}[2J", "\r"] {
        assert!(
            !r.stdout.contains(raw),
            "raw {raw:?} reached the terminal: {:?}",
            r.stdout
        );
    }
}

#[test]
fn colour_is_forced_by_clicolor_force_and_never_shown_with_no_color() {
    let dir = TestDir::new("text-colour");
    let r = run(detect_host(&dir)
        .args(["--format", "text"])
        .env("CLICOLOR_FORCE", "1"));
    r.assert_code(0);
    assert!(r.stdout.contains(ESC), "CLICOLOR_FORCE=1: {:?}", r.stdout);
    let r = run(detect_host(&dir)
        .args(["--format", "text"])
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1"));
    r.assert_code(0);
    assert!(!r.stdout.contains(ESC), "NO_COLOR wins: {:?}", r.stdout);
    // JSON never has colour.
    let r = run(detect_host(&dir).env("CLICOLOR_FORCE", "1"));
    assert!(!r.stdout.contains(ESC));
    r.json();
}

#[test]
fn a_reader_that_goes_away_ends_the_report_quietly() {
    let dir = TestDir::new("text-pipe");
    // A pipe whose reader is closed before the tool writes: EPIPE for sure.
    let mut child = detect_host(&dir)
        .args(["--format", "text"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "no error line, no panic: {stderr}");

    // And through a real shell pipeline into head.
    let host = debian_root(&dir);
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; {} --host-root {} --format text | head -n 1",
            harness::bin("detect-host").display(),
            host.display()
        ))
        .env_remove("NODEGUARD_FORMAT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(stdout.starts_with("detect-host "), "{stdout}");
    assert_eq!(stdout.lines().count(), 1);
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn errors_are_unchanged_under_text() {
    let dir = TestDir::new("text-error");
    let r = run(tool("detect-host")
        .args(["--format", "text", "--host-root"])
        .arg(dir.join("missing")));
    r.assert_code(2);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(r.stderr.starts_with("detect-host: error: "), "{}", r.stderr);
    let r = run(tool("fim-check")
        .args(["check", "--format", "text", "--host-root"])
        .arg(dir.path())
        .arg("--baseline")
        .arg(dir.join("none.bin")));
    assert!(r.code >= 2, "{r:?}");
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

#[test]
fn scan_images_is_a_table_worst_first() {
    let node = crate::scan_images::node::Node::containerd();
    let r = run(node.cmd().args(["--format", "text"]));
    r.assert_code(0);
    let text = &r.stdout;
    assert!(!text.contains(ESC), "{text:?}");
    let header = text.lines().find(|l| l.contains("IMAGE")).expect(text);
    for col in [
        "PODS", "CRITICAL", "HIGH", "MEDIUM", "LOW", "FIXABLE", "STATUS",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("nginx") || l.contains("redis"))
        .collect();
    assert!(rows[0].contains("nginx:1.27"), "worst first: {text}");
    assert!(rows[0].contains("shop/web-7d4b9c-aaaaa"), "{text}");
    let cells: Vec<&str> = rows[0].split(['│', '┆']).map(str::trim).collect();
    // IMAGE, PODS, CRITICAL, HIGH, MEDIUM, LOW, FIXABLE, STATUS
    assert_eq!(cells[3], "1", "CRITICAL as in the JSON: {text}");
    assert_ne!(cells[7], "-", "fixable read from the full report: {text}");
    assert_eq!(cells[8], "scanned", "{text}");
    assert!(text.contains("Total: "), "{text}");
}

#[test]
fn fim_check_groups_changes_by_kind_with_attributes() {
    let dir = TestDir::new("text-fim");
    dir.write("root/etc/kubernetes/a.conf", "a\n");
    dir.write("root/etc/kubernetes/b.conf", "b\n");
    let fim = |cmd: &str| {
        let mut c = tool("fim-check");
        c.args([cmd, "--host-root"])
            .arg(dir.join("root"))
            .arg("--baseline")
            .arg(dir.join("baseline"))
            .args(["--format", "text", "--node-name", "n1"]);
        c
    };
    let r = run(&mut fim("init"));
    r.assert_code(0);
    assert!(r.stdout.contains("Summary: no changes"), "{}", r.stdout);
    dir.write("root/etc/kubernetes/a.conf", "changed\n");
    std::fs::remove_file(dir.join("root/etc/kubernetes/b.conf")).unwrap();
    dir.write("root/etc/kubernetes/c.conf", "new\n");
    let r = run(&mut fim("check"));
    r.assert_code(0);
    assert!(
        !r.stderr.contains("entries ·"),
        "no progress line when stderr is not a terminal: {}",
        r.stderr
    );
    let text = &r.stdout;
    assert!(!text.contains(ESC), "{text:?}");
    assert!(
        text.contains("Summary: 3 changed paths · 1 added, 1 removed, 1 changed"),
        "{text}"
    );
    assert!(
        text.contains("\nAdded (1):\n  + /etc/kubernetes/c.conf file\n"),
        "{text}"
    );
    assert!(
        text.contains("\nRemoved (1):\n  - /etc/kubernetes/b.conf file\n"),
        "{text}"
    );
    assert!(
        text.contains("\nChanged (1):\n  ~ /etc/kubernetes/a.conf file\n"),
        "{text}"
    );
    assert!(text.contains("      size: 2 → 8\n"), "{text}");
    assert!(text.contains("      sha256: "), "{text}");
}

#[test]
fn install_agent_lists_its_steps() {
    let dir = TestDir::new("text-agent");
    let host = debian_root(&dir);
    // A package file that exists with its real sum, so the plan has steps
    // (an all-zero sum or a missing file is `not_configured`, which has none).
    let package = dir.write("packages/tinyagent.deb", "not really a deb, only planned\n");
    let sum = crate::install_agent::agent_pkg::sha256(&package);
    let package_line = format!("path = \"{}\"", package.display());
    let profile =
        std::fs::read_to_string(harness::fixtures("install-agent").join("tinyagent.toml.in"))
            .unwrap()
            .replace(
                "@ARCH@",
                if cfg!(target_arch = "aarch64") {
                    "arm64"
                } else {
                    "amd64"
                },
            )
            .replace("@VERSION@", "1.0.0")
            .replace("@SOURCE_DEB@", &package_line)
            .replace("@SOURCE_RPM@", &package_line)
            .replace("@SHA256_DEB@", &sum)
            .replace("@SHA256_RPM@", &sum);
    let profile = dir.write("tinyagent.toml", profile);
    dir.write("creds/token", "text-canary-token\n");
    let r = run(tool("install-agent")
        .args(["plan", "--format", "text", "--profile"])
        .arg(&profile)
        .arg("--host-root")
        .arg(&host)
        .arg("--credentials-dir")
        .arg(dir.join("creds")));
    r.assert_code(0);
    let text = &r.stdout;
    assert!(!text.contains(ESC), "{text:?}");
    assert!(text.contains("plan tinyagent · "), "{text}");
    assert!(text.contains("Package: tinyagent 1.0.0 (deb"), "{text}");
    let header = text.lines().find(|l| l.contains("STEP")).expect(text);
    assert!(
        header.contains("STATUS") && header.contains("DETAIL"),
        "{header}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("install") && l.contains("planned")),
        "{text}"
    );
    assert!(!text.contains("text-canary-token"), "{text}");
}

#[test]
fn cluster_report_shows_the_worst_nodes_images_and_checks() {
    let logs = harness::fixtures("cluster-report").join("logs");
    let r = run(tool("cluster-report").arg(&logs).args([
        "--format",
        "text",
        "--now",
        "2026-11-24T12:00:00Z",
    ]));
    r.assert_code(0);
    let text = &r.stdout;
    assert!(!text.contains(ESC), "{text:?}");
    assert!(text.contains("3 nodes reporting"), "{text}");
    for section in ["Worst nodes", "Worst images", "Most failed CIS checks"] {
        assert!(
            text.contains(&format!("\n{section}\n")),
            "{section}: {text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.contains("docker.io/library/nginx:1.25.3")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.contains("4.2.1")), "{text}");
    let r = run(tool("cluster-report")
        .arg(&logs)
        .env("NODEGUARD_FORMAT", "text"));
    assert!(r.stdout.contains("Worst nodes"), "{}", r.stdout);
}

#[test]
fn version_names_the_commit() {
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(harness::workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    for name in [
        "detect-host",
        "install-agent",
        "scan-images",
        "fim-check",
        "bench-node",
        "cluster-report",
    ] {
        let r = run(tool(name).arg("--version"));
        r.assert_code(0);
        let line = r.stdout.trim_end();
        let rest = line
            .strip_prefix(&format!("{name} "))
            .unwrap_or_else(|| panic!("{line}"));
        let (version, commit) = rest.split_once(" (commit ").expect(line);
        assert!(
            version.split('.').all(|n| n.parse::<u32>().is_ok()),
            "{line}"
        );
        let commit = commit.strip_suffix(')').expect(line);
        assert!(
            commit == "unknown" || commit.chars().all(|c| c.is_ascii_alphanumeric()),
            "{line}"
        );
        // Built from this checkout (a prebuilt NODEGUARD_BIN_DIR may differ).
        if let (Some(head), None) = (&head, std::env::var_os("NODEGUARD_BIN_DIR")) {
            assert!(
                head.starts_with(commit) || commit.starts_with(head.as_str()),
                "{line} vs HEAD {head}"
            );
        }
    }
}
