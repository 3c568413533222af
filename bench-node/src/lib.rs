//! `bench-node`: CIS Kubernetes Benchmark (v1.12) checks for one node.
//!
//! What it reads, all under `--host-root` (and `--proc-dir`):
//! - `/proc/<pid>/cmdline` of the kubelet, kube-proxy, kube-apiserver,
//!   kube-controller-manager, kube-scheduler and etcd (k3s and RKE2
//!   supervisors too), `/proc/<pid>/cgroup` for the kubelet's systemd unit,
//!   `/proc/<pid>/environ` of etcd for `ETCD_*`;
//! - the kubelet's `--config` file and `--config-dir` drop-ins, kube-proxy's
//!   `--config` (inside its own mount namespace), static pod manifests,
//!   kubeconfigs, CA files, unit files, PKI and CNI files (stat only);
//! - the kubelet binary's Go build info, for the Kubernetes version.
//!
//! It never runs a shell or another program. Checks are data
//! ([`definitions`]); each setting is resolved flag > config drop-ins >
//! config file > the component's default for its version ([`audit`]), and
//! the result says which source decided.
//!
//! Output: nodeguard's JSON envelope (`results[]`, `summary`), JSON Lines,
//! or kube-bench's own JSON shape (`--format kube-bench`). Exit codes: 0
//! report written, 1 a check reached `--fail-on`, 2 error (no report).

pub mod audit;
pub mod cli;
pub mod cmdline;
pub mod compare;
pub mod config;
pub mod definitions;
pub mod facts;
pub mod files;
pub mod layout;
pub mod mounts;
pub mod procs;
pub mod report;
pub mod text;
pub mod value;
pub mod version;

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::Result;
use nodeguard_common::exit;
use nodeguard_common::finish::{self, Finish};

use crate::audit::{Outcome, Reason, Status};
use crate::cli::{matches_any, Cli, FailOn, OutputFormat};
use crate::definitions::{Audit, Benchmark, Target};
use crate::facts::{Facts, GatherOptions};
use crate::report::{BenchReport, CheckResult, ComponentSummary, Summary};

/// The tool's name as it appears in reports and metrics.
pub const TOOL: &str = "bench-node";
/// The tool's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs the benchmark and writes the report to `out`; returns the exit code.
/// The metrics file is written before the report is printed, so a failure
/// to write it is an error with no report (exit 2).
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<u8> {
    let finish = Finish::new(TOOL, VERSION, cli.common.metrics_file.as_deref());
    finish.guard(|| run_inner(cli, out, &finish))
}

fn run_inner(cli: &Cli, out: &mut dyn Write, finish: &Finish<'_>) -> Result<u8> {
    let common = cli.common();
    let host = common.open_host_root()?;
    let ctx = common.run_context(TOOL, VERSION, &host);
    let bench = Benchmark::embedded()?;
    let explicit = explicit_targets(cli)?;
    let selected = select_checks(cli, &bench, &explicit)?;
    let opts = GatherOptions {
        proc_dir: cli
            .proc_dir
            .clone()
            .unwrap_or_else(|| host.path().join("proc")),
        kubernetes_version: cli.kubernetes_version.clone(),
    };
    let facts = Facts::gather(&host, &opts, &file_roles(&selected));
    let mut warnings = facts.warnings.clone();
    let targets = run_targets(explicit, &facts, &mut warnings);
    if let Some(note) = &facts.version_note {
        warnings.push(note.clone());
    }
    let results = evaluate(cli, &bench, &facts, &selected, &targets);
    let report = BenchReport {
        benchmark: bench.benchmark.clone(),
        kubernetes_version: facts.version.clone(),
        layout: facts.layout.name(),
        targets: targets.iter().map(|t| t.name()).collect(),
        components: component_summaries(&facts),
        warnings,
        summary: Summary::of(&results),
        results,
    };
    let rendered = render(cli, &ctx, &report, &bench)?;
    finish.publish(out, &rendered, &report.metrics(TOOL), true)?;
    Ok(exit_code(cli, &report))
}

/// `--targets`, parsed (empty: detect them on the node).
fn explicit_targets(cli: &Cli) -> Result<BTreeSet<Target>> {
    cli.targets
        .iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| Target::parse(t))
        .collect()
}

