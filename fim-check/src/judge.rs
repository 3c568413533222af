//! One path at a time: examine a path on the host exactly as the walk and
//! the hashing would record it (`examine`), and judge it against its
//! baseline entry with the policy's attributes (`judge`, `judge_entry`).
//!
//! `check`/`update` call `judge_entry` for every path both the walk and the
//! baseline have (through `merge`); a watcher calls `examine` then `judge`
//! for each path an event names.

use crate::compare::diff;
use crate::entry::{is_within, Entry};
use crate::hash::{hash_entry, hash_prefix, stat_beneath, BUF_SIZE};
use crate::policy::{ancestors, Inherit, Policy};
use crate::report::{Change, EntryError, Kind};
use crate::scan::Source;
use crate::walk::{entry_from, read_links_and_xattrs, Scope};
use std::os::unix::fs::MetadataExt;

/// What is at a path now, as the policy and the walk see it.
#[derive(Debug)]
pub enum Examined {
    /// Outside the `--path` scope: neither recorded nor compared.
    OutOfScope,
    /// In scope, but the walk would not record it (no rule, excluded, or
    /// below a directory it does not descend into).
    NotSelected,
    /// Nothing there (or a parent is not a directory / is a symlink).
    Missing,
    /// It could not be examined (e.g. permission denied).
    Error(String),
    /// The entry a walk would record now (`entry.error` may be set when
    /// its content or links could not be read).
    Entry(Entry),
}

/// The rule that records `path` and whether its directory would be
/// descended into, found like the walk does: deciding every ancestor from
/// `/` down, inheriting recursive rules, stopping where the walk would not
/// descend. `None` when the walk would not record `path`. It does not see
/// mount points: with `one_file_system` the walk also stops at another
/// file system, so a watcher should only watch directories the walk
/// entered.
pub fn select(policy: &Policy, scope: &Scope, path: &[u8], is_dir: bool) -> Option<usize> {
    let mut inherit = Inherit::default();
    for a in ancestors(path) {
        let d = policy.decide(a, true, inherit);
        if !(d.descend && (scope.contains(a) || scope.leads_to(a))) {
            return None;
        }
        inherit = d.inherit;
    }
    let d = policy.decide(path, is_dir, inherit);
    d.record.filter(|_| scope.contains(path))
}

/// Examines one path (absolute inside the host root, normalised): lstat
/// beneath the root without following symlinks, the policy's rule, and
/// for regular files a fresh SHA-256 (so an edit keeping size and mtime is
/// caught).
pub fn examine(src: &Source<'_>, path: &[u8]) -> Examined {
    if !src.scope.contains(path) {
        return Examined::OutOfScope;
    }
    let md = match stat_beneath(src.root_fd, path) {
        Ok(md) => md,
        Err(e) => {
            return match e.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EXDEV) => Examined::Missing,
                _ => Examined::Error(e.to_string()),
            }
        }
    };
    let Some(rule) = select(src.policy, &src.scope, path, md.is_dir()) else {
        return Examined::NotSelected;
    };
    let Some(rule) = src.policy.rules.get(rule) else {
        return Examined::NotSelected;
    };
    let Some(mut entry) = entry_from(path.to_vec(), &md, rule.attrs, rule.recursive) else {
        return Examined::NotSelected;
    };
    read_links_and_xattrs(src.root, &mut entry);
    if entry.wants_hash() && entry.error.as_deref() != Some(crate::walk::VANISHED) {
        let mut buf = vec![0u8; BUF_SIZE];
        hash_entry(src.root_fd, &mut entry, md.dev(), &mut buf, src.rate);
    }
    Examined::Entry(entry)
}

/// Compares the current entry with the recorded one (both for the same
/// path): the change to report, if any, and an error when a grown
/// `growing` file's old prefix could not be re-read. `prefix_hash` hashes
/// the first `len` bytes of the current file.
pub fn judge_entry(
    old: &Entry,
    new: &Entry,
    prefix_hash: crate::merge::PrefixHasher<'_>,
) -> Result<Option<Change>, EntryError> {
    match diff(old, new, &mut |len| {
        prefix_hash(&new.path, len).map_err(|e| format!("cannot re-read the grown file: {e}"))
    }) {
        Ok(attrs) if attrs.is_empty() => Ok(None),
        Ok(attrs) => Ok(Some(Change::new(
            &new.path,
            Kind::Changed,
            new.ftype.name(),
            attrs,
        ))),
        Err(msg) => Err(EntryError::new(&new.path, msg)),
    }
}

/// The outcome of judging one path.
#[derive(Debug, Default)]
pub struct Judgement {
    /// Added, removed or changed against the baseline entry.
    pub change: Option<Change>,
    /// Problems examining it (not fatal; reported like `check` does).
    pub errors: Vec<EntryError>,
    /// What `update` would record for this path now (`None`: no entry).
    pub accepted: Option<Entry>,
}

