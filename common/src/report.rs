//! The JSON envelope every tool prints, as one document or as JSON Lines.
//!
//! One document (`--format json`):
//! `{"schema_version", "tool", "version", "run_id", "node", "started_at",
//! "finished_at", "duration_ms", …the tool's own keys}`.
//!
//! JSON Lines (`--format jsonl`), for log shippers: one line per record,
//! each carrying `schema_version`, `tool`, `version`, `run_id`, `node`,
//! `timestamp` and `record` (the record kind), so a line is meaningful on
//! its own once it is stored away from the others. Container runtimes split
//! long log lines (CRI-O at 8 KiB, containerd at 16 KiB), so tools emit one
//! finding per line rather than one huge line.

use std::io::{self, Write};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes runs started by one process within the same nanosecond.
static RUN_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// `--format`: one JSON document, or JSON Lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON document.
    #[default]
    Json,
    /// One JSON object per line: one per finding, plus a summary.
    Jsonl,
    /// For a person at a terminal: the same facts, laid out (colour only on
    /// a terminal, never with NO_COLOR; CLICOLOR_FORCE=1 forces it).
    Text,
}

/// Facts about this run that go into every envelope.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The tool's name, e.g. `detect-host`.
    pub tool: &'static str,
    /// The tool's version.
    pub version: &'static str,
    /// Unique id of this run (time, pid, sequence), shared by all its JSONL lines.
    pub run_id: String,
    /// The node's name.
    pub node: String,
    /// Wall-clock start.
    pub started_at: SystemTime,
    started: Instant,
}

impl RunContext {
    /// Starts the clock for a run of `tool` on `node`.
    pub fn new(tool: &'static str, version: &'static str, node: impl Into<String>) -> Self {
        let started_at = SystemTime::now();
        let nanos = started_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            tool,
            version,
            run_id: format!(
                "{nanos:x}-{:x}-{}",
                std::process::id(),
                RUN_SEQUENCE.fetch_add(1, Ordering::Relaxed)
            ),
            node: node.into(),
            started_at,
            started: Instant::now(),
        }
    }

    /// Milliseconds since the run started.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-24T01:02:03.456Z`.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Seconds since the Unix epoch as a float (for metrics).
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One JSON Lines record: a kind and its fields (a JSON object).
#[derive(Debug, Clone)]
pub struct Record {
    /// The record kind, e.g. `finding`, `image`, `summary`.
    pub kind: String,
    /// The record's own fields; must serialize to a JSON object.
    pub fields: serde_json::Value,
}

impl Record {
    /// A record of `kind` from any serializable object.
    pub fn new<T: Serialize + ?Sized>(kind: impl Into<String>, fields: &T) -> Self {
        Self {
            kind: kind.into(),
            fields: serde_json::to_value(fields)
                .unwrap_or_else(|e| serde_json::json!({"serialization_error": e.to_string()})),
        }
    }
}

/// A tool's report body. Its serialized form must be a JSON object; its keys
/// sit beside the envelope's.
pub trait Report: Serialize {
    /// Bumped when a key changes meaning or disappears (adding keys is not a
    /// schema change).
    const SCHEMA_VERSION: u32;

    /// The JSON Lines records; by default the whole body as one `report`
    /// record. Tools with many findings return one record per finding plus a
    /// `summary` record.
    fn jsonl_records(&self) -> Vec<Record> {
        vec![Record::new("report", self)]
    }

    /// `--format text`: the report for a person (see [`crate::text`]),
    /// without the header line. By default its JSON as `key: value` lines;
    /// each tool renders its own in its `text.rs`.
    fn text(&self, ctx: &RunContext, painter: &crate::text::Painter) -> String {
        let _ = ctx;
        serde_json::to_value(self).map_or_else(
            |e| format!("cannot render the report: {e}\n"),
            |v| crate::text::generic(&v, painter),
        )
    }
}

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    schema_version: u32,
    tool: &'a str,
    version: &'a str,
    run_id: &'a str,
    node: &'a str,
    started_at: String,
    finished_at: String,
    duration_ms: u64,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Serialize)]
