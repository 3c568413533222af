//! What a run prints and writes: `--path` scope, metrics, errors, JSON Lines and `show`.

use super::*;

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
