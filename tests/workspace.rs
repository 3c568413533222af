//! Workspace-wide contracts every tool must keep: the `--help` documents the
//! exit codes, every flag has a `NODEGUARD_*` variable, exit 2 comes with
//! nothing on stdout, and errors are one line on stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::harness::{self, run, tool, RunResult, TestDir, TOOLS};

#[test]
fn every_tool_documents_exit_codes_and_env_vars_in_help() {
    for name in TOOLS {
        let out = run(tool(name).arg("--help"));
        if out.stdout.is_empty() {
            // A tool not delivered yet says so and exits 2; nothing to check.
            assert_eq!(out.code, 2, "{name} --help: {}", out.stderr);
            assert!(
                out.stderr.contains("not implemented yet"),
                "{name}: {}",
                out.stderr
            );
            continue;
        }
        out.assert_code(0);
        assert!(
            out.stdout.contains("Exit codes"),
            "{name} --help lacks exit codes:\n{}",
            out.stdout
        );
        // cluster-report reads no node (no --host-root): its variables
        // start from its input, the Prometheus URL.
        let variable = if *name == "cluster-report" {
            "NODEGUARD_PROMETHEUS"
        } else {
            "NODEGUARD_HOST_ROOT"
        };
        assert!(
            out.stdout.contains(variable),
            "{name} --help lacks env vars:\n{}",
            out.stdout
        );
    }
}

