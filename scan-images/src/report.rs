//! The report: the tool's JSON contract.
//!
//! Contract keys (consumers depend on them): `images[]` with `image_id`,
//! `repo_tags`, `repo_digests`, `containers[]` (`namespace`, `pod`,
//! `container`), `status` (`scanned` | `cached` | `failed` | `skipped`),
//! `error`, `vulnerabilities` (counts by `CRITICAL`/`HIGH`/`MEDIUM`/`LOW`/
//! `UNKNOWN`), `report_path`; and `summary` (`images`, `scanned`, `cached`,
//! `failed`, `vulnerabilities`, `db_updated_at`). Other keys are additions.

use std::path::PathBuf;

use nodeguard_common::report::{Record, Report};
use serde::Serialize;

use crate::endpoint::RuntimeKind;
use crate::inventory::ContainerRef;
use crate::trivy_report::{Counts, Severity};

/// Containers listed per image in a JSON Lines record; more are counted,
/// not listed, so a line stays under CRI-O's 8 KiB log line limit.
const JSONL_MAX_CONTAINERS: usize = 25;

/// What happened to one image this cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Trivy scanned it this cycle.
    Scanned,
    /// A fresh result from the cache (same image, same DB, within --ttl).
    Cached,
    /// The scan failed; `error` says why.
    Failed,
    /// Not scanned; `error` says why (e.g. nothing Trivy could reach).
    Skipped,
}

impl Status {
    /// All statuses, for zero-valued metric series.
    pub const ALL: [Status; 4] = [
        Status::Scanned,
        Status::Cached,
        Status::Failed,
        Status::Skipped,
    ];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scanned => "scanned",
            Status::Cached => "cached",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// One unique image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageResult {
    /// `sha256:<hex>` config digest.
    pub image_id: String,
    /// Tags from `crictl images`.
    pub repo_tags: Vec<String>,
    /// Repo digests from `crictl images`.
    pub repo_digests: Vec<String>,
    /// Every running container using the image.
    pub containers: Vec<ContainerRef>,
    /// Outcome.
    pub status: Status,
    /// Why it failed or was skipped; `null` otherwise.
    pub error: Option<String>,
    /// Findings by severity (package × CVE).
    pub vulnerabilities: Counts,
    /// The full Trivy report, when there is one.
    pub report_path: Option<PathBuf>,
    /// `containerd`, `docker` or `rootfs` (a running container's root).
    pub source: Option<&'static str>,
    /// What Trivy was pointed at.
    pub scan_target: Option<String>,
    /// The OS Trivy detected (`debian 12.5`).
    pub os: Option<String>,
    /// When the result was produced (RFC 3339); older than this run for
    /// cached results.
    pub scanned_at: Option<String>,
    /// A caveat, e.g. that a rootfs scan saw the running filesystem.
    pub note: Option<String>,
}

/// The node's own OS packages (`--host`).
#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    /// Outcome.
    pub status: Status,
    /// Why it failed.
    pub error: Option<String>,
    /// Findings by severity.
    pub vulnerabilities: Counts,
    /// The full Trivy report.
    pub report_path: Option<PathBuf>,
    /// The OS Trivy detected.
    pub os: Option<String>,
    /// When the result was produced.
    pub scanned_at: Option<String>,
}

/// The runtime that was asked.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeInfo {
    /// `unix://…` passed to crictl with `-r`.
    pub endpoint: String,
    /// `containerd`, `cri-o`, `docker`, or `null` if unknown.
    pub kind: Option<RuntimeKind>,
    /// RuntimeName from `crictl version`.
    pub name: Option<String>,
    /// RuntimeVersion from `crictl version`.
    pub version: Option<String>,
}

/// The vulnerability DB used.
#[derive(Debug, Clone, Serialize)]
pub struct DbInfo {
    /// `current`, `updated`, `skipped`, `stale`.
    pub status: &'static str,
    /// The DB's `UpdatedAt`.
    pub updated_at: String,
    /// Why an update failed.
    pub error: Option<String>,
}

/// Totals.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Unique images running.
    pub images: usize,
    /// Running containers.
    pub containers: usize,
    /// Images scanned this cycle.
    pub scanned: usize,
    /// Images answered from the cache.
    pub cached: usize,
    /// Images whose scan failed.
    pub failed: usize,
    /// Images not scanned.
    pub skipped: usize,
    /// Findings over all images (the host scan is not included).
    pub vulnerabilities: Counts,
    /// The vulnerability DB's `UpdatedAt`.
    pub db_updated_at: String,
    /// Trivy processes started this cycle (DB update and retries included).
    pub trivy_runs: u32,
    /// The severities reported.
    pub severities: Vec<Severity>,
    /// `--fail-on`, if given.
    pub fail_on: Option<Severity>,
    /// True if a finding at or above `fail_on` exists (images or host).
    pub fail_on_triggered: bool,
}

/// The whole report body.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    /// The runtime asked.
    pub runtime: RuntimeInfo,
    /// The DB used.
    pub db: DbInfo,
    /// One entry per unique image, sorted by image ID.
    pub images: Vec<ImageResult>,
    /// The host scan, with `--host`.
    pub host: Option<HostResult>,
    /// Totals.
    pub summary: Summary,
}

