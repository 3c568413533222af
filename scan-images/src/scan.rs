//! One scan cycle over the inventory: per unique image, a cache lookup,
//! else one Trivy run (bounded concurrency), the full report written under
//! `--output-dir`, the result cached. One image's failure is recorded on
//! that image and never stops the others.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context, Result};
use nodeguard_common::report::rfc3339;
use nodeguard_common::HostRoot;
use sha2::{Digest, Sha256};

use crate::cache::{self, CacheEntry, CacheKey, ResultCache};
use crate::discover::{self, Crictl};
use crate::endpoint::RuntimeKind;
use crate::inventory::ImageEntry;
use crate::report::{HostResult, ImageResult, Status};
use crate::reports;
use crate::trivy::{self, ScanTarget, TrivyConfig};
use crate::trivy_report::{self, Counts, Severity, TrivyReport};

/// Package databases whose change means the host must be rescanned.
const HOST_PACKAGE_DBS: &[&str] = &[
    "var/lib/dpkg/status",
    "var/lib/rpm/rpmdb.sqlite",
    "var/lib/rpm/Packages",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
    "lib/apk/db/installed",
];

/// Everything a cycle needs besides the inventory.
#[derive(Debug)]
pub struct Cycle<'a> {
    /// Trivy settings.
    pub trivy: TrivyConfig,
    /// crictl, for PIDs of running containers.
    pub crictl: &'a Crictl,
    /// The runtime.
    pub kind: Option<RuntimeKind>,
    /// The host root.
    pub host: &'a HostRoot,
    /// Result cache.
    pub cache: ResultCache,
    /// `--output-dir`.
    pub output_dir: PathBuf,
    /// The DB version scans run against.
    pub db_updated_at: String,
    /// The severity filter.
    pub severities: Vec<Severity>,
    /// Trivy processes at once.
    pub concurrency: usize,
    /// Images larger than this are skipped.
    pub max_image_size: Option<u64>,
    /// Trivy processes started (shared by workers).
    pub trivy_runs: AtomicU32,
}

/// How an image will be reached, decided before the cache lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Through the runtime's store.
    Store(ScanTarget),
    /// Through a running container's root; the note says why.
    RunningRoot {
        /// Why the store is not used.
        note: String,
    },
}

impl Plan {
    fn source(&self) -> &'static str {
        match self {
            Plan::Store(t) => t.source(),
            Plan::RunningRoot { .. } => "rootfs",
        }
    }
}

/// Chooses how to scan an image (pure). containerd: a repo digest (exact)
/// else a tag, never the config ID, which containerd's lookup does not
/// match. CRI-O: Trivy has no CRI-O source, so the running root.
pub fn plan(
    kind: Option<RuntimeKind>,
    socket: &Path,
    docker_socket: &Path,
    image: &ImageEntry,
) -> Plan {
    let reference = image
        .repo_digests
        .first()
        .or(image.repo_tags.first())
        .cloned();
    match (kind, reference) {
        (Some(RuntimeKind::Containerd), Some(reference)) if image.in_store => {
            Plan::Store(ScanTarget::Containerd {
                address: socket.to_path_buf(),
                reference,
            })
        }
        (Some(RuntimeKind::Docker), _) if image.in_store => Plan::Store(ScanTarget::Docker {
            socket: docker_socket.to_path_buf(),
            reference: image.image_id.clone(),
        }),
        (Some(RuntimeKind::CriO), _) => Plan::RunningRoot {
            note: "CRI-O: Trivy cannot read CRI-O's image store, so a running container's root \
                   filesystem was scanned (it includes changes made at run time)"
                .into(),
        },
        (_, _) if !image.in_store => Plan::RunningRoot {
            note: "the image is not in the runtime's image list, so a running container's root \
                   filesystem was scanned"
                .into(),
        },
        (Some(RuntimeKind::Containerd), None) => Plan::RunningRoot {
            note: "the image has no tag or digest Trivy can look up in containerd, so a running \
                   container's root filesystem was scanned"
                .into(),
        },
        _ => Plan::RunningRoot {
            note: "unknown runtime, so a running container's root filesystem was scanned".into(),
        },
    }
}

