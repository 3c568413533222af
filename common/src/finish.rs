//! The one way every tool's run ends, so that "exit 2 means no report"
//! holds by construction.
//!
//! A tool's `run` does its work inside [`Finish::guard`] and ends with
//! [`Finish::publish`]:
//!
//! 1. the report is rendered in memory ([`render`]), so a serialization
//!    error never leaves half a document;
//! 2. the metrics file is written (`--metrics-file`);
//! 3. only then the report is written to `out` (stdout).
//!
//! A failure at 1 or 2 is an error with nothing on stdout (exit 2). When the
//! body fails, [`Finish::guard`] stamps a failed run in the metrics file (the
//! previous series are kept, see [`crate::metrics`]) and returns the body's
//! error unchanged. A failure to write the report itself (step 3, e.g. a
//! closed stdout) is an error too, and `guard` stamps it as a failed run.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::metrics::{write_run_metrics, Metrics};
use crate::report::{emit, Format, Report, RunContext};

/// How one tool run ends: its name, version and `--metrics-file`.
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a> {
    tool: &'static str,
    version: &'static str,
    metrics_file: Option<&'a Path>,
}

/// The metrics file could not be written: the run failed, and stamping the
/// failure in that same file is pointless.
#[derive(Debug)]
pub struct MetricsFileError {
    /// The `--metrics-file` path.
    pub path: PathBuf,
    /// Why it could not be written.
    pub cause: String,
}

impl fmt::Display for MetricsFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot write --metrics-file {} (no report printed): {}",
            self.path.display(),
            self.cause
        )
    }
}

impl std::error::Error for MetricsFileError {}

impl<'a> Finish<'a> {
    /// The end of a run of `tool` writing metrics to `metrics_file`, if any.
    pub fn new(tool: &'static str, version: &'static str, metrics_file: Option<&'a Path>) -> Self {
        Self {
            tool,
            version,
            metrics_file,
        }
    }

    /// Runs the body; when it fails, stamps a failed run in the metrics file
    /// (a warning if that fails too) and returns the body's error.
    ///
    /// A metrics file that can never be written (its directory is missing,
    /// it is a FIFO or a device) fails the run *before* the body runs: a
    /// tool that changes the host (install-agent, fim-check update) must not
    /// act and then report nothing.
    pub fn guard<T>(&self, body: impl FnOnce() -> Result<T>) -> Result<T> {
        if let Some(path) = self.metrics_file {
            preflight(path).map_err(|e| {
                anyhow::Error::new(MetricsFileError {
                    path: path.to_path_buf(),
                    cause: format!("{e:#}"),
                })
            })?;
        }
        let result = body();
        if let (Err(err), Some(path)) = (&result, self.metrics_file) {
            if !err
                .chain()
                .any(<dyn std::error::Error>::is::<MetricsFileError>)
            {
                self.stamp_failure(path);
            }
        }
        result
    }

    /// Writes the metrics file (when one was asked for), then the report to
    /// `out`. `success` is false when the report describes a failed run
    /// (e.g. a failed install): the previous series are kept then.
    pub fn publish(
        &self,
        out: &mut dyn Write,
        report: &[u8],
        metrics: &Metrics,
        success: bool,
    ) -> Result<()> {
        if let Some(path) = self.metrics_file {
            write_run_metrics(path, metrics, self.version, success).map_err(|e| {
                anyhow::Error::new(MetricsFileError {
                    path: path.to_path_buf(),
                    cause: format!("{e:#}"),
                })
            })?;
        }
        // A failure here is stamped as a failed run by `guard`.
        Self::print(out, report)
    }

    /// Writes the report to `out` when there are no metrics to write (a
    /// subcommand without `--metrics-file`, a report to a file).
    pub fn print(out: &mut dyn Write, report: &[u8]) -> Result<()> {
        out.write_all(report)
            .and_then(|()| out.flush())
            .context("cannot write the report to stdout")
    }

    fn stamp_failure(&self, path: &Path) {
        if let Err(e) = write_run_metrics(path, &Metrics::new(self.tool), self.version, false) {
            log::warn!(
                "cannot record the failed run in --metrics-file {}: {e:#}",
                path.display()
            );
        }
    }
}

/// Fails when `path` cannot be a metrics file: not a regular file, or its
/// directory is missing.
fn preflight(path: &Path) -> Result<()> {
    crate::input::ensure_regular_or_absent(path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => anyhow::bail!("{} is not a directory", dir.display()),
        Err(e) => anyhow::bail!("directory {}: {e}", dir.display()),
    }
}

/// The report rendered in memory in the chosen format (see
/// [`crate::report::emit`]).
pub fn render<R: Report>(
    ctx: &RunContext,
    report: &R,
    format: Format,
    pretty: bool,
) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(4096);
    emit(&mut buf, ctx, report, format, pretty).context("cannot serialize the report")?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing;

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn unwritable_metrics_file_means_no_report() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir/x.prom");
        let finish = Finish::new("detect-host", "0.1.0", Some(&path));
        let mut out = Vec::new();
        // publish alone (guard would stop earlier, see below).
        let err = finish
            .publish(&mut out, b"{}\n", &Metrics::new("detect-host"), true)
            .unwrap_err();
        assert!(out.is_empty(), "a report was printed");
        let text = format!("{err:#}");
        assert!(text.contains("missing-dir/x.prom"), "{text}");
        assert!(err
            .chain()
            .any(<dyn std::error::Error>::is::<MetricsFileError>));
    }

    #[test]
    fn a_metrics_file_that_cannot_be_written_stops_the_run_before_it_acts() {
        let dir = tempfile::tempdir().unwrap();
        for path in [dir.path().join("missing/x.prom"), "/dev/null".into()] {
            let finish = Finish::new("install-agent", "0.1.0", Some(&path));
            let mut acted = false;
            let err = finish
                .guard(|| {
                    acted = true;
                    Ok(0)
                })
                .unwrap_err();
            assert!(!acted, "the body ran");
            assert!(
                format!("{err:#}").contains(&path.display().to_string()),
                "{err:#}"
            );
        }
    }

    #[test]
    fn metrics_then_report() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.prom");
        let finish = Finish::new("fim-check", "0.1.0", Some(&path));
        let mut out = Vec::new();
        finish
            .guard(|| finish.publish(&mut out, b"{}\n", &Metrics::new("fim-check"), true))
            .unwrap();
        assert_eq!(out, b"{}\n");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("nodeguard_fim_check_last_run_success 1\n"),
            "{text}"
        );
    }

    #[test]
    fn failed_body_stamps_a_failed_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.prom");
        let finish = Finish::new("bench-node", "0.1.0", Some(&path));
        let err = finish
            .guard(|| -> Result<u8> { anyhow::bail!("boom") })
            .unwrap_err();
        assert_eq!(format!("{err:#}"), "boom");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("nodeguard_bench_node_last_run_success 0\n"),
            "{text}"
        );
    }

    #[test]
    fn closed_stdout_stamps_a_failed_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.prom");
        let finish = Finish::new("scan-images", "0.1.0", Some(&path));
        let err = finish
            .guard(|| finish.publish(&mut Failing, b"{}\n", &Metrics::new("scan-images"), true))
            .unwrap_err();
        assert!(format!("{err:#}").contains("stdout"), "{err:#}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("nodeguard_scan_images_last_run_success 0\n"),
            "{text}"
        );
    }
}
