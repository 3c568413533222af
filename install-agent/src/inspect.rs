//! `plan` and `status`: read-only views of the host against the profile.

use crate::converge::{decide, Action};
use crate::install::{observed_summary, EXIT_UNSUPPORTED};
use crate::report::{AgentReport, Outcome, StepStatus};
use crate::session::Session;
use crate::verify::verify;

/// `plan`: the chosen package and the actions `install` would take.
pub fn plan(session: &Session, report: &mut AgentReport) -> anyhow::Result<u8> {
    let sel = match session.select() {
        Ok(sel) => sel,
        Err(u) => {
            report.status = Outcome::Unsupported;
            report.reason = Some(u.reason);
            return Ok(0);
        }
    };
    report.package = Some(session.package_summary(&sel));
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
        return Ok(0);
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
    let sel = match session.select() {
        Ok(sel) => sel,
        Err(u) => {
            report.status = Outcome::Unsupported;
            report.reason = Some(u.reason);
            return Ok(EXIT_UNSUPPORTED);
        }
    };
    report.package = Some(session.package_summary(&sel));
    let (desired, configs) = session.desired(&sel)?;
    report.config_digest = Some(desired.config_digest.clone());
    let observed = session.observe(&sel, &configs)?;
    let summary = observed_summary(&desired, &observed);
    report.observed = Some(summary.clone());
    let mut problems = Vec::new();
    let mut check =
        |name: &str, ok: bool, good: String, bad: String, problems: &mut Vec<String>| {
            if ok {
                report.note(name, StepStatus::Ok, good);
            } else {
                report.note(name, StepStatus::Failed, bad.clone());
                problems.push(bad);
            }
        };
    let version_ok = observed.installed_version.as_deref().is_some_and(|v| {
        crate::converge::version_matches(v, &desired.version) && !observed.package_broken
    });
    check(
        "package",
        version_ok,
        format!("{} {} installed", desired.package, desired.version),
        format!(
            "{} is {} (want {})",
            desired.package,
            observed
                .installed_version
                .as_deref()
                .unwrap_or("not installed"),
            desired.version
        ),
        &mut problems,
    );
    check(
        "config",
        summary.config_current,
        "config files current".into(),
        "config files missing or drifted".into(),
        &mut problems,
    );
    check(
        "service",
        observed.unit.enabled() && observed.unit.active(),
        format!(
            "{} enabled and {}",
            session.profile.unit(),
            observed.unit.active_state
        ),
        format!(
            "{} is {} / {}",
            session.profile.unit(),
            observed.unit.unit_file_state,
            observed.unit.active_state
        ),
        &mut problems,
    );
    if summary.activated == Some(false) {
        check(
            "activation",
            false,
            String::new(),
            "not activated with the current credentials".into(),
            &mut problems,
        );
    }
    if problems.is_empty() {
        match report.step("verify", || {
            verify(session).map(|d| (StepStatus::Ok, Some(d), ()))
        }) {
            Ok(()) => {}
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if problems.is_empty() {
        report.status = Outcome::Healthy;
        Ok(0)
    } else {
        report.status = Outcome::Unhealthy;
        report.reason = Some(nodeguard_common::redact::redact(&problems.join("; ")));
        Ok(nodeguard_common::exit::FINDINGS)
    }
}
