//! Opening what an operator names on the command line, safely.
//!
//! Every input is type-checked before it is read: a regular file, or a
//! stream (a FIFO or pipe: `--expect-nodes <(kubectl get nodes -o name)`,
//! `/dev/stdin` from a pipe) — never a device, socket or directory, which
//! could block forever (`/dev/tty`) or never end (`/dev/zero`). The first
//! open is non-blocking, so even a FIFO without a writer cannot hang the
//! type check; a FIFO is then re-opened normally (waiting for its writer,
//! as `cat` does). Whole-file reads are size-capped with a clear error.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Largest `--expect-nodes` list (5,000 node names are ~300 KB).
pub const MAX_NODE_LIST_BYTES: u64 = 16 << 20;
/// Largest `--prometheus-token-file` (a service-account token is ~1 KB).
pub const MAX_TOKEN_BYTES: u64 = 1 << 20;
/// Largest `--prometheus-ca-file`.
pub const MAX_CA_BYTES: u64 = 16 << 20;

/// What kind of input a path turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    Regular,
    /// A FIFO or pipe: read as a stream.
    Stream,
}

/// Opens `path` for reading if it is a regular file or a FIFO/pipe;
/// refuses anything else with an error naming `what` and the path.
pub fn open(path: &Path, what: &str) -> Result<(File, Kind)> {
    let probe = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("cannot open {what} {}", path.display()))?;
    match kind_of(&probe, path, what)? {
        Kind::Regular => Ok((probe, Kind::Regular)),
        Kind::Stream => {
            drop(probe);
            // Blocking again: a named FIFO waits for its writer; a pipe
            // (`<(…)`, `/dev/fd/N`) already has one.
            let file = File::open(path)
                .with_context(|| format!("cannot open {what} {}", path.display()))?;
            match kind_of(&file, path, what)? {
                Kind::Stream => Ok((file, Kind::Stream)),
                Kind::Regular => bail!(
                    "{what} {} changed while being opened; refused",
                    path.display()
                ),
            }
        }
    }
}

fn kind_of(file: &File, path: &Path, what: &str) -> Result<Kind> {
    let file_type = file
        .metadata()
        .with_context(|| format!("cannot stat {what} {}", path.display()))?
        .file_type();
    if file_type.is_file() {
        return Ok(Kind::Regular);
    }
    if file_type.is_fifo() {
        return Ok(Kind::Stream);
    }
    let kind = if file_type.is_dir() {
        "a directory"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    bail!(
        "{what} {} is {kind}: give a regular file or a pipe",
        path.display()
    )
}

/// Reads all of `path` (a regular file or a pipe), at most `max` bytes.
pub fn read_capped(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let (file, _) = open(path, what)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max {
        bail!(
            "{what} {} is larger than {max} bytes; refused",
            path.display()
        );
    }
    Ok(bytes)
}

/// [`read_capped`] as UTF-8 text.
pub fn read_text(path: &Path, max: u64, what: &str) -> Result<String> {
    String::from_utf8(read_capped(path, max, what)?)
        .map_err(|_| anyhow::anyhow!("{what} {} is not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_directories_are_refused() {
        for (path, kind) in [
            ("/dev/zero", "character device"),
            ("/dev/null", "character device"),
            ("/", "directory"),
        ] {
            let err = read_capped(Path::new(path), 10, "node list").unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains(kind) && text.contains(path), "{text}");
        }
    }

    #[test]
    fn files_over_the_cap_are_refused_and_at_the_cap_read() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("nodes");
        std::fs::write(&path, "node-a\nnode-b").expect("write");
        assert_eq!(
            read_text(&path, 13, "node list").expect("read"),
            "node-a\nnode-b"
        );
        let err = read_capped(&path, 12, "node list").unwrap_err();
        assert!(
            format!("{err:#}").contains("larger than 12 bytes"),
            "{err:#}"
        );
    }

    #[test]
    fn a_pipe_is_read_as_a_stream_with_a_cap() {
        use std::os::fd::AsRawFd;
        let mut child = std::process::Command::new("printf")
            .arg("node/a\\n")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("printf");
        let reader = child.stdout.take().expect("stdout");
        let path = format!("/proc/self/fd/{}", reader.as_raw_fd());
        let (_, kind) = open(Path::new(&path), "node list").expect("open");
        assert_eq!(kind, Kind::Stream);
        assert_eq!(
            read_text(Path::new(&path), 100, "node list").expect("read"),
            "node/a\n"
        );
        child.wait().expect("wait");
    }
}
