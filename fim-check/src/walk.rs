//! The walk: depth-first, names sorted, symlinks never followed (lstat
//! only), descending only where the policy may select something, never
//! leaving the host root, and (with `one_file_system`) not crossing mount
//! points except at a directory a rule names.

use crate::attrs::{Attr, AttrSet};
use crate::entry::{is_within, Entry, FileType, Timestamp};
use crate::policy::{Inherit, Policy};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One item of the walk, in path order.
#[derive(Debug)]
pub enum Item {
    /// A recorded object; `dev` is the device it lives on.
    Entry { entry: Entry, dev: u64 },
    /// The object (and, for a directory, everything below it) could not be
    /// examined.
    Error { path: Vec<u8>, message: String },
}

impl Item {
    pub fn path(&self) -> &[u8] {
        match self {
            Item::Entry { entry, .. } => &entry.path,
            Item::Error { path, .. } => path,
        }
    }
}

/// `--path` limits: only these subtrees are walked and compared.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub limits: Vec<Vec<u8>>,
}

impl Scope {
    pub fn contains(&self, path: &[u8]) -> bool {
        self.limits.is_empty() || self.limits.iter().any(|l| is_within(path, l))
    }
    /// Whether a limit lies strictly below `dir`.
    pub fn leads_to(&self, dir: &[u8]) -> bool {
        self.limits
            .iter()
            .any(|l| is_within(l, dir) && l.as_slice() != dir)
    }
}

#[derive(Debug)]
pub struct Walker<'p> {
    root: PathBuf,
    policy: &'p Policy,
    scope: Scope,
    it: walkdir::IntoIter,
    /// State of the open directory at each depth: what its children
    /// inherit and the device it is on.
    stack: Vec<(Inherit, u64)>,
}

impl<'p> Walker<'p> {
    pub fn new(root: &Path, policy: &'p Policy, scope: Scope) -> Walker<'p> {
        let it = walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter();
        Walker {
            root: root.to_path_buf(),
            policy,
            scope,
            it,
            stack: Vec::new(),
        }
    }

    fn rel(&self, p: &Path) -> Vec<u8> {
        let rel = p
            .strip_prefix(&self.root)
            .unwrap_or(p)
            .as_os_str()
            .as_bytes();
        let mut out = Vec::with_capacity(rel.len() + 1);
        out.push(b'/');
        out.extend_from_slice(rel);
        out
    }

    /// Up to `max_items` items, stopping early once `max_bytes` of regular
    /// file content is queued for hashing. Empty when the walk is over.
    pub fn next_chunk(&mut self, max_items: usize, max_bytes: u64) -> Vec<Item> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        while out.len() < max_items && bytes < max_bytes {
            let Some(next) = self.it.next() else { break };
            let dent = match next {
                Ok(d) => d,
                Err(err) => {
                    let path = err
                        .path()
                        .map(|p| self.rel(p))
                        .unwrap_or_else(|| b"/".to_vec());
                    let message = err
                        .io_error()
                        .map_or_else(|| err.to_string(), ToString::to_string);
                    out.push(Item::Error { path, message });
                    continue;
                }
            };
            if let Some(item) = self.visit(&dent) {
                if let Item::Entry { entry, .. } = &item {
                    if entry.wants_hash() {
                        bytes += entry.size;
                    }
                }
                out.push(item);
            }
        }
        out
    }

