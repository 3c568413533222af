//! The watcher on real temporary trees: real inotify (and fanotify when
//! this process may use it), a scripted source for lost events. Every wait
//! polls the output with a deadline; nothing sleeps to pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::source::{FakeSource, Item};
use super::*;
use crate::baseline::{Header, Writer};
use serde_json::Value;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

const KEY: &[u8] = b"watch-test-key-0123456789";

const POLICY: &str = r#"
[[rule]]
path = "/etc"
attributes = "content"
[[rule]]
path = "/var/log/app.log"
attributes = "log"
[[exclude]]
path = "/etc/cache"
"#;

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

type MakeSource = Box<dyn FnOnce(&OwnedFd) -> Box<dyn EventSource>>;

struct Harness {
    dir: tempfile::TempDir,
    w: Watcher<'static>,
    out: Shared,
    /// Lines already returned by `wait_for`.
    seen: usize,
}

fn write_baseline(root: &Path, policy: &Policy, dest: &Path) {
    let root_fd = OwnedFd::from(File::open(root).unwrap());
    let header = Header {
        tool_version: VERSION.into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        node: "node-t".into(),
        config_source: policy.source.clone(),
        config_digest: policy.digest.clone(),
        limits: Vec::new(),
        authenticated: true,
    };
    let mut w = Writer::new(Vec::new(), &header, Some(KEY)).unwrap();
    let src = Source {
        root,
        root_fd: &root_fd,
        policy,
        scope: Scope::default(),
        rate: None,
    };
    scan(&src, &mut |item| {
        if let WalkItem::Entry { entry, .. } = item {
            w.write(&entry)?;
        }
        Ok(())
    })
    .unwrap();
    let (bytes, _) = w.finish().unwrap();
    fs::write(dest, bytes).unwrap();
}

impl Harness {
    /// A tree (`files`: path → content), its baseline, a started watcher.
    fn new(files: &[(&str, &str)], source: Option<MakeSource>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for d in ["etc/cache", "etc/ssh", "var/log", "home"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for (p, c) in files {
            fs::write(root.join(p.trim_start_matches('/')), c).unwrap();
        }
        let policy = Policy::parse(POLICY, "test").unwrap();
        let bl = dir.path().join("baseline");
        write_baseline(&root, &policy, &bl);
        let root_fd = OwnedFd::from(File::open(&root).unwrap());
        let baseline = Baseline::load(&bl, Some(KEY)).unwrap();
        let source = match source {
            Some(make) => make(&root_fd),
            None => open_backend(Backend::Inotify, &root_fd).unwrap(),
        };
        let cfg = Config {
            root,
            root_fd,
            policy,
            scope: Scope::default(),
            baseline_path: bl,
            key: Some(KEY.to_vec()),
            metrics_file: Some(dir.path().join("metrics.prom")),
            full_check_interval: None,
        };
        let out = Shared::default();
        let ctx = nodeguard_common::report::RunContext::new(TOOL, VERSION, "node-t");
        let mut w = Watcher::new(
            cfg,
            baseline,
            source,
            Box::new(out.clone()),
            ctx,
            Stop::default(),
        );
        assert_eq!(w.start().unwrap(), Flow::Go);
        let mut h = Harness {
            dir,
            w,
            out,
            seen: 0,
        };
        h.wait_for("watching", |r| r["record"] == "watching");
        h
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir
            .path()
            .join("root")
            .join(rel.trim_start_matches('/'))
    }

    fn lines(&self) -> Vec<Value> {
        let buf = self.out.0.lock().unwrap();
        String::from_utf8_lossy(&buf)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Steps the watcher until a record matching `pred` appears (after the
    /// ones already consumed); returns every new record up to it.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.lines();
            if let Some(i) = lines[self.seen..].iter().position(&pred) {
                let out = lines[self.seen..=self.seen + i].to_vec();
                self.seen += i + 1;
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} record within 10 s; output so far:\n{}",
                String::from_utf8_lossy(&self.out.0.lock().unwrap())
            );
            assert_eq!(
                self.w.step(Some(Duration::from_millis(20))).unwrap(),
                Flow::Go
            );
        }
    }