impl Summary {
    /// Totals of `images` (and `host` for `--fail-on`).
    pub fn compute(
        images: &[ImageResult],
        host: Option<&HostResult>,
        db_updated_at: &str,
        trivy_runs: u32,
        severities: Vec<Severity>,
        fail_on: Option<Severity>,
    ) -> Self {
        let count = |s: Status| images.iter().filter(|i| i.status == s).count();
        let mut vulnerabilities = Counts::default();
        for image in images {
            vulnerabilities.merge(&image.vulnerabilities);
        }
        let fail_on_triggered = fail_on.is_some_and(|t| {
            vulnerabilities.any_at_or_above(t)
                || host.is_some_and(|h| h.vulnerabilities.any_at_or_above(t))
        });
        Summary {
            images: images.len(),
            containers: images.iter().map(|i| i.containers.len()).sum(),
            scanned: count(Status::Scanned),
            cached: count(Status::Cached),
            failed: count(Status::Failed),
            skipped: count(Status::Skipped),
            vulnerabilities,
            db_updated_at: db_updated_at.to_string(),
            trivy_runs,
            severities,
            fail_on,
            fail_on_triggered,
        }
    }
}

impl Report for ScanReport {
    const SCHEMA_VERSION: u32 = 1;

    fn text(
        &self,
        ctx: &nodeguard_common::report::RunContext,
        painter: &nodeguard_common::text::Painter,
    ) -> String {
        crate::text::render(self, ctx, painter)
    }

    fn jsonl_records(&self) -> Vec<Record> {
        let mut records = Vec::with_capacity(self.images.len() + 2);
        for image in &self.images {
            let mut value = serde_json::to_value(image).unwrap_or_default();
            if image.containers.len() > JSONL_MAX_CONTAINERS {
                value["containers"] =
                    serde_json::to_value(&image.containers[..JSONL_MAX_CONTAINERS])
                        .unwrap_or_default();
                value["containers_not_listed"] =
                    (image.containers.len() - JSONL_MAX_CONTAINERS).into();
            }
            records.push(Record::new("image", &value));
        }
        if let Some(host) = &self.host {
            records.push(Record::new("host", host));
        }
        records.push(Record::new(
            "summary",
            &serde_json::json!({ "runtime": self.runtime, "db": self.db, "summary": self.summary }),
        ));
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(status: Status, critical: u64) -> ImageResult {
        ImageResult {
            image_id: "sha256:x".into(),
            repo_tags: vec![],
            repo_digests: vec![],
            containers: vec![],
            status,
            error: None,
            vulnerabilities: Counts {
                critical,
                ..Counts::default()
            },
            report_path: None,
            source: None,
            scan_target: None,
            os: None,
            scanned_at: None,
            note: None,
        }
    }

    #[test]
    fn summary_counts_statuses_and_fail_on() {
        let images = [
            image(Status::Scanned, 2),
            image(Status::Cached, 1),
            image(Status::Failed, 0),
        ];
        let s = Summary::compute(
            &images,
            None,
            "db",
            3,
            Severity::ALL.to_vec(),
            Some(Severity::Critical),
        );
        assert_eq!(
            (s.images, s.scanned, s.cached, s.failed, s.skipped),
            (3, 1, 1, 1, 0)
        );
        assert_eq!(s.vulnerabilities.critical, 3);
        assert!(s.fail_on_triggered);
        let clean = [image(Status::Scanned, 0)];
        let s = Summary::compute(
            &clean,
            None,
            "db",
            1,
            Severity::ALL.to_vec(),
            Some(Severity::Low),
        );
        assert!(!s.fail_on_triggered);
        let host = HostResult {
            status: Status::Scanned,
            error: None,
            vulnerabilities: Counts {
                low: 1,
                ..Counts::default()
            },
            report_path: None,
            os: None,
            scanned_at: None,
        };
        let s = Summary::compute(
            &clean,
            Some(&host),
            "db",
            1,
            Severity::ALL.to_vec(),
            Some(Severity::Low),
        );
        assert!(s.fail_on_triggered, "host findings count for --fail-on");
    }

    #[test]
    fn jsonl_lines_stay_small_for_busy_images() {
        let mut busy = image(Status::Scanned, 0);
        busy.containers = (0..500)
            .map(|i| ContainerRef {
                namespace: "namespace-with-a-long-name".into(),
                pod: format!("deployment-abcdef1234-{i:05}"),
                container: "application".into(),
                container_id: "c".repeat(64),
            })
            .collect();
        let report = ScanReport {
            runtime: RuntimeInfo {
                endpoint: "unix:///x".into(),
                kind: None,
                name: None,
                version: None,
            },
            db: DbInfo {
                status: "current",
                updated_at: "t".into(),
                error: None,
            },
            summary: Summary::compute(std::slice::from_ref(&busy), None, "t", 0, vec![], None),
            images: vec![busy],
            host: None,
        };
        let records = report.jsonl_records();
        assert_eq!(records.len(), 2);
        let line = serde_json::to_string(&records[0].fields).unwrap();
        assert!(line.len() < 8 * 1024, "{} bytes", line.len());
        assert_eq!(records[0].fields["containers_not_listed"], 475);
    }
}
