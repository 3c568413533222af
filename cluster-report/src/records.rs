//! Each tool's own record fields, read into the run they belong to.
//!
//! A tool's JSON Lines output is one record per finding plus a summary
//! record; a whole `--format json` document (one line, or a results file)
//! carries the same fields as arrays. Both shapes are read by the same
//! structs, whose fields are all optional: a record kind we do not know
//! still counts as a sign of life of its run.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;
use serde_json::Value;

use crate::model::{AgentSeen, CheckSeen, ImageSeen, ToolData};

/// Folds one record (`kind` = its `record` field, `None` for a whole
/// document) into `data`.
pub fn read(data: &mut ToolData, kind: Option<&str>, line: &str) -> Result<()> {
    match data {
        ToolData::Scan(scan) => {
            let rec: ScanRecord = serde_json::from_str(line)?;
            if kind == Some("host") {
                // The node's own OS packages (`scan-images --host`).
                let mut host = crate::model::Severities::default();
                for (severity, count) in rec.image.vulnerabilities.unwrap_or_default() {
                    host.add(&severity, count);
                }
                scan.host = Some(host);
                return Ok(());
            }
            if let Some(host) = rec.host.and_then(|h| h.vulnerabilities) {
                let mut counts = crate::model::Severities::default();
                for (severity, count) in host {
                    counts.add(&severity, count);
                }
                scan.host = Some(counts);
            }
            if let Some(image) = rec.image.into_seen() {
                scan.images.insert(image.0, image.1);
            }
            for image in rec.images {
                if let Some((key, seen)) = image.into_seen() {
                    scan.images.insert(key, seen);
                }
            }
            let summary = rec.summary.unwrap_or(rec.counts);
            scan.failures = scan.failures.or(summary.failed);
            scan.db_updated_at = scan.db_updated_at.take().or(summary.db_updated_at);
            scan.db_age_seconds = scan.db_age_seconds.or(summary.db_age_seconds);
        }
        ToolData::Bench(bench) => {
            let rec: BenchRecord = serde_json::from_str(line)?;
            for check in std::iter::once(rec.check).chain(rec.results) {
                if let (Some(id), Some(status)) = (check.id, check.status) {
                    let seen = CheckSeen {
                        title: check.title.unwrap_or_default(),
                        status: status.to_ascii_uppercase(),
                        scored: check.scored,
                    };
                    bench.checks.insert(id, seen);
                }
            }
            if let Some(summary) = rec.summary {
                for (status, count) in summary {
                    if let Some(count) = count.as_u64() {
                        bench.counts.insert(status.to_ascii_uppercase(), count);
                    }
                }
            }
        }
        ToolData::Fim(fim) => {
            let rec: FimRecord = serde_json::from_str(line)?;
            for change in std::iter::once(rec.change).chain(rec.changes) {
                if let (Some(path), Some(kind)) = (change.path, change.kind) {
                    fim.changes.insert(path, kind);
                }
            }
            let summary = rec.summary.unwrap_or(rec.counts);
            for (kind, count) in [
                ("added", summary.added),
                ("removed", summary.removed),
                ("changed", summary.changed),
            ] {
                if let Some(count) = count {
                    fim.counts.insert(kind.to_owned(), count);
                }
            }
            fim.errors = fim.errors.or(summary.errors);
            fim.baseline_authenticated = fim
                .baseline_authenticated
                .or(rec.baseline_authenticated)
                .or(rec.baseline.and_then(|b| b.authenticated));
        }
        // Only the summary (or a whole report) describes the agent; `step`
        // records are the run's log.
        ToolData::Agent(agents) if matches!(kind, None | Some("summary" | "report")) => {
            let rec: Value = serde_json::from_str(line)?;
            if let Some((name, seen)) = agent_from(&rec) {
                agents.agents.insert(name, seen);
            }
        }
        ToolData::Agent(_) => {}
        ToolData::Host(host) => {
            let rec: Value = serde_json::from_str(line)?;
            let text = |pointer: &str| {
                rec.pointer(pointer)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            host.pretty_name = text("/os/pretty_name").or_else(|| text("/os/name"));
            host.family = text("/os/family");
            host.arch = text("/arch/platform").or_else(|| text("/arch/machine"));
            host.kernel = text("/kernel/release");
        }
    }
    Ok(())
}

/// Severity counts, as tools write them (`{"CRITICAL": 1, …}`).
type Counts = BTreeMap<String, u64>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ScanRecord {
    #[serde(flatten)]
    image: ImageRecord,
    images: Vec<ImageRecord>,
    host: Option<ImageRecord>,
    summary: Option<ScanSummary>,
    #[serde(flatten)]
    counts: ScanSummary,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ImageRecord {
    image_id: Option<String>,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    status: Option<String>,
    vulnerabilities: Option<Counts>,
}

impl ImageRecord {
    /// The image's key (content identity) and what the node saw, or `None`
    /// when the record is not about one image.
    fn into_seen(self) -> Option<(String, ImageSeen)> {
        let id = self.image_id?;
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
            .and_then(|d| d.split_once('@').map(|(_, digest)| digest.to_owned()))
            .unwrap_or_else(|| id.clone());
        let mut seen = ImageSeen {
            repository,
            tag,
            digest,
            status: self.status.unwrap_or_default(),
            vulnerabilities: Default::default(),
        };
        for (severity, count) in self.vulnerabilities.unwrap_or_default() {
            seen.vulnerabilities.add(&severity, count);
        }
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
    db_age_seconds: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BenchRecord {
    #[serde(flatten)]
    check: CheckRecord,
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
struct FimRecord {
    #[serde(flatten)]
    change: ChangeRecord,
    changes: Vec<ChangeRecord>,
    summary: Option<FimSummary>,
    #[serde(flatten)]
    counts: FimSummary,
    baseline_authenticated: Option<bool>,
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
        read(
            &mut data,
            Some("image"),
            r#"{"image_id":"sha256:ab","repo_tags":["docker.io/library/nginx:1.27"],"repo_digests":["docker.io/library/nginx@sha256:cd"],"status":"scanned","vulnerabilities":{"CRITICAL":2,"HIGH":1}}"#,
        )
        .expect("image");
        read(
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
        assert_eq!(image.digest, "sha256:cd");
        assert_eq!(image.vulnerabilities.0, [2, 1, 0, 0, 0]);
        assert_eq!(scan.failures, Some(1));
    }

    #[test]
    fn install_agent_summary_not_steps() {
        let mut data = ToolData::empty(Tool::InstallAgent);
        read(
            &mut data,
            Some("step"),
            r#"{"name":"download","status":"ok","duration_ms":3}"#,
        )
        .expect("step");
        read(
            &mut data,
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
        read(
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
