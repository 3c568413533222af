//! Running commands on the host.
//!
//! Every host command runs inside the host's namespaces ([`crate::namespaces`])
//! with a cleared environment: the pod's variables (proxy URLs, anything a
//! chart injected) never reach dpkg maintainer scripts or the agent. Commands
//! that change the host run, where the host has systemd, as *transient units
//! of the host's own systemd* (`systemd-run --wait --collect --pipe`):
//! systemd then runs them with the host's privileges, in a host cgroup,
//! outside the pod's capability bounding set and memory limit, and a package
//! transaction finishes even if the pod is evicted half-way. Read-only
//! queries (`dpkg-query`, `systemctl show`) run directly: they need no
//! privilege, and a transient unit costs tens of milliseconds that a
//! converged re-run cannot afford.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use nodeguard_common::process::{Cmd, Output};
use serde::Serialize;

use crate::namespaces::Enter;

/// The `PATH` host commands get (nothing else is inherited).
pub const HOST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// systemctl (the /usr/bin path works on merged-/usr and classic layouts).
pub const SYSTEMCTL_BIN: &str = "/usr/bin/systemctl";
/// Where `systemd-run` lives on every systemd distribution we support.
pub const SYSTEMD_RUN_BIN: &str = "/usr/bin/systemd-run";

/// How mutating host commands are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ExecMode {
    /// Transient systemd units where the host has systemd, else direct.
    Auto,
    /// Always transient units; fail on hosts without systemd.
    SystemdRun,
    /// Directly in the host namespaces, with the pod's own privileges
    /// (needs a privileged pod for package installs).
    Direct,
}

/// One command to run on the host.
#[derive(Debug, Clone)]
pub struct HostCommand {
    /// argv; `argv[0]` is an absolute host path.
    pub argv: Vec<String>,
    /// Extra environment (non-secret) besides `PATH` and `LANG`.
    pub env: Vec<(String, String)>,
    /// Bytes fed to stdin.
    pub stdin: Option<Vec<u8>>,
    /// Kill after this long.
    pub timeout: Duration,
    /// Whether it changes the host (then it runs as a transient unit).
    pub mutating: bool,
    /// Name of the transient unit (stable per action, so a later run can
    /// find one left running by a killed run).
    pub unit: Option<String>,
}

impl HostCommand {
    /// A read-only query.
    pub fn query(argv: &[&str], timeout: Duration) -> Self {
        Self {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            env: Vec::new(),
            stdin: None,
            timeout,
            mutating: false,
            unit: None,
        }
    }

    /// A command that changes the host, run as unit `unit` where possible.
    pub fn change(argv: Vec<String>, unit: String, timeout: Duration) -> Self {
        Self {
            argv,
            env: Vec::new(),
            stdin: None,
            timeout,
            mutating: true,
            unit: Some(unit),
        }
    }

    /// Add an environment variable.
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// Runs [`HostCommand`]s on the host.
pub trait HostExec: std::fmt::Debug {
    /// Run to completion; a non-zero exit is not an error here.
    fn run(&self, cmd: &HostCommand) -> Result<Output>;
    /// Whether mutating commands become transient units.
    fn uses_transient_units(&self) -> bool;
    /// Run and fail unless the command exits 0; the error names the
    /// command, its exit status and the tail of its stderr.
    fn run_checked(&self, cmd: &HostCommand) -> Result<Output> {
        let out = self.run(cmd)?;
        if !out.status.success() {
            anyhow::bail!(
                "`{}` {}: {}",
                out.display,
                nodeguard_common::process::describe_status(out.status),
                out.stderr_tail()
            );
        }
        Ok(out)
    }
    /// For reports: how commands reach the host.
    fn describe(&self) -> String;
}

/// The real executor: namespaces + optional systemd-run.
#[derive(Debug)]
pub struct NamespaceExec<E: Enter> {
    enter: E,
    transient: bool,
}

impl<E: Enter> NamespaceExec<E> {
    /// `transient`: wrap mutating commands in `systemd-run`.
    pub fn new(enter: E, transient: bool) -> Self {
        Self { enter, transient }
    }
}

impl<E: Enter> NamespaceExec<E> {
    fn run_once(&self, cmd: &HostCommand) -> Result<Output> {
        let argv = if cmd.mutating && self.transient {
            transient_argv(cmd)
        } else {
            cmd.argv.clone()
        };
        let mut run = Cmd::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .env("PATH", HOST_PATH)
            .env("LANG", "C")
            .current_dir("/")
            .timeout(cmd.timeout);
        if !(cmd.mutating && self.transient) {
            for (k, v) in &cmd.env {
                run = run.env(k, v);
            }
        }
        if let Some(bytes) = &cmd.stdin {
            run = run.stdin_bytes(bytes.clone());
        }
        self.enter.apply(run.command_mut());
        run.run()
    }

