//! Paths on the host, resolved inside the host root.
//!
//! In a pod the node's filesystem is mounted at e.g. `/host`, and a host
//! file is often a symlink with an *absolute* target:
//! `/host/etc/os-release -> /usr/lib/os-release`. Following that link with
//! the kernel would read the container's own `/usr/lib/os-release` and
//! report the wrong OS. [`HostRoot::resolve`] walks the path one component
//! at a time, reading every link itself and re-rooting absolute targets at
//! the host root, with `..` clamped at the root — the semantics of
//! `openat2(RESOLVE_IN_ROOT)`, which not every node kernel has (it needs
//! 5.6). The final open uses `O_NOFOLLOW`, so a last component swapped for a
//! link after resolution fails instead of escaping.

use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// How many symlinks one resolution may follow before it is called a loop
/// (Linux's own limit is 40).
pub const MAX_SYMLINKS: usize = 40;

/// The host's filesystem as seen from this process: `/` on the node itself,
/// `/host` (or similar) in a pod.
#[derive(Debug, Clone)]
pub struct HostRoot {
    root: PathBuf,
}

impl HostRoot {
    /// Opens a host root. The path must exist and be a directory; the error
    /// names it otherwise.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        // `/proc/<pid>/root` is a magic link into another mount namespace
        // (a hostPID pod reaching the host through PID 1): canonicalizing
        // it would print its target as seen *there* ("/") and silently
        // turn the host root into our own root. Keep it as given.
        let root = if is_proc_root(path) {
            path.to_path_buf()
        } else {
            fs::canonicalize(path).map_err(|e| with_path(&e, "host root", path))?
        };
        let meta = fs::metadata(&root).map_err(|e| with_path(&e, "host root", path))?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("host root {}: not a directory", path.display()),
            ));
        }
        Ok(Self { root })
    }

    /// The host root's real path in this process's view.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// True when the host root is this process's own `/`.
    pub fn is_own_root(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The lexical location of a host path under the root, without reading
    /// any link: `/etc/x` → `<root>/etc/x`, with `..` clamped at the root.
    /// Use it for `lstat`-style access to the link itself, and for messages.
    pub fn join(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let mut parts: Vec<OsString> = Vec::new();
        push_components(&mut parts, host_path.as_ref());
        self.path_of(&parts)
    }

    /// Resolves a host path (absolute or relative to the host's `/`) to its
    /// real location under the root, following every symlink inside the
    /// root. A missing component is not an error here: the remainder is
    /// joined lexically, so the caller's open reports `NotFound` naming the
    /// path. Errors: a link loop, an unreadable link, a non-directory in the
    /// middle of the path.
    pub fn resolve(&self, host_path: impl AsRef<Path>) -> io::Result<PathBuf> {
        let host_path = host_path.as_ref();
        self.resolve_inner(host_path, true)
            .map_err(|e| with_path(&e, "resolving", host_path))
    }

    /// Like [`resolve`](Self::resolve), but the last component is not
    /// followed if it is a link: for `lstat`, `readlink` and FIM walks.
    pub fn resolve_parent(&self, host_path: impl AsRef<Path>) -> io::Result<PathBuf> {
        let host_path = host_path.as_ref();
        self.resolve_inner(host_path, false)
            .map_err(|e| with_path(&e, "resolving", host_path))
    }

    fn resolve_inner(&self, host_path: &Path, follow_last: bool) -> io::Result<PathBuf> {
        // Components still to walk, in reverse so the next one is at the end.
        let mut pending: Vec<OsString> = Vec::new();
        push_components(&mut pending, host_path);
        pending.reverse();
        let mut resolved: Vec<OsString> = Vec::new();
        let mut links_followed = 0usize;
        let mut missing = false;

        while let Some(part) = pending.pop() {
            if part == ".." {
                resolved.pop();
                continue;
            }
            resolved.push(part);
            if missing {
                continue;
            }
            let is_last = pending.is_empty();
            if is_last && !follow_last {
                break;
            }
            let candidate = self.path_of(&resolved);
            let meta = match fs::symlink_metadata(&candidate) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    missing = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !meta.file_type().is_symlink() {
                if !is_last && !meta.is_dir() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{} is not a directory", candidate.display()),
                    ));
                }
                continue;
            }
            links_followed += 1;
            if links_followed > MAX_SYMLINKS {
                return Err(io::Error::other(format!(
                    "too many levels of symbolic links (more than {MAX_SYMLINKS})"
                )));
            }
            let target = fs::read_link(&candidate)?;
            resolved.pop();
            if target.is_absolute() {
                // Re-root: an absolute target names a host path, not ours.
                resolved.clear();
            }
            let mut target_parts = Vec::new();
            push_raw_components(&mut target_parts, &target);
            pending.extend(target_parts.into_iter().rev());
        }
        Ok(self.path_of(&resolved))
    }

    fn path_of(&self, parts: &[OsString]) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(parts);
        path
    }

    /// Opens a host file for reading, following links inside the root.
    ///
    /// Where the kernel has `openat2` (Linux 5.6+) it resolves the path
    /// itself with `RESOLVE_IN_ROOT`, which also closes the race between
    /// resolving and opening; otherwise the path is resolved here and opened
    /// with `O_NOFOLLOW`. The open is non-blocking, so a FIFO planted where
    /// a config file should be cannot hang the tool.
    pub fn open_file(&self, host_path: impl AsRef<Path>) -> io::Result<File> {
        let host_path = host_path.as_ref();
        match self.open_in_root(host_path, OFlag::O_RDONLY | OFlag::O_NONBLOCK) {
            Ok(fd) => return Ok(File::from(fd)),
            Err(Errno::ENOSYS | Errno::EPERM | Errno::EXDEV) => {}
            Err(errno) => {
                return Err(with_path(
                    &io::Error::from(errno),
                    "opening",
                    &self.display_path(host_path),
                ))
            }
        }
        let real = self.resolve(host_path)?;
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
            .open(&real)
            .map_err(|e| with_path(&e, "opening", &self.display_path(host_path)))
    }

    /// `openat2(root, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`.
    /// `ENOSYS` (old kernel) and `EPERM` (a seccomp filter that blocks
    /// `openat2`) mean "fall back", not "missing".
    fn open_in_root(&self, host_path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
        let root = nix::fcntl::open(
            &self.root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut parts: Vec<OsString> = Vec::new();
        push_raw_components(&mut parts, host_path);
        let relative: PathBuf = if parts.is_empty() {
            PathBuf::from(".")
        } else {
            parts.iter().collect()
        };
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(&root, relative.as_path(), how)
    }

    /// Opens a host path that must be a regular file: a FIFO, socket or
    /// device where a file belongs is hostile input (it would block or
    /// never end), reported as `InvalidInput` naming the path.
    pub fn open_regular_file(&self, host_path: impl AsRef<Path>) -> io::Result<File> {
        let host_path = host_path.as_ref();
        let file = self.open_file(host_path)?;
        let meta = file
            .metadata()
            .map_err(|e| with_path(&e, "stat", &self.display_path(host_path)))?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: not a regular file",
                    self.display_path(host_path).display()
                ),
            ));
        }
        Ok(file)
    }

    /// Reads a whole host file (which must be a regular file) of at most
    /// [`DEFAULT_READ_LIMIT`] bytes; use [`read_limited`](Self::read_limited)
    /// with the size the file can sensibly have.
    pub fn read(&self, host_path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
        self.read_limited(host_path, DEFAULT_READ_LIMIT)
    }

    /// Reads at most `max` bytes of a host file; more is an error (a release
    /// file or a config of gigabytes is hostile input, not data).
    pub fn read_limited(&self, host_path: impl AsRef<Path>, max: u64) -> io::Result<Vec<u8>> {
        let host_path = host_path.as_ref();
        let mut buf = Vec::new();
        self.open_regular_file(host_path)?
            .take(max.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| with_path(&e, "reading", &self.display_path(host_path)))?;
        if u64::try_from(buf.len()).unwrap_or(u64::MAX) > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: larger than the {max}-byte limit",
                    self.display_path(host_path).display()
                ),
            ));
        }
        Ok(buf)
    }

    /// Reads a host file as text; invalid UTF-8 is replaced, never an error.
    pub fn read_to_string(&self, host_path: impl AsRef<Path>) -> io::Result<String> {
        self.read(host_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Whether the host path exists (following links inside the root).
    pub fn exists(&self, host_path: impl AsRef<Path>) -> bool {
        self.metadata(host_path).is_ok()
    }

    /// Metadata of the host path, following links inside the root.
    pub fn metadata(&self, host_path: impl AsRef<Path>) -> io::Result<Metadata> {
        let host_path = host_path.as_ref();
        let real = self.resolve(host_path)?;
        fs::symlink_metadata(&real)
            .map_err(|e| with_path(&e, "stat", &self.display_path(host_path)))
    }

    /// Metadata of the host path itself (a link is not followed).
    pub fn symlink_metadata(&self, host_path: impl AsRef<Path>) -> io::Result<Metadata> {
        let host_path = host_path.as_ref();
        let real = self.resolve_parent(host_path)?;
        fs::symlink_metadata(&real)
            .map_err(|e| with_path(&e, "lstat", &self.display_path(host_path)))
    }

    /// The path as the operator should read it in a message: the host path
    /// under the root, e.g. `/host/etc/os-release`.
    pub fn display_path(&self, host_path: impl AsRef<Path>) -> PathBuf {
        self.join(host_path)
    }

    /// The node's name as the host knows it: `etc/hostname` under the root,
    /// or the kernel's hostname when the root is our own `/`.
    pub fn node_name(&self) -> Option<String> {
        if let Ok(bytes) = self.read_limited("/etc/hostname", 4096) {
            let text = String::from_utf8_lossy(&bytes);
            if let Some(name) = text
                .lines()
                .map(str::trim)
                .find(|line| !line.is_empty() && !line.starts_with('#'))
            {
                return Some(name.to_string());
            }
        }
        if self.is_own_root() {
            if let Ok(name) = nix::unistd::gethostname() {
                let name = name.to_string_lossy().trim().to_string();
                if !name.is_empty() {
                    return Some(name);
                }
            }
        }
        None
    }
}

/// The most [`HostRoot::read`] reads of one file.
pub const DEFAULT_READ_LIMIT: u64 = 64 * 1024 * 1024;

/// Pushes the normal components of `path`, applying `..` lexically and
/// ignoring any root or `.`.
fn push_components(parts: &mut Vec<OsString>, path: &Path) {
    for component in path.components() {
        match component {
            Component::Normal(name) => parts.push(name.to_os_string()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// Pushes components keeping `..` as a part, so the resolver applies it
/// after the links before it have been followed (as the kernel does).
fn push_raw_components(parts: &mut Vec<OsString>, path: &Path) {
    for component in path.components() {
        match component {
            Component::Normal(name) => parts.push(name.to_os_string()),
            Component::ParentDir => parts.push(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

/// A process's root view: a path ending in `proc/<pid>/root` or
/// `proc/self/root` — `/proc/1/root`, or `/host/proc/123/root` for a process
/// seen through the host's procfs under a host root.
fn is_proc_root(path: &Path) -> bool {
    let parts: Vec<_> = path.components().rev().take(3).collect();
    matches!(
        parts.as_slice(),
        [Component::Normal(root), Component::Normal(pid), Component::Normal(proc_)]
            if *proc_ == "proc"
                && *root == "root"
                && (*pid == "self" || pid.to_str().is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
    )
}

fn with_path(err: &io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, HostRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::open(dir.path()).unwrap();
        (dir, root)
    }

    fn write(root: &HostRoot, rel: &str, text: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn absolute_link_is_rerooted_not_followed_into_our_own_root() {
        let (_d, root) = tree();
        write(&root, "usr/lib/os-release", "ID=hostos\n");
        fs::create_dir_all(root.join("etc")).unwrap();
        symlink("/usr/lib/os-release", root.join("etc/os-release")).unwrap();
        assert_eq!(
            root.read_to_string("/etc/os-release").unwrap(),
            "ID=hostos\n"
        );
        assert_eq!(
            root.resolve("etc/os-release").unwrap(),
            root.join("usr/lib/os-release")
        );
    }

    #[test]
    fn userspace_fallback_resolves_like_the_kernel() {
        let (_d, root) = tree();
        write(&root, "usr/lib/os-release", "ID=hostos\n");
        fs::create_dir_all(root.join("etc")).unwrap();
        symlink("/usr/lib/os-release", root.join("etc/os-release")).unwrap();
        symlink("../../../usr/lib/os-release", root.join("etc/up")).unwrap();
        for link in ["/etc/os-release", "/etc/up"] {
            let real = root.resolve(link).unwrap();
            assert_eq!(real, root.join("usr/lib/os-release"), "{link}");
        }
    }

    #[test]
    fn dotdot_cannot_climb_above_the_root() {
        let (_d, root) = tree();
        write(&root, "etc/passwd", "host passwd\n");
        fs::create_dir_all(root.join("a")).unwrap();
        symlink("../../../../../etc/passwd", root.join("a/escape")).unwrap();
        assert_eq!(root.read_to_string("a/escape").unwrap(), "host passwd\n");
        assert_eq!(
            root.read_to_string("/../../etc/passwd").unwrap(),
            "host passwd\n"
        );
    }

    #[test]
    fn relative_links_in_the_middle_are_followed() {
        let (_d, root) = tree();
        write(&root, "real/dir/file", "x");
        symlink("real/dir", root.join("link")).unwrap();
        fs::create_dir_all(root.join("other")).unwrap();
        symlink("../link/file", root.join("other/f")).unwrap();
        assert_eq!(root.read_to_string("/other/f").unwrap(), "x");
    }

    #[test]
    fn link_loops_are_errors_not_hangs() {
        let (_d, root) = tree();
        symlink("/b", root.join("a")).unwrap();
        symlink("/a", root.join("b")).unwrap();
        for err in [
            root.read("/a").unwrap_err(),
            root.resolve("/a").unwrap_err(),
        ] {
            let text = err.to_string().to_lowercase();
            assert!(text.contains("too many levels"), "{err}");
        }
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let (_d, root) = tree();
        let err = root.read_to_string("/etc/nothing").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("etc/nothing"), "{err}");
    }

    #[test]
    fn missing_root_is_an_error_naming_it() {
        let err = HostRoot::open("/definitely/not/here").unwrap_err();
        assert!(err.to_string().contains("/definitely/not/here"), "{err}");
    }

    #[test]
    fn file_as_root_is_rejected() {
        let (d, _root) = tree();
        let file = d.path().join("f");
        fs::write(&file, "").unwrap();
        assert!(HostRoot::open(&file).is_err());
    }

    #[test]
    fn resolve_parent_keeps_the_last_link() {
        let (_d, root) = tree();
        write(&root, "target", "t");
        symlink("/target", root.join("l")).unwrap();
        assert_eq!(root.resolve_parent("/l").unwrap(), root.join("l"));
        assert!(root
            .symlink_metadata("/l")
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(root.metadata("/l").unwrap().is_file());
    }

    #[test]
    fn fifo_where_a_file_belongs_is_refused_without_blocking() {
        let (_d, root) = tree();
        fs::create_dir_all(root.join("etc")).unwrap();
        nix::unistd::mkfifo(
            &root.join("etc/os-release"),
            Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let err = root.read_to_string("/etc/os-release").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn read_limited_refuses_oversized_files() {
        let (_d, root) = tree();
        write(&root, "big", &"x".repeat(100));
        assert!(root.read_limited("/big", 100).is_ok());
        let err = root.read_limited("/big", 99).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn file_in_the_middle_of_a_path_is_not_a_directory() {
        let (_d, root) = tree();
        write(&root, "etc/hostname", "n");
        assert!(root.read("/etc/hostname/x").is_err());
    }

    #[test]
    fn node_name_comes_from_the_host_not_from_us() {
        let (_d, root) = tree();
        write(&root, "etc/hostname", "# comment\n\nworker-7\n");
        assert_eq!(root.node_name().as_deref(), Some("worker-7"));
        let (_d2, empty) = tree();
        assert_eq!(empty.node_name(), None);
    }

    #[test]
    fn process_root_is_not_canonicalized() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir_all(real.join("etc")).unwrap();
        std::fs::write(real.join("etc/conf"), "x").unwrap();
        let proc_pid = dir.path().join("proc/77");
        std::fs::create_dir_all(&proc_pid).unwrap();
        std::os::unix::fs::symlink(&real, proc_pid.join("root")).unwrap();
        let root = HostRoot::open(proc_pid.join("root")).unwrap();
        assert_eq!(root.path(), proc_pid.join("root"));
        assert_eq!(root.read_to_string("/etc/conf").unwrap(), "x");
        assert!(HostRoot::open(dir.path().join("proc/78/root")).is_err());
    }

    #[test]
    fn proc_pid_root_is_kept_not_canonicalized() {
        let own = HostRoot::open("/proc/self/root").expect("open");
        assert!(is_proc_root(Path::new("/host/proc/42/root")));
        assert_eq!(own.path(), Path::new("/proc/self/root"));
        assert!(own.exists("/proc"), "reads through the magic link");
        assert!(is_proc_root(Path::new("/proc/1/root")));
        assert!(!is_proc_root(Path::new("/proc/1/root/etc")));
        assert!(!is_proc_root(Path::new("/proc/x1/root")));
    }
}
