//! `init`: walk the selected files and write a new baseline.

use super::finish;
use super::setup::setup;
use super::stored::{baseline_info, commit_baseline, create_baseline, unauthenticated_warning};
use crate::cli::InitArgs;
use crate::report::EntryError;
use crate::scan::scan;
use crate::walk::Item;
use anyhow::{bail, Context, Result};
use std::io::Write;

pub(crate) fn init(a: &InitArgs, out: &mut dyn Write) -> Result<u8> {
    let s = setup(&a.scan)?;
    let path = &a.scan.baseline;
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            bail!(
                "baseline {} is {}, not a regular file: refusing to replace it",
                path.display(),
                nodeguard_common::input::describe_type(&meta)
            );
        }
    }
    if path.exists() && !a.force {
        bail!("baseline {} already exists; use `update` to accept changes or `init --force` to replace it", path.display());
    }
    let header = s.new_header();
    let mut writer = create_baseline(path, &header, s.key.as_deref())?;
    let mut report = s.empty_report("init", baseline_info(path, &header, 0, s.key.is_some()));
    scan(&s.source(), &mut |item| {
        match item {
            Item::Error { path, message } => report.error(EntryError::new(&path, message)),
            Item::Entry { entry, .. } => {
                report.summary.scanned += 1;
                if let Some(m) = &entry.error {
                    report.error(EntryError::new(&entry.path, m.clone()));
                }
                writer.write(&entry)?;
            }
        }
        Ok(())
    })
    .with_context(|| format!("cannot write baseline {}", path.display()))?;
    report.baseline.entries = commit_baseline(path, writer)?;
    if s.key.is_none() {
        report
            .warnings
            .extend(unauthenticated_warning(false, false));
    }
    finish(&s, &a.scan, &report, out)
}
