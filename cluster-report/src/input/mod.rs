//! Where JSON Lines come from: files, directories, stdin; read in chunks.
//!
//! Inputs are cut into chunks of whole lines so that the parsing can run on
//! every core while memory stays bounded by a few chunks, whatever the size
//! of the input (a synced bucket, a `kubectl logs` of 5,000 pods). A chunk
//! never ends right after a CRI partial piece, so a split record is always
//! re-joined inside one chunk.

pub mod frame;
pub mod open;

use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Bytes per chunk handed to one parsing job.
pub const CHUNK_BYTES: usize = 4 << 20;

/// The longest record read: one line, or one CRI record split into
/// partial pieces. A longer one is not a nodeguard record (a whole
/// `--format json` scan of thousands of images is a few MiB); reading on
/// would let one line without an end take any amount of memory.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// File name endings read when a directory is given. Rotated, compressed
/// logs (`*.gz`) are listed in the report's warnings instead: decompress
/// them into stdin (`zcat … | cluster-report -`).
const READ_EXTENSIONS: &[&str] = &["jsonl", "ndjson", "json", "log"];

/// One input to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Standard input (`-`).
    Stdin,
    /// A regular file.
    File(PathBuf),
}

impl Source {
    /// How the report and error messages name this input.
    pub fn name(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".to_owned(),
            Source::File(path) => path.display().to_string(),
        }
    }

    fn open(&self) -> Result<Box<dyn Read + Send>> {
        Ok(match self {
            Source::Stdin => Box::new(io::stdin()),
            Source::File(path) => Box::new(open::open(path, "input")?.0),
        })
    }
}

/// Expands the command-line inputs: `-` is stdin, a directory is every
/// readable-looking file under it (sorted, symlinks not followed), a file is
/// itself. Returns the sources and the names of files skipped in
/// directories.
pub fn expand(inputs: &[PathBuf]) -> Result<(Vec<Source>, Vec<String>)> {
    let mut sources = Vec::new();
    let mut skipped = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            if sources.contains(&Source::Stdin) {
                bail!("stdin ('-') given twice");
            }
            sources.push(Source::Stdin);
            continue;
        }
        let meta = std::fs::metadata(input)
            .with_context(|| format!("cannot read input {}", input.display()))?;
        let file_type = meta.file_type();
        if file_type.is_dir() {
            expand_dir(input, &mut sources, &mut skipped)?;
        } else if file_type.is_file() || file_type.is_fifo() {
            sources.push(Source::File(input.clone()));
        } else {
            bail!(
                "input {} is a device or socket: give files, directories, pipes or '-' for stdin",
                input.display()
            );
        }
    }
    Ok((sources, skipped))
}

fn expand_dir(dir: &Path, sources: &mut Vec<Source>, skipped: &mut Vec<String>) -> Result<()> {
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name();
    for entry in walker {
        let entry =
            entry.with_context(|| format!("cannot walk input directory {}", dir.display()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        let wanted = path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| READ_EXTENSIONS.contains(&ext));
        if wanted {
            sources.push(Source::File(path.to_path_buf()));
        } else {
            skipped.push(path.display().to_string());
        }
    }
    Ok(())
}

/// A run of whole lines from one source.
#[derive(Debug)]
pub struct Chunk {
    /// Index of the source in the list given to [`chunks`].
    pub source: usize,
    /// 1-based number of the chunk's first line in its source.
    pub first_line: u64,
    /// Whole lines; the last may lack its newline at the end of a source.
    pub data: Vec<u8>,
    /// This chunk ends its source.
    pub last: bool,
}

/// Every chunk of every source, in order, reading lazily.
pub fn chunks(sources: &[Source]) -> impl Iterator<Item = Result<Chunk>> + Send + '_ {
    sources.iter().enumerate().flat_map(
        |(index, source)| -> Box<dyn Iterator<Item = Result<Chunk>> + Send> {
            match source.open() {
                Ok(reader) => Box::new(Chunker::new(
                    reader,
                    index,
                    source.name(),
                    CHUNK_BYTES,
                    MAX_RECORD_BYTES,
                )),
                Err(err) => Box::new(std::iter::once(Err(err))),
            }
        },
    )
}

/// Cuts one reader into [`Chunk`]s.
struct Chunker<R> {
    reader: R,
    source: usize,
    name: String,
    target: usize,
    max_record: usize,
    carry: Vec<u8>,
    next_line: u64,
    done: bool,
}

impl<R: Read> Chunker<R> {
    fn new(reader: R, source: usize, name: String, target: usize, max_record: usize) -> Self {
        Self {
            reader,
            source,
            name,
            target,
            max_record,
            carry: Vec::new(),
            next_line: 1,
            done: false,
        }
    }

