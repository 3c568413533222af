//! Command-line flags. Every flag is also an environment variable
//! `NODEGUARD_<FLAG>`, so a DaemonSet can configure the tool without argv.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use nodeguard_common::cli::CommonArgs;
use nodeguard_common::exit;

use crate::trivy_report::Severity;

/// What the exit codes mean (shared wording from nodeguard-common).
fn after_help() -> String {
    exit::help(&[
        (
            exit::SUCCESS,
            "success (findings and per-image scan failures are data in the report)",
        ),
        (
            exit::FINDINGS,
            "success, and an image (or the host, with --host) has a finding at or\nabove --fail-on",
        ),
        (
            exit::ERROR,
            "no runtime socket, crictl failed or printed garbage, no vulnerability DB,\nmetrics file not writable",
        ),
        (
            crate::exit::ALL_SCANS_FAILED,
            "every scan attempted failed (the report is printed and names each\nfailure)",
        ),
    ])
}

/// Lists the node's running containers with crictl, scans each unique image
/// once with Trivy (from the node's own image store, never a registry unless
/// asked), and prints one JSON report.
#[derive(Debug, Clone, Parser)]
#[command(name = "scan-images", version, after_help = after_help())]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The crictl program (default: `crictl` from PATH).
    #[arg(
        long,
        env = "NODEGUARD_CRICTL",
        default_value = "crictl",
        value_name = "PROGRAM"
    )]
    pub crictl: PathBuf,

    /// The Trivy program (default: `trivy` from PATH).
    #[arg(
        long,
        env = "NODEGUARD_TRIVY",
        default_value = "trivy",
        value_name = "PROGRAM"
    )]
    pub trivy: PathBuf,

    /// CRI socket (`unix:///…` or a path), as seen by this process: in a pod
    /// with the host at /host, `/host/run/containerd/containerd.sock`.
    /// Default: the first existing socket under --host-root among containerd,
    /// CRI-O, k3s/RKE2 containerd and cri-dockerd.
    #[arg(long, env = "NODEGUARD_RUNTIME_ENDPOINT", value_name = "ENDPOINT")]
    pub runtime_endpoint: Option<String>,

    /// containerd namespace holding Kubernetes' images.
    #[arg(
        long,
        env = "NODEGUARD_CONTAINERD_NAMESPACE",
        default_value = "k8s.io",
        value_name = "NS"
    )]
    pub containerd_namespace: String,

    /// Result cache, Trivy's vulnerability DB and scratch space for scans.
    #[arg(
        long,
        env = "NODEGUARD_CACHE_DIR",
        default_value = "/var/cache/nodeguard/scan-images",
        value_name = "DIR"
    )]
    pub cache_dir: PathBuf,

    /// Where each image's full Trivy report is written (atomically).
    #[arg(
        long,
        env = "NODEGUARD_OUTPUT_DIR",
        default_value = "/var/lib/nodeguard/scan-images/reports",
        value_name = "DIR"
    )]
    pub output_dir: PathBuf,

    /// Full reports kept per image (newest first); older ones are removed.
    #[arg(long, env = "NODEGUARD_KEEP", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,

    /// Reports of images no longer running are removed once this old.
    #[arg(long, env = "NODEGUARD_KEEP_ABSENT", default_value = "7d", value_parser = parse_duration, value_name = "DURATION")]
    pub keep_absent: Duration,

    /// An unchanged image scanned against the same vulnerability DB is not
    /// rescanned within this time.
    #[arg(long, env = "NODEGUARD_TTL", default_value = "24h", value_parser = parse_duration, value_name = "DURATION")]
    pub ttl: Duration,

    /// Severities to report (comma-separated; default all).
    #[arg(long, env = "NODEGUARD_SEVERITY", value_delimiter = ',', value_parser = parse_severity, value_name = "LIST")]
    pub severity: Vec<Severity>,

    /// Exit 1 when any finding at or above this severity exists.
    #[arg(long, env = "NODEGUARD_FAIL_ON", value_parser = parse_severity, value_name = "SEVERITY")]
    pub fail_on: Option<Severity>,

    /// Trivy processes run at once. Each needs memory and scratch disk
    /// about the size of the image it scans.
    #[arg(long, env = "NODEGUARD_CONCURRENCY", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,

    /// Skip images larger than this (e.g. `4GiB`): Trivy's memory and
    /// scratch disk grow with image size, and an OOM-killed scan helps no one.
    #[arg(long, env = "NODEGUARD_MAX_IMAGE_SIZE", value_parser = parse_size, value_name = "SIZE")]
    pub max_image_size: Option<u64>,

    /// Per-image limit; the whole Trivy process group is killed after it.
    #[arg(long, env = "NODEGUARD_TIMEOUT", default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,

    /// Limit for each crictl call.
    #[arg(long, env = "NODEGUARD_CRICTL_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub crictl_timeout: Duration,

    /// Attempts per image when Trivy reports its cache is in use.
    #[arg(long, env = "NODEGUARD_LOCK_RETRIES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub lock_retries: u32,

    /// Do not update the vulnerability DB: use the one already in
    /// CACHE_DIR/trivy/db (offline nodes, pre-seeded volumes).
    #[arg(long, env = "NODEGUARD_SKIP_DB_UPDATE")]
    pub skip_db_update: bool,

    /// Do not fetch Trivy's Java DB; Java archives (.jar, .war, .ear, …) are
    /// then skipped, so only OS and other language packages are judged.
    #[arg(long, env = "NODEGUARD_SKIP_JAVA_DB")]
    pub skip_java_db: bool,

    /// OCI repository of the vulnerability DB (repeatable; an internal mirror first).
    #[arg(
        long,
        env = "NODEGUARD_DB_REPOSITORY",
        value_delimiter = ',',
        value_name = "REPO"
    )]
    pub db_repository: Vec<String>,

    /// OCI repository of the Java DB (repeatable).
    #[arg(
        long,
        env = "NODEGUARD_JAVA_DB_REPOSITORY",
        value_delimiter = ',',
        value_name = "REPO"
    )]
    pub java_db_repository: Vec<String>,

    /// Let Trivy pull an image from its registry when the node's store
    /// cannot serve it (off: a pull needs egress and credentials, and may
    /// scan something other than what runs).
    #[arg(long, env = "NODEGUARD_ALLOW_REGISTRY_PULL")]
    pub allow_registry_pull: bool,

    /// Also scan the node's own OS packages (`trivy rootfs` of the host root).
    #[arg(long, env = "NODEGUARD_HOST")]
    pub host: bool,
}

