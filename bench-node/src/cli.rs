//! Command-line flags.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use nodeguard_common::cli::CommonArgs;
use nodeguard_common::exit::EXIT_CODES_HELP;
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
#[command(name = "bench-node", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Where the host's filesystem is mounted (`/host` in a pod).
    #[arg(
        long,
        env = "NODEGUARD_HOST_ROOT",
        default_value = "/",
        value_name = "DIR"
    )]
    pub host_root: PathBuf,

    /// Output format.
    #[arg(long, env = "NODEGUARD_FORMAT", value_enum, default_value_t = OutputFormat::Json)]
    pub format: OutputFormat,

    /// Indent the JSON document (ignored for jsonl).
    #[arg(long, env = "NODEGUARD_PRETTY")]
    pub pretty: bool,

    /// Also write Prometheus metrics to this file (atomically).
    #[arg(long, env = "NODEGUARD_METRICS_FILE", value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,

    /// The node's name in reports (default: the host's /etc/hostname).
    #[arg(long, env = "NODEGUARD_NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,

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
        CommonArgs {
            host_root: self.host_root.clone(),
            format: match self.format {
                OutputFormat::Jsonl => Format::Jsonl,
                _ => Format::Json,
            },
            pretty: self.pretty,
            metrics_file: self.metrics_file.clone(),
            node_name: self.node_name.clone(),
        }
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
        assert_eq!(cli.format, OutputFormat::KubeBench);
        assert_eq!(cli.targets, vec!["node", "master"]);
        assert_eq!(cli.fail_on, Some(FailOn::Fail));
        assert!(matches_any("4.2.10", &cli.check));
        assert!(matches_any("1.1.1", &cli.check));
        assert!(!matches_any("1.1.10", &cli.check));
        assert!(!matches_any("4.1.2", &cli.check));
    }
}
