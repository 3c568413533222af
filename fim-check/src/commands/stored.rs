//! Baselines on disk: opening one and verifying it is for this run,
//! loading it whole (for the watcher), writing a new one atomically, and
//! keeping the previous one.

use super::setup::Setup;
use crate::baseline::{BaselineError, Header, Reader, Writer, FORMAT_VERSION};
use crate::entry::display_path;
use crate::report::BaselineInfo;
use crate::{EXIT_BASELINE_INTEGRITY, EXIT_BASELINE_MISMATCH};
use anyhow::{Context, Result};
use nodeguard_common::atomic::AtomicFile;
use nodeguard_common::exit::{ToolError, ERROR};
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

pub(crate) const IO_BUF: usize = 256 * 1024;

/// A baseline being read; its tag is verified when the last entry is read.
pub(crate) type BaselineReader = Reader<BufReader<File>>;
/// A baseline being written to a temporary file beside its final path.
pub(crate) type BaselineWriter = Writer<BufWriter<AtomicFile>>;

/// Maps a baseline problem to its documented exit code (3 integrity,
/// 4 mismatch, 2 I/O).
pub(crate) fn baseline_error(path: &Path, e: BaselineError) -> anyhow::Error {
    let (code, what) = match e {
        BaselineError::Integrity(m) => (EXIT_BASELINE_INTEGRITY, m),
        BaselineError::Mismatch(m) => (EXIT_BASELINE_MISMATCH, m),
        BaselineError::Io(m) => (ERROR, format!("read error: {m}")),
    };
    ToolError::new(code, format!("baseline {}: {what}", path.display())).into()
}

/// Opens a baseline and reads its header (entries are not read yet).
/// Only a regular file is read: a FIFO, a device or a directory is
/// refused at once (opened non-blocking, type checked on the descriptor).
pub(crate) fn open_baseline(path: &Path, key: Option<&[u8]>) -> Result<BaselineReader> {
    let file = open_regular(path)?;
    Reader::open(BufReader::with_capacity(IO_BUF, file), key).map_err(|e| baseline_error(path, e))
}

/// Opens `path` for reading without blocking on a FIFO or becoming a
/// terminal's controller, and refuses anything but a regular file.
fn open_regular(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (run `fim-check init` first)"
            } else {
                ""
            };
            anyhow::anyhow!("cannot open baseline {}{hint}: {e}", path.display())
        })?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot open baseline {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!(
            "baseline {}: it is {}, not a regular file",
            path.display(),
            nodeguard_common::input::describe_type(&meta)
        );
    }
    Ok(file)
}

/// Opens the baseline for `check`/`update`/`watch`: refuses one made for
/// another node, policy or scope (exit 4, or exit 3 when the tag does not
/// verify, since an unverified header is not trusted), and narrows
/// `s.scope` to the baseline's `--path` limits when none were given.
pub(crate) fn open_for_comparison(path: &Path, s: &mut Setup) -> Result<BaselineReader> {
    let mut reader = open_baseline(path, s.key.as_deref())?;
    if let Err(mismatch) = check_binding(path, reader.header(), s) {
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
        s.scope.limits = reader
            .header()
            .limits
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect();
    }
    Ok(reader)
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

/// The report's description of a baseline.
pub(crate) fn baseline_info(
    path: &Path,
    h: &Header,
    entries: u64,
    authenticated: bool,
) -> BaselineInfo {
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

/// The warning every report carries when the baseline was not verified
/// with a key. `unverified`: it carries an HMAC but no key was given.
pub(crate) fn unauthenticated_warning(unverified: bool, key: bool) -> Option<String> {
    match (unverified, key) {
        (true, _) => Some("the baseline carries an HMAC but no --key-file was given: it was NOT verified".into()),
        (false, false) => Some("the baseline is not authenticated (no --key-file): whoever can write it can hide changes".into()),
        _ => None,
    }
}

/// Starts writing a new baseline to a temporary file beside `path`
/// (mode 0600); `commit_baseline` puts it in place.
pub(crate) fn create_baseline(
    path: &Path,
    header: &Header,
    key: Option<&[u8]>,
) -> Result<BaselineWriter> {
    let file = AtomicFile::create(path, 0o600)
        .with_context(|| format!("cannot create baseline {}", path.display()))?;
    Writer::new(BufWriter::with_capacity(IO_BUF, file), header, key)
        .with_context(|| format!("cannot write baseline {}", path.display()))
}

/// Writes the trailer, syncs and renames the new baseline into place;
/// returns the entry count.
pub(crate) fn commit_baseline(path: &Path, writer: BaselineWriter) -> Result<u64> {
    let (buffered, count) = writer
        .finish()
        .with_context(|| format!("cannot write baseline {}", path.display()))?;
    let file = buffered
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)
        .with_context(|| format!("cannot write baseline {}", path.display()))?;
    file.commit()
        .with_context(|| format!("cannot replace baseline {}", path.display()))?;
    Ok(count)
}

/// Copies the verified old baseline (the same open file) to `<path>.prev`.
pub(crate) fn keep_previous(path: &Path, reader: BaselineReader) -> Result<PathBuf> {
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
