//! Workspace-wide contracts every tool must keep: the `--help` documents the
//! exit codes, every flag has a `NODEGUARD_*` variable, and a missing host
//! root is exit 2 naming the path.

use crate::harness::{run, tool, TOOLS};

#[test]
fn every_tool_documents_exit_codes_and_env_vars_in_help() {
    for name in TOOLS {
        let out = run(tool(name).arg("--help"));
        if out.stdout.is_empty() {
            // A tool not delivered yet says so and exits 2; nothing to check.
            assert_eq!(out.code, 2, "{name} --help: {}", out.stderr);
            assert!(
                out.stderr.contains("not implemented yet"),
                "{name}: {}",
                out.stderr
            );
            continue;
        }
        out.assert_code(0);
        assert!(
            out.stdout.contains("Exit codes"),
            "{name} --help lacks exit codes:\n{}",
            out.stdout
        );
        // cluster-report reads no node (no --host-root): its variables
        // start from its input, the Prometheus URL.
        let variable = if *name == "cluster-report" {
            "NODEGUARD_PROMETHEUS"
        } else {
            "NODEGUARD_HOST_ROOT"
        };
        assert!(
            out.stdout.contains(variable),
            "{name} --help lacks env vars:\n{}",
            out.stdout
        );
    }
}
