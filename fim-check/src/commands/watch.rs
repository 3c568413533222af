//! `watch`: the live view (the event loop lives in `crate::watch`).

use super::setup::setup;
use super::stored::{baseline_error, open_for_comparison};
use crate::cli::WatchArgs;
use crate::watch::{open_backend, state::Baseline, Config, Stop, Watcher};
use anyhow::Result;
use nodeguard_common::exit::SUCCESS;
use std::io::Write;
use std::time::Duration;

/// Blocks SIGTERM/SIGINT before `setup` starts the thread pool (so every
/// thread leaves them to the watcher's signalfd), verifies the baseline
/// and binds it to this node, policy and scope (exit 3/4 as for `check`,
/// before anything is watched), then watches until a signal: exit 0.
pub(crate) fn watch(a: &WatchArgs, out: &mut dyn Write) -> Result<u8> {
    let stop = Stop::on_signals()?;
    let mut s = setup(&a.scan)?;
    let path = &a.scan.baseline;
    let reader = open_for_comparison(path, &mut s)?;
    let baseline = Baseline::from_reader(reader).map_err(|e| baseline_error(path, e))?;
    let source = open_backend(a.backend, &s.root_fd)?;
    let cfg = Config {
        root: s.host.path().to_path_buf(),
        root_fd: s.root_fd,
        policy: s.policy,
        scope: s.scope,
        baseline_path: path.clone(),
        key: s.key,
        metrics_file: a.scan.common.metrics_file.clone(),
        full_check_interval: (a.full_check_interval > 0)
            .then(|| Duration::from_secs(a.full_check_interval)),
    };
    Watcher::new(cfg, baseline, source, Box::new(out), s.ctx, stop).run()?;
    Ok(SUCCESS)
}
