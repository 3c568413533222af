//! `detect-host`: what the host under a host root is — OS, version, family,
//! package format and manager, architecture, kernel, init system,
//! immutability and container runtime — as one JSON document.
//!
//! # What it reads
//! Only files under `--host-root` (default `/`, `/host` in a pod), resolved
//! with [`nodeguard_common::HostRoot`] so that a symlink such as
//! `/host/etc/os-release -> /usr/lib/os-release` is followed *inside* the
//! host root and never lands on the container's own files:
//! - `/etc/os-release`, else `/usr/lib/os-release` (never merged), parsed
//!   like systemd does ([`os_release`]); when neither identifies the OS, the
//!   legacy release files ([`legacy`]);
//! - `/run/ostree-booted`, the package managers' binaries ([`package`]);
//! - `/run/systemd/system`, `/proc/1/comm`, `/run/openrc`, `/sbin/init`
//!   ([`init`]);
//! - runtime sockets and kubelet files ([`runtime`]).
//!
//! Architecture and kernel release come from `uname(2)`: a container shares
//! the node's kernel ([`arch`]). Nothing is executed.
//!
//! # Library use
//! Other tools call [`detect`] with an open [`HostRoot`] and get
//! [`HostFacts`]. The parsers ([`os_release`], [`legacy`]) and the judgements
//! ([`classify`], [`init::decide`], [`package::decide`]) are pure functions
//! of their inputs, testable without a host.
//!
//! # Exit codes
//! 0 with the report on stdout; 2 when the host root is missing or
//! unreadable (the message names the path) or stdout cannot be written. An
//! OS that cannot be recognised is not an error: `os.id` is `unknown` and
//! `warnings` says why.

pub mod arch;
pub mod classify;
pub mod cli;
pub mod context;
pub mod init;
pub mod legacy;
pub mod os;
pub mod os_release;
pub mod package;
pub mod report;
pub mod runtime;
pub mod text;

use std::io::Write;

use anyhow::Context;
use nodeguard_common::finish::{self, Finish};
use nodeguard_common::metrics::Metrics;
use nodeguard_common::{exit, HostRoot};

pub use classify::{Family, PackageFormat, PackageManager};
pub use init::InitSystem;
pub use report::HostFacts;

/// The tool's name as it appears in reports and metrics.
pub const TOOL: &str = "detect-host";

/// The tool's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Detects everything about the host under `root`.
///
/// Fails only when the host root itself cannot be listed; every problem
/// with an individual file becomes an entry in [`HostFacts::warnings`].
pub fn detect(root: &HostRoot) -> anyhow::Result<HostFacts> {
    // HostRoot::open checked that the root is a directory; an unreadable
    // one (no permission, stale mount) would otherwise look like an empty
    // host and be reported as "unknown" instead of failing.
    std::fs::read_dir(root.path())
        .with_context(|| format!("cannot read host root {}", root.path().display()))?;

    let mut warnings = Vec::new();
    let os = os::gather(root, &mut warnings);
    let package = package::gather(root, &os.identity(), os.immutable, &mut warnings);
    // The package manager's own binary first: packages must match it.
    let mut userland_probes: Vec<&str> = package.manager_path.iter().map(String::as_str).collect();
    userland_probes.extend_from_slice(arch::USERLAND_PROBES);
    let (arch, kernel) = arch::gather(root, &userland_probes);
    if let Some(userland) = arch.userland.as_deref().filter(|u| *u != arch.platform) {
        warnings.push(format!(
            "kernel architecture {} but userland {userland} ({}): install {userland} packages",
            arch.platform,
            arch.userland_source.as_deref().unwrap_or("?")
        ));
    }
    let (init, init_source) = init::decide(&init::gather(root, &os.id));
    let runtime = runtime::gather(root);
    warnings.extend(context::warnings(&context::gather(root)));
    Ok(HostFacts {
        host_root: root.path().display().to_string(),
        os,
        package,
        arch,
        kernel,
        init,
        init_source,
        runtime,
        warnings,
    })
}

/// Runs the command line: detect, write the metrics file (if asked), then
/// print the report to `out`; returns the exit code.
pub fn run(cli: &cli::Cli, out: &mut dyn Write) -> anyhow::Result<u8> {
    let common = &cli.common;
    let finish = Finish::new(TOOL, VERSION, common.metrics_file.as_deref());
    finish.guard(|| {
        let root = common.open_host_root()?;
        let facts = detect(&root)?;
        for warning in &facts.warnings {
            log::info!("{warning}");
        }
        let ctx = common.run_context(TOOL, VERSION, &root);
        let report = finish::render(&ctx, &facts, common.format, common.pretty)?;
        finish.publish(out, &report, &metrics(&facts), true)?;
        Ok(exit::SUCCESS)
    })
}

/// `nodeguard_detect_host_os_info{…} 1` plus the warning count (the run
/// stamps are added when the file is written), for node-exporter's textfile
/// collector.
fn metrics(facts: &HostFacts) -> Metrics {
    let mut m = Metrics::new(TOOL);
    m.gauge(
        "os_info",
        "The host's OS as detect-host sees it; the value is always 1.",
    )
    .sample(
        &[
            ("id", &facts.os.id),
            ("version_id", facts.os.version_id.as_deref().unwrap_or("")),
            ("family", facts.os.family.as_str()),
            ("package_manager", facts.package.manager.as_str()),
            ("platform", &facts.arch.platform),
            ("init", facts.init.as_str()),
            (
                "immutable",
                if facts.os.immutable { "true" } else { "false" },
            ),
        ],
        1.0,
    );
    m.gauge(
        "warnings",
        "Warnings in detect-host's last report (see its warnings array).",
    )
    .sample(
        &[],
        f64::from(u32::try_from(facts.warnings.len()).unwrap_or(u32::MAX)),
    );
    m
}
