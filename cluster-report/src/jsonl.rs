//! The JSON Lines lane: records from every node's tools into a [`Cluster`].
//!
//! Each line is parsed twice, both times into typed structs that skip what
//! they do not need: first the envelope every tool writes (`schema_version`,
//! `tool`, `version`, `run_id`, `node`, `timestamp`, `record`), then the
//! tool's own fields ([`crate::records`]). That is cheaper than building a
//! `serde_json::Value` per line, which matters at 5,000 nodes.

use std::borrow::Cow;

use anyhow::Result;
use rayon::prelude::*;
use serde::Deserialize;

use crate::input::frame::Joiner;
use crate::input::{self, Chunk, Source};
use crate::model::{Cluster, Run, Tool};
use crate::records;

/// The newest envelope schema this version reads.
pub const SUPPORTED_SCHEMA: u64 = 1;

/// The fields every nodeguard JSON Lines record carries.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    pub schema_version: Option<u64>,
    #[serde(borrow)]
    pub tool: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub version: Cow<'a, str>,
    #[serde(borrow, default)]
    pub run_id: Cow<'a, str>,
    #[serde(borrow)]
    pub node: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub timestamp: Option<Cow<'a, str>>,
    /// The record kind (`summary`, `image`, …); absent in whole documents.
    #[serde(borrow)]
    pub record: Option<Cow<'a, str>>,
    /// Whole `--format json` documents carry `finished_at` instead.
    #[serde(borrow)]
    pub finished_at: Option<Cow<'a, str>>,
}

/// Reads every source into one [`Cluster`], chunks in parallel: each
/// worker folds its chunks into its own cluster, merged at the end. Runs
/// dated after `horizon` are kept apart as future-dated.
pub fn read_sources(sources: &[Source], horizon: Option<f64>) -> Result<Cluster> {
    let names: Vec<String> = sources.iter().map(Source::name).collect();
    input::chunks(sources)
        .par_bridge()
        .try_fold(
            || Cluster::with_horizon(horizon),
            |mut cluster, chunk| {
                let chunk = chunk?;
                let name = names.get(chunk.source).map_or("<input>", String::as_str);
                read_chunk_into(&mut cluster, &chunk, name);
                Ok::<_, anyhow::Error>(cluster)
            },
        )
        .try_reduce(Cluster::default, |a, b| Ok(a.merge(b)))
}

/// Parses one chunk of whole lines.
pub fn read_chunk(chunk: &Chunk, source_name: &str) -> Cluster {
    let mut cluster = Cluster::default();
    read_chunk_into(&mut cluster, chunk, source_name);
    cluster
}

/// Parses one chunk of whole lines into `cluster`.
pub fn read_chunk_into(cluster: &mut Cluster, chunk: &Chunk, source_name: &str) {
    let mut joiner = Joiner::default();
    for (number, raw) in (chunk.first_line..).zip(chunk.data.split(|&b| b == b'\n')) {
        if raw.is_empty() {
            continue;
        }
        cluster.stats.lines += 1;
        let Ok(line) = std::str::from_utf8(raw) else {
            cluster.stats.malformed_lines += 1;
            cluster.warn(format!("{source_name}:{number}: not UTF-8, skipped"));
            continue;
        };
        let Some(payload) = joiner.push(line) else {
            continue;
        };
        read_payload(cluster, payload, source_name, number);
    }
    if chunk.last && joiner.unterminated() {
        cluster.stats.malformed_lines += 1;
        cluster.warn(format!(
            "{source_name}: ends inside a split (CRI partial) line; its record is lost"
        ));
    }
}

/// Reads one complete payload (a record, log text, or something foreign).
fn read_payload(cluster: &mut Cluster, payload: &str, source: &str, number: u64) {
    let text = payload.trim();
    if !text.starts_with('{') {
        cluster.stats.other_lines += 1;
        return;
    }
    let envelope: Envelope = match serde_json::from_str(text) {
        Ok(envelope) => envelope,
        Err(err) => {
            cluster.stats.malformed_lines += 1;
            cluster.warn(format!("{source}:{number}: not a JSON record: {err}"));
            return;
        }
    };
    let (Some(schema), Some(tool_name), Some(node)) =
        (envelope.schema_version, &envelope.tool, &envelope.node)
    else {
        // JSON from something else in the same log stream.
        cluster.stats.other_lines += 1;
        return;
    };
    let Some(tool) = Tool::from_name(tool_name) else {
        cluster.stats.unsupported_records += 1;
        return;
    };
    if schema > SUPPORTED_SCHEMA {
        cluster.stats.unsupported_records += 1;
        cluster.warn(format!(
            "{source}:{number}: {tool_name} schema_version {schema} is newer than this cluster-report reads ({SUPPORTED_SCHEMA}); upgrade cluster-report"
        ));
        return;
    }
    let Some(stamp) = envelope
        .timestamp
        .as_ref()
        .or(envelope.finished_at.as_ref())
    else {
        cluster.stats.malformed_lines += 1;
        cluster.warn(format!("{source}:{number}: record without a timestamp"));
        return;
    };
    let Some(finished) = parse_timestamp(stamp) else {
        cluster.stats.malformed_lines += 1;
        cluster.warn(format!("{source}:{number}: unreadable timestamp {stamp:?}"));
        return;
    };
    let mut run = Run::new(tool, &envelope.run_id, &envelope.version, finished);
    let kind = envelope.record.as_deref();
    if let Err(err) = records::read(&mut run.data, kind, text, &mut cluster.strings) {
        cluster.stats.malformed_lines += 1;
        cluster.warn(format!(
            "{source}:{number}: {tool_name} record {:?}: {err}",
            kind.unwrap_or("document")
        ));
        return;
    }
    cluster.add(node, tool, run);
}

