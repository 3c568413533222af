//! Converging: compare the desired state of the agent with what the host
//! has, and decide the smallest list of actions that closes the gap.
//!
//! Pure: [`decide`] takes [`Desired`] and [`Observed`] values and returns
//! [`Action`]s; gathering the observation lives in [`crate::observe`] (through
//! [`crate::session::Session::observe`]) and carrying the actions out in
//! [`crate::install`]. A host that matches the desired state gets an
//! empty list — the converged re-run that does nothing and says so.

use serde::Serialize;

use crate::state::StateRecord;

/// What the host should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Package name in the host database.
    pub package: String,
    /// Exact version, as the package database reports it.
    pub version: String,
    /// Digest over every rendered config file (path, mode, content).
    pub config_digest: String,
    /// Digest over the rendered activation command (credentials included),
    /// so a rotated credential triggers re-activation.
    pub activation_digest: Option<String>,
}

/// The systemd view of the agent's unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnitState {
    /// `LoadState` (loaded, not-found, masked, …).
    pub load_state: String,
    /// `UnitFileState` (enabled, disabled, static, …).
    pub unit_file_state: String,
    /// `ActiveState` (active, inactive, failed, activating, …).
    pub active_state: String,
    /// `Result` of the last run (success, exit-code, start-limit-hit, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub result: String,
    /// `NRestarts`: automatic restarts since the unit was last started by hand.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n_restarts: u32,
    /// `StartLimitBurst`: starts allowed per `StartLimitIntervalSec`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_limit_burst: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl UnitState {
    /// Whether the unit starts at boot.
    pub fn enabled(&self) -> bool {
        matches!(
            self.unit_file_state.as_str(),
            "enabled" | "enabled-runtime" | "static" | "alias" | "generated"
        )
    }

    /// Whether systemd refuses to start the unit until `reset-failed`
    /// (it was started `StartLimitBurst` times within
    /// `StartLimitIntervalSec`). A refused manual start sets
    /// `Result=start-limit-hit`; when automatic restarts trip the limit,
    /// systemd keeps the last failure's result (`exit-code`), so a failed
    /// unit whose restarts reached the burst counts too.
    pub fn start_limit_hit(&self) -> bool {
        self.result == "start-limit-hit"
            || (self.active_state == "failed"
                && self.start_limit_burst > 0
                && self.n_restarts >= self.start_limit_burst)
    }

    /// Whether the unit runs (or is starting).
    pub fn active(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "activating" | "reloading"
        )
    }
}

/// What the host has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Installed version, if the package is installed (fully configured).
    pub installed_version: Option<String>,
    /// The package exists in the database but is half-installed/unconfigured.
    pub package_broken: bool,
    /// Digest of the on-disk config files, computed like [`Desired::config_digest`];
    /// `None` when any file is missing or unreadable.
    pub config_digest: Option<String>,
    /// The agent's unit.
    pub unit: UnitState,
    /// nodeguard's record on the host, if any.
    pub record: Option<StateRecord>,
}

/// One converge action, in execution order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// A previous run was interrupted: wait for its transient unit, finish
    /// interrupted package transactions.
    Recover,
    /// Fetch, verify and stage the package, then install it fresh.
    Install,
    /// Replace the installed version.
    Upgrade {
        /// Version found on the host.
        from: String,
    },
    /// (Re)write the config files.
    Configure,
    /// Enable the unit at boot.
    Enable,
    /// Start the stopped unit.
    Start,
    /// Restart the running unit (new package or config).
    Restart,
    /// Run the profile's activation command.
    Activate,
}

impl Action {
    /// The kebab-case name used in reports and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Recover => "recover",
            Self::Install => "install",
            Self::Upgrade { .. } => "upgrade",
            Self::Configure => "configure",
            Self::Enable => "enable",
            Self::Start => "start",
            Self::Restart => "restart",
            Self::Activate => "activate",
        }
    }

    /// Every action name, for zero-valued metric series.
    pub const NAMES: [&'static str; 8] = [
        "recover",
        "install",
        "upgrade",
        "configure",
        "enable",
        "start",
        "restart",
        "activate",
    ];
}

