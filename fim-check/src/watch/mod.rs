//! `fim-check watch`: the live view.
//!
//! Start: the baseline is read and verified in full (exit 3/4 before
//! anything is watched), every directory the policy walks is watched
//! (`tree`), then a full check reports what changed while nothing watched.
//! Then events (`source`: inotify, fanotify, or a fake in tests) mark paths
//! dirty; the `debounce`r hands them back once they settled; each is
//! re-examined against its baseline entry with the policy's attributes
//! (content re-hashed) and a change is written at once as one JSON line
//! (`record`), unless the same change was already reported (`state`).
//! Lost events (queue overflow, no watch left, an unwatchable directory)
//! are said in a `notice` record and followed by a full check.

pub mod debounce;
// Decodes the kernel's variable-length fanotify records by offset: every
// read is length-checked first (see the module), which these lints cannot
// see through.
#[allow(
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
pub mod fanotify;
pub mod inotify;
pub mod record;
pub mod source;
pub mod state;
pub mod tree;

use crate::baseline::BaselineError;
use crate::entry::{cmp_paths, is_within, Entry};
use crate::hash::{hash_prefix, BUF_SIZE};
use crate::policy::Policy;
use crate::report::KINDS;
use crate::scan::{scan, Source};
use crate::walk::{full_path, Item as WalkItem, Scope};
use crate::{EXIT_BASELINE_INTEGRITY, EXIT_BASELINE_MISMATCH, TOOL, VERSION};
use anyhow::{Context, Result};
use debounce::{Debouncer, SETTLED, WRITING};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nodeguard_common::exit::{ToolError, ERROR};
use record::RecordWriter;
use serde_json::json;
use source::{parent, EventSource, Item, WatchError, What};
use state::{change_of, file_id, Baseline, FileId, Found, Reported};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tree::{Ctx, DirInfo};

/// The metrics file is rewritten at most this often.
const METRICS_EVERY: Duration = Duration::from_secs(1);
/// How often the baseline file is looked at (to notice `fim-check update`).
const BASELINE_POLL: Duration = Duration::from_secs(1);
/// A file still being written when examined is looked at again this often.
const MAX_RETRIES: u8 = 20;

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// fanotify when the kernel and the capabilities allow it, else inotify.
    Auto,
    /// One inotify watch per selected directory; no capability needed.
    Inotify,
    /// One fanotify mark per file system (FAN_MARK_FILESYSTEM,
    /// FAN_REPORT_DFID_NAME): Linux 5.9+ and CAP_SYS_ADMIN.
    Fanotify,
}

/// Opens the event source `backend` asks for.
pub fn open_backend(backend: Backend, root_fd: &OwnedFd) -> Result<Box<dyn EventSource>> {
    match backend {
        Backend::Inotify => Ok(Box::new(
            inotify::InotifySource::new().context("cannot initialise inotify")?,
        )),
        Backend::Fanotify => Ok(Box::new(
            fanotify::FanotifySource::new(root_fd).map_err(anyhow::Error::msg)?,
        )),
        Backend::Auto => match fanotify::FanotifySource::new(root_fd) {
            Ok(f) => Ok(Box::new(f)),
            Err(why) => {
                log::info!("using inotify: {why}");
                open_backend(Backend::Inotify, root_fd)
            }
        },
    }
}

/// How the watcher learns it must stop.
#[derive(Debug, Default, Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    signals: Option<Arc<SignalFd>>,
}

impl Stop {
    /// Blocks SIGTERM and SIGINT in this thread (and every thread started
    /// after) and receives them through a signalfd. Call it before any
    /// thread exists: a thread started earlier would still take the default
    /// action (die) instead of letting us exit 0.
    pub fn on_signals() -> Result<Stop> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGTERM);
        set.add(Signal::SIGINT);
        set.thread_block().context("cannot block SIGTERM/SIGINT")?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .context("cannot create a signalfd")?;
        Ok(Stop {
            flag: Arc::new(AtomicBool::new(false)),
            signals: Some(Arc::new(fd)),
        })
    }

    /// A flag a test can raise.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    pub fn requested(&self) -> bool {
        if let Some(fd) = &self.signals {
            if let Ok(Some(_)) = fd.read_signal() {
                self.flag.store(true, Ordering::SeqCst);
            }
        }
        self.flag.load(Ordering::SeqCst)
    }
}

