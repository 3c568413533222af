//! What we know about each node, whatever the input lane.
//!
//! Both inputs (JSON Lines and the Prometheus API) fill the same
//! [`Cluster`]: per node and tool, the latest run and what it found. Runs
//! are ordered by time; an older run of a node's tool is dropped as soon as
//! a newer one is seen, so memory stays bounded by the number of nodes, not
//! by how much history the input holds.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

/// The node tools whose results the report understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    DetectHost,
    InstallAgent,
    ScanImages,
    FimCheck,
    BenchNode,
}

impl Tool {
    /// Every tool, in report order.
    pub const ALL: [Tool; 5] = [
        Tool::DetectHost,
        Tool::InstallAgent,
        Tool::ScanImages,
        Tool::FimCheck,
        Tool::BenchNode,
    ];

    /// The tool's command name, as in the JSON envelope's `tool`.
    pub fn name(self) -> &'static str {
        match self {
            Tool::DetectHost => "detect-host",
            Tool::InstallAgent => "install-agent",
            Tool::ScanImages => "scan-images",
            Tool::FimCheck => "fim-check",
            Tool::BenchNode => "bench-node",
        }
    }

    /// The tool's metric prefix part (`nodeguard_<snake>_…`).
    pub fn snake(self) -> &'static str {
        match self {
            Tool::DetectHost => "detect_host",
            Tool::InstallAgent => "install_agent",
            Tool::ScanImages => "scan_images",
            Tool::FimCheck => "fim_check",
            Tool::BenchNode => "bench_node",
        }
    }

    /// Whether the tool runs in a loop, so an old result means a stuck
    /// DaemonSet (detect-host reports facts once per pod start).
    pub fn periodic(self) -> bool {
        self != Tool::DetectHost
    }

    /// The tool named `name` (command name or snake case).
    pub fn from_name(name: &str) -> Option<Tool> {
        Tool::ALL
            .into_iter()
            .find(|tool| tool.name() == name || tool.snake() == name)
    }
}

/// A shared string: image names, digests and check titles repeat on
/// thousands of nodes, so each is stored once per reading job.
pub type Text = Arc<str>;

/// Hands out one [`Text`] per distinct string.
#[derive(Debug, Default)]
pub struct Interner(HashSet<Text>);

impl Interner {
    /// The shared copy of `text`.
    pub fn text(&mut self, text: &str) -> Text {
        if let Some(shared) = self.0.get(text) {
            return shared.clone();
        }
        let shared: Text = Arc::from(text);
        self.0.insert(shared.clone());
        shared
    }
}

/// Trivy's severities, worst first; the order of [`Severities`].
pub const SEVERITIES: [&str; 5] = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"];

/// Vulnerability counts by severity, in [`SEVERITIES`] order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Severities(pub [u64; 5]);

impl Severities {
    /// Adds `count` to `severity` (case-insensitive); unknown names count
    /// as UNKNOWN, as Trivy does.
    pub fn add(&mut self, severity: &str, count: u64) {
        let index = SEVERITIES
            .iter()
            .position(|s| s.eq_ignore_ascii_case(severity))
            .unwrap_or(4);
        if let Some(slot) = self.0.get_mut(index) {
            *slot = slot.saturating_add(count);
        }
    }

    /// Element-wise sum, saturating: a count too large to hold stays at
    /// `u64::MAX` (still "some criticals"), it never wraps to a small one.
    pub fn plus(&mut self, other: &Severities) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = mine.saturating_add(theirs);
        }
    }

    /// Critical count.
    pub fn critical(&self) -> u64 {
        self.0[0]
    }

    /// Total over every severity (saturating).
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0, |sum, n| sum.saturating_add(*n))
    }
}

impl Serialize for Severities {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(5))?;
        for (name, count) in SEVERITIES.iter().zip(self.0) {
            map.serialize_entry(name, &count)?;
        }
        map.end()
    }
}

/// One image as seen on one node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageSeen {
    /// Repository, e.g. `docker.io/library/nginx`.
    pub repository: Text,
    /// Tag, empty when the image is known by digest only.
    pub tag: Text,
    /// Repo digest or image id, whichever identifies content.
    pub digest: Text,
    /// `scanned`, `cached`, `failed`, `skipped` (JSONL input only).
    pub status: Text,
    /// Findings by severity.
    pub vulnerabilities: Severities,
}

impl ImageSeen {
    /// The name shown to people: `repository:tag`, else the digest.
    pub fn display_name(&self) -> String {
        match (self.repository.is_empty(), self.tag.is_empty()) {
            (false, false) => format!("{}:{}", self.repository, self.tag),
            (false, true) => self.repository.to_string(),
            _ => self.digest.to_string(),
        }
    }
}

