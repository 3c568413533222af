//! The exit-code contract shared by every tool.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success; findings, if any, are data in the report |
//! | 1 | success, and findings at or above the requested `--fail-on` threshold exist |
//! | 2 | error: no report was produced (bad input, missing path, failed command) |
//! | 3+ | tool-specific errors, documented in each tool's `--help` |
//!
//! Entrypoint scripts rely on "≥ 2 means no report", so a tool must never
//! print a partial document and exit 2.

use std::fmt;
use std::process::ExitCode;

/// Success: the report was printed.
pub const SUCCESS: u8 = 0;
/// Success with findings at or above the `--fail-on` threshold.
pub const FINDINGS: u8 = 1;
/// Error: no report.
pub const ERROR: u8 = 2;

/// The text every tool appends to its `--help` (clap `after_help`).
pub const EXIT_CODES_HELP: &str = "Exit codes:\n  0  success (findings, if any, are in the report)\n  1  success, with findings at or above --fail-on\n  2  error: nothing was reported (the message on stderr names the path or command)";

/// An error that carries its own exit code (3 or more), for failures a
/// caller must tell apart from a generic error, e.g. a tampered baseline.
#[derive(Debug)]
pub struct ToolError {
    /// The process exit code, 3 or more.
    pub code: u8,
    /// What went wrong, naming the path or command.
    pub message: String,
}

impl ToolError {
    /// A new error with a tool-specific exit code.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToolError {}

/// The exit code for an error: the [`ToolError`] code if one is in the
/// chain, else [`ERROR`].
pub fn code_for(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<ToolError>())
        .map_or(ERROR, |tool_error| tool_error.code.max(ERROR))
}

/// Runs a tool's body and turns its result into the process exit code.
///
/// Errors are printed once, as `<tool>: error: <cause>: <cause>…`, through
/// the redactor: an error message quoting a file or a command line must not
/// leak a secret. Returning a `Result` from `main` would print the `Debug`
/// form instead, which is neither readable nor redacted.
pub fn main_with<F>(tool: &str, body: F) -> ExitCode
where
    F: FnOnce() -> anyhow::Result<u8>,
{
    match body() {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let text = crate::redact::redact(&format!("{err:#}"));
            eprintln!("{tool}: error: {text}");
            ExitCode::from(code_for(&err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn generic_errors_exit_2() {
        let err = anyhow::anyhow!("boom");
        assert_eq!(code_for(&err), ERROR);
    }

    #[test]
    fn tool_errors_keep_their_code_through_context() {
        let err = Err::<(), _>(ToolError::new(4, "baseline tampered"))
            .context("checking /var/lib/nodeguard/fim.baseline")
            .unwrap_err();
        assert_eq!(code_for(&err), 4);
    }

    #[test]
    fn tool_error_codes_below_2_are_raised_to_2() {
        let err = anyhow::Error::new(ToolError::new(1, "misused"));
        assert_eq!(code_for(&err), ERROR);
    }
}
