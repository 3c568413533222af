//! The report install-agent prints: one JSON document per command, every
//! step with its status, duration and (redacted) error.

use std::time::Instant;

use serde::Serialize;

use nodeguard_common::redact::redact;
use nodeguard_common::report::{Record, Report};

use crate::configured::NotConfigured;
use crate::converge::UnitState;
use crate::host::HostFacts;
use crate::profile::{Arch, PackageFormat};
use crate::select::Installer;

/// Overall outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// plan: what would happen.
    Planned,
    /// install: the host already matched; nothing was changed.
    Converged,
    /// install: the host was changed and now matches.
    Changed,
    /// status: installed, configured, active, verified.
    Healthy,
    /// status: something does not match.
    Unhealthy,
    /// uninstall: removed.
    Removed,
    /// uninstall: nothing to remove.
    Absent,
    /// The host cannot get this agent (see `reason`).
    Unsupported,
    /// The agent is there but nodeguard did not install it (`--adopt`).
    NotOwned,
    /// A placeholder sum, a package file missing from the image or a
    /// missing required credential (see `not_configured`). Spelled with an
    /// underscore: the chart, the entrypoint and the alerts match on it.
    #[serde(rename = "not_configured")]
    NotConfigured,
    /// A step failed (see `steps`).
    Failed,
}

/// Status of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Checked, nothing to change.
    Ok,
    /// Changed the host.
    Changed,
    /// Would run (plan).
    Planned,
    /// Waiting on something outside the host (platform registration).
    Pending,
    /// Not needed / not applicable.
    Skipped,
    /// Failed; `error` says why.
    Failed,
}

/// One step of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What the step does (`install`, `configure`, `verify`, …).
    pub name: String,
    /// How it went.
    pub status: StepStatus,
    /// Wall time.
    pub duration_ms: u64,
    /// What was done or found (redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Why it failed (redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The host as install-agent saw it.
#[derive(Debug, Clone, Serialize)]
pub struct HostSummary {
    /// os-release ID.
    pub os_id: String,
    /// os-release VERSION_ID.
    pub version_id: Option<String>,
    /// os-release PRETTY_NAME.
    pub pretty_name: Option<String>,
    /// OS family.
    pub family: String,
    /// Native package format.
    pub package_format: Option<PackageFormat>,
    /// Preferred package manager.
    pub package_manager: Option<String>,
    /// Package architecture.
    pub arch: Option<Arch>,
    /// Kernel machine.
    pub machine: String,
    /// Image-based OS.
    pub immutable: bool,
    /// Init system.
    pub init: crate::host::Init,
    /// How host commands are run (namespaces, transient units or direct).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<String>,
}

impl HostSummary {
    /// From facts.
    pub fn new(f: &HostFacts, exec: Option<String>) -> Self {
        Self {
            os_id: f.os_id.clone(),
            version_id: f.version_id.clone(),
            pretty_name: f.pretty_name.clone(),
            family: f.family.clone(),
            package_format: f.package_format,
            package_manager: f.package_manager.clone(),
            arch: f.arch,
            machine: f.machine.clone(),
            immutable: f.immutable,
            init: f.init,
            exec,
        }
    }
}

/// The chosen package.
#[derive(Debug, Clone, Serialize)]
pub struct PackageSummary {
    /// Package name.
    pub name: String,
    /// deb/rpm.
    pub format: PackageFormat,
    /// amd64/arm64.
    pub arch: Arch,
    /// Desired version.
    pub version: String,
    /// URL (redacted) or image path.
    pub source: String,
    /// Pinned sha256.
    pub sha256: String,
    /// Host tool that installs it.
    pub installer: Installer,
}

/// What the host had before the run (or has, for `status`).
#[derive(Debug, Clone, Serialize)]
pub struct ObservedSummary {
    /// Installed version, if any.
    pub installed_version: Option<String>,
    /// Package present but not fully installed.
    pub package_broken: bool,
    /// Digest of the on-disk config (null if missing).
    pub config_digest: Option<String>,
    /// Whether it matches the desired digest.
    pub config_current: bool,
    /// The agent's unit.
    pub unit: UnitState,
    /// Whether nodeguard's ownership marker is present.
    pub owned: bool,
    /// Whether the last activation with the current credentials succeeded.
    pub activated: Option<bool>,
}