/// Runs a tool with a hard time limit: a hang fails the test (the child is
/// killed) instead of stalling the test run.
fn run_within(cmd: &mut Command, limit: Duration) -> RunResult {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NODEGUARD_") {
            cmd.env_remove(&key);
        }
    }
    let child = cmd
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(limit) else {
        let _ = kill(pid, Signal::SIGKILL);
        panic!("{cmd:?} did not finish within {limit:?} (hang)");
    };
    let out = out.unwrap();
    RunResult {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Each tool that writes `--metrics-file`, as a command that succeeds (a
/// report on stdout) on a small fixture; the closure adds the flags.
struct Scenario {
    tool: &'static str,
    _dirs: Vec<TestDir>,
    _node: Option<crate::scan_images::node::Node>,
    cmd: Box<dyn Fn() -> Command>,
}

fn scenarios() -> Vec<Scenario> {
    let mut all = Vec::new();

    let rootfs = harness::fixtures("detect-host").join("amazon-linux-2023/rootfs");
    all.push(Scenario {
        tool: "detect-host",
        _dirs: Vec::new(),
        _node: None,
        cmd: Box::new(move || {
            let mut c = tool("detect-host");
            c.arg("--host-root").arg(&rootfs);
            c
        }),
    });

    let bench = TestDir::new("ws-bench");
    std::fs::create_dir_all(bench.join("host")).unwrap();
    let bench_host = bench.join("host");
    all.push(Scenario {
        tool: "bench-node",
        _dirs: vec![bench],
        _node: None,
        cmd: Box::new(move || {
            let mut c = tool("bench-node");
            c.arg("--host-root")
                .arg(&bench_host)
                .args(["--targets", "node"]);
            c
        }),
    });

    let fim = TestDir::new("ws-fim");
    fim.write("root/etc/a", "1");
    fim.write("key", "test-key-0123456789abcdef\n");
    fim.write(
        "policy.toml",
        "[[rule]]\npath = \"/\"\nattributes = \"content\"\n",
    );
    let fim_cmd = {
        let d = fim.path().to_path_buf();
        move |sub: &str| {
            let mut c = tool("fim-check");
            c.arg(sub)
                .arg("--host-root")
                .arg(d.join("root"))
                .arg("--baseline")
                .arg(d.join("baseline"))
                .arg("--key-file")
                .arg(d.join("key"))
                .arg("--config")
                .arg(d.join("policy.toml"))
                .args(["--node-name", "node-a", "--nice", "0"]);
            c
        }
    };
    run(&mut fim_cmd("init")).assert_code(0);
    all.push(Scenario {
        tool: "fim-check",
        _dirs: vec![fim],
        _node: None,
        cmd: Box::new(move || fim_cmd("check")),
    });

    let agent = TestDir::new("ws-agent");
    let os = std::fs::read_to_string(
        harness::fixtures("install-agent").join("os-release/bottlerocket-1.20.os-release"),
    )
    .unwrap();
    agent.write("host/etc/os-release", os);
    let agent_host = agent.join("host");
    let profile = harness::workspace_root().join("install-agent/profiles/qualys-cloud-agent.toml");
    all.push(Scenario {
        tool: "install-agent",
        _dirs: vec![agent],
        _node: None,
        cmd: Box::new(move || {
            let mut c = tool("install-agent");
            c.args(["plan", "--profile"])
                .arg(&profile)
                .arg("--host-root")
                .arg(&agent_host);
            c
        }),
    });

    let node = crate::scan_images::node::Node::containerd();
    let scan_cmd = node.cmd();
    let (program, args, envs): (PathBuf, Vec<_>, Vec<_>) = (
        PathBuf::from(scan_cmd.get_program()),
        scan_cmd.get_args().map(ToOwned::to_owned).collect(),
        scan_cmd
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
            .collect(),
    );
    all.push(Scenario {
        tool: "scan-images",
        _dirs: Vec::new(),
        _node: Some(node),
        cmd: Box::new(move || {
            let mut c = Command::new(&program);
            c.args(&args).envs(envs.iter().map(|(k, v)| (k, v)));
            c
        }),
    });
    all
}

/// Exit 2 means no report: a `--metrics-file` that cannot be written fails
/// the run before anything reaches stdout (detect-host, bench-node,
/// fim-check and install-agent used to print the report first).
#[test]
fn an_unwritable_metrics_file_is_exit_2_with_nothing_on_stdout() {
    for s in scenarios() {
        let ok = run_within(&mut (s.cmd)(), LIMIT);
        assert!(
            ok.code != 2 && !ok.stdout.is_empty(),
            "{}: the scenario itself must report\n{}",
            s.tool,
            ok.stderr
        );
        let missing = Path::new("/nonexistent/nodeguard/metrics.prom");
        let r = run_within((s.cmd)().arg("--metrics-file").arg(missing), LIMIT);
        r.assert_code(2);
        assert!(
            r.stdout.is_empty(),
            "{}: report printed:\n{}",
            s.tool,
            r.stdout
        );
        assert_eq!(r.stderr.lines().count(), 1, "{}: {}", s.tool, r.stderr);
        assert!(
            r.stderr.starts_with(&format!("{}: error: ", s.tool))
                && r.stderr.contains("/nonexistent/nodeguard/metrics.prom"),
            "{}: {}",
            s.tool,
            r.stderr
        );
    }
}

/// `--metrics-file` naming a FIFO, `/dev/zero` or `/dev/stdout` is refused
/// in one line naming it, without reading it (no hang, no unbounded read,
/// no reading our own report).
#[test]
fn a_special_metrics_file_is_refused_without_hanging() {
    let dir = TestDir::new("ws-fifo");
    let fifo = dir.join("metrics.prom");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for s in scenarios() {
        for target in [
            fifo.as_path(),
            Path::new("/dev/zero"),
            Path::new("/dev/stdout"),
        ] {
            let r = run_within((s.cmd)().arg("--metrics-file").arg(target), LIMIT);
            r.assert_code(2);
            assert!(
                r.stdout.is_empty(),
                "{}: report printed:\n{}",
                s.tool,
                r.stdout
            );
            assert_eq!(r.stderr.lines().count(), 1, "{}: {}", s.tool, r.stderr);
            assert!(
                r.stderr.contains(&target.display().to_string())
                    && r.stderr.contains("not a regular file"),
                "{}: {}",
                s.tool,
                r.stderr
            );
        }
    }
}

/// Long enough for a debug build on a loaded 2-core machine; a hang is far
/// longer.
const LIMIT: Duration = Duration::from_secs(60);

/// One line per error: a TOML syntax or schema error is `tool: error: …
/// path:line:column: message` on a single stderr line, not the parser's
/// multi-line snippet (log shippers split those).
#[test]
fn toml_errors_are_one_line_with_path_line_and_column() {
    let dir = TestDir::new("ws-toml");
    std::fs::create_dir_all(dir.join("root")).unwrap();
    let bad_syntax = dir.write("syntax.toml", "# policy\n[[rule]]\npath = \n");
    let bad_key = dir.write(
        "key.toml",
        "[[rule]]\npath = \"/\"\nattributes = \"content\"\n  frobnicate = 1\n",
    );
    let cases: Vec<(&str, Command, String)> = vec![
        (
            "fim-check",
            fim_with_config(&dir, &bad_syntax),
            format!("{}:3:", bad_syntax.display()),
        ),
        (
            "fim-check",
            fim_with_config(&dir, &bad_key),
            format!("{}:4:3:", bad_key.display()),
        ),
        (
            "install-agent",
            agent_with_profile(&dir, &bad_syntax),
            format!("{}:3:", bad_syntax.display()),
        ),
        (
            "install-agent",
            agent_with_profile(
                &dir,
                &dir.write("p.toml", "name = \"x\"\n\nservise = \"x\"\n"),
            ),
            format!("{}:3:1:", dir.join("p.toml").display()),
        ),
    ];
    for (name, mut cmd, position) in cases {
        let r = run_within(&mut cmd, LIMIT);
        r.assert_code(2);
        assert!(r.stdout.is_empty(), "{name}: {}", r.stdout);
        assert_eq!(r.stderr.lines().count(), 1, "{name}: {}", r.stderr);
        assert!(
            r.stderr.starts_with(&format!("{name}: error: ")) && r.stderr.contains(&position),
            "{name}: wanted {position}: {}",
            r.stderr
        );
    }
}

fn fim_with_config(dir: &TestDir, config: &Path) -> Command {
    let mut c = tool("fim-check");
    c.arg("init")
        .arg("--host-root")
        .arg(dir.join("root"))
        .arg("--baseline")
        .arg(dir.join("baseline"))
        .arg("--config")
        .arg(config)
        .args(["--node-name", "n", "--nice", "0"]);
    c
}

fn agent_with_profile(dir: &TestDir, profile: &Path) -> Command {
    let mut c = tool("install-agent");
    c.args(["plan", "--profile"])
        .arg(profile)
        .arg("--host-root")
        .arg(dir.join("root"));
    c
}

/// One shape for every tool: `main.rs` is the same few lines (parse, log,
/// run with stdout, exit code) with only the names changed, so the exit-2
/// and one-line-error contracts live in nodeguard-common alone.
#[test]
fn every_main_rs_is_the_shared_entry() {
    let template = |tool: &str, cli: &str| {
        let krate = tool.replace('-', "_");
        format!("nodeguard_common::exit::main::<{krate}::{cli}, _>({krate}::TOOL, {krate}::run)")
    };
    for name in TOOLS {
        let path = harness::workspace_root().join(name).join("src/main.rs");
        let text = std::fs::read_to_string(&path).unwrap();
        // Compared without whitespace: rustfmt wraps the longer names.
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<String>()
            .split_whitespace()
            .collect::<String>()
            .replace(",)", ")");
        let cli = if *name == "cluster-report" {
            "Cli"
        } else {
            "cli::Cli"
        };
        let want = format!(
            "fnmain()->std::process::ExitCode{{{}}}",
            template(name, cli).replace(' ', "")
        );
        assert_eq!(code, want, "{}", path.display());
    }
}

/// cluster-report writes no metrics; its report goes to stdout or to
/// `--output`. An `--output` it cannot write is exit 2 with nothing on
/// stdout, in one line naming the file.
#[test]
fn cluster_report_with_an_unwritable_output_is_exit_2_with_nothing_on_stdout() {
    let dir = TestDir::new("ws-cluster");
    let rootfs = harness::fixtures("detect-host").join("amazon-linux-2023/rootfs");
    let lines = run(tool("detect-host").arg("--host-root").arg(&rootfs).args([
        "--format",
        "jsonl",
        "--node-name",
        "node-a",
    ]));
    lines.assert_code(0);
    let input = dir.write("node-a.jsonl", &lines.stdout);
    let ok = run_within(tool("cluster-report").arg(&input), LIMIT);
    ok.assert_code(0);
    assert!(!ok.stdout.is_empty());
    let r = run_within(
        tool("cluster-report")
            .arg(&input)
            .args(["--output", "/nonexistent/nodeguard/cluster.json"]),
        LIMIT,
    );
    r.assert_code(2);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("cluster-report: error: ")
            && r.stderr.contains("/nonexistent/nodeguard/cluster.json"),
        "{}",
        r.stderr
    );
}
