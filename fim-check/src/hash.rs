//! Content hashing: files are opened beneath the host root without
//! following any symlink, verified to be the object the walk saw, streamed
//! through SHA-256, and checked for modification while they were read.

use crate::entry::{Entry, Timestamp};
use crate::throttle::RateLimit;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Read size: large enough that syscalls vanish next to SHA-256, small
/// enough to stay in L2.
pub const BUF_SIZE: usize = 128 * 1024;

/// Set once `openat2` turned out to be unavailable (kernel < 5.6, seccomp).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens `path` (inside the root, starting with `/`) for reading without
/// following symlinks in any component and without leaving the root.
pub fn open_beneath(root: &OwnedFd, path: &[u8]) -> io::Result<File> {
    let rel = std::ffi::OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(path));
    let rel = if rel.is_empty() {
        std::ffi::OsStr::new(".")
    } else {
        rel
    };
    // O_NONBLOCK: a file swapped for a FIFO must not hang the scan.
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let how = OpenHow::new().flags(flags).resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
        match nix::fcntl::openat2(root.as_fd(), rel, how) {
            Ok(fd) => return Ok(File::from(fd)),
            Err(Errno::ENOSYS | Errno::EPERM) if !NO_OPENAT2.load(Ordering::Relaxed) => {
                log::debug!("openat2 unavailable; falling back to openat with O_NOFOLLOW");
                NO_OPENAT2.store(true, Ordering::Relaxed);
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Fallback: only the last component is protected; the dev/inode check
    // in `hash_entry` catches a swapped object.
    let fd = nix::fcntl::openat(root.as_fd(), rel, flags, Mode::empty())?;
    Ok(File::from(fd))
}

/// `lstat` of `path` (inside the root) without following a symlink in any
/// component and without leaving the root: an `O_PATH | O_NOFOLLOW` open
/// beneath the root, then `fstat`. A symlink as the last component is
/// described itself; one in a parent fails with `ELOOP` (with `openat2`).
pub fn stat_beneath(root: &OwnedFd, path: &[u8]) -> io::Result<std::fs::Metadata> {
    let rel = std::ffi::OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(path));
    let rel = if rel.is_empty() {
        std::ffi::OsStr::new(".")
    } else {
        rel
    };
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let how = OpenHow::new().flags(flags).resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
        match nix::fcntl::openat2(root.as_fd(), rel, how) {
            Ok(fd) => return File::from(fd).metadata(),
            Err(Errno::ENOSYS | Errno::EPERM) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let fd = nix::fcntl::openat(root.as_fd(), rel, flags, Mode::empty())?;
    File::from(fd).metadata()
}

/// Streams `r` through SHA-256, stopping after `limit` bytes if given.
pub fn sha256_reader(
    r: &mut impl Read,
    limit: Option<u64>,
    buf: &mut [u8],
    rate: Option<&RateLimit>,
) -> io::Result<([u8; 32], u64)> {
    let mut h = Sha256::new();
    let mut total = 0u64;
    loop {
        let want = match limit {
            Some(l) => usize::try_from((l - total).min(buf.len() as u64)).unwrap_or(buf.len()),
            None => buf.len(),
        };
        if want == 0 {
            break;
        }
        let Some(chunk) = buf.get_mut(..want) else {
            break;
        };
        let n = match r.read(chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(chunk.get(..n).unwrap_or_default());
        total += n as u64;
        if let Some(rate) = rate {
            rate.consume(n as u64);
        }
    }
    Ok((h.finalize().into(), total))
}

fn ts(sec: i64, nsec: i64) -> Timestamp {
    Timestamp {
        sec,
        nsec: u32::try_from(nsec).unwrap_or(0),
    }
}

/// Fills `e.sha256`, or `e.error` when the file cannot be read or changed
/// under us. `dev` is the device the walk saw the file on.
pub fn hash_entry(
    root: &OwnedFd,
    e: &mut Entry,
    dev: u64,
    buf: &mut [u8],
    rate: Option<&RateLimit>,
) {
    match try_hash(root, e, dev, buf, rate) {
        Ok(d) => e.sha256 = Some(d),
        Err(msg) => e.add_error(msg),
    }
}

fn try_hash(
    root: &OwnedFd,
    e: &Entry,
    dev: u64,
    buf: &mut [u8],
    rate: Option<&RateLimit>,
) -> Result<[u8; 32], String> {
    if e.size == 0 {
        // Nothing to read; a later write changes size, mtime and ctime.
        return Ok(Sha256::digest(b"").into());
    }
    let mut f = open_beneath(root, &e.path).map_err(|err| match err.raw_os_error() {
        Some(libc::ENOENT) => crate::walk::VANISHED.to_string(),
        Some(libc::ELOOP) | Some(libc::EXDEV) => {
            "replaced by a symlink during the scan".to_string()
        }
        _ => format!("cannot open: {err}"),
    })?;
    let before = f.metadata().map_err(|err| format!("cannot stat: {err}"))?;
    if before.dev() != dev || before.ino() != e.inode || !before.is_file() {
        return Err("replaced during the scan (not the file that was listed)".into());
    }
    if e.size >= 1 << 20 {
        // Larger read-ahead on a cold cache; advisory, so errors are moot.
        let _ = nix::fcntl::posix_fadvise(
            f.as_fd(),
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL,
        );
    }
    // Reading stops at the size the walk saw; growth shows in the fstat below.
    let (digest, n) = sha256_reader(&mut f, Some(e.size), buf, rate)
        .map_err(|err| format!("read error: {err}"))?;
    let after = f.metadata().map_err(|err| format!("cannot stat: {err}"))?;
    if n != e.size
        || after.len() != e.size
        || ts(after.mtime(), after.mtime_nsec()) != e.mtime
        || ts(after.ctime(), after.ctime_nsec()) != e.ctime
    {
        return Err("modified while being hashed".into());
    }
    Ok(digest)
}

/// Digests of multiply-linked inodes already hashed in this run, so each
/// inode is read once. An entry is valid for another name of the inode only
/// while size, mtime and ctime are what that name's lstat shows.
#[derive(Debug, Default)]
pub struct LinkCache(Mutex<HashMap<(u64, u64), LinkState>>);

type LinkState = (u64, Timestamp, Timestamp, [u8; 32]);

impl LinkCache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, u64), LinkState>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, dev: u64, e: &Entry) -> Option<[u8; 32]> {
        match self.map().get(&(dev, e.inode)) {
            Some((size, m, c, d)) if (*size, *m, *c) == (e.size, e.mtime, e.ctime) => Some(*d),
            _ => None,
        }
    }

    pub fn put(&self, dev: u64, e: &Entry, digest: [u8; 32]) {
        self.map()
            .insert((dev, e.inode), (e.size, e.mtime, e.ctime, digest));
    }
}

