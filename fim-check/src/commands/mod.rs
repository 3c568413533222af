//! The subcommands, one module each (`init`, `check`, `update`, `show`),
//! and what they share: gathering the run's inputs (`setup`), opening,
//! verifying and writing baselines (`stored`), and emitting the report,
//! metrics and exit code (`finish`, here).
//!
//! A long-running caller (the watcher) uses the same pieces: see
//! `setup::setup`, `stored::open_for_comparison`, `stored::load_baseline`,
//! `check::compare_host` and `crate::judge`.

pub(crate) mod check;
pub(crate) mod init;
pub(crate) mod setup;
pub(crate) mod show;
pub(crate) mod stored;
pub(crate) mod update;
pub(crate) mod watch;

use crate::cli::{Cli, Command, FailOn, ScanArgs};
use crate::policy::DEFAULT_POLICY;
use crate::report::ScanReport;
use crate::{TOOL, VERSION};
use anyhow::{Context, Result};
use nodeguard_common::exit::{FINDINGS, SUCCESS};
use nodeguard_common::report::emit;
use setup::Setup;
use std::io::Write;

/// Runs one command; on failure the metrics file (if any) records a failed
/// run and keeps the previous run's series.
// The signature is the workspace's shared `run` contract (common's to change).
#[allow(clippy::needless_pass_by_value)]
pub fn run(cli: Cli) -> Result<u8> {
    let metrics_file = match &cli.command {
        Command::Init(a) => a.scan.common.metrics_file.clone(),
        Command::Check(a) | Command::Update(a) => a.common.metrics_file.clone(),
        Command::Watch(a) => a.scan.common.metrics_file.clone(),
        Command::Show(_) | Command::DefaultConfig => None,
    };
    let result = dispatch(&cli, &mut std::io::stdout().lock());
    if let (Err(_), Some(m)) = (&result, metrics_file) {
        let empty = nodeguard_common::metrics::Metrics::new(TOOL);
        if let Err(e) = nodeguard_common::metrics::write_run_metrics(&m, &empty, VERSION, false) {
            log::warn!("cannot write --metrics-file {}: {e:#}", m.display());
        }
    }
    result
}

fn dispatch(cli: &Cli, out: &mut dyn Write) -> Result<u8> {
    match &cli.command {
        Command::Init(a) => init::init(a, out),
        Command::Check(a) => check::check(a, out),
        Command::Update(a) => update::update(a, out),
        Command::Show(a) => show::show(a, out),
        Command::Watch(a) => watch::watch(a, out),
        Command::DefaultConfig => {
            out.write_all(DEFAULT_POLICY.as_bytes())?;
            Ok(SUCCESS)
        }
    }
}

/// Prints the report, writes metrics, and picks the exit code.
pub(crate) fn finish(
    s: &Setup,
    a: &ScanArgs,
    report: &ScanReport,
    out: &mut dyn Write,
) -> Result<u8> {
    emit(out, &s.ctx, report, a.common.format, a.common.pretty)
        .context("cannot write the report to stdout")?;
    if let Some(m) = &a.common.metrics_file {
        nodeguard_common::metrics::write_run_metrics(m, &report.metrics(), VERSION, true)
            .with_context(|| format!("cannot write --metrics-file {}", m.display()))?;
    }
    Ok(if fails(a.fail_on, report) {
        FINDINGS
    } else {
        SUCCESS
    })
}

/// Whether `--fail-on` asks for exit 1 given this report.
pub(crate) fn fails(fail_on: FailOn, report: &ScanReport) -> bool {
    let sum = &report.summary;
    let changes = sum.added + sum.removed + sum.changed > 0;
    let errors = sum.errors > 0;
    match fail_on {
        FailOn::None => false,
        FailOn::Changes => changes,
        FailOn::Errors => errors,
        FailOn::Any => changes || errors,
    }
}
