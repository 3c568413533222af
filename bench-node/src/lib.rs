//! `bench-node`: CIS Kubernetes Benchmark checks for the node.

pub mod cmdline;
pub mod compare;
pub mod definitions;
pub mod value;

/// The tool's name as it appears in reports and metrics.
pub const TOOL: &str = "bench-node";
