//! scan-images' own exit codes (3+), beside the shared 0, 1 and 2.

use crate::report::{HostResult, ImageResult, Status};

/// Every scan attempted this cycle failed (no image, nor the host with
/// `--host`, was scanned or answered from the cache). The report is
/// printed and names each failure; exiting 0 would read as a clean node.
pub const ALL_SCANS_FAILED: u8 = 3;

/// Whether at least one scan was attempted and every one failed. Skipped
/// images (over `--max-image-size`, nothing Trivy can reach) are not
/// attempts.
pub fn all_scans_failed(images: &[ImageResult], host: Option<&HostResult>) -> bool {
    let statuses = images
        .iter()
        .map(|i| i.status)
        .chain(host.map(|h| h.status))
        .filter(|s| *s != Status::Skipped);
    let mut attempted = false;
    for status in statuses {
        if status != Status::Failed {
            return false;
        }
        attempted = true;
    }
    attempted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trivy_report::Counts;

    fn image(status: Status) -> ImageResult {
        ImageResult {
            image_id: "sha256:a".into(),
            repo_tags: vec![],
            repo_digests: vec![],
            containers: vec![],
            status,
            error: None,
            vulnerabilities: Counts::default(),
            report_path: None,
            source: None,
            scan_target: None,
            os: None,
            scanned_at: None,
            note: None,
        }
    }

    #[test]
    fn only_a_cycle_of_nothing_but_failures_counts() {
        use Status::*;
        assert!(all_scans_failed(&[image(Failed), image(Failed)], None));
        assert!(all_scans_failed(&[image(Failed), image(Skipped)], None));
        assert!(!all_scans_failed(&[image(Failed), image(Cached)], None));
        assert!(!all_scans_failed(&[image(Failed), image(Scanned)], None));
        assert!(!all_scans_failed(&[image(Skipped)], None));
        assert!(!all_scans_failed(&[], None));
        let host = HostResult {
            status: Scanned,
            error: None,
            vulnerabilities: Counts::default(),
            report_path: None,
            os: None,
            scanned_at: None,
        };
        assert!(!all_scans_failed(&[image(Failed)], Some(&host)));
        let failed_host = HostResult {
            status: Failed,
            ..host
        };
        assert!(all_scans_failed(&[], Some(&failed_host)));
    }
}
