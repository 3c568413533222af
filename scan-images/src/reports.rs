//! Full Trivy reports under `--output-dir`, one file per scan:
//! `<image hex>.<unix ms>.json` (or `host.<unix ms>.json`), written
//! atomically, so a reader never sees half a report and a full disk leaves
//! only the previous files. Retention keeps the `--keep` newest files per
//! image, and removes every file of an image no longer running once its
//! newest is older than `--keep-absent`. Files not named this way are
//! never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;

/// The file stem for an image ID (`sha256:<hex>` → `<hex>`), or a safe
/// rendering of anything else.
pub fn stem_for(image_id: &str) -> String {
    let raw = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes one report; returns its path.
pub fn write(dir: &Path, stem: &str, at: SystemTime, bytes: &[u8]) -> Result<PathBuf> {
    nodeguard_common::atomic::ensure_dir(dir, 0o750)?;
    let ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let path = dir.join(format!("{stem}.{ms}.json"));
    nodeguard_common::atomic::write_file(&path, bytes, 0o640)?;
    Ok(path)
}

fn parse_name(name: &str) -> Option<(&str, u128)> {
    let rest = name.strip_suffix(".json")?;
    let (stem, ms) = rest.rsplit_once('.')?;
    if stem.is_empty() || stem.starts_with('.') {
        return None;
    }
    Some((stem, ms.parse().ok()?))
}

/// Applies retention; `present` holds the stems of images seen this cycle.
/// Returns the files removed.
pub fn retain(
    dir: &Path,
    present: &BTreeSet<String>,
    keep: usize,
    keep_absent: Duration,
    now: SystemTime,
) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut groups: BTreeMap<String, Vec<(u128, PathBuf)>> = BTreeMap::new();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((stem, ms)) = parse_name(&name) {
            groups
                .entry(stem.to_string())
                .or_default()
                .push((ms, entry.path()));
        } else if name.starts_with('.')
            && name.ends_with(".tmp")
            && older_than(&entry.path(), Duration::from_secs(3600))
        {
            // Left by a killed run between create and rename.
            remove(&entry.path(), &mut removed);
        }
    }
    let now_ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    for (stem, mut files) in groups {
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        let newest = files.first().map_or(0, |f| f.0);
        let absent_expired =
            !present.contains(&stem) && now_ms.saturating_sub(newest) > keep_absent.as_millis();
        let cut = if absent_expired { 0 } else { keep };
        for (_, path) in files.iter().skip(cut) {
            remove(path, &mut removed);
        }
    }
    removed
}

fn older_than(path: &Path, age: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|a| a > age)
}

fn remove(path: &Path, removed: &mut Vec<PathBuf>) {
    match std::fs::remove_file(path) {
        Ok(()) => removed.push(path.to_path_buf()),
        Err(e) => log::warn!("retention: removing {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_file_safe() {
        assert_eq!(stem_for("sha256:abc123"), "abc123");
        assert_eq!(stem_for("quay.io/x:1"), "quay_io_x_1");
        assert_eq!(stem_for("host"), "host");
    }

    #[test]
    fn keeps_newest_per_image_and_drops_long_gone_images() {
        let dir = tempfile::tempdir().unwrap();
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        for s in [100, 200, 300, 400] {
            write(dir.path(), "aaa", t(s), b"{}").unwrap();
        }
        write(dir.path(), "gone", t(100), b"{}").unwrap();
        write(dir.path(), "recent-gone", t(990), b"{}").unwrap();
        std::fs::write(dir.path().join("README"), "not ours").unwrap();
        let present = BTreeSet::from(["aaa".to_string()]);
        let removed = retain(dir.path(), &present, 2, Duration::from_secs(500), t(1000));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "README",
                "aaa.300000.json",
                "aaa.400000.json",
                "recent-gone.990000.json"
            ],
            "removed {removed:?}"
        );
    }
}
