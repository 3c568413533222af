//! `--format text`: one table of the node's images, worst first (name,
//! pods, CRITICAL/HIGH/MEDIUM/LOW, how many findings have a fix), the
//! failures under it, the host scan and the totals.
//!
//! The fixable count is read from each image's full Trivy report
//! (`report_path`, written by this run or its cache); `-` when there is
//! none to read.

use std::fmt::Write as _;
use std::path::Path;

use nodeguard_common::report::RunContext;
use nodeguard_common::text::{plural, table, Painter, Tone};

use crate::report::{ImageResult, ScanReport, Status};
use crate::trivy_report::{self, Counts, Severity};

/// Full Trivy reports larger than this are not read for the fixable count.
const MAX_REPORT_BYTES: u64 = 256 * 1024 * 1024;

/// The report as text (after the common header).
pub fn render(report: &ScanReport, _ctx: &RunContext, p: &Painter) -> String {
    let mut out = String::new();
    let s = &report.summary;
    let runtime = match (&report.runtime.name, &report.runtime.version) {
        (Some(n), Some(v)) => format!("{n} {v}"),
        (Some(n), None) => n.clone(),
        _ => report.runtime.endpoint.clone(),
    };
    let _ = writeln!(
        out,
        "{} on {} · {} · vulnerability DB {} ({})",
        plural(s.images, "image"),
        plural(s.containers, "container"),
        runtime,
        report.db.updated_at,
        report.db.status
    );
    if let Some(e) = &report.db.error {
        let _ = writeln!(out, "{} DB update: {e}", p.tone(Tone::Warn, "warning:"));
    }
    out.push('\n');

    let mut images: Vec<&ImageResult> = report.images.iter().collect();
    images.sort_by(|a, b| {
        key(&b.vulnerabilities)
            .cmp(&key(&a.vulnerabilities))
            .then_with(|| name(a).cmp(&name(b)))
    });
    if images.is_empty() {
        let _ = writeln!(out, "No running images.");
    } else {
        let mut t = table([
            "IMAGE", "PODS", "CRITICAL", "HIGH", "MEDIUM", "LOW", "FIXABLE", "STATUS",
        ]);
        for image in &images {
            let v = &image.vulnerabilities;
            t.add_row(vec![
                name(image),
                pods(image),
                count(v.critical, Tone::Bad, p),
                count(v.high, Tone::Bad, p),
                count(v.medium, Tone::Warn, p),
                count(v.low, Tone::Dim, p),
                fixable(image.report_path.as_deref(), &s.severities),
                status(image.status, p),
            ]);
        }
        let _ = writeln!(out, "{t}");
    }

    let problems: Vec<&&ImageResult> = images.iter().filter(|i| i.error.is_some()).collect();
    if !problems.is_empty() {
        out.push('\n');
        for image in problems {
            let _ = writeln!(
                out,
                "{} {}: {}",
                p.tone(Tone::Bad, image.status.as_str()),
                name(image),
                image.error.as_deref().unwrap_or("")
            );
        }
    }
    for image in images.iter().filter(|i| i.note.is_some()) {
        let _ = writeln!(
            out,
            "{} {}: {}",
            p.tone(Tone::Dim, "note"),
            name(image),
            image.note.as_deref().unwrap_or("")
        );
    }

    if let Some(host) = &report.host {
        let v = &host.vulnerabilities;
        let _ = writeln!(
            out,
            "\nHost {} ({}): {} CRITICAL, {} HIGH, {} MEDIUM, {} LOW",
            host.os.as_deref().unwrap_or("OS unknown"),
            host.status.as_str(),
            count(v.critical, Tone::Bad, p),
            count(v.high, Tone::Bad, p),
            count(v.medium, Tone::Warn, p),
            count(v.low, Tone::Dim, p)
        );
        if let Some(e) = &host.error {
            let _ = writeln!(out, "  {}", p.tone(Tone::Bad, e));
        }
    }

    let v = &s.vulnerabilities;
    let _ = writeln!(
        out,
        "\nTotal: {} CRITICAL, {} HIGH, {} MEDIUM, {} LOW · {} scanned, {} cached, {} failed, {} skipped",
        count(v.critical, Tone::Bad, p),
        count(v.high, Tone::Bad, p),
        count(v.medium, Tone::Warn, p),
        count(v.low, Tone::Dim, p),
        s.scanned,
        s.cached,
        s.failed,
        s.skipped
    );
    if let Some(threshold) = s.fail_on {
        let verdict = if s.fail_on_triggered {
            p.tone(Tone::Bad, "findings at or above it")
        } else {
            p.tone(Tone::Good, "nothing at or above it")
        };
        let _ = writeln!(out, "--fail-on {}: {verdict}", threshold.as_str());
    }
    out
}

fn key(v: &Counts) -> (u64, u64, u64, u64) {
    (v.critical, v.high, v.medium, v.low)
}

/// The first tag, else the first digest, else the image ID.
fn name(image: &ImageResult) -> String {
    image
        .repo_tags
        .first()
        .or_else(|| image.repo_digests.first())
        .cloned()
        .unwrap_or_else(|| image.image_id.clone())
}

/// `namespace/pod`, one per line (distinct pods; a pod's containers once).
fn pods(image: &ImageResult) -> String {
    let mut pods: Vec<String> = image
        .containers
        .iter()
        .map(|c| format!("{}/{}", c.namespace, c.pod))
        .collect();
    pods.sort();
    pods.dedup();
    const SHOWN: usize = 3;
    if pods.len() > SHOWN {
        let more = pods.len() - SHOWN;
        pods.truncate(SHOWN);
        pods.push(format!("+{more} more"));
    }
    pods.join("\n")
}

fn count(n: u64, tone: Tone, p: &Painter) -> String {
    if n == 0 {
        "0".to_string()
    } else {
        p.tone(tone, n)
    }
}

fn status(s: Status, p: &Painter) -> String {
    match s {
        Status::Scanned | Status::Cached => s.as_str().to_string(),
        Status::Failed => p.tone(Tone::Bad, s.as_str()),
        Status::Skipped => p.tone(Tone::Warn, s.as_str()),
    }
}

/// Findings of the reported severities that have a fixed version, from the
/// full Trivy report; `-` when it cannot be read.
fn fixable(path: Option<&Path>, severities: &[Severity]) -> String {
    let Some(path) = path else {
        return "-".to_string();
    };
    let read = || -> anyhow::Result<usize> {
        if std::fs::metadata(path)?.len() > MAX_REPORT_BYTES {
            anyhow::bail!("too large");
        }
        let report = trivy_report::parse(&std::fs::read(path)?)?;
        Ok(report
            .vulnerabilities()
            .filter(|v| v.fixed_version.as_deref().is_some_and(|f| !f.is_empty()))
            .filter(|v| {
                severities.is_empty()
                    || severities
                        .iter()
                        .any(|s| s.as_str().eq_ignore_ascii_case(&v.severity))
            })
            .count())
    };
    read().map_or_else(|_| "-".to_string(), |n| n.to_string())
}
