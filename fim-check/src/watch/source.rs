//! The event source: what the watcher needs from inotify or fanotify.
//!
//! Backends translate kernel events into [`Item`]s about paths *inside the
//! host root* (`/etc/passwd`, never `/host/etc/passwd`). The watcher decides
//! what a path means (policy, baseline); a backend only says "look at this
//! path again", and how urgently.

use std::io;
use std::os::fd::BorrowedFd;

/// What happened to a path, as far as the watcher cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// Data is being written (`IN_MODIFY`): wait for the file to settle.
    Writing,
    /// The object changed and is probably settled (close after write,
    /// attributes, hard-link count).
    Changed,
    /// A name appeared (create, link, rename into a watched directory).
    Appeared,
    /// A name disappeared (unlink, rmdir, rename out of a watched directory).
    Gone,
}

/// One thing the watcher must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// Something happened at `path`; `is_dir` when the kernel said the
    /// object is (or was) a directory.
    Path {
        path: Vec<u8>,
        what: What,
        is_dir: bool,
    },
    /// Events were lost (`IN_Q_OVERFLOW` / `FAN_Q_OVERFLOW`): only a full
    /// check can tell what changed.
    Overflow,
    /// A watched directory can no longer be watched (its file system was
    /// unmounted, the watch vanished), or the backend failed.
    Lost { path: Vec<u8>, message: String },
}

/// Why a directory could not be watched.
#[derive(Debug)]
pub enum WatchError {
    /// `max_user_watches` (inotify) or the mark limit is exhausted.
    Limit(String),
    /// The directory vanished before it could be watched.
    Vanished,
    /// Anything else (permissions, a file swapped in for the directory).
    Other(String),
}

/// A source of file-system events for a set of directories.
pub trait EventSource {
    /// `inotify` or `fanotify`.
    fn name(&self) -> &'static str;
    /// Starts watching the directory at host path `path` (`full` is where
    /// it is on this machine: below `--host-root`). Watching a directory
    /// already watched is a no-op.
    fn watch_dir(&mut self, path: &[u8], full: &std::path::Path) -> Result<(), WatchError>;
    /// Stops watching one directory (no-op if it is not watched).
    fn unwatch_dir(&mut self, path: &[u8]);
    /// Kernel watches or marks in use.
    fn watches(&self) -> usize;
    /// The descriptor to poll for readability, if the source has one
    /// (a source without one is read after every poll timeout).
    fn fd(&self) -> Option<BorrowedFd<'_>>;
    /// Appends what is pending, without blocking.
    fn read(&mut self, out: &mut Vec<Item>) -> io::Result<()>;
}

/// A scripted source for tests: items pushed through the handle are
/// delivered on the next read; watches are only counted.
#[derive(Debug, Default)]
pub struct FakeSource {
    pub queue: std::sync::Arc<std::sync::Mutex<Vec<Item>>>,
    watched: std::collections::HashSet<Vec<u8>>,
    /// Refuse watches beyond this many, like `max_user_watches`.
    pub limit: Option<usize>,
}

impl FakeSource {
    /// The source and a handle to push items into it.
    pub fn new() -> (FakeSource, std::sync::Arc<std::sync::Mutex<Vec<Item>>>) {
        let s = FakeSource::default();
        let q = s.queue.clone();
        (s, q)
    }
}

impl EventSource for FakeSource {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn watch_dir(&mut self, path: &[u8], _full: &std::path::Path) -> Result<(), WatchError> {
        if self.limit.is_some_and(|l| self.watched.len() >= l) && !self.watched.contains(path) {
            return Err(WatchError::Limit("fake watch limit reached".into()));
        }
        self.watched.insert(path.to_vec());
        Ok(())
    }
    fn unwatch_dir(&mut self, path: &[u8]) {
        self.watched.remove(path);
    }
    fn watches(&self) -> usize {
        self.watched.len()
    }
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    fn read(&mut self, out: &mut Vec<Item>) -> io::Result<()> {
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        out.append(&mut q);
        Ok(())
    }
}

/// `parent/name` for host paths (`/` + `etc` = `/etc`).
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    p.extend_from_slice(parent);
    if parent != b"/" {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// The parent of a host path (`/etc/x` → `/etc`, `/etc` → `/`); `None`
/// for `/`.
pub fn parent(path: &[u8]) -> Option<&[u8]> {
    if path == b"/" {
        return None;
    }
    let i = path.iter().rposition(|&b| b == b'/')?;
    if i == 0 {
        Some(b"/")
    } else {
        path.get(..i)
    }
}
