//! Each tool's own record fields, read into the run they belong to.
//!
//! A tool's JSON Lines output is one record per finding plus a summary
//! record; a whole `--format json` document (record kind absent, or the
//! default `report` record) carries the same fields as arrays. The record
//! kind picks a small typed struct per line (no `serde(flatten)`, no
//! `Value`: this is the hot loop at 5,000 nodes); a kind we do not know
//! still counts as a sign of life of its run.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;
use serde_json::Value;

use crate::model::{
    AgentSeen, BenchData, CheckSeen, FimData, ImageSeen, Interner, ScanData, Severities, Text,
    ToolData,
};

/// Folds one record (`kind` = its `record` field, `None` for a whole
/// document) into `data`.
/// Repeated strings go through `strings`.
pub fn read(
    data: &mut ToolData,
    kind: Option<&str>,
    line: &str,
    strings: &mut Interner,
) -> Result<()> {
    let whole = matches!(kind, None | Some("report"));
    match data {
        ToolData::Scan(scan) => read_scan(scan, kind, line, strings),
        ToolData::Bench(bench) => read_bench(bench, kind, line, strings),
        ToolData::Fim(fim) => read_fim(fim, kind, line),
        // Only the summary (or a whole report) describes the agent; `step`
        // records are the run's log.
        ToolData::Agent(agents) if whole || kind == Some("summary") => {
            let rec: Value = serde_json::from_str(line)?;
            if let Some((name, seen)) = agent_from(&rec) {
                agents.agents.insert(name, seen);
            }
            Ok(())
        }
        ToolData::Agent(_) => Ok(()),
        ToolData::Host(host) => {
            let rec: HostRecord = serde_json::from_str(line)?;
            host.pretty_name = rec.os.pretty_name.or(rec.os.name);
            host.family = rec.os.family;
            host.arch = rec.arch.platform.or(rec.arch.machine);
            host.kernel = rec.kernel.release;
            Ok(())
        }
    }
}

fn read_scan(
    scan: &mut ScanData,
    kind: Option<&str>,
    line: &str,
    strings: &mut Interner,
) -> Result<()> {
    match kind {
        Some("image") => {
            let rec: ImageRecord = serde_json::from_str(line)?;
            scan.add(rec, strings);
        }
        // The node's own OS packages (`scan-images --host`).
        Some("host") => {
            let rec: CountsRecord = serde_json::from_str(line)?;
            scan.host = Some(rec.vulnerabilities.severities());
        }
        Some("summary") => {
            let rec: Summarised<ScanSummary> = serde_json::from_str(line)?;
            scan.apply(rec.summary);
        }
        None | Some("report") => {
            let rec: ScanDocument = serde_json::from_str(line)?;
            for image in rec.images {
                scan.add(image, strings);
            }
            if let Some(host) = rec.host {
                scan.host = Some(host.vulnerabilities.severities());
            }
            scan.apply(rec.summary);
        }
        Some(_) => {}
    }
    Ok(())
}

impl ScanData {
    fn add(&mut self, image: ImageRecord, strings: &mut Interner) {
        if let Some((key, seen)) = image.into_seen(strings) {
            self.images.insert(key, seen);
        }
    }

    fn apply(&mut self, summary: Option<ScanSummary>) {
        if let Some(summary) = summary {
            self.failures = self.failures.or(summary.failed);
            self.db_updated_at = self.db_updated_at.take().or(summary.db_updated_at);
        }
    }
}

fn read_bench(
    bench: &mut BenchData,
    kind: Option<&str>,
    line: &str,
    strings: &mut Interner,
) -> Result<()> {
    match kind {
        Some("check" | "result") => {
            let rec: CheckRecord = serde_json::from_str(line)?;
            bench.add(rec, strings);
        }
        Some("summary") => {
            let rec: Summarised<BTreeMap<String, Value>> = serde_json::from_str(line)?;
            bench.apply(rec.summary);
        }
        None | Some("report") => {
            let rec: BenchDocument = serde_json::from_str(line)?;
            for check in rec.results {
                bench.add(check, strings);
            }
            bench.apply(rec.summary);
        }
        Some(_) => {}
    }
    Ok(())
}

/// The statuses a CIS result can have (kube-bench's four).
const CIS_STATUSES: [&str; 4] = ["PASS", "FAIL", "WARN", "INFO"];

impl BenchData {
    fn add(&mut self, check: CheckRecord, strings: &mut Interner) {
        if let (Some(id), Some(status)) = (check.id, check.status) {
            let seen = CheckSeen {
                title: strings.text(check.title.as_deref().unwrap_or_default()),
                status: strings.text(&status.to_ascii_uppercase()),
                scored: check.scored,
            };
            self.checks.insert(strings.text(&id), seen);
        }
    }

