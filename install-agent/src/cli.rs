//! Command-line interface (every flag is also a `NODEGUARD_*` variable).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use nodeguard_common::cli::CommonArgs;
use nodeguard_common::exit;

use crate::hostexec::ExecMode;

/// Exit codes, shown in `--help` (shared wording from nodeguard-common).
pub const EXIT_CODES: &[(u8, &str)] = &[
    (
        0,
        "success (plan printed, host converged or changed, agent healthy, agent removed)",
    ),
    (
        1,
        "status: the agent is not healthy (not installed, drifted, stopped, not verified)",
    ),
    (
        2,
        "bad profile, unreadable credentials, host not reachable, metrics file not writable",
    ),
    (3, "a step failed; the report names it"),
    (4, "another install-agent run holds the host lock"),
    (
        5,
        "the package does not match its pinned sha256; nothing was installed",
    ),
    (
        6,
        "the agent is installed but not by nodeguard; pass --adopt to manage it",
    ),
    (
        7,
        "the host cannot get this agent (immutable OS, no package manager, no package for its OS/arch)",
    ),
];

/// Environment and logging notes, shown in `--help`.
const ENVIRONMENT: &str = "Environment: every flag is also a variable NODEGUARD_<FLAG>, e.g. NODEGUARD_PROFILE,
NODEGUARD_CREDENTIALS_DIR, NODEGUARD_TARGET_PID, NODEGUARD_EXEC_MODE, NODEGUARD_CA_BUNDLE,
NODEGUARD_HOST_ROOT, NODEGUARD_FORMAT, NODEGUARD_METRICS_FILE (see `install-agent <command> --help`).
Logs: RUST_LOG (stderr, redacted). Download proxy: HTTPS_PROXY / NO_PROXY.";

/// The text after `--help`: exit codes, then the environment.
pub fn exit_codes_help() -> String {
    format!("{}\n\n{ENVIRONMENT}", exit::help(EXIT_CODES))
}

/// Installs and keeps converged a vendor security agent on the host.
#[derive(Debug, Parser)]
#[command(name = "install-agent", version, after_help = exit_codes_help())]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what `install` would do; changes nothing.
    Plan(AgentArgs),
    /// Converge: install, upgrade, reconfigure, (re)start and verify as needed.
    Install(AgentArgs),
    /// Report installed version, config digest, service state and activation.
    Status(AgentArgs),
    /// Stop, disable and remove the agent, its config and credentials.
    Uninstall {
        /// Shared flags.
        #[command(flatten)]
        args: AgentArgs,
        /// Also remove the profile's `purge` paths (logs, agent identity).
        #[arg(long, env = "NODEGUARD_PURGE")]
        purge: bool,
    },
}

impl Command {
    /// The flags shared by every subcommand.
    pub fn args(&self) -> &AgentArgs {
        match self {
            Self::Plan(a)
            | Self::Install(a)
            | Self::Status(a)
            | Self::Uninstall { args: a, .. } => a,
        }
    }
}

/// Flags shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Agent profile (TOML).
    #[arg(long, env = "NODEGUARD_PROFILE", value_name = "FILE")]
    pub profile: PathBuf,

    /// Directory of credential files (a mounted Secret): one file per value.
    #[arg(long, env = "NODEGUARD_CREDENTIALS_DIR", value_name = "DIR")]
    pub credentials_dir: Option<PathBuf>,

    /// Process whose namespaces are the host's (default 1, with hostPID);
    /// 0 runs host commands in install-agent's own namespaces (on the host).
    /// Host files are reached through /proc/<pid>/root unless --host-root
    /// is given.
    #[arg(long, env = "NODEGUARD_TARGET_PID", value_name = "PID")]
    pub target_pid: Option<i32>,

    /// How commands that change the host run.
    #[arg(long, env = "NODEGUARD_EXEC_MODE", value_enum, default_value_t = ExecMode::Auto)]
    pub exec_mode: ExecMode,

    /// PEM bundle of CA certificates trusted for package downloads
    /// (replaces the built-in roots).
    #[arg(long, env = "NODEGUARD_CA_BUNDLE", value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,

    /// Allow plain-HTTP package URLs (the sha256 is still enforced).
    #[arg(long, env = "NODEGUARD_ALLOW_HTTP")]
    pub allow_http: bool,

    /// Largest package accepted, in bytes.
    #[arg(long, env = "NODEGUARD_MAX_PACKAGE_BYTES", default_value_t = 2 * 1024 * 1024 * 1024, value_name = "BYTES")]
    pub max_package_bytes: u64,

    /// Seconds to wait for another run's host lock.
    #[arg(
        long,
        env = "NODEGUARD_LOCK_TIMEOUT",
        default_value_t = 300,
        value_name = "SECS"
    )]
    pub lock_timeout: u64,

    /// Manage (upgrade, uninstall) an agent that nodeguard did not install.
    #[arg(long, env = "NODEGUARD_ADOPT")]
    pub adopt: bool,

    /// Flags every nodeguard tool takes.
    #[command(flatten)]
    pub common: CommonArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uninstall_with_purge_and_defaults() {
        let cli = Cli::try_parse_from([
            "install-agent",
            "uninstall",
            "--profile",
            "p.toml",
            "--purge",
        ])
        .expect("parse");
        let Command::Uninstall { args, purge } = cli.command else {
            panic!("not uninstall");
        };
        assert!(purge);
        assert_eq!(args.target_pid, None);
        assert_eq!(args.exec_mode, ExecMode::Auto);
        assert_eq!(args.lock_timeout, 300);
    }

    #[test]
    fn profile_is_required() {
        assert!(Cli::try_parse_from(["install-agent", "install"]).is_err());
    }
}
