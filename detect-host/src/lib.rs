//! `detect-host`: not implemented yet.

/// The tool's name as it appears in reports and metrics.
pub const TOOL: &str = "detect-host";