impl Cycle<'_> {
    /// Scans every image; results come back in inventory order.
    pub fn run(&self, images: &[ImageEntry]) -> Vec<ImageResult> {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<ImageResult>>> = Mutex::new(vec![None; images.len()]);
        let workers = self.concurrency.clamp(1, images.len().max(1));
        // "image i of n" on stderr when it is a terminal.
        let progress = nodeguard_common::progress::Progress::steps(
            "image",
            u64::try_from(images.len()).unwrap_or(u64::MAX),
        );
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(image) = images.get(i) else { break };
                    let name = image
                        .repo_tags
                        .first()
                        .map_or(image.image_id.as_str(), String::as_str);
                    progress.working_on(name);
                    let result = self.scan_image(image);
                    progress.step(name);
                    results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(result);
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .into_iter()
            .zip(images)
            .map(|(r, image)| r.unwrap_or_else(|| no_result(image)))
            .collect()
    }

    fn scan_image(&self, image: &ImageEntry) -> ImageResult {
        let docker_socket = self.host.join("var/run/docker.sock");
        let plan = plan(
            self.kind,
            &self.crictl.endpoint.socket,
            &docker_socket,
            image,
        );
        if let (Some(max), Some(size)) = (self.max_image_size, image.size) {
            if size > max {
                let mut result = base(image, Status::Skipped, &plan);
                result.error = Some(format!(
                    "image is {size} bytes, over --max-image-size {max}: not scanned \
                     (Trivy's memory and scratch disk grow with image size)"
                ));
                return result;
            }
        }
        let key = self.key(&image.image_id, plan.source());
        if let Some(hit) = self.cache.get(&key, SystemTime::now()) {
            log::info!("{}: cached result from {}", image.image_id, hit.scanned_at);
            return cached(base(image, Status::Cached, &plan), hit);
        }
        let mut result = base(image, Status::Scanned, &plan);
        let stem = reports::stem_for(&image.image_id);
        let outcome = match &plan {
            Plan::Store(target) => {
                result.scan_target = Some(target.display());
                match self.scan_target(target, &stem, key.clone(), &result) {
                    Err(message) if lacks_layer_blobs(target, &message) => {
                        // GKE-style `discard_unpacked_layers`, remote snapshotters:
                        // the store cannot export the image, its running root can.
                        result.source = Some("rootfs");
                        result.note = Some(MISSING_BLOBS_NOTE.to_string());
                        self.scan_running_root(image, &mut result, &stem, key)
                            .map_err(|e| format!("{message}; through a running root instead: {e}"))
                    }
                    other => other,
                }
            }
            Plan::RunningRoot { .. } => self.scan_running_root(image, &mut result, &stem, key),
        };
        match outcome {
            Ok(done) => {
                result.vulnerabilities = done.counts;
                result.report_path = Some(done.path);
                result.os = done.os;
                result.scanned_at = Some(rfc3339(done.at));
            }
            Err(message) => {
                result.status = Status::Failed;
                result.error = Some(message);
            }
        }
        result
    }

    /// `trivy rootfs` of the root filesystem of one of the image's running
    /// containers.
    fn scan_running_root(
        &self,
        image: &ImageEntry,
        result: &mut ImageResult,
        stem: &str,
        key: CacheKey,
    ) -> Result<Done, String> {
        let ids: Vec<String> = image
            .containers
            .iter()
            .map(|c| c.container_id.clone())
            .collect();
        let path = discover::running_root(self.crictl, self.host.path(), &ids)
            .map_err(|e| format!("{e:#}"))?;
        let target = ScanTarget::Rootfs { path, host: false };
        result.scan_target = Some(target.display());
        self.scan_target(&target, stem, key, result)
    }

    /// Scans the host's own OS packages (`--host`).
    pub fn scan_host(&self) -> HostResult {
        let key = self.key(&format!("host:{}", host_fingerprint(self.host)), "rootfs");
        let mut result = HostResult {
            status: Status::Scanned,
            error: None,
            vulnerabilities: Counts::default(),
            report_path: None,
            os: None,
            scanned_at: None,
        };
        if let Some(hit) = self.cache.get(&key, SystemTime::now()) {
            result.status = Status::Cached;
            result.vulnerabilities = hit.vulnerabilities;
            result.report_path = hit.report_path;
            result.os = hit.os;
            result.scanned_at = Some(rfc3339(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(hit.scanned_at),
            ));
            return result;
        }
        let target = ScanTarget::Rootfs {
            path: self.host.path().to_path_buf(),
            host: true,
        };
        let shown = host_shown(&target);
        match self.scan_target(&target, "host", key, &shown) {
            Ok(done) => {
                result.vulnerabilities = done.counts;
                result.report_path = Some(done.path);
                result.os = done.os;
                result.scanned_at = Some(rfc3339(done.at));
            }
            Err(message) => {
                result.status = Status::Failed;
                result.error = Some(message);
            }
        }
        result
    }

    fn key(&self, id: &str, source: &str) -> CacheKey {
        CacheKey {
            image_id: id.to_string(),
            db_updated_at: self.db_updated_at.clone(),
            severities: self.severities.clone(),
            source: source.to_string(),
        }
    }

    /// Trivy, then the report file, then the cache entry. The error text is
    /// what the report shows.
    fn scan_target(
        &self,
        target: &ScanTarget,
        stem: &str,
        key: CacheKey,
        shown: &ImageResult,
    ) -> Result<Done, String> {
        let outcome = trivy::scan(&self.trivy, target);
        let runs = match &outcome {
            Ok(o) => o.trivy_runs,
            Err(f) => f.trivy_runs,
        };
        self.trivy_runs.fetch_add(runs, Ordering::Relaxed);
        let output = outcome.map_err(|f| f.message)?;
        let parsed: TrivyReport = trivy_report::parse(&output.report)
            .map_err(|e| format!("Trivy's report for {}: {e:#}", target.display()))?;
        let at = SystemTime::now();
        let path = reports::write(&self.output_dir, stem, at, &output.report)
            .map_err(|e| format!("{e:#}"))?;
        // Trivy already filtered with --severity; filtering again keeps the
        // counts honest whatever produced the report.
        let counts = parsed.counts().only(&self.severities);
        let os = parsed.os().and_then(os_text);
        let entry = CacheEntry {
            key,
            scanned_at: cache::unix(at),
            vulnerabilities: counts,
            report_path: Some(path.clone()),
            os: os.clone(),
            source: shown.source.map(str::to_string),
            scan_target: Some(target.display()),
            note: shown.note.clone(),
        };
        if let Err(e) = self.cache.put(&entry) {
            log::warn!("caching the result for {}: {e:#}", target.display());
        }
        log::info!(
            "{}: {} findings in {:?}",
            target.display(),
            counts.total(),
            output.duration
        );
        Ok(Done {
            counts,
            path,
            os,
            at,
        })
    }
}

