//! `scan-images`: every image running on the node, scanned once, with
//! Trivy, from the node's own image store.
//!
//! A cycle:
//! 1. choose the CRI socket (`--runtime-endpoint`, else the first of
//!    containerd, CRI-O, k3s/RKE2 containerd, cri-dockerd under
//!    `--host-root`) and ask it through `crictl -r`: `version`, `ps -o json`,
//!    `images -o json`, `inspect` only where the join fails ([`discover`]);
//! 2. join containers to images on the normalised image ID and deduplicate
//!    ([`inventory`]): each image is scanned at most once per cycle;
//! 3. update Trivy's vulnerability DB at most once, under a file lock, and
//!    only when Trivy itself would ([`trivy_db::prepare_db`]);
//! 4. per image: the result cache (image ID + DB `UpdatedAt` + severities,
//!    `--ttl`), else one Trivy run with a private cache and `TMPDIR`, a
//!    timeout that kills its process group, and retries while Trivy's cache
//!    lock is busy ([`scan`], [`trivy`]). containerd images are read from
//!    the store (`--image-src containerd`, namespace `k8s.io`), never
//!    pulled unless `--allow-registry-pull`; CRI-O images through a running
//!    container's root (`/proc/<pid>/root`), said so in the report;
//! 5. write each full Trivy report atomically under `--output-dir` with
//!    retention ([`reports`]), the metrics file ([`metrics`]), and print one
//!    JSON document ([`report`]).
//!
//! Exit codes: 0 success (per-image failures are data), 1 a finding at or
//! above `--fail-on`, 2 error with no report, 3 every scan attempted failed
//! (the report names each failure; see [`exit`]).

pub mod cache;
pub mod cli;
pub mod crictl;
pub mod discover;
pub mod endpoint;
pub mod exit;
pub mod inventory;
pub mod metrics;
pub mod report;
pub mod reports;
pub mod rootfs;
pub mod scan;
pub mod text;
pub mod trivy;
pub mod trivy_db;
pub mod trivy_report;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use nodeguard_common::finish::{self, Finish};
use nodeguard_common::HostRoot;

use crate::cli::Cli;
use crate::discover::Crictl;
use crate::endpoint::Endpoint;
use crate::report::{DbInfo, RuntimeInfo, ScanReport, Summary};

/// The tool's name in reports and metrics.
pub const TOOL: &str = "scan-images";
/// The tool's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs one cycle and prints the report to `out`; returns the exit code.
/// The metrics file is written before the report is printed, so a failure
/// to write it is an error with no report (exit 2), as the contract says.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<u8> {
    let finish = Finish::new(TOOL, VERSION, cli.common.metrics_file.as_deref());
    finish.guard(|| {
        let host = cli.common.open_host_root()?;
        let ctx = cli.common.run_context(TOOL, VERSION, &host);
        let (report, db_time) = cycle(cli, &host)?;
        let metrics = metrics::build(&report, db_time, SystemTime::now());
        let rendered = finish::render(&ctx, &report, cli.common.format, cli.common.pretty)?;
        finish.publish(out, &rendered, &metrics, true)?;
        Ok(exit_code(&report))
    })
}

/// The run's exit code once the report is out.
fn exit_code(report: &ScanReport) -> u8 {
    if exit::all_scans_failed(&report.images, report.host.as_ref()) {
        log::error!(
            "every scan failed ({} images{}): the report names each failure; exit {}",
            report.summary.failed,
            if report.host.is_some() {
                " and the host"
            } else {
                ""
            },
            exit::ALL_SCANS_FAILED
        );
        return exit::ALL_SCANS_FAILED;
    }
    if report.summary.fail_on_triggered {
        nodeguard_common::exit::FINDINGS
    } else {
        nodeguard_common::exit::SUCCESS
    }
}

