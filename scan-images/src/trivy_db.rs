//! Trivy's vulnerability DB: read its version, and update it at most once
//! per cycle, under a file lock, and only when Trivy itself would.
//!
//! Trivy guards DB downloads only in-process, so two scanners on one node
//! would race on `<cache>/db`; `--skip-db-update` fails on a first run, so a
//! missing DB is reported up front, naming the path. Applying Trivy's own
//! freshness rule here means an unchanged cycle starts no Trivy at all.

use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use nodeguard_common::process::Cmd;
use serde::Deserialize;

use crate::trivy::{base_env, TrivyConfig, QUIET_FLAGS};

/// Trivy's `db/metadata.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DbMetadata {
    /// DB schema version (2 for the vulnerability DB).
    #[serde(default)]
    pub version: u32,
    /// When Trivy will next look for a new DB.
    #[serde(default)]
    pub next_update: Option<String>,
    /// When the DB was built: the version of our findings.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// When this node downloaded it.
    #[serde(default)]
    pub downloaded_at: Option<String>,
}

/// Largest Trivy DB `metadata.json` read (the real one is ~150 bytes).
pub const MAX_METADATA_BYTES: u64 = 1 << 20;

impl DbMetadata {
    /// Reads `<dir>/metadata.json`; `Ok(None)` if it does not exist.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join("metadata.json");
        // A regular file of a few hundred bytes: a FIFO or device there
        // must not block or stream, a huge file must not take the memory.
        let Some(bytes) =
            nodeguard_common::input::read_regular_file_if_exists(&path, MAX_METADATA_BYTES)?
        else {
            return Ok(None);
        };
        Self::parse(&bytes)
            .map(Some)
            .with_context(|| format!("{}: not a Trivy DB metadata file", path.display()))
    }

    /// Parses the bytes of a `metadata.json` (the fuzz target's entry).
    #[doc(hidden)]
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// `UpdatedAt` as a time.
    pub fn updated_at_time(&self) -> Option<SystemTime> {
        self.updated_at.as_deref().and_then(parse_time)
    }
}

fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z').split('+').next()?).ok()
}

/// Trivy's own rule (`pkg/db`): download when there is no DB or the schema
/// differs; otherwise skip while `now < NextUpdate` or the DB was
/// downloaded within the last hour. Applying it here saves a Trivy process
/// per cycle when nothing would be downloaded.
pub fn db_needs_update(meta: Option<&DbMetadata>, schema: u32, now: SystemTime) -> bool {
    let Some(meta) = meta else { return true };
    if meta.version != schema {
        return true;
    }
    let before_next = meta
        .next_update
        .as_deref()
        .and_then(parse_time)
        .is_some_and(|next| now < next);
    let recent = meta
        .downloaded_at
        .as_deref()
        .and_then(parse_time)
        .is_some_and(|at| {
            now.duration_since(at)
                .is_ok_and(|age| age < Duration::from_secs(3600))
        });
    !(before_next || recent)
}

/// Outcome of the per-cycle DB step.
#[derive(Debug, Clone)]
pub struct DbState {
    /// `current`, `updated`, `skipped` (flag), or `stale` (update failed,
    /// previous DB used).
    pub status: &'static str,
    /// The DB's `UpdatedAt`, as Trivy wrote it.
    pub updated_at: String,
    /// Parsed `UpdatedAt`.
    pub updated_at_time: Option<SystemTime>,
    /// Why the update failed, when `status == "stale"`.
    pub error: Option<String>,
    /// Trivy processes started.
    pub trivy_runs: u32,
}

