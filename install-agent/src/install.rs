//! `install`: converge the host to the profile, acting only on drift.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use nodeguard_common::atomic;
use nodeguard_common::exit::ToolError;

use crate::exit;

use crate::converge::{decide, Action, Desired, Observed};
use crate::desired::RenderedConfig;
use crate::fetch::{clean_stale_staging, fetch, stage, Fetched};
use crate::hostexec::{HostCommand, SYSTEMCTL_BIN};
use crate::observe::{package_state, rpm_db_args, unit_state, PackageState};
use crate::report::{AgentReport, ObservedSummary, Outcome, StepStatus};
use crate::select::{Installer, Selection};
use crate::session::Session;
use crate::state::{unix_now, InProgress, StateRecord};
use crate::verify::{activate, verify};

/// Longest a package transaction may take.
const PACKAGE_TIMEOUT: Duration = Duration::from_secs(900);
/// Longest a started unit may stay `activating`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Summarise the observation for the report.
pub fn observed_summary(desired: &Desired, observed: &Observed) -> ObservedSummary {
    ObservedSummary {
        installed_version: observed.installed_version.clone(),
        package_broken: observed.package_broken,
        config_digest: observed.config_digest.clone(),
        config_current: observed.config_digest.as_deref() == Some(desired.config_digest.as_str()),
        unit: observed.unit.clone(),
        owned: observed.record.is_some(),
        activated: desired.activation_digest.as_ref().map(|d| {
            observed
                .record
                .as_ref()
                .and_then(|r| r.activation_digest.as_ref())
                == Some(d)
        }),
    }
}

/// Run `install`; returns the exit code (the report is filled in).
pub fn install(session: &Session, report: &mut AgentReport) -> Result<u8> {
    let Some(sel) = session.select_or_report(report) else {
        return Ok(exit::UNSUPPORTED);
    };
    if !session.configured_or_report(&sel, report)? {
        return Ok(exit::NOT_CONFIGURED);
    }
    let (desired, configs) = session.desired(&sel)?;
    report.config_digest = Some(desired.config_digest.clone());
    let run = Converge {
        session,
        sel,
        desired,
        configs,
    };
    // Read-only first: a converged host needs neither the lock nor the
    // package, and nothing is written on the host (not even the lock file)
    // before the package's sha256 has been verified.
    let observed = session.observe(&run.sel, &run.configs)?;
    if let Some(code) = run.decided(report, &observed) {
        return Ok(code);
    }
    let mut fetched = None;
    if needs_package(&decide(&run.desired, &observed)) {
        match report.step("fetch", || run.fetch()) {
            Ok(f) => fetched = Some(f),
            Err(e) => return Ok(failed(report, &e)),
        }
    }
    let _lock = session
        .store()
        .lock(Duration::from_secs(session.args.lock_timeout))?;
    // Another run may have changed the host while we waited for the lock.
    let observed = session.observe(&run.sel, &run.configs)?;
    if let Some(code) = run.decided(report, &observed) {
        return Ok(code);
    }
    let actions = decide(&run.desired, &observed);
    if fetched.is_none() && needs_package(&actions) {
        match report.step("fetch", || run.fetch()) {
            Ok(f) => fetched = Some(f),
            Err(e) => return Ok(failed(report, &e)),
        }
    }
    run.converge(report, observed.record, &actions, fetched.as_ref())
}

/// Whether the actions install a package (then it is fetched and verified).
fn needs_package(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Install | Action::Upgrade { .. }))
}

/// Mark the report failed; the exit code is the error's own (integrity,
/// lock) or "a step failed".
fn failed(report: &mut AgentReport, e: &anyhow::Error) -> u8 {
    report.status = Outcome::Failed;
    report.reason = Some(nodeguard_common::redact::redact(&format!("{e:#}")));
    let code = nodeguard_common::exit::code_for(e);
    if code > nodeguard_common::exit::ERROR {
        code
    } else {
        exit::STEP_FAILED
    }
}

