//! Comparing a recorded entry with the current one, attribute by attribute.

use crate::attrs::Attr;
use crate::entry::{display_path, Entry, FileType, Timestamp};
use crate::policy::hex;
use serde::Serialize;
use serde_json::{json, Value};
use std::time::{Duration, UNIX_EPOCH};

/// One changed attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttrChange {
    pub name: String,
    pub old: Value,
    pub new: Value,
}

fn change(name: &str, old: Value, new: Value) -> AttrChange {
    AttrChange {
        name: name.to_string(),
        old,
        new,
    }
}

pub fn time_value(t: Timestamp) -> Value {
    let base = if t.sec >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(t.sec.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(t.sec.unsigned_abs()))
    };
    match base.and_then(|b| b.checked_add(Duration::from_nanos(u64::from(t.nsec)))) {
        Some(st) if st >= UNIX_EPOCH => json!(humantime::format_rfc3339_nanos(st).to_string()),
        _ => json!(format!("{}.{:09}", t.sec, t.nsec)),
    }
}

fn device_value(rdev: u64) -> Value {
    json!(format!("{}:{}", libc::major(rdev), libc::minor(rdev)))
}

/// An xattr value for humans: text when it is text (SELinux labels carry a
/// trailing NUL), `hex:` otherwise (capabilities, ACLs).
pub fn xattr_value(v: &[u8]) -> Value {
    let trimmed = v.strip_suffix(&[0]).unwrap_or(v);
    match std::str::from_utf8(trimmed) {
        Ok(s) if !s.chars().any(char::is_control) => json!(s),
        _ => json!(format!("hex:{}", hex(v))),
    }
}

/// The value of one attribute of `e`, as reported.
pub fn attr_value(e: &Entry, a: Attr) -> Value {
    match a {
        Attr::Perm => json!(format!("{:04o}", e.perm)),
        Attr::Uid => json!(e.uid),
        Attr::Gid => json!(e.gid),
        Attr::Size => json!(e.size),
        Attr::Mtime => time_value(e.mtime),
        Attr::Ctime => time_value(e.ctime),
        Attr::Inode => json!(e.inode),
        Attr::Links => json!(e.links),
        Attr::LinkTarget => json!(display_path(&e.link_target)),
        Attr::Sha256 => e.sha256.map_or(Value::Null, |d| json!(hex(&d))),
        Attr::Device => device_value(e.rdev),
        Attr::Xattrs => Value::Object(
            e.xattrs
                .iter()
                .map(|(k, v)| (display_path(k), xattr_value(v)))
                .collect(),
        ),
        Attr::Growing => Value::Null,
    }
}

/// Whether attribute `a` is equal in both entries.
fn same(old: &Entry, new: &Entry, a: Attr) -> bool {
    match a {
        Attr::Perm => old.perm == new.perm,
        Attr::Uid => old.uid == new.uid,
        Attr::Gid => old.gid == new.gid,
        Attr::Size => old.size == new.size,
        Attr::Mtime => old.mtime == new.mtime,
        Attr::Ctime => old.ctime == new.ctime,
        Attr::Inode => old.inode == new.inode,
        Attr::Links => old.links == new.links,
        Attr::LinkTarget => old.link_target == new.link_target,
        Attr::Sha256 => old.sha256 == new.sha256,
        Attr::Xattrs => old.xattrs == new.xattrs,
        Attr::Device => old.rdev == new.rdev,
        Attr::Growing => true,
    }
}

/// Whether attribute `a` applies to an object of type `t`.
pub fn applies(a: Attr, t: FileType) -> bool {
    match a {
        Attr::Sha256 | Attr::Growing => t == FileType::Regular,
        Attr::LinkTarget => t == FileType::Symlink,
        Attr::Device => t.is_device(),
        _ => true,
    }
}

/// The changed attributes of `new` against `old`. `prefix_hash(len)` hashes
/// the first `len` bytes of the current file (only called for growing
/// files that grew).
pub fn diff(
    old: &Entry,
    new: &Entry,
    prefix_hash: &mut dyn FnMut(u64) -> Result<[u8; 32], String>,
) -> Result<Vec<AttrChange>, String> {
    if old.ftype != new.ftype {
        return Ok(vec![change(
            "type",
            json!(old.ftype.name()),
            json!(new.ftype.name()),
        )]);
    }
    let t = old.ftype;
    let attrs = old.attrs;
    // A directory's size, times and link count follow its children; for
    // recursive rules the children are reported themselves.
    let dir_noise = t == FileType::Directory && old.recursive;
    // A growing file that only had data appended: accept size/time changes.
    let mut appended = false;
    if attrs.has(Attr::Growing) && t == FileType::Regular && new.size > old.size {
        if let (Some(old_digest), Some(_)) = (old.sha256, new.sha256) {
            appended = prefix_hash(old.size)? == old_digest;
        }
    }
    let mut out = Vec::new();
    for a in attrs.iter().filter(|a| applies(*a, t)) {
        let skip = match a {
            Attr::Size | Attr::Mtime | Attr::Ctime => dir_noise || appended,
            Attr::Links => dir_noise,
            Attr::Sha256 => appended || new.sha256.is_none(),
            Attr::Growing => true,
            _ => false,
        };
        // Raw comparison first: report values are only built for changes.
        if skip || same(old, new, a) {
            continue;
        }
        if a == Attr::Xattrs {
            xattr_changes(old, new, &mut out);
            continue;
        }
        out.push(change(a.name(), attr_value(old, a), attr_value(new, a)));
    }
    Ok(out)
}

