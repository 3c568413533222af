//! Running Trivy: one scan per image in a private scratch directory (the
//! DB update is in [`crate::trivy_db`]).
//!
//! Trivy's failure modes on nodes drive this design:
//! - its scan cache (`fanal/fanal.db`) is BoltDB with an exclusive lock, so
//!   two processes sharing a cache dir fail ("cache may be in use by another
//!   process") or, before 0.66, hang. Each scan therefore gets its own cache
//!   dir (with `--cache-backend memory`) whose `db`/`java-db` are symlinks to
//!   the shared, read-only vulnerability DB, and its own `TMPDIR` (Trivy
//!   exports images there); the lock error is still retried;
//! - DB downloads are guarded only in-process, so ours take a file lock;
//! - without `--image-src` a missing image silently falls through to a
//!   registry pull; we pin the node's store;
//! - `--skip-db-update` fails on a first run, so a missing DB is reported
//!   up front, naming the path.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use nodeguard_common::process::{describe_status, Cmd, Output};

use crate::trivy_report::Severity;

/// What Trivy's stderr says when another process holds its cache lock.
const CACHE_LOCK_MESSAGE: &str = "cache may be in use by another process";

/// Largest Trivy report read back (the JSON of an image with thousands of
/// findings is tens of MiB). Larger, or not a regular file (a FIFO would
/// block), fails that image with the reason.
pub const MAX_REPORT_BYTES: u64 = 256 << 20;

/// Directories a host scan must not walk: pseudo filesystems, and every
/// container's layers (scanning them from the host root OOMs Trivy).
pub const HOST_SKIP_DIRS: &[&str] = &[
    "proc",
    "sys",
    "dev",
    "run",
    "var/run",
    "tmp",
    "var/lib/containerd",
    "var/lib/containers",
    "var/lib/docker",
    "var/lib/kubelet/pods",
    "var/log/pods",
    "var/log/containers",
    "var/lib/rancher/k3s/agent/containerd",
];

/// Java archives, which Trivy's jar analyzer can only judge with the Java DB.
/// Without that DB (`--skip-java-db`) Trivy aborts the whole image scan on
/// the first jar ("Unable to initialize the Java DB: '--skip-java-db-update'
/// cannot be specified on the first run"), so they are skipped instead and
/// the OS packages are still scanned (found by bench/trivy-memory.sh on an
/// image with OpenJDK and Maven).
pub const JAVA_ARCHIVE_GLOBS: &[&str] = &[
    "**/*.jar", "**/*.war", "**/*.ear", "**/*.par", "**/*.jpi", "**/*.hpi",
];

/// Settings shared by every Trivy run of a cycle.
#[derive(Debug, Clone)]
pub struct TrivyConfig {
    /// The trivy program.
    pub program: PathBuf,
    /// Trivy's own cache dir: holds `db/` and `java-db/`.
    pub cache_root: PathBuf,
    /// Parent of the per-scan scratch directories.
    pub work_root: PathBuf,
    /// `--severity` passed to Trivy.
    pub severities: Vec<Severity>,
    /// Hard limit per Trivy process.
    pub timeout: Duration,
    /// Attempts when the cache lock is busy.
    pub lock_retries: u32,
    /// `--db-repository` values.
    pub db_repositories: Vec<String>,
    /// `--java-db-repository` values.
    pub java_db_repositories: Vec<String>,
    /// Skip the Java DB entirely.
    pub skip_java_db: bool,
    /// Allow `--image-src …,remote`.
    pub allow_registry_pull: bool,
    /// containerd namespace (`CONTAINERD_NAMESPACE`).
    pub containerd_namespace: String,
    /// Pause between lock retries (grows linearly per attempt).
    pub lock_backoff: Duration,
}

/// What to scan and how Trivy reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanTarget {
    /// `trivy image --image-src containerd` with `CONTAINERD_ADDRESS`.
    Containerd {
        /// The containerd socket path (a plain path, as Trivy wants).
        address: PathBuf,
        /// A repo digest or tag the store knows.
        reference: String,
    },
    /// `trivy image --image-src docker` with `DOCKER_HOST`.
    Docker {
        /// The Docker engine socket path.
        socket: PathBuf,
        /// Image reference or ID.
        reference: String,
    },
    /// `trivy rootfs` of a directory: a running container's root, or the host.
    Rootfs {
        /// The directory.
        path: PathBuf,
        /// True for the host root: OS packages only, container dirs skipped.
        host: bool,
    },
}