/// `scan-images` results of one run.
#[derive(Debug, Clone, Default)]
pub struct ScanData {
    /// By image key (digest, else name).
    pub images: BTreeMap<Text, ImageSeen>,
    /// Images that failed to scan in the run.
    pub failures: Option<u64>,
    /// Age of the Trivy DB at the run, in seconds (metrics lane).
    pub db_age_seconds: Option<f64>,
    /// Trivy DB `UpdatedAt`, as reported.
    pub db_updated_at: Option<String>,
    /// The node's own OS packages (`scan-images --host`).
    pub host: Option<Severities>,
}

/// One CIS check result on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckSeen {
    pub title: Text,
    /// PASS, FAIL, WARN or INFO.
    pub status: Text,
    pub scored: Option<bool>,
}

/// `bench-node` results of one run.
#[derive(Debug, Clone, Default)]
pub struct BenchData {
    /// Counts by status (PASS, FAIL, WARN, INFO), from the summary.
    pub counts: BTreeMap<String, u64>,
    /// Per-check results, by check id. From Prometheus, only failing
    /// scored checks are known.
    pub checks: BTreeMap<Text, CheckSeen>,
}

impl BenchData {
    /// Ids of failing checks.
    pub fn failed(&self) -> impl Iterator<Item = (&Text, &CheckSeen)> {
        self.checks.iter().filter(|(_, c)| &*c.status == "FAIL")
    }
}

/// `fim-check` results of one run.
#[derive(Debug, Clone, Default)]
pub struct FimData {
    /// Counts by kind (added, removed, changed), from the summary.
    pub counts: BTreeMap<String, u64>,
    /// Per-entry errors in the run.
    pub errors: Option<u64>,
    /// Changed paths and their kind (JSONL input only).
    pub changes: BTreeMap<String, String>,
    /// Whether the baseline was authenticated (HMAC key present).
    pub baseline_authenticated: Option<bool>,
}

impl FimData {
    /// Count of `kind` changes: the summary's, else the listed paths'.
    pub fn count(&self, kind: &str) -> u64 {
        self.counts
            .get(kind)
            .copied()
            .unwrap_or_else(|| self.changes.values().filter(|k| k.as_str() == kind).count() as u64)
    }
}

/// One vendor agent on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentSeen {
    pub version: Option<String>,
    pub converged: Option<bool>,
    pub service_active: Option<bool>,
}

/// `install-agent` results of one run.
#[derive(Debug, Clone, Default)]
pub struct AgentData {
    pub agents: BTreeMap<String, AgentSeen>,
}

/// `detect-host` results of one run.
#[derive(Debug, Clone, Default)]
pub struct HostData {
    pub pretty_name: Option<String>,
    pub family: Option<String>,
    pub arch: Option<String>,
    pub kernel: Option<String>,
}

/// What one run of one tool found.
#[derive(Debug, Clone)]
pub enum ToolData {
    Host(HostData),
    Agent(AgentData),
    Scan(ScanData),
    Fim(FimData),
    Bench(BenchData),
}

impl ToolData {
    /// Empty data of the right shape for `tool`.
    pub fn empty(tool: Tool) -> ToolData {
        match tool {
            Tool::DetectHost => ToolData::Host(HostData::default()),
            Tool::InstallAgent => ToolData::Agent(AgentData::default()),
            Tool::ScanImages => ToolData::Scan(ScanData::default()),
            Tool::FimCheck => ToolData::Fim(FimData::default()),
            Tool::BenchNode => ToolData::Bench(BenchData::default()),
        }
    }