/// One converge run: the session, the chosen package and the desired state.
struct Converge<'a> {
    session: &'a Session,
    sel: Selection<'a>,
    desired: Desired,
    configs: Vec<RenderedConfig>,
}

impl Converge<'_> {
    /// Put the observation in the report; an exit code when the run ends
    /// here: the agent is not ours (no `--adopt`), or nothing is to be done.
    fn decided(&self, report: &mut AgentReport, observed: &Observed) -> Option<u8> {
        let session = self.session;
        report.observed = Some(observed_summary(&self.desired, observed));
        session.report_observed_state(report, &self.desired, observed);
        if observed.record.is_none() && observed.installed_version.is_some() && !session.args.adopt
        {
            report.status = Outcome::NotOwned;
            report.reason = Some(format!(
                "{} {} is installed but not by nodeguard (no ownership marker); pass --adopt to manage it",
                self.desired.package,
                observed.installed_version.as_deref().unwrap_or_default()
            ));
            return Some(exit::NOT_OWNED);
        }
        if decide(&self.desired, observed).is_empty() {
            let d = &self.desired;
            let detail = format!(
                "nothing to do: {} {} installed, config current, unit enabled and active",
                d.package, d.version
            );
            report.note("converge", StepStatus::Ok, detail);
            report.status = Outcome::Converged;
            return Some(exit::SUCCESS);
        }
        None
    }

    /// Journal the run on the host, act, verify, record.
    fn converge(
        &self,
        report: &mut AgentReport,
        record: Option<StateRecord>,
        actions: &[Action],
        fetched: Option<&Fetched>,
    ) -> Result<u8> {
        let d = &self.desired;
        let format = self.sel.entry.format.as_str();
        let mut record = record.unwrap_or_else(|| {
            StateRecord::new(
                &self.session.profile.name,
                &d.package,
                &d.version,
                format,
                "",
                None,
            )
        });
        let previous = record.in_progress.take();
        record.in_progress = Some(InProgress {
            action: actions
                .iter()
                .map(Action::name)
                .collect::<Vec<_>>()
                .join(","),
            run_id: self.session.run_id.clone(),
            unit: Some(self.session.unit_name("package")),
            started_at: unix_now(),
        });
        let store = self.session.store();
        store.save(&record)?;

        let result = actions
            .iter()
            .try_for_each(|action| {
                self.act(report, action, fetched, previous.as_ref(), &mut record)
            })
            .and_then(|()| {
                report.step("verify", || {
                    verify(self.session).map(|d| (StepStatus::Ok, Some(d), ()))
                })
            });
        if let Err(e) = result {
            // The journal entry stays: the next run recovers and restarts.
            return Ok(failed(report, &e));
        }
        record.in_progress = None;
        record.version = d.version.clone();
        record.config_digest = d.config_digest.clone();
        record.format = format.to_owned();
        record.package = d.package.clone();
        record.updated_at = unix_now();
        store.save(&record)?;
        report.status = Outcome::Changed;
        report.installed = true;
        report.active = true;
        report.activated = true;
        report.registered = crate::verify::registered(self.session).unwrap_or(true);
        Ok(exit::SUCCESS)
    }

    fn fetch(&self) -> Result<(StepStatus, Option<String>, Fetched)> {
        let f = fetch(self.sel.entry, &self.session.fetch_options())?;
        let detail = format!("{} ({} bytes, sha256 verified)", f.source, f.bytes);
        Ok((StepStatus::Ok, Some(detail), f))
    }

    /// Carry out one action as a report step.
    fn act(
        &self,
        report: &mut AgentReport,
        action: &Action,
        fetched: Option<&Fetched>,
        previous: Option<&InProgress>,
        record: &mut StateRecord,
    ) -> Result<()> {
        let session = self.session;
        let unit = session.profile.unit();
        let changed = |detail: String| (StepStatus::Changed, Some(detail), ());
        match action {
            Action::Recover => report.step("recover", || {
                recover(session, &self.sel, previous).map(changed)
            }),
            Action::Install | Action::Upgrade { .. } => {
                let fetched = fetched.context("package was not fetched")?;
                report.step(action.name(), || {
                    install_package(session, &self.sel, &self.desired, fetched).map(changed)
                })
            }
            Action::Configure => report.step("configure", || {
                write_configs(session, &self.configs).map(changed)
            }),
            Action::Enable => report.step("enable", || {
                session.systemctl("enable", &unit)?;
                Ok(changed(format!("enabled {unit}")))
            }),
            Action::Start | Action::Restart => {
                let verb = action.name();
                report.step(verb, || {
                    let mut reset = reset_start_limit(session, &unit)?;
                    if let Err(e) = session.systemctl(verb, &unit) {
                        // Refused for its start limit after all (the state
                        // read before did not show it): reset, once.
                        if !format!("{e:#}").contains("too often") {
                            return Err(e);
                        }
                        session.systemctl("reset-failed", &unit)?;
                        reset = format!(
                            "{unit} was refused for its start limit (StartLimitBurst); ran `systemctl reset-failed`; "
                        );
                        session.systemctl(verb, &unit)?;
                    }
                    wait_active(session)?;
                    Ok(changed(format!("{reset}{verb}ed {unit}; active")))
                })
            }
            Action::Activate => {
                report.step("activate", || activate(session).map(changed))?;
                record.activation_digest = self.desired.activation_digest.clone();
                Ok(())
            }
        }
    }
}

