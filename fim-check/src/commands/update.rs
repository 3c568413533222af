//! `update`: check, then accept the current state as the new baseline
//! (written atomically; the old one is kept as `<baseline>.prev`).

use super::check::compare_host;
use super::finish;
use super::setup::setup;
use super::stored::{
    baseline_info, commit_baseline, create_baseline, keep_previous, open_for_comparison,
};
use crate::cli::ScanArgs;
use anyhow::{Context, Result};
use std::io::Write;

pub(crate) fn update(a: &ScanArgs, out: &mut dyn Write) -> Result<u8> {
    let mut s = setup(a)?;
    let path = &a.baseline;
    let mut reader = open_for_comparison(path, &mut s)?;
    let header = reader.header().clone();
    let mut report = s.empty_report("update", baseline_info(path, &header, 0, s.key.is_some()));
    let mut new_header = s.new_header();
    new_header.limits.clone_from(&header.limits);
    let writer = create_baseline(path, &new_header, s.key.as_deref())?;
    let writer = compare_host(&s, path, &mut reader, Some(writer), &mut report)?
        .context("internal error: the new baseline's writer was lost")?;
    let prev = keep_previous(path, reader)?;
    report.baseline.entries = commit_baseline(path, writer)?;
    report.baseline.previous = Some(prev.display().to_string());
    finish(&s, a, &report, out)
}
