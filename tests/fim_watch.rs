//! Black-box tests for `fim-check watch`: the built binary on a temporary
//! host root with real inotify. Every wait reads the output with a
//! deadline; nothing sleeps to pass.

use crate::harness::{self, TestDir};
use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const KEY: &str = "watch-key-0123456789abcdef\n";
const POLICY: &str = "[[rule]]\npath = \"/etc\"\nattributes = \"content\"\n";

struct Tree {
    dir: TestDir,
}

impl Tree {
    fn new(label: &str) -> Tree {
        let dir = TestDir::new(label);
        dir.write("root/etc/passwd", "root:x:0:0\n");
        dir.write("root/etc/ssh/sshd_config", "PermitRootLogin no\n");
        dir.write("key", KEY);
        dir.write("policy.toml", POLICY);
        Tree { dir }
    }

    fn cmd(&self, sub: &str) -> Command {
        let mut c = harness::tool("fim-check");
        c.arg(sub)
            .arg("--host-root")
            .arg(self.dir.join("root"))
            .arg("--baseline")
            .arg(self.dir.join("baseline"))
            .arg("--config")
            .arg(self.dir.join("policy.toml"))
            .arg("--key-file")
            .arg(self.dir.join("key"))
            .args(["--node-name", "node-w", "--nice", "0"]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("NODEGUARD_") {
                c.env_remove(&key);
            }
        }
        c
    }

    fn init(&self) {
        harness::run(&mut self.cmd("init")).assert_code(0);
    }

    fn root(&self, rel: &str) -> PathBuf {
        self.dir.join("root").join(rel)
    }
}

/// A running watcher and its stdout, line by line.
struct Watch {
    child: Child,
    lines: Receiver<Value>,
}

impl Watch {
    fn start(t: &Tree, extra: &[&str]) -> Watch {
        let mut child = t
            .cmd("watch")
            .args(["--backend", "inotify"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn fim-check watch");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).expect("a JSON line");
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines }
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(e) => panic!("no {what} record within 20 s ({e})"),
            }
        }
    }

    /// Waits until the process blocks SIGTERM and SIGINT (it receives them
    /// through a signalfd from then on; before, they would kill it).
    fn wait_signals_blocked(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let want = (1u64 << (nix::sys::signal::Signal::SIGTERM as i32 - 1))
            | (1u64 << (nix::sys::signal::Signal::SIGINT as i32 - 1));
        loop {
            let status =
                fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
            let blocked = status
                .lines()
                .find_map(|l| l.strip_prefix("SigBlk:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
                .unwrap_or(0);
            if blocked & want == want {
                return;
            }
            assert!(Instant::now() < deadline, "SIGTERM/SIGINT never blocked");
            std::thread::yield_now();
        }
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, sig).expect("kill");
    }

    /// Waits for the exit; returns the code and how long it took.
    fn exit_code(&mut self, within: Duration) -> (i32, Duration) {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return (st.code().unwrap_or(-1), t0.elapsed());
            }
            if t0.elapsed() > within {
                let _ = self.child.kill();
                panic!("fim-check watch still running after {within:?}");
            }
            std::thread::yield_now();
        }
    }
}

#[test]
fn watch_reports_a_change_as_one_line_and_exits_0_on_sigterm() {
    let t = Tree::new("watch-sigterm");
    t.init();
    let metrics = t.dir.join("metrics.prom");
    let mut w = Watch::start(&t, &["--metrics-file", metrics.to_str().expect("utf-8")]);
    let ready = w.wait_for("watching", |v| v["record"] == "watching");
    assert_eq!(ready["backend"], "inotify");
    assert!(ready["watches"].as_u64().expect("watches") >= 2, "{ready}");
    fs::write(t.root("etc/passwd"), "root:x:0:0\nmallory:x:0:0\n").expect("write");
    let c = w.wait_for("change", |v| v["record"] == "change");
    assert_eq!(c["path"], "/etc/passwd");
    assert_eq!(c["kind"], "changed");
    assert!(c["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .any(|a| a["name"] == "sha256"));
    w.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, took) = w.exit_code(Duration::from_secs(5));
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(1), "exit took {took:?}");
    let m = fs::read_to_string(&metrics).expect("metrics file");
    assert!(
        m.contains("nodeguard_fim_check_changes{kind=\"changed\"} 1"),
        "{m}"
    );
}

#[test]
fn watch_exits_0_on_sigint_during_the_first_full_check() {
    let t = Tree::new("watch-sigint");
    for i in 0..2000 {
        t.dir.write(format!("root/etc/many/f{i}"), "x");
    }
    t.init();
    let mut w = Watch::start(&t, &[]);
    w.wait_signals_blocked();
    w.signal(nix::sys::signal::Signal::SIGINT);
    let (code, took) = w.exit_code(Duration::from_secs(5));
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(1), "exit took {took:?}");
}