/// Decide the actions that bring `observed` to `desired`.
pub fn decide(desired: &Desired, observed: &Observed) -> Vec<Action> {
    let mut actions = Vec::new();
    // A run that died half-way may have written config without restarting.
    let interrupted = observed
        .record
        .as_ref()
        .is_some_and(|r| r.in_progress.is_some());
    if interrupted || observed.package_broken {
        actions.push(Action::Recover);
    }
    let package_change = match &observed.installed_version {
        None => Some(Action::Install),
        Some(v) if !version_matches(v, &desired.version) => {
            Some(Action::Upgrade { from: v.clone() })
        }
        Some(_) if observed.package_broken => Some(Action::Install),
        Some(_) => None,
    };
    let package_changed = package_change.is_some();
    actions.extend(package_change);
    let config_changed = observed.config_digest.as_deref() != Some(desired.config_digest.as_str());
    if config_changed {
        actions.push(Action::Configure);
    }
    // A fresh package may ship its unit enabled (deb postinst) or not (rpm):
    // enable whenever we cannot see it enabled now.
    if package_changed || !observed.unit.enabled() {
        actions.push(Action::Enable);
    }
    let activation_stale = desired.activation_digest.is_some()
        && observed
            .record
            .as_ref()
            .and_then(|r| r.activation_digest.as_ref())
            != desired.activation_digest.as_ref();
    if activation_stale || (package_changed && desired.activation_digest.is_some()) {
        actions.push(Action::Activate);
    }
    if package_changed || config_changed || activation_stale || interrupted {
        // A running unit is restarted so it picks up the new binary or
        // config (a package upgrade does not restart it by itself).
        actions.push(if observed.unit.active() {
            Action::Restart
        } else {
            Action::Start
        });
    } else if !observed.unit.active() {
        actions.push(Action::Start);
    }
    actions
}

/// dpkg reports the full version; rpm `VERSION-RELEASE`. A profile version
/// without a release matches any release of that version.
pub fn version_matches(installed: &str, wanted: &str) -> bool {
    installed == wanted
        || (!wanted.contains('-')
            && installed
                .strip_prefix(wanted)
                .is_some_and(|rest| rest.starts_with('-')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{InProgress, StateRecord};

    fn desired() -> Desired {
        Desired {
            package: "tinyagent".into(),
            version: "1.0.0".into(),
            config_digest: "c1".into(),
            activation_digest: Some("a1".into()),
        }
    }

    fn converged() -> Observed {
        Observed {
            installed_version: Some("1.0.0".into()),
            package_broken: false,
            config_digest: Some("c1".into()),
            unit: UnitState {
                load_state: "loaded".into(),
                unit_file_state: "enabled".into(),
                active_state: "active".into(),
                result: "success".into(),
                ..UnitState::default()
            },
            record: Some(StateRecord::new(
                "tinyagent",
                "tinyagent",
                "1.0.0",
                "deb",
                "c1",
                Some("a1".into()),
            )),
        }
    }

    fn names(actions: &[Action]) -> Vec<&'static str> {
        actions.iter().map(Action::name).collect()
    }

    #[test]
    fn converged_host_needs_nothing() {
        assert!(decide(&desired(), &converged()).is_empty());
    }

    #[test]
    fn fresh_host_gets_full_install() {
        let observed = Observed::default();
        assert_eq!(
            names(&decide(&desired(), &observed)),
            ["install", "configure", "enable", "activate", "start"]
        );
    }

    #[test]
    fn new_version_is_an_upgrade_then_start() {
        let mut d = desired();
        d.version = "2.0.0".into();
        let actions = decide(&d, &converged());
        assert_eq!(
            actions[0],
            Action::Upgrade {
                from: "1.0.0".into()
            }
        );
        assert_eq!(
            names(&actions),
            ["upgrade", "enable", "activate", "restart"]
        );
    }

    #[test]
    fn changed_config_reconfigures_and_restarts() {
        let mut o = converged();
        o.config_digest = Some("old".into());
        assert_eq!(names(&decide(&desired(), &o)), ["configure", "restart"]);
    }

    #[test]
    fn stopped_unit_is_started_and_disabled_unit_enabled() {
        let mut o = converged();
        o.unit.active_state = "failed".into();
        o.unit.unit_file_state = "disabled".into();
        assert_eq!(names(&decide(&desired(), &o)), ["enable", "start"]);
    }

    #[test]
    fn rotated_credential_reactivates() {
        let mut d = desired();
        d.activation_digest = Some("a2".into());
        assert_eq!(names(&decide(&d, &converged())), ["activate", "restart"]);
    }

    #[test]
    fn interrupted_run_is_recovered_first() {
        let mut o = converged();
        if let Some(r) = o.record.as_mut() {
            r.in_progress = Some(InProgress {
                action: "install".into(),
                run_id: "x".into(),
                unit: None,
                started_at: 0,
            });
        }
        assert_eq!(names(&decide(&desired(), &o)), ["recover", "restart"]);
        o.package_broken = true;
        assert_eq!(
            names(&decide(&desired(), &o)),
            ["recover", "install", "enable", "activate", "restart"]
        );
    }

    #[test]
    fn versions_match_with_or_without_release() {
        assert!(version_matches("1.0.0-1", "1.0.0"));
        assert!(version_matches("1.0.0-1", "1.0.0-1"));
        assert!(!version_matches("1.0.0-1", "1.0.0-2"));
        assert!(!version_matches("1.0.01", "1.0.0"));
    }
}
