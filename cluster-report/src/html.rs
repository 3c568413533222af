//! `--html`: the report as one self-contained static page.
//!
//! No external assets (no CDN, fonts or images): the page must open from a
//! PVC, an air-gapped laptop or an email attachment. Tables sort by a click
//! on their headers (a few lines of inline script; the page is fully
//! readable without it), and severity bars are plain CSS. Every string from
//! the input (node names, image names, paths) is escaped: a hostile path on
//! one node must not inject script into the page an operator opens.

use std::fmt::Write as _;

use crate::model::{Severities, SEVERITIES};
use crate::view::ClusterView;

/// At most this many changed paths per node are listed on the page (the
/// JSON report has them all).
const MAX_PATHS_SHOWN: usize = 25;
/// At most this many node names per CIS check are listed on the page.
const MAX_NODE_NAMES_SHOWN: usize = 12;

/// Renders the page. `generated_at` is an RFC 3339 time.
pub fn render(view: &ClusterView, generated_at: &str) -> String {
    let mut page = String::with_capacity(64 * 1024 + view.nodes.len() * 600);
    page.push_str(HEAD);
    let s = &view.summary;
    let _ = writeln!(
        page,
        "<header><h1>nodeguard cluster report</h1><p class=\"meta\">Generated {} from {} ({}). A tool is stale when its last success is older than {}.</p></header>",
        esc(generated_at),
        esc(view.source.kind),
        esc(&view.source.inputs.join(", ")),
        esc(&duration_text(view.stale_after_seconds)),
    );

    page.push_str("<section class=\"cards\">\n");
    card(
        &mut page,
        "Nodes reporting",
        s.nodes,
        &format!("of {} expected", s.nodes_expected),
        false,
    );
    card(
        &mut page,
        "Nodes missing",
        s.nodes_missing,
        "sent nothing",
        s.nodes_missing > 0,
    );
    card(
        &mut page,
        "Nodes stale",
        s.nodes_stale,
        "a tool has not succeeded recently",
        s.nodes_stale > 0,
    );
    card(
        &mut page,
        "Critical vulnerabilities",
        s.vulnerabilities.critical(),
        &format!("on {} nodes", s.nodes_with_critical),
        s.vulnerabilities.critical() > 0,
    );
    card(
        &mut page,
        "Failing CIS checks",
        s.cis_failed_checks,
        &format!("on {} nodes", s.nodes_with_cis_failures),
        s.cis_failed_checks > 0,
    );
    card(
        &mut page,
        "FIM changes",
        s.fim_changes,
        &format!("on {} nodes", s.nodes_with_fim_changes),
        s.fim_changes > 0,
    );
    card(
        &mut page,
        "Agents not converged",
        s.agents_not_converged,
        &format!("{} inactive", s.agents_inactive),
        s.agents_not_converged > 0 || s.agents_inactive > 0,
    );
    if s.nodes_with_clock_skew > 0 {
        card(
            &mut page,
            "Nodes with clock skew",
            s.nodes_with_clock_skew,
            "sent runs dated in the future (ignored where a plausible run exists)",
            true,
        );
    }
    page.push_str("</section>\n");

    page.push_str("<section><h2>Vulnerabilities by severity</h2>");
    let total = s.vulnerabilities.total();
    bar(&mut page, &s.vulnerabilities, total, true);
    page.push_str("</section>\n");

    nodes_table(&mut page, view);
    images_table(&mut page, view);
    cis_table(&mut page, view);
    fim_table(&mut page, view);
    agents_table(&mut page, view);
    stale_and_missing(&mut page, view);

    if !view.warnings.is_empty() {
        page.push_str("<section id=\"warnings\"><h2>Input warnings</h2><ul>");
        for warning in &view.warnings {
            let _ = write!(page, "<li>{}</li>", esc(warning));
        }
        page.push_str("</ul></section>\n");
    }
    page.push_str(SCRIPT);
    page.push_str("</body></html>\n");
    page
}

fn card(page: &mut String, title: &str, value: impl std::fmt::Display, detail: &str, alert: bool) {
    let class = if alert { "card alert" } else { "card" };
    let _ = writeln!(
        page,
        "<div class=\"{class}\"><div class=\"label\">{}</div><div class=\"value\">{value}</div><div class=\"detail\">{}</div></div>",
        esc(title),
        esc(detail)
    );
}

