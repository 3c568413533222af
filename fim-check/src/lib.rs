//! `fim-check`: not implemented yet.

/// The tool's name as it appears in reports and metrics.
pub const TOOL: &str = "fim-check";
