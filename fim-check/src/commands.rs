//! The subcommands: gathering (host root, policy, key, baseline), running
//! the scan, and emitting the report and metrics.

use crate::baseline::{BaselineError, Header, Reader, Writer, FORMAT_VERSION, MIN_KEY_LEN};
use crate::cli::{Cli, Command, FailOn, InitArgs, ScanArgs, ShowArgs, WatchArgs};
use crate::compare::attr_value;
use crate::entry::display_path;
use crate::merge::{MergeError, Merger};
use crate::policy::{normalize, Policy, DEFAULT_POLICY};
use crate::report::{BaselineInfo, ConfigInfo, EntryError, ScanReport, ShowReport, Summary};
use crate::scan::{scan, Source};
use crate::throttle::{self, RateLimit};
use crate::walk::{Item, Scope};
use crate::{EXIT_BASELINE_INTEGRITY, EXIT_BASELINE_MISMATCH, TOOL, VERSION};
use anyhow::{bail, Context, Result};
use nodeguard_common::atomic::AtomicFile;
use nodeguard_common::exit::{ToolError, ERROR, FINDINGS, SUCCESS};
use nodeguard_common::hostroot::HostRoot;
use nodeguard_common::report::{emit, rfc3339, RunContext};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const IO_BUF: usize = 256 * 1024;

/// Runs one command; on failure the metrics file (if any) records a failed
/// run and keeps the previous run's series.
pub fn run(cli: Cli) -> Result<u8> {
    let metrics_file = match &cli.command {
        Command::Init(a) => a.scan.common.metrics_file.clone(),
        Command::Check(a) | Command::Update(a) => a.common.metrics_file.clone(),
        Command::Watch(a) => a.scan.common.metrics_file.clone(),
        Command::Show(_) | Command::DefaultConfig => None,
    };
    let result = dispatch(cli);
    if let (Err(_), Some(m)) = (&result, metrics_file) {
        let empty = nodeguard_common::metrics::Metrics::new(TOOL);
        if let Err(e) = nodeguard_common::metrics::write_run_metrics(&m, &empty, VERSION, false) {
            log::warn!("cannot write --metrics-file {}: {e:#}", m.display());
        }
    }
    result
}

fn dispatch(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Init(a) => init(&a),
        Command::Check(a) => check_or_update(&a, false),
        Command::Update(a) => check_or_update(&a, true),
        Command::Show(a) => show(&a),
        Command::Watch(a) => watch(&a),
        Command::DefaultConfig => {
            std::io::stdout().write_all(DEFAULT_POLICY.as_bytes())?;
            Ok(SUCCESS)
        }
    }
}

/// Maps a baseline problem to its documented exit code.
fn baseline_error(path: &Path, e: BaselineError) -> anyhow::Error {
    let (code, what) = match e {
        BaselineError::Integrity(m) => (EXIT_BASELINE_INTEGRITY, m),
        BaselineError::Mismatch(m) => (EXIT_BASELINE_MISMATCH, m),
        BaselineError::Io(m) => (ERROR, format!("read error: {m}")),
    };
    ToolError::new(code, format!("baseline {}: {what}", path.display())).into()
}

