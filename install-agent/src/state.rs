//! nodeguard's own state on the host: the ownership marker, the record of
//! what was installed, the interrupted-run journal, and the host-wide lock.
//!
//! Everything lives in one root-only directory on the host,
//! [`STATE_DIR`], reached through the host root (so through
//! `/proc/<pid>/root` from a pod). The lock is an `flock` on a file in that
//! directory: the kernel lock is per inode, so two pods on one node (a
//! rolling update, a manual debug run) exclude each other, and the lock
//! dies with its holder, so an evicted pod never leaves a stale lock.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use nodeguard_common::atomic;
use nodeguard_common::exit::ToolError;
use nodeguard_common::hostroot::HostRoot;

/// Host directory for nodeguard's install-agent state (mode 0700).
pub const STATE_DIR: &str = "/var/lib/nodeguard/install-agent";
/// Host directory where packages are staged (per run, mode 0700).
pub const STAGING_DIR: &str = "/var/lib/nodeguard/install-agent/staging";
/// Largest state file we read.
const MAX_STATE_BYTES: u64 = 64 * 1024;
/// Version of the state file layout.
const STATE_SCHEMA: u32 = 1;

/// The record nodeguard keeps per agent on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// Layout version.
    pub schema: u32,
    /// Profile name.
    pub agent: String,
    /// Package name in the host database.
    pub package: String,
    /// Version nodeguard installed.
    pub version: String,
    /// deb or rpm.
    pub format: String,
    /// Digest of the config files nodeguard wrote.
    pub config_digest: String,
    /// Digest of the last successful activation.
    #[serde(default)]
    pub activation_digest: Option<String>,
    /// Who installed it (the ownership marker).
    pub installed_by: String,
    /// Unix seconds of the first install.
    pub installed_at: u64,
    /// Unix seconds of the last change.
    pub updated_at: u64,
    /// Set while a run changes the host; a leftover means that run died.
    #[serde(default)]
    pub in_progress: Option<InProgress>,
}

/// The journal entry of a run that is changing the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InProgress {
    /// The action being carried out.
    pub action: String,
    /// The run that started it.
    pub run_id: String,
    /// The transient unit carrying the package transaction, if any.
    #[serde(default)]
    pub unit: Option<String>,
    /// Unix seconds.
    pub started_at: u64,
}

/// The ownership marker value.
pub const OWNER: &str = "nodeguard install-agent";

impl StateRecord {
    /// A fresh record.
    pub fn new(
        agent: &str,
        package: &str,
        version: &str,
        format: &str,
        config_digest: &str,
        activation_digest: Option<String>,
    ) -> Self {
        let now = unix_now();
        Self {
            schema: STATE_SCHEMA,
            agent: agent.to_owned(),
            package: package.to_owned(),
            version: version.to_owned(),
            format: format.to_owned(),
            config_digest: config_digest.to_owned(),
            activation_digest,
            installed_by: OWNER.to_owned(),
            installed_at: now,
            updated_at: now,
            in_progress: None,
        }
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Access to the state directory of one host.
#[derive(Debug)]
pub struct StateStore<'a> {
    root: &'a HostRoot,
    agent: String,
}

impl<'a> StateStore<'a> {
    /// The store for `agent` on the host at `root`.
    pub fn new(root: &'a HostRoot, agent: &str) -> Self {
        Self {
            root,
            agent: agent.to_owned(),
        }
    }

    fn record_host_path(&self) -> PathBuf {
        Path::new(STATE_DIR).join(format!("{}.json", self.agent))
    }

    /// The real path of the state directory, created 0700 if missing.
    pub fn ensure_dir(&self) -> Result<PathBuf> {
        let dir = self.root.resolve(STATE_DIR)?;
        atomic::ensure_dir(&dir, 0o700)?;
        Ok(dir)
    }

    /// Read the record; `None` if nodeguard never installed this agent here.
    pub fn load(&self) -> Result<Option<StateRecord>> {
        let host_path = self.record_host_path();
        match self.root.read_limited(&host_path, MAX_STATE_BYTES) {
            Ok(bytes) => {
                let record = serde_json::from_slice(&bytes).with_context(|| {
                    format!(
                        "state file {} is corrupt (remove it to re-adopt the agent)",
                        self.root.display_path(&host_path).display()
                    )
                })?;
                Ok(Some(record))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!(
                "cannot read state file {}",
                self.root.display_path(&host_path).display()
            ))),
        }
    }

    /// Write the record atomically, root-only.
    pub fn save(&self, record: &StateRecord) -> Result<()> {
        self.ensure_dir()?;
        let path = self.root.resolve_parent(self.record_host_path())?;
        let mut bytes = serde_json::to_vec_pretty(record)?;
        bytes.push(b'\n');
        atomic::write_file(&path, &bytes, 0o600)
    }

    /// Remove the record (uninstall).
    pub fn remove(&self) -> Result<()> {
        let path = self.root.resolve_parent(self.record_host_path())?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(anyhow::Error::new(e).context(format!("removing {}", path.display()))),
        }
    }

    /// Take the host-wide lock, waiting up to `wait`.
    pub fn lock(&self, wait: Duration) -> Result<HostLock> {
        let dir = self.ensure_dir()?;
        let path = dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        let deadline = Instant::now() + wait;
        let mut file = file;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(HostLock { _lock: lock }),
                Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                    if Instant::now() >= deadline {
                        bail!(ToolError::new(
                            crate::exit::LOCKED,
                            format!("another install-agent run holds the host lock {} (waited {wait:?})", path.display())
                        ));
                    }
                    file = f;
                    // Polling keeps the wait bounded without a signal-based
                    // timeout; 100 ms is invisible next to a package install.
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err((_, errno)) => {
                    return Err(anyhow::Error::new(io::Error::from(errno))
                        .context(format!("locking {}", path.display())))
                }
            }
        }
    }
}

/// Holds the host lock until dropped (or the process dies).
#[derive(Debug)]
pub struct HostLock {
    _lock: Flock<File>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_lock_excludes_second_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = HostRoot::open(dir.path()).expect("root");
        let store = StateStore::new(&root, "tinyagent");
        assert!(store.load().expect("load").is_none());
        let record = StateRecord::new("tinyagent", "tinyagent", "1.0.0", "deb", "c", None);
        store.save(&record).expect("save");
        assert_eq!(store.load().expect("load"), Some(record));
        let real = dir
            .path()
            .join("var/lib/nodeguard/install-agent/tinyagent.json");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(real).expect("meta").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let held = store.lock(Duration::ZERO).expect("first lock");
        let err = store
            .lock(Duration::from_millis(150))
            .expect_err("second lock must fail");
        assert_eq!(
            nodeguard_common::exit::code_for(&err),
            crate::exit::LOCKED,
            "{err:#}"
        );
        drop(held);
        store.lock(Duration::ZERO).expect("lock after release");
    }

    #[test]
    fn corrupt_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("var/lib/nodeguard/install-agent")).expect("mkdir");
        std::fs::write(
            dir.path().join("var/lib/nodeguard/install-agent/x.json"),
            b"{nope",
        )
        .expect("write");
        let root = HostRoot::open(dir.path()).expect("root");
        let err = StateStore::new(&root, "x").load().expect_err("corrupt");
        assert!(format!("{err:#}").contains("x.json"), "{err:#}");
    }
}
