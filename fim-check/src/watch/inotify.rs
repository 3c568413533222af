//! The inotify backend: one watch per selected directory. Needs no
//! capability beyond reading the directories (works as any user that can
//! list them, through a hostPath mount of the host root).

use super::source::{join, EventSource, Item, WatchError, What};
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags as F, InitFlags, Inotify, WatchDescriptor};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The events that can change what a directory's entries look like.
fn mask() -> F {
    F::IN_CREATE
        | F::IN_DELETE
        | F::IN_MOVED_FROM
        | F::IN_MOVED_TO
        | F::IN_MODIFY
        | F::IN_CLOSE_WRITE
        | F::IN_ATTRIB
        | F::IN_DELETE_SELF
        | F::IN_MOVE_SELF
        // Never follow a symlink swapped in for a directory; only directories.
        | F::IN_DONT_FOLLOW
        | F::IN_ONLYDIR
        // No events for names already unlinked but still open.
        | F::from_bits_retain(libc::IN_EXCL_UNLINK)
}

#[derive(Debug)]
pub struct InotifySource {
    fd: Inotify,
    by_wd: HashMap<WatchDescriptor, Vec<u8>>,
    by_path: HashMap<Vec<u8>, WatchDescriptor>,
}

impl InotifySource {
    pub fn new() -> io::Result<InotifySource> {
        let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        Ok(InotifySource {
            fd,
            by_wd: HashMap::new(),
            by_path: HashMap::new(),
        })
    }
}

impl EventSource for InotifySource {
    fn name(&self) -> &'static str {
        "inotify"
    }

    fn watch_dir(&mut self, path: &[u8], full: &Path) -> Result<(), WatchError> {
        if self.by_path.contains_key(path) {
            return Ok(());
        }
        match self.fd.add_watch(full, mask()) {
            Ok(wd) => {
                // The same inode under another name (a moved directory):
                // the kernel hands back the existing watch.
                if let Some(old) = self.by_wd.insert(wd, path.to_vec()) {
                    self.by_path.remove(&old);
                }
                self.by_path.insert(path.to_vec(), wd);
                Ok(())
            }
            Err(Errno::ENOSPC) => Err(WatchError::Limit(
                "inotify watch limit reached (fs.inotify.max_user_watches)".into(),
            )),
            Err(Errno::ENOENT) => Err(WatchError::Vanished),
            Err(e) => Err(WatchError::Other(e.desc().to_string())),
        }
    }

    fn unwatch_dir(&mut self, path: &[u8]) {
        if let Some(wd) = self.by_path.remove(path) {
            self.by_wd.remove(&wd);
            // EINVAL: the kernel already dropped it (directory deleted).
            let _ = self.fd.rm_watch(wd);
        }
    }

    fn watches(&self) -> usize {
        self.by_wd.len()
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }

    fn read(&mut self, out: &mut Vec<Item>) -> io::Result<()> {
        loop {
            let events = match self.fd.read_events() {
                Ok(ev) => ev,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            for ev in events {
                let m = ev.mask;
                if m.contains(F::IN_Q_OVERFLOW) {
                    out.push(Item::Overflow);
                    continue;
                }
                let Some(dir) = self.by_wd.get(&ev.wd).cloned() else {
                    continue;
                };
                if m.contains(F::IN_IGNORED) {
                    // The kernel dropped the watch (directory deleted or its
                    // file system unmounted).
                    self.by_wd.remove(&ev.wd);
                    if self.by_path.get(&dir) == Some(&ev.wd) {
                        self.by_path.remove(&dir);
                    }
                    continue;
                }
                if m.contains(F::IN_UNMOUNT) {
                    out.push(Item::Lost {
                        path: dir,
                        message: "the file system of this watched directory was unmounted".into(),
                    });
                    continue;
                }
                let is_dir = m.contains(F::IN_ISDIR);
                let Some(name) = ev.name.as_ref().filter(|n| !n.is_empty()) else {
                    // Events about the watched directory itself.
                    let what = if m.intersects(F::IN_DELETE_SELF | F::IN_MOVE_SELF) {
                        What::Gone
                    } else {
                        What::Changed
                    };
                    out.push(Item::Path {
                        path: dir,
                        what,
                        is_dir: true,
                    });
                    continue;
                };
                let what = if m.intersects(F::IN_DELETE | F::IN_MOVED_FROM) {
                    What::Gone
                } else if m.intersects(F::IN_CREATE | F::IN_MOVED_TO) {
                    What::Appeared
                } else if m.contains(F::IN_MODIFY) {
                    What::Writing
                } else {
                    What::Changed
                };
                out.push(Item::Path {
                    path: join(&dir, name.as_bytes()),
                    what,
                    is_dir,
                });
            }
        }
    }
}
