//! The record writer: one JSON line per change or notice, flushed at once,
//! in the envelope of `--format jsonl` (`schema_version`, `tool`, `run_id`,
//! `node`, `timestamp`, `record`, then the record's own fields).

use super::state::Found;
use crate::entry::display_path;
use crate::policy::hex;
use nodeguard_common::report::{rfc3339, RunContext};
use serde::Serialize;
use serde_json::json;
use std::io::{self, Write};
use std::time::SystemTime;

/// Bumped when a record key changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    schema_version: u32,
    tool: &'a str,
    version: &'a str,
    run_id: &'a str,
    node: &'a str,
    timestamp: &'a str,
    record: &'a str,
    #[serde(flatten)]
    fields: &'a T,
}

pub struct RecordWriter<'o> {
    out: Box<dyn Write + 'o>,
    ctx: RunContext,
    buf: Vec<u8>,
}

impl std::fmt::Debug for RecordWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordWriter").finish_non_exhaustive()
    }
}

impl<'o> RecordWriter<'o> {
    pub fn new(out: Box<dyn Write + 'o>, ctx: RunContext) -> RecordWriter<'o> {
        RecordWriter {
            out,
            ctx,
            buf: Vec::with_capacity(1024),
        }
    }

    /// Writes one record and flushes it.
    pub fn write<T: Serialize>(&mut self, record: &str, fields: &T) -> io::Result<()> {
        let now = rfc3339(SystemTime::now());
        let line = Line {
            schema_version: SCHEMA_VERSION,
            tool: self.ctx.tool,
            version: self.ctx.version,
            run_id: &self.ctx.run_id,
            node: &self.ctx.node,
            timestamp: &now,
            record,
            fields,
        };
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &line)?;
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)?;
        self.out.flush()
    }

    /// A `change` record: `path`, `kind`, `type`, `attributes`, `detected_at`.
    pub fn change(&mut self, path: &[u8], f: &Found, detected_at: SystemTime) -> io::Result<()> {
        #[derive(Serialize)]
        struct ChangeRecord<'a> {
            path: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            path_hex: Option<String>,
            kind: crate::report::Kind,
            #[serde(rename = "type")]
            ftype: &'a str,
            attributes: &'a [crate::compare::AttrChange],
            detected_at: String,
        }
        self.write(
            "change",
            &ChangeRecord {
                path: display_path(path),
                path_hex: std::str::from_utf8(path).is_err().then(|| hex(path)),
                kind: f.kind,
                ftype: f.ftype,
                attributes: &f.attributes,
                detected_at: precise(detected_at),
            },
        )
    }

    /// A `restored` record: a reported change is gone (the path is back in
    /// its recorded state, or what was added was removed again).
    pub fn restored(&mut self, path: &[u8], was: &Found) -> io::Result<()> {
        self.write(
            "restored",
            &json!({
                "path": display_path(path),
                "previous_kind": was.kind,
                "detected_at": precise(SystemTime::now()),
            }),
        )
    }

    /// A `notice` record (`queue_overflow`, `watch_limit`, `unwatchable`,
    /// `baseline_reloaded`, ...).
    pub fn notice(&mut self, notice: &str, path: Option<&[u8]>, message: &str) -> io::Result<()> {
        let mut v = json!({
            "notice": notice,
            "message": message,
            "detected_at": precise(SystemTime::now()),
        });
        if let (Some(p), Some(fields)) = (path, v.as_object_mut()) {
            fields.insert("path".to_owned(), json!(display_path(p)));
        }
        self.write("notice", &v)
    }

    /// An `error` record: a path that could not be examined.
    pub fn error(&mut self, path: &[u8], message: &str) -> io::Result<()> {
        self.write(
            "error",
            &json!({
                "path": display_path(path),
                "message": message,
                "detected_at": precise(SystemTime::now()),
            }),
        )
    }
}

/// RFC 3339 with microseconds (latency is measured from it).
pub fn precise(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}