/// One change per added, removed or modified extended attribute, named
/// `xattrs.<name>` (e.g. `xattrs.security.capability`).
fn xattr_changes(old: &Entry, new: &Entry, out: &mut Vec<AttrChange>) {
    let mut names: Vec<&Vec<u8>> = old
        .xattrs
        .iter()
        .chain(&new.xattrs)
        .map(|(k, _)| k)
        .collect();
    names.sort();
    names.dedup();
    let get = |e: &Entry, k: &[u8]| {
        e.xattrs
            .iter()
            .find(|(n, _)| n.as_slice() == k)
            .map(|(_, v)| xattr_value(v))
    };
    for k in names {
        let (o, n) = (get(old, k), get(new, k));
        if o != n {
            out.push(change(
                &format!("xattrs.{}", display_path(k)),
                o.unwrap_or(Value::Null),
                n.unwrap_or(Value::Null),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::builtin_group;

    fn file(size: u64, digest: u8) -> Entry {
        let mut e = Entry::new(
            b"/f".to_vec(),
            FileType::Regular,
            builtin_group("content").expect("g"),
        );
        e.size = size;
        e.perm = 0o644;
        e.sha256 = Some([digest; 32]);
        e.mtime = Timestamp { sec: 100, nsec: 0 };
        e
    }

    fn never(_: u64) -> Result<[u8; 32], String> {
        Err("not expected".into())
    }

    #[test]
    fn reports_each_changed_attribute() {
        let old = file(10, 1);
        let mut new = file(11, 2);
        new.perm = 0o4755;
        new.ctime = Timestamp { sec: 5, nsec: 7 };
        new.xattrs = vec![(b"security.capability".to_vec(), vec![1, 2])];
        let names: Vec<String> = diff(&old, &new, &mut never)
            .expect("diff")
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "perm",
                "size",
                "ctime",
                "sha256",
                "xattrs.security.capability"
            ]
        );
        let c = diff(&old, &new, &mut never).expect("diff");
        assert_eq!(c[0].old, json!("0644"));
        assert_eq!(c[0].new, json!("4755"));
        assert_eq!(c[4].new, json!("hex:0102"));
        assert_eq!(c[2].new, json!("1970-01-01T00:00:05.000000007Z"));
    }

    #[test]
    fn type_change_is_reported_alone() {
        let old = file(1, 1);
        let mut new = old.clone();
        new.ftype = FileType::Symlink;
        let c = diff(&old, &new, &mut never).expect("diff");
        assert_eq!(c, vec![change("type", json!("file"), json!("symlink"))]);
    }

    #[test]
    fn growing_files_may_only_append() {
        let mut old = file(10, 1);
        old.attrs = builtin_group("log").expect("g");
        let mut new = old.clone();
        new.size = 20;
        new.sha256 = Some([9; 32]);
        new.mtime = Timestamp { sec: 200, nsec: 0 };
        assert!(diff(&old, &new, &mut |n| {
            assert_eq!(n, 10);
            Ok([1; 32])
        })
        .expect("diff")
        .is_empty());
        let names: Vec<String> = diff(&old, &new, &mut |_| Ok([8; 32]))
            .expect("diff")
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["size", "sha256"], "prefix rewritten");
        new.size = 5;
        assert!(
            !diff(&old, &new, &mut never).expect("diff").is_empty(),
            "shrinking is a change"
        );
    }

    #[test]
    fn directory_churn_is_quiet_for_recursive_rules() {
        let mut old = Entry::new(
            b"/d".to_vec(),
            FileType::Directory,
            builtin_group("content").expect("g"),
        );
        old.recursive = true;
        let mut new = old.clone();
        new.mtime = Timestamp { sec: 9, nsec: 0 };
        new.links = 4;
        assert!(diff(&old, &new, &mut never).expect("diff").is_empty());
        old.recursive = false;
        assert_eq!(diff(&old, &new, &mut never).expect("diff").len(), 2);
    }
}