    fn apply(&mut self, summary: Option<BTreeMap<String, Value>>) {
        for (status, count) in summary.unwrap_or_default() {
            let status = status.to_ascii_uppercase();
            if let (true, Some(count)) = (CIS_STATUSES.contains(&status.as_str()), count.as_u64()) {
                self.counts.insert(status, count);
            }
        }
    }
}

fn read_fim(fim: &mut FimData, kind: Option<&str>, line: &str) -> Result<()> {
    match kind {
        Some("change") => {
            let rec: ChangeRecord = serde_json::from_str(line)?;
            fim.add(rec);
        }
        Some("summary") => {
            let rec: FimSummaryRecord = serde_json::from_str(line)?;
            fim.apply(rec.summary, rec.baseline);
        }
        None | Some("report") => {
            let rec: FimDocument = serde_json::from_str(line)?;
            for change in rec.changes {
                fim.add(change);
            }
            fim.apply(rec.summary, rec.baseline);
        }
        Some(_) => {}
    }
    Ok(())
}

impl FimData {
    fn add(&mut self, change: ChangeRecord) {
        if let (Some(path), Some(kind)) = (change.path, change.kind) {
            self.changes.insert(path, kind);
        }
    }

    fn apply(&mut self, summary: Option<FimSummary>, baseline: Option<BaselineRecord>) {
        if let Some(summary) = summary {
            for (kind, count) in [
                ("added", summary.added),
                ("removed", summary.removed),
                ("changed", summary.changed),
            ] {
                if let Some(count) = count {
                    self.counts.insert(kind.to_owned(), count);
                }
            }
            self.errors = self.errors.or(summary.errors);
        }
        if let Some(authenticated) = baseline.and_then(|b| b.authenticated) {
            self.baseline_authenticated = Some(authenticated);
        }
    }
}

/// `{"summary": …}` records.
#[derive(Debug, Deserialize)]
struct Summarised<T> {
    #[serde(default = "Option::default")]
    summary: Option<T>,
}

/// Severity counts as the tools write them (`{"CRITICAL": 1, …}`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Counts {
    #[serde(rename = "CRITICAL", alias = "critical")]
    critical: u64,
    #[serde(rename = "HIGH", alias = "high")]
    high: u64,
    #[serde(rename = "MEDIUM", alias = "medium")]
    medium: u64,
    #[serde(rename = "LOW", alias = "low")]
    low: u64,
    #[serde(rename = "UNKNOWN", alias = "unknown")]
    unknown: u64,
}

