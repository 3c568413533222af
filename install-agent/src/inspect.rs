//! `plan` and `status`: read-only views of the host against the profile.

use crate::converge::{decide, version_matches, Action, Desired, Observed};
use crate::exit;
use crate::install::observed_summary;
use crate::report::{AgentReport, Outcome, StepStatus};
use crate::session::Session;
use crate::verify::verify;

/// `plan`: the chosen package and the actions `install` would take.
pub fn plan(session: &Session, report: &mut AgentReport) -> anyhow::Result<u8> {
    let Some(sel) = session.select_or_report(report) else {
        return Ok(exit::SUCCESS);
    };
    if !session.configured_or_report(&sel, report)? {
        return Ok(exit::SUCCESS);
    }
    report.status = Outcome::Planned;
    let desired = match session.desired(&sel) {
        Ok((desired, configs)) => Some((desired, configs)),
        Err(e) => {
            report.note(
                "configure",
                StepStatus::Skipped,
                format!("config not rendered: {e:#}"),
            );
            None
        }
    };
    let Some((desired, configs)) = desired else {
        return Ok(exit::SUCCESS);
    };
    report.config_digest = Some(desired.config_digest.clone());
    if session.exec.is_none() {
        report.reason = Some(
            "host state not observed (--host-root without --target-pid); a fresh install is shown"
                .to_owned(),
        );
        for action in decide(&desired, &Default::default()) {
            note_action(report, &action);
        }
        return Ok(0);
    }
    let observed = session.observe(&sel, &configs)?;
    report.observed = Some(observed_summary(&desired, &observed));
    session.report_observed_state(report, &desired, &observed);
    let actions = decide(&desired, &observed);
    if actions.is_empty() {
        report.note(
            "converge",
            StepStatus::Ok,
            "nothing to do: the host matches the profile",
        );
    }
    for action in &actions {
        note_action(report, action);
    }
    Ok(0)
}

fn note_action(report: &mut AgentReport, action: &Action) {
    let detail = match action {
        Action::Recover => "finish an interrupted run".to_owned(),
        Action::Install => "fetch, verify sha256, stage and install the package".to_owned(),
        Action::Upgrade { from } => format!("replace installed version {from}"),
        Action::Configure => "write config files (root, 0600, atomic)".to_owned(),
        Action::Enable => "enable the unit".to_owned(),
        Action::Start => "start the unit".to_owned(),
        Action::Restart => "restart the unit".to_owned(),
        Action::Activate => "run the activation command".to_owned(),
    };
    report.note(action.name(), StepStatus::Planned, detail);
}

/// `status`: healthy (exit 0) or not (exit 1), for a readiness probe.
pub fn status(session: &Session, report: &mut AgentReport) -> anyhow::Result<u8> {
    let Some(sel) = session.select_or_report(report) else {
        return Ok(exit::UNSUPPORTED);
    };
    if !session.configured_or_report(&sel, report)? {
        return Ok(exit::NOT_CONFIGURED);
    }
    let (desired, configs) = session.desired(&sel)?;
    report.config_digest = Some(desired.config_digest.clone());
    let observed = session.observe(&sel, &configs)?;
    report.observed = Some(observed_summary(&desired, &observed));
    session.report_observed_state(report, &desired, &observed);
    let mut problems = health_checks(session, report, &desired, &observed);
    // Registration is the platform's side: reported, never a reason to
    // call the node unhealthy (an alert fires when it takes too long).
    match crate::verify::registered(session) {
        Some(true) => report.note("registered", StepStatus::Ok, "registered with the platform"),
        Some(false) => {
            let file = session
                .profile
                .registered
                .as_ref()
                .map(|r| r.file.display().to_string())
                .unwrap_or_default();
            report.note(
                "registered",
                StepStatus::Pending,
                format!("not registered yet: {file} is absent or empty"),
            );
        }
        None => {}
    }
    if problems.is_empty() {
        if let Err(e) = report.step("verify", || {
            verify(session).map(|d| (StepStatus::Ok, Some(d), ()))
        }) {
            problems.push(format!("{e:#}"));
        }
    }
    if problems.is_empty() {
        report.status = Outcome::Healthy;
        Ok(exit::SUCCESS)
    } else {
        report.status = Outcome::Unhealthy;
        report.reason = Some(nodeguard_common::redact::redact(&problems.join("; ")));
        Ok(exit::UNHEALTHY)
    }
}

/// One report step per aspect (package, config, service, activation);
/// returns what is wrong.
fn health_checks(
    session: &Session,
    report: &mut AgentReport,
    desired: &Desired,
    observed: &Observed,
) -> Vec<String> {
    let unit = session.profile.unit();
    let installed = observed.installed_version.as_deref();
    let summary = observed_summary(desired, observed);
    let checks = [
        (
            "package",
            installed.is_some_and(|v| version_matches(v, &desired.version))
                && !observed.package_broken,
            format!("{} {} installed", desired.package, desired.version),
            format!(
                "{} is {} (want {})",
                desired.package,
                installed.unwrap_or("not installed"),
                desired.version
            ),
        ),
        (
            "config",
            summary.config_current,
            "config files current".into(),
            "config files missing or drifted".into(),
        ),
        (
            "service",
            observed.unit.enabled() && observed.unit.active(),
            format!("{unit} enabled and {}", observed.unit.active_state),
            format!(
                "{unit} is {} / {}",
                observed.unit.unit_file_state, observed.unit.active_state
            ),
        ),
        (
            "activation",
            summary.activated != Some(false),
            "activated with the current credentials".into(),
            "not activated with the current credentials".into(),
        ),
    ];
    let mut problems = Vec::new();
    for (name, ok, good, bad) in checks {
        if name == "activation" && summary.activated.is_none() {
            continue;
        }
        if ok {
            report.note(name, StepStatus::Ok, good);
        } else {
            report.note(name, StepStatus::Failed, bad.clone());
            problems.push(bad);
        }
    }
    problems
}
