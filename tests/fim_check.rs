//! Black-box tests for `fim-check`: real files, real syscalls, the built
//! binary. Root-only cases (device nodes, tmpfs for a full disk, running as
//! an unprivileged user) skip loudly elsewhere.

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

#[test]
fn builtin_policy_clean_check_then_every_kind_of_change() {
    let f = Fim::new("fim-kinds");
    f.put("etc/passwd", "root:x:0:0::/root:/bin/sh\n");
    f.put("etc/ssh/sshd_config", "PermitRootLogin no\n");
    f.put("etc/resolv.conf", "nameserver 10.0.0.1\n");
    f.put("usr/bin/kubelet", "ELF kubelet");
    f.put("usr/share/doc/x", "not selected");
    f.put("var/log/syslog", "excluded");
    f.put(
        "var/lib/kubelet/config.yaml",
        "kind: KubeletConfiguration\n",
    );
    f.put("var/lib/kubelet/pods/p1/token", "excluded churn");
    symlink("usr/bin", f.root().join("bin")).expect("symlink");
    let init = f.run("init", &[]);
    init.assert_code(0);
    let v = init.json();
    assert_eq!(v["tool"], "fim-check");
    assert_eq!(v["baseline"]["authenticated"], true);
    let clean = f.run("check", &["--fail-on", "changes"]);
    clean.assert_code(0);
    let v = clean.json();
    for k in ["added", "removed", "changed", "errors", "scanned"] {
        assert!(v["summary"][k].as_u64().is_some(), "summary.{k}");
    }
    assert_eq!(v["summary"]["changed"], 0, "{v}");
    // /etc, /etc/passwd, /etc/ssh, sshd_config, /usr/bin, kubelet, /bin, config.yaml
    assert_eq!(v["summary"]["scanned"], 8, "{v}");

    f.put("etc/passwd", "root:x:0:0::/root:/bin/bash\n");
    fs::set_permissions(
        f.root().join("etc/ssh/sshd_config"),
        fs::Permissions::from_mode(0o666),
    )
    .expect("chmod");
    fs::remove_file(f.root().join("usr/bin/kubelet")).expect("rm");
    f.put("usr/bin/kubectl", "new binary");
    f.put("etc/resolv.conf", "nameserver 10.0.0.2\n");
    f.put("var/lib/kubelet/pods/p2/token", "more churn");
    fs::remove_file(f.root().join("bin")).expect("rm link");
    symlink("/tmp", f.root().join("bin")).expect("symlink");
    let r = f.run("check", &["--fail-on", "changes"]);
    r.assert_code(1);
    let v = r.json();
    let got = changes(&v);
    let want: Vec<(String, String)> = [
        ("/bin", "changed"),
        ("/etc/passwd", "changed"),
        ("/etc/ssh/sshd_config", "changed"),
        ("/usr/bin/kubectl", "added"),
        ("/usr/bin/kubelet", "removed"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want, "{v}");
    assert!(attr_names(&v, "/etc/passwd").contains(&"sha256".to_string()));
    assert!(attr_names(&v, "/etc/ssh/sshd_config").contains(&"perm".to_string()));
    assert!(attr_names(&v, "/bin").contains(&"link_target".to_string()));
    // Without --fail-on the same findings exit 0.
    f.run("check", &[]).assert_code(0);
}

#[test]
fn ctime_catches_a_reset_mtime() {
    let f = Fim::with_config("fim-ctime", ALL);
    let p = f.put("app.conf", "listen 80\n");
    let before = fs::metadata(&p).expect("stat").modified().expect("mtime");
    f.run("init", &[]).assert_code(0);
    f.put("app.conf", "listen 81\n");
    fs::File::options()
        .write(true)
        .open(&p)
        .expect("open")
        .set_modified(before)
        .expect("reset mtime");
    let v = f.run("check", &[]).json();
    let names = attr_names(&v, "/app.conf");
    assert!(
        names.contains(&"ctime".to_string()) && names.contains(&"sha256".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"mtime".to_string()),
        "mtime was reset: {names:?}"
    );
}

#[test]
fn update_accepts_changes_keeps_prev_and_writes_0600() {
    let f = Fim::with_config("fim-update", ALL);
    f.put("a", "1");
    f.run("init", &[]).assert_code(0);
    assert_eq!(
        fs::metadata(f.base()).expect("stat").permissions().mode() & 0o777,
        0o600
    );
    let original = fs::read(f.base()).expect("read");
    f.put("a", "2");
    f.put("b", "new");
    let v = f.run("update", &[]).json();
    assert_eq!(v["summary"]["changed"], 1);
    assert_eq!(v["summary"]["added"], 1);
    let prev = PathBuf::from(format!("{}.prev", f.base().display()));
    assert_eq!(
        fs::read(&prev).expect("prev"),
        original,
        "B.prev is the old baseline"
    );
    assert_eq!(
        fs::metadata(&prev).expect("stat").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(f.base()).expect("stat").permissions().mode() & 0o777,
        0o600
    );
    let v = f.run("check", &["--fail-on", "any"]).json();
    assert_eq!(v["summary"]["changed"], 0, "{v}");
    assert_eq!(v["summary"]["added"], 0, "{v}");
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let f = Fim::with_config("fim-force", ALL);
    f.put("a", "1");
    f.run("init", &[]).assert_code(0);
    let r = f.run("init", &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    f.run("init", &["--force"]).assert_code(0);
}

#[test]
fn tampered_truncated_foreign_and_mismatched_baselines_are_refused() {
    let f = Fim::with_config("fim-tamper", ALL);
    f.put("a", "1");
    f.run("init", &[]).assert_code(0);
    let good = fs::read(f.base()).expect("read");

    // One flipped byte in the middle (an edited digest or path).
    let mut edited = good.clone();
    let mid = edited.len() / 2;
    edited[mid] ^= 0x20;
    fs::write(f.base(), &edited).expect("write");
    let r = f.run("check", &[]);
    r.assert_code(3);
    assert!(r.stdout.is_empty(), "no report from a refused baseline");
    assert!(r.stderr.contains("baseline"), "{}", r.stderr);

    // An edited header (another node name) is tampering, not a foreign baseline.
    let pos = good
        .windows(6)
        .position(|w| w == b"node-a")
        .expect("node name in header");
    let mut edited = good.clone();
    edited[pos + 5] = b'b';
    fs::write(f.base(), &edited).expect("write");
    f.run("check", &[]).assert_code(3);

    fs::write(f.base(), &good[..good.len() - 10]).expect("write");
    let r = f.run("check", &[]);
    r.assert_code(3);
    assert!(r.stderr.contains("truncated"), "{}", r.stderr);

    // The right file with the wrong key.
    fs::write(f.base(), &good).expect("write");
    f.dir.write("other-key", "another-key-of-enough-bytes");
    let mut c = f.cmd("check");
    c.arg("--key-file").arg(f.dir.join("other-key"));
    harness::run(&mut c).assert_code(3);

    // A baseline made without a key, offered where a key is expected.
    let mut c = f.cmd("init");
    c.arg("--force");
    harness::run(&mut c).assert_code(0);
    let r = f.run("check", &[]);
    r.assert_code(3);
    assert!(r.stderr.contains("not authenticated"), "{}", r.stderr);
    // Without a key it is used, with a loud warning.
    let v = harness::run(&mut f.cmd("check")).json();
    assert!(
        v["warnings"][0]
            .as_str()
            .expect("warning")
            .contains("not authenticated"),
        "{v}"
    );

    // Another node's baseline.
    fs::write(f.base(), &good).expect("write");
    let mut c = harness::tool("fim-check");
    c.args(["check", "--node-name", "node-b", "--key-file"])
        .arg(f.dir.join("key"));
    c.arg("--host-root")
        .arg(f.root())
        .arg("--baseline")
        .arg(f.base());
    c.arg("--config").arg(f.config.as_ref().expect("config"));
    let r = harness::run(&mut c);
    r.assert_code(4);
    assert!(r.stderr.contains("node-a"), "{}", r.stderr);

    // Another policy.
    f.dir.write(
        "policy.toml",
        "[[rule]]\npath = \"/\"\nattributes = \"perms\"\n",
    );
    let r = f.run("check", &[]);
    r.assert_code(4);
    assert!(r.stderr.contains("another policy"), "{}", r.stderr);
}

#[test]
fn special_files_hard_links_sparse_and_odd_names() {
    let f = Fim::with_config("fim-special", ALL);
    let root = f.root();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .expect("mkfifo");
    let _sock = std::os::unix::net::UnixListener::bind(root.join("sock")).expect("socket");
    f.put("hard1", "same inode");
    fs::hard_link(root.join("hard1"), root.join("hard2")).expect("link");
    let sparse = fs::File::create(root.join("sparse")).expect("create");
    sparse.set_len(64 << 20).expect("truncate");
    use std::os::unix::ffi::OsStrExt;
    let odd = root.join(std::ffi::OsStr::from_bytes(b"bad\xffname \"q\\\n"));
    fs::write(&odd, "x").expect("odd name");
    let mut deep = root.join("deep");
    for _ in 0..300 {
        deep = deep.join("d");
    }
    fs::create_dir_all(&deep).expect("deep");
    fs::write(deep.join("leaf"), "leaf").expect("leaf");
    f.run("init", &[]).assert_code(0);
    let r = f.run("check", &["--fail-on", "any"]);
    r.assert_code(0);
    let v = r.json();
    assert_eq!(v["summary"]["errors"], 0, "{v}");
    // root, fifo, sock, 2 hard links, sparse, odd, deep + 300 dirs + leaf
    assert_eq!(v["summary"]["scanned"], 1 + 6 + 1 + 300 + 1, "{v}");
    fs::write(&odd, "y").expect("odd name");
    fs::write(deep.join("leaf"), "leaf2").expect("leaf");
    let v = f.run("check", &[]).json();
    let paths: Vec<String> = changes(&v).into_iter().map(|(p, _)| p).collect();
    assert!(
        paths.iter().any(|p| p.starts_with("/bad\\xffname")),
        "{paths:?}"
    );
    assert!(paths.iter().any(|p| p.ends_with("/d/leaf")), "{paths:?}");
    let odd_change = v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["path_hex"].is_string())
        .expect("path_hex");
    let want_hex: String = b"/bad\xffname \"q\\\n"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(odd_change["path_hex"], want_hex, "{odd_change}");
    // Hard links: a write through one name changes both entries' content.
    fs::write(root.join("hard2"), "changed inode content").expect("write");
    let v = f.run("check", &[]).json();
    let paths: Vec<String> = changes(&v).into_iter().map(|(p, _)| p).collect();
    assert!(
        paths.contains(&"/hard1".to_string()) && paths.contains(&"/hard2".to_string()),
        "{paths:?}"
    );
}

#[test]
fn symlinks_are_recorded_never_followed_out_of_the_root() {
    let f = Fim::with_config("fim-symlink", ALL);
    symlink("/etc", f.root().join("etc")).expect("abs link");
    symlink("../../..", f.root().join("up")).expect("rel link");
    fs::create_dir(f.root().join("real")).expect("mkdir");
    f.run("init", &[]).assert_code(0);
    let mut c = f.cmd("show");
    c.arg("--key-file")
        .arg(f.dir.join("key"))
        .args(["--path", "/etc"]);
    let v = harness::run(&mut c).json();
    assert_eq!(v["entry"]["type"], "symlink");
    assert_eq!(v["entry"]["attributes"]["link_target"], "/etc");
    assert_eq!(v["baseline"]["entries"], 4, "only /, /etc, /real, /up: {v}");
}

#[test]
fn growing_logs_may_append_but_not_rewrite() {
    let f = Fim::with_config(
        "fim-growing",
        "[[rule]]\npath = \"/\"\nattributes = \"content\"\n[[rule]]\nglob = \"/log/*.log\"\nattributes = \"log\"\n",
    );
    f.put("log/app.log", "line 1\n");
    f.run("init", &[]).assert_code(0);
    let mut log = fs::OpenOptions::new()
        .append(true)
        .open(f.root().join("log/app.log"))
        .expect("open");
    std::io::Write::write_all(&mut log, b"line 2\n").expect("append");
    let v = f.run("update", &[]).json();
    assert_eq!(v["summary"]["changed"], 0, "appending is allowed: {v}");
    f.put("log/app.log", "LINE 1\nline 2\nline 3\n");
    let v = f.run("check", &[]).json();
    assert_eq!(
        changes(&v),
        vec![("/log/app.log".to_string(), "changed".to_string())],
        "{v}"
    );
    assert!(attr_names(&v, "/log/app.log").contains(&"sha256".to_string()));
}

#[test]
fn path_limits_scope_check_and_update() {
    let f = Fim::with_config("fim-limits", ALL);
    f.put("a/x", "1");
    f.put("b/y", "1");
    f.run("init", &[]).assert_code(0);
    f.put("a/x", "2");
    f.put("b/y", "2");
    let v = f.run("update", &["--path", "/a"]).json();
    assert_eq!(
        changes(&v),
        vec![("/a/x".to_string(), "changed".to_string())],
        "{v}"
    );
    // /b was kept as recorded, so it still shows up.
    let v = f.run("check", &[]).json();
    assert_eq!(
        changes(&v),
        vec![("/b/y".to_string(), "changed".to_string())],
        "{v}"
    );
}

#[test]
fn metrics_file_has_the_agreed_series() {
    let f = Fim::with_config("fim-metrics", ALL);
    f.put("a", "1");
    f.run("init", &[]).assert_code(0);
    f.put("a", "changed");
    f.put("b", "2");
    let m = f.dir.join("fim.prom");
    f.run("check", &["--metrics-file", m.to_str().expect("utf8")])
        .assert_code(0);
    let text = fs::read_to_string(&m).expect("metrics");
    for line in [
        "nodeguard_fim_check_changes{kind=\"added\"} 1",
        "nodeguard_fim_check_changes{kind=\"removed\"} 0",
        "nodeguard_fim_check_changes{kind=\"changed\"} 1",
        "nodeguard_fim_check_errors 0",
        "nodeguard_fim_check_baseline_authenticated 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("nodeguard_fim_check_entries "), "{text}");
    assert!(
        text.contains("nodeguard_fim_check_last_success_timestamp_seconds "),
        "{text}"
    );
    // A refused baseline: the run is recorded as failed.
    fs::write(f.base(), b"garbage").expect("write");
    f.run("check", &["--metrics-file", m.to_str().expect("utf8")])
        .assert_code(3);
    let text = fs::read_to_string(&m).expect("metrics");
    assert!(
        text.contains("nodeguard_fim_check_last_run_success 0"),
        "{text}"
    );
}

#[test]
fn bad_config_and_bad_key_are_clear_errors() {
    let f = Fim::with_config(
        "fim-badcfg",
        "[[rule]]\npath = \"etc\"\nattributes = \"content\"\n",
    );
    let r = f.run("init", &[]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("policy.toml") && r.stderr.contains("absolute"),
        "{}",
        r.stderr
    );
    let f = Fim::with_config("fim-badkey", ALL);
    f.dir.write("key", "short\n");
    let r = f.run("init", &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("at least 16"), "{}", r.stderr);
    assert!(!f.base().exists());
}

#[test]
fn unreadable_directories_are_errors_not_removals() {
    skip_unless_root!("needs to run the tool as an unprivileged user (setpriv) to get EACCES");
    let f = Fim::with_config("fim-eacces", ALL);
    fs::set_permissions(f.dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    fs::set_permissions(f.root(), fs::Permissions::from_mode(0o755)).expect("chmod");
    f.put("open/a", "1");
    f.put("locked/secret", "s");
    fs::set_permissions(f.dir.join("key"), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::set_permissions(f.dir.join("policy.toml"), fs::Permissions::from_mode(0o644))
        .expect("chmod");
    for d in ["open", "locked"] {
        fs::set_permissions(f.root().join(d), fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    fs::set_permissions(f.root().join("open/a"), fs::Permissions::from_mode(0o644)).expect("chmod");
    f.run("init", &[]).assert_code(0); // as root: everything recorded
    fs::set_permissions(f.base(), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::set_permissions(f.root().join("locked"), fs::Permissions::from_mode(0o000)).expect("chmod");
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(harness::bin("fim-check"));
    c.arg("check")
        .arg("--host-root")
        .arg(f.root())
        .arg("--baseline")
        .arg(f.base());
    c.args(["--node-name", "node-a", "--nice", "0", "--key-file"])
        .arg(f.dir.join("key"));
    c.arg("--config").arg(f.config.as_ref().expect("config"));
    let r = harness::run(&mut c);
    r.assert_code(0);
    let v = r.json();
    assert_eq!(v["summary"]["removed"], 0, "unreadable is not removed: {v}");
    assert_eq!(v["errors"][0]["path"], "/locked", "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .expect("msg")
            .contains("ermission denied"),
        "{v}"
    );
}

#[test]
fn device_nodes_record_their_numbers() {
    skip_unless_root!("mknod needs CAP_MKNOD");
    let f = Fim::with_config("fim-dev", ALL);
    let mk = |name: &str, kind: nix::sys::stat::SFlag, minor: u64| {
        nix::sys::stat::mknod(
            &f.root().join(name),
            kind,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(1, minor),
        )
        .expect("mknod");
    };
    mk("null", nix::sys::stat::SFlag::S_IFCHR, 3);
    mk("blk", nix::sys::stat::SFlag::S_IFBLK, 7);
    f.run("init", &[]).assert_code(0);
    fs::remove_file(f.root().join("null")).expect("rm");
    mk("null", nix::sys::stat::SFlag::S_IFCHR, 5);
    let v = f.run("check", &[]).json();
    let c = &v["changes"][0];
    assert_eq!(c["path"], "/null", "{v}");
    let dev = c["attributes"]
        .as_array()
        .expect("attrs")
        .iter()
        .find(|a| a["name"] == "device")
        .expect("device change");
    assert_eq!(dev["old"], "1:3");
    assert_eq!(dev["new"], "1:5");
}

/// A full file system: init and update fail with exit 2 and leave no
/// partial baseline behind; the previous baseline stays intact.
#[test]
fn full_disk_never_leaves_a_corrupt_baseline() {
    skip_unless_root!("mounts a tiny tmpfs");
    let f = Fim::with_config("fim-full", ALL);
    for i in 0..2000 {
        f.put(&format!("d/file-{i:04}"), "x");
    }
    let small = f.dir.join("small");
    fs::create_dir(&small).expect("mkdir");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&small)
        .status()
        .expect("running mount");
    if !st.success() {
        // Root without CAP_SYS_ADMIN (an unprivileged container).
        eprintln!("SKIPPED: cannot mount a tmpfs here (no CAP_SYS_ADMIN?)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(small.clone());
    let base = small.join("baseline");
    let run = |sub: &str| {
        let mut c = harness::tool("fim-check");
        c.arg(sub)
            .arg("--host-root")
            .arg(f.root())
            .arg("--baseline")
            .arg(&base);
        c.args(["--node-name", "node-a", "--nice", "0", "--key-file"])
            .arg(f.dir.join("key"));
        c.arg("--config").arg(f.config.as_ref().expect("config"));
        harness::run(&mut c)
    };
    let r = run("init");
    r.assert_code(2);
    assert!(r.stderr.contains("No space left"), "{}", r.stderr);
    assert_eq!(
        fs::read_dir(&small).expect("ls").count(),
        0,
        "temp file left behind"
    );
    // A small baseline fits; growing the tree makes the update overflow.
    for i in 0..2000 {
        fs::remove_file(f.root().join(format!("d/file-{i:04}"))).expect("rm");
    }
    run("init").assert_code(0);
    let good = fs::read(&base).expect("read");
    for i in 0..2000 {
        f.put(&format!("d/file-{i:04}"), "x");
    }
    run("update").assert_code(2);
    assert_eq!(
        fs::read(&base).expect("read"),
        good,
        "old baseline untouched"
    );
    run("check").assert_code(0);
}

/// SIGKILL in the middle of an update: the old baseline stays intact and
/// usable (only a hidden temp file may remain).
#[test]
fn killed_update_leaves_the_baseline_intact() {
    let f = Fim::with_config("fim-kill", ALL);
    f.put("big", &"x".repeat(4 << 20));
    f.run("init", &[]).assert_code(0);
    let good = fs::read(f.base()).expect("read");
    f.put("big", &"y".repeat(4 << 20));
    // 1 MB/s: the update needs at least four seconds.
    let mut c = f.cmd("update");
    c.arg("--key-file")
        .arg(f.dir.join("key"))
        .args(["--max-read-rate", "1"]);
    let mut child = c
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let started = std::time::Instant::now();
    let temp_exists = || {
        fs::read_dir(f.dir.path()).expect("ls").any(|e| {
            e.expect("entry")
                .file_name()
                .to_string_lossy()
                .starts_with(".baseline.")
        })
    };
    while !temp_exists() {
        assert!(
            started.elapsed().as_secs() < 30,
            "update never started writing"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "update finished before it was killed"
        );
        std::thread::yield_now();
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert_eq!(
        fs::read(f.base()).expect("read"),
        good,
        "baseline changed by a killed run"
    );
    let v = f.run("check", &[]).json();
    assert_eq!(
        changes(&v),
        vec![("/big".to_string(), "changed".to_string())],
        "{v}"
    );
}

#[test]
fn jsonl_has_one_line_per_change_and_show_reports_metadata() {
    let f = Fim::with_config("fim-jsonl", ALL);
    f.put("a", "1");
    f.put("b", "1");
    f.run("init", &[]).assert_code(0);
    f.put("a", "2");
    fs::remove_file(f.root().join("b")).expect("rm");
    let lines = f.run("check", &["--format", "jsonl"]).json_lines();
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["record"].as_str().expect("record"))
        .collect();
    assert_eq!(kinds, ["change", "change", "summary"], "{lines:?}");
    assert_eq!(lines[0]["path"], "/a");
    assert_eq!(lines[1]["kind"], "removed");
    assert_eq!(lines[2]["summary"]["changed"], 1);
    let mut c = f.cmd("show");
    c.arg("--key-file").arg(f.dir.join("key"));
    let v = harness::run(&mut c).json();
    assert_eq!(v["baseline"]["entries"], 3, "{v}");
    assert_eq!(v["baseline"]["node"], "node-a");
    assert_eq!(v["baseline"]["authenticated"], true);
    assert!(
        v["baseline"]["config_digest"]
            .as_str()
            .expect("digest")
            .len()
            == 64
    );
    assert!(v.get("entry").is_none());
}

/// Extended attributes (the carrier of SELinux labels, file capabilities
/// and ACLs) are recorded and compared one by one.
#[test]
fn extended_attribute_changes_are_reported_by_name() {
    let f = Fim::with_config("fim-xattr", ALL);
    let p = f.put("bin", "ELF");
    let setx = |name: &str, value: &[u8]| {
        let code = format!("import os,sys; os.setxattr(sys.argv[1], {name:?}, bytes({value:?}))");
        let st = Command::new("python3")
            .args(["-c", &code])
            .arg(&p)
            .status()
            .expect("python3");
        st.success()
    };
    if !setx("user.fim", b"v1") {
        eprintln!("SKIPPED: the test file system has no user xattrs");
        return;
    }
    f.run("init", &[]).assert_code(0);
    assert!(setx("user.fim", b"v2") && setx("user.bin", &[0, 1, 2]));
    let v = f.run("check", &[]).json();
    let c = v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["path"] == "/bin")
        .expect("/bin changed");
    let attrs = c["attributes"].as_array().expect("attributes");
    let get = |n: &str| {
        attrs
            .iter()
            .find(|a| a["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {attrs:?}"))
    };
    assert_eq!(get("xattrs.user.fim")["old"], "v1");
    assert_eq!(get("xattrs.user.fim")["new"], "v2");
    assert_eq!(get("xattrs.user.bin")["old"], Value::Null);
    assert_eq!(get("xattrs.user.bin")["new"], "hex:000102");
}

/// A baseline kept inside the watched tree does not report itself.
#[test]
fn a_baseline_inside_the_host_root_is_not_scanned() {
    let f = Fim::with_config("fim-inside", ALL);
    f.put("etc/app.conf", "x");
    fs::create_dir_all(f.root().join("var/lib/fim")).expect("mkdir");
    let run = |sub: &str| {
        let mut c = harness::tool("fim-check");
        c.arg(sub).arg("--host-root").arg(f.root());
        c.arg("--baseline").arg(f.root().join("var/lib/fim/base"));
        c.args(["--node-name", "node-a", "--nice", "0", "--key-file"])
            .arg(f.dir.join("key"));
        c.arg("--config").arg(f.config.as_ref().expect("config"));
        harness::run(&mut c)
    };
    run("init").assert_code(0);
    run("update").assert_code(0);
    let r = run("check");
    r.assert_code(0);
    let v = r.json();
    assert_eq!(v["summary"]["added"], 0, "{v}");
    assert_eq!(v["summary"]["changed"], 0, "{v}");
}
