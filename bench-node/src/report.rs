//! The report: nodeguard's envelope body, JSON Lines records, kube-bench's
//! JSON shape, and metrics.

use std::collections::BTreeMap;

use nodeguard_common::metrics::{counts_with_zeros, Metrics};
use nodeguard_common::report::{Record, Report};
use serde::Serialize;

use crate::audit::{Outcome, Status};
use crate::definitions::{Benchmark, Check, Target};
use crate::version::KubeVersion;

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: String,
    pub title: String,
    /// The group, e.g. `4.2`.
    pub section: String,
    pub target: &'static str,
    pub scored: bool,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub remediation: String,
}

impl CheckResult {
    pub fn new(check: &Check, target: Target, outcome: Outcome) -> Self {
        CheckResult {
            id: check.id.clone(),
            title: check.title.clone(),
            section: check.group_id().to_string(),
            target: target.name(),
            scored: check.automated,
            outcome,
            remediation: check.remediation.clone(),
        }
    }

    pub fn status(&self) -> Status {
        self.outcome.status
    }
}

/// Counts per status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub pass: u64,
    pub fail: u64,
    pub warn: u64,
    pub info: u64,
    pub total: u64,
}

impl Summary {
    pub fn of<'a>(results: impl IntoIterator<Item = &'a CheckResult>) -> Summary {
        let mut s = Summary::default();
        for r in results {
            match r.status() {
                Status::Pass => s.pass += 1,
                Status::Fail => s.fail += 1,
                Status::Warn => s.warn += 1,
                Status::Info => s.info += 1,
            }
            s.total += 1;
        }
        s
    }
}

/// A component as found, for the report (no config contents).
#[derive(Debug, Clone, Serialize)]
pub struct ComponentSummary {
    pub name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub command_line_source: String,
    pub config_files: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
}

/// The body of bench-node's JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub benchmark: String,
    pub kubernetes_version: Option<KubeVersion>,
    pub layout: &'static str,
    /// Targets run (node, master, etcd).
    pub targets: Vec<&'static str>,
    pub components: Vec<ComponentSummary>,
    pub warnings: Vec<String>,
    pub results: Vec<CheckResult>,
    pub summary: Summary,
}

impl Report for BenchReport {
    const SCHEMA_VERSION: u32 = 1;

    fn text(
        &self,
        ctx: &nodeguard_common::report::RunContext,
        painter: &nodeguard_common::text::Painter,
    ) -> String {
        crate::text::render(self, ctx, painter)
    }

    fn jsonl_records(&self) -> Vec<Record> {
        let mut records: Vec<Record> = self
            .results
            .iter()
            .map(|r| Record::new("check", r))
            .collect();
        records.push(Record::new(
            "summary",
            &serde_json::json!({
                "benchmark": self.benchmark,
                "kubernetes_version": self.kubernetes_version.as_ref().map(|v| &v.git_version),
                "layout": self.layout,
                "targets": self.targets,
                "warnings": self.warnings,
                "summary": self.summary,
            }),
        ));
        records
    }
}

impl BenchReport {
    /// The exit decision for `--fail-on`: any result at or above the level
    /// (FAIL; WARN also counts FAIL).
    pub fn has_findings(&self, fail_on: Option<Status>) -> bool {
        match fail_on {
            None | Some(Status::Pass | Status::Info) => false,
            Some(Status::Fail) => self.summary.fail > 0,
            Some(Status::Warn) => self.summary.fail + self.summary.warn > 0,
        }
    }

    /// `nodeguard_bench_node_checks{status}` and
    /// `nodeguard_bench_node_check_failed{id}`.
    pub fn metrics(&self, tool: &str) -> Metrics {
        let mut m = Metrics::new(tool);
        let counts = counts_with_zeros(
            Status::ALL.iter().map(|s| s.as_str()),
            self.results.iter().map(|r| r.status().as_str()),
        );
        let family = m.gauge("checks", "CIS benchmark checks in the last run, by status.");
        for (status, n) in &counts {
            #[allow(clippy::cast_precision_loss)]
            family.sample(&[("status", status)], *n as f64);
        }
        let failed = m.gauge(
            "check_failed",
            "1 for each scored CIS check that failed in the last run.",
        );
        for r in self
            .results
            .iter()
            .filter(|r| r.scored && r.status() == Status::Fail)
        {
            failed.sample(&[("id", &r.id)], 1.0);
        }
        m
    }
}

// ------------------------------------------------------------ kube-bench JSON