impl ScanTarget {
    /// How the report describes the source: `containerd`, `docker`, `rootfs`.
    pub fn source(&self) -> &'static str {
        match self {
            ScanTarget::Containerd { .. } => "containerd",
            ScanTarget::Docker { .. } => "docker",
            ScanTarget::Rootfs { .. } => "rootfs",
        }
    }

    /// The argument Trivy scans, for messages and the report.
    pub fn display(&self) -> String {
        match self {
            ScanTarget::Containerd { reference, .. } | ScanTarget::Docker { reference, .. } => {
                reference.clone()
            }
            ScanTarget::Rootfs { path, .. } => path.display().to_string(),
        }
    }
}

/// Flags on every Trivy run: no update checks, no telemetry, no progress
/// bars on stderr.
pub(crate) const QUIET_FLAGS: &[&str] = &[
    "--skip-version-check",
    "--disable-telemetry",
    "--quiet",
    "--no-progress",
];

/// Trivy's argv for one scan (pure; the unit tests pin it).
pub fn scan_args(
    cfg: &TrivyConfig,
    target: &ScanTarget,
    cache_dir: &Path,
    output: &Path,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |a: &str| args.push(a.into());
    match target {
        ScanTarget::Containerd { .. } | ScanTarget::Docker { .. } => {
            push("image");
            push("--image-src");
            let src = if matches!(target, ScanTarget::Docker { .. }) {
                "docker"
            } else {
                "containerd"
            };
            if cfg.allow_registry_pull {
                push(&format!("{src},remote"));
            } else {
                push(src);
            }
        }
        ScanTarget::Rootfs { host, .. } => {
            push("rootfs");
            if *host {
                push("--pkg-types");
                push("os");
                push("--skip-dirs");
                push(&HOST_SKIP_DIRS.join(","));
            }
        }
    }
    for flag in [
        "--scanners",
        "vuln",
        "--format",
        "json",
        "--cache-backend",
        "memory",
        "--skip-db-update",
        "--skip-java-db-update",
        "--offline-scan",
    ] {
        push(flag);
    }
    if cfg.skip_java_db {
        push("--skip-files");
        push(&JAVA_ARCHIVE_GLOBS.join(","));
    }
    push("--timeout");
    push(&format!("{}s", cfg.timeout.as_secs().max(1)));
    if cfg.severities.len() < Severity::ALL.len() {
        push("--severity");
        push(
            &cfg.severities
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    for flag in QUIET_FLAGS {
        push(flag);
    }
    args.push("--cache-dir".into());
    args.push(cache_dir.as_os_str().to_owned());
    args.push("--output".into());
    args.push(output.as_os_str().to_owned());
    args.push(match target {
        ScanTarget::Rootfs { path, .. } => path.as_os_str().to_owned(),
        other => other.display().into(),
    });
    args
}

/// The environment of a Trivy process: nothing of ours (pod variables,
/// `TRIVY_*` overrides, tokens) unless listed here.
pub fn scan_env(
    cfg: &TrivyConfig,
    target: &ScanTarget,
    tmp: &Path,
    home: &Path,
) -> Vec<(String, OsString)> {
    let mut env = base_env(tmp, home, cfg.allow_registry_pull);
    match target {
        ScanTarget::Containerd { address, .. } => {
            env.push(("CONTAINERD_ADDRESS".into(), address.as_os_str().to_owned()));
            env.push((
                "CONTAINERD_NAMESPACE".into(),
                cfg.containerd_namespace.clone().into(),
            ));
        }
        ScanTarget::Docker { socket, .. } => {
            env.push((
                "DOCKER_HOST".into(),
                format!("unix://{}", socket.display()).into(),
            ));
        }
        ScanTarget::Rootfs { .. } => {}
    }
    env
}

pub(crate) fn base_env(tmp: &Path, home: &Path, keep_home: bool) -> Vec<(String, OsString)> {
    let mut env = vec![
        ("TMPDIR".to_string(), tmp.as_os_str().to_owned()),
        (
            "PATH".to_string(),
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ),
    ];
    // Registry credentials live in ~/.docker; only a registry pull needs them.
    let kept = if keep_home {
        std::env::var_os("HOME")
    } else {
        None
    };
    env.push((
        "HOME".to_string(),
        kept.unwrap_or_else(|| home.as_os_str().to_owned()),
    ));
    for key in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ] {
        if let Some(v) = std::env::var_os(key) {
            env.push((key.to_string(), v));
        }
    }
    if keep_home {
        if let Some(v) = std::env::var_os("DOCKER_CONFIG") {
            env.push(("DOCKER_CONFIG".into(), v));
        }
    }
    env
}

/// A finished scan.
#[derive(Debug)]
pub struct ScanOutput {
    /// Trivy's JSON report, as written.
    pub report: Vec<u8>,
    /// Trivy processes started (retries included).
    pub trivy_runs: u32,
    /// Wall time of the successful attempt.
    pub duration: Duration,
}

/// A failed scan: the message names the command and Trivy's stderr.
#[derive(Debug)]
pub struct ScanFailure {
    /// What went wrong.
    pub message: String,
    /// Trivy processes started.
    pub trivy_runs: u32,
}

/// Scans one target in a private scratch dir (removed afterwards),
/// retrying while Trivy reports its cache lock busy.
pub fn scan(cfg: &TrivyConfig, target: &ScanTarget) -> Result<ScanOutput, ScanFailure> {
    let mut runs = 0;
    let fail = |message: String, runs| ScanFailure {
        message,
        trivy_runs: runs,
    };
    for attempt in 1..=cfg.lock_retries {
        let work = Workspace::create(cfg).map_err(|e| fail(format!("{e:#}"), runs))?;
        let output = work.dir.path().join("report.json");
        let mut cmd = Cmd::new(&cfg.program)
            .args(scan_args(cfg, target, &work.cache, &output))
            .env_clear()
            .timeout(cfg.timeout)
            .current_dir(work.dir.path());
        for (k, v) in scan_env(cfg, target, &work.tmp, work.dir.path()) {
            cmd = cmd.env(k, v);
        }
        runs += 1;
        let result: Output = cmd.run().map_err(|e| fail(format!("{e:#}"), runs))?;
        if result.status.success() {
            let report = nodeguard_common::input::read_regular_file(&output, MAX_REPORT_BYTES)
                .map_err(|e| {
                    fail(
                        format!(
                            "`{}` exited 0 but its report is unusable: {e:#}",
                            result.display
                        ),
                        runs,
                    )
                })?;
            return Ok(ScanOutput {
                report,
                trivy_runs: runs,
                duration: result.duration,
            });
        }
        let tail = result.stderr_tail();
        if tail.contains(CACHE_LOCK_MESSAGE) && attempt < cfg.lock_retries {
            log::warn!(
                "{}: Trivy's cache is locked (attempt {attempt}/{}); retrying",
                target.display(),
                cfg.lock_retries
            );
            std::thread::sleep(cfg.lock_backoff * attempt);
            continue;
        }
        let tail = if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        };
        return Err(fail(
            format!(
                "`{}` {}{tail}",
                result.display,
                describe_status(result.status)
            ),
            runs,
        ));
    }
    Err(fail(
        format!(
            "Trivy's cache stayed locked after {} attempts",
            cfg.lock_retries
        ),
        runs,
    ))
}