    fn visit(&mut self, dent: &walkdir::DirEntry) -> Option<Item> {
        let depth = dent.depth();
        self.stack.truncate(depth);
        let (parent, parent_dev) = match depth.checked_sub(1).map(|d| self.stack.get(d)) {
            None => (Inherit::default(), None),
            Some(Some((inherit, dev))) => (*inherit, Some(*dev)),
            // Children of a directory we did not descend into (cannot
            // happen with skip_current_dir; never index out of bounds).
            Some(None) => return None,
        };
        let path = self.rel(dent.path());
        let is_dir = dent.file_type().is_dir();
        let d = self.policy.decide(&path, is_dir, parent);
        let in_scope = self.scope.contains(&path);
        let record = d.record.filter(|_| in_scope);
        let mut descend = d.descend && (in_scope || self.scope.leads_to(&path));
        if record.is_none() && !descend {
            if is_dir {
                self.it.skip_current_dir();
            }
            return None;
        }
        let md = match dent.metadata() {
            Ok(md) => md,
            Err(err) => {
                if is_dir {
                    self.it.skip_current_dir();
                }
                return Some(Item::Error {
                    path,
                    message: lstat_error(&err),
                });
            }
        };
        if is_dir && descend && self.policy.one_file_system {
            if let Some(pdev) = parent_dev {
                if md.dev() != pdev && !self.policy.is_rule_base(&path) {
                    log::info!(
                        "not crossing into another file system at {}",
                        crate::entry::display_path(&path)
                    );
                    descend = false;
                }
            }
        }
        if is_dir {
            if descend {
                self.stack.push((d.inherit, md.dev()));
            } else {
                self.it.skip_current_dir();
            }
        }
        let rule = self.policy.rules.get(record?)?;
        let entry = entry_from(path, &md, rule.attrs, rule.recursive)?;
        Some(Item::Entry {
            entry,
            dev: md.dev(),
        })
    }
}

/// Why an lstat failed; a missing file vanished after its directory was read.
fn lstat_error(err: &walkdir::Error) -> String {
    match err.io_error() {
        Some(e) if e.kind() == std::io::ErrorKind::NotFound => VANISHED.to_string(),
        Some(e) => e.to_string(),
        None => err.to_string(),
    }
}

/// An entry with every field of the lstat result (only those in `attrs`
/// are stored and compared).
pub fn entry_from(
    path: Vec<u8>,
    md: &std::fs::Metadata,
    attrs: AttrSet,
    recursive: bool,
) -> Option<Entry> {
    let ftype = FileType::from_mode(md.mode())?;
    let mut e = Entry::new(path, ftype, attrs);
    e.recursive = recursive;
    e.perm = md.mode() & 0o7777;
    e.uid = md.uid();
    e.gid = md.gid();
    e.size = md.size();
    e.mtime = Timestamp {
        sec: md.mtime(),
        nsec: u32::try_from(md.mtime_nsec()).unwrap_or(0),
    };
    e.ctime = Timestamp {
        sec: md.ctime(),
        nsec: u32::try_from(md.ctime_nsec()).unwrap_or(0),
    };
    e.inode = md.ino();
    e.links = md.nlink();
    e.rdev = if ftype.is_device() { md.rdev() } else { 0 };
    Some(e)
}

/// The message for an object that disappeared while it was examined.
pub const VANISHED: &str = "vanished during the scan";

/// Fills what needs more than the walk's lstat: symlink targets and
/// extended attributes (both read without following links).
pub fn read_links_and_xattrs(root: &Path, e: &mut Entry) {
    let link = e.ftype == FileType::Symlink && e.attrs.has(Attr::LinkTarget);
    if !link && !e.attrs.has(Attr::Xattrs) {
        return;
    }
    let full = full_path(root, &e.path);
    if e.ftype == FileType::Symlink && e.attrs.has(Attr::LinkTarget) {
        match std::fs::read_link(&full) {
            Ok(t) => e.link_target = t.into_os_string().into_vec(),
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => e.add_error(VANISHED),
            Err(err) => e.add_error(format!("cannot read link: {err}")),
        }
    }
    if e.attrs.has(Attr::Xattrs) {
        match read_xattrs(&full) {
            Ok(x) => e.xattrs = x,
            Err(err) if err.raw_os_error() == Some(libc::ENOTSUP) => {}
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => e.add_error(VANISHED),
            Err(err) => e.add_error(format!("cannot read extended attributes: {err}")),
        }
    }
}

fn read_xattrs(p: &Path) -> std::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in xattr::list(p)? {
        // A name can disappear between list and get.
        if let Some(v) = xattr::get(p, &name)? {
            out.push((name.into_vec(), v));
        }
    }
    out.sort();
    Ok(out)
}

pub fn full_path(root: &Path, path: &[u8]) -> PathBuf {
    let rel = path.strip_prefix(b"/").unwrap_or(path);
    root.join(std::ffi::OsStr::from_bytes(rel))
}
