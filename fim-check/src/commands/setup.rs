//! Everything a scan needs, gathered and validated before any work starts:
//! the host root, the policy, the `--path` scope, the HMAC key, the read
//! rate and the thread pool.

use crate::baseline::{Header, MIN_KEY_LEN};
use crate::cli::ScanArgs;
use crate::entry::display_path;
use crate::policy::{normalize, Policy};
use crate::report::{BaselineInfo, ConfigInfo, ScanReport, Summary};
use crate::scan::Source;
use crate::throttle::{self, RateLimit};
use crate::walk::Scope;
use crate::{TOOL, VERSION};
use anyhow::{bail, Context, Result};
use nodeguard_common::hostroot::HostRoot;
use nodeguard_common::input::{
    read_regular_file, read_regular_file_to_string, CONFIG_MAX_BYTES, SECRET_MAX_BYTES,
};
use nodeguard_common::report::{rfc3339, RunContext};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::SystemTime;

/// The validated inputs of `init`, `check`, `update` (and `watch`).
#[derive(Debug)]
pub(crate) struct Setup {
    pub host: HostRoot,
    /// The host root, opened once: every content read is beneath it.
    pub root_fd: OwnedFd,
    pub policy: Policy,
    /// `--path` limits (for check/update: the baseline's when none given).
    pub scope: Scope,
    pub key: Option<Vec<u8>>,
    pub rate: Option<RateLimit>,
    pub ctx: RunContext,
}

/// Validates the flags, opens the host root, reads the policy and the key,
/// and sets priorities and the thread pool.
pub(crate) fn setup(a: &ScanArgs) -> Result<Setup> {
    let host = a.common.open_host_root()?;
    let root_fd = OwnedFd::from(
        File::open(host.path())
            .with_context(|| format!("cannot open --host-root {}", host.path().display()))?,
    );
    let mut policy = read_policy(a.config.as_deref())?;
    if let Some(rel) = inside_root(host.path(), &a.baseline) {
        log::info!(
            "the baseline lies inside the host root at {rel}: excluding its files from the scan"
        );
        policy.exclude_baseline(&rel).map_err(anyhow::Error::msg)?;
    }
    let limits = a
        .paths
        .iter()
        .map(|p| normalize(p).map_err(|e| anyhow::anyhow!("--path: {e}")))
        .collect::<Result<Vec<_>>>()?;
    for l in &limits {
        if !policy.selects_within(l) {
            bail!(
                "--path {} selects nothing under the policy ({}): it covers {}",
                display_path(l),
                policy.source,
                policy.coverage()
            );
        }
    }
    let key = read_key(a.key_file.as_deref())?;
    let rate = if a.max_read_rate == 0.0 {
        None
    } else {
        Some(RateLimit::new(a.max_read_rate).map_err(anyhow::Error::msg)?)
    };
    // Priorities first: the pool's threads inherit them.
    if a.nice > 0 {
        throttle::set_nice(a.nice).unwrap_or_else(|e| log::warn!("cannot lower CPU priority: {e}"));
    }
    if !a.no_io_idle {
        throttle::set_io_idle().unwrap_or_else(|e| log::warn!("cannot set idle I/O priority: {e}"));
    }
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = a.threads {
        pool = pool.num_threads(n);
    }
    if let Err(e) = pool.build_global() {
        log::debug!("thread pool already set up: {e}");
    }
    let ctx = a.common.run_context(TOOL, VERSION, &host);
    Ok(Setup {
        host,
        root_fd,
        policy,
        scope: Scope { limits },
        key,
        rate,
        ctx,
    })
}

/// The policy from `--config` (a regular file of at most
/// `CONFIG_MAX_BYTES`), or the built-in one.
pub(crate) fn read_policy(config: Option<&Path>) -> Result<Policy> {
    match config {
        Some(p) => {
            let text = read_regular_file_to_string(p, CONFIG_MAX_BYTES)
                .map_err(|e| anyhow::anyhow!("--config: {e:#}"))?;
            Policy::parse(&text, &p.display().to_string()).map_err(anyhow::Error::msg)
        }
        None => Policy::builtin().map_err(anyhow::Error::msg),
    }
}

/// Reads the HMAC key (a regular file of at most `SECRET_MAX_BYTES`); it
/// is registered for redaction and never printed.
pub(crate) fn read_key(path: Option<&Path>) -> Result<Option<Vec<u8>>> {
    let Some(path) = path else { return Ok(None) };
    let mut key = read_regular_file(path, SECRET_MAX_BYTES)
        .map_err(|e| anyhow::anyhow!("--key-file: {e:#}"))?;
    while key.last().is_some_and(u8::is_ascii_whitespace) {
        key.pop();
    }
    if key.len() < MIN_KEY_LEN {
        bail!(
            "--key-file {}: key is {} bytes; at least {MIN_KEY_LEN} are required",
            path.display(),
            key.len()
        );
    }
    if let Ok(text) = std::str::from_utf8(&key) {
        nodeguard_common::redact::register_secret(text);
    }
    Ok(Some(key))
}

/// The baseline's path relative to the host root, if it lies inside it.
fn inside_root(root: &Path, baseline: &Path) -> Option<String> {
    let root = root.canonicalize().ok()?;
    let parent = baseline
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = parent.canonicalize().ok()?;
    let rel = dir.strip_prefix(&root).ok()?;
    let name = baseline.file_name()?.to_str()?;
    let rel = rel.to_str()?;
    Some(if rel.is_empty() {
        format!("/{name}")
    } else {
        format!("/{rel}/{name}")
    })
}

impl Setup {
    /// What the scan (or one-path examination, `crate::judge`) reads.
    pub(crate) fn source(&self) -> Source<'_> {
        Source {
            root: self.host.path(),
            root_fd: &self.root_fd,
            policy: &self.policy,
            scope: self.scope.clone(),
            rate: self.rate.as_ref(),
        }
    }

    /// The header of a baseline written by this run.
    pub(crate) fn new_header(&self) -> Header {
        Header {
            tool_version: VERSION.to_string(),
            created_at: rfc3339(SystemTime::now()),
            node: self.ctx.node.clone(),
            config_source: self.policy.source.clone(),
            config_digest: self.policy.digest.clone(),
            limits: self.scope.limits.iter().map(|l| display_path(l)).collect(),
            authenticated: self.key.is_some(),
        }
    }

    /// A report with no changes yet.
    pub(crate) fn empty_report(&self, command: &'static str, baseline: BaselineInfo) -> ScanReport {
        ScanReport {
            command,
            host_root: self.host.path().display().to_string(),
            config: ConfigInfo {
                source: self.policy.source.clone(),
                digest: self.policy.digest.clone(),
            },
            baseline,
            summary: Summary::default(),
            changes: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }
}
