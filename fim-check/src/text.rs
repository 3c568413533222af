//! `--format text`: like AIDE, a summary first, then the changes grouped by
//! kind (added, removed, changed) with the attributes that changed, old →
//! new, then the paths that could not be examined.

use std::fmt::Write as _;

use nodeguard_common::report::RunContext;
use nodeguard_common::text::{Painter, Tone};

use crate::report::{Change, Kind, ScanReport};

/// Changed paths listed per kind; the rest are counted (the JSON has all).
const MAX_LISTED: usize = 200;

/// The report as text (after the common header).
pub fn render(report: &ScanReport, _ctx: &RunContext, p: &Painter) -> String {
    let mut out = String::new();
    let s = &report.summary;
    let b = &report.baseline;
    let _ = writeln!(
        out,
        "fim-check {} · host root {} · policy {}",
        report.command, report.host_root, report.config.source
    );
    let _ = writeln!(
        out,
        "baseline {} ({} entries, {}, created {} on {}{})",
        b.path,
        b.entries,
        if b.authenticated {
            p.tone(Tone::Good, "authenticated")
        } else {
            p.tone(Tone::Warn, "not authenticated")
        },
        b.created_at,
        b.node,
        b.previous
            .as_ref()
            .map(|prev| format!("; previous kept at {prev}"))
            .unwrap_or_default()
    );
    for w in &report.warnings {
        let _ = writeln!(out, "{} {w}", p.tone(Tone::Warn, "warning:"));
    }
    for limit in &b.limits {
        let _ = writeln!(out, "{} {limit}", p.tone(Tone::Dim, "limit:"));
    }
    out.push('\n');

    let total = s.added + s.removed + s.changed;
    let verdict = if total == 0 {
        p.tone(Tone::Good, "no changes")
    } else {
        p.tone(Tone::Bad, format!("{total} changed paths"))
    };
    let _ = writeln!(
        out,
        "{}: {verdict} · {} added, {} removed, {} changed · {} errors · {} entries examined",
        p.bold("Summary"),
        s.added,
        s.removed,
        s.changed,
        s.errors,
        s.scanned
    );

    for (kind, title) in [
        (Kind::Added, "Added"),
        (Kind::Removed, "Removed"),
        (Kind::Changed, "Changed"),
    ] {
        let changes: Vec<&Change> = report.changes.iter().filter(|c| c.kind == kind).collect();
        if changes.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{} ({}):", p.bold(title), changes.len());
        for c in changes.iter().take(MAX_LISTED) {
            let mark = match kind {
                Kind::Added => p.tone(Tone::Warn, "+"),
                Kind::Removed => p.tone(Tone::Bad, "-"),
                Kind::Changed => p.tone(Tone::Bad, "~"),
            };
            let _ = writeln!(out, "  {mark} {} {}", c.path, p.tone(Tone::Dim, c.ftype));
            for a in &c.attributes {
                let _ = writeln!(
                    out,
                    "      {}: {} → {}",
                    a.name,
                    nodeguard_common::text::scalar(&a.old),
                    nodeguard_common::text::scalar(&a.new)
                );
            }
        }
        if changes.len() > MAX_LISTED {
            let _ = writeln!(
                out,
                "  … and {} more (see --format json)",
                changes.len() - MAX_LISTED
            );
        }
    }

    if !report.errors.is_empty() {
        let _ = writeln!(
            out,
            "\n{} ({}):",
            p.bold("Not examined"),
            report.errors.len()
        );
        for e in report.errors.iter().take(MAX_LISTED) {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                p.tone(Tone::Warn, "!"),
                e.path,
                e.message
            );
        }
    }
    out
}
