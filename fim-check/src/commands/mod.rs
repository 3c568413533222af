//! The subcommands, one module each (`init`, `check`, `update`, `show`),
//! and what they share: gathering the run's inputs (`setup`), opening,
//! verifying and writing baselines (`stored`), and emitting the report,
//! metrics and exit code (`finish`, here).
//!
//! A long-running caller (the watcher) uses the same pieces: see
//! `setup::setup`, `stored::open_for_comparison`,
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
use anyhow::Result;
use nodeguard_common::exit::{FINDINGS, SUCCESS};
use nodeguard_common::finish::{render, Finish};
use setup::Setup;
use std::io::Write;

/// Runs one command, printing its report to `out`; on failure the metrics
/// file (if any) records a failed run and keeps the previous run's series.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<u8> {
    let metrics_file = match &cli.command {
        Command::Init(a) => a.scan.common.metrics_file.as_deref(),
        Command::Check(a) | Command::Update(a) => a.common.metrics_file.as_deref(),
        Command::Watch(a) => a.scan.common.metrics_file.as_deref(),
        Command::Show(_) | Command::DefaultConfig => None,
    };
    Finish::new(TOOL, VERSION, metrics_file).guard(|| dispatch(cli, out))
}

fn dispatch(cli: &Cli, out: &mut dyn Write) -> Result<u8> {
    match &cli.command {
        Command::Init(a) => init::init(a, out),
        Command::Check(a) => check::check(a, out),
        Command::Update(a) => update::update(a, out),
        Command::Show(a) => show::show(a, out),
        Command::Watch(a) => watch::watch(a, out),
        Command::DefaultConfig => {
            Finish::print(out, DEFAULT_POLICY.as_bytes())?;
            Ok(SUCCESS)
        }
    }
}

/// Writes metrics, then prints the report, and picks the exit code.
pub(crate) fn finish(
    s: &Setup,
    a: &ScanArgs,
    report: &ScanReport,
    out: &mut dyn Write,
) -> Result<u8> {
    let rendered = render(&s.ctx, report, a.common.format, a.common.pretty)?;
    Finish::new(TOOL, VERSION, a.common.metrics_file.as_deref()).publish(
        out,
        &rendered,
        &report.metrics(),
        true,
    )?;
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
