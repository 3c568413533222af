//! `cluster-report`: the cluster-wide view built from every node's results.
//!
//! Two inputs, one view:
//! - JSON Lines written by the node tools (`--format jsonl`), from files,
//!   directories or stdin, e.g. `kubectl logs -l
//!   app.kubernetes.io/part-of=nodeguard --prefix` or a synced bucket;
//! - the Prometheus HTTP API (`--prometheus URL`): the `nodeguard_*` series
//!   the tools wrote to node-exporter's textfile collector.
//!
//! Output: one JSON document (latest run per node and tool, stale and
//! missing nodes, vulnerability totals, worst images, CIS failures by check,
//! FIM changes per node, agent status per node) and, with `--html`, one
//! self-contained page for people.

// Input-derived values must not panic or wrap: no unchecked indexing or
// lossy casts outside the tests.
#![cfg_attr(
    not(test),
    warn(
        clippy::indexing_slicing,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::expect_used
    )
)]

pub mod html;
pub mod input;
pub mod jsonl;
pub mod model;
pub mod prometheus;
pub mod records;
pub mod text;
pub mod view;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use nodeguard_common::finish::Finish;
use nodeguard_common::report::{self, Format, Report, RunContext};
use nodeguard_common::{atomic, exit};

use crate::view::{ClusterView, ViewOptions};

/// The tool's name as it appears in reports and metrics.
pub const TOOL: &str = "cluster-report";

/// Schema of the report body (bumped when a key changes meaning).
pub const SCHEMA_VERSION: u32 = 1;

const EXAMPLES: &str = "Examples:\n  kubectl logs -n nodeguard -l app.kubernetes.io/part-of=nodeguard --prefix --tail=-1 | cluster-report - --html report.html\n  cluster-report /mnt/audit-bucket/nodeguard/ --stale-after 3h --pretty\n  cluster-report --prometheus http://prometheus-operated.monitoring:9090 --output /reports/cluster.json --html /reports/cluster.html";

/// Examples, then the exit codes (shared wording from nodeguard-common).
fn after_help() -> String {
    let codes = exit::help(&[
        (exit::FINDINGS, "success, and a --fail-on condition holds"),
        (
            exit::ERROR,
            "an input, URL or output file failed (devices, sockets, over-long lines and files are refused)",
        ),
    ]);
    format!("{EXAMPLES}\n\n{codes}")
}

/// Conditions that make the exit code 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Any critical vulnerability on any node.
    Critical,
    /// Any tool on any node without a recent success.
    Stale,
    /// Any expected node or tool without results.
    Missing,
}

/// Command line (every flag is also a `NODEGUARD_*` variable).
#[derive(Debug, Parser)]
#[command(
    name = TOOL,
    version,
    about = "Cluster-wide view of nodeguard results, from JSON Lines or Prometheus.",
    after_help = after_help()
)]
pub struct Cli {
    /// JSON Lines inputs: files, directories (read recursively: *.jsonl,
    /// *.ndjson, *.json, *.log) or '-' for stdin. Plain lines, `kubectl logs
    /// --prefix/--timestamps` lines and CRI log files are all understood.
    #[arg(value_name = "INPUT", conflicts_with = "prometheus")]
    pub inputs: Vec<PathBuf>,

    /// Read the nodeguard_* series from this Prometheus-compatible API
    /// (Prometheus, Thanos Query, Mimir, VictoriaMetrics) instead.
    #[arg(long, env = "NODEGUARD_PROMETHEUS", value_name = "URL")]
    pub prometheus: Option<String>,

    /// File holding a bearer token for the Prometheus API.
    #[arg(long, env = "NODEGUARD_PROMETHEUS_TOKEN_FILE", value_name = "FILE")]
    pub prometheus_token_file: Option<PathBuf>,

    /// PEM file of CA certificates to trust for an HTTPS Prometheus.
    #[arg(long, env = "NODEGUARD_PROMETHEUS_CA_FILE", value_name = "FILE")]
    pub prometheus_ca_file: Option<PathBuf>,

    /// Timeout of each Prometheus request.
    #[arg(long, env = "NODEGUARD_PROMETHEUS_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub prometheus_timeout: Duration,

    /// The series label that names the node (falls back to `instance`).
    #[arg(long, env = "NODEGUARD_NODE_LABEL", default_value = "node")]
    pub node_label: String,

    /// A tool whose last success is older than this is stale.
    #[arg(long, env = "NODEGUARD_STALE_AFTER", default_value = "2h", value_parser = humantime::parse_duration)]
    pub stale_after: Duration,

    /// A run dated later than now plus this is future-dated (a node's wrong
    /// clock, or a forged record): it never replaces the node's newest
    /// plausible run, and the report lists it under `clock_skew`.
    #[arg(long, env = "NODEGUARD_CLOCK_SKEW_TOLERANCE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub clock_skew_tolerance: Duration,

    /// File listing the nodes that should report, one per line (`kubectl get
    /// nodes -o name` output works); the others are listed as missing.
    #[arg(long, env = "NODEGUARD_EXPECT_NODES", value_name = "FILE")]
    pub expect_nodes: Option<PathBuf>,

    /// How many of the worst images to list (0: all).
    #[arg(long, env = "NODEGUARD_TOP_IMAGES", default_value_t = 50)]
    pub top_images: usize,

    /// Write the JSON report to FILE (atomically) instead of stdout.
    #[arg(long, env = "NODEGUARD_OUTPUT", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Also write the report as a self-contained HTML page to FILE.
    #[arg(long, env = "NODEGUARD_HTML", value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Indent the JSON report.
    #[arg(long, env = "NODEGUARD_PRETTY")]
    pub pretty: bool,

