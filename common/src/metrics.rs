//! Prometheus text format for node-exporter's textfile collector.
//!
//! Names are `nodeguard_<tool>_<name>` (tool in snake case), in base units,
//! `_total` only on counters. Files carry no sample timestamps (the
//! collector rejects them) and are written atomically, because the collector
//! may read the directory at any moment and a half-written file makes it
//! report a scrape error for the whole directory.
//!
//! Every run updates `…_last_run_timestamp_seconds`, `…_last_run_success`
//! and, on success, `…_last_success_timestamp_seconds`. A failed run keeps
//! the previous file's series (the last known findings stay visible, so
//! alerts do not resolve just because a scan broke) and only moves the
//! last-run stamp and success flag; staleness alerts key on last-success.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use anyhow::Result;

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A value that only goes up; its name ends in `_total`.
    Counter,
}

/// One metric family: name, help, type and samples.
#[derive(Debug, Clone)]
pub struct Family {
    name: String,
    help: String,
    kind: Kind,
    samples: Vec<(Vec<(String, String)>, f64)>,
}

impl Family {
    /// Adds a sample with these labels. Label names must be valid
    /// Prometheus names; values are escaped here.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        self.samples.push((labels, value));
        self
    }

    /// The full metric name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The metrics of one tool run.
#[derive(Debug, Clone)]
pub struct Metrics {
    tool: String,
    prefix: String,
    families: Vec<Family>,
}

impl Metrics {
    /// Metrics for `tool` (e.g. `fim-check` → prefix `nodeguard_fim_check_`).
    pub fn new(tool: &str) -> Self {
        let snake = tool.replace('-', "_");
        Self {
            tool: tool.to_string(),
            prefix: format!("nodeguard_{snake}_"),
            families: Vec::new(),
        }
    }

    /// The full name for a short `name`.
    pub fn full_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The gauge family `nodeguard_<tool>_<name>`, created on first use.
    pub fn gauge(&mut self, name: &str, help: &str) -> &mut Family {
        self.family(name, help, Kind::Gauge)
    }

    /// The counter family `nodeguard_<tool>_<name>` (`name` must end in `_total`).
    pub fn counter(&mut self, name: &str, help: &str) -> &mut Family {
        debug_assert!(
            name.ends_with("_total"),
            "counter {name} must end in _total"
        );
        self.family(name, help, Kind::Counter)
    }

    fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Family {
        let full = self.full_name(name);
        self.family_full(full, help, kind)
    }

    fn family_full(&mut self, full: String, help: &str, kind: Kind) -> &mut Family {
        let index = match self.families.iter().position(|f| f.name == full) {
            Some(i) => i,
            None => {
                self.families.push(Family {
                    name: full,
                    help: help.to_string(),
                    kind,
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        // In bounds: `position` found it, or it was pushed just above.
        #[allow(clippy::indexing_slicing)]
        &mut self.families[index]
    }

    /// The text exposition of all families.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for family in &self.families {
            let kind = match family.kind {
                Kind::Gauge => "gauge",
                Kind::Counter => "counter",
            };
            let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(&family.help));
            let _ = writeln!(out, "# TYPE {} {kind}", family.name);
            for (labels, value) in &family.samples {
                out.push_str(&family.name);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape_label_value(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", format_value(*value));
            }
        }
        out
    }
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

/// Writes a run's metrics file: the tool's families plus the run stamps and
/// `nodeguard_build_info`. On failure (`success == false`) the previous
/// file's tool series are kept and only the stamps change; see the module
/// docs.
pub fn write_run_metrics(
    path: &Path,
    metrics: &Metrics,
    version: &str,
    success: bool,
) -> Result<()> {
    let now = crate::report::unix_seconds(SystemTime::now());
    // Never a FIFO, device or directory: it would be read back (blocking,
    // unbounded, or the tool's own stdout) and written in place.
    crate::input::ensure_regular_or_absent(path)?;
    let previous = if success {
        String::new()
    } else {
        read_previous(path)?
    };
    let last_run = metrics.full_name("last_run_timestamp_seconds");
    let last_success = metrics.full_name("last_success_timestamp_seconds");
    let last_ok = metrics.full_name("last_run_success");

    let mut body = if success {
        metrics.render()
    } else {
        strip_families(
            &previous,
            &[&last_run, &last_success, &last_ok, "nodeguard_build_info"],
        )
    };
    let success_stamp = if success {
        Some(now)
    } else {
        previous_value(&previous, &last_success)
    };

    let mut stamps = Metrics::new(&metrics.tool);
    stamps
        .gauge(
            "last_run_timestamp_seconds",
            "Unix time the tool last ran, successfully or not.",
        )
        .sample(&[], now);
    stamps
        .gauge(
            "last_run_success",
            "1 if the tool's last run succeeded, 0 if it failed.",
        )
        .sample(&[], if success { 1.0 } else { 0.0 });
    let family = stamps.gauge(
        "last_success_timestamp_seconds",
        "Unix time the tool last completed a run successfully.",
    );
    if let Some(stamp) = success_stamp {
        family.sample(&[], stamp);
    }
    stamps
        .family_full(
            "nodeguard_build_info".to_string(),
            "nodeguard tool build information; always 1.",
            Kind::Gauge,
        )
        .sample(&[("tool", &metrics.tool), ("version", version)], 1.0);
    body.push_str(&stamps.render());
    crate::atomic::write_file(path, body.as_bytes(), 0o644)
}

/// The most a previous metrics file may hold to be read back.
pub const MAX_PREVIOUS_BYTES: u64 = 16 * 1024 * 1024;

/// The previous metrics file's text (empty when there is none), read only
/// if it is a regular file of at most [`MAX_PREVIOUS_BYTES`].
fn read_previous(path: &Path) -> Result<String> {
    let bytes = crate::input::read_regular_file_if_exists(path, MAX_PREVIOUS_BYTES)?;
    Ok(bytes.map_or_else(String::new, |b| String::from_utf8_lossy(&b).into_owned()))
}

/// The value of an unlabelled sample `name` in a text exposition.
fn previous_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.trim().parse().ok()
    })
}

