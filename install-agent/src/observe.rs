//! Observing the host: package database, systemd unit, config files.
//!
//! Read-only queries run directly in the host namespaces (no transient
//! unit): `dpkg-query` or `rpm -q` and one `systemctl show`. Their output is
//! parsed by pure functions tested on captured text.

use std::time::Duration;

use anyhow::{bail, Result};

use nodeguard_common::hostroot::HostRoot;
use nodeguard_common::process::Output;

use crate::converge::UnitState;
use crate::hostexec::{HostCommand, HostExec, SYSTEMCTL_BIN};
use crate::profile::PackageFormat;

/// Timeout of a read-only query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Host paths of the query tools.
pub const DPKG_QUERY_BIN: &str = "/usr/bin/dpkg-query";
/// rpm.
pub const RPM_BIN: &str = "/usr/bin/rpm";
/// The RHEL-layout rpm database.
pub const RPM_DBPATH: &str = "/var/lib/rpm";

/// What the package database says about one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageState {
    /// Not in the database.
    Absent,
    /// Fully installed at this version.
    Installed(String),
    /// Present but half-installed / unconfigured (an interrupted dpkg).
    Broken(String),
}

/// rpm arguments selecting the RHEL-layout database when the host has one.
/// Debian's rpm (our RPM-flavoured test node) defaults to `~/.rpmdb`; on
/// real RPM distributions `/var/lib/rpm` is the database (or a link to it),
/// so passing it is harmless there.
pub fn rpm_db_args(root: &HostRoot) -> Vec<String> {
    if root.metadata(RPM_DBPATH).is_ok_and(|m| m.is_dir()) {
        vec!["--dbpath".to_owned(), RPM_DBPATH.to_owned()]
    } else {
        Vec::new()
    }
}

/// Query the package database.
pub fn package_state(
    exec: &dyn HostExec,
    root: &HostRoot,
    format: PackageFormat,
    package: &str,
) -> Result<PackageState> {
    match format {
        PackageFormat::Deb => {
            let out = exec.run(&HostCommand::query(
                &[
                    DPKG_QUERY_BIN,
                    "--show",
                    "--showformat=${db:Status-Abbrev}\t${Version}\n",
                    "--",
                    package,
                ],
                QUERY_TIMEOUT,
            ))?;
            parse_dpkg_query(&out)
        }
        PackageFormat::Rpm => {
            let mut argv = vec![RPM_BIN.to_owned()];
            argv.extend(rpm_db_args(root));
            argv.extend(
                ["-q", "--queryformat", "%{VERSION}-%{RELEASE}\\n", "--"].map(str::to_owned),
            );
            argv.push(package.to_owned());
            let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
            let out = exec.run(&HostCommand::query(&refs, QUERY_TIMEOUT))?;
            parse_rpm_query(&out)
        }
    }
}

fn parse_dpkg_query(out: &Output) -> Result<PackageState> {
    let text = out.stdout_text();
    let line = text.lines().find(|l| !l.trim().is_empty());
    match (out.status.code(), line) {
        // dpkg-query exits 1 for an unknown package; "un"/"pn" rows are
        // packages dpkg remembers but that are not installed.
        (Some(1), _) | (Some(0), None) => Ok(PackageState::Absent),
        (Some(0), Some(line)) => Ok(parse_dpkg_status_line(line)),
        _ => bail!("`{}` {}: {}", out.display, describe(out), out.stderr_tail()),
    }
}

/// One `${db:Status-Abbrev}\t${Version}` line: desired, status, error flag.
pub fn parse_dpkg_status_line(line: &str) -> PackageState {
    let (abbrev, version) = line.split_once('\t').unwrap_or((line, ""));
    let status = abbrev.chars().nth(1).unwrap_or(' ');
    let error = abbrev.chars().nth(2).unwrap_or(' ');
    match status {
        'i' if error == ' ' => PackageState::Installed(version.trim().to_owned()),
        'n' | 'c' => PackageState::Absent,
        _ => PackageState::Broken(version.trim().to_owned()),
    }
}

