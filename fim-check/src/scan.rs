//! The scan pipeline: the walk of the next chunk runs while the current
//! chunk is hashed on the thread pool; chunks leave in walk order, so the
//! output is deterministic and at most two chunks are in memory.

use crate::hash::{hash_entry, LinkCache, BUF_SIZE};
use crate::policy::Policy;
use crate::throttle::RateLimit;
use crate::walk::{read_links_and_xattrs, Item, Scope, Walker};
use nodeguard_common::progress::Progress;
use rayon::prelude::*;
use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::path::Path;

/// Items per chunk: enough to keep both halves of the pipeline busy.
const CHUNK_ITEMS: usize = 4096;
/// Content bytes per chunk: bounds the time one chunk takes to hash.
const CHUNK_BYTES: u64 = 256 << 20;

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; BUF_SIZE]);
}

/// Everything the scan needs to read the host.
#[derive(Debug)]
pub struct Source<'a> {
    pub root: &'a Path,
    pub root_fd: &'a OwnedFd,
    pub policy: &'a Policy,
    pub scope: Scope,
    pub rate: Option<&'a RateLimit>,
}

/// Walks and hashes, handing every item to `sink` in path order.
pub fn scan(
    src: &Source<'_>,
    sink: &mut dyn FnMut(Item) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut walker = Walker::new(src.root, src.policy, src.scope.clone());
    let links = LinkCache::default();
    // Entries and bytes hashed, with the rate, on stderr when it is a terminal.
    let progress = Progress::counter("entries");
    let mut current = walker.next_chunk(CHUNK_ITEMS, CHUNK_BYTES);
    while !current.is_empty() {
        let (next, ()) = rayon::join(
            || walker.next_chunk(CHUNK_ITEMS, CHUNK_BYTES),
            || enrich(src, &links, &mut current, &progress),
        );
        for item in current.drain(..) {
            sink(item)?;
        }
        current = next;
    }
    Ok(())
}

fn enrich(src: &Source<'_>, links: &LinkCache, items: &mut [Item], progress: &Progress) {
    items.par_iter_mut().for_each(|item| {
        let Item::Entry { entry, dev } = item else {
            return;
        };
        progress.inc(if entry.wants_hash() { entry.size } else { 0 });
        read_links_and_xattrs(src.root, entry);
        if !entry.wants_hash() || entry.error.as_deref() == Some(crate::walk::VANISHED) {
            return;
        }
        let linked = entry.links > 1;
        if let Some(d) = linked.then(|| links.get(*dev, entry)).flatten() {
            entry.sha256 = Some(d);
            return;
        }
        READ_BUF.with(|b| hash_entry(src.root_fd, entry, *dev, &mut b.borrow_mut(), src.rate));
        if let (true, Some(d), None) = (linked, entry.sha256, &entry.error) {
            links.put(*dev, entry, d);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Entry;
    use std::fs::File;

    /// Files that vanish, change or are swapped for symlinks between the
    /// walk and the hashing are reported per entry, never fatal.
    #[test]
    fn files_changing_between_walk_and_hash_are_entry_errors() {
        let d = tempfile::tempdir().expect("tmp");
        for name in ["gone", "grown", "swapped", "steady"] {
            std::fs::write(d.path().join(name), name).expect("write");
        }
        let policy = Policy::parse("[[rule]]\npath = \"/\"\nattributes = \"content\"\n", "t")
            .expect("policy");
        let mut walker = Walker::new(d.path(), &policy, Scope::default());
        let mut items = walker.next_chunk(100, u64::MAX);
        assert!(walker.next_chunk(100, u64::MAX).is_empty());
        std::fs::remove_file(d.path().join("gone")).expect("rm");
        std::fs::write(d.path().join("grown"), "grown and longer").expect("write");
        std::fs::remove_file(d.path().join("swapped")).expect("rm");
        std::os::unix::fs::symlink("steady", d.path().join("swapped")).expect("symlink");
        let root_fd = OwnedFd::from(File::open(d.path()).expect("open"));
        let src = Source {
            root: d.path(),
            root_fd: &root_fd,
            policy: &policy,
            scope: Scope::default(),
            rate: None,
        };
        enrich(&src, &LinkCache::default(), &mut items, &Progress::hidden());
        let entry = |name: &str| -> &Entry {
            items
                .iter()
                .find_map(|i| match i {
                    Item::Entry { entry, .. } if entry.path == format!("/{name}").as_bytes() => {
                        Some(entry)
                    }
                    _ => None,
                })
                .expect("entry")
        };
        assert_eq!(
            entry("gone").error.as_deref(),
            Some("vanished during the scan")
        );
        assert_eq!(
            entry("grown").error.as_deref(),
            Some("modified while being hashed")
        );
        assert!(
            entry("swapped")
                .error
                .as_deref()
                .is_some_and(|e| e.contains("symlink")),
            "{:?}",
            entry("swapped").error
        );
        assert!(entry("steady").error.is_none() && entry("steady").sha256.is_some());
    }
}