/// A scan's scratch: `cache/` (DB symlinks), `tmp/` (TMPDIR), the report.
struct Workspace {
    dir: tempfile::TempDir,
    cache: PathBuf,
    tmp: PathBuf,
}

impl Workspace {
    fn create(cfg: &TrivyConfig) -> Result<Self> {
        nodeguard_common::atomic::ensure_dir(&cfg.work_root, 0o700)?;
        let dir = tempfile::Builder::new()
            .prefix("scan-")
            .tempdir_in(&cfg.work_root)
            .with_context(|| format!("creating a scratch dir in {}", cfg.work_root.display()))?;
        let cache = dir.path().join("cache");
        let tmp = dir.path().join("tmp");
        for d in [&cache, &tmp] {
            std::fs::create_dir(d).with_context(|| format!("creating {}", d.display()))?;
        }
        for name in ["db", "java-db"] {
            let shared = cfg.cache_root.join(name);
            if shared.is_dir() {
                std::os::unix::fs::symlink(&shared, cache.join(name)).with_context(|| {
                    format!("linking {} into {}", shared.display(), cache.display())
                })?;
            }
        }
        Ok(Self { dir, cache, tmp })
    }
}

/// Removes scratch dirs left by killed runs (older than `max_age`).
pub fn clean_stale_work(work_root: &Path, max_age: Duration) {
    let Ok(entries) = std::fs::read_dir(work_root) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > max_age);
        if old && entry.file_name().to_string_lossy().starts_with("scan-") {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                log::warn!("removing stale scratch dir {}: {e}", entry.path().display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TrivyConfig {
        TrivyConfig {
            program: "trivy".into(),
            cache_root: "/c/trivy".into(),
            work_root: "/c/work".into(),
            severities: Severity::ALL.to_vec(),
            timeout: Duration::from_secs(600),
            lock_retries: 3,
            db_repositories: vec![],
            java_db_repositories: vec![],
            skip_java_db: false,
            allow_registry_pull: false,
            containerd_namespace: "k8s.io".into(),
            lock_backoff: Duration::from_millis(10),
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn without_the_java_db_java_archives_are_skipped_not_fatal() {
        let target = ScanTarget::Containerd {
            address: "/run/containerd/containerd.sock".into(),
            reference: "localhost/big:1".into(),
        };
        let with_db = strings(&scan_args(
            &cfg(),
            &target,
            Path::new("/c"),
            Path::new("/r"),
        ));
        assert!(
            !with_db.contains(&"--skip-files".to_string()),
            "{with_db:?}"
        );
        let no_db = TrivyConfig {
            skip_java_db: true,
            ..cfg()
        };
        let args = strings(&scan_args(
            &no_db,
            &target,
            Path::new("/c"),
            Path::new("/r"),
        ));
        let at = args
            .iter()
            .position(|a| a == "--skip-files")
            .expect("--skip-files");
        let globs = &args[at + 1];
        for glob in ["**/*.jar", "**/*.war", "**/*.ear"] {
            assert!(globs.split(',').any(|g| g == glob), "{globs}");
        }
    }

    #[test]
    fn containerd_scan_pins_the_node_store_and_vuln_scanner() {
        let target = ScanTarget::Containerd {
            address: "/host/run/containerd/containerd.sock".into(),
            reference: "docker.io/library/nginx@sha256:abc".into(),
        };
        let args = strings(&scan_args(
            &cfg(),
            &target,
            Path::new("/w/cache"),
            Path::new("/w/r.json"),
        ));
        let joined = args.join(" ");
        assert!(
            joined.starts_with("image --image-src containerd --scanners vuln --format json"),
            "{joined}"
        );
        assert!(
            joined.contains("--skip-db-update --skip-java-db-update"),
            "{joined}"
        );
        assert!(
            joined.contains("--cache-dir /w/cache --output /w/r.json"),
            "{joined}"
        );
        assert!(!joined.contains("--severity"), "all severities: no filter");
        assert!(!joined.contains("remote"), "{joined}");
        assert_eq!(args.last().unwrap(), "docker.io/library/nginx@sha256:abc");
        let env = scan_env(&cfg(), &target, Path::new("/w/tmp"), Path::new("/w"));
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(
            get("CONTAINERD_ADDRESS").as_deref(),
            Some("/host/run/containerd/containerd.sock")
        );
        assert_eq!(get("CONTAINERD_NAMESPACE").as_deref(), Some("k8s.io"));
        assert_eq!(get("TMPDIR").as_deref(), Some("/w/tmp"));
        assert_eq!(
            get("HOME").as_deref(),
            Some("/w"),
            "private HOME unless pulling"
        );
    }

    #[test]
    fn registry_pull_and_severity_filter_are_opt_in() {
        let mut c = cfg();
        c.allow_registry_pull = true;
        c.severities = vec![Severity::Critical, Severity::High];
        let target = ScanTarget::Containerd {
            address: "/s".into(),
            reference: "r:1".into(),
        };
        let joined = strings(&scan_args(&c, &target, Path::new("/c"), Path::new("/o"))).join(" ");
        assert!(joined.contains("--image-src containerd,remote"), "{joined}");
        assert!(joined.contains("--severity CRITICAL,HIGH"), "{joined}");
    }

    #[test]
    fn host_rootfs_scan_skips_container_layers() {
        let target = ScanTarget::Rootfs {
            path: "/host".into(),
            host: true,
        };
        let args = strings(&scan_args(
            &cfg(),
            &target,
            Path::new("/c"),
            Path::new("/o"),
        ));
        assert_eq!(args[0], "rootfs");
        let skip = args.iter().position(|a| a == "--skip-dirs").unwrap();
        assert!(args[skip + 1].contains("var/lib/containerd"));
        assert!(args.contains(&"--pkg-types".to_string()));
        assert_eq!(args.last().unwrap(), "/host");
        let container_root = ScanTarget::Rootfs {
            path: "/proc/42/root".into(),
            host: false,
        };
        let args = strings(&scan_args(
            &cfg(),
            &container_root,
            Path::new("/c"),
            Path::new("/o"),
        ));
        assert!(!args.contains(&"--skip-dirs".to_string()));
        assert!(
            scan_env(&cfg(), &container_root, Path::new("/t"), Path::new("/w"))
                .iter()
                .all(|(k, _)| !k.starts_with("CONTAINERD"))
        );
    }
}
