//! The JSON report and the metrics file.

use crate::compare::AttrChange;
use crate::entry::display_path;
use crate::policy::hex;
use nodeguard_common::metrics::Metrics;
use nodeguard_common::report::{Record, Report};
use serde::Serialize;

/// Change kinds, in metric label order.
pub const KINDS: [&str; 3] = ["added", "removed", "changed"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Added,
    Removed,
    Changed,
}

/// One added, removed or changed path.
#[derive(Debug, Serialize)]
pub struct Change {
    pub path: String,
    /// The raw path in hex when it is not UTF-8 (`path` then shows `\xNN`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub kind: Kind,
    /// File type (the current one, or the recorded one for `removed`).
    #[serde(rename = "type")]
    pub ftype: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttrChange>,
}

/// A path that could not be examined; not fatal.
#[derive(Debug, Serialize)]
pub struct EntryError {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub message: String,
}

fn hex_if_needed(p: &[u8]) -> Option<String> {
    std::str::from_utf8(p).is_err().then(|| hex(p))
}

impl Change {
    pub fn new(
        path: &[u8],
        kind: Kind,
        ftype: &'static str,
        attributes: Vec<AttrChange>,
    ) -> Change {
        Change {
            path: display_path(path),
            path_hex: hex_if_needed(path),
            kind,
            ftype,
            attributes,
        }
    }
}

impl EntryError {
    pub fn new(path: &[u8], message: impl Into<String>) -> EntryError {
        EntryError {
            path: display_path(path),
            path_hex: hex_if_needed(path),
            message: message.into(),
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub errors: u64,
    /// Entries examined on the host (recorded by the policy).
    pub scanned: u64,
}

#[derive(Debug, Serialize)]
pub struct ConfigInfo {
    pub source: String,
    pub digest: String,
}

#[derive(Debug, Serialize)]
pub struct BaselineInfo {
    pub path: String,
    pub format_version: u16,
    pub created_at: String,
    pub node: String,
    pub config_source: String,
    pub config_digest: String,
    pub tool_version: String,
    pub entries: u64,
    /// The HMAC was verified with `--key-file`.
    pub authenticated: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<String>,
    /// For `update`: the previous baseline kept beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// The body of `init`, `check` and `update` reports.
#[derive(Debug, Serialize)]
pub struct ScanReport {
    pub command: &'static str,
    pub host_root: String,
    pub config: ConfigInfo,
    pub baseline: BaselineInfo,
    pub summary: Summary,
    pub changes: Vec<Change>,
    pub errors: Vec<EntryError>,
    /// Warnings about the run itself (e.g. an unverified baseline).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Report for ScanReport {
    const SCHEMA_VERSION: u32 = 1;

    fn text(
        &self,
        ctx: &nodeguard_common::report::RunContext,
        painter: &nodeguard_common::text::Painter,
    ) -> String {
        crate::text::render(self, ctx, painter)
    }

    fn jsonl_records(&self) -> Vec<Record> {
        let mut out: Vec<Record> = self
            .changes
            .iter()
            .map(|c| Record::new("change", c))
            .collect();
        out.extend(self.errors.iter().map(|e| Record::new("error", e)));
        out.push(Record::new(
            "summary",
            &serde_json::json!({
                "command": self.command,
                "host_root": self.host_root,
                "config": self.config,
                "baseline": self.baseline,
                "summary": self.summary,
                "warnings": self.warnings,
            }),
        ));
        out
    }
}

impl ScanReport {
    pub fn add(&mut self, c: Change) {
        match c.kind {
            Kind::Added => self.summary.added += 1,
            Kind::Removed => self.summary.removed += 1,
            Kind::Changed => self.summary.changed += 1,
        }
        self.changes.push(c);
    }

    pub fn error(&mut self, e: EntryError) {
        self.summary.errors += 1;
        self.errors.push(e);
    }

    /// The metric families of this run.
    #[allow(clippy::cast_precision_loss)] // counts far below 2^53
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::new(crate::TOOL);
        let counts = [
            self.summary.added,
            self.summary.removed,
            self.summary.changed,
        ];
        let fam = m.gauge(
            "changes",
            "Paths added, removed or changed since the baseline, by kind (last run).",
        );
        for (kind, n) in KINDS.iter().zip(counts) {
            fam.sample(&[("kind", kind)], n as f64);
        }
        m.gauge("entries", "Entries the last run examined on the host.")
            .sample(&[], self.summary.scanned as f64);
        m.gauge("errors", "Paths the last run could not examine.")
            .sample(&[], self.summary.errors as f64);
        m.gauge(
            "baseline_authenticated",
            "1 if the baseline's HMAC was verified with a key, else 0.",
        )
        .sample(
            &[],
            if self.baseline.authenticated {
                1.0
            } else {
                0.0
            },
        );
        m
    }
}

/// `show`'s body.
#[derive(Debug, Serialize)]
pub struct ShowReport {
    pub command: &'static str,
    pub baseline: BaselineInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Report for ShowReport {
    const SCHEMA_VERSION: u32 = 1;
}
