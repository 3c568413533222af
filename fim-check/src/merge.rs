//! The streaming comparison: walk items and baseline entries both arrive in
//! path order and are joined like a merge, so memory holds one entry of
//! each side (plus the report). With an output writer, the joined result
//! becomes the next baseline (`update`).

use crate::baseline::{BaselineError, Reader, Writer};
use crate::entry::{cmp_paths, is_within, Entry};
use crate::judge::judge_entry;
use crate::report::{Change, EntryError, Kind, ScanReport};
use crate::walk::{Item, Scope};
use std::cmp::Ordering;
use std::io::{BufRead, Write};

/// Hashes the first `len` bytes of the file at a path (growing files).
pub type PrefixHasher<'a> = &'a mut dyn FnMut(&[u8], u64) -> std::io::Result<[u8; 32]>;

pub struct Merger<'a, R: BufRead, W: Write> {
    reader: &'a mut Reader<R>,
    peeked: Option<Entry>,
    scope: Scope,
    /// A subtree the walk could not read: its recorded entries are kept,
    /// not reported as removed.
    unreadable: Option<Vec<u8>>,
    writer: Option<Writer<W>>,
    pub report: &'a mut ScanReport,
    prefix_hash: PrefixHasher<'a>,
}

/// A merge failure: the baseline is unusable, or the new one cannot be written.
#[derive(Debug)]
pub enum MergeError {
    Baseline(BaselineError),
    Write(std::io::Error),
}

impl From<BaselineError> for MergeError {
    fn from(e: BaselineError) -> Self {
        MergeError::Baseline(e)
    }
}
impl From<std::io::Error> for MergeError {
    fn from(e: std::io::Error) -> Self {
        MergeError::Write(e)
    }
}

impl<R: BufRead, W: Write> std::fmt::Debug for Merger<'_, R, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merger")
            .field("peeked", &self.peeked.as_ref().map(|e| &e.path))
            .finish_non_exhaustive()
    }
}

impl<'a, R: BufRead, W: Write> Merger<'a, R, W> {
    pub fn new(
        reader: &'a mut Reader<R>,
        scope: Scope,
        writer: Option<Writer<W>>,
        report: &'a mut ScanReport,
        prefix_hash: PrefixHasher<'a>,
    ) -> Self {
        Merger {
            reader,
            peeked: None,
            scope,
            unreadable: None,
            writer,
            report,
            prefix_hash,
        }
    }

    fn peek(&mut self) -> Result<Option<&Entry>, BaselineError> {
        if self.peeked.is_none() {
            self.peeked = self.reader.next_entry()?;
        }
        Ok(self.peeked.as_ref())
    }

    fn keep(&mut self, e: &Entry) -> std::io::Result<()> {
        match &mut self.writer {
            Some(w) => w.write(e),
            None => Ok(()),
        }
    }

    /// Settles every recorded entry that sorts before `path` (all, if None).
    fn drain_before(&mut self, path: Option<&[u8]>) -> Result<(), MergeError> {
        while let Some(old) = self.peek()? {
            if path.is_some_and(|p| cmp_paths(&old.path, p) != Ordering::Less) {
                break;
            }
            let Some(old) = self.peeked.take() else { break };
            let unreadable = self
                .unreadable
                .as_ref()
                .is_some_and(|u| is_within(&old.path, u));
            if unreadable || !self.scope.contains(&old.path) {
                self.keep(&old)?;
            } else {
                self.report.add(Change::new(
                    &old.path,
                    Kind::Removed,
                    old.ftype.name(),
                    Vec::new(),
                ));
            }
        }
        Ok(())
    }

    /// Takes the recorded entry for exactly `path`, if any.
    fn take_exact(&mut self, path: &[u8]) -> Result<Option<Entry>, BaselineError> {
        Ok(match self.peek()? {
            Some(old) if old.path == path => self.peeked.take(),
            _ => None,
        })
    }

    pub fn item(&mut self, item: Item) -> Result<(), MergeError> {
        self.drain_before(Some(item.path()))?;
        if self
            .unreadable
            .as_ref()
            .is_some_and(|u| !is_within(item.path(), u))
        {
            self.unreadable = None;
        }
        match item {
            Item::Error { path, message } => {
                self.report.error(EntryError::new(&path, message));
                if let Some(old) = self.take_exact(&path)? {
                    self.keep(&old)?;
                }
                self.unreadable = Some(path);
            }
            Item::Entry { entry: new, .. } => {
                self.report.summary.scanned += 1;
                if let Some(msg) = &new.error {
                    self.report.error(EntryError::new(&new.path, msg.clone()));
                }
                match self.take_exact(&new.path)? {
                    None => {
                        self.report.add(Change::new(
                            &new.path,
                            Kind::Added,
                            new.ftype.name(),
                            Vec::new(),
                        ));
                        self.keep(&new)?;
                    }
                    Some(old) => {
                        match judge_entry(&old, &new, &mut *self.prefix_hash) {
                            Ok(Some(change)) => self.report.add(change),
                            Ok(None) => {}
                            Err(e) => self.report.error(e),
                        }
                        // What could not be read is not accepted: keep the record.
                        let accepted = if new.error.is_some() { &old } else { &new };
                        self.keep(accepted)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Settles the rest of the baseline (verifying its tag) and returns the
    /// writer, if any.
    pub fn finish(mut self) -> Result<Option<Writer<W>>, MergeError> {
        self.drain_before(None)?;
        Ok(self.writer.take())
    }
}