/// Everything the watcher needs, prepared by the `watch` command.
pub struct Config {
    pub root: PathBuf,
    pub root_fd: OwnedFd,
    pub policy: Policy,
    pub scope: Scope,
    pub baseline_path: PathBuf,
    pub key: Option<Vec<u8>>,
    pub metrics_file: Option<PathBuf>,
    /// A full check this often (besides the one at start and after lost
    /// events); `None`: never.
    pub full_check_interval: Option<Duration>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("root", &self.root)
            .field("baseline", &self.baseline_path)
            .finish_non_exhaustive()
    }
}

/// Maps a baseline problem to its documented exit code (as `check` does).
pub fn baseline_error(path: &std::path::Path, e: BaselineError) -> anyhow::Error {
    let (code, what) = match e {
        BaselineError::Integrity(m) => (EXIT_BASELINE_INTEGRITY, m),
        BaselineError::Mismatch(m) => (EXIT_BASELINE_MISMATCH, m),
        BaselineError::Io(m) => (ERROR, format!("read error: {m}")),
    };
    ToolError::new(code, format!("baseline {}: {what}", path.display())).into()
}

pub struct Watcher<'o> {
    cfg: Config,
    source: Box<dyn EventSource>,
    out: RecordWriter<'o>,
    stop: Stop,
    baseline: Baseline,
    baseline_id: Option<FileId>,
    baseline_checked: Instant,
    reported: Reported,
    dirs: HashMap<Vec<u8>, DirInfo>,
    debounce: Debouncer,
    retries: HashMap<Vec<u8>, u8>,
    /// Errors already reported, per path (reported again when they differ).
    errors: HashMap<Vec<u8>, String>,
    /// Directories that could not be watched in this generation.
    unwatched: HashSet<Vec<u8>>,
    limit_noticed: bool,
    full_check_needed: Option<String>,
    last_full_check: Instant,
    full_checks: u64,
    scanned: u64,
    metrics_dirty: bool,
    metrics_written: Option<Instant>,
    buf: Vec<u8>,
    pending: Vec<Item>,
}

impl std::fmt::Debug for Watcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("backend", &self.source.name())
            .field("dirs", &self.dirs.len())
            .finish_non_exhaustive()
    }
}

/// Did the run end because it was asked to stop?
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Go,
    Stopped,
}