    /// Report format: one JSON document (json), or the cluster at a glance
    /// for a person (text: worst nodes, images and checks; coloured on a
    /// terminal unless NO_COLOR is set, CLICOLOR_FORCE=1 forces colour).
    /// jsonl prints the report as one `report` line.
    #[arg(long, env = "NODEGUARD_FORMAT", value_enum, default_value = "json")]
    pub format: Format,

    /// Exit 1 when one of these holds (comma-separated).
    #[arg(long, env = "NODEGUARD_FAIL_ON", value_enum, value_delimiter = ',')]
    pub fail_on: Vec<FailOn>,

    /// The name put in the envelope's `node` (where the report ran).
    #[arg(long, env = "NODEGUARD_NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,

    /// Measure staleness from this RFC 3339 time instead of now
    /// (reproducible reports).
    #[arg(long, env = "NODEGUARD_NOW", value_name = "TIME", hide = true)]
    pub now: Option<String>,
}

impl Report for ClusterView {
    const SCHEMA_VERSION: u32 = SCHEMA_VERSION;

    fn text(&self, ctx: &RunContext, painter: &nodeguard_common::text::Painter) -> String {
        text::render(self, ctx, painter)
    }
}

/// Runs the tool and prints the report to `out` (or writes it to
/// `--output`); returns the exit code.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<u8> {
    let now = match &cli.now {
        Some(text) => jsonl::parse_timestamp(text)
            .with_context(|| format!("--now {text:?} is not an RFC 3339 time"))?,
        None => report::unix_seconds(SystemTime::now()),
    };
    let node = cli
        .node_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(hostname)
        .unwrap_or_else(|| "unknown".to_owned());
    let ctx = RunContext::new(TOOL, env!("CARGO_PKG_VERSION"), node);
    let options = ViewOptions {
        now,
        stale_after: cli.stale_after.as_secs_f64(),
        top_images: cli.top_images,
        clock_skew_tolerance: cli.clock_skew_tolerance.as_secs_f64(),
    };
    let horizon = Some(options.horizon());

    let (mut cluster, kind, inputs) = match &cli.prometheus {
        Some(url) => (
            read_prometheus(cli, url, horizon)?,
            "prometheus",
            vec![nodeguard_common::redact::redact_url_userinfo(url)],
        ),
        None => {
            if cli.inputs.is_empty() {
                bail!("nothing to read: give JSON Lines inputs (files, directories, '-' for stdin) or --prometheus URL");
            }
            let (sources, skipped) = input::expand(&cli.inputs)?;
            let mut cluster = jsonl::read_sources(&sources, horizon)?;
            for path in skipped {
                cluster.warn(format!("{path}: not read (only *.jsonl, *.ndjson, *.json, *.log; decompress rotated logs into stdin)"));
            }
            (
                cluster,
                "jsonl",
                sources.iter().map(input::Source::name).collect(),
            )
        }
    };
    if let Some(path) = &cli.expect_nodes {
        cluster.expected_nodes.extend(read_node_list(path)?);
    }
    if cluster.nodes.is_empty() {
        bail!(
            "no nodeguard results found in {} ({} lines read, {} not records, {} malformed)",
            inputs.join(", "),
            cluster.stats.lines,
            cluster.stats.other_lines,
            cluster.stats.malformed_lines
        );
    }
    let view = view::build(cluster, kind, inputs, &options);

    if let Some(path) = &cli.html {
        let page = html::render(&view, &html::time_text(now));
        write_output(path, page.as_bytes())?;
    }
    let mut document = Vec::new();
    report::emit(&mut document, &ctx, &view, cli.format, cli.pretty)?;
    match &cli.output {
        Some(path) => write_output(path, &document)?,
        None => Finish::print(out, &document)?,
    }
    Ok(if failing(&view, &cli.fail_on) {
        exit::FINDINGS
    } else {
        exit::SUCCESS
    })
}

/// Writes an output file atomically (an existing device or FIFO such as
/// `/dev/stdout` is written in place by the atomic writer).
fn write_output(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    atomic::write_file(path, bytes, 0o644)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn read_prometheus(cli: &Cli, url: &str, horizon: Option<f64>) -> Result<model::Cluster> {
    let bearer_token = match &cli.prometheus_token_file {
        Some(path) => {
            let token = input::open::read_text(path, input::open::MAX_TOKEN_BYTES, "token file")?
                .trim()
                .to_owned();
            nodeguard_common::redact::register_secret(&token);
            Some(token)
        }
        None => None,
    };
    let endpoint = prometheus::Endpoint {
        url: url.to_owned(),
        bearer_token,
        ca_file: cli.prometheus_ca_file.clone(),
        timeout: cli.prometheus_timeout,
        node_label: cli.node_label.clone(),
    };
    prometheus::read(&endpoint, horizon)
}

/// Node names, one per line; `node/` prefixes (kubectl -o name), blanks and
/// `#` comments are ignored.
fn read_node_list(path: &std::path::Path) -> Result<Vec<String>> {
    let text = input::open::read_text(path, input::open::MAX_NODE_LIST_BYTES, "node list")?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.strip_prefix("node/").unwrap_or(line).to_owned())
        .collect())
}

fn failing(view: &ClusterView, conditions: &[FailOn]) -> bool {
    conditions.iter().any(|condition| match condition {
        FailOn::Critical => view.summary.vulnerabilities.critical() > 0,
        FailOn::Stale => !view.stale.is_empty(),
        FailOn::Missing => !view.missing.is_empty(),
    })
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}