impl Cli {
    /// The severities to report: the flag, or all five.
    pub fn severities(&self) -> Vec<Severity> {
        let mut list = if self.severity.is_empty() {
            Severity::ALL.to_vec()
        } else {
            self.severity.clone()
        };
        list.sort();
        list.dedup();
        list
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e} (e.g. 30s, 10m, 24h, 7d)"))
}

/// `1234`, `500MB`, `4GiB`, `2G` (binary for `KiB`/`MiB`/`GiB`/`TiB` and
/// the bare `K`/`M`/`G`/`T`, decimal for `KB`/`MB`/`GB`/`TB`).
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a size like 4GiB or 500MB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        // Kubernetes' quantity spellings (2Gi) too, as the chart's values use them.
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "t" | "ti" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ))
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?}: too large"))
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    text.parse().map_err(|e: anyhow::Error| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe_for_a_daemonset() {
        let cli = Cli::try_parse_from(["scan-images"]).unwrap();
        assert_eq!(cli.concurrency, 1);
        assert_eq!(cli.keep, 3);
        assert_eq!(cli.ttl, Duration::from_secs(24 * 3600));
        assert!(!cli.allow_registry_pull);
        assert_eq!(cli.severities(), Severity::ALL.to_vec());
        assert_eq!(cli.containerd_namespace, "k8s.io");
    }

    #[test]
    fn severities_and_durations_parse() {
        let cli = Cli::try_parse_from([
            "scan-images",
            "--severity",
            "high,critical",
            "--fail-on",
            "Critical",
            "--ttl",
            "90m",
            "--timeout",
            "2m",
        ])
        .unwrap();
        assert_eq!(cli.severities(), vec![Severity::Critical, Severity::High]);
        assert_eq!(cli.fail_on, Some(Severity::Critical));
        assert_eq!(cli.ttl, Duration::from_secs(5400));
        assert!(Cli::try_parse_from(["scan-images", "--fail-on", "urgent"]).is_err());
        assert!(Cli::try_parse_from(["scan-images", "--ttl", "soon"]).is_err());
        assert!(Cli::try_parse_from(["scan-images", "--concurrency", "0"]).is_err());
        assert!(Cli::try_parse_from(["scan-images", "--keep", "0"]).is_err());
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(
            parse_size("2Gi"),
            Ok(2 << 30),
            "the chart's Kubernetes spelling"
        );
        assert_eq!(parse_size("512Mi"), Ok(512 << 20));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }
}
