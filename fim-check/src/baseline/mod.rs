//! The baseline file: versioned, streamed, authenticated.
//!
//! Layout (all of it covered by the trailing tag):
//! ```text
//! "NGFIMBL\n"            8-byte magic
//! u16 LE                 format version (1)
//! u32 LE + JSON          header: node, config digest, creation time, ...
//! { uvarint len, entry } one record per entry, paths in walk order
//! uvarint 0              end marker
//! uvarint                entry count
//! [32]                   HMAC-SHA256(key, everything above), or plain
//!                        SHA-256 of it when the baseline has no key
//! ```
//! Entries are written and read one at a time: neither side ever holds the
//! whole baseline in memory.

pub mod codec;

use crate::entry::Entry;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{self, BufRead, Read, Write};

pub const MAGIC: &[u8; 8] = b"NGFIMBL\n";
pub const FORMAT_VERSION: u16 = 1;
const MAX_HEADER: usize = 1 << 20;
/// Most entries a baseline may hold (about 100 times what the built-in
/// policy records on a node); a longer stream is refused when read and
/// when written, so neither side runs unbounded.
pub const MAX_ENTRIES: u64 = 1 << 24;
/// A shorter key is refused: HMAC is only as strong as its key.
pub const MIN_KEY_LEN: usize = 16;

type HmacSha256 = hmac::Hmac<Sha256>;

/// What the baseline is bound to; checked before any entry is trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub tool_version: String,
    pub created_at: String,
    pub node: String,
    /// `builtin` or the config path used at init.
    pub config_source: String,
    /// SHA-256 of the canonical policy.
    pub config_digest: String,
    /// `--path` limits the baseline was built with (empty: whole policy).
    pub limits: Vec<String>,
    /// Whether the tag is an HMAC (true) or a plain SHA-256 (false).
    pub authenticated: bool,
}

/// Why a baseline cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselineError {
    /// Unreadable: I/O error opening or reading it.
    Io(String),
    /// Truncated, corrupt, edited, or the wrong key: never trust it.
    Integrity(String),
    /// Intact but not for this run: another node, another config, another
    /// format version.
    Mismatch(String),
}

impl fmt::Display for BaselineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaselineError::Io(m) | BaselineError::Integrity(m) | BaselineError::Mismatch(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for BaselineError {}

/// The running tag: HMAC with a key, plain SHA-256 without.
enum Tagger {
    Keyed(Box<HmacSha256>),
    Plain(Sha256),
}

impl fmt::Debug for Tagger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tagger::Keyed(_) => "Tagger::Keyed",
            Tagger::Plain(_) => "Tagger::Plain",
        })
    }
}

impl Tagger {
    fn new(key: Option<&[u8]>) -> io::Result<Tagger> {
        Ok(match key {
            // HMAC accepts keys of any length; MIN_KEY_LEN is enforced when
            // the key file is read.
            Some(k) => Tagger::Keyed(Box::new(
                <HmacSha256 as KeyInit>::new_from_slice(k)
                    .map_err(|e| io::Error::other(format!("HMAC key: {e}")))?,
            )),
            None => Tagger::Plain(Sha256::new()),
        })
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            Tagger::Keyed(m) => m.update(b),
            Tagger::Plain(h) => h.update(b),
        }
    }
    fn finalize(self) -> [u8; 32] {
        match self {
            Tagger::Keyed(m) => m.finalize().into_bytes().into(),
            Tagger::Plain(h) => h.finalize().into(),
        }
    }
    /// Constant-time for the keyed case.
    fn verify(self, tag: &[u8]) -> bool {
        match self {
            Tagger::Keyed(m) => m.verify_slice(tag).is_ok(),
            Tagger::Plain(h) => h.finalize().as_slice() == tag,
        }
    }
}

/// Streams entries into a baseline.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    tag: Tagger,
    prev_path: Vec<u8>,
    count: u64,
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W, header: &Header, key: Option<&[u8]>) -> io::Result<Writer<W>> {
        let mut tag = Tagger::new(key)?;
        let json = serde_json::to_vec(header)?;
        let mut start = Vec::with_capacity(14 + json.len());
        start.extend_from_slice(MAGIC);
        start.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let len = u32::try_from(json.len()).map_err(|_| io::Error::other("header too large"))?;
        start.extend_from_slice(&len.to_le_bytes());
        start.extend_from_slice(&json);
        out.write_all(&start)?;
        tag.update(&start);
        Ok(Writer {
            out,
            tag,
            prev_path: Vec::new(),
            count: 0,
            buf: Vec::with_capacity(512),
        })
    }

    /// Appends one entry; entries must come in path order. Fails past
    /// `MAX_ENTRIES`.
    pub fn write(&mut self, e: &Entry) -> io::Result<()> {
        if self.count >= MAX_ENTRIES {
            return Err(io::Error::other(format!(
                "more than {MAX_ENTRIES} entries: narrow the policy or use --path"
            )));
        }
        let mut rec = std::mem::take(&mut self.buf);
        rec.clear();
        codec::encode_entry(&mut rec, &self.prev_path, e);
        let mut framed = Vec::with_capacity(rec.len() + 5);
        codec::put_uvarint(&mut framed, rec.len() as u64);
        framed.extend_from_slice(&rec);
        self.out.write_all(&framed)?;
        self.tag.update(&framed);
        self.prev_path.clear();
        self.prev_path.extend_from_slice(&e.path);
        self.count += 1;
        self.buf = rec;
        Ok(())
    }

    /// Writes the trailer and returns the sink (not yet synced or renamed).
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        let mut tail = vec![0u8];
        codec::put_uvarint(&mut tail, self.count);
        self.tag.update(&tail);
        tail.extend_from_slice(&self.tag.finalize());
        self.out.write_all(&tail)?;
        self.out.flush()?;
        Ok((self.out, self.count))
    }
}

