//! Gathering: asking the runtime, through crictl, what runs on the node.
//!
//! Calls per cycle: `version` (which runtime, and a clear error when the
//! socket is down), `ps -o json`, `images -o json`, then `inspect` only for
//! containers the join could not place, and (for rootfs scans) for one
//! container per image to learn its PID. `-r`/`-i` are always explicit, and
//! only stdout is parsed: crictl logs warnings on stderr.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use nodeguard_common::process::Cmd;

use crate::crictl::{self, Container, Image};
use crate::endpoint::{Endpoint, RuntimeKind};
use crate::inventory::{self, Inventory};

/// How to call crictl.
#[derive(Debug, Clone)]
pub struct Crictl {
    /// The program.
    pub program: PathBuf,
    /// The endpoint passed with `-r` and `-i`.
    pub endpoint: Endpoint,
    /// Limit per call.
    pub timeout: Duration,
}

impl Crictl {
    fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let output = Cmd::new(&self.program)
            .args(["-r", &self.endpoint.url, "-i", &self.endpoint.url])
            .args(args)
            .timeout(self.timeout)
            .max_output(256 * 1024 * 1024)
            .run_checked()
            .with_context(|| format!("asking the runtime at {}", self.endpoint.url))?;
        Ok(output.stdout)
    }

    /// `crictl version`: runtime name and version.
    pub fn version(&self) -> Result<(Option<String>, Option<String>)> {
        let out = self.run(&["version"])?;
        Ok(crictl::parse_version(&String::from_utf8_lossy(&out)))
    }

    /// Running containers.
    pub fn ps(&self) -> Result<Vec<Container>> {
        let out = self.run(&["ps", "-o", "json"])?;
        Ok(crictl::parse_ps(&out)
            .with_context(|| self.context())?
            .containers)
    }

    /// Images in the store.
    pub fn images(&self) -> Result<Vec<Image>> {
        let out = self.run(&["images", "-o", "json"])?;
        Ok(crictl::parse_images(&out)
            .with_context(|| self.context())?
            .images)
    }

    /// One container's status and PID.
    pub fn inspect(&self, id: &str) -> Result<(Option<Container>, Option<u32>)> {
        let out = self.run(&["inspect", "-o", "json", id])?;
        let parsed = crictl::parse_inspect(&out).with_context(|| self.context())?;
        Ok((parsed.status, parsed.info.and_then(|i| i.pid)))
    }

    fn context(&self) -> String {
        format!("{} -r {}", self.program.display(), self.endpoint.url)
    }
}

/// What the runtime reported.
#[derive(Debug)]
pub struct Discovery {
    /// Runtime kind (from `crictl version`, else from the socket path).
    pub kind: Option<RuntimeKind>,
    /// RuntimeName.
    pub runtime_name: Option<String>,
    /// RuntimeVersion.
    pub runtime_version: Option<String>,
    /// Images and their containers.
    pub inventory: Inventory,
    /// crictl processes started.
    pub crictl_runs: u32,
}

/// Lists containers and images and joins them. Any crictl failure here is
/// fatal: without the container list there is nothing to report.
pub fn discover(crictl: &Crictl) -> Result<Discovery> {
    let (runtime_name, runtime_version) = crictl.version()?;
    let kind = runtime_name
        .as_deref()
        .and_then(RuntimeKind::from_runtime_name)
        .or(crictl.endpoint.kind);
    let containers = crictl.ps()?;
    let images = crictl.images()?;
    let mut runs = 3;
    let mut inventory = inventory::join(&containers, &images);
    if !inventory.unresolved.is_empty() {
        let mut inspected = Vec::new();
        for container in std::mem::take(&mut inventory.unresolved) {
            runs += 1;
            match crictl.inspect(&container.id) {
                Ok((Some(status), _)) => inspected.push(merge_status(container, status)),
                Ok((None, _)) => inspected.push(container),
                // Exited between `ps` and `inspect`: nothing runs it any more.
                Err(e) => log::warn!("container {}: {e:#}", container.id),
            }
        }
        inventory::add_inspected(&mut inventory, &inspected, &images);
    }
    log::info!(
        "{} containers, {} unique images on {}",
        inventory
            .images
            .iter()
            .map(|i| i.containers.len())
            .sum::<usize>(),
        inventory.images.len(),
        crictl.endpoint.url
    );
    Ok(Discovery {
        kind,
        runtime_name,
        runtime_version,
        inventory,
        crictl_runs: runs,
    })
}

/// `inspect`'s status, with `ps`' labels kept when the status has none.
fn merge_status(from_ps: Container, mut status: Container) -> Container {
    if status.labels.is_empty() {
        status.labels = from_ps.labels;
    }
    if status.id.is_empty() {
        status.id = from_ps.id;
    }
    if status.metadata.is_none() {
        status.metadata = from_ps.metadata;
    }
    status
}

/// The root filesystem of the first of `container_ids` that is still
/// running, as a host directory Trivy can walk (see [`crate::rootfs`]).
pub fn running_root(
    crictl: &Crictl,
    host_root: &Path,
    container_ids: &[String],
) -> Result<PathBuf> {
    let mut last_error = None;
    for id in container_ids {
        match crictl.inspect(id) {
            Ok((_, Some(pid))) if pid > 0 => {
                match crate::rootfs::container_rootfs(host_root, pid) {
                    Ok(root) => return Ok(root),
                    Err(e) => last_error = Some(format!("container {id}: {e:#}")),
                }
            }
            Ok(_) => last_error = Some(format!("`crictl inspect {id}` gave no pid")),
            Err(e) => last_error = Some(format!("{e:#}")),
        }
    }
    anyhow::bail!(
        "no running container of this image has a readable root: {}",
        last_error.unwrap_or_else(|| "no containers".into())
    )
}
