//! `--format text`: the outcome, the host and package, then the steps in a
//! table (status, time, what was done or why it failed).

use std::fmt::Write as _;

use nodeguard_common::report::RunContext;
use nodeguard_common::text::{scalar, table, Painter, Tone};
use serde::Serialize;

use crate::report::AgentReport;

/// The report as text (after the common header).
pub fn render(report: &AgentReport, _ctx: &RunContext, p: &Painter) -> String {
    let mut out = String::new();
    let status = word(&report.status);
    let tone = match status.as_str() {
        "planned" | "converged" | "changed" | "healthy" | "removed" | "absent" => Tone::Good,
        "failed" | "unhealthy" => Tone::Bad,
        _ => Tone::Warn,
    };
    let _ = writeln!(
        out,
        "{} {} · {}{}",
        report.command,
        p.bold(&report.agent),
        p.tone(tone, &status),
        if report.changed {
            " · the host was changed"
        } else {
            ""
        }
    );
    if let Some(reason) = &report.reason {
        let _ = writeln!(out, "{} {reason}", p.bold("Reason:"));
    }
    // Keys added to the report later are shown when present.
    let value = serde_json::to_value(report).unwrap_or_default();
    if let Some(items) = value.get("not_configured").and_then(|v| v.as_array()) {
        for item in items {
            let what = item.get("what").map(scalar).unwrap_or_default();
            let set: Vec<String> = item
                .get("set")
                .and_then(|s| s.as_array())
                .map(|s| s.iter().map(scalar).collect())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{} {what}; set {}",
                p.tone(Tone::Warn, "not configured:"),
                set.join(", ")
            );
        }
    }
    let flags: Vec<String> = ["installed", "active", "activated", "registered"]
        .iter()
        .filter_map(|k| {
            value
                .get(*k)
                .and_then(serde_json::Value::as_bool)
                .map(|b| format!("{k} {}", if b { "yes" } else { "no" }))
        })
        .collect();
    if !flags.is_empty() {
        let _ = writeln!(out, "{} {}", p.bold("State:"), flags.join(", "));
    }

    if let Some(h) = &report.host {
        let name = h
            .pretty_name
            .clone()
            .unwrap_or_else(|| format!("{} {}", h.os_id, h.version_id.as_deref().unwrap_or("")));
        let _ = writeln!(
            out,
            "{} {name} ({}, {}, init {}{}{})",
            p.bold("Host:"),
            h.machine,
            h.package_manager.as_deref().unwrap_or("no package manager"),
            word(&h.init),
            if h.immutable { ", immutable" } else { "" },
            h.exec
                .as_ref()
                .map(|e| format!(", commands via {e}"))
                .unwrap_or_default()
        );
    }
    if let Some(pkg) = &report.package {
        let _ = writeln!(
            out,
            "{} {} {} ({} {}, via {}) from {}",
            p.bold("Package:"),
            pkg.name,
            pkg.version,
            word(&pkg.format),
            word(&pkg.arch),
            word(&pkg.installer),
            pkg.source
        );
    }
    if let Some(o) = &report.observed {
        let _ = writeln!(
            out,
            "{} installed {}{}, config {}, unit {} ({}, {}), {}{}",
            p.bold("Found:"),
            o.installed_version.as_deref().unwrap_or("no"),
            if o.package_broken { " (broken)" } else { "" },
            if o.config_digest.is_none() {
                "missing"
            } else if o.config_current {
                "current"
            } else {
                "differs"
            },
            o.unit.active_state,
            o.unit.unit_file_state,
            o.unit.load_state,
            if o.owned {
                "installed by nodeguard"
            } else {
                "not installed by nodeguard"
            },
            match o.activated {
                Some(true) => ", activated",
                Some(false) => ", activation failed",
                None => "",
            }
        );
    }

    if !report.steps.is_empty() {
        out.push('\n');
        let mut t = table(["STEP", "STATUS", "TIME", "DETAIL"]);
        for step in &report.steps {
            // By name, so a status added later still renders.
            let status = word(&step.status);
            let status = match status.as_str() {
                "changed" => p.tone(Tone::Good, status),
                "skipped" | "pending" => p.tone(Tone::Dim, status),
                "failed" => p.tone(Tone::Bad, status),
                _ => status,
            };
            let detail = step
                .error
                .as_deref()
                .map(|e| p.tone(Tone::Bad, e))
                .or_else(|| step.detail.clone())
                .unwrap_or_default();
            t.add_row(vec![
                step.name.clone(),
                status,
                format!("{} ms", step.duration_ms),
                detail,
            ]);
        }
        let _ = writeln!(out, "{t}");
    }
    out
}

/// A serde enum's name (`healthy`, `apt-get`, `deb`).
fn word<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}
