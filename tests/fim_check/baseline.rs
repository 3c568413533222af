//! The baseline's life cycle: init, update, `.prev`, refusal of tampered or foreign baselines, full disks, killed updates, a baseline inside the watched tree.

use super::*;

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
