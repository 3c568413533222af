//! The recording [`HostExec`] that [`crate::namespaces`] promises: it runs
//! nothing, records every command, and answers from a small model of a
//! systemd host with one package ([`FakeHost`]). With it the session's
//! orchestration (install, recovery, uninstall) is unit-tested without
//! root, namespaces or a booted node.

use std::os::unix::process::ExitStatusExt;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use nodeguard_common::process::Output;

use crate::hostexec::{HostCommand, HostExec, SYSTEMCTL_BIN};

/// One recorded command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// argv as given (before any systemd-run wrapping).
    pub argv: Vec<String>,
    /// Whether it was a mutating command (a transient unit).
    pub mutating: bool,
    /// Its transient unit name.
    pub unit: Option<String>,
}

/// The model of the host the recorder answers from.
#[derive(Debug, Clone, Default)]
pub struct FakeHost {
    /// Installed package version (dpkg-query), if any.
    pub installed: Option<String>,
    /// The version an install command puts in place.
    pub installs: String,
    /// The agent unit's `UnitFileState`.
    pub unit_file_state: String,
    /// The agent unit's `ActiveState`.
    pub active_state: String,
    /// The agent unit's `Result`.
    pub result: String,
    /// `systemctl list-units` lines for this agent's transient units.
    pub transient_units: Vec<String>,
    /// argv[0] values that fail (exit 1).
    pub failing: Vec<String>,
}

/// A [`HostExec`] that records and answers from a [`FakeHost`].
#[derive(Debug, Default)]
pub struct RecordingExec {
    /// The host model (mutated by the commands).
    pub host: Mutex<FakeHost>,
    calls: Mutex<Vec<Call>>,
}

impl RecordingExec {
    /// A recorder over `host`.
    pub fn new(host: FakeHost) -> Self {
        Self {
            host: Mutex::new(host),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Every command so far, as space-joined argv.
    pub fn commands(&self) -> Vec<String> {
        self.calls
            .lock()
            .map(|c| c.iter().map(|c| c.argv.join(" ")).collect())
            .unwrap_or_default()
    }

    /// Every command so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn answer(&self, cmd: &HostCommand) -> (i32, String, String) {
        let Ok(mut host) = self.host.lock() else {
            return (1, String::new(), "poisoned".into());
        };
        let argv: Vec<&str> = cmd.argv.iter().map(String::as_str).collect();
        let program = argv.first().copied().unwrap_or_default();
        if host.failing.iter().any(|f| f == program) {
            return (1, String::new(), format!("{program}: failed (fake)"));
        }
        match argv.as_slice() {
            ["/usr/bin/dpkg-query", ..] => match &host.installed {
                Some(v) => (0, format!("ii \t{v}\n"), String::new()),
                None => (1, String::new(), "no packages found".into()),
            },
            [SYSTEMCTL_BIN, "show", ..] => {
                let load = if host.installed.is_some() {
                    "loaded"
                } else {
                    "not-found"
                };
                (
                    0,
                    format!(
                        "LoadState={load}\nUnitFileState={}\nActiveState={}\nResult={}\n",
                        host.unit_file_state, host.active_state, host.result
                    ),
                    String::new(),
                )
            }
            [SYSTEMCTL_BIN, "list-units", ..] => {
                (0, host.transient_units.join("\n"), String::new())
            }
            [SYSTEMCTL_BIN, verb, "--", unit] => {
                let agent_unit = !unit.starts_with("nodeguard-install-agent-");
                match *verb {
                    "enable" => host.unit_file_state = "enabled".into(),
                    "disable" => host.unit_file_state = "disabled".into(),
                    "start" | "restart" if agent_unit => {
                        if host.result == "start-limit-hit" {
                            return (
                                1,
                                String::new(),
                                "Job failed: start request repeated too quickly".into(),
                            );
                        }
                        host.active_state = "active".into();
                        host.result = "success".into();
                    }
                    "stop" if agent_unit => host.active_state = "inactive".into(),
                    "stop" => host.transient_units.retain(|l| !l.contains(unit)),
                    "reset-failed" if agent_unit => {
                        host.result = "success".into();
                        host.active_state = "inactive".into();
                    }
                    "reset-failed" => host.transient_units.retain(|l| !l.contains(unit)),
                    _ => {}
                }
                (0, String::new(), String::new())
            }
            [SYSTEMCTL_BIN, ..] => (0, String::new(), String::new()),
            ["/usr/bin/apt-get", "install", ..] | ["/usr/bin/dpkg", "--install", ..] => {
                host.installed = Some(host.installs.clone());
                (0, String::new(), String::new())
            }
            ["/usr/bin/apt-get", "remove" | "purge", ..] => {
                host.installed = None;
                host.unit_file_state = String::new();
                host.active_state = "inactive".into();
                (0, String::new(), String::new())
            }
            _ => (0, String::new(), String::new()),
        }
    }
}

impl HostExec for RecordingExec {
    fn run(&self, cmd: &HostCommand) -> Result<Output> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(Call {
                argv: cmd.argv.clone(),
                mutating: cmd.mutating,
                unit: cmd.unit.clone(),
            });
        }
        let (code, stdout, stderr) = self.answer(cmd);
        Ok(Output {
            display: cmd.argv.join(" "),
            status: std::process::ExitStatus::from_raw(code << 8),
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
            duration: Duration::ZERO,
        })
    }

    fn uses_transient_units(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        "recording (no host)".to_owned()
    }
}
