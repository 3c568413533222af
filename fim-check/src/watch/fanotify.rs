//! The fanotify backend: one mark per file system (`FAN_MARK_FILESYSTEM`)
//! reporting the directory's file handle and the entry's name
//! (`FAN_REPORT_DFID_NAME`, Linux 5.9+). Scales to whole file systems
//! (no per-directory watches, nothing to exhaust) but needs CAP_SYS_ADMIN
//! for the mark and CAP_DAC_READ_SEARCH to turn handles back into paths
//! (`open_by_handle_at`). Events outside the directories the watcher walks
//! are dropped by the watcher.

use super::source::{EventSource, Item, WatchError, What};
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const MASK: u64 = libc::FAN_CREATE
    | libc::FAN_DELETE
    | libc::FAN_MOVED_FROM
    | libc::FAN_MOVED_TO
    | libc::FAN_MODIFY
    | libc::FAN_CLOSE_WRITE
    | libc::FAN_ATTRIB
    | libc::FAN_DELETE_SELF
    | libc::FAN_MOVE_SELF
    | libc::FAN_ONDIR;

type Fsid = [i32; 2];

#[derive(Debug)]
pub struct FanotifySource {
    fd: OwnedFd,
    /// The host root as this process sees it (`/` or `/host`).
    root_prefix: Vec<u8>,
    /// One marked file system per fsid, with a directory on it to resolve
    /// handles against.
    marks: HashMap<Fsid, OwnedFd>,
    dirs: HashSet<Vec<u8>>,
    buf: Vec<u8>,
    /// Directory handle (fsid + handle bytes) → path: most events land in
    /// a few directories, and resolving a handle costs three syscalls.
    /// Cleared whenever a directory is renamed or removed anywhere (a
    /// rename of any ancestor makes cached paths stale).
    names: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

/// Entries kept in the handle → path cache before it is cleared.
const NAME_CACHE: usize = 4096;

fn errno() -> io::Error {
    io::Error::last_os_error()
}

fn fsid_of(fd: BorrowedFd<'_>) -> io::Result<Fsid> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: fd is open; st is written by the kernel on success.
    let r = unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) };
    if r != 0 {
        return Err(errno());
    }
    // SAFETY: fstatfs succeeded, so st is initialised.
    let st = unsafe { st.assume_init() };
    // fsid_t is two ints; libc keeps the field private, so copy its bytes.
    // SAFETY: fsid_t is plain old data of 8 bytes.
    let raw: [i32; 2] = unsafe { std::mem::transmute_copy(&st.f_fsid) };
    Ok(raw)
}

fn readlink_fd(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let p = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(std::fs::read_link(p)?.into_os_string().into_encoded_bytes())
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: c is a valid C string; the returned fd is owned below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: fd was just opened and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl FanotifySource {
    /// Initialises fanotify, or says why it cannot be used here (the
    /// `--backend auto` decision): EPERM = no CAP_SYS_ADMIN, EINVAL = the
    /// kernel predates FAN_REPORT_DFID_NAME (5.9), and a handle of the host
    /// root that cannot be opened = no CAP_DAC_READ_SEARCH.
    pub fn new(root_fd: &OwnedFd) -> Result<FanotifySource, String> {
        let flags = libc::FAN_CLASS_NOTIF
            | libc::FAN_CLOEXEC
            | libc::FAN_NONBLOCK
            | libc::FAN_REPORT_DFID_NAME;
        // SAFETY: plain syscall; the fd is owned below.
        let fd = unsafe {
            libc::fanotify_init(flags, (libc::O_RDONLY | libc::O_LARGEFILE) as libc::c_uint)
        };
        if fd < 0 {
            let e = errno();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) => "fanotify needs CAP_SYS_ADMIN".to_string(),
                Some(libc::EINVAL) => {
                    "this kernel has no FAN_REPORT_DFID_NAME (fanotify needs Linux 5.9+)"
                        .to_string()
                }
                Some(libc::ENOSYS) => "this kernel has no fanotify".to_string(),
                _ => format!("fanotify_init failed: {e}"),
            });
        }
        // SAFETY: fd was just created.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let root_prefix = readlink_fd(root_fd.as_fd())
            .map_err(|e| format!("cannot resolve the host root: {e}"))?;
        // Handles must be resolvable: try the host root's own.
        let (handle, _) = name_to_handle(root_fd.as_fd())
            .map_err(|e| format!("file handles unsupported on the host root: {e}"))?;
        open_handle(root_fd.as_fd(), &handle).map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) => {
                "resolving fanotify file handles needs CAP_DAC_READ_SEARCH".to_string()
            }
            _ => format!("cannot open a file handle: {e}"),
        })?;
        Ok(FanotifySource {
            fd,
            root_prefix,
            marks: HashMap::new(),
            dirs: HashSet::new(),
            buf: vec![0u8; 64 * 1024],
            names: HashMap::new(),
        })
    }

    /// The host path of a directory resolved from a handle, if it lies
    /// inside the host root.
    fn host_path(&self, real: &[u8]) -> Option<Vec<u8>> {
        if self.root_prefix == b"/" {
            return Some(real.to_vec());
        }
        let rest = real.strip_prefix(self.root_prefix.as_slice())?;
        match rest {
            [] => Some(b"/".to_vec()),
            [b'/', ..] => Some(rest.to_vec()),
            _ => None,
        }
    }
}