#[test]
fn watch_refuses_a_tampered_baseline_with_3_and_a_foreign_one_with_4() {
    let t = Tree::new("watch-tamper");
    t.init();
    let bl = t.dir.join("baseline");
    let mut bytes = fs::read(&bl).expect("baseline");
    let n = bytes.len();
    bytes[n - 40] ^= 1;
    fs::write(&bl, &bytes).expect("write");
    let r = harness::run(t.cmd("watch").args(["--backend", "inotify"]));
    r.assert_code(3);
    assert!(
        r.stdout.is_empty(),
        "nothing is reported before the baseline verifies: {}",
        r.stdout
    );

    fs::remove_file(&bl).expect("rm");
    t.init();
    // Another policy than the baseline was made with.
    t.dir.write(
        "policy.toml",
        "[[rule]]\npath = \"/etc/ssh\"\nattributes = \"content\"\n",
    );
    let r = harness::run(t.cmd("watch").args(["--backend", "inotify"]));
    r.assert_code(4);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

/// `scripts/fim.sh` with `NODEGUARD_FIM_MODE=watch`: init on the first
/// start, then the watcher (its lines in the entrypoint's stdout); a
/// watcher that exits (here: the baseline tampered, exit 3) is a failed
/// run, restarted after the backoff; SIGTERM stops everything.
#[test]
fn fim_sh_watch_mode_inits_watches_and_restarts_a_failed_watcher() {
    let t = Tree::new("watch-entrypoint");
    for d in ["state", "results"] {
        fs::create_dir(t.dir.join(d)).expect("mkdir");
    }
    let bin_dir = harness::bin("fim-check")
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("sh");
    c.arg(harness::workspace_root().join("scripts/fim.sh"))
        .arg("run");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NODEGUARD_") {
            c.env_remove(&key);
        }
    }
    c.env("PATH", path)
        .env("NODEGUARD_FIM_MODE", "watch")
        .env("NODEGUARD_WATCH_BACKEND", "inotify")
        .env("NODEGUARD_HOST_ROOT", t.dir.join("root"))
        .env("NODEGUARD_CONFIG", t.dir.join("policy.toml"))
        .env("NODEGUARD_KEY_FILE", t.dir.join("key"))
        .env("NODEGUARD_BASELINE", t.dir.join("bl/baseline"))
        .env("NODEGUARD_NODE_NAME", "node-w")
        .env("NODEGUARD_NICE", "0")
        .env("NODEGUARD_LOOP_STATE_DIR", t.dir.join("state"))
        .env("NODEGUARD_LOOP_RESULTS_DIR", t.dir.join("results"))
        .env(
            "NODEGUARD_LOOP_TERMINATION_LOG",
            t.dir.join("termination-log"),
        )
        .env("NODEGUARD_LOOP_NICE", "0")
        .env("NODEGUARD_LOOP_IONICE_CLASS", "")
        .env("NODEGUARD_LOOP_JITTER", "0")
        .env("NODEGUARD_LOOP_INTERVAL", "3600")
        .env("NODEGUARD_LOOP_BACKOFF_INITIAL", "1")
        .env("NODEGUARD_LOOP_BACKOFF_MAX", "2");
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn fim.sh");
    let out = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    let mut w = Watch { child, lines };
    let init = w.wait_for("init run", |v| v["record"] == "entrypoint_run");
    assert_eq!(
        (init["action"].as_str(), init["status"].as_str()),
        (Some("init"), Some("ok")),
        "{init}"
    );
    w.wait_for("watching", |v| v["record"] == "watching");
    fs::write(t.root("etc/passwd"), "changed\n").expect("write");
    w.wait_for("change", |v| {
        v["record"] == "change" && v["path"] == "/etc/passwd"
    });
    // Tamper with the baseline: the watcher notices the file changed,
    // refuses it (exit 3); the entrypoint logs a failed run and restarts
    // it, which fails the same way, after the backoff.
    let bl = t.dir.join("bl/baseline");
    let mut bytes = fs::read(&bl).expect("baseline");
    let n = bytes.len();
    bytes[n - 40] ^= 1;
    fs::write(&bl, &bytes).expect("write");
    for _ in 0..2 {
        let run = w.wait_for("failed watch run", |v| v["record"] == "entrypoint_run");
        assert_eq!(
            (run["action"].as_str(), run["exit_code"].as_i64()),
            (Some("watch"), Some(3)),
            "{run}"
        );
        assert_eq!(run["status"], "error");
    }
    w.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, took) = w.exit_code(Duration::from_secs(5));
    assert_eq!(code, 143);
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
}