impl Counts {
    fn severities(&self) -> Severities {
        Severities([
            self.critical,
            self.high,
            self.medium,
            self.low,
            self.unknown,
        ])
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CountsRecord {
    vulnerabilities: Counts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ScanDocument {
    images: Vec<ImageRecord>,
    host: Option<CountsRecord>,
    summary: Option<ScanSummary>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ImageRecord {
    image_id: Option<String>,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    status: Option<String>,
    vulnerabilities: Counts,
}

impl ImageRecord {
    /// The image's key (content identity) and what the node saw, or `None`
    /// when the record is not about one image.
    fn into_seen(self, strings: &mut Interner) -> Option<(Text, ImageSeen)> {
        let id = strings.text(&self.image_id?);
        let (repository, tag) = self
            .repo_tags
            .first()
            .map(|t| split_tag(t))
            .or_else(|| {
                self.repo_digests
                    .first()
                    .map(|d| (split_digest(d).to_owned(), String::new()))
            })
            .unwrap_or_default();
        let digest = self
            .repo_digests
            .first()
            .and_then(|d| d.split_once('@').map(|(_, digest)| strings.text(digest)))
            .unwrap_or_else(|| id.clone());
        let seen = ImageSeen {
            repository: strings.text(&repository),
            tag: strings.text(&tag),
            digest,
            status: strings.text(self.status.as_deref().unwrap_or_default()),
            vulnerabilities: self.vulnerabilities.severities(),
        };
        Some((id, seen))
    }
}

/// `registry/repo:tag` → (`registry/repo`, `tag`); a `:` before the last
/// `/` is a registry port, not a tag.
fn split_tag(reference: &str) -> (String, String) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_owned(), tag.to_owned()),
        _ => (reference.to_owned(), String::new()),
    }
}

fn split_digest(reference: &str) -> &str {
    reference
        .split_once('@')
        .map_or(reference, |(repo, _)| repo)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ScanSummary {
    failed: Option<u64>,
    db_updated_at: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BenchDocument {
    results: Vec<CheckRecord>,
    summary: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CheckRecord {
    id: Option<String>,
    title: Option<String>,
    status: Option<String>,
    scored: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FimDocument {
    changes: Vec<ChangeRecord>,
    summary: Option<FimSummary>,
    baseline: Option<BaselineRecord>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FimSummaryRecord {
    summary: Option<FimSummary>,
    baseline: Option<BaselineRecord>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChangeRecord {
    path: Option<String>,
    kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FimSummary {
    added: Option<u64>,
    removed: Option<u64>,
    changed: Option<u64>,
    errors: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BaselineRecord {
    authenticated: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HostRecord {
    os: HostOs,
    arch: HostArch,
    kernel: HostKernel,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HostOs {
    pretty_name: Option<String>,
    name: Option<String>,
    family: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HostArch {
    platform: Option<String>,
    machine: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HostKernel {
    release: Option<String>,
}

/// The agent name and state from an `install-agent` summary record (or a
/// whole report): the same judgement as its metrics (`converged` for the
/// converging outcomes; `service_active` from the observed unit, or from
/// convergence for `install`, which starts the unit).
fn agent_from(rec: &Value) -> Option<(String, AgentSeen)> {
    let text = |pointer: &str| rec.pointer(pointer).and_then(Value::as_str);
    let name = text("/agent")?.to_owned();
    let converged =
        text("/status").map(|status| matches!(status, "converged" | "changed" | "healthy"));
    let unit_active = text("/observed/unit/active_state").map(|state| state == "active");
    let service_active = match text("/command") {
        Some("install") => converged,
        _ => unit_active,
    };
    let version = text("/observed/installed_version")
        .or_else(|| converged.filter(|c| *c).and(text("/package/version")))
        .map(str::to_owned);
    Some((
        name,
        AgentSeen {
            version,
            converged,
            service_active,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tool;

    fn rd(data: &mut ToolData, kind: Option<&str>, line: &str) -> Result<()> {
        read(data, kind, line, &mut Interner::default())
    }

    #[test]
    fn registry_ports_are_not_tags() {
        assert_eq!(
            split_tag("reg:5000/app:1.2"),
            ("reg:5000/app".into(), "1.2".into())
        );
        assert_eq!(
            split_tag("reg:5000/app"),
            ("reg:5000/app".into(), String::new())
        );
        assert_eq!(split_tag("nginx:1.27"), ("nginx".into(), "1.27".into()));
    }

    #[test]
    fn scan_image_record_and_summary() {
        let mut data = ToolData::empty(Tool::ScanImages);
        rd(&mut data,
            Some("image"),
            r#"{"image_id":"sha256:ab","repo_tags":["docker.io/library/nginx:1.27"],"repo_digests":["docker.io/library/nginx@sha256:cd"],"status":"scanned","vulnerabilities":{"CRITICAL":2,"HIGH":1}}"#,
        )
        .expect("image");
        rd(
            &mut data,
            Some("summary"),
            r#"{"summary":{"failed":1,"db_updated_at":"2026-11-23T00:00:00Z"}}"#,
        )
        .expect("summary");
        let ToolData::Scan(scan) = data else {
            unreachable!()
        };
        let image = &scan.images["sha256:ab"];
        assert_eq!(image.display_name(), "docker.io/library/nginx:1.27");
        assert_eq!(&*image.digest, "sha256:cd");
        assert_eq!(image.vulnerabilities.0, [2, 1, 0, 0, 0]);
        assert_eq!(scan.failures, Some(1));
    }

    #[test]
    fn install_agent_summary_not_steps() {
        let mut data = ToolData::empty(Tool::InstallAgent);
        rd(
            &mut data,
            Some("step"),
            r#"{"name":"download","status":"ok","duration_ms":3}"#,
        )
        .expect("step");
        rd(&mut data,
            Some("summary"),
            r#"{"command":"status","agent":"qualys-cloud-agent","status":"unhealthy","changed":false,"observed":{"installed_version":"6.1.0.28","unit":{"load_state":"loaded","unit_file_state":"enabled","active_state":"failed"}}}"#,
        )
        .expect("summary");
        let ToolData::Agent(agents) = data else {
            unreachable!()
        };
        assert_eq!(agents.agents.len(), 1);
        let seen = &agents.agents["qualys-cloud-agent"];
        assert_eq!(seen.converged, Some(false));
        assert_eq!(seen.service_active, Some(false));
        assert_eq!(seen.version.as_deref(), Some("6.1.0.28"));
    }

    #[test]
    fn scan_host_record_is_kept_apart_from_images() {
        let mut data = ToolData::empty(Tool::ScanImages);
        rd(
            &mut data,
            Some("host"),
            r#"{"status":"scanned","vulnerabilities":{"CRITICAL":0,"HIGH":4}}"#,
        )
        .expect("host");
        let ToolData::Scan(scan) = data else {
            unreachable!()
        };
        assert!(scan.images.is_empty());
        assert_eq!(scan.host.map(|h| h.0), Some([0, 4, 0, 0, 0]));
    }
}
