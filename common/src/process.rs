//! Running other programs: captured output, a timeout that kills the whole
//! process group, and errors that name the command.
//!
//! Trivy, `crictl`, `dpkg` and `systemd-run` all start children of their
//! own; killing only the direct child on timeout leaves those running (and
//! holding locks, like Trivy's cache lock). So every child is started as the
//! leader of a new process group and the timeout kills the group. Output is
//! read on separate threads so a chatty stderr cannot deadlock a full stdout
//! pipe. Everything shown to a person (argv, stderr tail) goes through the
//! redactor first.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How much stderr an error message quotes.
const STDERR_TAIL_BYTES: usize = 2048;

/// The default cap on captured output per stream.
pub const DEFAULT_MAX_OUTPUT: usize = 256 * 1024 * 1024;

/// A command to run.
#[derive(Debug)]
pub struct Cmd {
    command: Command,
    argv: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
    max_output: usize,
}

/// What a finished command produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command as shown in messages (redacted).
    pub display: String,
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it printed on stdout (up to the output cap).
    pub stdout: Vec<u8>,
    /// Everything it printed on stderr (up to the output cap).
    pub stderr: Vec<u8>,
    /// Wall time from spawn to exit.
    pub duration: Duration,
}

impl Output {
    /// stdout as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text, redacted.
    pub fn stderr_text(&self) -> String {
        crate::redact::redact(&String::from_utf8_lossy(&self.stderr))
    }

    /// The last part of stderr, redacted, for error messages.
    pub fn stderr_tail(&self) -> String {
        let start = self.stderr.len().saturating_sub(STDERR_TAIL_BYTES);
        crate::redact::redact(String::from_utf8_lossy(&self.stderr[start..]).trim())
    }
}

impl Cmd {
    /// A command running `program` (an absolute path, or a name looked up in
    /// `PATH` by the OS).
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let program = program.as_ref();
        Self {
            command: Command::new(program),
            argv: vec![program.to_os_string()],
            stdin: None,
            timeout: None,
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg.as_ref());
        self.argv.push(arg.as_ref().to_os_string());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Starts the child with an empty environment: nothing of ours (pod
    /// variables, tokens) reaches it unless set with [`env`](Self::env).
    pub fn env_clear(mut self) -> Self {
        self.command.env_clear();
        self
    }

    /// Removes one variable from the child's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.command.env_remove(key);
        self
    }

    /// Feeds these bytes to the child's stdin (otherwise stdin is `/dev/null`).
    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Kills the child's whole process group after this long.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Runs the child in this directory.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Caps how many bytes of each stream are kept; more is an error, since
    /// a program printing gigabytes is broken or hostile.
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// The underlying command, for settings this builder does not cover
    /// (e.g. a `pre_exec` hook that enters namespaces).
    pub fn command_mut(&mut self) -> &mut Command {
        &mut self.command
    }

    /// The command line as shown in messages and logs: redacted.
    pub fn display(&self) -> String {
        let words: Vec<String> = self
            .argv
            .iter()
            .map(|a| {
                let s = a.to_string_lossy();
                if s.is_empty() || s.contains(char::is_whitespace) {
                    format!("'{s}'")
                } else {
                    s.into_owned()
                }
            })
            .collect();
        crate::redact::redact(&words.join(" "))
    }

    /// Runs the command to completion. Fails if it cannot start, times out,
    /// or prints more than the output cap; a non-zero exit is *not* an error
    /// here (see [`run_checked`](Self::run_checked)).
    pub fn run(mut self) -> Result<Output> {
        let display = self.display();
        log::debug!("running {display}");
        self.command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let started = Instant::now();
        let mut child = self.command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!("command `{display}`: program not found")
            } else {
                anyhow::anyhow!("command `{display}`: cannot start: {e}")
            }
        })?;
        let pgid = Pid::from_raw(i32::try_from(child.id()).context("child pid out of range")?);

        let stdin_writer = match (child.stdin.take(), self.stdin.take()) {
            (Some(mut pipe), Some(bytes)) => Some(thread::spawn(move || {
                // A child that exits without reading stdin gives EPIPE: not our error.
                let _ = pipe.write_all(&bytes);
            })),
            _ => None,
        };
        let max = self.max_output;
        let stdout_reader = child.stdout.take().map(|s| spawn_reader(s, max));
        let stderr_reader = child.stderr.take().map(|s| spawn_reader(s, max));

        let (tx, rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send(());
            status
        });
        let timed_out = match self.timeout {
            Some(limit) => rx.recv_timeout(limit).is_err(),
            None => rx.recv().is_err(),
        };
        if timed_out {
            // The group leader is still our unreaped child, so the group id
            // cannot have been reused.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        let status = waiter
            .join()
            .map_err(|_| anyhow::anyhow!("command `{display}`: waiter thread panicked"))?
            .with_context(|| format!("command `{display}`: waiting for it"))?;
        if timed_out {
            // Grandchildren may still hold the pipes; the group kill covers them.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        if let Some(handle) = stdin_writer {
            let _ = handle.join();
        }
        let stdout = join_reader(stdout_reader, &display, "stdout")?;
        let stderr = join_reader(stderr_reader, &display, "stderr")?;
        let output = Output {
            display: display.clone(),
            status,
            stdout,
            stderr,
            duration: started.elapsed(),
        };
        if timed_out {
            bail!(
                "command `{display}` timed out after {:?} (process group killed){}",
                self.timeout.unwrap_or_default(),
                tail_suffix(&output)
            );
        }
        log::debug!(
            "{display}: {} in {:?}",
            describe_status(status),
            output.duration
        );
        Ok(output)
    }

    /// Runs the command and fails unless it exits 0; the error names the
    /// command, its exit status and the tail of its stderr.
    pub fn run_checked(self) -> Result<Output> {
        let output = self.run()?;
        if !output.status.success() {
            bail!(
                "command `{}` {}{}",
                output.display,
                describe_status(output.status),
                tail_suffix(&output)
            );
        }
        Ok(output)
    }
}