impl<'o> Watcher<'o> {
    /// `baseline` was loaded, verified and bound to this node, policy and
    /// scope by the caller (`Baseline::load` + the `check` binding rules).
    pub fn new(
        cfg: Config,
        baseline: Baseline,
        source: Box<dyn EventSource>,
        out: Box<dyn std::io::Write + 'o>,
        ctx: nodeguard_common::report::RunContext,
        stop: Stop,
    ) -> Watcher<'o> {
        let baseline_id = file_id(&cfg.baseline_path);
        Watcher {
            cfg,
            source,
            out: RecordWriter::new(out, ctx),
            stop,
            baseline_id,
            baseline,
            baseline_checked: Instant::now(),
            reported: Reported::default(),
            dirs: HashMap::new(),
            debounce: Debouncer::default(),
            retries: HashMap::new(),
            errors: HashMap::new(),
            unwatched: HashSet::new(),
            limit_noticed: false,
            full_check_needed: None,
            last_full_check: Instant::now(),
            full_checks: 0,
            scanned: 0,
            metrics_dirty: true,
            metrics_written: None,
            buf: vec![0u8; BUF_SIZE],
            pending: Vec::new(),
        }
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            root: &self.cfg.root,
            root_fd: &self.cfg.root_fd,
            policy: &self.cfg.policy,
            scope: &self.cfg.scope,
        }
    }

    /// Reads the replaced baseline (after `fim-check update`) and verifies
    /// it like the first: tampered → exit 3; made for another node, policy
    /// or scope than the one verified at start → exit 4.
    fn reload_baseline(&mut self) -> Result<()> {
        let path = self.cfg.baseline_path.clone();
        // The identity first: a replacement while we read is seen next poll.
        let id = file_id(&path);
        let b =
            Baseline::load(&path, self.cfg.key.as_deref()).map_err(|e| baseline_error(&path, e))?;
        if let (Some(old), Some(new)) = (&self.baseline.header, &b.header) {
            if (&old.node, &old.config_digest, &old.limits)
                != (&new.node, &new.config_digest, &new.limits)
            {
                return Err(baseline_error(
                    &path,
                    BaselineError::Mismatch(format!(
                        "it was replaced by one for node {:?}, policy digest {}, limits {:?}; this watcher runs for node {:?}, policy digest {}, limits {:?}",
                        new.node, new.config_digest, new.limits, old.node, old.config_digest, old.limits
                    )),
                ));
            }
        }
        self.baseline = b;
        self.baseline_id = id;
        Ok(())
    }

    /// The whole run: verify, watch, full check, then events until stopped.
    pub fn run(&mut self) -> Result<()> {
        if self.start()? == Flow::Stopped {
            return Ok(());
        }
        while self.step(None)? == Flow::Go {}
        self.write_metrics(true);
        Ok(())
    }

    /// Notices about the baseline, the watches, the first full check and
    /// the `watching` record.
    fn start(&mut self) -> Result<Flow> {
        if self.baseline.unverified {
            self.notice(
                "baseline_unverified",
                None,
                "the baseline carries an HMAC but no --key-file was given: it was NOT verified",
            )?;
        } else if self.cfg.key.is_none() {
            self.notice("baseline_unauthenticated", None, "the baseline is not authenticated (no --key-file): whoever can write it can hide changes")?;
        }
        if self.full_check("start")? == Flow::Stopped {
            return Ok(Flow::Stopped);
        }
        self.out.write(
            "watching",
            &json!({
                "backend": self.source.name(),
                "watches": self.source.watches(),
                "directories": self.dirs.len(),
                "unwatched_directories": self.unwatched.len(),
                "baseline_entries": self.baseline.len(),
            }),
        )?;
        Ok(Flow::Go)
    }

    /// One turn of the loop: wait (at most `max_wait`, and never past the
    /// next due path), read events, examine what settled, run a full check
    /// if one is needed, refresh the metrics.
    fn step(&mut self, max_wait: Option<Duration>) -> Result<Flow> {
        if self.stop.requested() {
            return Ok(Flow::Stopped);
        }
        let now = Instant::now();
        let mut wait = max_wait.unwrap_or(BASELINE_POLL).min(BASELINE_POLL);
        if let Some(due) = self.debounce.next_due() {
            wait = wait.min(due.saturating_duration_since(now));
        }
        if self.metrics_dirty {
            if let Some(w) = self.metrics_written {
                wait = wait.min((w + METRICS_EVERY).saturating_duration_since(now));
            }
        }
        if self.full_check_needed.is_some() {
            wait = Duration::ZERO;
        }
        if self.source.fd().is_none() {
            // A source without a descriptor is read after short naps.
            wait = wait.min(Duration::from_millis(10));
        }
        let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
        {
            let mut fds = Vec::with_capacity(2);
            if let Some(fd) = self.source.fd() {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            if let Some(s) = &self.stop.signals {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            if fds.is_empty() {
                std::thread::sleep(wait);
            } else {
                match nix::poll::poll(&mut fds, timeout) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(anyhow::Error::new(e).context("poll failed")),
                }
            }
        }
        if self.stop.requested() {
            return Ok(Flow::Stopped);
        }
        self.read_source()?;
        let due = self.debounce.take_due(Instant::now());
        for path in due {
            self.examine(&path)?;
        }
        if self.baseline_checked.elapsed() >= BASELINE_POLL {
            self.baseline_checked = Instant::now();
            let id = file_id(&self.cfg.baseline_path);
            if id != self.baseline_id {
                self.reload_baseline()?;
                self.reported.clear();
                self.notice(
                    "baseline_reloaded",
                    None,
                    "the baseline was replaced (fim-check update): changes reported so far are accepted; running a full check",
                )?;
                self.full_check_needed = Some("baseline replaced".into());
            }
        }
        if let Some(every) = self.cfg.full_check_interval {
            if self.full_check_needed.is_none() && self.last_full_check.elapsed() >= every {
                self.full_check_needed = Some("interval".into());
            }
        }
        if let Some(reason) = self.full_check_needed.take() {
            if self.full_check(&reason)? == Flow::Stopped {
                return Ok(Flow::Stopped);
            }
        }
        self.write_metrics(false);
        Ok(Flow::Go)
    }

    fn read_source(&mut self) -> Result<()> {
        let mut items = std::mem::take(&mut self.pending);
        if let Err(e) = self.source.read(&mut items) {
            self.notice(
                "unwatchable",
                None,
                &format!(
                    "reading {} events failed: {e}; running a full check",
                    self.source.name()
                ),
            )?;
            self.full_check_needed = Some("event source error".into());
        }
        let now = Instant::now();
        for item in items.drain(..) {
            self.handle(item, now)?;
        }
        self.pending = items;
        Ok(())
    }

    fn handle(&mut self, item: Item, now: Instant) -> Result<()> {
        match item {
            Item::Overflow => {
                if self.full_check_needed.is_none() {
                    self.notice(
                        "queue_overflow",
                        None,
                        &format!(
                            "the {} event queue overflowed: events were lost; running a full check",
                            self.source.name()
                        ),
                    )?;
                }
                self.full_check_needed = Some("queue overflow".into());
            }
            Item::Lost { path, message } => {
                self.notice(
                    "unwatchable",
                    Some(&path),
                    &format!("{message}; running a full check"),
                )?;
                self.full_check_needed = Some("unwatchable directory".into());
            }
            Item::Path { path, what, is_dir } => {
                let watched_parent = parent(&path).is_some_and(|p| self.dirs.contains_key(p));
                let watched = self.dirs.contains_key(&path);
                if !watched_parent && !watched {
                    return Ok(()); // fanotify: not a directory the policy walks
                }
                match what {
                    What::Gone => {
                        if watched {
                            self.drop_dirs(&path, now);
                        }
                        self.debounce.touch(&path, now, SETTLED);
                    }
                    What::Appeared if is_dir && watched_parent => {
                        // Watch it (and what it holds) now, before anything
                        // else lands in it unseen.
                        self.new_dir(&path, now);
                        self.debounce.touch(&path, now, SETTLED);
                    }
                    What::Writing => self.debounce.touch(&path, now, WRITING),
                    What::Appeared | What::Changed => self.debounce.touch(&path, now, SETTLED),
                }
            }
        }
        Ok(())
    }

    /// The directory info of `path`'s parent; `Some(None)` for `/`.
    fn parent_info(&self, path: &[u8]) -> Option<Option<DirInfo>> {
        match parent(path) {
            None => Some(None),
            Some(p) => self.dirs.get(p).map(|d| Some(*d)),
        }
    }

    fn watch(&mut self, path: &[u8], info: DirInfo) -> Result<()> {
        let full = full_path(&self.cfg.root, path);
        match self.source.watch_dir(path, &full) {
            Ok(()) => {
                self.dirs.insert(path.to_vec(), info);
                self.unwatched.remove(path);
            }
            Err(WatchError::Vanished) => {}
            Err(WatchError::Limit(m)) => {
                self.unwatched.insert(path.to_vec());
                if !self.limit_noticed {
                    self.limit_noticed = true;
                    self.notice(
                        "watch_limit",
                        Some(path),
                        &format!("{m}: this directory and others are not watched; they are covered by full checks only (raise the limit)"),
                    )?;
                    self.full_check_needed
                        .get_or_insert_with(|| "watch limit".into());
                }
            }
            Err(WatchError::Other(m)) => {
                if self.unwatched.insert(path.to_vec()) {
                    self.notice(
                        "unwatchable",
                        Some(path),
                        &format!("cannot watch: {m}; covered by full checks only"),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Watches a new directory and everything below it; what it already
    /// holds is examined (and reported as added) shortly.
    fn new_dir(&mut self, path: &[u8], now: Instant) {
        let Some(parent) = self.parent_info(path) else {
            return;
        };
        let mut dirs = Vec::new();
        let mut items = Vec::new();
        {
            let ctx = Ctx {
                root: &self.cfg.root,
                root_fd: &self.cfg.root_fd,
                policy: &self.cfg.policy,
                scope: &self.cfg.scope,
            };
            let source = &mut self.source;
            let root = &self.cfg.root;
            ctx.walk_dirs(
                path,
                parent,
                &mut |d, info| {
                    // The watch must exist before the directory is listed.
                    let r = source.watch_dir(d, &full_path(root, d));
                    dirs.push((d.to_vec(), info, r));
                },
                &mut |p| items.push(p.to_vec()),
            );
        }
        for (d, info, r) in dirs {
            match r {
                Ok(()) => {
                    self.dirs.insert(d, info);
                }
                Err(_) => {
                    // Report it the usual way (the retry is a no-op or fails the same).
                    let _ = self.watch(&d, info);
                }
            }
        }
        for p in items {
            self.debounce.touch(&p, now, SETTLED);
        }
    }

    /// Stops watching `path` and everything below; what was recorded or
    /// reported below it is examined again (it is gone or elsewhere).
    fn drop_dirs(&mut self, path: &[u8], now: Instant) {
        let gone: Vec<Vec<u8>> = self
            .dirs
            .keys()
            .filter(|d| is_within(d, path))
            .cloned()
            .collect();
        for d in gone {
            self.source.unwatch_dir(&d);
            self.dirs.remove(&d);
        }
        for p in self
            .baseline
            .below(path)
            .into_iter()
            .chain(self.reported.below(path))
        {
            self.debounce.touch(&p, now, SETTLED);
        }
    }

    /// Re-examines one path against the baseline and reports a new change.
    fn examine(&mut self, path: &[u8]) -> Result<()> {
        let now = Instant::now();
        let mut new: Option<Entry> = None;
        if let Some(parent) = self.parent_info(path) {
            match crate::hash::stat_beneath(&self.cfg.root_fd, path) {
                Ok(md) => {
                    let is_dir = md.is_dir();
                    let v = self.ctx().verdict(path, is_dir, parent, md.dev());
                    let watched = self.dirs.contains_key(path);
                    if v.descend && !watched {
                        self.new_dir(path, now);
                    } else if !v.descend && watched {
                        self.drop_dirs(path, now);
                    }
                    if let Some(rule) = v.record {
                        let mut buf = std::mem::take(&mut self.buf);
                        new = self.ctx().examine(path, &md, rule, &mut buf);
                        self.buf = buf;
                    }
                }
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EXDEV)
                    ) =>
                {
                    if self.dirs.contains_key(path) {
                        self.drop_dirs(path, now);
                    }
                }
                Err(e) => {
                    self.entry_error(path, &format!("cannot examine: {e}"))?;
                    return Ok(());
                }
            }
        } else if self.dirs.contains_key(path) {
            self.drop_dirs(path, now);
        }
        if let Some(e) = &new {
            if let Some(msg) = &e.error {
                let unsettled = msg.contains("modified while being hashed")
                    || msg.contains(crate::walk::VANISHED)
                    || msg.contains("replaced during the scan");
                let n = self.retries.entry(path.to_vec()).or_insert(0);
                if unsettled && *n < MAX_RETRIES {
                    *n += 1;
                    self.debounce.touch(path, now, WRITING);
                    return Ok(());
                }
                let msg = msg.clone();
                self.entry_error(path, &msg)?;
            }
        }
        self.retries.remove(path);
        let old = if self.cfg.scope.contains(path) {
            self.baseline.get(path)
        } else {
            None
        };
        let root_fd = &self.cfg.root_fd;
        let found = change_of(old.as_ref(), new.as_ref(), &mut |len| {
            hash_prefix(root_fd, path, len)
                .map_err(|e| format!("cannot re-read the grown file: {e}"))
        });
        match found {
            Ok(found) => self.settle(path, found)?,
            Err(m) => self.entry_error(path, &m)?,
        }
        Ok(())
    }

    /// Records the current state of `path`; writes the change if it is new.
    fn settle(&mut self, path: &[u8], found: Option<Found>) -> Result<()> {
        if found.is_none() {
            if let Some(was) = self.reported.restore(path) {
                self.out
                    .restored(path, &was)
                    .context("cannot write to stdout")?;
                self.metrics_dirty = true;
            }
            return Ok(());
        }
        let report = found.clone();
        if self.reported.update(path, found) {
            if let Some(f) = &report {
                self.out
                    .change(path, f, SystemTime::now())
                    .context("cannot write to stdout")?;
            }
            self.metrics_dirty = true;
        }
        Ok(())
    }

    fn entry_error(&mut self, path: &[u8], message: &str) -> Result<()> {
        if self.errors.get(path).map(String::as_str) != Some(message) {
            self.errors.insert(path.to_vec(), message.to_string());
            self.out
                .error(path, message)
                .context("cannot write to stdout")?;
        }
        Ok(())
    }

    fn notice(&mut self, notice: &str, path: Option<&[u8]>, message: &str) -> Result<()> {
        self.out
            .notice(notice, path, message)
            .context("cannot write to stdout")
    }

    /// Brings the watch set in line with the tree (after lost events).
    fn rebuild_watches(&mut self) -> Result<()> {
        self.limit_noticed = false;
        self.unwatched.clear();
        let mut seen: Vec<(Vec<u8>, DirInfo)> = Vec::new();
        {
            let ctx = self.ctx();
            ctx.walk_dirs(
                b"/",
                None,
                &mut |d, info| seen.push((d.to_vec(), info)),
                &mut |_| {},
            );
        }
        // Walk first, watch after: a full check follows, which sees
        // whatever changed in between.
        let keep: HashSet<&[u8]> = seen.iter().map(|(d, _)| d.as_slice()).collect();
        let stale: Vec<Vec<u8>> = self
            .dirs
            .keys()
            .filter(|d| !keep.contains(d.as_slice()))
            .cloned()
            .collect();
        for d in stale {
            self.source.unwatch_dir(&d);
            self.dirs.remove(&d);
        }
        for (d, info) in seen {
            if self.dirs.get(&d) != Some(&info) {
                self.watch(&d, info)?;
            }
        }
        Ok(())
    }

    /// Watches the tree again and compares all of it with the baseline;
    /// reports what is new, forgets what was reverted.
    fn full_check(&mut self, reason: &str) -> Result<Flow> {
        let started = Instant::now();
        self.debounce.clear();
        self.rebuild_watches()?;
        // What the rebuild asked for (a watch limit) is this very check.
        self.full_check_needed = None;
        // Drain what arrived while watching: the check below covers it.
        let mut drained = Vec::new();
        let _ = self.source.read(&mut drained);
        let mut results: Vec<(Vec<u8>, Option<Found>)> = Vec::new();
        let mut errors: Vec<(Vec<u8>, String)> = Vec::new();
        let mut unreadable: Vec<Vec<u8>> = Vec::new();
        let mut scanned = 0u64;
        let stop = self.stop.clone();
        let outcome = {
            let src = Source {
                root: &self.cfg.root,
                root_fd: &self.cfg.root_fd,
                policy: &self.cfg.policy,
                scope: self.cfg.scope.clone(),
                rate: None,
            };
            let root_fd = &self.cfg.root_fd;
            let scope = &self.cfg.scope;
            let mut base = self.baseline.iter().peekable();
            let mut n = 0u32;
            let r = scan(&src, &mut |item| {
                n = n.wrapping_add(1);
                if n % 256 == 0 && stop.requested() {
                    anyhow::bail!("stopped");
                }
                let p = item.path().to_vec();
                while let Some(old) = base.next_if(|o| cmp_paths(&o.path, &p).is_lt()) {
                    let skip = unreadable.iter().any(|u| is_within(&old.path, u))
                        || !scope.contains(&old.path);
                    if !skip {
                        let f = change_of(Some(&old), None, &mut |_| Err(String::new()))
                            .ok()
                            .flatten();
                        results.push((old.path, f));
                    }
                }
                let old = base.next_if(|o| o.path == p);
                match item {
                    WalkItem::Error { path, message } => {
                        errors.push((path.clone(), message));
                        unreadable.push(path);
                    }
                    WalkItem::Entry { entry, .. } => {
                        scanned += 1;
                        if let Some(m) = &entry.error {
                            errors.push((entry.path.clone(), m.clone()));
                        }
                        match change_of(old.as_ref(), Some(&entry), &mut |len| {
                            hash_prefix(root_fd, &entry.path, len)
                                .map_err(|e| format!("cannot re-read the grown file: {e}"))
                        }) {
                            Ok(f) => results.push((entry.path, f)),
                            Err(m) => errors.push((entry.path, m)),
                        }
                    }
                }
                Ok(())
            });
            if r.is_ok() {
                for old in base {
                    let skip = unreadable.iter().any(|u| is_within(&old.path, u))
                        || !scope.contains(&old.path);
                    if !skip {
                        let f = change_of(Some(&old), None, &mut |_| Err(String::new()))
                            .ok()
                            .flatten();
                        results.push((old.path, f));
                    }
                }
            }
            r
        };
        if stop.requested() {
            return Ok(Flow::Stopped);
        }
        outcome.context("full check failed")?;
        let confirmed: HashSet<Vec<u8>> = results
            .iter()
            .filter(|(_, f)| f.is_some())
            .map(|(p, _)| p.clone())
            .collect();
        for (path, found) in results {
            self.settle(&path, found)?;
        }
        // What was reported but is no longer different was reverted.
        for p in self.reported.paths() {
            if !confirmed.contains(&p) && !unreadable.iter().any(|u| is_within(&p, u)) {
                self.settle(&p, None)?;
            }
        }
        self.errors.clear();
        let n_errors = errors.len();
        for (p, m) in errors {
            self.entry_error(&p, &m)?;
        }
        self.scanned = scanned;
        self.full_checks += 1;
        self.last_full_check = Instant::now();
        let [added, removed, changed] = self.reported.counts();
        self.out.write(
            "full_check",
            &json!({
                "reason": reason,
                "scanned": scanned,
                "errors": n_errors,
                "outstanding": {"added": added, "removed": removed, "changed": changed},
                "watches": self.source.watches(),
                "unwatched_directories": self.unwatched.len(),
                "duration_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
        )?;
        self.metrics_dirty = true;
        self.write_metrics(true);
        Ok(Flow::Go)
    }

    /// Rewrites the metrics file when something changed, at most once per
    /// second (`force`: now).
    #[allow(clippy::cast_precision_loss)] // counts far below 2^53
    fn write_metrics(&mut self, force: bool) {
        let Some(path) = self.cfg.metrics_file.clone() else {
            return;
        };
        if !self.metrics_dirty && !force {
            return;
        }
        if !force
            && self
                .metrics_written
                .is_some_and(|w| w.elapsed() < METRICS_EVERY)
        {
            return;
        }
        let mut m = nodeguard_common::metrics::Metrics::new(TOOL);
        let fam = m.gauge(
            "changes",
            "Paths added, removed or changed since the baseline, by kind (outstanding; watch mode keeps it current).",
        );
        for (kind, n) in KINDS.iter().zip(self.reported.counts()) {
            fam.sample(&[("kind", kind)], n as f64);
        }
        m.gauge("entries", "Entries the last run examined on the host.")
            .sample(&[], self.scanned as f64);
        m.gauge("errors", "Paths the last run could not examine.")
            .sample(&[], self.errors.len() as f64);
        m.gauge(
            "baseline_authenticated",
            "1 if the baseline's HMAC was verified with a key, else 0.",
        )
        .sample(&[], if self.cfg.key.is_some() { 1.0 } else { 0.0 });
        m.gauge(
            "watches",
            "Kernel watches (inotify) or marks (fanotify) in use by fim-check watch.",
        )
        .sample(
            &[("backend", self.source.name())],
            self.source.watches() as f64,
        );
        m.gauge(
            "unwatched_directories",
            "Directories the policy selects that fim-check watch could not watch (covered by full checks only).",
        )
        .sample(&[], self.unwatched.len() as f64);
        m.counter(
            "full_checks_total",
            "Full checks fim-check watch ran (start, lost events, interval, baseline update).",
        )
        .sample(&[], self.full_checks as f64);
        if let Err(e) = nodeguard_common::metrics::write_run_metrics(&path, &m, VERSION, true) {
            log::warn!("cannot write --metrics-file {}: {e:#}", path.display());
        }
        self.metrics_dirty = false;
        self.metrics_written = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests;
