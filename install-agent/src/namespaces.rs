//! Entering the host's namespaces natively (no `nsenter` binary).
//!
//! The namespace files of the target process (PID 1 of the host, seen
//! through `hostPID`) are opened once, in the parent, *before* any fork:
//! opening needs ptrace access to the target (`CAP_SYS_PTRACE`), and doing
//! it early turns a missing capability into one clear error instead of a
//! failure inside a half-started child. The child then calls `setns` for
//! each one between `fork` and `exec` (`pre_exec`). Doing it in the child
//! matters: `setns(CLONE_NEWNS)` is refused in a multi-threaded process, and
//! the parent must stay in the pod's namespaces.
//!
//! Entering a PID namespace only moves the caller's *future children*, so
//! after the `setns` calls the child forks once more and the grandchild
//! execs the command, inside the host PID namespace, as `nsenter` does;
//! the intermediate process waits and passes the exit status on.
//!
//! The [`Enter`] trait is the seam: logic that only needs "run this in the
//! host" is tested with a recorder, without root.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use std::path::Path;

use anyhow::Result;
use nix::sched::{setns, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use nodeguard_common::lsm;

/// Namespaces entered, in the order they are entered. The mount namespace
/// goes last of the "plain" ones so that nothing after it depends on paths;
/// PID is special (see the module doc) and comes after it.
pub const NAMESPACES: [(&str, CloneFlags); 5] = [
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("pid", CloneFlags::CLONE_NEWPID),
];

/// Makes a command run inside some other namespaces.
pub trait Enter: std::fmt::Debug + Send + Sync {
    /// Arrange for `cmd` to enter the namespaces when it is spawned.
    fn apply(&self, cmd: &mut Command);
    /// A short description for reports (`pid 1: ipc,uts,net,mnt,pid`).
    fn describe(&self) -> String;
}

/// The namespaces of one target process, opened and ready to enter.
#[derive(Debug)]
pub struct TargetNamespaces {
    pid: i32,
    fds: Vec<(&'static str, CloneFlags, OwnedFd)>,
}

impl TargetNamespaces {
    /// Open `/proc/<pid>/ns/{ipc,uts,net,mnt,pid}` of the target.
    pub fn open(pid: i32) -> Result<Self> {
        let mut fds = Vec::with_capacity(NAMESPACES.len());
        for (name, flag) in NAMESPACES {
            let path = format!("/proc/{pid}/ns/{name}");
            let file = File::open(&path).map_err(|e| open_error(&path, e))?;
            fds.push((name, flag, OwnedFd::from(file)));
        }
        Ok(Self { pid, fds })
    }
}

/// The error of opening a target's namespace file or root: a denial gets
/// the one-line LSM diagnosis (which LSM, which chart value fixes it).
pub fn open_error(path: &str, e: std::io::Error) -> anyhow::Error {
    match lsm::diagnose(Path::new(path), &e, &lsm::BOOTSTRAP) {
        Some(line) => anyhow::anyhow!(line),
        None => anyhow::Error::new(e).context(format!(
            "cannot open {path} (install-agent needs hostPID and CAP_SYS_PTRACE to reach the host's namespaces)"
        )),
    }
}

impl Enter for TargetNamespaces {
    fn apply(&self, cmd: &mut Command) {
        let raw: Vec<(CloneFlags, i32)> = self
            .fds
            .iter()
            .map(|(_, flag, fd)| (*flag, fd.as_fd().as_raw_fd()))
            .collect();
        // SAFETY: the closure runs in the forked child before exec, where
        // only async-signal-safe operations are allowed. It performs only
        // raw syscalls (setns, fork, waitpid, _exit, kill) on file
        // descriptors that the parent keeps open for the lifetime of
        // `self`; `raw` is moved in and allocated before the fork, and
        // nothing in the closure allocates or takes a lock.
        unsafe {
            cmd.pre_exec(move || enter_in_child(&raw));
        }
    }

    fn describe(&self) -> String {
        let names: Vec<&str> = self.fds.iter().map(|(n, _, _)| *n).collect();
        format!("pid {}: {}", self.pid, names.join(","))
    }
}

/// The child side: setns into every namespace, then fork once so the
/// command itself lives in the target PID namespace.
fn enter_in_child(fds: &[(CloneFlags, i32)]) -> std::io::Result<()> {
    for &(flag, raw) in fds {
        // SAFETY: `raw` is an open namespace fd owned by the parent's
        // `TargetNamespaces`, inherited across fork and valid until exec.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
        setns(fd, flag).map_err(std::io::Error::from)?;
    }
    // SAFETY: we are the single-threaded child of a fork; the intermediate
    // process below only calls async-signal-safe functions (waitpid, kill,
    // _exit) before it terminates.
    match unsafe { fork() }.map_err(std::io::Error::from)? {
        ForkResult::Child => Ok(()),
        ForkResult::Parent { child } => {
            close_all_fds();
            wait_and_exit(child)
        }
    }
}

/// The intermediate process holds copies of every pipe the command uses,
/// including std's exec-error pipe: keeping them open would make `spawn`
/// in the parent wait for the whole command. It needs none of them.
fn close_all_fds() {
    // SAFETY: close_range is a plain syscall; on kernels without it we fall
    // back to closing a bounded range one by one (close is async-signal-safe).
    let rc = unsafe { nix::libc::syscall(nix::libc::SYS_close_range, 0u32, u32::MAX, 0u32) };
    if rc != 0 {
        for fd in 0..4096 {
            // SAFETY: closing an fd number we may not own is harmless here:
            // this process only waits and exits.
            unsafe { nix::libc::close(fd) };
        }
    }
}

fn wait_and_exit(child: nix::unistd::Pid) -> ! {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => {
                // SAFETY: _exit is async-signal-safe and skips the
                // parent's atexit handlers and stdio buffers.
                unsafe { nix::libc::_exit(code) }
            }
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                // Report death by signal the way a shell does; the
                // group-wide SIGKILL of a timeout reaches us too.
                // SAFETY: as above.
                unsafe { nix::libc::_exit(128 + signal as i32) }
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            // SAFETY: as above.
            Err(_) => unsafe { nix::libc::_exit(127) },
        }
    }
}

/// Runs commands in our own namespaces: for tests and for `--target-pid 0`
/// (install-agent running directly on the host, e.g. over ssh).
#[derive(Debug, Default, Clone, Copy)]
pub struct OwnNamespaces;

impl Enter for OwnNamespaces {
    fn apply(&self, _cmd: &mut Command) {}

    fn describe(&self) -> String {
        "own namespaces".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_a_missing_process_names_the_path() {
        // PID 0 never has a /proc entry.
        let err = TargetNamespaces::open(0).expect_err("no such process");
        assert!(format!("{err:#}").contains("/proc/0/ns/ipc"), "{err:#}");
    }

    #[test]
    fn entering_own_namespaces_runs_the_command_and_passes_exit_status() {
        // Entering our own namespaces needs CAP_SYS_ADMIN; skip loudly otherwise.
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP entering_own_namespaces: needs root (setns)");
            return;
        }
        let own = i32::try_from(std::process::id()).expect("pid fits i32");
        let ns = TargetNamespaces::open(own).expect("open own ns");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "exit 7"]);
        ns.apply(&mut cmd);
        let status = cmd.status().expect("spawn");
        assert_eq!(status.code(), Some(7));
    }
}
