//! `check`: compare the host with the baseline and report what changed.

use super::finish;
use super::setup::{setup, Setup};
use super::stored::{
    baseline_error, baseline_info, open_for_comparison, unauthenticated_warning, BaselineReader,
    BaselineWriter,
};
use crate::cli::ScanArgs;
use crate::merge::{MergeError, Merger};
use crate::report::ScanReport;
use crate::scan::scan;
use anyhow::Result;
use std::io::Write;
use std::path::Path;

pub(crate) fn check(a: &ScanArgs, out: &mut dyn Write) -> Result<u8> {
    let mut s = setup(a)?;
    let mut reader = open_for_comparison(&a.baseline, &mut s)?;
    let report = full_check(&s, &a.baseline, &mut reader)?;
    finish(&s, a, &report, out)
}

/// A whole check against an opened baseline (`open_for_comparison`):
/// the report `check` prints, baseline tag verified.
pub(crate) fn full_check(
    s: &Setup,
    path: &Path,
    reader: &mut BaselineReader,
) -> Result<ScanReport> {
    let mut report = s.empty_report(
        "check",
        baseline_info(path, reader.header(), 0, s.key.is_some()),
    );
    compare_host(s, path, reader, None, &mut report)?;
    Ok(report)
}

/// Walks the host and joins it with the baseline, filling `report`; with
/// `writer`, the joined result is streamed into it (the next baseline) and
/// handed back. Sets the entry count and the authentication warning.
pub(crate) fn compare_host(
    s: &Setup,
    path: &Path,
    reader: &mut BaselineReader,
    writer: Option<BaselineWriter>,
    report: &mut ScanReport,
) -> Result<Option<BaselineWriter>> {
    let root_fd = &s.root_fd;
    let mut prefix = |p: &[u8], len: u64| crate::hash::hash_prefix(root_fd, p, len);
    let mut merger = Merger::new(reader, s.scope.clone(), writer, report, &mut prefix);
    let mut failure: Option<MergeError> = None;
    let scanned = scan(&s.source(), &mut |item| {
        merger.item(item).map_err(|e| {
            let msg = format!("{e:?}");
            failure = Some(e);
            anyhow::anyhow!(msg)
        })
    });
    let result = match (failure, scanned) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => return Err(e),
        (None, Ok(())) => merger.finish(),
    };
    let writer = match result {
        Ok(w) => w,
        Err(MergeError::Baseline(e)) => return Err(baseline_error(path, e)),
        Err(MergeError::Write(e)) => {
            return Err(
                anyhow::Error::new(e).context(format!("cannot write baseline {}", path.display()))
            )
        }
    };
    report.baseline.entries = reader.count();
    report
        .warnings
        .extend(unauthenticated_warning(reader.unverified, s.key.is_some()));
    Ok(writer)
}
