//! Hostile and mistaken inputs: each must give exit 2 and one clear line
//! on stderr, never a panic, a hang or a silently incomplete baseline.

use super::*;

/// Asserts exit 2, nothing on stdout, and one stderr line naming `what`.
fn refused(r: &RunResult, what: &[&str]) {
    r.assert_code(2);
    assert!(r.stdout.is_empty(), "a report on exit 2: {}", r.stdout);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "want one error line:\n{}", r.stderr);
    for w in what {
        assert!(r.stderr.contains(w), "stderr lacks {w:?}:\n{}", r.stderr);
    }
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

fn mkfifo(p: &Path) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

/// `a|b` selects both: the walk starts below every alternative's literal
/// directory, so a change to the second one is never missed.
#[test]
fn regex_alternation_records_every_alternative() {
    let f = Fim::with_config(
        "fim-regex-alt",
        "[[rule]]\nregex = '/usr/bin/tool|/etc/passwd'\nattributes = \"content\"\n",
    );
    f.put("usr/bin/tool", "tool");
    f.put("etc/passwd", "root:x:0:0\n");
    f.put("etc/shadow", "not selected");
    let v = f.run("init", &[]).assert_code(0).json();
    assert_eq!(v["summary"]["scanned"], 2, "{v}");
    f.put("etc/passwd", "evil:x:0:0\n");
    let v = f.run("check", &[]).assert_code(0).json();
    assert_eq!(
        changes(&v),
        [("/etc/passwd".to_string(), "changed".to_string())]
    );
    // Groups and anchors: `^(/opt/a|/srv/b)/conf$` walks /opt/a and /srv/b.
    let g = Fim::with_config(
        "fim-regex-group",
        "[[rule]]\nregex = '^(/opt/a|/srv/b)/conf$'\nattributes = \"content\"\n",
    );
    g.put("opt/a/conf", "a");
    g.put("srv/b/conf", "b");
    let v = g.run("init", &[]).assert_code(0).json();
    assert_eq!(v["summary"]["scanned"], 2, "{v}");
}

/// An alternative without a literal directory cannot be walked: refused,
/// naming the rule, instead of silently walking only the first one.
#[test]
fn regex_without_literal_roots_is_refused() {
    let f = Fim::with_config(
        "fim-regex-noroot",
        "[[rule]]\nregex = '/etc/passwd|.*shadow'\nattributes = \"content\"\n",
    );
    f.put("etc/passwd", "x");
    let r = f.run("init", &[]);
    refused(&r, &["rule #1", "/etc/passwd|.*shadow"]);
    assert!(!f.base().exists());
}

/// `--path` outside what the policy selects: refused, saying what the
/// policy covers (a 0-entry baseline would look like a watched path).
#[test]
fn path_outside_the_policy_is_refused() {
    let f = Fim::new("fim-path-outside");
    f.put("etc/passwd", "x");
    f.put("srv/app/main", "x");
    let r = f.run("init", &["--path", "/srv/app"]);
    refused(&r, &["--path /srv/app", "selects nothing", "/etc"]);
    assert!(!f.base().exists());
    // Excluded by the built-in policy.
    refused(&f.run("init", &["--path", "/proc/1"]), &["--path /proc/1"]);
    // Inside the policy: fine, even where nothing exists yet.
    f.run("init", &["--path", "/etc/ssh"]).assert_code(0);
    // check with a limit outside the policy: the same refusal.
    let r = f.run("check", &["--path", "/etc/ssh", "--path", "/srv"]);
    refused(&r, &["--path /srv"]);
}

/// Deeply nested brace alternations used to panic inside globset.
#[test]
fn nested_brace_glob_is_refused_not_a_panic() {
    let glob = format!("/{}b{}", "{a,".repeat(150), "}".repeat(150));
    let f = Fim::with_config(
        "fim-glob-braces",
        &format!("[[rule]]\nglob = \"{glob}\"\nattributes = \"content\"\n"),
    );
    f.put("a/f", "x");
    let cfg = f.config.clone().expect("config");
    let r = f.run_timed("init", &f.base(), Some(&cfg), None, &[]);
    refused(&r, &["rule #1", "nest"]);
}

/// Out-of-range numbers are one-line errors, not panics or 10^5 threads.
#[test]
fn read_rate_and_threads_are_range_checked() {
    let f = Fim::with_config("fim-ranges", ALL);
    f.put("f", &"x".repeat(100_000));
    let cfg = f.config.clone().expect("config");
    for rate in ["1e-300", "1e300", "-1", "NaN", "inf"] {
        let flag = format!("--max-read-rate={rate}");
        let r = f.run_timed("init", &f.base(), Some(&cfg), None, &["--force", &flag]);
        refused(&r, &["--max-read-rate"]);
    }
    for threads in ["0", "100000"] {
        let r = f.run_timed(
            "init",
            &f.base(),
            Some(&cfg),
            None,
            &["--force", "--threads", threads],
        );
        refused(&r, &["--threads"]);
    }
    f.run_timed(
        "init",
        &f.base(),
        Some(&cfg),
        None,
        &["--threads", "2", "--max-read-rate", "500"],
    )
    .assert_code(0);
}

/// A FIFO, a device or an oversized file where the key, the policy or the
/// baseline is expected: refused at once, never read or waited on.
#[test]
fn special_and_oversized_operator_files_are_refused() {
    let f = Fim::with_config("fim-fifo", ALL);
    f.put("f", "x");
    let cfg = f.config.clone().expect("config");
    let key = f.dir.join("key");
    let fifo = f.dir.join("fifo");
    mkfifo(&fifo);
    f.run_timed("init", &f.base(), Some(&cfg), Some(&key), &[])
        .assert_code(0);
    for (sub, cfg) in [("check", Some(cfg.as_path())), ("show", None)] {
        let r = f.run_timed(sub, &f.base(), cfg, Some(&fifo), &[]);
        refused(&r, &["--key-file", "FIFO"]);
        let r = f.run_timed(sub, &fifo, cfg, Some(&key), &[]);
        refused(&r, &["baseline", "FIFO"]);
    }
    // init --force never replaces a FIFO or a device with a baseline.
    let r = f.run_timed("init", &fifo, Some(&cfg), Some(&key), &["--force"]);
    refused(&r, &["FIFO", "not a regular file"]);
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &fs::metadata(&fifo).expect("fifo").file_type()
    ));
    let r = f.run_timed("check", &f.base(), Some(&fifo), Some(&key), &[]);
    refused(&r, &["--config", "FIFO"]);
    let zero = Path::new("/dev/zero");
    let r = f.run_timed("check", &f.base(), Some(zero), Some(&key), &[]);
    refused(&r, &["--config", "character device"]);
    let r = f.run_timed("check", zero, Some(&cfg), Some(&key), &[]);
    refused(&r, &["baseline", "character device"]);
    let big_key = f.dir.write("big-key", vec![b'k'; 1 << 20]);
    let r = f.run_timed("check", &f.base(), Some(&cfg), Some(&big_key), &[]);
    refused(&r, &["--key-file", "limit"]);
    let big_cfg = f
        .dir
        .write("big.toml", format!("{ALL}\n{}", "#".repeat(5 << 20)));
    let r = f.run_timed("check", &f.base(), Some(&big_cfg), Some(&key), &[]);
    refused(&r, &["--config", "limit"]);
}
