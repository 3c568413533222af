//! The flags every tool takes, flattened into each tool's clap parser.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::hostroot::HostRoot;
use crate::report::{Format, RunContext};

/// Flags shared by all tools. Each is also an environment variable, so an
/// entrypoint script or a DaemonSet can set them without building argv.
///
/// `F` is the `--format` enum: [`Format`] (json, jsonl) for most tools; a
/// tool with a format of its own (bench-node's `kube-bench`) passes its own
/// enum and maps it back with [`map_format`](Self::map_format).
#[derive(Debug, Clone, Args)]
pub struct CommonArgs<F = Format>
where
    F: clap::ValueEnum + Clone + Send + Sync + 'static,
{
    /// Where the host's filesystem is mounted (`/host` in a pod). Every host
    /// path is resolved inside it, symlinks included.
    #[arg(
        long,
        env = "NODEGUARD_HOST_ROOT",
        default_value = "/",
        value_name = "DIR"
    )]
    pub host_root: PathBuf,

    /// Output format: one JSON document (json), JSON Lines, one record per
    /// line (jsonl), or a report for a person (text; coloured on a terminal
    /// unless NO_COLOR is set, CLICOLOR_FORCE=1 forces colour), plus any
    /// format of the tool's own.
    #[arg(long, env = "NODEGUARD_FORMAT", value_enum, default_value = "json")]
    pub format: F,

    /// Indent the JSON document (ignored for jsonl).
    #[arg(long, env = "NODEGUARD_PRETTY")]
    pub pretty: bool,

    /// Also write Prometheus metrics to this file (atomically), for
    /// node-exporter's textfile collector.
    #[arg(long, env = "NODEGUARD_METRICS_FILE", value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,

    /// The node's name in reports (default: the host root's /etc/hostname).
    /// In a DaemonSet, set it from the downward API (spec.nodeName).
    #[arg(long, env = "NODEGUARD_NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
}

impl<F> CommonArgs<F>
where
    F: clap::ValueEnum + Clone + Send + Sync + 'static,
{
    /// The same flags with the format mapped to another enum (e.g. a tool's
    /// own format to the shared [`Format`] for [`crate::report::emit`]).
    pub fn map_format<G>(&self, map: impl FnOnce(&F) -> G) -> CommonArgs<G>
    where
        G: clap::ValueEnum + Clone + Send + Sync + 'static,
    {
        CommonArgs {
            host_root: self.host_root.clone(),
            format: map(&self.format),
            pretty: self.pretty,
            metrics_file: self.metrics_file.clone(),
            node_name: self.node_name.clone(),
        }
    }

    /// Opens `--host-root`; the error names the path.
    pub fn open_host_root(&self) -> anyhow::Result<HostRoot> {
        HostRoot::open(&self.host_root)
            .with_context(|| format!("cannot use --host-root {}", self.host_root.display()))
    }

    /// The node's name: `--node-name`, else the host's hostname, else `unknown`.
    pub fn node_name(&self, host: &HostRoot) -> String {
        self.node_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| host.node_name())
            .unwrap_or_else(|| "unknown".to_string())
    }

    /// A run context for `tool` on this host.
    pub fn run_context(
        &self,
        tool: &'static str,
        version: &'static str,
        host: &HostRoot,
    ) -> RunContext {
        RunContext::new(tool, version, self.node_name(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["t"]).unwrap();
        assert_eq!(cli.common.host_root, PathBuf::from("/"));
        assert_eq!(cli.common.format, Format::Json);
        assert!(!cli.common.pretty);
        assert!(cli.common.metrics_file.is_none());
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "t",
            "--host-root",
            "/host",
            "--format",
            "jsonl",
            "--pretty",
            "--node-name",
            "n1",
        ])
        .unwrap();
        assert_eq!(cli.common.host_root, PathBuf::from("/host"));
        assert_eq!(cli.common.format, Format::Jsonl);
        assert!(cli.common.pretty);
        assert_eq!(cli.common.node_name.as_deref(), Some("n1"));
    }

    #[test]
    fn node_name_flag_wins_over_hostname() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/hostname"), "from-host\n").unwrap();
        let host = HostRoot::open(dir.path()).unwrap();
        let cli = Cli::try_parse_from(["t"]).unwrap();
        assert_eq!(cli.common.node_name(&host), "from-host");
        let cli = Cli::try_parse_from(["t", "--node-name", "from-flag"]).unwrap();
        assert_eq!(cli.common.node_name(&host), "from-flag");
    }
}