/// A stacked severity bar; its length is `sev.total() / scale` of the cell.
fn bar(page: &mut String, sev: &Severities, scale: u64, legend: bool) {
    let _ = write!(
        page,
        "<div class=\"bar\" title=\"{}\">",
        esc(&severity_title(sev))
    );
    if scale > 0 {
        for (index, count) in sev.0.iter().enumerate() {
            if *count > 0 {
                let width = *count as f64 * 100.0 / scale as f64;
                let _ = write!(
                    page,
                    "<span class=\"sev s{index}\" style=\"width:{width:.2}%\"></span>"
                );
            }
        }
    }
    page.push_str("</div>");
    if legend {
        page.push_str("<p class=\"legend\">");
        for (index, (name, count)) in SEVERITIES.iter().zip(sev.0).enumerate() {
            let _ = write!(
                page,
                "<span><i class=\"sev s{index}\"></i>{name} {count}</span> "
            );
        }
        page.push_str("</p>");
    }
}

fn severity_title(sev: &Severities) -> String {
    SEVERITIES
        .iter()
        .zip(sev.0)
        .map(|(name, count)| format!("{name} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Opens a sortable table with the given headers (`#` prefix = numeric).
fn table_head(page: &mut String, id: &str, title: &str, note: &str, headers: &[&str]) {
    let _ = write!(page, "<section id=\"{id}\"><h2>{}</h2>", esc(title));
    if !note.is_empty() {
        let _ = write!(page, "<p class=\"meta\">{}</p>", esc(note));
    }
    let _ = write!(
        page,
        "<table class=\"sortable\" id=\"{id}-table\"><thead><tr>"
    );
    for header in headers {
        let (numeric, text) = header
            .strip_prefix('#')
            .map_or((false, *header), |t| (true, t));
        let kind = if numeric { "num" } else { "text" };
        let _ = write!(
            page,
            "<th data-type=\"{kind}\" tabindex=\"0\">{}</th>",
            esc(text)
        );
    }
    page.push_str("</tr></thead><tbody>\n");
}

fn table_end(page: &mut String, rows: usize) {
    if rows == 0 {
        page.push_str("<tr class=\"empty\"><td colspan=\"99\">None.</td></tr>");
    }
    page.push_str("</tbody></table></section>\n");
}

fn num(page: &mut String, value: impl std::fmt::Display) {
    let _ = write!(page, "<td class=\"n\">{value}</td>");
}

fn text(page: &mut String, value: &str) {
    let _ = write!(page, "<td>{}</td>", esc(value));
}

fn nodes_table(page: &mut String, view: &ClusterView) {
    table_head(
        page,
        "nodes",
        "Nodes",
        "",
        &[
            "Node",
            "OS",
            "#Critical",
            "#High",
            "#Medium",
            "#Low",
            "Severity",
            "#Images",
            "#CIS fail",
            "#FIM changes",
            "Stale tools",
            "Missing tools",
        ],
    );
    let scale = view
        .nodes
        .iter()
        .map(|n| n.vulnerabilities.total())
        .max()
        .unwrap_or(0);
    for node in &view.nodes {
        let class = if !node.stale_tools.is_empty() || !node.missing_tools.is_empty() {
            " class=\"warn\""
        } else {
            ""
        };
        let _ = write!(page, "<tr{class}>");
        text(page, &node.node);
        text(page, node.os.as_deref().unwrap_or(""));
        for count in node.vulnerabilities.0.iter().take(4) {
            num(page, count);
        }
        let _ = write!(page, "<td data-v=\"{}\">", node.vulnerabilities.total());
        bar(page, &node.vulnerabilities, scale, false);
        page.push_str("</td>");
        num(page, node.images);
        num(page, node.cis.get("FAIL").copied().unwrap_or(0));
        num(page, node.fim.values().sum::<u64>());
        text(page, &names(&node.stale_tools));
        text(page, &names(&node.missing_tools));
        page.push_str("</tr>\n");
    }
    table_end(page, view.nodes.len());
}

fn names(tools: &[crate::model::Tool]) -> String {
    tools
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn images_table(page: &mut String, view: &ClusterView) {
    let note = if view.images.len() < view.images_total {
        format!(
            "The {} worst of {} images.",
            view.images.len(),
            view.images_total
        )
    } else {
        String::new()
    };
    table_head(
        page,
        "images",
        "Worst images",
        &note,
        &[
            "Image",
            "#Nodes",
            "#Not scanned on",
            "#Critical",
            "#High",
            "#Medium",
            "#Low",
            "Severity",
            "Digest",
        ],
    );
    let scale = view
        .images
        .iter()
        .map(|i| i.vulnerabilities.total())
        .max()
        .unwrap_or(0);
    for image in &view.images {
        page.push_str("<tr>");
        text(page, &image.image);
        num(page, image.nodes);
        num(page, image.unscanned_nodes);
        for count in image.vulnerabilities.0.iter().take(4) {
            num(page, count);
        }
        let _ = write!(page, "<td data-v=\"{}\">", image.vulnerabilities.total());
        bar(page, &image.vulnerabilities, scale, false);
        page.push_str("</td>");
        let _ = write!(page, "<td class=\"mono\">{}</td>", esc(&image.digest));
        page.push_str("</tr>\n");
    }
    table_end(page, view.images.len());
}

fn cis_table(page: &mut String, view: &ClusterView) {
    table_head(
        page,
        "cis",
        "Failing CIS checks",
        "",
        &["Check", "Title", "#Nodes", "Nodes"],
    );
    for check in &view.cis_failures {
        page.push_str("<tr>");
        text(page, &check.id);
        text(page, &check.title);
        num(page, check.nodes);
        text(page, &shortened(&check.node_names, MAX_NODE_NAMES_SHOWN));
        page.push_str("</tr>\n");
    }
    table_end(page, view.cis_failures.len());
}

fn shortened(items: &[String], max: usize) -> String {
    let mut text = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > max {
        let _ = write!(text, " … and {} more", items.len() - max);
    }
    text
}

fn fim_table(page: &mut String, view: &ClusterView) {
    table_head(
        page,
        "fim",
        "File integrity changes",
        "",
        &[
            "Node", "#Added", "#Removed", "#Changed", "Baseline", "Paths",
        ],
    );
    for row in &view.fim_changes {
        page.push_str("<tr>");
        text(page, &row.node);
        num(page, row.added);
        num(page, row.removed);
        num(page, row.changed);
        text(
            page,
            match row.baseline_authenticated {
                Some(true) => "authenticated",
                Some(false) => "NOT authenticated",
                None => "",
            },
        );
        let paths: Vec<String> = row
            .changes
            .iter()
            .map(|c| format!("{} {}", c.kind, c.path))
            .collect();
        let _ = write!(
            page,
            "<td class=\"mono\">{}</td>",
            esc(&shortened(&paths, MAX_PATHS_SHOWN))
        );
        page.push_str("</tr>\n");
    }
    table_end(page, view.fim_changes.len());
}

fn yes_no(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "",
    }
}

fn agents_table(page: &mut String, view: &ClusterView) {
    table_head(
        page,
        "agents",
        "Security agents",
        "",
        &["Node", "Agent", "Version", "Converged", "Active"],
    );
    for agent in &view.agents {
        let bad = agent.converged == Some(false) || agent.service_active == Some(false);
        page.push_str(if bad { "<tr class=\"warn\">" } else { "<tr>" });
        text(page, &agent.node);
        text(page, &agent.agent);
        text(page, agent.version.as_deref().unwrap_or(""));
        text(page, yes_no(agent.converged));
        text(page, yes_no(agent.service_active));
        page.push_str("</tr>\n");
    }
    table_end(page, view.agents.len());
}

fn stale_and_missing(page: &mut String, view: &ClusterView) {
    table_head(
        page,
        "stale",
        "Stale results",
        "",
        &["Node", "Tool", "Last success", "#Age (s)"],
    );
    for row in &view.stale {
        page.push_str("<tr>");
        text(page, &row.node);
        text(page, row.tool.name());
        text(page, &time_text(row.last_success));
        num(page, row.age_seconds.round());
        page.push_str("</tr>\n");
    }
    table_end(page, view.stale.len());
    table_head(
        page,
        "missing",
        "Missing results",
        "",
        &["Node", "Tools", "Reason"],
    );
    for row in &view.missing {
        page.push_str("<tr>");
        text(page, &row.node);
        text(page, &names(&row.tools));
        text(page, row.reason);
        page.push_str("</tr>\n");
    }
    table_end(page, view.missing.len());
}

/// Unix seconds as RFC 3339 (UTC), or the number when out of range.
pub fn time_text(seconds: f64) -> String {
    if (0.0..1e11).contains(&seconds) {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(seconds);
        humantime::format_rfc3339_seconds(time).to_string()
    } else {
        format!("{seconds}")
    }
}

fn duration_text(seconds: f64) -> String {
    if seconds.is_finite() && seconds >= 0.0 {
        // Finite and non-negative: `try_from_secs_f64` only fails past
        // `Duration::MAX`, shown as the number below.
        match std::time::Duration::try_from_secs_f64(seconds.round()) {
            Ok(duration) => humantime::format_duration(duration).to_string(),
            Err(_) => format!("{seconds} s"),
        }
    } else {
        format!("{seconds} s")
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>nodeguard cluster report</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 1.5rem 2rem;color:#1d2330;background:#f6f7f9}
h1{font-size:1.5rem;margin:1rem 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .4rem}
.meta{color:#5b6475;margin:.2rem 0 .6rem}
td:first-child{white-space:nowrap}
.cards{display:flex;flex-wrap:wrap;gap:.6rem}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.5rem .8rem;min-width:9.5rem}
.card.alert{border-color:#d33a2c;box-shadow:inset 4px 0 #d33a2c}
.card .label{color:#5b6475;font-size:.8rem}.card .value{font-size:1.6rem;font-weight:600}.card .detail{color:#5b6475;font-size:.75rem}
table{border-collapse:collapse;background:#fff;border:1px solid #dde1e8;width:100%}
th,td{padding:.25rem .5rem;border-bottom:1px solid #eceef2;text-align:left;vertical-align:top}
th{background:#eef0f4;cursor:pointer;user-select:none;white-space:nowrap;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \25B2"}th[aria-sort=descending]::after{content:" \25BC"}
td.n{text-align:right;font-variant-numeric:tabular-nums}.mono{font-family:ui-monospace,monospace;font-size:.8rem;word-break:break-all}
tr.warn td:first-child{box-shadow:inset 3px 0 #e69a17}tr.empty td{color:#5b6475;font-style:italic}
.bar{display:flex;height:.9rem;min-width:8rem;background:#eceef2;border-radius:3px;overflow:hidden}
.sev{display:inline-block;height:100%}i.sev{width:.8rem;height:.8rem;margin-right:.25rem;vertical-align:-1px;border-radius:2px}
.s0{background:#b3261e}.s1{background:#e8710a}.s2{background:#f2c200}.s3{background:#4a86c5}.s4{background:#9aa0aa}
.legend span{margin-right:1rem}
</style></head><body>
"#;

/// Sorting: a click on a header sorts by that column (numbers first
/// descending, text ascending; a second click reverses). The sort is kept
/// in the URL (`#sort=<table>:<column>:<asc|desc>`) so a sorted view can be
/// shared, and a page opened with such a link sorts itself.
const SCRIPT: &str = r#"<script>
(function(){
  function key(cell, numeric){
    var v = cell.getAttribute('data-v');
    if (v === null) v = cell.textContent;
    if (numeric) { var n = parseFloat(v); return isNaN(n) ? -Infinity : n; }
    return v.toLowerCase();
  }
  function sort(th, dir){
    var table = th.closest('table'), body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute('data-type') === 'num';
    var current = th.getAttribute('aria-sort');
    if (!dir) {
      if (current === 'ascending') dir = 'descending';
      else if (current === 'descending') dir = 'ascending';
      else dir = numeric ? 'descending' : 'ascending';
    }
    var rows = Array.prototype.filter.call(body.rows, function(r){ return !r.classList.contains('empty'); });
    rows.sort(function(a, b){
      var x = key(a.cells[index], numeric), y = key(b.cells[index], numeric);
      var c = x < y ? -1 : x > y ? 1 : 0;
      return dir === 'ascending' ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
    Array.prototype.forEach.call(th.parentNode.children, function(h){ h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir);
    return table.id + ':' + index + ':' + (dir === 'ascending' ? 'asc' : 'desc');
  }
  document.querySelectorAll('table.sortable th').forEach(function(th){
    function go(){ var state = sort(th); if (history.replaceState) history.replaceState(null, '', '#sort=' + state); }
    th.addEventListener('click', go);
    th.addEventListener('keydown', function(e){ if (e.key === 'Enter') go(); });
  });
  var m = /^#sort=([A-Za-z0-9_-]+):([0-9]+):(asc|desc)$/.exec(location.hash);
  var table = m && document.getElementById(m[1]);
  var th = table && table.tHead.rows[0].cells[Number(m[2])];
  if (th) sort(th, m[3] === 'asc' ? 'ascending' : 'descending');
})();
</script>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            esc(r#"<script>alert('x')</script>&"#),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"
        );
        assert_eq!(esc("\"q\""), "&quot;q&quot;");
    }

    #[test]
    fn bar_widths_follow_counts() {
        let mut page = String::new();
        bar(&mut page, &Severities([1, 3, 0, 0, 0]), 8, false);
        assert!(page.contains("s0\" style=\"width:12.50%\""), "{page}");
        assert!(page.contains("s1\" style=\"width:37.50%\""), "{page}");
        assert!(!page.contains("s2"), "{page}");
    }

    #[test]
    fn times_render_in_utc() {
        assert_eq!(time_text(1_795_482_000.0), "2026-11-24T01:00:00Z");
    }
}
