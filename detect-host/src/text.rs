//! `--format text`: one short block, what a person asks first about a node.

use std::fmt::Write as _;

use nodeguard_common::report::RunContext;
use nodeguard_common::text::{Painter, Tone};
use serde::Serialize;

use crate::report::HostFacts;

/// The report as text (after the common header).
pub fn render(facts: &HostFacts, _ctx: &RunContext, p: &Painter) -> String {
    let mut out = String::new();
    let os = &facts.os;
    let name = os
        .pretty_name
        .clone()
        .or_else(|| os.name.clone())
        .unwrap_or_else(|| os.id.clone());
    let mut os_line = format!("{name} (id {}, family {}", os.id, word(&os.family));
    if os.immutable {
        os_line.push_str(", immutable");
    }
    os_line.push(')');
    let mut rows: Vec<(&str, String)> = vec![("OS", os_line)];
    let pkg = &facts.package;
    rows.push((
        "Packages",
        format!(
            "{} via {}{}",
            word(&pkg.format),
            word(&pkg.manager),
            match (&pkg.manager_path, pkg.manager_present) {
                (Some(path), true) => format!(" ({path})"),
                (_, false) => " (not installed)".to_string(),
                (None, true) => String::new(),
            }
        ),
    ));
    let arch = &facts.arch;
    let mut arch_line = format!("{} ({})", arch.platform, arch.machine);
    if let Some(userland) = arch.userland.as_ref().filter(|u| **u != arch.platform) {
        arch_line.push_str(&format!(", {userland} userland"));
    }
    rows.push(("Arch", arch_line));
    rows.push(("Kernel", facts.kernel.release.clone()));
    rows.push(("Init", word(&facts.init)));
    let runtimes = if facts.runtime.sockets.is_empty() {
        "none found".to_string()
    } else {
        facts
            .runtime
            .sockets
            .iter()
            .map(|s| format!("{} ({})", s.runtime, s.path))
            .collect::<Vec<_>>()
            .join(", ")
    };
    rows.push(("Runtime", runtimes));
    let k = &facts.runtime.kubelet;
    rows.push((
        "Kubelet",
        if k.present {
            let mut where_ = k.binaries.clone();
            where_.extend(k.configs.iter().cloned());
            format!("present ({})", where_.join(", "))
        } else {
            "not found".to_string()
        },
    ));
    rows.push(("Host root", facts.host_root.clone()));
    for (label, value) in rows {
        let _ = writeln!(out, "{} {value}", p.bold(format!("{label:<10}")));
    }
    for warning in &facts.warnings {
        let _ = writeln!(out, "{} {warning}", p.tone(Tone::Warn, "warning:"));
    }
    out
}

/// A serde enum's name (`debian`, `apt`, `systemd`).
fn word<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}
