//! `uninstall`: stop, disable, remove the package, its config and
//! credentials — only for agents nodeguard installed, unless `--adopt`.

use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::desired::all_config_paths;
use crate::exit;
use crate::hostexec::HostCommand;
use crate::observe::{package_state, rpm_db_args, PackageState};
use crate::report::{AgentReport, Outcome, StepStatus};
use crate::select::{Installer, Selection};
use crate::session::Session;
use crate::template::render_argv;

const REMOVE_TIMEOUT: Duration = Duration::from_secs(900);

/// The removal command line.
pub fn remove_argv(
    installer: Installer,
    package: &str,
    purge: bool,
    rpm_db: &[String],
) -> Vec<String> {
    let mut argv = vec![installer.program().to_owned()];
    let rest: Vec<&str> = match installer {
        Installer::AptGet => vec![
            if purge { "purge" } else { "remove" },
            "--yes",
            "-o",
            "DPkg::Lock::Timeout=300",
        ],
        Installer::Dpkg => vec![if purge { "--purge" } else { "--remove" }],
        Installer::Dnf | Installer::Yum => vec!["remove", "--assumeyes"],
        Installer::Zypper => vec!["--non-interactive", "remove"],
        Installer::Rpm => {
            argv.extend(rpm_db.iter().cloned());
            vec!["--erase"]
        }
    };
    argv.extend(rest.into_iter().map(str::to_owned));
    // The name is validated, and still never read as an option.
    argv.push("--".to_owned());
    argv.push(package.to_owned());
    argv
}

/// Run `uninstall`.
pub fn uninstall(session: &Session, report: &mut AgentReport, purge: bool) -> Result<u8> {
    let Some(sel) = session.select_or_report(report) else {
        return Ok(exit::UNSUPPORTED);
    };
    let store = session.store();
    let _lock = store.lock(Duration::from_secs(session.args.lock_timeout))?;
    let record = store.load()?;
    let package = session.profile.package_name(sel.entry).to_owned();
    let state = package_state(session.exec()?, &session.root, sel.entry.format, &package)?;
    if record.is_none() && !session.args.adopt {
        if state == PackageState::Absent {
            report.note(
                "check",
                StepStatus::Ok,
                format!("{package} is not installed and nodeguard has no record of it"),
            );
            report.status = Outcome::Absent;
            return Ok(0);
        }
        report.status = Outcome::NotOwned;
        report.reason = Some(format!(
            "{package} is installed but not by nodeguard; pass --adopt to remove it"
        ));
        return Ok(exit::NOT_OWNED);
    }
    match remove_all(session, report, &sel, &package, &state, purge) {
        Ok(()) => {
            store.remove()?;
            report.status = Outcome::Removed;
            Ok(0)
        }
        Err(e) => {
            report.status = Outcome::Failed;
            report.reason = Some(nodeguard_common::redact::redact(&format!("{e:#}")));
            Ok(exit::STEP_FAILED)
        }
    }
}

fn remove_all(
    session: &Session,
    report: &mut AgentReport,
    sel: &Selection<'_>,
    package: &str,
    state: &PackageState,
    purge: bool,
) -> Result<()> {
    let unit = session.profile.unit();
    report.step("stop", || {
        // A unit that is already gone (package removed by hand) is fine.
        match session
            .systemctl("disable", &unit)
            .and_then(|()| session.systemctl("stop", &unit))
        {
            Ok(()) => Ok((
                StepStatus::Changed,
                Some(format!("stopped and disabled {unit}")),
                (),
            )),
            Err(e) if *state == PackageState::Absent => {
                Ok((StepStatus::Skipped, Some(format!("{unit}: {e:#}")), ()))
            }
            Err(e) => Err(e),
        }
    })?;
    for (i, argv) in session.profile.uninstall.commands.iter().enumerate() {
        report.step("uninstall-command", || {
            run_uninstall_command(session, i, argv)
        })?;
    }
    report.step("remove-package", || {
        if *state == PackageState::Absent {
            return Ok((
                StepStatus::Skipped,
                Some(format!("{package} not installed")),
                (),
            ));
        }
        remove_package(session, sel, package, purge).map(|d| (StepStatus::Changed, Some(d), ()))
    })?;
    let mut paths: Vec<PathBuf> = all_config_paths(&session.profile);
    paths.extend(session.profile.uninstall.remove.iter().cloned());
    if purge {
        paths.extend(session.profile.uninstall.purge.iter().cloned());
    }
    report.step("remove-files", || {
        let removed = remove_host_paths(session, &paths)?;
        Ok(if removed.is_empty() {
            (
                StepStatus::Ok,
                Some("nothing left to remove".to_owned()),
                (),
            )
        } else {
            (
                StepStatus::Changed,
                Some(format!("removed {}", removed.join(", "))),
                (),
            )
        })
    })
}