/// Finish what an interrupted run left: wait for its transient unit,
/// complete interrupted dpkg transactions, remove stale staging.
fn recover(
    session: &Session,
    sel: &Selection<'_>,
    previous: Option<&InProgress>,
) -> Result<String> {
    let mut notes = Vec::new();
    if let Some(prev) = previous {
        notes.push(format!(
            "run {} was interrupted during {}",
            prev.run_id, prev.action
        ));
    }
    // Every transient unit of this agent, not just the package one: a run
    // killed during activation leaves its activation unit running, and
    // starting that unit name again would fail ("already loaded").
    notes.extend(settle_orphan_units(session)?);
    if sel.installer.format() == crate::profile::PackageFormat::Deb {
        let argv = ["/usr/bin/dpkg", "--configure", "--pending"]
            .map(str::to_owned)
            .to_vec();
        let cmd = HostCommand::change(argv, session.unit_name("recover"), PACKAGE_TIMEOUT);
        session.exec()?.run_checked(&cmd)?;
        notes.push("completed pending dpkg configuration".to_owned());
    }
    let removed = clean_stale_staging(&session.root)?;
    if removed > 0 {
        notes.push(format!(
            "removed {removed} stale staging entr{}",
            if removed == 1 { "y" } else { "ies" }
        ));
    }
    Ok(notes.join("; "))
}

/// Deal with the transient units (`nodeguard-install-agent-<agent>-*`) a
/// killed run left behind: an activation is stopped (it is re-run with the
/// current credentials anyway); a package transaction or any other change
/// is waited for (killing dpkg half-way would break the package); failed
/// ones are reset so their names are free. Returns notes for the report.
fn settle_orphan_units(session: &Session) -> Result<Vec<String>> {
    let pattern = format!("{}*", session.unit_name(""));
    let out = session.exec()?.run_checked(&HostCommand::query(
        &[
            SYSTEMCTL_BIN,
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--no-pager",
            "--",
            &pattern,
        ],
        crate::session::SYSTEMCTL_TIMEOUT,
    ))?;
    let mut notes = Vec::new();
    for (unit, active) in parse_list_units(&out.stdout_text(), &session.unit_name("")) {
        match active.as_str() {
            "active" | "activating" | "deactivating" | "reloading" => {
                if unit == format!("{}.service", session.unit_name("activate")) {
                    session.systemctl("stop", &unit)?;
                    notes.push(format!("stopped the interrupted activation unit {unit}"));
                } else {
                    wait_unit_gone(session, &unit, PACKAGE_TIMEOUT)?;
                    notes.push(format!("waited for its unit {unit} to finish"));
                }
            }
            "failed" => {
                session.systemctl("reset-failed", &unit)?;
                notes.push(format!("reset its failed unit {unit}"));
            }
            _ => {}
        }
    }
    Ok(notes)
}

