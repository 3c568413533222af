//! install-agent's exit codes, in one place (0–2 are every nodeguard
//! tool's; 3 and up are install-agent's own).

pub use nodeguard_common::exit::{ERROR, FINDINGS, SUCCESS};

/// `status`: the agent is not healthy (the report says why).
pub const UNHEALTHY: u8 = FINDINGS;
/// A step failed; the report names it.
pub const STEP_FAILED: u8 = 3;
/// Another install-agent run holds the host lock.
pub const LOCKED: u8 = 4;
/// The package does not match its pinned sha256; nothing was installed.
pub const INTEGRITY: u8 = 5;
/// The agent is installed, but not by nodeguard (`--adopt`).
pub const NOT_OWNED: u8 = 6;
/// The host cannot get this agent.
pub const UNSUPPORTED: u8 = 7;
/// The profile or the credentials are not filled in yet (placeholder
/// sha256, package file absent, required credential missing).
pub const NOT_CONFIGURED: u8 = 8;

/// Exit codes, shown in `--help`.
pub const HELP: &str = "Exit codes:
  0  success (plan printed, host converged or changed, agent healthy, agent removed)
  1  status: the agent is not healthy (not installed, drifted, stopped, not verified)
  2  error, no report (bad profile, unreadable or malformed credentials, host not reachable)
  3  a step failed; the report names it
  4  another install-agent run holds the host lock
  5  the package does not match its pinned sha256; nothing was installed
  6  the agent is installed but not by nodeguard; pass --adopt to manage it
  7  the host cannot get this agent (immutable OS, no package manager, no package for its OS/arch)
  8  not configured: a placeholder sha256, a package file missing from the image or a required
     credential missing; the report's not_configured names the values to set";