/// One of the profile's uninstall commands, as a transient unit. Best
/// effort: the vendor's own deregistration may fail on a broken install;
/// removal goes on and the step says so.
fn run_uninstall_command(
    session: &Session,
    index: usize,
    argv: &[String],
) -> Result<(StepStatus, Option<String>, ())> {
    let argv = match session.values() {
        Ok(values) => render_argv(argv, values)?,
        Err(_) => argv.to_vec(),
    };
    let program = argv[0].clone();
    let cmd = HostCommand::change(
        argv,
        session.unit_name(&format!("uninstall-{index}")),
        REMOVE_TIMEOUT,
    );
    let out = session.exec()?.run(&cmd)?;
    let status = if out.status.success() {
        StepStatus::Changed
    } else {
        StepStatus::Skipped
    };
    let detail = format!(
        "`{program}` {}",
        nodeguard_common::process::describe_status(out.status)
    );
    Ok((status, Some(detail), ()))
}

/// Remove the package with the host's tool and check the database agrees.
fn remove_package(
    session: &Session,
    sel: &Selection<'_>,
    package: &str,
    purge: bool,
) -> Result<String> {
    let argv = remove_argv(sel.installer, package, purge, &rpm_db_args(&session.root));
    session.exec()?.run_checked(&HostCommand::change(
        argv,
        session.unit_name("package"),
        REMOVE_TIMEOUT,
    ))?;
    match package_state(session.exec()?, &session.root, sel.entry.format, package)? {
        PackageState::Absent => {}
        other => bail!("after removal the package database still reports {other:?}"),
    }
    // Forget the removed unit; failures here change nothing that matters.
    let _ = session.daemon_reload();
    let _ = session.systemctl("reset-failed", &session.profile.unit());
    Ok(format!(
        "removed {package} with {}",
        sel.installer.program()
    ))
}

/// Remove host paths (files or trees) without following a final symlink.
fn remove_host_paths(session: &Session, paths: &[PathBuf]) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for host_path in paths {
        if host_path.parent().is_none() {
            bail!("refusing to remove {}", host_path.display());
        }
        let real = session.root.resolve_parent(host_path)?;
        let meta = match fs::symlink_metadata(&real) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("inspecting {}", host_path.display()))
                )
            }
        };
        if meta.is_dir() {
            fs::remove_dir_all(&real)
        } else {
            fs::remove_file(&real)
        }
        .with_context(|| format!("removing host path {}", host_path.display()))?;
        removed.push(host_path.display().to_string());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_commands_per_installer() {
        assert_eq!(
            remove_argv(Installer::AptGet, "a", true, &[]),
            [
                "/usr/bin/apt-get",
                "purge",
                "--yes",
                "-o",
                "DPkg::Lock::Timeout=300",
                "--",
                "a"
            ]
        );
        assert_eq!(
            remove_argv(
                Installer::Rpm,
                "a",
                false,
                &["--dbpath".into(), "/var/lib/rpm".into()]
            ),
            [
                "/usr/bin/rpm",
                "--dbpath",
                "/var/lib/rpm",
                "--erase",
                "--",
                "a"
            ]
        );
    }
}