    /// Folds another piece of the same run into this one (records of one
    /// run may come from several chunks, or twice from two inputs).
    fn merge(&mut self, other: ToolData) {
        match (self, other) {
            (ToolData::Host(a), ToolData::Host(b)) => {
                a.pretty_name = a.pretty_name.take().or(b.pretty_name);
                a.family = a.family.take().or(b.family);
                a.arch = a.arch.take().or(b.arch);
                a.kernel = a.kernel.take().or(b.kernel);
            }
            (ToolData::Agent(a), ToolData::Agent(b)) => {
                for (name, seen) in b.agents {
                    let mine = a.agents.entry(name).or_default();
                    mine.version = mine.version.take().or(seen.version);
                    mine.converged = mine.converged.or(seen.converged);
                    mine.service_active = mine.service_active.or(seen.service_active);
                }
            }
            (ToolData::Scan(a), ToolData::Scan(b)) => {
                a.images.extend(b.images);
                a.failures = a.failures.or(b.failures);
                a.db_age_seconds = a.db_age_seconds.or(b.db_age_seconds);
                a.db_updated_at = a.db_updated_at.take().or(b.db_updated_at);
                a.host = a.host.or(b.host);
            }
            (ToolData::Fim(a), ToolData::Fim(b)) => {
                for (kind, count) in b.counts {
                    a.counts.entry(kind).or_insert(count);
                }
                a.errors = a.errors.or(b.errors);
                a.changes.extend(b.changes);
                a.baseline_authenticated = a.baseline_authenticated.or(b.baseline_authenticated);
            }
            (ToolData::Bench(a), ToolData::Bench(b)) => {
                for (status, count) in b.counts {
                    a.counts.entry(status).or_insert(count);
                }
                a.checks.extend(b.checks);
            }
            // One (node, tool) key always holds one shape.
            _ => {}
        }
    }
}

/// The latest run of one tool on one node.
#[derive(Debug, Clone)]
pub struct Run {
    /// The run's id (empty when read from Prometheus).
    pub run_id: String,
    /// Tool version.
    pub version: String,
    /// When the run reported, Unix seconds.
    pub finished: f64,
    /// Last successful run, Unix seconds, when known separately (metrics
    /// lane; in the JSON Lines lane a run that reported succeeded).
    pub last_success: Option<f64>,
    /// The run's findings.
    pub data: ToolData,
    /// Input records folded into this run.
    pub records: u64,
}

impl Run {
    /// A new, empty run.
    pub fn new(tool: Tool, run_id: &str, version: &str, finished: f64) -> Run {
        Run {
            run_id: run_id.to_owned(),
            version: version.to_owned(),
            finished,
            last_success: None,
            data: ToolData::empty(tool),
            records: 1,
        }
    }

    /// The time of the last successful run.
    pub fn success_time(&self) -> f64 {
        self.last_success.unwrap_or(self.finished)
    }

    /// Whether this run is newer than `other` (ties broken by id so every
    /// parallel job agrees).
    fn newer_than(&self, other: &Run) -> bool {
        (self.finished, &self.run_id) > (other.finished, &other.run_id)
    }
}

/// Runs per tool of one node, plus the ids of runs known to be superseded.
#[derive(Debug, Clone, Default)]
pub struct NodeRuns {
    /// The newest plausible run of each tool (dated no later than the
    /// cluster's clock-skew horizon).
    pub tools: BTreeMap<Tool, Run>,
    /// The newest run of each tool dated beyond the horizon, kept apart so
    /// that a wrong clock (or one forged log line) never replaces the
    /// newest plausible run: the report flags it as clock skew.
    pub future: BTreeMap<Tool, Run>,
    superseded: HashSet<(Tool, String)>,
}

/// Counts about the input, for the report's `source` block.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InputStats {
    /// Lines (or series) read.
    pub lines: u64,
    /// Records used.
    pub records: u64,
    /// Records of older runs, dropped in favour of newer ones.
    pub superseded_records: u64,
    /// Lines that are not records: logs, blank lines, other programs' JSON.
    pub other_lines: u64,
    /// Lines that looked like records but could not be read.
    pub malformed_lines: u64,
    /// Records of tools or schema versions this version does not read.
    pub unsupported_records: u64,
    /// Records dated beyond the clock-skew horizon (counted in `records`
    /// too; they never replace a plausible run).
    pub future_records: u64,
}

impl InputStats {
    fn plus(&mut self, other: &InputStats) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.lines, other.lines);
        add(&mut self.records, other.records);
        add(&mut self.superseded_records, other.superseded_records);
        add(&mut self.other_lines, other.other_lines);
        add(&mut self.malformed_lines, other.malformed_lines);
        add(&mut self.unsupported_records, other.unsupported_records);
        add(&mut self.future_records, other.future_records);
    }
}

/// At most this many input problems are quoted in the report's warnings.
pub const MAX_WARNINGS: usize = 20;

/// Everything read, by node.
#[derive(Debug, Default)]
pub struct Cluster {
    pub nodes: HashMap<String, NodeRuns>,
    /// Nodes that should exist (from `kube_node_info` or `--expect-nodes`).
    pub expected_nodes: BTreeSet<String>,
    pub stats: InputStats,
    /// The first few input problems, with where they were found.
    pub warnings: Vec<String>,
    /// Problems beyond [`MAX_WARNINGS`].
    pub warnings_dropped: u64,
    /// Shared strings of this reading job.
    pub strings: Interner,
    /// Runs finished after this time (Unix seconds: now plus the clock-skew
    /// tolerance) are future-dated; `None` accepts every time.
    pub horizon: Option<f64>,
}