/// What the report says when the store lacked the image's layer blobs.
const MISSING_BLOBS_NOTE: &str =
    "containerd lacks this image's layer blobs (discard_unpacked_layers or a \
     remote snapshotter), so a running container's root filesystem was scanned";

/// Trivy's containerd export fails this way when the content store holds
/// only the unpacked snapshots (containerd#9277, containerd#5600).
fn lacks_layer_blobs(target: &ScanTarget, message: &str) -> bool {
    matches!(target, ScanTarget::Containerd { .. })
        && message.contains("content digest")
        && message.contains("not found")
}

/// A cached result, shown with how it was obtained.
fn cached(mut result: ImageResult, hit: CacheEntry) -> ImageResult {
    result.vulnerabilities = hit.vulnerabilities;
    result.report_path = hit.report_path;
    result.os = hit.os;
    result.scanned_at = Some(rfc3339(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(hit.scanned_at),
    ));
    if hit.source.as_deref() == Some("rootfs") {
        result.source = Some("rootfs");
    }
    result.scan_target = hit.scan_target.or(result.scan_target);
    result.note = hit.note.or(result.note);
    result
}

/// The host scan's provenance, in the shape the cache records.
fn host_shown(target: &ScanTarget) -> ImageResult {
    let entry = ImageEntry {
        image_id: "host".into(),
        repo_tags: vec![],
        repo_digests: vec![],
        containers: vec![],
        in_store: false,
        size: None,
    };
    let mut shown = base(&entry, Status::Scanned, &Plan::Store(target.clone()));
    shown.note = None;
    shown
}

