//! Which init system runs the host, from the host's own evidence.
//!
//! Evidence, strongest first:
//! 1. `/run/systemd/system/` exists: systemd creates it at boot, it is what
//!    `sd_booted(3)` tests, and `/run` is a tmpfs, so a stale copy cannot
//!    survive in an image;
//! 2. `/proc/1/comm` under the host root, when the host's procfs is visible
//!    there (`hostPath: /` mounts are recursive) — only names we recognise
//!    count: a container's PID 1 (`pause`, `sh`, `sleep`) says nothing;
//! 3. `/run/openrc/` (created by OpenRC at boot);
//! 4. the target of `/sbin/init`, resolved inside the host root (merged-/usr
//!    hosts link `/sbin` to `usr/sbin`);
//! 5. the OS itself when it has its own init (Talos' `machined`);
//! 6. `/sbin/openrc` installed.
//!
//! Nothing is executed, and nothing is read from the machine the tool runs on.

use std::path::Path;

use nodeguard_common::HostRoot;
use serde::{Deserialize, Serialize};

/// `init` in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitSystem {
    Systemd,
    Openrc,
    /// A recognised init that is neither (Talos' machined, runit, s6, SysV…).
    Other,
    /// No evidence either way.
    Unknown,
}

impl InitSystem {
    /// The name used in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            InitSystem::Systemd => "systemd",
            InitSystem::Openrc => "openrc",
            InitSystem::Other => "other",
            InitSystem::Unknown => "unknown",
        }
    }
}

/// What was found under the host root; every field is host evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitEvidence {
    /// `/run/systemd/system` is a directory.
    pub run_systemd_system: bool,
    /// Content of `/proc/1/comm`, trimmed.
    pub pid1_comm: Option<String>,
    /// `/run/openrc` is a directory.
    pub run_openrc: bool,
    /// File name of what `/sbin/init` resolves to (`systemd`, `openrc-init`, `busybox`).
    pub sbin_init_target: Option<String>,
    /// `/sbin/openrc` exists.
    pub sbin_openrc: bool,
    /// The OS `ID`, lower case.
    pub os_id: String,
}

pub const RUN_SYSTEMD_SYSTEM_PATH: &str = "run/systemd/system";
pub const PID1_COMM_PATH: &str = "proc/1/comm";
pub const RUN_OPENRC_PATH: &str = "run/openrc";
pub const SBIN_INIT_PATH: &str = "sbin/init";
pub const SBIN_OPENRC_PATH: &str = "sbin/openrc";

/// Decides the init system; the second value names the evidence used, as a
/// host path (or `os.id`).
pub fn decide(e: &InitEvidence) -> (InitSystem, Option<String>) {
    let host = |rel: &str| Some(format!("/{rel}"));
    if e.run_systemd_system {
        return (InitSystem::Systemd, host(RUN_SYSTEMD_SYSTEM_PATH));
    }
    if let Some(system) = e.pid1_comm.as_deref().and_then(init_named) {
        return (system, host(PID1_COMM_PATH));
    }
    if e.run_openrc {
        return (InitSystem::Openrc, host(RUN_OPENRC_PATH));
    }
    if let Some(target) = e.sbin_init_target.as_deref() {
        // Alpine's /sbin/init is busybox, which then starts OpenRC.
        if target == "busybox" && e.sbin_openrc {
            return (InitSystem::Openrc, host(SBIN_INIT_PATH));
        }
        if let Some(system) = init_named(target) {
            return (system, host(SBIN_INIT_PATH));
        }
    }
    if e.os_id == "talos" {
        return (InitSystem::Other, Some("os.id".to_owned()));
    }
    if e.sbin_openrc {
        return (InitSystem::Openrc, host(SBIN_OPENRC_PATH));
    }
    (InitSystem::Unknown, None)
}

/// The init system a PID 1 name or `/sbin/init` target stands for; `None`
/// for names that do not identify one (`init`, shells, container entrypoints).
fn init_named(name: &str) -> Option<InitSystem> {
    match name.trim() {
        "systemd" => Some(InitSystem::Systemd),
        "openrc-init" | "openrc" => Some(InitSystem::Openrc),
        "machined" | "runit" | "runit-init" | "s6-svscan" | "dinit" | "upstart" => {
            Some(InitSystem::Other)
        }
        _ => None,
    }
}

/// Collects [`InitEvidence`] under the host root.
pub fn gather(root: &HostRoot, os_id: &str) -> InitEvidence {
    let is_dir = |rel: &str| root.metadata(rel).is_ok_and(|m| m.is_dir());
    // Check the type first: a FIFO planted at proc/1/comm would block a read.
    let pid1_comm = root
        .metadata(PID1_COMM_PATH)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .and_then(|_| root.read_limited(PID1_COMM_PATH, 64).ok())
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .filter(|s| !s.is_empty());
    // Only follow /sbin/init if it is a link: a regular file named init says nothing.
    let sbin_init_target = root
        .symlink_metadata(SBIN_INIT_PATH)
        .ok()
        .filter(|m| m.file_type().is_symlink())
        .and_then(|_| root.resolve(SBIN_INIT_PATH).ok())
        .and_then(|p| {
            Path::new(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        });
    InitEvidence {
        run_systemd_system: is_dir(RUN_SYSTEMD_SYSTEM_PATH),
        pid1_comm,
        run_openrc: is_dir(RUN_OPENRC_PATH),
        sbin_init_target,
        sbin_openrc: root.exists(SBIN_OPENRC_PATH),
        os_id: os_id.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_systemd_system_wins() {
        let e = InitEvidence {
            run_systemd_system: true,
            pid1_comm: Some("sh".into()),
            ..InitEvidence::default()
        };
        assert_eq!(
            decide(&e),
            (InitSystem::Systemd, Some("/run/systemd/system".into()))
        );
    }

    #[test]
    fn container_pid1_names_are_not_evidence() {
        for comm in ["pause", "sh", "bash", "init", "sleep", "detect-host"] {
            let e = InitEvidence {
                pid1_comm: Some(comm.into()),
                ..InitEvidence::default()
            };
            assert_eq!(decide(&e).0, InitSystem::Unknown, "{comm}");
        }
        let e = InitEvidence {
            pid1_comm: Some("systemd".into()),
            ..InitEvidence::default()
        };
        assert_eq!(
            decide(&e),
            (InitSystem::Systemd, Some("/proc/1/comm".into()))
        );
    }

    #[test]
    fn openrc_from_run_dir_busybox_init_or_binary() {
        let run = InitEvidence {
            run_openrc: true,
            ..InitEvidence::default()
        };
        assert_eq!(decide(&run).0, InitSystem::Openrc);
        let busybox = InitEvidence {
            sbin_init_target: Some("busybox".into()),
            sbin_openrc: true,
            ..InitEvidence::default()
        };
        assert_eq!(
            decide(&busybox),
            (InitSystem::Openrc, Some("/sbin/init".into()))
        );
        let lone_busybox = InitEvidence {
            sbin_init_target: Some("busybox".into()),
            ..InitEvidence::default()
        };
        assert_eq!(decide(&lone_busybox).0, InitSystem::Unknown);
    }

    #[test]
    fn sbin_init_link_to_systemd_and_talos() {
        let e = InitEvidence {
            sbin_init_target: Some("systemd".into()),
            ..InitEvidence::default()
        };
        assert_eq!(decide(&e).0, InitSystem::Systemd);
        let talos = InitEvidence {
            os_id: "talos".into(),
            ..InitEvidence::default()
        };
        assert_eq!(decide(&talos), (InitSystem::Other, Some("os.id".into())));
    }
}