/// The file handle (handle_bytes, handle_type, bytes) of an open object.
fn name_to_handle(fd: BorrowedFd<'_>) -> io::Result<(Vec<u8>, i32)> {
    const MAX: usize = 128;
    let mut raw = vec![0u8; 8 + MAX];
    raw[..4].copy_from_slice(&(MAX as u32).to_ne_bytes());
    let mut mount_id: libc::c_int = 0;
    let empty = c"";
    // SAFETY: raw holds a file_handle header with room for MAX bytes.
    let r = unsafe {
        libc::name_to_handle_at(
            fd.as_raw_fd(),
            empty.as_ptr(),
            raw.as_mut_ptr().cast::<libc::file_handle>(),
            &mut mount_id,
            libc::AT_EMPTY_PATH,
        )
    };
    if r != 0 {
        return Err(errno());
    }
    let n = u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
    raw.truncate(8 + n);
    Ok((raw, mount_id))
}

/// Opens a `struct file_handle` (header + bytes) with O_PATH.
fn open_handle(mount: BorrowedFd<'_>, handle: &[u8]) -> io::Result<OwnedFd> {
    // Copy into an aligned buffer: the kernel reads the header as ints.
    let mut aligned = vec![0u32; handle.len().div_ceil(4)];
    // SAFETY: aligned has at least handle.len() bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            handle.as_ptr(),
            aligned.as_mut_ptr().cast::<u8>(),
            handle.len(),
        );
    }
    // SAFETY: aligned holds a complete file_handle.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            aligned.as_mut_ptr().cast::<libc::file_handle>(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: fd was just opened.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn what(mask: u64) -> What {
    if mask
        & (libc::FAN_DELETE | libc::FAN_MOVED_FROM | libc::FAN_DELETE_SELF | libc::FAN_MOVE_SELF)
        != 0
    {
        What::Gone
    } else if mask & (libc::FAN_CREATE | libc::FAN_MOVED_TO) != 0 {
        What::Appeared
    } else if mask & libc::FAN_MODIFY != 0 && mask & libc::FAN_CLOSE_WRITE == 0 {
        What::Writing
    } else {
        What::Changed
    }
}