struct Line<'a> {
    schema_version: u32,
    tool: &'a str,
    version: &'a str,
    run_id: &'a str,
    node: &'a str,
    timestamp: &'a str,
    record: &'a str,
    #[serde(flatten)]
    fields: &'a serde_json::Value,
}

/// Writes the report to `out` in the chosen format. The output is built in
/// memory first so a serialization error never leaves half a document.
pub fn emit<R: Report>(
    out: &mut dyn Write,
    ctx: &RunContext,
    report: &R,
    format: Format,
    pretty: bool,
) -> io::Result<()> {
    let finished_at = SystemTime::now();
    let mut buf = Vec::with_capacity(4096);
    match format {
        Format::Json => {
            let envelope = Envelope {
                schema_version: R::SCHEMA_VERSION,
                tool: ctx.tool,
                version: ctx.version,
                run_id: &ctx.run_id,
                node: &ctx.node,
                started_at: rfc3339(ctx.started_at),
                finished_at: rfc3339(finished_at),
                duration_ms: ctx.elapsed_ms(),
                body: report,
            };
            if pretty {
                serde_json::to_writer_pretty(&mut buf, &envelope)?;
            } else {
                serde_json::to_writer(&mut buf, &envelope)?;
            }
            buf.push(b'\n');
        }
        Format::Jsonl => {
            let timestamp = rfc3339(finished_at);
            for record in report.jsonl_records() {
                let line = Line {
                    schema_version: R::SCHEMA_VERSION,
                    tool: ctx.tool,
                    version: ctx.version,
                    run_id: &ctx.run_id,
                    node: &ctx.node,
                    timestamp: &timestamp,
                    record: &record.kind,
                    fields: &record.fields,
                };
                serde_json::to_writer(&mut buf, &line)?;
                buf.push(b'\n');
            }
        }
        Format::Text => {
            let painter = crate::text::Painter::for_stdout();
            let rendered = crate::text::header(ctx, &painter) + &report.text(ctx, &painter);
            buf.extend_from_slice(crate::text::sanitize(&rendered).as_bytes());
        }
    }
    out.write_all(&buf)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Body {
        findings: Vec<u32>,
    }

    impl Report for Body {
        const SCHEMA_VERSION: u32 = 3;
        fn jsonl_records(&self) -> Vec<Record> {
            let mut records: Vec<Record> = self
                .findings
                .iter()
                .map(|f| Record::new("finding", &serde_json::json!({"id": f})))
                .collect();
            records.push(Record::new(
                "summary",
                &serde_json::json!({"count": self.findings.len()}),
            ));
            records
        }
    }

    #[test]
    fn json_envelope_has_header_then_body() {
        let ctx = RunContext::new("demo", "1.2.3", "node-a");
        let mut out = Vec::new();
        emit(
            &mut out,
            &ctx,
            &Body {
                findings: vec![1, 2],
            },
            Format::Json,
            false,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("{\"schema_version\":3,\"tool\":\"demo\""),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["node"], "node-a");
        assert_eq!(v["findings"], serde_json::json!([1, 2]));
        assert!(v["started_at"].as_str().unwrap().ends_with('Z'));
        assert!(v["duration_ms"].is_u64());
    }

    #[test]
    fn jsonl_has_one_self_describing_line_per_record() {
        let ctx = RunContext::new("demo", "1.2.3", "node-a");
        let mut out = Vec::new();
        emit(
            &mut out,
            &ctx,
            &Body {
                findings: vec![7, 8, 9],
            },
            Format::Jsonl,
            false,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        for line in &lines {
            assert_eq!(line["schema_version"], 3);
            assert_eq!(line["tool"], "demo");
            assert_eq!(line["run_id"], ctx.run_id.as_str());
            assert_eq!(line["node"], "node-a");
            assert!(line["timestamp"].is_string());
        }
        assert_eq!(lines[0]["record"], "finding");
        assert_eq!(lines[0]["id"], 7);
        assert_eq!(lines[3]["record"], "summary");
    }

    #[test]
    fn run_ids_differ_between_runs() {
        let a = RunContext::new("t", "v", "n");
        let b = RunContext::new("t", "v", "n");
        assert_ne!(a.run_id, b.run_id);
    }
}