    /// Reads until `buf` holds at least `want` bytes or the source ends.
    /// Returns false at the end of the source. The buffer grows with what
    /// is read (a small file never costs a whole chunk's allocation).
    fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> Result<bool> {
        while buf.len() < want {
            let missing = u64::try_from(want.saturating_sub(buf.len())).unwrap_or(u64::MAX);
            let read = (&mut self.reader)
                .take(missing)
                .read_to_end(buf)
                .with_context(|| format!("cannot read {}", self.name))?;
            if read == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        if self.done {
            return Ok(None);
        }
        let mut buf = std::mem::take(&mut self.carry);
        let mut want = self.target;
        let (data, last) = loop {
            if !self.fill(&mut buf, want)? {
                break (buf, true);
            }
            if let Some(split) = safe_split(&buf) {
                self.carry = buf.split_off(split);
                break (buf, false);
            }
            // No usable line boundary yet: one very long line (or CRI
            // record), read on up to the cap.
            if buf.len() > self.max_record {
                bail!(
                    "{}: line {}: a record longer than {} bytes (no line end, or a CRI record split into more pieces than that): not nodeguard output; refused",
                    self.name,
                    self.next_line,
                    self.max_record
                );
            }
            want = buf
                .len()
                .saturating_mul(2)
                .min(self.max_record.saturating_add(1));
        };
        self.done = last;
        if data.is_empty() {
            return Ok(None);
        }
        let first_line = self.next_line;
        self.next_line += count_newlines(&data);
        Ok(Some(Chunk {
            source: self.source,
            first_line,
            data,
            last,
        }))
    }
}

impl<R: Read> Iterator for Chunker<R> {
    type Item = Result<Chunk>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_chunk() {
            Ok(chunk) => chunk.map(Ok),
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

/// The index just past the last newline of `buf` that does not end a CRI
/// partial piece, if any.
fn safe_split(buf: &[u8]) -> Option<usize> {
    let mut end = buf.iter().rposition(|&b| b == b'\n')?;
    loop {
        let before = buf.get(..end)?;
        let start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let line = String::from_utf8_lossy(before.get(start..)?);
        if !frame::is_partial(&line) {
            return Some(end + 1);
        }
        end = start.checked_sub(1)?;
    }
}

fn count_newlines(data: &[u8]) -> u64 {
    data.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &str, target: usize) -> Vec<(u64, String, bool)> {
        Chunker::new(input.as_bytes(), 0, "t".into(), target, 1 << 20)
            .map(|c| {
                let c = c.expect("chunk");
                (
                    c.first_line,
                    String::from_utf8(c.data).expect("utf8"),
                    c.last,
                )
            })
            .collect()
    }

    #[test]
    fn chunks_hold_whole_lines_and_number_them() {
        let chunks = collect("aaaa\nbbbb\ncccc\ndd", 6);
        let joined: String = chunks.iter().map(|c| c.1.as_str()).collect();
        assert_eq!(joined, "aaaa\nbbbb\ncccc\ndd");
        for (_, text, last) in &chunks[..chunks.len() - 1] {
            assert!(text.ends_with('\n'));
            assert!(!last);
        }
        assert!(chunks.last().expect("last").2);
        let firsts: Vec<u64> = chunks.iter().map(|c| c.0).collect();
        assert_eq!(firsts, vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_chunk_never_ends_after_a_partial_piece() {
        let ts = "2026-11-24T01:02:03.1Z";
        let input = format!("{ts} stdout P aaaa\n{ts} stdout P bbbb\n{ts} stdout F cc\nnext\n");
        for target in 1..input.len() + 2 {
            for (_, text, _) in collect(&input, target) {
                let last_line = text
                    .trim_end_matches('\n')
                    .rsplit('\n')
                    .next()
                    .unwrap_or("");
                assert!(!frame::is_partial(last_line), "target {target}: {text:?}");
            }
        }
    }

    /// Regression: a line without an end was read whole, however large
    /// (`/dev/zero`-like streams grew to gigabytes).
    #[test]
    fn records_over_the_cap_are_refused_with_the_line_number() {
        let input = format!("ok\n{}\nafter\n", "x".repeat(100));
        let results: Vec<_> =
            Chunker::new(input.as_bytes(), 0, "big.jsonl".into(), 8, 64).collect();
        let err = results
            .iter()
            .find_map(|r| r.as_ref().err())
            .expect("an error");
        assert!(
            format!("{err:#}").starts_with("big.jsonl: line 2: a record longer than 64 bytes"),
            "{err:#}"
        );
        // Just under the cap, even without a final newline, is read.
        let input = format!("ok\n{}", "y".repeat(60));
        let chunks: Vec<_> = Chunker::new(input.as_bytes(), 0, "t".into(), 8, 64)
            .collect::<Result<_>>()
            .expect("read");
        assert!(chunks.last().expect("chunk").last);
        // An endless stream of CRI partial pieces is capped too.
        let piece = "2026-11-24T01:02:03.1Z stdout P aaaaaaaaaa\n";
        let input = piece.repeat(50);
        assert!(Chunker::new(input.as_bytes(), 0, "t".into(), 8, 256).any(|r| r.is_err()));
    }

    #[test]
    fn devices_are_refused_when_expanding() {
        let err = expand(&[PathBuf::from("/dev/zero")]).unwrap_err();
        assert!(
            format!("{err:#}").contains("/dev/zero is a device"),
            "{err:#}"
        );
    }

    #[test]
    fn empty_input_has_no_chunks() {
        assert!(collect("", 8).is_empty());
    }

    #[test]
    fn missing_input_is_named() {
        let err = expand(&[PathBuf::from("/nonexistent/nodeguard.jsonl")]).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/nodeguard.jsonl"));
    }
}
