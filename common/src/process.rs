//! Running other programs: captured output, a timeout that kills the whole
//! process group, and errors that name the command.
//!
//! Trivy, `crictl`, `dpkg` and `systemd-run` all start children of their
//! own; killing only the direct child on timeout leaves those running (and
//! holding locks, like Trivy's cache lock). So every child is started as the
//! leader of a new process group and the timeout kills the group. Output is
//! read on separate threads so a chatty stderr cannot deadlock a full stdout
//! pipe. The deadline covers those readers too: a child that exits while
//! something it started keeps stdout open (a daemonised helper, a stray
//! `cmd &`) does not make us wait for EOF forever. Readers get until the
//! deadline, and at most 10 s after the child's exit, then the group is
//! killed and reading stops; output held open like that is an error, since
//! it may be cut short. Everything shown to a person (argv, stderr tail)
//! goes through the redactor first.

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
        let tail = self.stderr.get(start..).unwrap_or_default();
        crate::redact::redact(String::from_utf8_lossy(tail).trim())
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

        if let (Some(mut pipe), Some(bytes)) = (child.stdin.take(), self.stdin.take()) {
            // Not joined: a child that never reads stdin (while something it
            // started keeps the pipe open) must not block us. The group kill
            // or the child's exit ends the write with EPIPE.
            thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let max = self.max_output;
        let stdout_reader = child.stdout.take().map(|s| spawn_reader(s, max));
        let stderr_reader = child.stderr.take().map(|s| spawn_reader(s, max));

        let (tx, rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send(());
            status
        });
        let deadline = self.timeout.map(|limit| started + limit);
        let exited = match deadline {
            Some(deadline) => rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .is_ok(),
            None => rx.recv().is_ok(),
        };
        let timed_out = !exited;
        if timed_out {
            // The group leader is still our unreaped child, so the group id
            // cannot have been reused.
            kill_group(pgid);
        }
        let status = waiter
            .join()
            .map_err(|_| anyhow::anyhow!("command `{display}`: waiter thread panicked"))?
            .with_context(|| format!("command `{display}`: waiting for it"))?;

        // The readers end at EOF, which a process the child started (and
        // left running) can hold off forever: they get until the deadline,
        // and at most EOF_GRACE after the child's exit, then the group is
        // killed and reading stops.
        let read_until = if timed_out {
            Instant::now() + KILL_GRACE
        } else {
            let grace = Instant::now() + EOF_GRACE;
            deadline.map_or(grace, |d| d.min(grace))
        };
        let collect = |reader: Option<Reader>| -> (Collected, bool) {
            let Some(reader) = reader else {
                return (Collected::Done(Ok((Vec::new(), false))), false);
            };
            match reader.recv_until(read_until) {
                Collected::Pending(reader) => {
                    kill_group(pgid);
                    (reader.recv_until(Instant::now() + KILL_GRACE), true)
                }
                done => (done, false),
            }
        };
        let (stdout, stdout_held) = collect(stdout_reader);
        let (stderr, stderr_held) = collect(stderr_reader);
        if stderr_held && !stdout_held {
            log::debug!("{display}: stderr held open after exit; process group killed");
        }
        let stdout = finish_reader(stdout, &display, "stdout")?;
        let stderr = finish_reader(stderr, &display, "stderr")?;
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
        if stdout_held {
            // Output past the child's exit came from something it left
            // running; it may be cut short, so it is not trusted.
            bail!(
                "command `{display}` {} but a process it started kept its output open; process group killed, output not used{}",
                describe_status(status),
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

/// How long readers may wait for EOF after the child has exited (a process
/// it started still holding the pipe), when the deadline is further away.
const EOF_GRACE: Duration = Duration::from_secs(10);

/// How long readers may take to see EOF once the group has been killed.
const KILL_GRACE: Duration = Duration::from_secs(2);

fn kill_group(pgid: Pid) {
    let _ = killpg(pgid, Signal::SIGKILL);
}

type ReadResult = std::io::Result<(Vec<u8>, bool)>;

/// A stream being read on its own thread; the result arrives on a channel,
/// so waiting for it can stop at a deadline.
struct Reader(mpsc::Receiver<ReadResult>);

enum Collected {
    Done(ReadResult),
    /// Not at EOF by the deadline (the thread is left behind).
    Pending(Reader),
}

impl Reader {
    fn recv_until(self, until: Instant) -> Collected {
        match self
            .0
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            Ok(result) => Collected::Done(result),
            Err(mpsc::RecvTimeoutError::Timeout) => Collected::Pending(self),
            Err(mpsc::RecvTimeoutError::Disconnected) => Collected::Done(Err(
                std::io::Error::other("reader thread ended without a result"),
            )),
        }
    }
}

fn spawn_reader<R: Read + Send + 'static>(mut stream: R, max: usize) -> Reader {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut overflow = false;
        let result = loop {
            let n = match stream.read(&mut chunk) {
                Ok(0) => break Ok((buf, overflow)),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            };
            if overflow || buf.len().saturating_add(n) > max {
                // Keep draining so the child does not block, but keep nothing more.
                overflow = true;
                continue;
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        };
        let _ = tx.send(result);
    });
    Reader(rx)
}

fn finish_reader(collected: Collected, display: &str, stream: &str) -> Result<Vec<u8>> {
    let (buf, overflow) = match collected {
        Collected::Done(result) => {
            result.with_context(|| format!("command `{display}`: reading its {stream}"))?
        }
        // Held open even after the group kill (a process that left the
        // group): what it printed is lost, and we stop waiting.
        Collected::Pending(_) => (Vec::new(), false),
    };
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
    fn a_background_process_holding_stdout_does_not_outlive_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("bg.pid");
        // The shell exits at once; `sleep 100` keeps its stdout open.
        let script = format!("sleep 100 & echo $! > {}; echo started", pid_file.display());
        let started = Instant::now();
        let err = Cmd::new("sh")
            .args(["-c", &script])
            .timeout(Duration::from_secs(2))
            .run()
            .unwrap_err();
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(2) + KILL_GRACE + Duration::from_secs(1),
            "took {elapsed:?}"
        );
        let msg = format!("{err:#}");
        assert!(msg.contains("kept its output open"), "{msg}");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            wait_until_dead(pid, Duration::from_secs(5)),
            "background {pid} outlived the run"
        );
    }

    #[test]
    fn a_background_process_with_its_own_output_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("bg.pid");
        let script = format!(
            "sleep 100 >/dev/null 2>&1 & echo $! > {}; echo ok",
            pid_file.display()
        );
        let out = Cmd::new("sh")
            .args(["-c", &script])
            .timeout(Duration::from_secs(30))
            .run_checked();
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        assert_eq!(out.unwrap().stdout, b"ok\n");
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
