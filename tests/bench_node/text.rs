//! `--format text`: kube-bench's layout, from a real fixture node.

use super::worker::{Change, Worker};

#[test]
fn text_report_reads_like_kube_bench() {
    let node = Worker::default()
        .with(Change::Config(
            "rotateCertificates: true",
            "rotateCertificates: false",
        ))
        .build("text");
    let out = node.run(&["--format", "text", "--targets", "node"]);
    out.assert_code(0);
    let text = &out.stdout;
    assert!(
        !text.contains('\u{1b}'),
        "escapes in a piped report: {text}"
    );
    assert!(text.starts_with("bench-node "), "{text}");
    assert!(
        text.contains("\n[INFO] 4 Worker Node Security Configuration\n"),
        "{text}"
    );
    assert!(text.contains("\n[INFO] 4.2 Kubelet\n"), "{text}");
    assert!(
        text.contains(
            "\n[FAIL] 4.2.10 Ensure that the --rotate-certificates argument is not set to false\n"
        ),
        "{text}"
    );
    assert!(text.contains("\n[PASS] 4.2.1 "), "{text}");
    // Remediation right under the failure.
    let fail = text.find("[FAIL] 4.2.10").unwrap();
    let after: Vec<&str> = text[fail..].lines().skip(1).take(4).collect();
    assert!(
        after
            .iter()
            .any(|l| l.trim_start().starts_with("remediation:")),
        "{after:#?}"
    );
    assert!(text.contains("== Summary 4 =="), "{text}");
    assert!(text.contains("== Summary total =="), "{text}");
    let json = node.run(&["--targets", "node"]).json();
    let fails = json["summary"]["fail"].as_u64().unwrap();
    assert!(fails >= 1);
    assert!(
        text.contains(&format!("{fails} checks FAIL\n")),
        "totals agree with the JSON: {text}"
    );

    // --fail-on still decides the exit code.
    node.run(&["--format", "text", "--targets", "node", "--fail-on", "FAIL"])
        .assert_code(1);
}
