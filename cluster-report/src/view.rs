//! The cluster-wide view built from what was read: the report body.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::{
    AgentData, BenchData, Cluster, FimData, ImageSeen, InputStats, NodeRuns, ScanData, Severities,
    Text, Tool, ToolData,
};

/// How the view is cut.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// "Now", Unix seconds: staleness is measured from here.
    pub now: f64,
    /// A tool whose last success is older than this is stale, in seconds.
    pub stale_after: f64,
    /// At most this many images in `images` (0: all).
    pub top_images: usize,
    /// A run dated more than this many seconds after `now` is future-dated
    /// (clock skew): it never replaces the node's newest plausible run.
    pub clock_skew_tolerance: f64,
}

impl ViewOptions {
    /// The latest plausible run time: `now` plus the clock-skew tolerance.
    pub fn horizon(&self) -> f64 {
        self.now + self.clock_skew_tolerance
    }
}

/// The report body (the common envelope is added around it).
#[derive(Debug, Serialize)]
pub struct ClusterView {
    pub source: SourceInfo,
    pub stale_after_seconds: f64,
    pub clock_skew_tolerance_seconds: f64,
    pub summary: Summary,
    pub nodes: Vec<NodeRow>,
    pub stale: Vec<StaleTool>,
    /// Runs dated beyond the clock-skew tolerance, per node and tool.
    pub clock_skew: Vec<ClockSkew>,
    pub missing: Vec<MissingNode>,
    pub images: Vec<ImageRow>,
    pub images_total: usize,
    pub cis_failures: Vec<CisRow>,
    pub fim_changes: Vec<FimRow>,
    pub agents: Vec<AgentRow>,
    pub warnings: Vec<String>,
}

/// Where the data came from.
#[derive(Debug, Serialize)]
pub struct SourceInfo {
    /// `jsonl` or `prometheus`.
    pub kind: &'static str,
    /// File names, `<stdin>`, or the Prometheus URL.
    pub inputs: Vec<String>,
    #[serde(flatten)]
    pub stats: InputStats,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub nodes: usize,
    pub nodes_expected: usize,
    pub nodes_missing: usize,
    pub nodes_stale: usize,
    pub nodes_with_clock_skew: usize,
    pub vulnerabilities: Severities,
    pub nodes_with_critical: usize,
    pub images: usize,
    pub cis_failed_checks: usize,
    pub nodes_with_cis_failures: usize,
    pub nodes_with_fim_changes: usize,
    pub fim_changes: u64,
    pub agents_not_converged: usize,
    pub agents_inactive: usize,
}

/// One tool's latest run on one node.
#[derive(Debug, Serialize)]
pub struct ToolRow {
    pub version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    pub last_run: f64,
    pub last_success: f64,
    pub age_seconds: f64,
    pub stale: bool,
    /// The node also sent a run of this tool dated in the future (see the
    /// report's `clock_skew`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub clock_skew: bool,
}

/// A node's tool that reported a run dated beyond the clock-skew tolerance.
#[derive(Debug, Serialize)]
pub struct ClockSkew {
    pub node: String,
    pub tool: Tool,
    /// The future-dated run's time, Unix seconds.
    pub reported_at: f64,
    /// How far beyond "now" it is, in seconds.
    pub ahead_seconds: f64,
    /// Which run the report uses for this tool: `newest_plausible_run`, or
    /// `future_run` when the node sent nothing plausible (then the tool
    /// counts as stale: its last success is unknown).
    pub used: &'static str,
}

