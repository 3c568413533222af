//! One run's context: profile, credentials, host root, host facts, the
//! executor, and the desired/observed state both converge and status use.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use nodeguard_common::hostroot::HostRoot;

use crate::cli::AgentArgs;
use crate::configured::{self, NotConfigured};
use crate::converge::{Desired, Observed};
use crate::desired::{
    activation_digest, config_digest, load_values, missing_error, observed_config_digest,
    render_configs, RenderedConfig,
};
use crate::fetch::FetchOptions;
use crate::host::{DetectHost, HostFacts, HostFactsSource, Init};
use crate::hostexec::{
    ExecMode, HostCommand, HostExec, NamespaceExec, SYSTEMCTL_BIN, SYSTEMD_RUN_BIN,
};
use crate::namespaces::{open_error, OwnNamespaces, TargetNamespaces};
use crate::observe::{package_state, unit_state, PackageState};
use crate::profile::Profile;
use crate::report::{AgentReport, HostSummary, Outcome, PackageSummary};
use crate::select::{select, Selection, Unsupported};
use crate::state::StateStore;
use crate::template::Values;

/// Timeout of systemctl requests.
pub const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(120);

/// Everything a command works with.
#[derive(Debug)]
pub struct Session {
    /// The profile.
    pub profile: Profile,
    /// Template values (credentials registered as secrets), or why not.
    pub values: Result<Values, String>,
    /// Required credentials that are absent (`not_configured`).
    pub missing_credentials: Vec<String>,
    /// The host's filesystem.
    pub root: HostRoot,
    /// Host facts.
    pub facts: HostFacts,
    /// How host commands run; `None` when the host is only a directory
    /// (plan on a fixture root).
    pub exec: Option<Box<dyn HostExec>>,
    /// This run's id (staging directory, logs).
    pub run_id: String,
    /// The flags.
    pub args: AgentArgs,
}

impl Session {
    /// Set up a run. `need_exec`: commands that must reach the host's
    /// namespaces (everything but a plan on an explicit `--host-root`).
    pub fn open(args: &AgentArgs, run_id: &str, need_exec: bool) -> Result<Self> {
        let pid = args.target_pid.unwrap_or(1);
        if pid < 0 {
            bail!("--target-pid must be 0 or a process id, not {pid}");
        }
        let explicit_root = args.common.host_root != Path::new("/");
        let root_path = if explicit_root || pid == 0 {
            args.common.host_root.clone()
        } else {
            // The host's filesystem as the target process sees it: with
            // hostPID no hostPath mount is needed at all.
            PathBuf::from(format!("/proc/{pid}/root"))
        };
        let root = HostRoot::open(&root_path).map_err(|e| {
            if explicit_root || pid == 0 {
                anyhow::Error::new(e)
                    .context(format!("cannot use host root {}", root_path.display()))
            } else {
                open_error(&root_path.display().to_string(), e)
            }
        })?;
        let facts = DetectHost.facts(&root)?;
        let exec = if need_exec || !explicit_root || args.target_pid.is_some() {
            Some(make_exec(args.exec_mode, pid, &root, &facts)?)
        } else {
            None
        };
        Self::assemble(args, run_id, root, facts, exec)
    }

    /// A session over a host already reached: loads the profile (and the
    /// `--packages-file`) and the credentials. Tests pass a recording
    /// executor here.
    pub fn assemble(
        args: &AgentArgs,
        run_id: &str,
        root: HostRoot,
        facts: HostFacts,
        exec: Option<Box<dyn HostExec>>,
    ) -> Result<Self> {
        let mut profile = Profile::load(&args.profile)?;
        if let Some(file) = &args.packages_file {
            profile.use_packages_file(file)?;
        }
        let (values, missing_credentials) =
            match load_values(&profile, args.credentials_dir.as_deref()) {
                Ok(creds) => (Ok(creds.values), creds.missing),
                Err(e) => (Err(format!("{e:#}")), Vec::new()),
            };
        Ok(Self {
            profile,
            values,
            missing_credentials,
            root,
            facts,
            exec,
            run_id: run_id.to_owned(),
            args: args.clone(),
        })
    }