/// The checks `--check` and `--targets` select, with their target; a
/// `--check` that selects nothing is an error, not an all-clear report.
fn select_checks<'b>(
    cli: &Cli,
    bench: &'b Benchmark,
    explicit: &BTreeSet<Target>,
) -> Result<Vec<(&'b definitions::Check, Target)>> {
    let selected: Vec<(&definitions::Check, Target)> = bench
        .checks
        .iter()
        .filter_map(|c| {
            let target = bench.section(c.section_id())?.target;
            let wanted = cli.check.is_empty() || matches_any(&c.id, &cli.check);
            (wanted && (explicit.is_empty() || explicit.contains(&target))).then_some((c, target))
        })
        .collect();
    if !cli.check.is_empty() && selected.is_empty() {
        anyhow::bail!(
            "--check {} matches no check of {} for the selected targets",
            cli.check.join(","),
            bench.benchmark
        );
    }
    Ok(selected)
}

/// The file roles the selected permission and ownership checks need.
fn file_roles(selected: &[(&definitions::Check, Target)]) -> BTreeSet<definitions::FileRole> {
    selected
        .iter()
        .filter_map(|(c, _)| match &c.audit {
            Audit::FileMode { file, .. } | Audit::FileOwner { file, .. } => Some(*file),
            _ => None,
        })
        .collect()
}

/// The targets to run: `--targets`, else those detected on the node, else
/// the node checks (with a warning).
fn run_targets(
    explicit: BTreeSet<Target>,
    facts: &Facts,
    warnings: &mut Vec<String>,
) -> BTreeSet<Target> {
    if !explicit.is_empty() {
        return explicit;
    }
    if facts.detected_targets.is_empty() {
        warnings.push("no Kubernetes component found on this node; running the node checks".into());
        return BTreeSet::from([Target::Node]);
    }
    facts.detected_targets.clone()
}

/// Every selected check of the run's targets, judged (or skipped).
fn evaluate(
    cli: &Cli,
    bench: &Benchmark,
    facts: &Facts,
    selected: &[(&definitions::Check, Target)],
    targets: &BTreeSet<Target>,
) -> Vec<CheckResult> {
    selected
        .iter()
        .filter(|(_, t)| targets.contains(t))
        .map(|(check, target)| {
            let outcome = if matches_any(&check.id, &cli.skip) {
                skipped()
            } else {
                audit::evaluate(check, bench, facts)
            };
            CheckResult::new(check, *target, outcome)
        })
        .collect()
}

/// The report in the chosen format: kube-bench's own JSON, or nodeguard's.
fn render(
    cli: &Cli,
    ctx: &nodeguard_common::report::RunContext,
    report: &BenchReport,
    bench: &Benchmark,
) -> Result<Vec<u8>> {
    if cli.common.format != OutputFormat::KubeBench {
        return finish::render(ctx, report, cli.common().format, cli.common.pretty);
    }
    let doc = report::kube_bench(report, bench);
    let mut buf = if cli.common.pretty {
        serde_json::to_vec_pretty(&doc)?
    } else {
        serde_json::to_vec(&doc)?
    };
    buf.push(b'\n');
    Ok(buf)
}

/// 1 when a check reached `--fail-on`, else 0.
fn exit_code(cli: &Cli, report: &BenchReport) -> u8 {
    let fail_on = cli.fail_on.map(|f| match f {
        FailOn::Fail => Status::Fail,
        FailOn::Warn => Status::Warn,
    });
    if report.has_findings(fail_on) {
        exit::FINDINGS
    } else {
        exit::SUCCESS
    }
}

fn skipped() -> Outcome {
    Outcome {
        status: Status::Info,
        expected: String::new(),
        actual: String::new(),
        source: None,
        source_detail: None,
        reason: Some(Reason::Skipped),
        detail: Some("skipped with --skip".into()),
    }
}

fn component_summaries(facts: &Facts) -> Vec<ComponentSummary> {
    facts
        .components
        .iter()
        .map(|(c, f)| {
            let (config_files, config_error) = match &f.config {
                facts::ConfigState::Loaded(layers) => (layers.paths(), None),
                facts::ConfigState::Failed { paths, error } => (paths.clone(), Some(error.clone())),
                facts::ConfigState::NotUsed => (Vec::new(), None),
            };
            ComponentSummary {
                name: c.name(),
                pid: f.pid,
                command_line_source: f.argv_source.clone(),
                config_files,
                config_error,
            }
        })
        .collect()
}