    fn change(&mut self, path: &str) -> Value {
        let p = path.to_string();
        let mut v = self.wait_for(&format!("change of {path}"), move |r| {
            r["record"] == "change" && r["path"] == p.as_str()
        });
        v.pop().unwrap()
    }

    /// Records of `path` among all output so far.
    fn changes_of(&self, path: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|r| r["record"] == "change" && r["path"] == path)
            .collect()
    }
}

fn names(v: &Value) -> Vec<String> {
    v["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_change_kind_is_reported_with_its_attributes() {
    let mut h = Harness::new(
        &[
            ("/etc/passwd", "root:x:0:0\n"),
            ("/etc/shadow", "root:*:1\n"),
            ("/etc/hosts", "127.0.0.1 localhost\n"),
            ("/etc/resolv.conf", "nameserver 1.1.1.1\n"),
            ("/etc/ssh/sshd_config", "PermitRootLogin no\n"),
        ],
        None,
    );
    fs::write(h.p("/etc/passwd"), "root:x:0:0\nevil:x:0:0\n").unwrap();
    let c = h.change("/etc/passwd");
    assert_eq!(c["kind"], "changed");
    assert!(names(&c).contains(&"sha256".to_string()), "{c}");
    assert!(c["detected_at"].as_str().unwrap().ends_with('Z'));

    fs::set_permissions(
        h.p("/etc/shadow"),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let c = h.change("/etc/shadow");
    assert_eq!(c["attributes"][0]["name"], "perm");
    assert_eq!(c["attributes"][0]["old"], "0644");
    assert_eq!(c["attributes"][0]["new"], "0666");

    fs::remove_file(h.p("/etc/hosts")).unwrap();
    let c = h.change("/etc/hosts");
    assert_eq!(
        (c["kind"].as_str(), c["type"].as_str()),
        (Some("removed"), Some("file"))
    );

    fs::write(h.p("/etc/new.conf"), "x").unwrap();
    assert_eq!(h.change("/etc/new.conf")["kind"], "added");

    // A symlink is recorded as one, never followed (its target is outside
    // the policy and must not show up).
    fs::write(h.p("/home/secret"), "s").unwrap();
    std::os::unix::fs::symlink("../home", h.p("/etc/link")).unwrap();
    let c = h.change("/etc/link");
    assert_eq!(
        (c["kind"].as_str(), c["type"].as_str()),
        (Some("added"), Some("symlink"))
    );

    // Rename: the old name is removed, the new one added.
    fs::rename(h.p("/etc/ssh/sshd_config"), h.p("/etc/ssh/sshd_config.bak")).unwrap();
    assert_eq!(h.change("/etc/ssh/sshd_config")["kind"], "removed");
    assert_eq!(h.change("/etc/ssh/sshd_config.bak")["kind"], "added");

    // Atomic replace (write a temp file, rename it over): the target changed.
    fs::write(h.p("/etc/resolv.conf.tmp"), "nameserver 6.6.6.6\n").unwrap();
    fs::rename(h.p("/etc/resolv.conf.tmp"), h.p("/etc/resolv.conf")).unwrap();
    let c = h.change("/etc/resolv.conf");
    assert_eq!(c["kind"], "changed");
    let n = names(&c);
    assert!(
        n.contains(&"inode".into()) && n.contains(&"sha256".into()),
        "{n:?}"
    );

    // A file replaced by a directory: a type change.
    fs::remove_file(h.p("/etc/new.conf")).unwrap();
    fs::create_dir(h.p("/etc/new.conf")).unwrap();
    h.wait_for("new.conf as a directory", |r| {
        r["path"] == "/etc/new.conf" && r["type"] == "directory"
    });

    // Nothing outside the policy or under an exclusion, ever.
    fs::write(h.p("/etc/cache/x"), "1").unwrap();
    fs::write(h.p("/home/y"), "1").unwrap();
    fs::write(h.p("/etc/sentinel"), "1").unwrap();
    h.change("/etc/sentinel");
    let all = h.lines();
    for r in &all {
        let p = r["path"].as_str().unwrap_or("");
        assert!(
            !p.starts_with("/home") && !p.starts_with("/etc/cache") && !p.starts_with("/etc/link/"),
            "reported outside the policy: {r}"
        );
    }
    // Metrics follow the outstanding changes.
    h.w.write_metrics(true);
    let m = fs::read_to_string(h.dir.path().join("metrics.prom")).unwrap();
    assert!(
        m.contains("nodeguard_fim_check_watches{backend=\"inotify\"}"),
        "{m}"
    );
    assert!(
        m.contains("nodeguard_fim_check_changes{kind=\"removed\"} 2"),
        "{m}"
    );
}

#[test]
fn an_edit_keeping_size_and_mtime_is_caught_by_the_hash() {
    let mut h = Harness::new(&[("/etc/sudoers", "alice ALL=(ALL) ALL\n")], None);
    let p = h.p("/etc/sudoers");
    let mtime = fs::metadata(&p).unwrap().modified().unwrap();
    let f = File::options().write(true).open(&p).unwrap();
    (&f).write_all(b"mallo ALL=(ALL) ALL\n").unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    let c = h.change("/etc/sudoers");
    let n = names(&c);
    assert!(n.contains(&"sha256".into()), "{n:?}");
    assert!(
        !n.contains(&"size".into()) && !n.contains(&"mtime".into()),
        "{n:?}"
    );
}

#[test]
fn a_burst_of_writes_is_reported_once_after_it_settles() {
    let mut h = Harness::new(&[("/etc/burst", "0")], None);
    let mut f = File::options()
        .append(true)
        .open(h.p("/etc/burst"))
        .unwrap();
    // Writes 10 ms apart for 0.3 s: the watcher runs between them.
    for i in 0..30 {
        write!(f, "{i}").unwrap();
        f.flush().unwrap();
        let until = Instant::now() + Duration::from_millis(10);
        while Instant::now() < until {
            h.w.step(Some(Duration::from_millis(5))).unwrap();
        }
    }
    drop(f);
    let last_write = SystemTime::now();
    fs::write(h.p("/etc/sentinel"), "s").unwrap();
    h.change("/etc/sentinel");
    let burst = h.changes_of("/etc/burst");
    assert_eq!(burst.len(), 1, "{burst:?}");
    // Reported after the last write, within the promised second.
    let at: SystemTime =
        humantime::parse_rfc3339(burst[0]["detected_at"].as_str().unwrap()).unwrap();
    let lag = at.duration_since(last_write).unwrap_or_default();
    assert!(lag < Duration::from_secs(1), "{lag:?}");
    let size = burst[0]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "size")
        .unwrap()["new"]
        .clone();
    assert_eq!(size, fs::metadata(h.p("/etc/burst")).unwrap().len());
}

#[test]
fn files_created_right_after_mkdir_are_all_reported() {
    let mut h = Harness::new(&[], None);
    let d = h.p("/etc/new.d");
    fs::create_dir(&d).unwrap();
    for i in 0..50 {
        fs::write(d.join(format!("f{i}")), "x").unwrap();
    }
    fs::create_dir_all(d.join("a/b")).unwrap();
    fs::write(d.join("a/b/deep"), "x").unwrap();
    let mut want: HashSet<String> = (0..50).map(|i| format!("/etc/new.d/f{i}")).collect();
    want.insert("/etc/new.d/a/b/deep".into());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !want.iter().all(|p| !h.changes_of(p).is_empty()) {
        assert!(
            Instant::now() < deadline,
            "missing: {:?}",
            want.iter()
                .filter(|p| h.changes_of(p).is_empty())
                .collect::<Vec<_>>()
        );
        h.w.step(Some(Duration::from_millis(20))).unwrap();
    }
    want.clear();
    h.seen = h.lines().len();
    // New directories are watched: a later file below is seen too.
    fs::write(d.join("a/b/later"), "x").unwrap();
    assert_eq!(h.change("/etc/new.d/a/b/later")["kind"], "added");
    // Each reported once.
    assert_eq!(h.changes_of("/etc/new.d/f7").len(), 1);
    // Removing what was added settles those changes.
    fs::remove_dir_all(&d).unwrap();
    h.wait_for("new.d/a/b/later restored", |r| {
        r["path"] == "/etc/new.d/a/b/later"
            && r["record"] == "restored"
            && r["previous_kind"] == "added"
    });
}

#[test]
fn a_moved_directory_is_watched_under_its_new_name() {
    let mut h = Harness::new(&[("/etc/ssh/key", "k")], None);
    fs::rename(h.p("/etc/ssh"), h.p("/etc/ssh2")).unwrap();
    assert_eq!(h.change("/etc/ssh/key")["kind"], "removed");
    assert_eq!(h.change("/etc/ssh2/key")["kind"], "added");
    fs::write(h.p("/etc/ssh2/other"), "o").unwrap();
    assert_eq!(h.change("/etc/ssh2/other")["kind"], "added");
}

#[test]
fn a_change_is_reported_once_until_it_grows_or_is_reverted() {
    let mut h = Harness::new(&[("/etc/motd", "hello\n")], None);
    fs::write(h.p("/etc/motd"), "hello world\n").unwrap();
    h.change("/etc/motd");
    // More content changes: the same change, not reported again.
    fs::write(h.p("/etc/motd"), "hello again\n").unwrap();
    fs::write(h.p("/etc/sentinel1"), "s").unwrap();
    h.change("/etc/sentinel1");
    assert_eq!(h.changes_of("/etc/motd").len(), 1);
    // A new kind of change (permissions) is.
    fs::set_permissions(
        h.p("/etc/motd"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    let c = h.change("/etc/motd");
    assert!(names(&c).contains(&"perm".into()));
}

#[test]
fn a_removed_tree_reports_what_it_held() {
    let mut h = Harness::new(&[("/etc/ssh/k1", "1"), ("/etc/ssh/k2", "2")], None);
    fs::remove_dir_all(h.p("/etc/ssh")).unwrap();
    let mut want: HashSet<&str> = ["/etc/ssh", "/etc/ssh/k1", "/etc/ssh/k2"].into();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !want.is_empty() {
        assert!(Instant::now() < deadline, "missing: {want:?}");
        want.retain(|p| !h.changes_of(p).iter().any(|r| r["kind"] == "removed"));
        h.w.step(Some(Duration::from_millis(20))).unwrap();
    }
}

#[test]
fn growing_log_appends_are_quiet_but_rewrites_are_not() {
    let mut h = Harness::new(&[("/var/log/app.log", "line1\n")], None);
    let mut f = File::options()
        .append(true)
        .open(h.p("/var/log/app.log"))
        .unwrap();
    f.write_all(b"line2\n").unwrap();
    drop(f);
    fs::write(h.p("/etc/sentinel"), "s").unwrap();
    h.change("/etc/sentinel");
    assert!(h.changes_of("/var/log/app.log").is_empty());
    fs::write(h.p("/var/log/app.log"), "LINE1\nline2\nline3\n").unwrap();
    assert_eq!(h.change("/var/log/app.log")["kind"], "changed");
}

#[test]
fn lost_events_are_said_and_followed_by_a_full_check() {
    let (fake, queue) = FakeSource::new();
    let mut h = Harness::new(&[("/etc/a", "a")], Some(Box::new(move |_| Box::new(fake))));
    // A change no event reported (the fake source is silent)...
    fs::write(h.p("/etc/a"), "tampered").unwrap();
    // ...then the queue overflows.
    queue.lock().unwrap().push(Item::Overflow);
    let got = h.wait_for("the change, via the full check", |r| {
        r["record"] == "change" && r["path"] == "/etc/a"
    });
    assert!(
        got.iter()
            .any(|r| r["record"] == "notice" && r["notice"] == "queue_overflow"),
        "{got:?}"
    );
    h.wait_for("full check", |r| {
        r["record"] == "full_check" && r["reason"] == "queue overflow"
    });
    // A directory that can no longer be watched: said, then a full check.
    queue.lock().unwrap().push(Item::Lost {
        path: b"/etc".to_vec(),
        message: "unmounted".into(),
    });
    let got = h.wait_for("full check", |r| r["record"] == "full_check");
    assert!(
        got.iter()
            .any(|r| r["notice"] == "unwatchable" && r["path"] == "/etc"),
        "{got:?}"
    );
    // The change was already reported: not again.
    assert_eq!(h.changes_of("/etc/a").len(), 1);
}

#[test]
fn an_update_of_the_baseline_accepts_what_was_reported() {
    let mut h = Harness::new(&[("/etc/a", "a")], None);
    fs::write(h.p("/etc/a"), "b").unwrap();
    h.change("/etc/a");
    // `fim-check update`: a new baseline replaces the file.
    let root = h.dir.path().join("root");
    let tmp = h.dir.path().join("baseline.new");
    write_baseline(&root, &h.w.cfg.policy, &tmp);
    fs::rename(&tmp, h.dir.path().join("baseline")).unwrap();
    h.wait_for("reload", |r| r["notice"] == "baseline_reloaded");
    let full = h.wait_for("full check", |r| r["record"] == "full_check");
    assert_eq!(full.last().unwrap()["outstanding"]["changed"], 0);
    fs::write(h.p("/etc/a"), "c").unwrap();
    h.change("/etc/a");
}

#[test]
fn fanotify_reports_changes_when_this_process_may_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let fd = OwnedFd::from(File::open(dir.path()).unwrap());
    if let Err(why) = fanotify::FanotifySource::new(&fd) {
        eprintln!("SKIP fanotify test: {why}");
        return;
    }
    let mut h = Harness::new(
        &[("/etc/a", "a")],
        Some(Box::new(|fd| {
            Box::new(fanotify::FanotifySource::new(fd).unwrap())
        })),
    );
    fs::write(h.p("/etc/a"), "b").unwrap();
    assert_eq!(h.change("/etc/a")["kind"], "changed");
    fs::create_dir(h.p("/etc/d")).unwrap();
    fs::write(h.p("/etc/d/f"), "f").unwrap();
    assert_eq!(h.change("/etc/d/f")["kind"], "added");
    // A renamed directory: cached handle → path resolutions are dropped.
    fs::rename(h.p("/etc/d"), h.p("/etc/e")).unwrap();
    h.wait_for("e/f added", |r| {
        r["path"] == "/etc/e/f" && r["kind"] == "added"
    });
    fs::write(h.p("/etc/e/g"), "g").unwrap();
    assert_eq!(h.change("/etc/e/g")["kind"], "added");
    fs::write(h.p("/etc/cache/x"), "x").unwrap();
    fs::remove_file(h.p("/etc/a")).unwrap();
    assert_eq!(h.change("/etc/a")["kind"], "removed");
    assert!(h.changes_of("/etc/cache/x").is_empty());
}

#[test]
fn exhausted_watches_are_said_counted_and_covered_by_a_full_check() {
    let (mut fake, _queue) = FakeSource::new();
    // `/`, `/etc`, `/etc/cache` is excluded: `/etc/ssh`, `/var`... hit the limit.
    fake.limit = Some(2);
    let mut h = Harness::new(
        &[("/etc/ssh/k", "k")],
        Some(Box::new(move |_| Box::new(fake))),
    );
    let all = h.lines();
    let notice = all
        .iter()
        .find(|r| r["notice"] == "watch_limit")
        .expect("a watch_limit notice");
    assert!(
        notice["message"].as_str().unwrap().contains("full checks"),
        "{notice}"
    );
    let watching = all.iter().find(|r| r["record"] == "watching").unwrap();
    assert_eq!(watching["watches"], 2);
    assert!(
        watching["unwatched_directories"].as_u64().unwrap() >= 1,
        "{watching}"
    );
    // The unwatched directory's change is found by the next full check.
    fs::write(h.p("/etc/ssh/k"), "tampered").unwrap();
    h.w.full_check_needed = Some("interval".into());
    let c = h.change("/etc/ssh/k");
    assert_eq!(c["kind"], "changed");
    // The limit does not make the watcher check in a loop.
    for _ in 0..5 {
        h.w.step(Some(Duration::from_millis(1))).unwrap();
    }
    let checks = h
        .lines()
        .iter()
        .filter(|r| r["record"] == "full_check")
        .count();
    assert_eq!(checks, 2, "one at start, one asked for");
    h.w.write_metrics(true);
    let m = fs::read_to_string(h.dir.path().join("metrics.prom")).unwrap();
    assert!(
        m.contains("nodeguard_fim_check_unwatched_directories "),
        "{m}"
    );
}