#[derive(Debug, Serialize)]
pub struct NodeRow {
    pub node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    pub tools: BTreeMap<Tool, ToolRow>,
    pub missing_tools: Vec<Tool>,
    pub stale_tools: Vec<Tool>,
    pub vulnerabilities: Severities,
    /// The node's own OS packages, when scanned (`scan-images --host`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_vulnerabilities: Option<Severities>,
    pub images: usize,
    pub cis: BTreeMap<String, u64>,
    pub fim: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct StaleTool {
    pub node: String,
    pub tool: Tool,
    pub last_success: f64,
    pub age_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct MissingNode {
    pub node: String,
    /// Tools with no result from this node (all of them when the node sent
    /// nothing).
    pub tools: Vec<Tool>,
    pub reason: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ImageRow {
    pub image: String,
    pub digest: String,
    pub nodes: usize,
    /// Nodes where the last scan of this image failed or was skipped (its
    /// counts are then unknown there, not zero).
    pub unscanned_nodes: usize,
    pub vulnerabilities: Severities,
}

#[derive(Debug, Serialize)]
pub struct CisRow {
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scored: Option<bool>,
    pub nodes: usize,
    pub node_names: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct FimRow {
    pub node: String,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_authenticated: Option<bool>,
    pub changes: Vec<PathChange>,
}

#[derive(Debug, Serialize)]
pub struct PathChange {
    pub path: String,
    pub kind: String,
}

#[derive(Debug, Serialize)]
pub struct AgentRow {
    pub node: String,
    pub agent: String,
    pub version: Option<String>,
    pub converged: Option<bool>,
    pub service_active: Option<bool>,
}

/// Builds the view. Deterministic: every list is sorted.
pub fn build(
    cluster: Cluster,
    kind: &'static str,
    inputs: Vec<String>,
    opts: &ViewOptions,
) -> ClusterView {
    // Tools seen anywhere are expected everywhere (one DaemonSet each).
    let deployed: BTreeSet<Tool> = cluster
        .nodes
        .values()
        .flat_map(|runs| runs.tools.keys().chain(runs.future.keys()).copied())
        .collect();
    let mut sorted: Vec<_> = cluster.nodes.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));

    let mut collector = Collector::default();
    let nodes: Vec<NodeRow> = sorted
        .into_iter()
        .map(|(node, runs)| collector.node(node, runs, &deployed, opts))
        .collect();
    let missing = collector.missing(&nodes, &cluster.expected_nodes, &deployed);
    collector.summary.nodes = nodes.len();
    collector.summary.nodes_expected = cluster.expected_nodes.len().max(nodes.len());

    let mut warnings = cluster.warnings;
    if collector.summary.nodes_with_clock_skew > 0 {
        warnings.push(format!(
            "{} nodes sent runs dated more than {} s in the future (clock skew, or forged records): those runs never replace a node's newest plausible run; see clock_skew",
            collector.summary.nodes_with_clock_skew, opts.clock_skew_tolerance
        ));
    }
    if cluster.warnings_dropped > 0 {
        warnings.push(format!(
            "{} more input problems not listed",
            cluster.warnings_dropped
        ));
    }
    let (images, images_total) = collector.worst_images(opts.top_images);
    let cis_failures = collector.cis_rows();
    let mut stale = collector.stale;
    stale.sort_by(|a, b| (&a.node, a.tool).cmp(&(&b.node, b.tool)));
    let clock_skew = collector.clock_skew;
    ClusterView {
        source: SourceInfo {
            kind,
            inputs,
            stats: cluster.stats,
        },
        stale_after_seconds: opts.stale_after,
        clock_skew_tolerance_seconds: opts.clock_skew_tolerance,
        summary: collector.summary,
        nodes,
        stale,
        clock_skew,
        missing,
        images,
        images_total,
        cis_failures,
        fim_changes: collector.fim_rows,
        agents: collector.agents,
        warnings,
    }
}

/// Cluster-wide lists and totals, filled node by node.
#[derive(Debug, Default)]
struct Collector {
    summary: Summary,
    stale: Vec<StaleTool>,
    clock_skew: Vec<ClockSkew>,
    /// Per image: what was seen, on how many nodes, unscanned on how many.
    images: BTreeMap<Text, (ImageSeen, usize, usize)>,
    cis: BTreeMap<String, CisRow>,
    fim_rows: Vec<FimRow>,
    agents: Vec<AgentRow>,
}

impl Collector {
    /// One node's row; its findings also go into the cluster-wide lists.
    fn node(
        &mut self,
        node: String,
        runs: NodeRuns,
        deployed: &BTreeSet<Tool>,
        opts: &ViewOptions,
    ) -> NodeRow {
        let mut row = NodeRow {
            node,
            os: None,
            arch: None,
            tools: BTreeMap::new(),
            missing_tools: deployed
                .iter()
                .filter(|t| !runs.tools.contains_key(t) && !runs.future.contains_key(t))
                .copied()
                .collect(),
            stale_tools: Vec::new(),
            vulnerabilities: Severities::default(),
            host_vulnerabilities: None,
            images: 0,
            cis: BTreeMap::new(),
            fim: BTreeMap::new(),
        };
        let NodeRuns {
            mut tools, future, ..
        } = runs;
        let mut skewed = false;
        for (tool, future_run) in future {
            skewed = true;
            let used = if tools.contains_key(&tool) {
                "newest_plausible_run"
            } else {
                "future_run"
            };
            self.clock_skew.push(ClockSkew {
                node: row.node.clone(),
                tool,
                reported_at: future_run.finished,
                ahead_seconds: future_run.finished - opts.now,
                used,
            });
            if used == "future_run" {
                tools.insert(tool, future_run);
            }
        }
        if skewed {
            self.summary.nodes_with_clock_skew += 1;
        }
        for (tool, run) in tools {
            let last_success = run.success_time();
            let skew = self
                .clock_skew
                .iter()
                .rev()
                .take_while(|s| s.node == row.node)
                .find(|s| s.tool == tool);
            let future_only = skew.is_some_and(|s| s.used == "future_run");
            let age = (opts.now - last_success).max(0.0);
            let is_stale = tool.periodic() && (age > opts.stale_after || future_only);
            if is_stale {
                row.stale_tools.push(tool);
                self.stale.push(StaleTool {
                    node: row.node.clone(),
                    tool,
                    last_success,
                    age_seconds: age,
                });
            }
            row.tools.insert(
                tool,
                ToolRow {
                    version: run.version,
                    run_id: run.run_id,
                    last_run: run.finished,
                    last_success,
                    age_seconds: age,
                    stale: is_stale,
                    clock_skew: skew.is_some(),
                },
            );
            match run.data {
                ToolData::Host(host) => {
                    row.os = host.pretty_name;
                    row.arch = host.arch;
                }
                ToolData::Scan(scan) => self.scan(&mut row, scan),
                ToolData::Bench(bench) => self.bench(&mut row, &bench),
                ToolData::Fim(fim) => self.fim(&mut row, fim),
                ToolData::Agent(data) => self.agents(&row.node, data),
            }
        }
        if !row.stale_tools.is_empty() {
            self.summary.nodes_stale += 1;
        }
        row
    }

    fn scan(&mut self, row: &mut NodeRow, scan: ScanData) {
        row.images = scan.images.len();
        row.host_vulnerabilities = scan.host;
        for (key, image) in scan.images {
            row.vulnerabilities.plus(&image.vulnerabilities);
            let entry = self
                .images
                .entry(key)
                .or_insert_with(|| (image.clone(), 0, 0));
            entry.1 += 1;
            if matches!(&*image.status, "failed" | "skipped") {
                entry.2 += 1;
            }
            // Nodes may hold different DB results: keep the worst.
            if image.vulnerabilities > entry.0.vulnerabilities {
                entry.0.vulnerabilities = image.vulnerabilities;
            }
        }
        self.summary.vulnerabilities.plus(&row.vulnerabilities);
        if row.vulnerabilities.critical() > 0 {
            self.summary.nodes_with_critical += 1;
        }
    }

    fn bench(&mut self, row: &mut NodeRow, bench: &BenchData) {
        let mut failed = 0;
        for (id, check) in bench.failed() {
            failed += 1;
            let entry = self.cis.entry(id.to_string()).or_insert_with(|| CisRow {
                id: id.to_string(),
                title: check.title.to_string(),
                scored: check.scored,
                nodes: 0,
                node_names: Vec::new(),
            });
            if entry.title.is_empty() {
                entry.title = check.title.to_string();
            }
            entry.nodes += 1;
            entry.node_names.push(row.node.clone());
        }
        row.cis = bench.counts.clone();
        if row.cis.is_empty() {
            for check in bench.checks.values() {
                *row.cis.entry(check.status.to_string()).or_default() += 1;
            }
        }
        if failed > 0 || row.cis.get("FAIL").copied().unwrap_or(0) > 0 {
            self.summary.nodes_with_cis_failures += 1;
        }
    }

    fn fim(&mut self, row: &mut NodeRow, fim: FimData) {
        let (added, removed, changed) = (
            fim.count("added"),
            fim.count("removed"),
            fim.count("changed"),
        );
        row.fim = BTreeMap::from([
            ("added".to_owned(), added),
            ("removed".to_owned(), removed),
            ("changed".to_owned(), changed),
        ]);
        let total = added.saturating_add(removed).saturating_add(changed);
        if total == 0 && fim.errors.unwrap_or(0) == 0 {
            return;
        }
        self.summary.fim_changes = self.summary.fim_changes.saturating_add(total);
        if total > 0 {
            self.summary.nodes_with_fim_changes += 1;
        }
        self.fim_rows.push(FimRow {
            node: row.node.clone(),
            added,
            removed,
            changed,
            errors: fim.errors,
            baseline_authenticated: fim.baseline_authenticated,
            changes: fim
                .changes
                .into_iter()
                .map(|(path, kind)| PathChange { path, kind })
                .collect(),
        });
    }

    fn agents(&mut self, node: &str, data: AgentData) {
        for (agent, seen) in data.agents {
            if seen.converged == Some(false) {
                self.summary.agents_not_converged += 1;
            }
            if seen.service_active == Some(false) {
                self.summary.agents_inactive += 1;
            }
            self.agents.push(AgentRow {
                node: node.to_owned(),
                agent,
                version: seen.version,
                converged: seen.converged,
                service_active: seen.service_active,
            });
        }
    }

    /// Expected nodes that sent nothing, then nodes missing some tools.
    fn missing(
        &mut self,
        nodes: &[NodeRow],
        expected: &BTreeSet<String>,
        deployed: &BTreeSet<Tool>,
    ) -> Vec<MissingNode> {
        let seen: BTreeSet<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
        let mut missing: Vec<MissingNode> = expected
            .iter()
            .filter(|n| !seen.contains(n.as_str()))
            .map(|n| MissingNode {
                node: n.clone(),
                tools: deployed.iter().copied().collect(),
                reason: "no results from this node",
            })
            .collect();
        self.summary.nodes_missing = missing.len();
        missing.extend(
            nodes
                .iter()
                .filter(|n| !n.missing_tools.is_empty())
                .map(|n| MissingNode {
                    node: n.node.clone(),
                    tools: n.missing_tools.clone(),
                    reason: "some tools sent no results",
                }),
        );
        missing.sort_by(|a, b| a.node.cmp(&b.node));
        missing
    }

    /// Worst first (by severity counts, then by how many nodes run it), at
    /// most `top` (0: all); and how many images there are in all.
    fn worst_images(&mut self, top: usize) -> (Vec<ImageRow>, usize) {
        self.summary.images = self.images.len();
        let mut rows: Vec<ImageRow> = std::mem::take(&mut self.images)
            .into_values()
            .map(|(image, count, unscanned)| ImageRow {
                image: image.display_name(),
                digest: image.digest.to_string(),
                nodes: count,
                unscanned_nodes: unscanned,
                vulnerabilities: image.vulnerabilities,
            })
            .collect();
        rows.sort_by(|a, b| {
            b.vulnerabilities
                .cmp(&a.vulnerabilities)
                .then(b.nodes.cmp(&a.nodes))
                .then_with(|| a.image.cmp(&b.image))
        });
        let total = rows.len();
        if top > 0 {
            rows.truncate(top);
        }
        (rows, total)
    }

    /// Failing checks, the most widespread first.
    fn cis_rows(&mut self) -> Vec<CisRow> {
        self.summary.cis_failed_checks = self.cis.len();
        let mut rows: Vec<CisRow> = std::mem::take(&mut self.cis).into_values().collect();
        rows.sort_by(|a, b| b.nodes.cmp(&a.nodes).then_with(|| a.id.cmp(&b.id)));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Run, Severities};

    fn scan_node(cluster: &mut Cluster, node: &str, critical: u64) {
        let mut run = Run::new(Tool::ScanImages, "r", "0", 100.0);
        if let ToolData::Scan(scan) = &mut run.data {
            let seen = ImageSeen {
                vulnerabilities: Severities([critical, 0, 0, 0, critical]),
                ..ImageSeen::default()
            };
            scan.images.insert(Text::from("img"), seen.clone());
            scan.images.insert(Text::from("img2"), seen);
        }
        cluster.add(node, Tool::ScanImages, run);
    }

    fn opts() -> ViewOptions {
        ViewOptions {
            now: 100.0,
            stale_after: 7200.0,
            top_images: 0,
            clock_skew_tolerance: 300.0,
        }
    }

    /// Regression: a future-dated run is flagged per node and never used
    /// in place of a plausible one; alone, it is used but stale.
    #[test]
    fn clock_skew_is_flagged_and_plausible_runs_kept() {
        let opts = opts();
        let mut cluster = Cluster::with_horizon(Some(opts.horizon()));
        scan_node(&mut cluster, "a", 3);
        let mut forged = Run::new(Tool::ScanImages, "forged", "0", 4_070_908_800.0);
        forged.run_id = "forged".into();
        cluster.add("a", Tool::ScanImages, forged.clone());
        cluster.add("b", Tool::ScanImages, forged);
        let view = build(cluster, "jsonl", Vec::new(), &opts);
        assert_eq!(view.summary.vulnerabilities.critical(), 6);
        assert_eq!(view.summary.nodes_with_clock_skew, 2);
        let used: Vec<_> = view
            .clock_skew
            .iter()
            .map(|s| (s.node.as_str(), s.used))
            .collect();
        assert_eq!(used, [("a", "newest_plausible_run"), ("b", "future_run")]);
        assert!(view.nodes[0].tools[&Tool::ScanImages].clock_skew);
        assert!(!view.nodes[0].tools[&Tool::ScanImages].stale);
        assert!(view.nodes[1].tools[&Tool::ScanImages].stale);
        assert_eq!(view.stale.len(), 1);
        assert!(view.warnings.iter().any(|w| w.contains("clock skew")));
    }

    /// Regression: two nodes with 2^63 criticals summed to 0, so
    /// `--fail-on critical` passed.
    #[test]
    fn cluster_totals_saturate() {
        let mut cluster = Cluster::default();
        scan_node(&mut cluster, "a", 1 << 63);
        scan_node(&mut cluster, "b", 1 << 63);
        let opts = opts();
        let view = build(cluster, "jsonl", Vec::new(), &opts);
        assert_eq!(view.summary.vulnerabilities.critical(), u64::MAX);
        assert_eq!(view.nodes[0].vulnerabilities.critical(), u64::MAX);
        assert_eq!(view.summary.nodes_with_critical, 2);
    }

    #[test]
    fn fim_totals_saturate() {
        let mut cluster = Cluster::default();
        for node in ["a", "b"] {
            let mut run = Run::new(Tool::FimCheck, "r", "0", 100.0);
            if let ToolData::Fim(fim) = &mut run.data {
                for kind in ["added", "removed", "changed"] {
                    fim.counts.insert(kind.to_owned(), u64::MAX / 2);
                }
            }
            cluster.add(node, Tool::FimCheck, run);
        }
        let opts = opts();
        let view = build(cluster, "jsonl", Vec::new(), &opts);
        assert_eq!(view.summary.fim_changes, u64::MAX);
    }
}
