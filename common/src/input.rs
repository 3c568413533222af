//! Reading files an operator hands a tool (configs, profiles, keys, token
//! files, node lists, package lists): regular files only, size-capped, with
//! one-line errors naming the path.
//!
//! A path given on the command line can be anything: a FIFO (reading blocks
//! forever), `/dev/zero` (reading never ends), `/dev/stdout` (the tool reads
//! its own report), a directory, a terminal. So the file is opened with
//! `O_NONBLOCK | O_NOCTTY` (opening a FIFO with no writer must not block, a
//! terminal must not become our controlling one), its type is checked on the
//! open descriptor (`fstat`, no race with a rename), and at most `max_bytes`
//! are read: a larger file is an error, not a truncated read.
//!
//! Files under the host root go through [`crate::hostroot`] instead.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Result};
use nix::fcntl::OFlag;

/// A sensible cap for a config, policy or profile file (TOML).
pub const CONFIG_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// A sensible cap for a secret: a key file, a token, a credential value.
pub const SECRET_MAX_BYTES: u64 = 64 * 1024;

/// Reads the regular file at `path`, at most `max_bytes` of it. Errors (one
/// line, naming the path): cannot open, not a regular file (FIFO, device,
/// directory, socket), larger than `max_bytes`.
pub fn read_regular_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let file = open_regular(path)?.ok_or_else(|| {
        anyhow::anyhow!(
            "cannot read {}: {}",
            path.display(),
            std::io::Error::from(ErrorKind::NotFound)
        )
    })?;
    read_capped(file, path, max_bytes)
}

/// [`read_regular_file`], then UTF-8: invalid UTF-8 is an error naming the
/// path and the byte offset of the first bad byte.
pub fn read_regular_file_to_string(path: &Path, max_bytes: u64) -> Result<String> {
    let bytes = read_regular_file(path, max_bytes)?;
    bytes_to_string(bytes, path)
}

/// Like [`read_regular_file`], but a missing file is `Ok(None)` (e.g. the
/// previous metrics file on a first run).
pub fn read_regular_file_if_exists(path: &Path, max_bytes: u64) -> Result<Option<Vec<u8>>> {
    match open_regular(path)? {
        Some(file) => read_capped(file, path, max_bytes).map(Some),
        None => Ok(None),
    }
}

/// Parses TOML text from `source` (a path, or a name like `builtin`). The
/// error is one line, `source:line:column: message`, instead of the
/// parser's multi-line snippet.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, source: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| anyhow::Error::new(TomlError::new(source, text, &e)))
}

/// Reads a regular TOML file of at most `max_bytes` and parses it (see
/// [`parse_toml`]).
pub fn read_toml_file<T: serde::de::DeserializeOwned>(path: &Path, max_bytes: u64) -> Result<T> {
    let text = read_regular_file_to_string(path, max_bytes)?;
    parse_toml(&text, &path.display().to_string())
}

/// A TOML error located in its source: `source:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlError {
    /// The file (or name) the text came from.
    pub source: String,
    /// 1-based line of the error, when the parser knows it.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the error.
    pub column: Option<usize>,
    /// The parser's message, on one line.
    pub message: String,
}

impl TomlError {
    /// Locates `err` in `text`.
    pub fn new(source: &str, text: &str, err: &toml::de::Error) -> Self {
        let (line, column) = match err.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        Self {
            source: source.to_string(),
            line,
            column,
            message: crate::exit::one_line(err.message()),
        }
    }
}

impl std::fmt::Display for TomlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "{}:{line}:{column}: {}", self.source, self.message)
            }
            _ => write!(f, "{}: {}", self.source, self.message),
        }
    }
}

impl std::error::Error for TomlError {}

/// 1-based line and character column of byte `offset` in `text` (clamped
/// to the text, and to a character boundary).
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    let before = text.get(..end).unwrap_or_default();
    let line = before.matches('\n').count().saturating_add(1);
    let line_start = before.rfind('\n').map_or(0, |i| i.saturating_add(1));
    let column = before
        .get(line_start..)
        .unwrap_or_default()
        .chars()
        .count()
        .saturating_add(1);
    (line, column)
}