/// Reads a baseline entry by entry; the tag is verified when the last
/// entry has been read (`next_entry` returns `Ok(None)` only then).
#[derive(Debug)]
pub struct Reader<R: BufRead> {
    input: R,
    tag: Option<Tagger>,
    header: Header,
    prev_path: Vec<u8>,
    count: u64,
    finished: bool,
    max_entries: u64,
    /// The baseline is authenticated but no key was given.
    pub unverified: bool,
}

fn integrity(m: impl Into<String>) -> BaselineError {
    BaselineError::Integrity(m.into())
}

impl<R: BufRead> Reader<R> {
    pub fn open(mut input: R, key: Option<&[u8]>) -> Result<Reader<R>, BaselineError> {
        let mut start = [0u8; 14];
        read_exact(&mut input, &mut start, "header")?;
        if &start[..8] != MAGIC {
            return Err(integrity("not a fim-check baseline (bad magic)"));
        }
        let version = u16::from_le_bytes([start[8], start[9]]);
        if version != FORMAT_VERSION {
            return Err(BaselineError::Mismatch(format!(
                "baseline format version {version} is not supported (this fim-check reads version {FORMAT_VERSION}); run init"
            )));
        }
        let len = u32::from_le_bytes([start[10], start[11], start[12], start[13]]) as usize;
        if len > MAX_HEADER {
            return Err(integrity("header length out of range"));
        }
        let mut json = vec![0u8; len];
        read_exact(&mut input, &mut json, "header")?;
        let header: Header = serde_json::from_slice(&json)
            .map_err(|e| integrity(format!("header is not valid: {e}")))?;
        let (tag, unverified) = match (key, header.authenticated) {
            (Some(_), false) => {
                return Err(integrity(
                    "baseline is not authenticated but --key-file was given: refusing it (it may have been replaced)",
                ))
            }
            (Some(k), true) => (Some(Tagger::new(Some(k)).map_err(|e| BaselineError::Io(e.to_string()))?), false),
            (None, false) => (Some(Tagger::new(None).map_err(|e| BaselineError::Io(e.to_string()))?), false),
            (None, true) => (None, true),
        };
        let mut reader = Reader {
            input,
            tag,
            header,
            prev_path: Vec::new(),
            count: 0,
            finished: false,
            max_entries: MAX_ENTRIES,
            unverified,
        };
        reader.feed(&start);
        reader.feed(&json);
        Ok(reader)
    }

    /// Lowers the entry limit (tests).
    pub fn with_max_entries(mut self, max: u64) -> Self {
        self.max_entries = max;
        self
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn feed(&mut self, b: &[u8]) {
        if let Some(t) = &mut self.tag {
            t.update(b);
        }
    }

    fn varint(&mut self, framed: &mut Vec<u8>) -> Result<u64, BaselineError> {
        for _ in 0..10 {
            let mut b = [0u8; 1];
            read_exact(&mut self.input, &mut b, "entry")?;
            framed.push(b[0]);
            if b[0] & 0x80 == 0 {
                return codec::Cursor::new(framed).uvarint().map_err(integrity);
            }
        }
        Err(integrity("record length overflows"))
    }

    /// The next entry, or `None` after the trailer verified.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, BaselineError> {
        if self.finished {
            return Ok(None);
        }
        let mut framed = Vec::with_capacity(8);
        let len = self.varint(&mut framed)?;
        self.feed(&framed);
        if len == 0 {
            self.finish()?;
            return Ok(None);
        }
        if self.count >= self.max_entries {
            return Err(integrity(format!(
                "more than {} entries (the limit)",
                self.max_entries
            )));
        }
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= codec::MAX_RECORD)
            .ok_or_else(|| integrity("entry record length out of range"))?;
        let mut rec = vec![0u8; len];
        read_exact(&mut self.input, &mut rec, "entry")?;
        self.feed(&rec);
        let e = codec::decode_entry(&rec, &self.prev_path).map_err(|m| {
            integrity(format!(
                "entry {} after {:?}: {m}",
                self.count + 1,
                String::from_utf8_lossy(&self.prev_path)
            ))
        })?;
        self.prev_path.clone_from(&e.path);
        self.count += 1;
        Ok(Some(e))
    }

    fn finish(&mut self) -> Result<(), BaselineError> {
        let mut framed = Vec::new();
        let count = self.varint(&mut framed)?;
        self.feed(&framed);
        if count != self.count {
            return Err(integrity(format!(
                "trailer counts {count} entries, {} read",
                self.count
            )));
        }
        let mut tag = [0u8; 32];
        read_exact(&mut self.input, &mut tag, "trailer")?;
        let mut extra = [0u8; 1];
        if self
            .input
            .read(&mut extra)
            .map_err(|e| BaselineError::Io(e.to_string()))?
            != 0
        {
            return Err(integrity("data after the trailer"));
        }
        if let Some(t) = self.tag.take() {
            let keyed = matches!(t, Tagger::Keyed(_));
            if !t.verify(&tag) {
                return Err(integrity(if keyed {
                    "HMAC does not match: the baseline was modified or the key is wrong"
                } else {
                    "checksum does not match: the baseline is corrupt"
                }));
            }
        }
        self.finished = true;
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn into_inner(self) -> R {
        self.input
    }
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), BaselineError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            integrity(format!("baseline is truncated (in the {what})"))
        } else {
            BaselineError::Io(e.to_string())
        }
    })
}

#[cfg(test)]
mod tests;
