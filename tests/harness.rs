//! The test harness: finding the built binaries, scratch directories,
//! running a tool and reading its JSON, and skipping root-only tests loudly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The tool binaries this workspace builds.
pub const TOOLS: &[&str] = &[
    "detect-host",
    "install-agent",
    "scan-images",
    "fim-check",
    "bench-node",
    "cluster-report",
];

/// Skips the calling test, printing why, unless running as root.
#[allow(unused_macros)]
macro_rules! skip_unless_root {
    ($reason:expr) => {
        if !$crate::harness::is_root() {
            eprintln!("SKIPPED (needs root): {}", $reason);
            return;
        }
    };
}

/// True when the tests run as root (effective uid 0, read from
/// `/proc/self/status` so the test crate needs no libc binding).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The workspace root (the directory holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `tests/fixtures/<tool>`.
pub fn fixtures(tool: &str) -> PathBuf {
    workspace_root().join("tests/fixtures").join(tool)
}

/// `../shared/fixtures` beside the checkout (CI puts `shared/` there).
/// Override with `NODEGUARD_SHARED_FIXTURES`.
pub fn shared_fixtures() -> PathBuf {
    if let Some(dir) = std::env::var_os("NODEGUARD_SHARED_FIXTURES") {
        return PathBuf::from(dir);
    }
    workspace_root().join("../shared/fixtures")
}

/// The path of a built tool binary.
///
/// `NODEGUARD_BIN_DIR` points at prebuilt binaries (a release build, a
/// cross build, the binaries inside an image). Otherwise the tool packages
/// are built once per test run with the same profile as the tests; cargo
/// does not build other packages' binaries for an integration test crate.
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("NODEGUARD_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(build_tools);
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} was not built; run `cargo build --workspace`",
        path.display()
    );
    path
}

fn build_tools() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build").arg("--bins").current_dir(workspace_root());
    for tool in TOOLS {
        cmd.args(["-p", tool]);
    }
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build");
    assert!(status.success(), "cargo build of the tools failed");
    // target/<profile>/deps/integration-<hash> → target/<profile>
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// A scratch directory, removed when dropped (kept when
/// `NODEGUARD_KEEP_TEST_DIRS` is set, for debugging).
#[derive(Debug)]
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestDir {
    /// A new empty directory whose name starts with `label`.
    pub fn new(label: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("nodeguard-{label}-"))
            .tempdir()
            .expect("creating a test dir");
        let path = dir.path().to_path_buf();
        if std::env::var_os("NODEGUARD_KEEP_TEST_DIRS").is_some() {
            eprintln!("keeping test dir {}", path.display());
            let _ = dir.keep();
            return Self { dir: None, path };
        }
        Self {
            dir: Some(dir),
            path,
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// Writes a file (creating parents) and returns its path.
    pub fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(rel);
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        std::fs::write(&path, contents).expect("write");
        path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                eprintln!("test failed; keeping {}", dir.path().display());
                let _ = dir.keep();
            }
        }
    }
}

/// What a finished tool run produced.
#[derive(Debug)]
pub struct RunResult {
    /// Exit code (`-1` if killed by a signal).
    pub code: i32,
    /// stdout bytes as text.
    pub stdout: String,
    /// stderr as text.
    pub stderr: String,
}

impl RunResult {
    /// stdout parsed as one JSON document; panics with both streams shown.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// stdout parsed as JSON Lines.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSONL line ({e}): {l}"))
            })
            .collect()
    }

    /// Asserts the exit code, showing both streams on mismatch.
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs a command to completion with stdin closed, capturing its output.
/// The environment is scrubbed of `NODEGUARD_*` and `RUST_LOG` so a
/// developer's shell does not change test results.
pub fn run(cmd: &mut Command) -> RunResult {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NODEGUARD_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("RUST_LOG");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    RunResult {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A `Command` for a tool binary.
pub fn tool(name: &str) -> Command {
    Command::new(bin(name))
}

/// Serializes tests that must not overlap (e.g. ones that load the 2 CPUs
/// heavily or share a system-wide resource), keyed by name.
pub fn exclusive(key: &str) -> std::sync::MutexGuard<'static, ()> {
    static LOCKS: OnceLock<Mutex<HashMap<String, &'static Mutex<()>>>> = OnceLock::new();
    let map = LOCKS.get_or_init(|| Mutex::new(HashMap::new()));
    let lock: &'static Mutex<()> = {
        let mut guard = map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard
            .entry(key.to_string())
            .or_insert_with(|| Box::leak(Box::new(Mutex::new(()))))
    };
    lock.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