/// Reads the HMAC key; it is registered for redaction and never printed.
fn read_key(path: Option<&Path>) -> Result<Option<Vec<u8>>> {
    let Some(path) = path else { return Ok(None) };
    let mut key = std::fs::read(path)
        .with_context(|| format!("cannot read --key-file {}", path.display()))?;
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

/// Everything a scan needs, gathered before any work starts.
struct Setup {
    host: HostRoot,
    root_fd: OwnedFd,
    policy: Policy,
    scope: Scope,
    key: Option<Vec<u8>>,
    rate: Option<RateLimit>,
    ctx: RunContext,
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

fn setup(a: &ScanArgs) -> Result<Setup> {
    let host = a.common.open_host_root()?;
    let root_fd = OwnedFd::from(
        File::open(host.path())
            .with_context(|| format!("cannot open --host-root {}", host.path().display()))?,
    );
    let policy = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read --config {}", p.display()))?;
            Policy::parse(&text, &p.display().to_string()).map_err(anyhow::Error::msg)?
        }
        None => Policy::builtin().map_err(anyhow::Error::msg)?,
    };
    let mut policy = policy;
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
    let key = read_key(a.key_file.as_deref())?;
    if !(a.max_read_rate >= 0.0 && a.max_read_rate.is_finite()) {
        bail!("--max-read-rate must be a non-negative number of MB/s");
    }
    let rate = (a.max_read_rate > 0.0).then(|| RateLimit::new(a.max_read_rate));
    // Priorities first: the pool's threads inherit them.
    if a.nice > 0 {
        throttle::set_nice(a.nice).unwrap_or_else(|e| log::warn!("cannot lower CPU priority: {e}"));
    }
    if !a.no_io_idle {
        throttle::set_io_idle().unwrap_or_else(|e| log::warn!("cannot set idle I/O priority: {e}"));
    }
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = a.threads {
        pool = pool.num_threads(n.max(1));
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

impl Setup {
    fn source(&self) -> Source<'_> {
        Source {
            root: self.host.path(),
            root_fd: &self.root_fd,
            policy: &self.policy,
            scope: self.scope.clone(),
            rate: self.rate.as_ref(),
        }
    }

    fn new_header(&self) -> Header {
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

    fn empty_report(&self, command: &'static str, baseline: BaselineInfo) -> ScanReport {
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

fn baseline_info(path: &Path, h: &Header, entries: u64, authenticated: bool) -> BaselineInfo {
    BaselineInfo {
        path: path.display().to_string(),
        format_version: FORMAT_VERSION,
        created_at: h.created_at.clone(),
        node: h.node.clone(),
        config_source: h.config_source.clone(),
        config_digest: h.config_digest.clone(),
        tool_version: h.tool_version.clone(),
        entries,
        authenticated,
        limits: h.limits.clone(),
        previous: None,
    }
}

fn unauthenticated_warning(r: Option<&Reader<BufReader<File>>>, key: bool) -> Option<String> {
    match (r.is_some_and(|r| r.unverified), key) {
        (true, _) => Some("the baseline carries an HMAC but no --key-file was given: it was NOT verified".into()),
        (false, false) => Some("the baseline is not authenticated (no --key-file): whoever can write it can hide changes".into()),
        _ => None,
    }
}

fn init(a: &InitArgs) -> Result<u8> {
    let s = setup(&a.scan)?;
    let path = &a.scan.baseline;
    if path.exists() && !a.force {
        bail!("baseline {} already exists; use `update` to accept changes or `init --force` to replace it", path.display());
    }
    let header = s.new_header();
    let file = AtomicFile::create(path, 0o600)
        .with_context(|| format!("cannot create baseline {}", path.display()))?;
    let mut writer = Writer::new(
        BufWriter::with_capacity(IO_BUF, file),
        &header,
        s.key.as_deref(),
    )
    .with_context(|| format!("cannot write baseline {}", path.display()))?;
    let mut report = s.empty_report("init", baseline_info(path, &header, 0, s.key.is_some()));
    scan(&s.source(), &mut |item| {
        match item {
            Item::Error { path, message } => report.error(EntryError::new(&path, message)),
            Item::Entry { entry, .. } => {
                report.summary.scanned += 1;
                if let Some(m) = &entry.error {
                    report.error(EntryError::new(&entry.path, m.clone()));
                }
                writer.write(&entry)?;
            }
        }
        Ok(())
    })
    .with_context(|| format!("cannot write baseline {}", path.display()))?;
    let (buffered, count) = writer
        .finish()
        .with_context(|| format!("cannot write baseline {}", path.display()))?;
    let file = buffered
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)
        .with_context(|| format!("cannot write baseline {}", path.display()))?;
    file.commit()
        .with_context(|| format!("cannot write baseline {}", path.display()))?;
    report.baseline.entries = count;
    if s.key.is_none() {
        report.warnings.extend(unauthenticated_warning(None, false));
    }
    finish(&s, &a.scan, &report)
}

fn open_baseline(path: &Path, key: Option<&[u8]>) -> Result<Reader<BufReader<File>>> {
    let file = File::open(path).with_context(|| {
        format!(
            "cannot open baseline {} (run `fim-check init` first)",
            path.display()
        )
    })?;
    Reader::open(BufReader::with_capacity(IO_BUF, file), key).map_err(|e| baseline_error(path, e))
}

/// Refuses a baseline made for another node, config or scope.
fn check_binding(path: &Path, h: &Header, s: &Setup) -> Result<()> {
    let mismatch = |m: String| baseline_error(path, BaselineError::Mismatch(m));
    if h.node != s.ctx.node {
        return Err(mismatch(format!(
            "it was made on node {:?}, this is {:?}",
            h.node, s.ctx.node
        )));
    }
    if h.config_digest != s.policy.digest {
        return Err(mismatch(format!(
            "it was made with another policy ({} digest {}, now {} digest {}); run `init --force` to re-baseline",
            h.config_source, h.config_digest, s.policy.source, s.policy.digest
        )));
    }
    let limits: Vec<String> = s.scope.limits.iter().map(|l| display_path(l)).collect();
    if !h.limits.is_empty()
        && !limits.iter().all(|l| {
            h.limits
                .iter()
                .any(|b| crate::entry::is_within(l.as_bytes(), b.as_bytes()))
        })
    {
        return Err(mismatch(format!(
            "it only covers {:?}; --path {:?} lies outside",
            h.limits, limits
        )));
    }
    Ok(())
}

fn check_or_update(a: &ScanArgs, update: bool) -> Result<u8> {
    let mut s = setup(a)?;
    let path = &a.baseline;
    let mut reader = open_baseline(path, s.key.as_deref())?;
    let header = reader.header().clone();
    if let Err(mismatch) = check_binding(path, &header, &s) {
        // The header is only trusted once the tag verifies: an edited
        // header is tampering (exit 3), not a foreign baseline (exit 4).
        while reader
            .next_entry()
            .map_err(|e| baseline_error(path, e))?
            .is_some()
        {}
        return Err(mismatch);
    }
    if s.scope.limits.is_empty() {
        // A baseline built for some paths is checked on those paths.
        s.scope.limits = header
            .limits
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect();
    }
    let command = if update { "update" } else { "check" };
    let mut report = s.empty_report(command, baseline_info(path, &header, 0, s.key.is_some()));
    let writer = if update {
        let mut new_header = s.new_header();
        new_header.limits.clone_from(&header.limits);
        let file = AtomicFile::create(path, 0o600)
            .with_context(|| format!("cannot create baseline {}", path.display()))?;
        Some(Writer::new(
            BufWriter::with_capacity(IO_BUF, file),
            &new_header,
            s.key.as_deref(),
        )?)
    } else {
        None
    };
    let root_fd = &s.root_fd;
    let mut prefix = |p: &[u8], len: u64| crate::hash::hash_prefix(root_fd, p, len);
    let mut merger = Merger::new(
        &mut reader,
        s.scope.clone(),
        writer,
        &mut report,
        &mut prefix,
    );
    let mut failure: Option<MergeError> = None;
    let scanned = scan(&s.source(), &mut |item| {
        merger.item(item).map_err(|e| {
            let msg = format!("{e:?}");
            failure = Some(e);
            anyhow::anyhow!(msg)
        })
    });
    let result = match (failure, scanned) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => return Err(e),
        (None, Ok(())) => merger.finish(),
    };
    let writer = match result {
        Ok(w) => w,
        Err(MergeError::Baseline(e)) => return Err(baseline_error(path, e)),
        Err(MergeError::Write(e)) => {
            return Err(
                anyhow::Error::new(e).context(format!("cannot write baseline {}", path.display()))
            )
        }
    };
    report.baseline.entries = reader.count();
    report
        .warnings
        .extend(unauthenticated_warning(Some(&reader), s.key.is_some()));
    if let Some(w) = writer {
        let prev = keep_previous(path, reader)?;
        let (buffered, count) = w.finish()?;
        let file = buffered
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        file.commit()
            .with_context(|| format!("cannot replace baseline {}", path.display()))?;
        report.baseline.entries = count;
        report.baseline.previous = Some(prev.display().to_string());
    }
    finish(&s, a, &report)
}

/// Copies the verified old baseline (the same open file) to `<path>.prev`.
fn keep_previous(path: &Path, reader: Reader<BufReader<File>>) -> Result<PathBuf> {
    use std::io::Seek;
    let mut prev_name = path.as_os_str().to_os_string();
    prev_name.push(".prev");
    let prev = PathBuf::from(prev_name);
    let mut old = reader.into_inner().into_inner();
    old.rewind()?;
    let mut out = AtomicFile::create(&prev, 0o600)
        .with_context(|| format!("cannot create {}", prev.display()))?;
    std::io::copy(&mut old, &mut out)
        .with_context(|| format!("cannot write {}", prev.display()))?;
    out.commit()
        .with_context(|| format!("cannot write {}", prev.display()))?;
    Ok(prev)
}

/// Prints the report, writes metrics, and picks the exit code.
fn finish(s: &Setup, a: &ScanArgs, report: &ScanReport) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    emit(&mut out, &s.ctx, report, a.common.format, a.common.pretty)
        .context("cannot write the report to stdout")?;
    if let Some(m) = &a.common.metrics_file {
        nodeguard_common::metrics::write_run_metrics(m, &report.metrics(), VERSION, true)
            .with_context(|| format!("cannot write --metrics-file {}", m.display()))?;
    }
    let sum = &report.summary;
    let changes = sum.added + sum.removed + sum.changed > 0;
    let errors = sum.errors > 0;
    let fail = match a.fail_on {
        FailOn::None => false,
        FailOn::Changes => changes,
        FailOn::Errors => errors,
        FailOn::Any => changes || errors,
    };
    Ok(if fail { FINDINGS } else { SUCCESS })
}

fn show(a: &ShowArgs) -> Result<u8> {
    let key = read_key(a.key_file.as_deref())?;
    let want = a
        .path
        .as_deref()
        .map(normalize)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--path: {e}"))?;
    let mut reader = open_baseline(&a.baseline, key.as_deref())?;
    let mut found = None;
    while let Some(e) = reader
        .next_entry()
        .map_err(|e| baseline_error(&a.baseline, e))?
    {
        if want.as_deref() == Some(e.path.as_slice()) {
            found = Some(e);
        }
    }
    let entry = match (&want, found) {
        (Some(p), None) => bail!(
            "{} has no entry for {}",
            a.baseline.display(),
            display_path(p)
        ),
        (_, Some(e)) => Some(entry_json(&e)),
        (None, None) => None,
    };
    let header = reader.header().clone();
    let warnings = unauthenticated_warning(Some(&reader), key.is_some())
        .into_iter()
        .collect();
    let report = ShowReport {
        command: "show",
        baseline: baseline_info(&a.baseline, &header, reader.count(), key.is_some()),
        entry,
        warnings,
    };
    let host = HostRoot::open(&a.common.host_root).ok();
    let node = host
        .as_ref()
        .map_or_else(|| header.node.clone(), |h| a.common.node_name(h));
    let ctx = RunContext::new(TOOL, VERSION, node);
    emit(
        &mut std::io::stdout().lock(),
        &ctx,
        &report,
        a.common.format,
        a.common.pretty,
    )?;
    Ok(SUCCESS)
}

fn entry_json(e: &crate::entry::Entry) -> serde_json::Value {
    let mut attrs = serde_json::Map::new();
    for a in e
        .attrs
        .iter()
        .filter(|a| crate::compare::applies(*a, e.ftype))
    {
        if a != crate::attrs::Attr::Growing {
            attrs.insert(a.name().to_string(), attr_value(e, a));
        }
    }
    serde_json::json!({
        "path": display_path(&e.path),
        "type": e.ftype.name(),
        "rule_attributes": e.attrs.to_string(),
        "recursive": e.recursive,
        "attributes": attrs,
    })
}

/// `watch`: signals are blocked before `setup` starts the thread pool, so
/// SIGTERM/SIGINT reach the watcher's signalfd in every thread. The
/// baseline is verified and bound to this node and policy before anything
/// is watched (exit 3/4 as for `check`).
fn watch(a: &WatchArgs) -> Result<u8> {
    let stop = crate::watch::Stop::on_signals()?;
    let mut s = setup(&a.scan)?;
    let path = &a.scan.baseline;
    let baseline = crate::watch::state::Baseline::load(path, s.key.as_deref())
        .map_err(|e| baseline_error(path, e))?;
    if let Some(h) = &baseline.header {
        check_binding(path, h, &s)?;
        if s.scope.limits.is_empty() {
            s.scope.limits = h.limits.iter().map(|l| l.as_bytes().to_vec()).collect();
        }
    }
    let source = crate::watch::open_backend(a.backend, &s.root_fd)?;
    let cfg = crate::watch::Config {
        root: s.host.path().to_path_buf(),
        root_fd: s.root_fd,
        policy: s.policy,
        scope: s.scope,
        baseline_path: path.clone(),
        key: s.key,
        metrics_file: a.scan.common.metrics_file.clone(),
        full_check_interval: (a.full_check_interval > 0)
            .then(|| std::time::Duration::from_secs(a.full_check_interval)),
    };
    let out = Box::new(std::io::stdout());
    crate::watch::Watcher::new(cfg, baseline, source, out, s.ctx, stop).run()?;
    Ok(SUCCESS)
}
