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

/// Every exit code with its meaning, in order (`--help`, docs).
pub const CODES: &[(u8, &str)] = &[
    (
        SUCCESS,
        "success (plan printed, host converged or changed, agent healthy, agent removed)",
    ),
    (
        UNHEALTHY,
        "status: the agent is not healthy (not installed, drifted, stopped, not verified)",
    ),
    (
        ERROR,
        "error, no report (bad profile, unreadable or malformed credentials, host not reachable)",
    ),
    (STEP_FAILED, "a step failed; the report names it"),
    (LOCKED, "another install-agent run holds the host lock"),
    (
        INTEGRITY,
        "the package does not match its pinned sha256; nothing was installed",
    ),
    (
        NOT_OWNED,
        "the agent is installed but not by nodeguard; pass --adopt to manage it",
    ),
    (
        UNSUPPORTED,
        "the host cannot get this agent (immutable OS, no package manager, no package for its OS/arch)",
    ),
    (
        NOT_CONFIGURED,
        "not configured: a placeholder sha256, a package file missing from the image or a required credential missing; the report's not_configured names the values to set",
    ),
];

/// The exit codes as `--help` shows them.
pub fn help() -> String {
    let mut text = String::from("Exit codes:");
    for (code, meaning) in CODES {
        text.push_str(&format!("\n  {code}  {meaning}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_documented_once_in_order() {
        let codes: Vec<u8> = CODES.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, (0..=NOT_CONFIGURED).collect::<Vec<_>>());
        assert!(help().contains("8  not configured"));
    }
}
