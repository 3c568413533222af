//! Command-line flags.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use nodeguard_common::cli::CommonArgs;
use nodeguard_common::exit;
use nodeguard_common::report::Format;

/// `--format`: nodeguard's envelope (json, jsonl) or kube-bench's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One nodeguard JSON document.
    Json,
    /// JSON Lines: one `check` record per check, then a `summary`.
    Jsonl,
    /// kube-bench's `--json` document (`Controls`, `Totals`).
    KubeBench,
    /// kube-bench's text layout for a person: `[PASS]/[FAIL]/[WARN]/[INFO]
    /// <id> <title>`, remediation under failures, counts.
    Text,
}

/// `--fail-on` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPERCASE")]
pub enum FailOn {
    /// Exit 1 when any check FAILs.
    Fail,
    /// Exit 1 when any check FAILs or WARNs.
    Warn,
}

/// CIS Kubernetes Benchmark (v1.12) checks for this node, judged from the
/// kubelet's real command line, config file, drop-ins and defaults.
///
/// Reads the host under --host-root and its processes under --proc-dir;
/// never runs a shell or another program.
#[derive(Debug, Parser)]
#[command(name = "bench-node", version, after_help = exit::help(&[(exit::FINDINGS, exit::FINDINGS_HELP)]))]
pub struct Cli {
    /// Flags every tool takes; `--format` adds `kube-bench`.
    #[command(flatten)]
    pub common: CommonArgs<OutputFormat>,

    /// The host's /proc (default: <host-root>/proc). In a hostPID pod that
    /// mounts the host at /host without its /proc, pass /proc.
    #[arg(long, env = "NODEGUARD_PROC_DIR", value_name = "DIR")]
    pub proc_dir: Option<PathBuf>,

    /// Sections to run: node, master, etcd (comma-separated). Default:
    /// detected from running processes and static pod manifests.
    #[arg(
        long,
        env = "NODEGUARD_TARGETS",
        value_delimiter = ',',
        value_name = "LIST"
    )]
    pub targets: Vec<String>,

    /// Only these checks or groups (e.g. `4.2.1,4.1`).
    #[arg(
        long,
        env = "NODEGUARD_CHECK",
        value_delimiter = ',',
        value_name = "IDS"
    )]
    pub check: Vec<String>,

    /// Report these checks or groups as INFO without judging them.
    #[arg(
        long,
        env = "NODEGUARD_SKIP",
        value_delimiter = ',',
        value_name = "IDS"
    )]
    pub skip: Vec<String>,

    /// Exit 1 when a check reaches this status.
    #[arg(long, env = "NODEGUARD_FAIL_ON", value_enum, value_name = "STATUS")]
    pub fail_on: Option<FailOn>,

    /// The Kubernetes version (e.g. 1.31), when it cannot be read from the
    /// kubelet binary; it selects version-dependent defaults.
    #[arg(long, env = "NODEGUARD_KUBERNETES_VERSION", value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
}

impl Cli {
    /// The shared flags in the foundation's form, for its helpers. (The
    /// format is ours: kube-bench is a third format the shared enum lacks.)
    pub fn common(&self) -> CommonArgs {
        self.common.map_format(|format| match format {
            OutputFormat::Jsonl => Format::Jsonl,
            OutputFormat::Text => Format::Text,
            OutputFormat::Json | OutputFormat::KubeBench => Format::Json,
        })
    }
}

/// Whether a check id is selected by a list of ids and group prefixes.
pub fn matches_any(id: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        let p = p.trim();
        !p.is_empty() && (id == p || id.starts_with(&format!("{p}.")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        let cli = Cli::try_parse_from([
            "bench-node",
            "--format",
            "kube-bench",
            "--targets",
            "node,master",
            "--fail-on",
            "FAIL",
            "--check",
            "4.2,1.1.1",
        ])
        .unwrap();
        assert_eq!(cli.common.format, OutputFormat::KubeBench);
        assert_eq!(cli.targets, vec!["node", "master"]);
        assert_eq!(cli.fail_on, Some(FailOn::Fail));
        assert!(matches_any("4.2.10", &cli.check));
        assert!(matches_any("1.1.1", &cli.check));
        assert!(!matches_any("1.1.10", &cli.check));
        assert!(!matches_any("4.1.2", &cli.check));
    }
}