    /// Whether the host's systemd still has `unit` running (as opposed to a
    /// finished unit it has not garbage-collected yet).
    fn unit_is_running(&self, unit: &str) -> bool {
        let query = HostCommand::query(
            &[SYSTEMCTL_BIN, "is-active", "--", unit],
            UNIT_QUERY_TIMEOUT,
        );
        self.run_once(&query)
            .map(|out| {
                let state = out.stdout_text();
                matches!(
                    state.trim(),
                    "active" | "activating" | "deactivating" | "reloading"
                )
            })
            .unwrap_or(false)
    }
}

/// How long to wait for systemd to collect a finished transient unit whose
/// name we reuse.
const UNIT_COLLECT_WAIT: Duration = Duration::from_secs(5);
const UNIT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// systemd-run's complaint when a unit of that name is still loaded.
fn unit_name_busy(out: &Output) -> bool {
    !out.status.success()
        && String::from_utf8_lossy(&out.stderr).contains("already loaded or has a fragment file")
}

impl<E: Enter> HostExec for NamespaceExec<E> {
    fn run(&self, cmd: &HostCommand) -> Result<Output> {
        let deadline = std::time::Instant::now() + UNIT_COLLECT_WAIT;
        loop {
            let out = self.run_once(cmd)?;
            // Unit names are stable per agent and action, so the next run can
            // find an orphan left by a killed one. `--collect` unloads a
            // finished unit asynchronously: a second command moments later
            // can find the name still taken. A unit that is still *running*
            // is a real conflict and is reported; a finished one is reset
            // and the start retried until systemd has collected it.
            let Some(unit) = cmd
                .unit
                .as_deref()
                .filter(|_| cmd.mutating && self.transient)
            else {
                return Ok(out);
            };
            if !unit_name_busy(&out)
                || std::time::Instant::now() > deadline
                || self.unit_is_running(unit)
            {
                return Ok(out);
            }
            log::debug!("transient unit {unit} not collected yet; retrying");
            let reset = HostCommand::query(
                &[SYSTEMCTL_BIN, "reset-failed", "--", unit],
                UNIT_QUERY_TIMEOUT,
            );
            let _ = self.run_once(&reset);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn uses_transient_units(&self) -> bool {
        self.transient
    }

    fn describe(&self) -> String {
        let how = if self.transient {
            "systemd-run transient units"
        } else {
            "direct"
        };
        format!("{} ({how})", self.enter.describe())
    }
}

/// The `systemd-run` argv that runs `cmd` as a transient unit of the host
/// systemd and waits for it, passing stdin/stdout/stderr and the exit code.
pub fn transient_argv(cmd: &HostCommand) -> Vec<String> {
    let mut argv: Vec<String> = [
        SYSTEMD_RUN_BIN,
        "--wait",
        "--collect",
        "--pipe",
        "--quiet",
        "--service-type=exec",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if let Some(unit) = &cmd.unit {
        argv.push(format!("--unit={unit}"));
    }
    // The description is what the host journal shows for the unit; the
    // default would be the full command line.
    let mut description = String::from("--description=nodeguard install-agent");
    if let Some(unit) = &cmd.unit {
        let _ = write!(description, ": {unit}");
    }
    argv.push(description);
    // Bound the unit itself: killing systemd-run on timeout leaves it running.
    argv.push(format!(
        "--property=RuntimeMaxSec={}",
        cmd.timeout.as_secs().max(1)
    ));
    for (k, v) in &cmd.env {
        argv.push(format!("--setenv={k}={v}"));
    }
    argv.push("--".to_owned());
    argv.extend(cmd.argv.iter().cloned());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(code: i32, stderr: &str) -> Output {
        use std::os::unix::process::ExitStatusExt;
        Output {
            display: "systemd-run".into(),
            status: std::process::ExitStatus::from_raw(code << 8),
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn a_not_yet_collected_unit_name_is_recognised() {
        let busy = "Failed to start transient service unit: Unit nodeguard-install-agent-x-package.service was already loaded or has a fragment file.";
        assert!(unit_name_busy(&output(1, busy)));
        assert!(!unit_name_busy(&output(1, "Job failed")));
        assert!(!unit_name_busy(&output(0, busy)));
    }

    #[test]
    fn transient_argv_waits_collects_pipes_and_bounds_the_unit() {
        let cmd = HostCommand::change(
            vec!["/usr/bin/dpkg".into(), "-i".into(), "/x.deb".into()],
            "nodeguard-install-agent-tinyagent-install".into(),
            Duration::from_secs(600),
        )
        .with_env("DEBIAN_FRONTEND", "noninteractive");
        let argv = transient_argv(&cmd);
        assert_eq!(
            &argv[..6],
            [
                "/usr/bin/systemd-run",
                "--wait",
                "--collect",
                "--pipe",
                "--quiet",
                "--service-type=exec"
            ]
        );
        assert!(argv.contains(&"--unit=nodeguard-install-agent-tinyagent-install".to_owned()));
        assert!(argv.contains(&"--property=RuntimeMaxSec=600".to_owned()));
        assert!(argv.contains(&"--setenv=DEBIAN_FRONTEND=noninteractive".to_owned()));
        let sep = argv.iter().position(|a| a == "--").expect("separator");
        assert_eq!(&argv[sep + 1..], ["/usr/bin/dpkg", "-i", "/x.deb"]);
    }
}