fn tail_suffix(output: &Output) -> String {
    let tail = output.stderr_tail();
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}

/// "exited with status 3" or "was killed by signal 9".
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "ended in an unknown way".to_string(),
    }
}

type Reader = thread::JoinHandle<std::io::Result<(Vec<u8>, bool)>>;

fn spawn_reader<R: Read + Send + 'static>(mut stream: R, max: usize) -> Reader {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        let mut overflow = false;
        loop {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            if buf.len() + n > max {
                // Keep draining so the child does not block, but keep nothing more.
                overflow = true;
                continue;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok((buf, overflow))
    })
}

fn join_reader(reader: Option<Reader>, display: &str, stream: &str) -> Result<Vec<u8>> {
    let Some(handle) = reader else {
        return Ok(Vec::new());
    };
    let (buf, overflow) = handle
        .join()
        .map_err(|_| anyhow::anyhow!("command `{display}`: {stream} reader panicked"))?
        .with_context(|| format!("command `{display}`: reading its {stream}"))?;
    if overflow {
        bail!(
            "command `{display}`: {stream} exceeded the {}-byte limit",
            buf.len()
        );
    }
    Ok(buf)
}

/// Finds `name` in the directories of `PATH` (or returns it unchanged when
/// it contains a `/`). Tools call this once at start so a missing program is
/// reported up front, naming the program.
pub fn find_in_path(name: impl AsRef<Path>) -> Option<PathBuf> {
    let name = name.as_ref();
    if name.components().count() > 1 || name.is_absolute() {
        return is_executable(name).then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_stdout_and_stderr_separately() {
        let out = Cmd::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .run()
            .unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn run_checked_names_command_status_and_stderr() {
        let err = Cmd::new("sh")
            .args(["-c", "echo 'database locked' >&2; exit 4"])
            .run_checked()
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("sh -c"), "{msg}");
        assert!(msg.contains("status 4"), "{msg}");
        assert!(msg.contains("database locked"), "{msg}");
    }

    #[test]
    fn missing_program_is_named() {
        let err = Cmd::new("/nonexistent/trivy")
            .arg("image")
            .run()
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("/nonexistent/trivy image"), "{msg}");
        assert!(msg.contains("not found"), "{msg}");
    }

    #[test]
    fn timeout_kills_the_whole_group_including_grandchildren() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        // A grandchild that would outlive its parent: it records its pid.
        let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
        let started = Instant::now();
        let err = Cmd::new("sh")
            .args(["-c", &script])
            .timeout(Duration::from_millis(500))
            .run()
            .unwrap_err();
        assert!(format!("{err:#}").contains("timed out"), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            wait_until_dead(pid, Duration::from_secs(5)),
            "grandchild {pid} outlived the timeout"
        );
    }

    /// True once `pid` is gone or a zombie (killed, waiting to be reaped by
    /// whoever inherited it).
    fn wait_until_dead(pid: i32, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit(')').next().map(|rest| rest.trim().chars().next()))
                .flatten();
            if matches!(state, None | Some('Z' | 'X')) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn stdin_is_fed_and_env_can_be_cleared() {
        let out = Cmd::new("/bin/sh")
            .args(["-c", "cat; echo \"[$SECRET_FROM_POD]\""])
            .env_clear()
            .stdin_bytes(b"fed\n".to_vec())
            .run_checked()
            .unwrap();
        assert_eq!(out.stdout_text(), "fed\n[]\n");
    }

    #[test]
    fn secrets_are_redacted_from_display_and_stderr() {
        crate::redact::register_secret("tok-very-secret-9");
        let err = Cmd::new("sh")
            .args([
                "-c",
                "echo tok-very-secret-9 >&2; exit 1",
                "tok-very-secret-9",
            ])
            .run_checked()
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(!msg.contains("tok-very-secret-9"), "{msg}");
        assert!(msg.contains("***"), "{msg}");
    }

    #[test]
    fn output_over_the_cap_is_an_error() {
        let err = Cmd::new("sh")
            .args(["-c", "head -c 5000 /dev/zero"])
            .max_output(1000)
            .run()
            .unwrap_err();
        assert!(format!("{err:#}").contains("limit"), "{err:#}");
    }

    #[test]
    fn find_in_path_finds_sh_and_rejects_missing() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("no-such-program-nodeguard").is_none());
        assert!(find_in_path("/bin/sh").is_some());
    }
}
