//! Files that are either wholly written or not written at all.
//!
//! Every file a tool writes (reports, baselines, metrics, rendered agent
//! configs) goes through here: a temp file in the *same directory* (so the
//! rename cannot cross filesystems), explicit permissions set before any
//! byte is written, `fsync` of the data, `rename` over the target, then
//! `fsync` of the directory so the rename itself survives a power cut. A
//! full disk or a killed run leaves the previous file intact and, at worst,
//! a `.<name>.*.tmp` file that the next run's write replaces.

use std::fs::{self, File, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Writes `bytes` to `path` atomically with permission bits `mode`.
pub fn write_file(path: impl AsRef<Path>, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = AtomicFile::create(path, mode)?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", file.target.display()))?;
    file.commit()
}

/// A file being written atomically: write into it, then [`commit`](Self::commit).
/// Dropping it without committing removes the temp file and leaves the
/// target untouched.
///
/// When the target already exists as a character device or FIFO
/// (`--html /dev/null`, `--metrics-file /dev/stdout`, a named pipe to a
/// collector) it is written in place: renaming a temp file over it would
/// replace the device node itself, which broke `/dev/null` for the whole
/// machine once. Directories, sockets and block devices are refused.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    writer: BufWriter<Sink>,
}

#[derive(Debug)]
enum Sink {
    Temp(tempfile::NamedTempFile),
    Special(File),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Temp(temp) => temp.write(buf),
            Sink::Special(file) => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Temp(temp) => temp.flush(),
            Sink::Special(file) => file.flush(),
        }
    }
}

impl AtomicFile {
    /// Starts writing `path` with permission bits `mode` (e.g. `0o600`).
    pub fn create(path: impl AsRef<Path>, mode: u32) -> Result<Self> {
        let target = path.as_ref().to_path_buf();
        if let Ok(meta) = fs::metadata(&target) {
            let kind = meta.file_type();
            if kind.is_char_device() || kind.is_fifo() {
                let file = fs::OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .with_context(|| format!("opening {} for writing", target.display()))?;
                return Ok(Self {
                    target,
                    writer: BufWriter::new(Sink::Special(file)),
                });
            }
            if !kind.is_file() {
                anyhow::bail!(
                    "{}: not a regular file; refusing to replace it",
                    target.display()
                );
            }
        }
        let dir = parent_dir(&target);
        let name = target
            .file_name()
            .with_context(|| format!("{}: not a file path", target.display()))?
            .to_string_lossy()
            .into_owned();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(&dir)
            .with_context(|| format!("creating a temp file in {} for {name}", dir.display()))?;
        // Explicit mode, set on the open fd before any content exists.
        temp.as_file()
            .set_permissions(Permissions::from_mode(mode))
            .with_context(|| {
                format!(
                    "setting mode {mode:o} on temp file for {}",
                    target.display()
                )
            })?;
        Ok(Self {
            target,
            writer: BufWriter::with_capacity(64 * 1024, Sink::Temp(temp)),
        })
    }

    /// The path this file will replace on commit.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes, syncs and renames the temp file over the target, then syncs
    /// the directory.
    pub fn commit(self) -> Result<()> {
        let target = self.target;
        let sink = self
            .writer
            .into_inner()
            .map_err(|e| anyhow::anyhow!("writing {}: {}", target.display(), e.error()))?;
        let temp = match sink {
            Sink::Temp(temp) => temp,
            Sink::Special(_) => return Ok(()),
        };
        temp.as_file()
            .sync_all()
            .with_context(|| format!("syncing {}", target.display()))?;
        temp.persist(&target).map_err(|e| {
            anyhow::anyhow!("renaming temp file over {}: {}", target.display(), e.error)
        })?;
        sync_dir(&parent_dir(&target))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes a rename in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Creates `dir` (and parents) if missing, with `mode` on the directories it
/// creates.
pub fn ensure_dir(dir: impl AsRef<Path>, mode: u32) -> Result<()> {
    let dir = dir.as_ref();
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .with_context(|| format!("creating directory {}", dir.display()))
}

use std::os::unix::fs::DirBuilderExt;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_with_the_requested_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baseline");
        write_file(&path, b"hello", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        write_file(&path, b"world", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"world");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
    }

    #[test]
    fn dropped_without_commit_leaves_target_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        fs::write(&path, "old").unwrap();
        {
            let mut f = AtomicFile::create(&path, 0o644).unwrap();
            f.write_all(b"half-writ").unwrap();
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn missing_directory_error_names_it() {
        let err = write_file("/nonexistent-dir-xyz/file", b"x", 0o600).unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent-dir-xyz"),
            "{err:#}"
        );
    }

    #[test]
    fn character_devices_are_written_in_place_not_replaced() {
        write_file("/dev/null", b"discarded", 0o644).unwrap();
        let meta = fs::metadata("/dev/null").unwrap();
        assert!(meta.file_type().is_char_device(), "/dev/null was replaced");
    }

    #[test]
    fn fifos_are_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let reader_path = fifo.clone();
        let reader = std::thread::spawn(move || fs::read(reader_path).unwrap());
        write_file(&fifo, b"through the pipe", 0o600).unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_file(dir.path(), b"x", 0o644).unwrap_err();
        assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");
    }

    #[test]
    fn ensure_dir_creates_with_mode() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        ensure_dir(&sub, 0o700).unwrap();
        assert_eq!(fs::metadata(&sub).unwrap().mode() & 0o777, 0o700);
        ensure_dir(&sub, 0o700).unwrap();
    }
}
