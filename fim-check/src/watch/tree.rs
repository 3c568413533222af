//! The policy applied to single paths and directory trees, the way the
//! walk applies it: which directories to watch and what one path looks
//! like now.

use super::source::join;
use crate::entry::{is_within, Entry};
use crate::hash::hash_entry;
use crate::policy::{Decision, Inherit, Policy};
use crate::walk::{read_links_and_xattrs, Scope};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What the watcher keeps per watched directory: what its children
/// inherit and the device it is on (for `one_file_system`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirInfo {
    pub inherit: Inherit,
    pub dev: u64,
}

/// Read-only context of the policy walk.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub root: &'a Path,
    pub root_fd: &'a OwnedFd,
    pub policy: &'a Policy,
    pub scope: &'a Scope,
}

/// The policy's verdict for one object, with `--path` limits applied.
#[derive(Debug, Clone, Copy)]
pub struct Verdict {
    pub decision: Decision,
    /// Index of the recording rule (in scope), if any.
    pub record: Option<usize>,
    /// Whether the walk would descend (and the watcher watch it).
    pub descend: bool,
}

impl Ctx<'_> {
    /// The verdict for `path` below a directory `parent` (`None` for `/`);
    /// `dev` is the object's device.
    pub fn verdict(&self, path: &[u8], is_dir: bool, parent: Option<DirInfo>, dev: u64) -> Verdict {
        let inherit = parent.map_or(Inherit::default(), |p| p.inherit);
        let d = self.policy.decide(path, is_dir, inherit);
        let in_scope = self.scope.contains(path);
        let leads_to = self
            .scope
            .limits
            .iter()
            .any(|l| is_within(l, path) && l.as_slice() != path);
        let mut descend = is_dir && d.descend && (in_scope || leads_to);
        if descend && self.policy.one_file_system {
            if let Some(p) = parent {
                if p.dev != dev && !self.policy.is_rule_base(path) {
                    descend = false;
                }
            }
        }
        Verdict {
            decision: d,
            record: d.record.filter(|_| in_scope),
            descend,
        }
    }

    /// The object at `path` as the policy records it now (`None` when the
    /// policy does not record it), hashed if the rule wants content.
    pub fn examine(
        &self,
        path: &[u8],
        md: &std::fs::Metadata,
        record: usize,
        buf: &mut [u8],
    ) -> Option<Entry> {
        let rule = self.policy.rules.get(record)?;
        let mut e = crate::walk::entry_from(path.to_vec(), md, rule.attrs, rule.recursive)?;
        read_links_and_xattrs(self.root, &mut e);
        if e.wants_hash() && e.error.as_deref() != Some(crate::walk::VANISHED) {
            hash_entry(self.root_fd, &mut e, md.dev(), buf, None);
        }
        Some(e)
    }

    /// Walks the directory tree from `start` (a directory below `parent`)
    /// the way the scan does: `on_dir` is called for every directory to
    /// watch *before* it is listed (so nothing created afterwards is
    /// missed), `on_item` for every object the policy records.
    pub fn walk_dirs(
        &self,
        start: &[u8],
        parent: Option<DirInfo>,
        on_dir: &mut dyn FnMut(&[u8], DirInfo),
        on_item: &mut dyn FnMut(&[u8]),
    ) {
        let mut stack: Vec<(Vec<u8>, Option<DirInfo>)> = vec![(start.to_vec(), parent)];
        while let Some((dir, parent)) = stack.pop() {
            let Ok(md) = crate::hash::stat_beneath(self.root_fd, &dir) else {
                continue;
            };
            if !md.is_dir() {
                // Swapped for a file or symlink since it was listed.
                if self.verdict(&dir, false, parent, md.dev()).record.is_some() {
                    on_item(&dir);
                }
                continue;
            }
            let v = self.verdict(&dir, true, parent, md.dev());
            if v.record.is_some() {
                on_item(&dir);
            }
            if !v.descend {
                continue;
            }
            let info = DirInfo {
                inherit: v.decision.inherit,
                dev: md.dev(),
            };
            on_dir(&dir, info);
            // Listed through a descriptor opened beneath the root without
            // following any symlink (not by path).
            let Ok(f) = crate::hash::open_beneath(self.root_fd, &dir) else {
                continue;
            };
            let Ok(mut rd) = nix::dir::Dir::from_fd(OwnedFd::from(f)) else {
                continue;
            };
            for ent in rd.iter().flatten() {
                let name = ent.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                let child = join(&dir, name);
                let is_dir = match ent.file_type() {
                    Some(t) => t == nix::dir::Type::Directory,
                    None => {
                        crate::hash::stat_beneath(self.root_fd, &child).is_ok_and(|m| m.is_dir())
                    }
                };
                if is_dir {
                    stack.push((child, Some(info)));
                } else {
                    let d = self.policy.decide(&child, false, info.inherit);
                    if d.record.is_some() && self.scope.contains(&child) {
                        on_item(&child);
                    }
                }
            }
        }
    }
}
