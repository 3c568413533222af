//! The result cache: an image already scanned against the same
//! vulnerability DB, with the same severity filter and source, is not
//! scanned again within `--ttl`. Entries are small JSON files named by a
//! hash of the key, written atomically; an unreadable entry is a miss.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::trivy_report::{Counts, Severity};

/// What a cached result is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// Normalised image ID (or `host:<fingerprint>` for the host scan).
    pub image_id: String,
    /// The DB's `UpdatedAt`.
    pub db_updated_at: String,
    /// The severity filter.
    pub severities: Vec<Severity>,
    /// `containerd`, `rootfs`, …: a rootfs scan sees a different tree.
    pub source: String,
}

impl CacheKey {
    fn file_name(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(serde_json::to_vec(self).unwrap_or_default());
        let digest = hash.finalize();
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("{hex}.json")
    }
}

/// A stored result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The key it was stored under (checked on read against hash collisions).
    pub key: CacheKey,
    /// Unix seconds of the scan.
    pub scanned_at: u64,
    /// The findings.
    pub vulnerabilities: Counts,
    /// The full report written for that scan.
    pub report_path: Option<PathBuf>,
    /// The OS Trivy detected, for the report.
    pub os: Option<String>,
    /// How the image was reached when that differs from the plan (a
    /// fallback): `rootfs`.
    #[serde(default)]
    pub source: Option<String>,
    /// What was scanned, and why, when it was a fallback.
    #[serde(default)]
    pub scan_target: Option<String>,
    /// The caveat shown with the result.
    #[serde(default)]
    pub note: Option<String>,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
    ttl: Duration,
}

/// Largest cache entry read (an entry is a few hundred bytes of JSON).
const MAX_ENTRY_BYTES: u64 = 1 << 20;

impl ResultCache {
    /// A cache in `dir` with entries valid for `ttl`.
    pub fn new(dir: impl Into<PathBuf>, ttl: Duration) -> Self {
        Self {
            dir: dir.into(),
            ttl,
        }
    }

    /// A fresh entry for `key` whose full report still exists, if any.
    pub fn get(&self, key: &CacheKey, now: SystemTime) -> Option<CacheEntry> {
        let path = self.dir.join(key.file_name());
        let bytes =
            match nodeguard_common::input::read_regular_file_if_exists(&path, MAX_ENTRY_BYTES) {
                Ok(bytes) => bytes?,
                Err(e) => {
                    log::warn!("ignoring unreadable cache entry: {e:#}");
                    return None;
                }
            };
        let entry: CacheEntry = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("ignoring unreadable cache entry {}: {e}", path.display());
                return None;
            }
        };
        let now_secs = unix(now);
        let fresh = entry.key == *key
            && entry.scanned_at <= now_secs
            && now_secs - entry.scanned_at < self.ttl.as_secs();
        let report_present = entry.report_path.as_deref().is_none_or(Path::exists);
        (fresh && report_present).then_some(entry)
    }

    /// Stores an entry atomically.
    pub fn put(&self, entry: &CacheEntry) -> Result<()> {
        nodeguard_common::atomic::ensure_dir(&self.dir, 0o700)?;
        let path = self.dir.join(entry.key.file_name());
        let bytes = serde_json::to_vec(entry)?;
        nodeguard_common::atomic::write_file(&path, &bytes, 0o600)
    }

    /// Removes entries older than the TTL (they can never hit again).
    pub fn prune(&self, now: SystemTime) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let expired =
                nodeguard_common::input::read_regular_file(&entry.path(), MAX_ENTRY_BYTES)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<CacheEntry>(&b).ok())
                    .is_none_or(|e| unix(now).saturating_sub(e.scanned_at) >= self.ttl.as_secs());
            if expired && entry.file_name().to_string_lossy().ends_with(".json") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Unix seconds.
pub fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(db: &str) -> CacheKey {
        CacheKey {
            image_id: "sha256:aa".into(),
            db_updated_at: db.into(),
            severities: Severity::ALL.to_vec(),
            source: "containerd".into(),
        }
    }

    fn entry(k: CacheKey, at: u64, report: Option<PathBuf>) -> CacheEntry {
        CacheEntry {
            key: k,
            scanned_at: at,
            vulnerabilities: Counts {
                critical: 1,
                ..Counts::default()
            },
            report_path: report,
            os: None,
            source: None,
            scan_target: None,
            note: None,
        }
    }

    #[test]
    fn hit_within_ttl_for_the_same_db_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path(), Duration::from_secs(3600));
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        cache.put(&entry(key("db1"), 1_000_000, None)).unwrap();
        assert!(cache
            .get(&key("db1"), t0 + Duration::from_secs(10))
            .is_some());
        assert!(cache.get(&key("db2"), t0).is_none(), "new DB: rescan");
        assert!(
            cache
                .get(&key("db1"), t0 + Duration::from_secs(3600))
                .is_none(),
            "expired"
        );
        let mut other = key("db1");
        other.severities = vec![Severity::Critical];
        assert!(cache.get(&other, t0).is_none(), "different filter");
    }

    #[test]
    fn a_missing_report_or_a_corrupt_entry_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path(), Duration::from_secs(3600));
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        cache
            .put(&entry(
                key("db1"),
                1_000_000,
                Some(dir.path().join("gone.json")),
            ))
            .unwrap();
        assert!(cache.get(&key("db1"), t0).is_none());
        std::fs::write(dir.path().join(key("db1").file_name()), "{garbage").unwrap();
        assert!(cache.get(&key("db1"), t0).is_none());
    }

    #[test]
    fn prune_removes_expired_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path(), Duration::from_secs(60));
        cache.put(&entry(key("old"), 100, None)).unwrap();
        cache.put(&entry(key("new"), 1000, None)).unwrap();
        cache.prune(UNIX_EPOCH + Duration::from_secs(1030));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
