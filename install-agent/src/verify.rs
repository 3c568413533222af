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

/// Run the profile's activation command; returns a detail line.
pub fn activate(session: &Session) -> Result<String> {
    let Some(step) = &session.profile.activate else {
        return Ok("no activation step in the profile".to_owned());
    };
    let argv = render_argv(&step.command, session.values()?)?;
    let mut script =
        String::from("#!/bin/sh\n# written by nodeguard install-agent; removed after use\nexec");
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
    let out = session.exec()?.run(&cmd)?;
    if !out.status.success() {
        bail!(
            "activation `{}` {}: {}",
            argv[0],
            nodeguard_common::process::describe_status(out.status),
            out.stderr_tail()
        );
    }
    Ok(format!(
        "{} succeeded in {} ms",
        argv[0],
        out.duration.as_millis()
    ))
}

struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(self.0) {
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
        let out = session.exec()?.run(&HostCommand::query(
            &refs,
            Duration::from_secs(v.timeout_secs.max(1)),
        ))?;
        if !out.status.success() {
            bail!(
                "`{}` {}: {}",
                argv[0],
                nodeguard_common::process::describe_status(out.status),
                out.stderr_tail()
            );
        }
        done.push(format!("`{}` exited 0", argv[0]));
    }
    Ok(done.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
