//! Black-box tests for `fim-check`: real files, real syscalls, the built
//! binary. Root-only cases (device nodes, tmpfs for a full disk, running as
//! an unprivileged user) skip loudly elsewhere.

mod baseline;
mod changes;
mod hostile;
mod output;

use crate::harness::{self, RunResult, TestDir};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const KEY: &str = "test-key-0123456789abcdef\n";

/// A host root, a key, a config and a baseline path, side by side.
struct Fim {
    dir: TestDir,
    config: Option<PathBuf>,
}

impl Fim {
    fn new(label: &str) -> Fim {
        let dir = TestDir::new(label);
        fs::create_dir(dir.join("root")).expect("mkdir root");
        dir.write("key", KEY);
        Fim { dir, config: None }
    }

    /// A policy selecting everything under the test root.
    fn with_config(label: &str, toml: &str) -> Fim {
        let mut f = Fim::new(label);
        f.config = Some(f.dir.write("policy.toml", toml));
        f
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    fn base(&self) -> PathBuf {
        self.dir.join("baseline")
    }
    fn put(&self, rel: &str, body: &str) -> PathBuf {
        self.dir.write(Path::new("root").join(rel), body)
    }

    fn cmd(&self, sub: &str) -> Command {
        let mut c = harness::tool("fim-check");
        c.arg(sub)
            .arg("--host-root")
            .arg(self.root())
            .arg("--baseline")
            .arg(self.base());
        c.arg("--node-name").arg("node-a");
        if sub == "show" {
            return c;
        }
        c.args(["--nice", "0"]);
        if let Some(cfg) = &self.config {
            c.arg("--config").arg(cfg);
        }
        c
    }

    /// `fim-check <sub>` with exactly these files (no defaults added), run
    /// under `timeout(1)`: a hang shows as exit 124, never a stuck test.
    fn run_timed(
        &self,
        sub: &str,
        baseline: &Path,
        config: Option<&Path>,
        key: Option<&Path>,
        extra: &[&str],
    ) -> RunResult {
        let mut c = Command::new("timeout");
        c.args(["--kill-after=2", "20"])
            .arg(harness::bin("fim-check"))
            .arg(sub)
            .arg("--host-root")
            .arg(self.root())
            .arg("--baseline")
            .arg(baseline)
            .args(["--node-name", "node-a"]);
        if sub != "show" {
            c.args(["--nice", "0"]);
        }
        if let Some(cfg) = config {
            c.arg("--config").arg(cfg);
        }
        if let Some(k) = key {
            c.arg("--key-file").arg(k);
        }
        harness::run(c.args(extra))
    }

    fn run(&self, sub: &str, extra: &[&str]) -> RunResult {
        let mut c = self.cmd(sub);
        c.arg("--key-file").arg(self.dir.join("key")).args(extra);
        harness::run(&mut c)
    }
}

const ALL: &str = r#"
[[rule]]
path = "/"
attributes = "content"
"#;

fn changes(v: &Value) -> Vec<(String, String)> {
    v["changes"]
        .as_array()
        .expect("changes[]")
        .iter()
        .map(|c| {
            (
                c["path"].as_str().expect("path").to_string(),
                c["kind"].as_str().expect("kind").to_string(),
            )
        })
        .collect()
}

fn attr_names(v: &Value, path: &str) -> Vec<String> {
    let c = v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["path"] == path)
        .expect("change for path");
    c["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|a| a["name"].as_str().expect("name").to_string())
        .collect()
}
