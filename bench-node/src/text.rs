//! `--format text`: kube-bench's layout for a person. Per section, a
//! `[INFO]` line for the section and each group, then `[PASS]`, `[FAIL]`,
//! `[WARN]` or `[INFO]` `<id> <title>` per check, what was expected and
//! found plus the remediation under every FAIL and WARN, and the section's
//! counts; the total counts at the end.

use std::fmt::Write as _;

use nodeguard_common::report::RunContext;
use nodeguard_common::text::{Painter, Tone};

use crate::audit::Status;
use crate::definitions::Benchmark;
use crate::report::{BenchReport, CheckResult, Summary};

/// The report as text (after the common header).
pub fn render(report: &BenchReport, _ctx: &RunContext, p: &Painter) -> String {
    // Titles of sections and groups come from the benchmark the checks were
    // judged against; an id stands in if it cannot be read.
    let bench = Benchmark::embedded().ok();
    let mut out = String::new();
    let version = report
        .kubernetes_version
        .as_ref()
        .map_or("unknown", |v| v.git_version.as_str());
    let _ = writeln!(
        out,
        "{} · Kubernetes {version} · layout {} · targets {}",
        p.bold(&report.benchmark),
        report.layout,
        report.targets.join(", ")
    );
    for warning in &report.warnings {
        let _ = writeln!(out, "{} {warning}", p.tone(Tone::Warn, "warning:"));
    }
    out.push('\n');

    let mut sections: Vec<&str> = Vec::new();
    for r in &report.results {
        let section = section_of(&r.section);
        if !sections.contains(&section) {
            sections.push(section);
        }
    }
    for section in sections {
        let results: Vec<&CheckResult> = report
            .results
            .iter()
            .filter(|r| section_of(&r.section) == section)
            .collect();
        let title = bench
            .as_ref()
            .and_then(|b| b.section(section))
            .map_or("", |s| s.title.as_str());
        let _ = writeln!(
            out,
            "{} {}",
            tag(Status::Info, p),
            p.bold(format!("{section} {title}"))
        );
        let mut group = "";
        for r in &results {
            if r.section != group {
                group = &r.section;
                if group != section {
                    let title = bench
                        .as_ref()
                        .and_then(|b| b.section(section))
                        .and_then(|s| s.groups.iter().find(|g| g.id == group))
                        .map_or("", |g| g.title.as_str());
                    let _ = writeln!(out, "{} {group} {title}", tag(Status::Info, p));
                }
            }
            check(&mut out, r, p);
        }
        out.push('\n');
        let _ = writeln!(out, "{}", p.bold(format!("== Summary {section} ==")));
        counts(&mut out, &Summary::of(results.iter().copied()), p);
        out.push('\n');
    }
    let _ = writeln!(out, "{}", p.bold("== Summary total =="));
    counts(&mut out, &report.summary, p);
    out
}

/// `4.2` → `4`.
fn section_of(group: &str) -> &str {
    group.split('.').next().unwrap_or(group)
}

fn tag(status: Status, p: &Painter) -> String {
    let tone = match status {
        Status::Pass => Tone::Good,
        Status::Fail => Tone::Bad,
        Status::Warn => Tone::Warn,
        Status::Info => Tone::Info,
    };
    p.tone(tone, format!("[{}]", status.as_str()))
}

fn check(out: &mut String, r: &CheckResult, p: &Painter) {
    let _ = writeln!(out, "{} {} {}", tag(r.status(), p), r.id, r.title);
    let o = &r.outcome;
    if let Some(detail) = &o.detail {
        let _ = writeln!(out, "       {}", p.tone(Tone::Dim, detail));
    }
    if !matches!(r.status(), Status::Fail | Status::Warn) {
        return;
    }
    if !o.expected.is_empty() || !o.actual.is_empty() {
        let source = o
            .source_detail
            .as_deref()
            .map(|s| format!(" (from {s})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "       expected: {}; found: {}{source}",
            dash(&o.expected),
            dash(&o.actual)
        );
    }
    let mut lines = r.remediation.trim().lines();
    if let Some(first) = lines.next() {
        let _ = writeln!(out, "       {} {first}", p.bold("remediation:"));
        for line in lines {
            let _ = writeln!(out, "         {}", line.trim_end());
        }
    }
}

fn dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn counts(out: &mut String, s: &Summary, p: &Painter) {
    let _ = writeln!(out, "{} checks PASS", p.tone(Tone::Good, s.pass));
    let _ = writeln!(out, "{} checks FAIL", p.tone(Tone::Bad, s.fail));
    let _ = writeln!(out, "{} checks WARN", p.tone(Tone::Warn, s.warn));
    let _ = writeln!(out, "{} checks INFO", p.tone(Tone::Info, s.info));
    let _ = writeln!(out, "{} checks total", s.total);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Outcome;

    fn result(id: &str, status: Status) -> CheckResult {
        CheckResult {
            id: id.into(),
            title: format!("title of {id}"),
            section: id.rsplit_once('.').map_or(id, |(g, _)| g).to_string(),
            target: "node",
            scored: true,
            outcome: Outcome {
                status,
                expected: "false".into(),
                actual: "true".into(),
                source: None,
                source_detail: Some("/var/lib/kubelet/config.yaml".into()),
                reason: None,
                detail: None,
            },
            remediation: "Set anonymous: enabled: false\nthen restart the kubelet.".into(),
        }
    }

    #[test]
    fn kube_bench_lines_remediation_and_counts() {
        let results = vec![result("4.1.1", Status::Pass), result("4.2.1", Status::Fail)];
        let report = BenchReport {
            benchmark: "cis-1.12".into(),
            kubernetes_version: None,
            layout: "kubeadm",
            targets: vec!["node"],
            components: vec![],
            warnings: vec![],
            summary: Summary::of(&results),
            results,
        };
        let ctx = RunContext::new("bench-node", "0", "n");
        let text = render(&report, &ctx, &Painter::plain());
        assert!(text.contains("[INFO] 4 Worker Node"), "{text}");
        assert!(text.contains("[PASS] 4.1.1 title of 4.1.1\n"), "{text}");
        assert!(text.contains("[FAIL] 4.2.1 title of 4.2.1\n"), "{text}");
        assert!(
            text.contains("expected: false; found: true (from /var/lib/kubelet/config.yaml)"),
            "{text}"
        );
        assert!(text.contains("remediation: Set anonymous"), "{text}");
        assert!(
            text.contains("== Summary 4 ==\n1 checks PASS\n1 checks FAIL"),
            "{text}"
        );
        assert!(text.ends_with("0 checks INFO\n2 checks total\n"), "{text}");
        assert!(!text.contains('\u{1b}'));
    }
}