/// The exposition without the named families (HELP, TYPE and samples).
fn strip_families(text: &str, names: &[&str]) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let metric = if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
        {
            rest.split(' ').next().unwrap_or("")
        } else {
            line.split(['{', ' ']).next().unwrap_or("")
        };
        if names.contains(&metric) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Counts per label value with every expected value present (zeros
/// included), in a stable order: the usual shape of "zero-valued series
/// emitted up front".
pub fn counts_with_zeros<'a>(
    expected: impl IntoIterator<Item = &'a str>,
    observed: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> =
        expected.into_iter().map(|k| (k.to_string(), 0)).collect();
    for key in observed {
        *counts.entry(key.to_string()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn sample_metrics() -> Metrics {
        let mut m = Metrics::new("fim-check");
        let changes = m.gauge("changes", "Changes found by the last check, by kind.");
        for kind in ["added", "removed", "changed"] {
            changes.sample(&[("kind", kind)], 0.0);
        }
        m.gauge("entries", "Entries in the baseline.")
            .sample(&[], 1234.0);
        m
    }

    #[test]
    fn renders_prefixed_families_with_zero_series() {
        let text = sample_metrics().render();
        assert!(
            text.contains("# TYPE nodeguard_fim_check_changes gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("nodeguard_fim_check_changes{kind=\"removed\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("nodeguard_fim_check_entries 1234\n"),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut m = Metrics::new("t");
        m.gauge("x", "help").sample(&[("path", "a\"b\\c\nd")], 1.5);
        assert!(
            m.render()
                .contains(r#"nodeguard_t_x{path="a\"b\\c\nd"} 1.5"#),
            "{}",
            m.render()
        );
    }

    #[test]
    fn success_writes_stamps_and_failure_keeps_previous_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fim.prom");
        write_run_metrics(&path, &sample_metrics(), "0.1.0", true).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        let success_stamp =
            previous_value(&first, "nodeguard_fim_check_last_success_timestamp_seconds").unwrap();
        assert!(first.contains("nodeguard_fim_check_last_run_success 1\n"));
        assert!(first.contains("nodeguard_build_info{tool=\"fim-check\",version=\"0.1.0\"} 1\n"));

        write_run_metrics(&path, &Metrics::new("fim-check"), "0.1.0", false).unwrap();
        let second = std::fs::read_to_string(&path).unwrap();
        assert!(
            second.contains("nodeguard_fim_check_entries 1234\n"),
            "{second}"
        );
        assert!(
            second.contains("nodeguard_fim_check_last_run_success 0\n"),
            "{second}"
        );
        assert_eq!(
            previous_value(
                &second,
                "nodeguard_fim_check_last_success_timestamp_seconds"
            ),
            Some(success_stamp)
        );
        assert_eq!(
            second.matches("# TYPE nodeguard_build_info").count(),
            1,
            "{second}"
        );
    }

    #[test]
    fn first_ever_run_failing_has_no_success_sample() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.prom");
        write_run_metrics(&path, &Metrics::new("bench-node"), "0.1.0", false).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# TYPE nodeguard_bench_node_last_success_timestamp_seconds gauge"));
        assert!(
            previous_value(&text, "nodeguard_bench_node_last_success_timestamp_seconds").is_none()
        );
    }

    /// Runs `f` on a thread and fails if it has not returned within `limit`
    /// (a hang shows up as a failed test, not a stuck test run).
    fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(limit)
            .expect("did not return in time (hang)")
    }

    #[test]
    fn special_files_are_refused_without_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("metrics.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for path in [
            fifo.clone(),
            PathBuf::from("/dev/zero"),
            PathBuf::from("/dev/null"),
            dir.path().to_path_buf(),
        ] {
            for success in [true, false] {
                let p = path.clone();
                let err = within(Duration::from_secs(10), move || {
                    write_run_metrics(&p, &Metrics::new("x"), "0", success)
                })
                .unwrap_err();
                let text = format!("{err:#}");
                assert!(text.contains(&path.display().to_string()), "{text}");
                assert!(text.contains("not a regular file"), "{text}");
                assert!(!text.contains('\n'), "{text}");
            }
        }
    }

    #[test]
    fn an_oversized_previous_file_is_not_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.prom");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_PREVIOUS_BYTES + 1).unwrap();
        let err = write_run_metrics(&path, &Metrics::new("x"), "0", false).unwrap_err();
        assert!(format!("{err:#}").contains("limit"), "{err:#}");
        // A successful run does not need the old file: it replaces it.
        write_run_metrics(&path, &Metrics::new("x"), "0", true).unwrap();
    }

    #[test]
    fn counts_include_zeros() {
        let counts = counts_with_zeros(["PASS", "FAIL", "WARN", "INFO"], ["FAIL", "PASS", "FAIL"]);
        assert_eq!(counts["FAIL"], 2);
        assert_eq!(counts["WARN"], 0);
        assert_eq!(counts.len(), 4);
    }
}