fn parse_rpm_query(out: &Output) -> Result<PackageState> {
    let text = out.stdout_text();
    match out.status.code() {
        Some(0) => {
            // Several installed versions (a failed upgrade) is broken state.
            let versions: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            match versions.as_slice() {
                [one] => Ok(PackageState::Installed((*one).to_owned())),
                [] => Ok(PackageState::Absent),
                many => Ok(PackageState::Broken(many.join(","))),
            }
        }
        Some(1)
            if text.contains("is not installed")
                || out.stderr_text().contains("is not installed") =>
        {
            Ok(PackageState::Absent)
        }
        _ => bail!("`{}` {}: {}", out.display, describe(out), out.stderr_tail()),
    }
}

/// The agent unit's state from `systemctl show`.
pub fn unit_state(exec: &dyn HostExec, unit: &str) -> Result<UnitState> {
    let out = exec.run(&HostCommand::query(
        &[
            SYSTEMCTL_BIN,
            "show",
            "--property=LoadState,UnitFileState,ActiveState,Result,NRestarts,StartLimitBurst",
            "--",
            unit,
        ],
        QUERY_TIMEOUT,
    ))?;
    if !out.status.success() {
        bail!(
            "`{}` {}: {}",
            out.display,
            describe(&out),
            out.stderr_tail()
        );
    }
    Ok(parse_systemctl_show(&out.stdout_text()))
}

/// Parse `Key=Value` lines of `systemctl show`.
pub fn parse_systemctl_show(text: &str) -> UnitState {
    let mut state = UnitState::default();
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim().to_owned();
            match key {
                "LoadState" => state.load_state = value,
                "UnitFileState" => state.unit_file_state = value,
                "ActiveState" => state.active_state = value,
                "Result" => state.result = value,
                "NRestarts" => state.n_restarts = value.parse().unwrap_or(0),
                "StartLimitBurst" => state.start_limit_burst = value.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    state
}

fn describe(out: &Output) -> String {
    nodeguard_common::process::describe_status(out.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_lines() {
        assert_eq!(
            parse_dpkg_status_line("ii \t1.0.0"),
            PackageState::Installed("1.0.0".into())
        );
        assert_eq!(
            parse_dpkg_status_line("iU \t1.0.0"),
            PackageState::Broken("1.0.0".into())
        );
        assert_eq!(
            parse_dpkg_status_line("iF \t1.0.0"),
            PackageState::Broken("1.0.0".into())
        );
        assert_eq!(
            parse_dpkg_status_line("iHR\t1.0.0"),
            PackageState::Broken("1.0.0".into())
        );
        assert_eq!(parse_dpkg_status_line("rc \t1.0.0"), PackageState::Absent);
        assert_eq!(parse_dpkg_status_line("un \t"), PackageState::Absent);
    }

    #[test]
    fn systemctl_show_parsing() {
        let s =
            parse_systemctl_show("LoadState=loaded\nUnitFileState=enabled\nActiveState=active\n");
        assert!(s.enabled() && s.active());
        let s = parse_systemctl_show("LoadState=not-found\nUnitFileState=\nActiveState=inactive\n");
        assert!(!s.enabled() && !s.active());
        let s = parse_systemctl_show(
            "LoadState=loaded\nUnitFileState=enabled\nActiveState=failed\nResult=start-limit-hit\n",
        );
        assert!(s.start_limit_hit() && !s.active());
        // Automatic restarts that trip the limit keep the last failure's result.
        let s = parse_systemctl_show(
            "ActiveState=failed\nResult=exit-code\nNRestarts=5\nStartLimitBurst=5\n",
        );
        assert!(s.start_limit_hit());
        let s = parse_systemctl_show(
            "ActiveState=failed\nResult=exit-code\nNRestarts=1\nStartLimitBurst=5\n",
        );
        assert!(!s.start_limit_hit());
    }
}
