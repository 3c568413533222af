//! Black-box tests for `cluster-report`, the alert rules and the chart's
//! cluster-view templates.
//!
//! - `jsonl`: the JSON Lines lane on fixture logs in every wrapping the
//!   tools' output reaches us in (plain, `kubectl logs --prefix
//!   --timestamps`, CRI log files with split lines), bad input, and a
//!   multi-node round trip through the real tools;
//! - `rules`: `promtool check/test rules` on the shipped rules, and the
//!   chart's PrometheusRule rendered with Helm's engine equal to them;
//! - `prometheus_e2e`: the real `prometheus-node-exporter` and `prometheus`
//!   on loopback with the shipped rules: an alert fires and resolves, and
//!   `cluster-report --prometheus` reads the same data;
//! - `hostile`: wrapping counts, future dates, devices, pipes, endless lines;
//! - `browser`: the HTML page in headless Chromium, with a screenshot;
//! - `round_trip`: the real tools on several fixture hosts, their JSON
//!   Lines shipped three ways and read back with nothing lost.

mod browser;
mod hostile;
mod jsonl;
mod prometheus_e2e;
mod round_trip;
mod rules;

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::{self, run, tool};

/// "Now" for reproducible staleness in the fixture reports.
pub const NOW: &str = "2026-11-24T02:00:00Z";

/// `tests/fixtures/cluster-report`.
pub fn fixtures() -> PathBuf {
    harness::fixtures("cluster-report")
}

/// Runs `cluster-report` with `args`, expects exit 0, returns its JSON.
pub fn report(args: &[&str]) -> Value {
    let result = run(tool("cluster-report").args(args));
    result.assert_code(0);
    result.json()
}

/// `program` from PATH, or `None` with a loud skip message. In CI (`CI`
/// set) a missing program is a failure: the setup script installs it.
pub fn require(program: &str, why: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is missing in CI ({why}): tests/setup/cluster-report.sh must install it"
        );
        eprintln!(
            "SKIPPED: {program} not installed ({why}); tests/setup/cluster-report.sh installs it"
        );
    }
    found
}