/// kube-bench's `--json` document: `{"Controls": [...], "Totals": {...}}`.
#[derive(Debug, Serialize)]
pub struct KubeBenchDoc {
    #[serde(rename = "Controls")]
    pub controls: Vec<KbControls>,
    #[serde(rename = "Totals")]
    pub totals: KbTotals,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct KbTotals {
    pub total_pass: u64,
    pub total_fail: u64,
    pub total_warn: u64,
    pub total_info: u64,
}

impl KbTotals {
    fn add(&mut self, status: Status) {
        match status {
            Status::Pass => self.total_pass += 1,
            Status::Fail => self.total_fail += 1,
            Status::Warn => self.total_warn += 1,
            Status::Info => self.total_info += 1,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct KbControls {
    pub id: String,
    pub version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detected_version: String,
    pub text: String,
    pub node_type: &'static str,
    pub tests: Vec<KbGroup>,
    #[serde(flatten)]
    pub totals: KbTotals,
}

#[derive(Debug, Serialize)]
pub struct KbGroup {
    pub section: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub pass: u64,
    pub fail: u64,
    pub warn: u64,
    pub info: u64,
    pub desc: String,
    pub results: Vec<KbCheck>,
}

#[derive(Debug, Serialize)]
pub struct KbCheck {
    pub test_number: String,
    pub test_desc: String,
    pub audit: String,
    #[serde(rename = "AuditEnv")]
    pub audit_env: String,
    #[serde(rename = "AuditConfig")]
    pub audit_config: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub remediation: String,
    pub test_info: Vec<String>,
    pub status: Status,
    pub actual_value: String,
    pub scored: bool,
    #[serde(rename = "IsMultiple")]
    pub is_multiple: bool,
    pub expected_result: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Converts results into kube-bench's shape, sections in numeric order.
pub fn kube_bench(report: &BenchReport, bench: &Benchmark) -> KubeBenchDoc {
    let detected = report
        .kubernetes_version
        .as_ref()
        .map(|v| format!("{}.{}", v.major, v.minor))
        .unwrap_or_default();
    let mut by_section: BTreeMap<u32, KbControls> = BTreeMap::new();
    let mut totals = KbTotals::default();
    for section in &bench.sections {
        let results: Vec<&CheckResult> = report
            .results
            .iter()
            .filter(|r| r.id.split('.').next() == Some(section.id.as_str()))
            .collect();
        if results.is_empty() {
            continue;
        }
        let mut sec_totals = KbTotals::default();
        let mut groups = Vec::new();
        for group in &section.groups {
            let mut g = KbGroup {
                section: group.id.clone(),
                ty: String::new(),
                pass: 0,
                fail: 0,
                warn: 0,
                info: 0,
                desc: group.title.clone(),
                results: Vec::new(),
            };
            for r in results.iter().filter(|r| r.section == group.id) {
                match r.status() {
                    Status::Pass => g.pass += 1,
                    Status::Fail => g.fail += 1,
                    Status::Warn => g.warn += 1,
                    Status::Info => g.info += 1,
                }
                sec_totals.add(r.status());
                totals.add(r.status());
                g.results.push(kb_check(r));
            }
            if !g.results.is_empty() {
                groups.push(g);
            }
        }
        by_section.insert(
            section.id.parse().unwrap_or(u32::MAX),
            KbControls {
                id: section.id.clone(),
                version: bench.benchmark.clone(),
                detected_version: detected.clone(),
                text: section.title.clone(),
                node_type: section.target.name(),
                tests: groups,
                totals: sec_totals,
            },
        );
    }
    KubeBenchDoc {
        controls: by_section.into_values().collect(),
        totals,
    }
}

fn kb_check(r: &CheckResult) -> KbCheck {
    let suffix = if r.scored { "(Automated)" } else { "(Manual)" };
    let o = &r.outcome;
    let reason = match (&o.reason, &o.detail) {
        (Some(_), Some(d)) => d.clone(),
        _ => String::new(),
    };
    let audit = match &o.source_detail {
        Some(d) => format!("bench-node typed audit ({d})"),
        None => "bench-node typed audit".to_string(),
    };
    KbCheck {
        test_number: r.id.clone(),
        test_desc: format!("{} {suffix}", r.title),
        audit,
        audit_env: String::new(),
        audit_config: String::new(),
        ty: if matches!(o.reason, Some(crate::audit::Reason::Manual)) {
            "manual".into()
        } else {
            String::new()
        },
        remediation: r.remediation.clone(),
        test_info: vec![r.remediation.clone()],
        status: o.status,
        actual_value: o.actual.clone(),
        scored: r.scored,
        is_multiple: false,
        expected_result: o.expected.clone(),
        reason,
    }
}