/// The per-cycle DB step: under an exclusive lock on
/// `<cache_root>/.db.lock`, download the vulnerability DB (and the Java DB)
/// if Trivy would, then read its version. A failed download with a
/// previous DB present degrades to `stale`; without one it is an error.
pub fn prepare_db(cfg: &TrivyConfig, skip_update: bool) -> Result<DbState> {
    nodeguard_common::atomic::ensure_dir(&cfg.cache_root, 0o700)?;
    let lock_path = cfg.cache_root.join(".db.lock");
    let _lock = lock_exclusive(&lock_path, cfg.timeout)?;
    let db_dir = cfg.cache_root.join("db");
    let mut runs = 0;
    let mut status = "current";
    let mut error = None;
    let now = SystemTime::now();
    if skip_update {
        status = "skipped";
    } else if db_needs_update(DbMetadata::read(&db_dir)?.as_ref(), 2, now) {
        runs += 1;
        match run_db_download(
            cfg,
            "--download-db-only",
            &cfg.db_repositories,
            "--db-repository",
        ) {
            Ok(()) => status = "updated",
            Err(e) => {
                log::warn!("vulnerability DB update failed: {e:#}");
                status = "stale";
                error = Some(format!("{e:#}"));
            }
        }
    }
    if !skip_update && !cfg.skip_java_db {
        let java_dir = cfg.cache_root.join("java-db");
        let java_meta = DbMetadata::read(&java_dir).unwrap_or(None);
        if db_needs_update(java_meta.as_ref(), 1, now) {
            runs += 1;
            if let Err(e) = run_db_download(
                cfg,
                "--download-java-db-only",
                &cfg.java_db_repositories,
                "--java-db-repository",
            ) {
                // Only images with jars need it; their scans will say so.
                log::warn!("Java DB update failed: {e:#}");
            }
        }
    }
    let meta = DbMetadata::read(&db_dir)?.with_context(|| {
        let why = error
            .clone()
            .map(|e| format!(" (update failed: {e})"))
            .unwrap_or_default();
        format!(
            "no Trivy vulnerability DB at {}{why}; run once with network access, set \
             --db-repository to a mirror, or seed it and pass --skip-db-update",
            db_dir.display()
        )
    })?;
    let updated_at = meta.updated_at.clone().unwrap_or_default();
    Ok(DbState {
        status,
        updated_at_time: meta.updated_at_time(),
        updated_at,
        error,
        trivy_runs: runs,
    })
}

fn lock_exclusive(path: &Path, wait: Duration) -> Result<Flock<File>> {
    let started = Instant::now();
    let mut file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((f, errno))
                if errno == nix::errno::Errno::EWOULDBLOCK && started.elapsed() < wait =>
            {
                file = f;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err((_, errno)) => bail!(
                "locking {}: {errno} (another scan-images updating the DB?)",
                path.display()
            ),
        }
    }
}

fn run_db_download(cfg: &TrivyConfig, mode: &str, repos: &[String], repo_flag: &str) -> Result<()> {
    let mut args: Vec<OsString> = vec!["image".into(), mode.into(), "--cache-dir".into()];
    args.push(cfg.cache_root.clone().into_os_string());
    args.extend(QUIET_FLAGS.iter().map(OsString::from));
    for repo in repos {
        args.push(repo_flag.into());
        args.push(repo.into());
    }
    let tmp = cfg.cache_root.join("tmp");
    nodeguard_common::atomic::ensure_dir(&tmp, 0o700)?;
    let mut cmd = Cmd::new(&cfg.program).args(&args).env_clear();
    for (k, v) in base_env(&tmp, &cfg.cache_root, false) {
        cmd = cmd.env(k, v);
    }
    cmd.timeout(cfg.timeout).run_checked()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_update_follows_trivys_rule() {
        let now = humantime::parse_rfc3339("2026-11-24T12:00:00Z").unwrap();
        let meta = |next: &str, downloaded: &str, version| DbMetadata {
            version,
            next_update: Some(next.into()),
            updated_at: Some("2026-11-24T06:00:00.123456789Z".into()),
            downloaded_at: Some(downloaded.into()),
        };
        assert!(db_needs_update(None, 2, now), "no DB yet");
        assert!(!db_needs_update(
            Some(&meta("2026-11-24T18:00:00Z", "2026-11-24T06:00:00Z", 2)),
            2,
            now
        ));
        assert!(db_needs_update(
            Some(&meta("2026-11-24T11:00:00Z", "2026-11-24T06:00:00Z", 2)),
            2,
            now
        ));
        assert!(
            !db_needs_update(
                Some(&meta("2026-11-24T11:00:00Z", "2026-11-24T11:30:00.5Z", 2)),
                2,
                now
            ),
            "downloaded within the hour"
        );
        assert!(
            db_needs_update(
                Some(&meta("2026-11-24T18:00:00Z", "2026-11-24T06:00:00Z", 1)),
                2,
                now
            ),
            "schema"
        );
        let m = meta("x", "y", 2);
        assert!(m.updated_at_time().is_some(), "nanosecond RFC3339 parses");
    }
}
