//! A real node for the end-to-end tests: the Debian rootfs built once by
//! `tests/setup/install-agent.sh`, a fresh overlay per test, booted with
//! `systemd-nspawn -b` (systemd as the node's PID 1).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::TestDir;

/// The cached node rootfs, if the setup script built it.
pub fn rootfs() -> Result<PathBuf, String> {
    let cache = std::env::var_os("NODEGUARD_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/nodeguard-ci"), PathBuf::from);
    let rootfs = cache.join("install-agent/rootfs");
    if rootfs.join(".nodeguard-stamp").is_file() {
        Ok(rootfs)
    } else {
        Err(format!(
            "no node rootfs at {} (run tests/setup/install-agent.sh as root)",
            rootfs.display()
        ))
    }
}

/// A booted node; shut down and unmounted on drop.
#[derive(Debug)]
pub struct Node {
    /// The test's scratch directory (overlay layers, logs).
    pub dir: TestDir,
    merged: PathBuf,
    nspawn: Option<Child>,
    /// PID of the node's init, as seen from here.
    pub init: i32,
}

impl Node {
    /// Boot a fresh node on an overlay of the cached rootfs. `prepare` may
    /// change the node's files before it boots (it gets the merged root).
    pub fn boot(label: &str, rootfs: &Path, prepare: impl FnOnce(&Path)) -> Node {
        use std::os::unix::fs::FileTypeExt;
        // nspawn copies the host's /dev/null into the node; a /dev/null
        // that something replaced with a regular file fails the boot.
        let null_ok = fs::metadata("/dev/null").is_ok_and(|m| m.file_type().is_char_device());
        assert!(null_ok, "host /dev/null is not a character device (something replaced it); restore it with `mknod -m 666 /dev/null c 1 3`");
        let dir = TestDir::new(&format!("ia-node-{label}"));
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for d in [&upper, &work, &merged] {
            fs::create_dir_all(d).expect("mkdir");
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            rootfs.display(),
            upper.display(),
            work.display()
        );
        let status = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(&merged)
            .status()
            .expect("mount");
        assert!(status.success(), "mounting the node overlay failed");
        let machine = format!("ng-{label}-{}", std::process::id());
        fs::write(merged.join("etc/hostname"), format!("{machine}\n")).expect("hostname");
        prepare(&merged);
        let log = fs::File::create(dir.join("nspawn.log")).expect("log");
        let nspawn = Command::new("systemd-nspawn")
            .args(["-b", "-D"])
            .arg(&merged)
            .args([
                "-M",
                &machine,
                "--register=no",
                "--keep-unit",
                "--private-network",
                "--console=passive",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting systemd-nspawn");
        let mut node = Node {
            dir,
            merged,
            nspawn: Some(nspawn),
            init: 0,
        };
        node.init = node.wait_for_init();
        // Right after its exec systemd has no bus yet ("Failed to connect
        // to bus", "offline"): ask again until it answers for the boot.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, out) = node.sh("timeout 60 systemctl is-system-running --wait");
            if out.trim() == "running" || out.trim() == "degraded" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node did not finish booting ({code}: {out})\n{}",
                node.console_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    fn wait_for_init(&mut self) -> i32 {
        let pid = self.nspawn.as_ref().expect("nspawn").id();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let children = fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
                .collect::<String>();
            if let Some(init) = children
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
            {
                // Wait until the child has become systemd (after the exec).
                if fs::read_to_string(format!("/proc/{init}/comm"))
                    .is_ok_and(|c| c.trim() == "systemd")
                {
                    return init;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node init never appeared\n{}",
                self.console_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run a shell script inside the node (test-side; the tool itself
    /// never uses nsenter); returns exit code and stdout+stderr.
    pub fn sh(&self, script: &str) -> (i32, String) {
        let out = Command::new("nsenter")
            .args([
                "-t",
                &self.init.to_string(),
                "-m",
                "-u",
                "-i",
                "-n",
                "-p",
                "--",
                "/bin/sh",
                "-c",
                script,
            ])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .expect("nsenter");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    /// A node path as seen from here.
    pub fn path(&self, host_path: &str) -> PathBuf {
        self.merged.join(host_path.trim_start_matches('/'))
    }

    /// The node's whole journal.
    pub fn journal(&self) -> String {
        self.sh("journalctl --no-pager -o short-precise 2>&1").1
    }

    /// What nspawn printed (the node's console).
    pub fn console_log(&self) -> String {
        fs::read_to_string(self.dir.join("nspawn.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.nspawn.take() {
            // SIGTERM makes nspawn shut the node down cleanly.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let ok = Command::new("umount")
            .arg(&self.merged)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.merged).status();
        }
    }
}
