//! `--format text`: the cluster at a glance: totals, then the worst nodes,
//! the worst images and the most failed CIS checks, then what is missing,
//! stale or not converged.

use std::fmt::Write as _;

use nodeguard_common::report::RunContext;
use nodeguard_common::text::{plural, table, Painter, Tone};

use crate::view::{ClusterView, NodeRow};

/// Rows per table; the JSON and the HTML page have all.
const TOP: usize = 10;

/// The report as text (after the common header).
pub fn render(view: &ClusterView, _ctx: &RunContext, p: &Painter) -> String {
    let mut out = String::new();
    let s = &view.summary;
    let v = &s.vulnerabilities.0;
    let _ = writeln!(
        out,
        "{} reporting ({} expected, {} missing, {} stale) · source {}",
        plural(s.nodes, "node"),
        s.nodes_expected,
        warn_if(s.nodes_missing, p),
        warn_if(s.nodes_stale, p),
        view.source.kind
    );
    let _ = writeln!(
        out,
        "Vulnerabilities: {} CRITICAL, {} HIGH, {} MEDIUM, {} LOW in {} · {} with critical",
        bad_if(v[0], p),
        bad_if(v[1], p),
        v[2],
        v[3],
        plural(s.images, "image"),
        plural(s.nodes_with_critical, "node")
    );
    let _ = writeln!(
        out,
        "CIS: {} failed checks on {} · FIM: {} changes on {} · agents: {} not converged, {} inactive",
        bad_if(s.cis_failed_checks as u64, p),
        plural(s.nodes_with_cis_failures, "node"),
        bad_if(s.fim_changes, p),
        plural(s.nodes_with_fim_changes, "node"),
        warn_if(s.agents_not_converged, p),
        warn_if(s.agents_inactive, p)
    );

    let mut nodes: Vec<&NodeRow> = view.nodes.iter().collect();
    nodes.sort_by(|a, b| {
        badness(b)
            .cmp(&badness(a))
            .then_with(|| a.node.cmp(&b.node))
    });
    if !nodes.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("Worst nodes"));
        let mut t = table([
            "NODE",
            "OS",
            "CRITICAL",
            "HIGH",
            "CIS FAIL",
            "FIM",
            "STALE TOOLS",
            "MISSING TOOLS",
        ]);
        for n in nodes.iter().take(TOP) {
            t.add_row(vec![
                n.node.clone(),
                n.os.clone().unwrap_or_default(),
                bad_if(n.vulnerabilities.0[0], p),
                bad_if(n.vulnerabilities.0[1], p),
                bad_if(cis_fail(n), p),
                bad_if(fim_total(n), p),
                warn_if(n.stale_tools.len(), p),
                warn_if(n.missing_tools.len(), p),
            ]);
        }
        let _ = writeln!(out, "{t}");
        more(&mut out, nodes.len());
    }

    if !view.images.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("Worst images"));
        let mut t = table(["IMAGE", "NODES", "CRITICAL", "HIGH", "MEDIUM", "LOW"]);
        for i in view.images.iter().take(TOP) {
            let sev = &i.vulnerabilities.0;
            t.add_row(vec![
                i.image.clone(),
                i.nodes.to_string(),
                bad_if(sev[0], p),
                bad_if(sev[1], p),
                sev[2].to_string(),
                sev[3].to_string(),
            ]);
        }
        let _ = writeln!(out, "{t}");
        more(&mut out, view.images_total.max(view.images.len()));
    }

    if !view.cis_failures.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("Most failed CIS checks"));
        let mut rows: Vec<_> = view.cis_failures.iter().collect();
        rows.sort_by(|a, b| b.nodes.cmp(&a.nodes).then_with(|| a.id.cmp(&b.id)));
        let mut t = table(["CHECK", "TITLE", "NODES"]);
        for c in rows.iter().take(TOP) {
            t.add_row(vec![c.id.clone(), c.title.clone(), c.nodes.to_string()]);
        }
        let _ = writeln!(out, "{t}");
        more(&mut out, rows.len());
    }

    let mut notes = String::new();
    for m in &view.missing {
        let _ = writeln!(
            notes,
            "{} {}: {} ({})",
            p.tone(Tone::Warn, "missing"),
            m.node,
            tools(&m.tools),
            m.reason
        );
    }
    for st in &view.stale {
        let _ = writeln!(
            notes,
            "{} {} {}: last success {} ago",
            p.tone(Tone::Warn, "stale"),
            st.node,
            st.tool.name(),
            humantime::format_duration(std::time::Duration::from_secs(
                std::time::Duration::try_from_secs_f64(st.age_seconds.max(0.0))
                    .unwrap_or_default()
                    .as_secs()
                    / 60
                    * 60
            ))
        );
    }
    for a in &view.agents {
        if a.converged == Some(false) || a.service_active == Some(false) {
            let _ = writeln!(
                notes,
                "{} {} {}{}: {}",
                p.tone(Tone::Warn, "agent"),
                a.node,
                a.agent,
                a.version
                    .as_ref()
                    .map(|v| format!(" {v}"))
                    .unwrap_or_default(),
                if a.service_active == Some(false) {
                    "service not active"
                } else {
                    "not converged"
                }
            );
        }
    }
    for w in &view.warnings {
        let _ = writeln!(notes, "{} {w}", p.tone(Tone::Warn, "warning:"));
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    out
}

fn cis_fail(n: &NodeRow) -> u64 {
    n.cis.get("FAIL").copied().unwrap_or(0)
}

fn fim_total(n: &NodeRow) -> u64 {
    n.fim.values().copied().fold(0, u64::saturating_add)
}

/// Sort key: critical, high, CIS failures, FIM changes, stale or missing.
fn badness(n: &NodeRow) -> (u64, u64, u64, u64, usize) {
    (
        n.vulnerabilities.0[0],
        n.vulnerabilities.0[1],
        cis_fail(n),
        fim_total(n),
        n.stale_tools.len() + n.missing_tools.len(),
    )
}

fn tools(list: &[crate::model::Tool]) -> String {
    list.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
}

fn bad_if(n: u64, p: &Painter) -> String {
    if n == 0 {
        "0".into()
    } else {
        p.tone(Tone::Bad, n)
    }
}

fn warn_if(n: usize, p: &Painter) -> String {
    if n == 0 {
        "0".into()
    } else {
        p.tone(Tone::Warn, n)
    }
}

fn more(out: &mut String, total: usize) {
    if total > TOP {
        let _ = writeln!(out, "… {} more in the JSON report", total - TOP);
    }
}