/// Judges what `examine` found at `path` against the baseline's entry for
/// it (`old`, if the baseline has one), with the same rules as `check`.
pub fn judge(src: &Source<'_>, path: &[u8], old: Option<&Entry>, now: Examined) -> Judgement {
    let mut j = Judgement::default();
    match (old, now) {
        (old, Examined::OutOfScope) => j.accepted = old.cloned(),
        (Some(old), Examined::NotSelected | Examined::Missing) => {
            j.change = Some(Change::new(
                path,
                Kind::Removed,
                old.ftype.name(),
                Vec::new(),
            ));
        }
        (None, Examined::NotSelected | Examined::Missing) => {}
        (old, Examined::Error(msg)) => {
            j.errors.push(EntryError::new(path, msg));
            j.accepted = old.cloned();
        }
        (None, Examined::Entry(new)) => {
            if let Some(m) = &new.error {
                j.errors.push(EntryError::new(&new.path, m.clone()));
            }
            j.change = Some(Change::new(
                &new.path,
                Kind::Added,
                new.ftype.name(),
                Vec::new(),
            ));
            j.accepted = Some(new);
        }
        (Some(old), Examined::Entry(new)) => {
            if let Some(m) = &new.error {
                j.errors.push(EntryError::new(&new.path, m.clone()));
            }
            let root_fd = src.root_fd;
            match judge_entry(old, &new, &mut |p, len| hash_prefix(root_fd, p, len)) {
                Ok(c) => j.change = c,
                Err(e) => j.errors.push(e),
            }
            // What could not be read is not accepted: keep the record.
            j.accepted = Some(if new.error.is_some() {
                old.clone()
            } else {
                new
            });
        }
    }
    j
}

/// Whether `path` lies in a subtree the policy may record at all (a cheap
/// pre-filter for event sources: `select` is the exact answer).
pub fn may_select(policy: &Policy, path: &[u8]) -> bool {
    policy
        .rules
        .iter()
        .flat_map(|r| &r.matcher.bases)
        .any(|b| is_within(path, b) || is_within(b, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Kind;
    use std::fs::File;
    use std::os::fd::OwnedFd;

    const POLICY: &str = r#"
        [[rule]]
        path = "/etc"
        attributes = "content"
        [[rule]]
        path = "/etc/ssh"
        attributes = "perms"
        recursive = false
        [[exclude]]
        path = "/etc/skip"
    "#;

    fn examined_entry(src: &Source<'_>, p: &str) -> Entry {
        match examine(src, p.as_bytes()) {
            Examined::Entry(e) => e,
            other => panic!("{p}: {other:?}"),
        }
    }

    #[test]
    fn select_follows_the_walk() {
        let p = Policy::parse(POLICY, "t").expect("policy");
        let all = Scope::default();
        assert!(select(&p, &all, b"/etc/passwd", false).is_some());
        assert!(select(&p, &all, b"/etc", true).is_some());
        assert_eq!(select(&p, &all, b"/etc/ssh", true), Some(1));
        assert_eq!(select(&p, &all, b"/etc/ssh/sshd_config", false), Some(0));
        assert!(select(&p, &all, b"/etc/skip", true).is_none());
        assert!(select(&p, &all, b"/etc/skip/x", false).is_none());
        assert!(select(&p, &all, b"/usr/bin/x", false).is_none());
        let narrow = Scope {
            limits: vec![b"/etc/ssh".to_vec()],
        };
        assert!(select(&p, &narrow, b"/etc/passwd", false).is_none());
        assert!(select(&p, &narrow, b"/etc/ssh/k", false).is_some());
    }

    #[test]
    fn examine_and_judge_every_kind() {
        let d = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(d.path().join("etc/skip")).expect("mkdir");
        std::fs::write(d.path().join("etc/passwd"), "root").expect("write");
        std::fs::write(d.path().join("etc/skip/x"), "x").expect("write");
        std::os::unix::fs::symlink("/etc", d.path().join("etc/link")).expect("symlink");
        let policy = Policy::parse(POLICY, "t").expect("policy");
        let root_fd = OwnedFd::from(File::open(d.path()).expect("open"));
        let src = Source {
            root: d.path(),
            root_fd: &root_fd,
            policy: &policy,
            scope: Scope::default(),
            rate: None,
        };
        let old = examined_entry(&src, "/etc/passwd");
        assert!(old.sha256.is_some());
        // Unchanged.
        let j = judge(
            &src,
            b"/etc/passwd",
            Some(&old),
            examine(&src, b"/etc/passwd"),
        );
        assert!(j.change.is_none() && j.errors.is_empty());
        // Same size, same mtime, other content: the hash catches it.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(d.path().join("etc/passwd"))
            .expect("open");
        std::os::unix::fs::FileExt::write_at(&f, b"ROOT", 0).expect("write");
        f.set_modified(
            std::time::SystemTime::UNIX_EPOCH
                + std::time::Duration::new(old.mtime.sec as u64, old.mtime.nsec),
        )
        .expect("mtime");
        let j = judge(
            &src,
            b"/etc/passwd",
            Some(&old),
            examine(&src, b"/etc/passwd"),
        );
        let c = j.change.expect("changed");
        assert_eq!(c.kind, Kind::Changed);
        assert!(c.attributes.iter().any(|a| a.name == "sha256"), "{c:?}");
        // Added, removed, excluded, symlink recorded not followed.
        let j = judge(&src, b"/etc/new", None, examine(&src, b"/etc/new"));
        assert!(j.change.is_none());
        std::fs::write(d.path().join("etc/new"), "n").expect("write");
        let j = judge(&src, b"/etc/new", None, examine(&src, b"/etc/new"));
        assert_eq!(j.change.expect("added").kind, Kind::Added);
        std::fs::remove_file(d.path().join("etc/passwd")).expect("rm");
        let j = judge(
            &src,
            b"/etc/passwd",
            Some(&old),
            examine(&src, b"/etc/passwd"),
        );
        assert_eq!(j.change.expect("removed").kind, Kind::Removed);
        assert!(matches!(
            examine(&src, b"/etc/skip/x"),
            Examined::NotSelected
        ));
        let link = examined_entry(&src, "/etc/link");
        assert_eq!(link.ftype, crate::entry::FileType::Symlink);
        assert!(matches!(
            examine(&src, b"/etc/link/passwd"),
            Examined::Missing
        ));
    }
}