struct Done {
    counts: Counts,
    path: PathBuf,
    os: Option<String>,
    at: SystemTime,
}

fn os_text(os: &trivy_report::Os) -> Option<String> {
    let family = os
        .family
        .as_deref()
        .filter(|f| !f.is_empty() && *f != "none")?;
    Some(match os.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("{family} {name}"),
        None => family.to_string(),
    })
}

fn base(image: &ImageEntry, status: Status, plan: &Plan) -> ImageResult {
    let (source, target, note) = match plan {
        Plan::Store(t) => (t.source(), Some(t.display()), None),
        Plan::RunningRoot { note } => ("rootfs", None, Some(note.clone())),
    };
    ImageResult {
        image_id: image.image_id.clone(),
        repo_tags: image.repo_tags.clone(),
        repo_digests: image.repo_digests.clone(),
        containers: image.containers.clone(),
        status,
        error: None,
        vulnerabilities: Counts::default(),
        report_path: None,
        source: Some(source),
        scan_target: target,
        os: None,
        scanned_at: None,
        note,
    }
}

/// The entry for an image whose worker left no result (cannot happen
/// unless a worker died): failed, never silently missing.
fn no_result(image: &ImageEntry) -> ImageResult {
    let mut result = base(
        image,
        Status::Failed,
        &Plan::RunningRoot {
            note: String::new(),
        },
    );
    result.source = None;
    result.note = None;
    result.error = Some("internal error: the scan produced no result".into());
    result
}

