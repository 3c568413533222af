//! One recorded file-system object, its type, and the path order shared by
//! the walker, the baseline and the comparison.

use crate::attrs::{Attr, AttrSet};
use std::cmp::Ordering;

/// File type, always recorded. The discriminant is part of the baseline
/// format: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FileType {
    Regular = 1,
    Directory = 2,
    Symlink = 3,
    BlockDevice = 4,
    CharDevice = 5,
    Fifo = 6,
    Socket = 7,
}

impl FileType {
    pub fn from_code(c: u8) -> Option<FileType> {
        use FileType::*;
        [
            Regular,
            Directory,
            Symlink,
            BlockDevice,
            CharDevice,
            Fifo,
            Socket,
        ]
        .into_iter()
        .find(|t| *t as u8 == c)
    }

    pub fn from_mode(mode: u32) -> Option<FileType> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => FileType::Regular,
            libc::S_IFDIR => FileType::Directory,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFBLK => FileType::BlockDevice,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            FileType::Regular => "file",
            FileType::Directory => "directory",
            FileType::Symlink => "symlink",
            FileType::BlockDevice => "block_device",
            FileType::CharDevice => "char_device",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
        }
    }

    pub fn is_device(self) -> bool {
        matches!(self, FileType::BlockDevice | FileType::CharDevice)
    }
}

/// Seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

/// One object as recorded. Only the fields named in `attrs` are meaningful
/// (and stored); the others stay at their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the host root, starting with `/`; raw bytes (names need
    /// not be UTF-8).
    pub path: Vec<u8>,
    pub ftype: FileType,
    pub attrs: AttrSet,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub inode: u64,
    pub links: u64,
    pub rdev: u64,
    pub link_target: Vec<u8>,
    /// `None` when the content could not be read (see `error`).
    pub sha256: Option<[u8; 32]>,
    /// Sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Why part of the entry could not be recorded (not stored in baselines
    /// as data: an entry with an error is stored without its digest).
    pub error: Option<String>,
    /// The rule's recursion flag (directories of recursive rules do not
    /// report size/time/link changes caused by their children).
    pub recursive: bool,
}

impl Entry {
    pub fn new(path: Vec<u8>, ftype: FileType, attrs: AttrSet) -> Entry {
        Entry {
            path,
            ftype,
            attrs,
            perm: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            inode: 0,
            links: 0,
            rdev: 0,
            link_target: Vec::new(),
            sha256: None,
            xattrs: Vec::new(),
            error: None,
            recursive: false,
        }
    }

    /// Records a problem; several are joined with `; `.
    pub fn add_error(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        self.error = Some(match self.error.take() {
            Some(prev) => format!("{prev}; {msg}"),
            None => msg,
        });
    }

    /// Whether this entry's content has to be hashed.
    pub fn wants_hash(&self) -> bool {
        self.ftype == FileType::Regular && self.attrs.has(Attr::Sha256)
    }
}

/// Order of paths: component by component, bytewise within a component —
/// the order of a depth-first walk with each directory's names sorted.
/// (`/a/b` sorts before `/a.b`, unlike a plain byte comparison.)
pub fn cmp_paths(a: &[u8], b: &[u8]) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c };
    for (x, y) in a.iter().zip(b) {
        match key(*x).cmp(&key(*y)) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    a.len().cmp(&b.len())
}

/// Whether `path` is `dir` or lies below it.
pub fn is_within(path: &[u8], dir: &[u8]) -> bool {
    if dir == b"/" {
        return true;
    }
    path.starts_with(dir) && matches!(path.get(dir.len()), None | Some(b'/'))
}

/// A path for humans and JSON: UTF-8 as is, other bytes as `\xNN`.
pub fn display_path(p: &[u8]) -> String {
    let mut out = String::with_capacity(p.len());
    for chunk in p.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_order_is_depth_first() {
        let mut v: Vec<&[u8]> = vec![b"/a.b", b"/a/b", b"/a", b"/a/b/c", b"/b", b"/a-"];
        v.sort_by(|a, b| cmp_paths(a, b));
        let want: Vec<&[u8]> = vec![b"/a", b"/a/b", b"/a/b/c", b"/a-", b"/a.b", b"/b"];
        assert_eq!(v, want);
    }

    #[test]
    fn within_respects_component_boundaries() {
        assert!(is_within(b"/etc/ssh", b"/etc"));
        assert!(is_within(b"/etc", b"/etc"));
        assert!(!is_within(b"/etcd", b"/etc"));
        assert!(is_within(b"/x", b"/"));
    }

    #[test]
    fn non_utf8_paths_are_escaped() {
        assert_eq!(display_path(b"/tmp/a\xffb"), "/tmp/a\\xffb");
        assert_eq!(display_path("/é".as_bytes()), "/é");
    }
}
