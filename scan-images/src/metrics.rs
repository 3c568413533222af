//! Prometheus series for node-exporter's textfile collector.
//!
//! `nodeguard_scan_images_vulnerabilities` has one series per image and
//! severity, zeros included, so an alert on `> 0` resolves when an image is
//! fixed or leaves the node. An image is labelled by its first tag and
//! repo digest; an image with neither carries its image ID as the digest so
//! series never collide. Images whose scan failed have no series (no data
//! is not zero findings); `scan_failures` counts them instead.

use std::time::SystemTime;

use nodeguard_common::metrics::Metrics;

use crate::crictl::split_reference;
use crate::report::{ImageResult, ScanReport, Status};
use crate::trivy_report::Severity;

/// `(image_repository, image_tag, image_digest)` labels of an image.
pub fn image_labels(image: &ImageResult) -> (String, String, String) {
    let (mut repository, tag) = match image.repo_tags.first() {
        Some(t) => {
            let (r, t, _) = split_reference(t);
            (r, t)
        }
        None => (String::new(), String::new()),
    };
    let digest = match image.repo_digests.first() {
        Some(d) => {
            let (r, _, digest) = split_reference(d);
            if repository.is_empty() {
                repository = r;
            }
            digest
        }
        None => image.image_id.clone(),
    };
    (repository, tag, digest)
}

/// Builds the tool's metric families from a finished report.
pub fn build(report: &ScanReport, db_updated: Option<SystemTime>, now: SystemTime) -> Metrics {
    let mut m = Metrics::new(crate::TOOL);
    let vulns = m.gauge(
        "vulnerabilities",
        "Vulnerabilities (package x CVE findings) in images running on the node, by severity.",
    );
    for image in report
        .images
        .iter()
        .filter(|i| matches!(i.status, Status::Scanned | Status::Cached))
    {
        let (repository, tag, digest) = image_labels(image);
        for severity in Severity::ALL {
            vulns.sample(
                &[
                    ("severity", severity.as_str()),
                    ("image_repository", &repository),
                    ("image_tag", &tag),
                    ("image_digest", &digest),
                ],
                image.vulnerabilities.get(severity) as f64,
            );
        }
    }
    let images = m.gauge(
        "images",
        "Unique images running on the node, by scan status in the last run.",
    );
    for status in Status::ALL {
        let n = report.images.iter().filter(|i| i.status == status).count();
        images.sample(&[("status", status.as_str())], n as f64);
    }
    m.gauge("scan_failures", "Image scans that failed in the last run.")
        .sample(&[], report.summary.failed as f64);
    m.gauge("trivy_runs", "Trivy processes started by the last run.")
        .sample(&[], f64::from(report.summary.trivy_runs));
    if let Some(host) = &report.host {
        let family = m.gauge(
            "host_vulnerabilities",
            "Vulnerabilities in the node's own OS packages, by severity.",
        );
        if matches!(host.status, Status::Scanned | Status::Cached) {
            for severity in Severity::ALL {
                family.sample(
                    &[("severity", severity.as_str())],
                    host.vulnerabilities.get(severity) as f64,
                );
            }
        }
    }
    if let Some(updated) = db_updated {
        let secs = nodeguard_common::report::unix_seconds(updated);
        m.gauge(
            "db_updated_timestamp_seconds",
            "UpdatedAt of the Trivy vulnerability DB used.",
        )
        .sample(&[], secs.floor());
        let age = now.duration_since(updated).map_or(0.0, |d| d.as_secs_f64());
        m.gauge(
            "db_age_seconds",
            "Age of the Trivy vulnerability DB used (now minus its UpdatedAt).",
        )
        .sample(&[], age.floor());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{DbInfo, RuntimeInfo, Summary};
    use crate::trivy_report::Counts;
    use std::time::{Duration, UNIX_EPOCH};

    fn image(id: &str, tags: &[&str], digests: &[&str], status: Status, high: u64) -> ImageResult {
        ImageResult {
            image_id: id.into(),
            repo_tags: tags.iter().map(ToString::to_string).collect(),
            repo_digests: digests.iter().map(ToString::to_string).collect(),
            containers: vec![],
            status,
            error: None,
            vulnerabilities: Counts {
                high,
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
    fn labels_fall_back_to_digest_repo_and_image_id() {
        let i = image(
            "sha256:1",
            &["docker.io/library/nginx:1.27"],
            &["docker.io/library/nginx@sha256:d"],
            Status::Scanned,
            0,
        );
        assert_eq!(
            image_labels(&i),
            (
                "docker.io/library/nginx".into(),
                "1.27".into(),
                "sha256:d".into()
            )
        );
        let i = image(
            "sha256:2",
            &[],
            &["quay.io/x/y@sha256:e"],
            Status::Scanned,
            0,
        );
        assert_eq!(
            image_labels(&i),
            ("quay.io/x/y".into(), String::new(), "sha256:e".into())
        );
        let i = image(
            "sha256:3",
            &["localhost/busybox:1.35"],
            &[],
            Status::Scanned,
            0,
        );
        assert_eq!(
            image_labels(&i),
            ("localhost/busybox".into(), "1.35".into(), "sha256:3".into())
        );
    }

    #[test]
    fn clean_images_get_zero_series_and_failed_ones_none() {
        let images = vec![
            image("sha256:1", &["a/clean:1"], &[], Status::Cached, 0),
            image("sha256:2", &["a/bad:1"], &[], Status::Scanned, 3),
            image("sha256:3", &["a/broken:1"], &[], Status::Failed, 0),
        ];
        let report = ScanReport {
            runtime: RuntimeInfo {
                endpoint: "unix:///s".into(),
                kind: None,
                name: None,
                version: None,
            },
            db: DbInfo {
                status: "current",
                updated_at: "t".into(),
                error: None,
            },
            summary: Summary::compute(&images, None, "t", 1, Severity::ALL.to_vec(), None),
            images,
            host: None,
        };
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        let text = build(&report, Some(UNIX_EPOCH + Duration::from_secs(6_400)), now).render();
        assert!(text.contains(
            "nodeguard_scan_images_vulnerabilities{severity=\"CRITICAL\",image_repository=\"a/clean\",image_tag=\"1\",image_digest=\"sha256:1\"} 0\n"
        ), "{text}");
        assert!(
            text.contains(
                "image_repository=\"a/bad\",image_tag=\"1\",image_digest=\"sha256:2\"} 3\n"
            ),
            "{text}"
        );
        assert!(!text.contains("a/broken"), "{text}");
        assert!(
            text.contains("nodeguard_scan_images_images{status=\"failed\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("nodeguard_scan_images_images{status=\"skipped\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("nodeguard_scan_images_scan_failures 1\n"),
            "{text}"
        );
        assert!(
            text.contains("nodeguard_scan_images_db_age_seconds 3600\n"),
            "{text}"
        );
        assert!(
            text.contains("nodeguard_scan_images_db_updated_timestamp_seconds 6400\n"),
            "{text}"
        );
    }
}