/// Fails unless `path` is absent or a regular file (symlinks followed),
/// naming the path and what it is instead. For outputs that are replaced
/// atomically and may be read back.
pub fn ensure_regular_or_absent(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) => bail!(
            "{}: is {}, not a regular file",
            path.display(),
            describe_type(&meta)
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => bail!("cannot use {}: {e}", path.display()),
    }
}

/// Bytes read from `path` as text; the error names the path and offset.
pub fn bytes_to_string(bytes: Vec<u8>, path: &Path) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// What a file is, for messages: "a FIFO", "a character device", …
pub fn describe_type(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_file() {
        "a regular file"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Opens `path` without blocking and checks the open descriptor is a
/// regular file; `None` when it does not exist.
fn open_regular(path: &Path) -> Result<Option<File>> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    };
    let meta = file
        .metadata()
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "cannot read {}: it is {}, not a regular file",
            path.display(),
            describe_type(&meta)
        );
    }
    Ok(Some(file))
}

fn read_capped(file: File, path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let too_big = |size: u64| {
        anyhow::anyhow!(
            "cannot read {}: {size} bytes or more, over the {max_bytes}-byte limit",
            path.display()
        )
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size > max_bytes {
        return Err(too_big(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // One byte past the cap tells a file that grew since fstat from one
    // that fits exactly.
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > max_bytes {
        return Err(too_big(read));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, "x = 1\n").unwrap();
        assert_eq!(read_regular_file(&path, 100).unwrap(), b"x = 1\n");
        assert_eq!(read_regular_file_to_string(&path, 6).unwrap(), "x = 1\n");
    }

    #[test]
    fn over_the_cap_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'a'; 101]).unwrap();
        let err = read_regular_file(&path, 100).unwrap_err().to_string();
        assert!(
            err.contains("big") && err.contains("100-byte limit"),
            "{err}"
        );
    }

    #[test]
    fn devices_directories_and_fifos_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for (path, what) in [
            (Path::new("/dev/zero"), "character device"),
            (dir.path(), "directory"),
            (fifo.as_path(), "FIFO"),
        ] {
            let err = read_regular_file(path, 1 << 20).unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn missing_file() {
        let path = Path::new("/nonexistent/nodeguard/x");
        assert!(read_regular_file_if_exists(path, 10).unwrap().is_none());
        let err = read_regular_file(path, 10).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/nodeguard/x"), "{err}");
        ensure_regular_or_absent(path).unwrap();
        assert!(ensure_regular_or_absent(Path::new("/dev/null")).is_err());
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        name: String,
    }

    #[test]
    fn toml_errors_are_one_line_with_path_line_and_column() {
        let err = parse_toml::<Cfg>("# c\nname = \n", "/etc/x.toml").unwrap_err();
        let text = format!("{err:#}");
        assert!(text.starts_with("/etc/x.toml:2:"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        let err = parse_toml::<Cfg>("name = \"a\"\n  servise = 1\n", "p.toml").unwrap_err();
        let text = format!("{err:#}");
        assert!(text.starts_with("p.toml:2:3: "), "{text}");
        assert!(text.contains("servise"), "{text}");
        assert_eq!(line_column("é\nab", 4), (2, 2));
        assert_eq!(line_column("é", 1), (1, 1));
        assert_eq!(line_column("ab", 99), (1, 3));
    }

    proptest::proptest! {
        /// Any text and any offset: a position, never a panic.
        #[test]
        fn line_column_never_panics(text in "\\PC{0,64}", offset in 0usize..200) {
            let (line, column) = line_column(&text, offset);
            proptest::prop_assert!(line >= 1 && column >= 1);
        }

        /// Any bytes as a TOML document: an error on one line, never a panic.
        #[test]
        fn toml_errors_are_always_one_line(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..128)) {
            let text = String::from_utf8_lossy(&bytes);
            if let Err(err) = parse_toml::<Cfg>(&text, "f.toml") {
                let line = format!("{err:#}");
                proptest::prop_assert!(!line.contains('\n'), "{}", line);
                proptest::prop_assert!(line.starts_with("f.toml"), "{}", line);
            }
        }
    }

    #[test]
    fn invalid_utf8_names_path_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, b"ok\xffno").unwrap();
        let err = read_regular_file_to_string(&path, 100)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bin") && err.contains("offset 2"), "{err}");
    }
}
