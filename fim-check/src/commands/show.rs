//! `show`: a baseline's metadata, or with `--path` one recorded entry.

use super::setup::read_key;
use super::stored::{baseline_error, baseline_info, open_baseline, unauthenticated_warning};
use crate::cli::ShowArgs;
use crate::compare::{applies, attr_value};
use crate::entry::{display_path, Entry};
use crate::policy::normalize;
use crate::report::ShowReport;
use crate::{TOOL, VERSION};
use anyhow::{bail, Result};
use nodeguard_common::exit::SUCCESS;
use nodeguard_common::finish::{render, Finish};
use nodeguard_common::hostroot::HostRoot;
use nodeguard_common::report::RunContext;
use std::io::Write;

pub(crate) fn show(a: &ShowArgs, out: &mut dyn Write) -> Result<u8> {
    let key = read_key(a.key_file.as_deref())?;
    let want = a
        .path
        .as_deref()
        .map(normalize)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--path: {e}"))?;
    let mut reader = open_baseline(&a.baseline, key.as_deref())?;
    let mut found = None;
    while let Some(e) = reader
        .next_entry()
        .map_err(|e| baseline_error(&a.baseline, e))?
    {
        if want.as_deref() == Some(e.path.as_slice()) {
            found = Some(e);
        }
    }
    let entry = match (&want, found) {
        (Some(p), None) => bail!(
            "{} has no entry for {}",
            a.baseline.display(),
            display_path(p)
        ),
        (_, Some(e)) => Some(entry_json(&e)),
        (None, None) => None,
    };
    let header = reader.header().clone();
    let warnings = unauthenticated_warning(reader.unverified, key.is_some())
        .into_iter()
        .collect();
    let report = ShowReport {
        command: "show",
        baseline: baseline_info(&a.baseline, &header, reader.count(), key.is_some()),
        entry,
        warnings,
    };
    let host = HostRoot::open(&a.common.host_root).ok();
    let node = host
        .as_ref()
        .map_or_else(|| header.node.clone(), |h| a.common.node_name(h));
    let ctx = RunContext::new(TOOL, VERSION, node);
    Finish::print(
        out,
        &render(&ctx, &report, a.common.format, a.common.pretty)?,
    )?;
    Ok(SUCCESS)
}

/// One recorded entry with the attributes its rule records.
fn entry_json(e: &Entry) -> serde_json::Value {
    let mut attrs = serde_json::Map::new();
    for a in e.attrs.iter().filter(|a| applies(*a, e.ftype)) {
        if a != crate::attrs::Attr::Growing {
            attrs.insert(a.name().to_string(), attr_value(e, a));
        }
    }
    serde_json::json!({
        "path": display_path(&e.path),
        "type": e.ftype.name(),
        "rule_attributes": e.attrs.to_string(),
        "recursive": e.recursive,
        "attributes": attrs,
    })
}