impl EventSource for FanotifySource {
    fn name(&self) -> &'static str {
        "fanotify"
    }

    fn watch_dir(&mut self, path: &[u8], full: &Path) -> Result<(), WatchError> {
        let dir = match open_dir(full) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(WatchError::Vanished),
            Err(e) => return Err(WatchError::Other(e.to_string())),
        };
        let fsid = fsid_of(dir.as_fd()).map_err(|e| WatchError::Other(format!("statfs: {e}")))?;
        if let std::collections::hash_map::Entry::Vacant(v) = self.marks.entry(fsid) {
            // SAFETY: both fds are open; a NULL path marks the fd's object.
            let r = unsafe {
                libc::fanotify_mark(
                    self.fd.as_raw_fd(),
                    libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
                    MASK,
                    dir.as_raw_fd(),
                    std::ptr::null(),
                )
            };
            if r != 0 {
                let e = errno();
                return Err(match e.raw_os_error() {
                    Some(libc::ENOSPC) => WatchError::Limit("fanotify mark limit reached".into()),
                    _ => WatchError::Other(format!("fanotify_mark: {e}")),
                });
            }
            v.insert(dir);
        }
        self.dirs.insert(path.to_vec());
        Ok(())
    }

    fn unwatch_dir(&mut self, path: &[u8]) {
        // The file-system mark stays; the watcher drops events for
        // directories it no longer walks.
        self.dirs.remove(path);
    }

    fn watches(&self) -> usize {
        self.marks.len()
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }

    fn read(&mut self, out: &mut Vec<Item>) -> io::Result<()> {
        loop {
            // SAFETY: buf is writable for its length.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                )
            };
            if n < 0 {
                let e = errno();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) => Ok(()),
                    Some(libc::EINTR) => continue,
                    _ => Err(e),
                };
            }
            let n = usize::try_from(n).unwrap_or(0);
            if n == 0 {
                return Ok(());
            }
            let mut off = 0;
            let meta_len = std::mem::size_of::<libc::fanotify_event_metadata>();
            while off + meta_len <= n {
                // SAFETY: at least meta_len bytes remain; read_unaligned
                // copes with any alignment.
                let meta: libc::fanotify_event_metadata =
                    unsafe { std::ptr::read_unaligned(self.buf[off..].as_ptr().cast()) };
                let len = meta.event_len as usize;
                if len < meta_len || off + len > n {
                    break;
                }
                if meta.fd >= 0 {
                    // SAFETY: the kernel gave us this fd (not in FID mode,
                    // but close it if it ever comes).
                    drop(unsafe { OwnedFd::from_raw_fd(meta.fd) });
                }
                if meta.mask & libc::FAN_Q_OVERFLOW != 0 {
                    out.push(Item::Overflow);
                } else {
                    let buf = std::mem::take(&mut self.buf);
                    let item = buf
                        .get(off + meta.metadata_len as usize..off + len)
                        .and_then(|info| self.parse(info, meta.mask));
                    self.buf = buf;
                    out.extend(item);
                }
                let renamed = libc::FAN_MOVED_FROM
                    | libc::FAN_MOVED_TO
                    | libc::FAN_DELETE
                    | libc::FAN_DELETE_SELF
                    | libc::FAN_MOVE_SELF;
                if meta.mask & libc::FAN_ONDIR != 0 && meta.mask & renamed != 0 {
                    self.names.clear();
                }
                off += len;
            }
        }
    }
}

impl FanotifySource {
    /// One event's info records → an item about a host path.
    fn parse(&mut self, mut info: &[u8], mask: u64) -> Option<Item> {
        while info.len() >= 4 {
            let kind = info[0];
            let len = u16::from_ne_bytes([info[2], info[3]]) as usize;
            if len < 4 || len > info.len() {
                return None;
            }
            let rec = &info[..len];
            info = &info[len..];
            let named = kind == libc::FAN_EVENT_INFO_TYPE_DFID_NAME;
            if !(named
                || kind == libc::FAN_EVENT_INFO_TYPE_DFID
                || kind == libc::FAN_EVENT_INFO_TYPE_FID)
            {
                continue;
            }
            // header(4) fsid(8) file_handle{handle_bytes u32, type i32, bytes} [name\0]
            if rec.len() < 20 {
                return None;
            }
            let fsid = [
                i32::from_ne_bytes(rec[4..8].try_into().ok()?),
                i32::from_ne_bytes(rec[8..12].try_into().ok()?),
            ];
            let hb = u32::from_ne_bytes(rec[12..16].try_into().ok()?) as usize;
            let handle = rec.get(12..20 + hb)?;
            let name: &[u8] = if named {
                let rest = rec.get(20 + hb..)?;
                let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                &rest[..end]
            } else {
                b""
            };
            let key = rec.get(4..20 + hb)?;
            let dir = match self.names.get(key) {
                Some(known) => known.clone()?,
                None => {
                    let mount = self.marks.get(&fsid)?;
                    let resolved = open_handle(mount.as_fd(), handle)
                        .ok()
                        .and_then(|fd| readlink_fd(fd.as_fd()).ok())
                        .and_then(|real| self.host_path(&real));
                    if self.names.len() >= NAME_CACHE {
                        self.names.clear();
                    }
                    self.names.insert(key.to_vec(), resolved.clone());
                    resolved?
                }
            };
            let is_dir = mask & libc::FAN_ONDIR != 0;
            let path = if name.is_empty() || name == b"." {
                dir
            } else {
                super::source::join(&dir, name)
            };
            return Some(Item::Path {
                path,
                what: what(mask),
                is_dir,
            });
        }
        None
    }
}
