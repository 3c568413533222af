//! Activation and verification of the agent.
//!
//! Activation commands usually take credentials as arguments (the Qualys
//! `qualys-cloud-agent.sh ActivationId=… CustomerId=…`). To keep them out
//! of *our* argv, out of `systemd-run`'s argv and out of the unit's
//! `ExecStart` (which `systemctl show` and the journal expose), the
//! rendered command is written into a root-only script in a fresh 0700
//! staging directory and the transient unit runs `/bin/sh <script>`. Only
//! the vendor tool's own argv still carries the values, for the seconds it
//! runs: that part is the vendor's interface and cannot be avoided.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use nodeguard_common::atomic;

use crate::hostexec::HostCommand;
use crate::session::Session;
use crate::state::STAGING_DIR;
use crate::template::render_argv;

/// Quote one argument for POSIX sh.
pub fn sh_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// The start of the activation script: it deletes itself (and its
/// directory) before running anything, so the credentials it holds are on
/// the host's disk only until the shell has opened it, even if
/// install-agent is killed while the vendor tool runs.
fn activation_script_head() -> String {
    String::from(
        "#!/bin/sh\n# written by nodeguard install-agent; deletes itself before it runs anything\n\
         rm -f -- \"$0\" && rmdir -- \"${0%/*}\" 2>/dev/null\nexec",
    )
}

/// Run the profile's activation command; returns a detail line.
pub fn activate(session: &Session) -> Result<String> {
    let Some(step) = &session.profile.activate else {
        return Ok("no activation step in the profile".to_owned());
    };
    let argv = render_argv(&step.command, session.values()?)?;
    let mut script = activation_script_head();
    for arg in &argv {
        script.push(' ');
        script.push_str(&sh_quote(arg));
    }
    script.push('\n');

    let dir_name = format!("activate-{}", session.run_id);
    let parent = session.root.resolve(STAGING_DIR)?;
    atomic::ensure_dir(&parent, 0o700)?;
    let real_dir = parent.join(&dir_name);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&real_dir)
        .with_context(|| format!("creating {}", real_dir.display()))?;
    let _cleanup = RemoveOnDrop(&real_dir);
    atomic::write_file(real_dir.join("activate.sh"), script.as_bytes(), 0o700)?;
    let host_script = Path::new(STAGING_DIR).join(&dir_name).join("activate.sh");

    let cmd = HostCommand::change(
        vec!["/bin/sh".to_owned(), host_script.display().to_string()],
        session.unit_name("activate"),
        step.timeout(),
    );
    let out = session
        .exec()?
        .run_checked(&cmd)
        .with_context(|| format!("activation with {}", argv[0]))?;
    Ok(format!(
        "{} succeeded in {} ms",
        argv[0],
        out.duration.as_millis()
    ))
}

struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        // The script normally removed itself and its directory already.
        if let Err(e) = fs::remove_dir_all(self.0).or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        }) {
            log::warn!("could not remove {}: {e}", self.0.display());
        }
    }
}

/// Check the agent works, retrying until the profile's timeout.
pub fn verify(session: &Session) -> Result<String> {
    let Some(v) = &session.profile.verify else {
        return Ok("no verify step in the profile (unit active is the check)".to_owned());
    };
    let deadline = Instant::now() + Duration::from_secs(v.timeout_secs);
    loop {
        let last = match verify_once(session, v) {
            Ok(detail) => return Ok(detail),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            bail!("not verified after {} s: {last:#}", v.timeout_secs);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The profile's registration check, once: `None` when it has none;
/// `Some(true)` when the file exists, is not empty (whitespace aside) and
/// holds `contains` if given.
pub fn registered(session: &Session) -> Option<bool> {
    let check = session.profile.registered.as_ref()?;
    let ok = session
        .root
        .read_limited(&check.file, 1024 * 1024)
        .is_ok_and(|bytes| {
            let text = String::from_utf8_lossy(&bytes);
            !text.trim().is_empty()
                && check
                    .contains
                    .as_deref()
                    .is_none_or(|needle| text.contains(needle))
        });
    Some(ok)
}

fn verify_once(session: &Session, v: &crate::profile::Verify) -> Result<String> {
    let mut done = Vec::new();
    if let Some(path) = &v.file {
        let content = session
            .root
            .read_limited(path, 16 * 1024 * 1024)
            .with_context(|| format!("{} is not readable", path.display()))?;
        if let Some(needle) = &v.contains {
            if !String::from_utf8_lossy(&content).contains(needle.as_str()) {
                bail!("{} does not contain {needle:?}", path.display());
            }
            done.push(format!("{} contains {needle:?}", path.display()));
        } else {
            done.push(format!("{} exists", path.display()));
        }
    }
    if let Some(argv) = &v.command {
        let argv = render_argv(argv, session.values()?)?;
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        session.exec()?.run_checked(&HostCommand::query(
            &refs,
            Duration::from_secs(v.timeout_secs.max(1)),
        ))?;
        done.push(format!("`{}` exited 0", argv[0]));
    }
    Ok(done.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_activation_script_deletes_itself_before_running_the_vendor_tool() {
        let dir = tempfile::tempdir().expect("tmp");
        let sub = dir.path().join("activate-run");
        std::fs::create_dir(&sub).expect("mkdir");
        let script = sub.join("activate.sh");
        let witness = dir.path().join("witness");
        let text = format!(
            "{} /bin/sh -c {}\n",
            activation_script_head(),
            sh_quote(&format!(
                "test -e {} && echo present > {w} || echo gone > {w}",
                script.display(),
                w = witness.display()
            ))
        );
        std::fs::write(&script, text).expect("write");
        let status = std::process::Command::new("/bin/sh")
            .arg(&script)
            .status()
            .expect("run");
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(&witness).expect("witness"),
            "gone\n"
        );
        assert!(!sub.exists(), "the directory is gone too");
    }

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
