//! `install-agent`: installs a vendor security agent (Qualys Cloud Agent,
//! or any DEB/RPM agent described by a profile) *on the host* from a
//! least-privileged `hostPID` pod, configures it from a mounted Secret,
//! starts and verifies it, and keeps it converged.
//!
//! * `plan` shows the detected host, the chosen package and the steps;
//!   unsupported hosts (immutable OSes, no package manager, no package for
//!   the OS/arch) get `status: "unsupported"` with the reason; a profile
//!   still holding placeholders (all-zero sha256, package file not in the
//!   image, required credential missing) gets `status: "not_configured"`
//!   naming the chart values and profile fields to set ([`configured`]).
//! * `install` converges: it compares package version, config digest and
//!   unit state with the profile and acts only on drift (install, upgrade,
//!   reconfigure, restart); a converged host is left alone and the report
//!   says so.
//! * `status` is a readiness probe: exit 0 healthy, 1 not, 8 not
//!   configured; it reports installed, active, activated and registered
//!   apart.
//! * `uninstall` removes what nodeguard installed (ownership marker), or
//!   anything with `--adopt`.
//!
//! How it reaches the host: [`namespaces`] enters PID 1's (or
//! `--target-pid`'s) mount, UTS, IPC, network and PID namespaces with
//! `setns`; [`hostexec`] runs package transactions as transient units of
//! the host's systemd, with a cleared environment; host files are reached
//! through `/proc/<pid>/root`. [`state`] keeps the ownership record, the
//! interrupted-run journal and the host lock. [`fetch`] downloads and
//! verifies packages. The profile format is in [`profile`] and
//! `docs/install-agent.md`. Exit codes: [`exit`].

pub mod cli;
pub mod configured;
pub mod converge;
pub mod desired;
pub mod exit;
pub mod fetch;
pub mod host;
pub mod hostexec;
pub mod inspect;
pub mod install;
pub mod namespaces;
pub mod observe;
pub mod profile;
#[cfg(test)]
pub mod recording;
pub mod report;
pub mod select;
pub mod session;
#[cfg(test)]
mod session_tests;
pub mod state;
pub mod template;
pub mod text;
pub mod uninstall;
pub mod verify;

use std::io::Write;

use anyhow::Result;
use nodeguard_common::finish::{self, Finish};
use nodeguard_common::metrics::Metrics;
use nodeguard_common::report::RunContext;

use crate::cli::{Cli, Command};
use crate::converge::Action;
use crate::report::{AgentReport, Outcome, StepStatus};
use crate::session::Session;

/// The tool's name as it appears in reports and metrics.
pub const TOOL: &str = "install-agent";
/// The tool's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Run one command, write the metrics file (if asked), then print the
/// report to `out`; returns the exit code.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<u8> {
    let args = cli.command.args();
    let finish = Finish::new(TOOL, VERSION, args.common.metrics_file.as_deref());
    finish.guard(|| run_command(cli, out, &finish))
}

fn run_command(cli: &Cli, out: &mut dyn Write, finish: &Finish<'_>) -> Result<u8> {
    let args = cli.command.args();
    // Node name: from --node-name or the host's /etc/hostname, read once the
    // session has found the host root.
    let provisional = RunContext::new(TOOL, VERSION, "unknown");
    let (name, need_exec) = match &cli.command {
        Command::Plan(_) => ("plan", false),
        Command::Install(_) => ("install", true),
        Command::Status(_) => ("status", true),
        Command::Uninstall { .. } => ("uninstall", true),
    };
    let session = Session::open(args, &provisional.run_id, need_exec)?;
    let mut ctx = args.common.run_context(TOOL, VERSION, &session.root);
    ctx.run_id = provisional.run_id;
    let mut report = AgentReport::new(name, &session.profile.name);
    report.host = Some(session.host_summary());
    let code = match &cli.command {
        Command::Plan(_) => inspect::plan(&session, &mut report)?,
        Command::Install(_) => install::install(&session, &mut report)?,
        Command::Status(_) => inspect::status(&session, &mut report)?,
        Command::Uninstall { purge, .. } => uninstall::uninstall(&session, &mut report, *purge)?,
    };
    let rendered = finish::render(&ctx, &report, args.common.format, args.common.pretty)?;
    let success = !matches!(report.status, Outcome::Failed);
    finish.publish(out, &rendered, &metrics(&report), success)?;
    Ok(code)
}

/// The install-agent metrics of one run (names fixed in TEAM.md).
pub fn metrics(report: &AgentReport) -> Metrics {
    let mut m = Metrics::new(TOOL);
    let agent = report.agent.as_str();
    let converged = matches!(
        report.status,
        Outcome::Converged | Outcome::Changed | Outcome::Healthy
    );
    m.gauge(
        "converged",
        "Whether the agent matches its profile on this node (1) or not (0).",
    )
    .sample(&[("agent", agent)], f64::from(u8::from(converged)));
    let configured = !matches!(report.status, Outcome::NotConfigured);
    m.gauge(
        "configured",
        "Whether the profile and credentials are filled in (1) or something is still a placeholder (0; the report's not_configured names the values to set).",
    )
    .sample(&[("agent", agent)], f64::from(u8::from(configured)));
    m.gauge(
        "registered",
        "Whether the agent registered with its platform (1) or not (0); the profile's [registered] check.",
    )
    .sample(&[("agent", agent)], f64::from(u8::from(report.registered)));
    let active = match report.command {
        "install" => converged,
        _ => report.observed.as_ref().is_some_and(|o| o.unit.active()),
    };
    m.gauge(
        "service_active",
        "Whether the agent's systemd unit is active (1) or not (0).",
    )
    .sample(&[("agent", agent)], f64::from(u8::from(active)));
    let version = match (report.command, &report.package, &report.observed) {
        ("install", Some(p), _) if converged => Some(p.version.as_str()),
        (_, _, Some(o)) => o.installed_version.as_deref(),
        _ => None,
    };
    if let Some(version) = version {
        m.gauge(
            "info",
            "The agent version installed on this node (value 1).",
        )
        .sample(&[("agent", agent), ("version", version)], 1.0);
    }
    let actions = m.gauge("actions", "Converge actions taken by this run, by action.");
    for action in Action::NAMES {
        let taken = report
            .steps
            .iter()
            .filter(|s| s.name == action && s.status == StepStatus::Changed)
            .count();
        actions.sample(&[("agent", agent), ("action", action)], taken as f64);
    }
    m
}