/// SHA-256 of the first `len` bytes of a file (growing-file checks).
pub fn hash_prefix(root: &OwnedFd, path: &[u8], len: u64) -> io::Result<[u8; 32]> {
    let mut f = open_beneath(root, path)?;
    let mut buf = vec![0u8; BUF_SIZE];
    let (d, n) = sha256_reader(&mut f, Some(len), &mut buf, None)?;
    if n != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shrank while being read",
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(dir: &std::path::Path) -> OwnedFd {
        OwnedFd::from(File::open(dir).expect("open root"))
    }

    #[test]
    fn known_digest_and_prefix() {
        let d = tempfile::tempdir().expect("tmp");
        std::fs::write(d.path().join("f"), b"abc").expect("write");
        let r = root(d.path());
        let digest = hash_prefix(&r, b"/f", 3).expect("hash");
        assert_eq!(
            crate::policy::hex(&digest),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hash_prefix(&r, b"/f", 0).expect("empty"),
            <[u8; 32]>::from(Sha256::digest(b""))
        );
        assert!(
            hash_prefix(&r, b"/f", 4).is_err(),
            "shorter than the prefix"
        );
    }

    #[test]
    fn symlinks_are_never_followed() {
        let d = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(d.path().join("real")).expect("mkdir");
        std::fs::write(d.path().join("real/f"), b"x").expect("write");
        std::os::unix::fs::symlink("real", d.path().join("link")).expect("symlink");
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("abs")).expect("symlink");
        let r = root(d.path());
        assert!(open_beneath(&r, b"/real/f").is_ok());
        assert!(
            open_beneath(&r, b"/link/f").is_err(),
            "intermediate symlink followed"
        );
        assert!(open_beneath(&r, b"/abs").is_err(), "final symlink followed");
    }
}