impl Cluster {
    /// Notes an input problem.
    pub fn warn(&mut self, message: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(message);
        } else {
            self.warnings_dropped += 1;
        }
    }

    /// An empty cluster whose runs dated after `horizon` are future-dated.
    pub fn with_horizon(horizon: Option<f64>) -> Cluster {
        Cluster {
            horizon,
            ..Cluster::default()
        }
    }

    /// Adds one record's worth of `data` to the run it belongs to, keeping
    /// only the newest run per node and tool. A run dated beyond the
    /// horizon is kept apart ([`NodeRuns::future`]), never in place of a
    /// plausible one.
    pub fn add(&mut self, node: &str, tool: Tool, run: Run) {
        let future = self.horizon.is_some_and(|horizon| run.finished > horizon);
        if future {
            self.stats.future_records = self.stats.future_records.saturating_add(run.records);
        }
        self.add_in(node, tool, run, future);
    }

    fn add_in(&mut self, node: &str, tool: Tool, run: Run, future: bool) {
        let runs = match self.nodes.get_mut(node) {
            Some(runs) => runs,
            None => self.nodes.entry(node.to_owned()).or_default(),
        };
        self.stats.records = self.stats.records.saturating_add(run.records);
        if !runs.superseded.is_empty() && runs.superseded.contains(&(tool, run.run_id.clone())) {
            self.stats.superseded_records =
                self.stats.superseded_records.saturating_add(run.records);
            return;
        }
        let slot = if future {
            &mut runs.future
        } else {
            &mut runs.tools
        };
        match slot.get_mut(&tool) {
            None => {
                slot.insert(tool, run);
            }
            Some(current) if current.run_id == run.run_id => {
                current.finished = current.finished.min(run.finished);
                current.last_success = current.last_success.or(run.last_success);
                current.records = current.records.saturating_add(run.records);
                current.data.merge(run.data);
            }
            Some(current) => {
                let dropped = if run.newer_than(current) {
                    std::mem::replace(current, run)
                } else {
                    run
                };
                self.stats.superseded_records = self
                    .stats
                    .superseded_records
                    .saturating_add(dropped.records);
                runs.superseded.insert((tool, dropped.run_id));
            }
        }
    }

    /// Folds a cluster read by another parallel job into this one.
    pub fn merge(mut self, other: Cluster) -> Cluster {
        let (mut big, small) = if self.nodes.len() >= other.nodes.len() {
            (std::mem::take(&mut self), other)
        } else {
            (other, self)
        };
        big.stats.plus(&small.stats);
        for message in small.warnings {
            big.warn(message);
        }
        big.warnings_dropped += small.warnings_dropped;
        big.expected_nodes.extend(small.expected_nodes);
        big.horizon = big.horizon.or(small.horizon);
        // Merged records were counted once already, and each run was
        // classified (plausible or future) when first added.
        let counted = big.stats.records;
        for (node, runs) in small.nodes {
            for (tool, run) in runs.tools {
                big.add_in(&node, tool, run, false);
            }
            for (tool, run) in runs.future {
                big.add_in(&node, tool, run, true);
            }
            if let Some(mine) = big.nodes.get_mut(&node) {
                mine.superseded.extend(runs.superseded);
            }
        }
        big.stats.records = counted;
        big
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_run(id: &str, at: f64, image: &str, critical: u64) -> Run {
        let mut run = Run::new(Tool::ScanImages, id, "0.1.0", at);
        let mut seen = ImageSeen {
            repository: Text::from(image),
            ..ImageSeen::default()
        };
        seen.vulnerabilities.add("CRITICAL", critical);
        if let ToolData::Scan(scan) = &mut run.data {
            scan.images.insert(Text::from(image), seen);
        }
        run
    }

    fn images(cluster: &Cluster, node: &str) -> Vec<String> {
        match &cluster.nodes[node].tools[&Tool::ScanImages].data {
            ToolData::Scan(scan) => scan.images.keys().map(ToString::to_string).collect(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn records_of_one_run_are_merged() {
        let mut cluster = Cluster::default();
        cluster.add("n1", Tool::ScanImages, scan_run("r1", 10.0, "a", 1));
        cluster.add("n1", Tool::ScanImages, scan_run("r1", 10.0, "b", 0));
        assert_eq!(images(&cluster, "n1"), ["a", "b"]);
    }

    #[test]
    fn newer_run_wins_in_any_order() {
        for order in [[0, 1, 2, 3], [2, 3, 0, 1], [0, 2, 1, 3], [3, 1, 2, 0]] {
            let runs = [
                scan_run("old", 10.0, "a", 1),
                scan_run("old", 10.0, "b", 1),
                scan_run("new", 20.0, "c", 1),
                scan_run("new", 20.0, "d", 1),
            ];
            let mut cluster = Cluster::default();
            for i in order {
                cluster.add("n1", Tool::ScanImages, runs[i].clone());
            }
            assert_eq!(images(&cluster, "n1"), ["c", "d"], "order {order:?}");
            assert_eq!(cluster.stats.superseded_records, 2, "order {order:?}");
        }
    }

    /// Regression: one record dated 2099 replaced a node's real latest run
    /// (its criticals vanished). It is kept apart, in any order and across
    /// parallel parts.
    #[test]
    fn future_runs_never_replace_plausible_ones() {
        let runs = [
            scan_run("real", 10.0, "vulnerable", 5),
            scan_run("forged", 4_070_908_800.0, "clean", 0),
        ];
        for order in [[0, 1], [1, 0]] {
            let mut cluster = Cluster::with_horizon(Some(100.0));
            for i in order {
                cluster.add("n1", Tool::ScanImages, runs[i].clone());
            }
            assert_eq!(images(&cluster, "n1"), ["vulnerable"], "order {order:?}");
            assert_eq!(
                cluster.nodes["n1"].future[&Tool::ScanImages].run_id,
                "forged"
            );
            assert_eq!(cluster.stats.future_records, 1);
            assert_eq!(cluster.stats.superseded_records, 0);
        }
        let mut a = Cluster::with_horizon(Some(100.0));
        a.add("n1", Tool::ScanImages, runs[1].clone());
        let mut b = Cluster::with_horizon(Some(100.0));
        b.add("n1", Tool::ScanImages, runs[0].clone());
        let merged = Cluster::default().merge(a).merge(b);
        assert_eq!(images(&merged, "n1"), ["vulnerable"]);
        assert!(merged.nodes["n1"].future.contains_key(&Tool::ScanImages));
    }

    #[test]
    fn merging_parallel_parts_keeps_the_newest_run() {
        let mut a = Cluster::default();
        a.add("n1", Tool::ScanImages, scan_run("old", 10.0, "a", 1));
        a.add("n2", Tool::ScanImages, scan_run("x", 10.0, "x", 0));
        let mut b = Cluster::default();
        b.add("n1", Tool::ScanImages, scan_run("new", 20.0, "c", 1));
        b.add("n1", Tool::ScanImages, scan_run("old", 10.0, "b", 1));
        let merged = a.merge(b);
        assert_eq!(images(&merged, "n1"), ["c"]);
        assert_eq!(images(&merged, "n2"), ["x"]);
        assert_eq!(merged.stats.records, 4);
    }

    #[test]
    fn severities_count_and_serialise_in_order() {
        let mut sev = Severities::default();
        sev.add("critical", 2);
        sev.add("High", 1);
        sev.add("weird", 3);
        assert_eq!(sev.0, [2, 1, 0, 0, 3]);
        assert_eq!(sev.total(), 6);
        let json = serde_json::to_string(&sev).expect("json");
        assert_eq!(
            json,
            r#"{"CRITICAL":2,"HIGH":1,"MEDIUM":0,"LOW":0,"UNKNOWN":3}"#
        );
    }

    /// Regression: sums wrapped (2 × 2^63 CRITICAL gave 0).
    #[test]
    fn severity_sums_saturate_never_wrap() {
        let mut sev = Severities::default();
        sev.add("CRITICAL", 1 << 63);
        sev.add("CRITICAL", 1 << 63);
        assert_eq!(sev.critical(), u64::MAX);
        let mut total = Severities([u64::MAX, 1, 0, 0, 0]);
        total.plus(&Severities([1 << 63; 5]));
        assert_eq!(
            total.0,
            [u64::MAX, (1 << 63) + 1, 1 << 63, 1 << 63, 1 << 63]
        );
        assert_eq!(total.total(), u64::MAX);
    }

    #[test]
    fn tool_names_round_trip() {
        for tool in Tool::ALL {
            assert_eq!(Tool::from_name(tool.name()), Some(tool));
            assert_eq!(Tool::from_name(tool.snake()), Some(tool));
        }
        assert_eq!(Tool::from_name("cluster-report"), None);
    }
}