/// Size and mtime of the host's package databases: the host is rescanned
/// when a package is installed, removed or upgraded.
pub fn host_fingerprint(host: &HostRoot) -> String {
    let mut hash = Sha256::new();
    for rel in HOST_PACKAGE_DBS {
        if let Ok(meta) = host.metadata(rel) {
            let mtime = meta.modified().map_or(0, cache::unix);
            hash.update(format!("{rel}:{}:{mtime}\n", meta.len()));
        }
    }
    hash.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Fails unless `path` resolves to a program.
pub fn require_program(path: &Path, flag: &str) -> Result<PathBuf> {
    let found = nodeguard_common::process::find_in_path(path).with_context(|| {
        format!(
            "{} not found (not an executable file, nor in PATH); pass {flag}",
            path.display()
        )
    })?;
    // Trivy runs with its work directory as cwd: a relative path (`./trivy`,
    // or a relative PATH entry) must be made absolute now, or every scan
    // fails with "program not found".
    std::path::absolute(&found)
        .with_context(|| format!("cannot make {flag} {} absolute", found.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tags: &[&str], digests: &[&str], in_store: bool) -> ImageEntry {
        ImageEntry {
            image_id: "sha256:abc".into(),
            repo_tags: tags.iter().map(ToString::to_string).collect(),
            repo_digests: digests.iter().map(ToString::to_string).collect(),
            containers: vec![],
            in_store,
            size: None,
        }
    }

    #[test]
    fn relative_programs_become_absolute() {
        let found = require_program(Path::new("./Cargo.toml"), "--trivy");
        // Cargo.toml is not executable: refused, naming the flag.
        assert!(format!("{:#}", found.unwrap_err()).contains("--trivy"));
        let sh = require_program(Path::new("sh"), "--trivy").expect("sh in PATH");
        assert!(sh.is_absolute(), "{}", sh.display());
        let dir = tempfile::tempdir().expect("dir");
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let cwd = std::env::current_dir().expect("cwd");
        let relative = pathdiff(&tool, &cwd);
        let resolved = require_program(&relative, "--trivy").expect("found");
        assert!(resolved.is_absolute(), "{}", resolved.display());
        assert_eq!(
            resolved.canonicalize().expect("c"),
            tool.canonicalize().expect("c")
        );
    }

    /// `to` relative to `from` (both absolute), with `..` as needed.
    fn pathdiff(to: &Path, from: &Path) -> PathBuf {
        let up = from.components().count() - 1;
        let mut rel = PathBuf::from(".");
        for _ in 0..up {
            rel.push("..");
        }
        rel.join(to.strip_prefix("/").expect("absolute"))
    }

    #[test]
    fn containerd_prefers_the_repo_digest_then_a_tag() {
        let sock = Path::new("/host/run/containerd/containerd.sock");
        let d = Path::new("/d");
        let p = plan(
            Some(RuntimeKind::Containerd),
            sock,
            d,
            &entry(&["r/a:1"], &["r/a@sha256:f"], true),
        );
        assert_eq!(
            p,
            Plan::Store(ScanTarget::Containerd {
                address: sock.into(),
                reference: "r/a@sha256:f".into()
            })
        );
        let p = plan(
            Some(RuntimeKind::Containerd),
            sock,
            d,
            &entry(&["r/a:1"], &[], true),
        );
        assert!(
            matches!(p, Plan::Store(ScanTarget::Containerd { reference, .. }) if reference == "r/a:1")
        );
        let p = plan(
            Some(RuntimeKind::Containerd),
            sock,
            d,
            &entry(&[], &[], true),
        );
        assert!(matches!(p, Plan::RunningRoot { note } if note.contains("no tag or digest")));
    }

    #[test]
    fn crio_and_unlisted_images_use_the_running_root() {
        let s = Path::new("/s");
        let p = plan(
            Some(RuntimeKind::CriO),
            s,
            s,
            &entry(&["r/a:1"], &["r/a@sha256:f"], true),
        );
        assert!(matches!(p, Plan::RunningRoot { note } if note.contains("CRI-O")));
        let p = plan(
            Some(RuntimeKind::Containerd),
            s,
            s,
            &entry(&["r/a:1"], &[], false),
        );
        assert!(
            matches!(p, Plan::RunningRoot { note } if note.contains("not in the runtime's image list"))
        );
        let p = plan(
            Some(RuntimeKind::Docker),
            s,
            Path::new("/host/var/run/docker.sock"),
            &entry(&[], &[], true),
        );
        assert!(
            matches!(p, Plan::Store(ScanTarget::Docker { reference, .. }) if reference == "sha256:abc")
        );
    }

    #[test]
    fn host_fingerprint_changes_with_the_package_db() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("var/lib/dpkg")).unwrap();
        std::fs::write(dir.path().join("var/lib/dpkg/status"), "Package: a\n").unwrap();
        let host = HostRoot::open(dir.path()).unwrap();
        let before = host_fingerprint(&host);
        std::fs::write(
            dir.path().join("var/lib/dpkg/status"),
            "Package: a\n\nPackage: b\n",
        )
        .unwrap();
        assert_ne!(before, host_fingerprint(&host));
    }

    #[test]
    fn os_text_skips_none() {
        let os = |f: &str, n: &str| trivy_report::Os {
            family: Some(f.into()),
            name: Some(n.into()),
            eosl: None,
        };
        assert_eq!(
            os_text(&os("debian", "12.5")).as_deref(),
            Some("debian 12.5")
        );
        assert_eq!(os_text(&os("none", "")), None);
    }
}
