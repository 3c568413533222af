//! The HTML page in a real browser: headless Chromium renders it, its
//! script sorts a table, and a screenshot is produced (CI keeps it in the
//! test's directory when the test fails; `NODEGUARD_SCREENSHOT_DIR` keeps a
//! copy for a person to look at).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{fixtures, require, NOW};
use crate::harness::{run, tool, RunResult, TestDir};

/// Chromium's flags for this machine: no sandbox (root), no GPU, and no
/// background networking (there is no network; without these flags it keeps
/// trying and failing to reach Google's hosts).
fn chromium(binary: &Path, profile: &Path) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg("90").arg(binary).args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

fn page(dir: &TestDir) -> PathBuf {
    let html = dir.join("cluster-report.html");
    let logs = fixtures().join("logs");
    let expect = fixtures().join("expected-nodes.txt");
    run(tool("cluster-report").args([
        logs.to_str().unwrap(),
        "--now",
        NOW,
        "--expect-nodes",
        expect.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]))
    .assert_code(0);
    html
}

/// The rows of table `id` in a dumped DOM: each row's cell texts.
fn rows(dom: &str, id: &str) -> Vec<Vec<String>> {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id}"));
    let table = &dom[start..start + dom[start..].find("</table>").unwrap()];
    let body = &table[table.find("<tbody>").unwrap()..];
    body.split("<tr")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let text = &cell[cell.find('>').unwrap() + 1..cell.find("</td>").unwrap()];
                    strip_tags(text)
                })
                .collect()
        })
        .collect()
}

/// How many header cells table `id` has.
fn header_count(dom: &str, id: &str) -> usize {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id}"));
    let head = &dom[start..start + dom[start..].find("</thead>").unwrap()];
    head.matches("<th ").count() + head.matches("<th>").count()
}

fn strip_tags(text: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn dump_dom(binary: &Path, dir: &TestDir, url: &str) -> RunResult {
    let result = run(chromium(binary, &dir.join("profile-dom"))
        .arg("--dump-dom")
        .arg(url));
    result.assert_code(0);
    result
}

#[test]
fn page_renders_sorts_and_screenshots_in_chromium() {
    let Some(binary) = require("chromium", "browser test of the HTML report") else {
        return;
    };
    let dir = TestDir::new("cluster-report-browser");
    let html = page(&dir);
    let url = format!("file://{}", html.display());

    // As served: rows in the report's order, every section present, every
    // row as wide as its table's header.
    let dom = dump_dom(&binary, &dir, &url).stdout;
    for table in [
        "nodes-table",
        "images-table",
        "cis-table",
        "fim-table",
        "agents-table",
        "stale-table",
        "missing-table",
    ] {
        let headers = header_count(&dom, table);
        for row in rows(&dom, table) {
            assert!(
                row.len() == headers || row.len() == 1,
                "{table}: {} cells under {headers} headers: {row:?}",
                row.len()
            );
        }
    }
    let nodes = rows(&dom, "nodes-table");
    let names: Vec<&str> = nodes.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["node-a", "node-b", "node-c"]);
    assert_eq!(nodes[0][2], "2", "node-a's critical count: {:?}", nodes[0]);
    let images = rows(&dom, "images-table");
    assert_eq!(images[0][0], "docker.io/library/nginx:1.25.3");
    assert_eq!(images[0][1], "2");
    assert_eq!(
        images[0][3], "2",
        "critical count under its header: {:?}",
        images[0]
    );
    assert_eq!(rows(&dom, "cis-table")[0][0], "4.2.1");
    assert_eq!(rows(&dom, "missing-table").len(), 2);
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped path shown as text"
    );

    // The script ran: a sort link orders node-c (no criticals) first and
    // marks the header.
    let sorted = dump_dom(&binary, &dir, &format!("{url}#sort=nodes-table:2:asc")).stdout;
    let names: Vec<String> = rows(&sorted, "nodes-table")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(names[0], "node-c", "{names:?}");
    assert!(sorted.contains("aria-sort=\"ascending\""));
    let by_name_desc = dump_dom(&binary, &dir, &format!("{url}#sort=nodes-table:0:desc")).stdout;
    let names: Vec<String> = rows(&by_name_desc, "nodes-table")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(names, ["node-c", "node-b", "node-a"]);

    // A screenshot a person can look at.
    let png = dir.join("cluster-report.png");
    run(chromium(&binary, &dir.join("profile-shot"))
        .arg("--window-size=1400,1800")
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url))
    .assert_code(0);
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // A blank page compresses to a few KB; this one has tables and bars.
    assert!(
        bytes.len() > 30_000,
        "screenshot suspiciously small: {} bytes",
        bytes.len()
    );
    if let Some(keep) = std::env::var_os("NODEGUARD_SCREENSHOT_DIR") {
        std::fs::copy(&png, Path::new(&keep).join("cluster-report.png")).unwrap();
    }
}