/// RFC 3339 (UTC `Z` or a numeric offset) to Unix seconds.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let (civil, offset_seconds) = split_offset(text)?;
    let time = humantime::parse_rfc3339_weak(civil).ok()?;
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(since.as_secs_f64() - offset_seconds)
}

/// Splits `…Z`, `…+01:00` or `…-05:30` into the civil time and its offset
/// in seconds. Works on bytes and checks every character, so any input
/// (a multibyte character where the offset would be, `+inf:00`) is refused
/// instead of panicking or yielding a non-finite time.
fn split_offset(text: &str) -> Option<(&str, f64)> {
    if let Some(civil) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        return Some((civil, 0.0));
    }
    let at = text.len().checked_sub(6)?;
    let civil = text.get(..at)?;
    let &[sign, h1, h0, b':', m1, m0] = text.as_bytes().get(at..)? else {
        return None;
    };
    let sign = match sign {
        b'+' => 1.0,
        b'-' => -1.0,
        _ => return None,
    };
    let hours = two_digits(h1, h0).filter(|h| *h <= 23)?;
    let minutes = two_digits(m1, m0).filter(|m| *m <= 59)?;
    Some((
        civil,
        sign * (f64::from(hours) * 3600.0 + f64::from(minutes) * 60.0),
    ))
}

/// Two ASCII digits as a number.
fn two_digits(tens: u8, ones: u8) -> Option<u8> {
    let digit = |b: u8| b.is_ascii_digit().then(|| b - b'0');
    Some(digit(tens)? * 10 + digit(ones)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_offsets() {
        let utc = parse_timestamp("2026-11-24T01:00:00Z").expect("utc");
        assert_eq!(utc, 1_795_482_000.0);
        assert_eq!(parse_timestamp("2026-11-24T02:00:00+01:00"), Some(utc));
        assert_eq!(parse_timestamp("2026-11-23T19:30:00-05:30"), Some(utc));
        let frac = parse_timestamp("2026-11-24T01:00:00.250Z").expect("frac");
        assert!((frac - utc - 0.25).abs() < 1e-6);
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    /// Regression: a multibyte character where the offset would start
    /// panicked in `split_at`; odd offsets must be refused, not misread.
    #[test]
    fn hostile_timestamps_are_refused_not_panics() {
        for text in [
            "A€BCDE",
            "€€€€€€",
            "2026-11-24T01:00:00€:00",
            "2026-11-24T01:00:00+€:0",
            "2026-11-24T01:00:00+inf:0",
            "2026-11-24T01:00:00+NaN:0",
            "2026-11-24T01:00:00+99:00",
            "2026-11-24T01:00:00+01:99",
            "2026-11-24T01:00:00+1e3:0",
            "+01:00",
        ] {
            assert_eq!(parse_timestamp(text), None, "{text:?}");
        }
        let line = "{\"schema_version\":1,\"tool\":\"fim-check\",\"node\":\"n\",\"timestamp\":\"A€BCDE\"}\n";
        let cluster = read_chunk(&chunk(line), "t");
        assert_eq!(cluster.stats.malformed_lines, 1);
        assert!(cluster.warnings[0].contains("unreadable timestamp"));
    }

    fn chunk(text: &str) -> Chunk {
        Chunk {
            source: 0,
            first_line: 1,
            data: text.as_bytes().to_vec(),
            last: true,
        }
    }

    #[test]
    fn foreign_and_broken_lines_are_counted_not_fatal() {
        let text = "plain log line\n{\"level\":\"info\"}\n{broken\n\n{\"schema_version\":1,\"tool\":\"cluster-report\",\"node\":\"n\",\"timestamp\":\"2026-11-24T01:00:00Z\"}\n";
        let cluster = read_chunk(&chunk(text), "t.jsonl");
        assert_eq!(cluster.stats.lines, 4);
        assert_eq!(cluster.stats.other_lines, 2);
        assert_eq!(cluster.stats.malformed_lines, 1);
        assert_eq!(cluster.stats.unsupported_records, 1);
        assert!(
            cluster.warnings[0].starts_with("t.jsonl:3: "),
            "{:?}",
            cluster.warnings
        );
        assert!(cluster.nodes.is_empty());
    }

    #[test]
    fn newer_schema_is_refused_with_a_warning() {
        let text = "{\"schema_version\":99,\"tool\":\"fim-check\",\"node\":\"n\",\"timestamp\":\"2026-11-24T01:00:00Z\"}";
        let cluster = read_chunk(&chunk(text), "t");
        assert_eq!(cluster.stats.unsupported_records, 1);
        assert!(cluster.warnings[0].contains("schema_version 99"));
    }

    #[test]
    fn truncated_cri_piece_is_reported() {
        let text = "2026-11-24T01:00:00Z stdout P {\"schema_version\":1,";
        let cluster = read_chunk(&chunk(text), "0.log");
        assert_eq!(cluster.stats.malformed_lines, 1);
        assert!(cluster.warnings[0].contains("split"));
    }
}