/// `systemctl list-units --plain --no-legend` lines: (unit, ACTIVE) of the
/// units whose name starts with `prefix` (a leading status mark is skipped).
pub fn parse_list_units(text: &str, prefix: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line
                .split_whitespace()
                .skip_while(|w| !w.starts_with(prefix));
            let unit = words.next()?;
            let _load = words.next()?;
            let active = words.next()?;
            Some((unit.to_owned(), active.to_owned()))
        })
        .collect()
}

/// Wait while a unit is loaded and active; returns whether we had to wait.
fn wait_unit_gone(session: &Session, unit: &str, limit: Duration) -> Result<bool> {
    let deadline = Instant::now() + limit;
    let mut waited = false;
    loop {
        let state = unit_state(session.exec()?, unit)?;
        if !state.active() {
            return Ok(waited);
        }
        if Instant::now() >= deadline {
            bail!(
                "unit {unit} of an interrupted run is still {} after {limit:?}",
                state.active_state
            );
        }
        waited = true;
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A unit that failed `StartLimitBurst` times is refused by systemd until
/// `systemctl reset-failed`: reset it first. Returns the note for the
/// report (empty when no reset was needed).
fn reset_start_limit(session: &Session, unit: &str) -> Result<String> {
    let state = unit_state(session.exec()?, unit)?;
    if !state.start_limit_hit() {
        return Ok(String::new());
    }
    session.systemctl("reset-failed", unit)?;
    Ok(format!(
        "{unit} had hit its start limit (StartLimitBurst, {} restarts); ran `systemctl reset-failed`; ",
        state.n_restarts
    ))
}

fn wait_active(session: &Session) -> Result<()> {
    let unit = session.profile.unit();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let state = unit_state(session.exec()?, &unit)?;
        match state.active_state.as_str() {
            "active" => return Ok(()),
            "activating" | "reloading" if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => {
                bail!("{unit} is {other} after start (see `journalctl -u {unit}` on the node)")
            }
        }
    }
}

/// The installer command line for a staged package.
pub fn install_argv(installer: Installer, package: &Path, rpm_db: &[String]) -> Vec<String> {
    let pkg = package.display().to_string();
    let mut argv: Vec<String> = vec![installer.program().to_owned()];
    let rest: Vec<&str> = match installer {
        // A local path makes apt install that file and resolve its
        // dependencies from the host's configured repositories.
        Installer::AptGet => vec![
            "install",
            "--yes",
            "--no-install-recommends",
            "--allow-downgrades",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            "-o",
            "DPkg::Lock::Timeout=300",
        ],
        Installer::Dpkg => vec!["--install", "--force-confdef", "--force-confold"],
        Installer::Dnf | Installer::Yum => vec!["install", "--assumeyes"],
        Installer::Zypper => vec![
            "--non-interactive",
            "install",
            "--allow-unsigned-rpm",
            "--oldpackage",
        ],
        Installer::Rpm => {
            argv.extend(rpm_db.iter().cloned());
            vec!["--upgrade", "--replacepkgs", "--oldpackage"]
        }
    };
    argv.extend(rest.into_iter().map(str::to_owned));
    argv.push(pkg);
    argv
}

fn install_package(
    session: &Session,
    sel: &Selection<'_>,
    desired: &Desired,
    fetched: &crate::fetch::Fetched,
) -> Result<String> {
    let ext = sel.entry.format.as_str();
    let file_name = format!("{}_{}.{ext}", desired.package, sanitize(&desired.version));
    let staged = stage(
        &session.root,
        fetched,
        &sel.entry.sha256,
        &session.run_id,
        &file_name,
    )?;
    let argv = install_argv(
        sel.installer,
        &staged.host_path,
        &rpm_db_args(&session.root),
    );
    let cmd = HostCommand::change(argv, session.unit_name("package"), PACKAGE_TIMEOUT)
        .with_env("DEBIAN_FRONTEND", "noninteractive");
    let result = session.exec()?.run_checked(&cmd);
    drop(staged);
    result?;
    session.daemon_reload()?;
    match package_state(
        session.exec()?,
        &session.root,
        sel.entry.format,
        &desired.package,
    )? {
        PackageState::Installed(v) if crate::converge::version_matches(&v, &desired.version) => {
            Ok(format!(
                "{} {v} installed with {} from {}",
                desired.package,
                sel.installer.program(),
                fetched.source
            ))
        }
        other => bail!(
            "after installing, the package database reports {other:?} for {} (wanted {})",
            desired.package,
            desired.version
        ),
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".+-~".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Write the config files atomically, root-owned, with their modes.
fn write_configs(session: &Session, configs: &[RenderedConfig]) -> Result<String> {
    let mut written = Vec::new();
    for c in configs {
        let real = session.root.resolve_parent(&c.path)?;
        if let Some(parent) = real.parent() {
            atomic::ensure_dir(parent, 0o755)?;
        }
        atomic::write_file(&real, &c.content, c.mode)
            .with_context(|| format!("writing host file {}", c.path.display()))?;
        // The file is ours (uid 0 of the pod is uid 0 of the host); make
        // sure no group survives from a file it replaced.
        nix::unistd::chown(
            &real,
            Some(nix::unistd::Uid::from_raw(0)),
            Some(nix::unistd::Gid::from_raw(0)),
        )
        .map_err(|e| {
            ToolError::new(
                exit::STEP_FAILED,
                format!("chown root:root {}: {e}", c.path.display()),
            )
        })?;
        written.push(format!("{} ({:04o})", c.path.display(), c.mode));
    }
    Ok(format!("wrote {}", written.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphan_units_are_found_in_list_units_output() {
        let text = "nodeguard-install-agent-q-activate.service loaded active running nodeguard install-agent: x\n\
● nodeguard-install-agent-q-package.service loaded failed failed nodeguard install-agent: y\n\
other.service loaded active running z\n";
        assert_eq!(
            parse_list_units(text, "nodeguard-install-agent-q-"),
            [
                (
                    "nodeguard-install-agent-q-activate.service".to_owned(),
                    "active".to_owned()
                ),
                (
                    "nodeguard-install-agent-q-package.service".to_owned(),
                    "failed".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn installer_command_lines() {
        let pkg = Path::new("/var/lib/nodeguard/install-agent/staging/r/a.deb");
        let apt = install_argv(Installer::AptGet, pkg, &[]);
        assert_eq!(apt[..2], ["/usr/bin/apt-get", "install"]);
        assert!(apt.contains(&"--allow-downgrades".to_owned()));
        assert_eq!(
            apt.last().map(String::as_str),
            Some("/var/lib/nodeguard/install-agent/staging/r/a.deb")
        );
        let rpm = install_argv(
            Installer::Rpm,
            Path::new("/s/a.rpm"),
            &["--dbpath".into(), "/var/lib/rpm".into()],
        );
        assert_eq!(
            rpm,
            [
                "/usr/bin/rpm",
                "--dbpath",
                "/var/lib/rpm",
                "--upgrade",
                "--replacepkgs",
                "--oldpackage",
                "/s/a.rpm"
            ]
        );
        let zypper = install_argv(Installer::Zypper, Path::new("/s/a.rpm"), &[]);
        assert_eq!(zypper[1], "--non-interactive");
    }
}