/// crictl with the endpoint from `--runtime-endpoint` or found under the
/// host root.
fn crictl_for(cli: &Cli, host: &HostRoot) -> Result<Crictl> {
    let program = scan::require_program(&cli.crictl, "--crictl")?;
    let endpoint = match &cli.runtime_endpoint {
        Some(value) => Endpoint::from_flag(value)?,
        None => endpoint::discover(host)?,
    };
    Ok(Crictl {
        program,
        endpoint,
        timeout: cli.crictl_timeout,
    })
}

/// `--keep`/`--keep-absent` over the report files; images (and the host)
/// seen this cycle are "present".
fn apply_retention(cli: &Cli, images: &[report::ImageResult]) {
    let mut present: BTreeSet<String> = images
        .iter()
        .map(|i| reports::stem_for(&i.image_id))
        .collect();
    if cli.host {
        present.insert("host".into());
    }
    let keep = usize::try_from(cli.keep).unwrap_or(usize::MAX);
    let removed = reports::retain(
        &cli.output_dir,
        &present,
        keep,
        cli.keep_absent,
        SystemTime::now(),
    );
    if !removed.is_empty() {
        log::info!("retention removed {} report files", removed.len());
    }
}

/// Trivy settings from the flags: its own cache (the shared DB) and the
/// per-scan scratch dirs both live under `--cache-dir`.
fn trivy_config(cli: &Cli, program: std::path::PathBuf) -> trivy::TrivyConfig {
    trivy::TrivyConfig {
        program,
        cache_root: cli.cache_dir.join("trivy"),
        work_root: cli.cache_dir.join("work"),
        severities: cli.severities(),
        timeout: cli.timeout,
        lock_retries: cli.lock_retries,
        db_repositories: cli.db_repository.clone(),
        java_db_repositories: cli.java_db_repository.clone(),
        skip_java_db: cli.skip_java_db,
        allow_registry_pull: cli.allow_registry_pull,
        containerd_namespace: cli.containerd_namespace.clone(),
        lock_backoff: Duration::from_secs(2),
    }
}

fn cycle(cli: &Cli, host: &HostRoot) -> Result<(ScanReport, Option<SystemTime>)> {
    let trivy_program = scan::require_program(&cli.trivy, "--trivy")?;
    let crictl = crictl_for(cli, host)?;
    let found = discover::discover(&crictl)?;

    let severities = cli.severities();
    let trivy_cfg = trivy_config(cli, trivy_program);
    trivy::clean_stale_work(
        &trivy_cfg.work_root,
        cli.timeout + Duration::from_secs(3600),
    );
    let db = trivy_db::prepare_db(&trivy_cfg, cli.skip_db_update)?;
    let cache = cache::ResultCache::new(cli.cache_dir.join("results"), cli.ttl);
    let cycle = scan::Cycle {
        trivy: trivy_cfg,
        crictl: &crictl,
        kind: found.kind,
        host,
        cache: cache.clone(),
        output_dir: cli.output_dir.clone(),
        db_updated_at: db.updated_at.clone(),
        severities: severities.clone(),
        concurrency: usize::try_from(cli.concurrency).unwrap_or(1),
        max_image_size: cli.max_image_size,
        trivy_runs: AtomicU32::new(db.trivy_runs),
    };
    let images = cycle.run(&found.inventory.images);
    let host_result = cli.host.then(|| cycle.scan_host());

    cache.prune(SystemTime::now());
    apply_retention(cli, &images);

    let trivy_runs = cycle.trivy_runs.into_inner();
    let summary = Summary::compute(
        &images,
        host_result.as_ref(),
        &db.updated_at,
        trivy_runs,
        severities,
        cli.fail_on,
    );
    let runtime = RuntimeInfo {
        endpoint: crictl.endpoint.url.clone(),
        kind: found.kind,
        name: found.runtime_name,
        version: found.runtime_version,
    };
    let db_time = db.updated_at_time;
    let db = DbInfo {
        status: db.status,
        updated_at: db.updated_at,
        error: db.error,
    };
    let report = ScanReport {
        runtime,
        db,
        images,
        host: host_result,
        summary,
    };
    Ok((report, db_time))
}