    /// The executor; an error when this session has none.
    pub fn exec(&self) -> Result<&dyn HostExec> {
        self.exec
            .as_deref()
            .context("host commands are not available in this mode")
    }

    /// Template values, or the credential error.
    pub fn values(&self) -> Result<&Values> {
        let values = self.values.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        if !self.missing_credentials.is_empty() {
            bail!(
                "{}",
                missing_error(
                    &self.missing_credentials,
                    self.args.credentials_dir.as_deref()
                )
            );
        }
        Ok(values)
    }

    /// The host summary for reports.
    pub fn host_summary(&self) -> HostSummary {
        HostSummary::new(&self.facts, self.exec.as_ref().map(|e| e.describe()))
    }

    /// Package selection.
    pub fn select(&self) -> Result<Selection<'_>, Unsupported> {
        let root = &self.root;
        select(&self.profile, &self.facts, &|p| is_executable(root, p))
    }

    /// The opening every command shares: select the package for this host
    /// and put it in the report, or report the host unsupported (`None`).
    pub fn select_or_report(&self, report: &mut AgentReport) -> Option<Selection<'_>> {
        match self.select() {
            Ok(sel) => {
                report.package = Some(self.package_summary(&sel));
                Some(sel)
            }
            Err(u) => {
                report.status = Outcome::Unsupported;
                report.reason = Some(u.reason);
                None
            }
        }
    }

    /// What is still a placeholder for this selection (sha256, package
    /// file, required credentials); empty when everything is set.
    pub fn not_configured(&self, sel: &Selection<'_>) -> Vec<NotConfigured> {
        configured::gaps(
            &self.profile,
            sel,
            &self.missing_credentials,
            &|p: &Path| p.is_file(),
        )
    }

    /// Report the gaps as `not_configured` (with the host's state as far
    /// as it can be seen without the missing values); `Ok(false)` when
    /// there are gaps. A credential that is present but malformed (a
    /// control character, given under two spellings, unreadable) is an
    /// error, not a gap.
    pub fn configured_or_report(
        &self,
        sel: &Selection<'_>,
        report: &mut AgentReport,
    ) -> Result<bool> {
        if let Err(e) = &self.values {
            bail!("{e}");
        }
        let gaps = self.not_configured(sel);
        if gaps.is_empty() {
            return Ok(true);
        }
        let line = configured::summary(&gaps);
        log::warn!("{line}");
        report.status = Outcome::NotConfigured;
        report.reason = Some(line);
        report.not_configured = gaps;
        if let Ok(exec) = self.exec() {
            let package = self.profile.package_name(sel.entry);
            if let Ok(PackageState::Installed(_)) =
                package_state(exec, &self.root, sel.entry.format, package)
            {
                report.installed = true;
            }
            if self.facts.init == Init::Systemd {
                report.active = unit_state(exec, &self.profile.unit()).is_ok_and(|u| u.active());
            }
            let record = self.store().load().ok().flatten();
            report.activated = report.installed
                && (self.profile.activate.is_none()
                    || record.is_some_and(|r| r.activation_digest.is_some()));
            report.registered = crate::verify::registered(self).unwrap_or(report.activated);
        }
        Ok(false)
    }

    /// Fill the report's installed/active/activated/registered from an
    /// observation (before any change).
    pub fn report_observed_state(
        &self,
        report: &mut AgentReport,
        desired: &Desired,
        observed: &Observed,
    ) {
        report.installed = observed.installed_version.is_some() && !observed.package_broken;
        report.active = observed.unit.active();
        report.activated = report.installed
            && match &desired.activation_digest {
                None => true,
                Some(d) => {
                    observed
                        .record
                        .as_ref()
                        .and_then(|r| r.activation_digest.as_ref())
                        == Some(d)
                }
            };
        report.registered = crate::verify::registered(self).unwrap_or(report.activated);
    }

    /// Download settings from the flags.
    pub fn fetch_options(&self) -> FetchOptions {
        FetchOptions {
            ca_bundle: self.args.ca_bundle.clone(),
            allow_http: self.args.allow_http,
            max_bytes: self.args.max_package_bytes,
            ..FetchOptions::default()
        }
    }

    /// The report's package summary.
    pub fn package_summary(&self, sel: &Selection<'_>) -> PackageSummary {
        let e = sel.entry;
        PackageSummary {
            name: self.profile.package_name(e).to_owned(),
            format: e.format,
            arch: e.arch,
            version: e.version.clone(),
            source: e
                .url
                .as_deref()
                .map(nodeguard_common::redact::redact)
                .or_else(|| e.path.as_ref().map(|p| p.display().to_string()))
                .unwrap_or_default(),
            sha256: e.sha256.clone(),
            installer: sel.installer,
        }
    }

    /// The state store of this agent.
    pub fn store(&self) -> StateStore<'_> {
        StateStore::new(&self.root, &self.profile.name)
    }

    /// Desired state plus the rendered config files.
    pub fn desired(&self, sel: &Selection<'_>) -> Result<(Desired, Vec<RenderedConfig>)> {
        let values = self.values()?;
        let configs = render_configs(&self.profile, sel.entry.format, values)?;
        let desired = Desired {
            package: self.profile.package_name(sel.entry).to_owned(),
            version: sel.entry.version.clone(),
            config_digest: config_digest(&configs),
            activation_digest: activation_digest(&self.profile, values)?,
        };
        Ok((desired, configs))
    }

    /// Observe the host (package database, unit, config files, record).
    pub fn observe(&self, sel: &Selection<'_>, configs: &[RenderedConfig]) -> Result<Observed> {
        let exec = self.exec()?;
        let package = self.profile.package_name(sel.entry);
        let (installed_version, package_broken) =
            match package_state(exec, &self.root, sel.entry.format, package)? {
                PackageState::Absent => (None, false),
                PackageState::Installed(v) => (Some(v), false),
                PackageState::Broken(v) => (Some(v), true),
            };
        let unit = if self.facts.init == Init::Systemd {
            unit_state(exec, &self.profile.unit())?
        } else {
            Default::default()
        };
        Ok(Observed {
            installed_version,
            package_broken,
            config_digest: observed_config_digest(&self.root, configs),
            unit,
            record: self.store().load()?,
        })
    }

    /// Run `systemctl <verb> <unit>` on the host. systemctl only asks PID 1,
    /// which does the work with its own privileges, so no transient unit is
    /// needed (and the request completes even if we die).
    pub fn systemctl(&self, verb: &str, unit: &str) -> Result<()> {
        self.exec()?.run_checked(&HostCommand::query(
            &[SYSTEMCTL_BIN, verb, "--", unit],
            SYSTEMCTL_TIMEOUT,
        ))?;
        Ok(())
    }

    /// `systemctl daemon-reload`.
    pub fn daemon_reload(&self) -> Result<()> {
        self.exec()?.run_checked(&HostCommand::query(
            &[SYSTEMCTL_BIN, "daemon-reload"],
            SYSTEMCTL_TIMEOUT,
        ))?;
        Ok(())
    }

    /// The stable transient-unit name for an action of this agent.
    pub fn unit_name(&self, action: &str) -> String {
        let agent: String = self
            .profile
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("nodeguard-install-agent-{agent}-{action}")
    }
}

fn make_exec(
    mode: ExecMode,
    pid: i32,
    root: &HostRoot,
    facts: &HostFacts,
) -> Result<Box<dyn HostExec>> {
    let has_systemd = facts.init == Init::Systemd && is_executable(root, SYSTEMD_RUN_BIN);
    let transient = match mode {
        ExecMode::Auto => has_systemd,
        ExecMode::SystemdRun if !has_systemd => {
            bail!("--exec-mode systemd-run: the host has no running systemd with {SYSTEMD_RUN_BIN}")
        }
        ExecMode::SystemdRun => true,
        ExecMode::Direct => false,
    };
    if pid == 0 {
        Ok(Box::new(NamespaceExec::new(OwnNamespaces, transient)))
    } else {
        Ok(Box::new(NamespaceExec::new(
            TargetNamespaces::open(pid)?,
            transient,
        )))
    }
}

/// Whether a host path is an executable regular file.
pub fn is_executable(root: &HostRoot, path: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    root.metadata(path)
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