/// The report body.
#[derive(Debug, Clone, Serialize)]
pub struct AgentReport {
    /// plan | install | status | uninstall.
    pub command: &'static str,
    /// Profile name.
    pub agent: String,
    /// Overall outcome.
    pub status: Outcome,
    /// Why (unsupported, not owned, not configured, failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What is still to be set, with the values that set it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_configured: Vec<NotConfigured>,
    /// Whether the host was changed.
    pub changed: bool,
    /// The agent's package is installed (at any version, not half-installed).
    pub installed: bool,
    /// Its unit is active.
    pub active: bool,
    /// It was activated with the current credentials (or needs no activation).
    pub activated: bool,
    /// It registered with its platform (the profile's `[registered]` check;
    /// without one, the same as `activated`).
    pub registered: bool,
    /// The host.
    pub host: Option<HostSummary>,
    /// The chosen package.
    pub package: Option<PackageSummary>,
    /// Desired config digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    /// The observed state before acting.
    pub observed: Option<ObservedSummary>,
    /// Every step.
    pub steps: Vec<Step>,
}

impl AgentReport {
    /// An empty report for `command` on `agent`.
    pub fn new(command: &'static str, agent: &str) -> Self {
        Self {
            command,
            agent: agent.to_owned(),
            status: Outcome::Failed,
            reason: None,
            not_configured: Vec::new(),
            changed: false,
            installed: false,
            active: false,
            activated: false,
            registered: false,
            host: None,
            package: None,
            config_digest: None,
            observed: None,
            steps: Vec::new(),
        }
    }

    /// Time and record a step; its error (redacted) is kept and returned.
    pub fn step<T>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> anyhow::Result<(StepStatus, Option<String>, T)>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let result = f();
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok((status, detail, value)) => {
                if status == StepStatus::Changed {
                    self.changed = true;
                }
                self.steps.push(Step {
                    name: name.to_owned(),
                    status,
                    duration_ms,
                    detail: detail.map(|d| redact(&d)),
                    error: None,
                });
                Ok(value)
            }
            Err(e) => {
                self.steps.push(Step {
                    name: name.to_owned(),
                    status: StepStatus::Failed,
                    duration_ms,
                    detail: None,
                    error: Some(redact(&format!("{e:#}"))),
                });
                Err(e)
            }
        }
    }

    /// Record a step that did not run.
    pub fn note(&mut self, name: &str, status: StepStatus, detail: impl Into<String>) {
        self.steps.push(Step {
            name: name.to_owned(),
            status,
            duration_ms: 0,
            detail: Some(redact(&detail.into())),
            error: None,
        });
    }
}

impl Report for AgentReport {
    const SCHEMA_VERSION: u32 = 1;

    fn text(
        &self,
        ctx: &nodeguard_common::report::RunContext,
        painter: &nodeguard_common::text::Painter,
    ) -> String {
        crate::text::render(self, ctx, painter)
    }

    fn jsonl_records(&self) -> Vec<Record> {
        // One summary line, then one line per step: each stays far below
        // the 8 KiB a CRI log line may hold.
        #[derive(Serialize)]
        struct Summary<'a> {
            command: &'a str,
            agent: &'a str,
            status: Outcome,
            reason: &'a Option<String>,
            #[serde(skip_serializing_if = "<[NotConfigured]>::is_empty")]
            not_configured: &'a [NotConfigured],
            changed: bool,
            installed: bool,
            active: bool,
            activated: bool,
            registered: bool,
            host: &'a Option<HostSummary>,
            package: &'a Option<PackageSummary>,
            observed: &'a Option<ObservedSummary>,
        }
        let mut records = vec![Record::new(
            "summary",
            &Summary {
                command: self.command,
                agent: &self.agent,
                status: self.status,
                reason: &self.reason,
                not_configured: &self.not_configured,
                changed: self.changed,
                installed: self.installed,
                active: self.active,
                activated: self.activated,
                registered: self.registered,
                host: &self.host,
                package: &self.package,
                observed: &self.observed,
            },
        )];
        records.extend(self.steps.iter().map(|s| Record::new("step", s)));
        records
    }
}
