//! bench-node against this machine's real `/proc`: a live process that
//! presents itself as a kubelet, its real cgroup and mount namespace.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use crate::harness::{self, TestDir};

/// Kills the stand-in process however the test ends.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn judges_a_live_kubelet_process_from_the_real_proc() {
    let Some(python) = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
    else {
        eprintln!("SKIPPED (python3 not installed): live stand-in process");
        return;
    };
    let dir = TestDir::new("bench-node-live");
    let config = dir.write(
        "kubelet/config.yaml",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nauthentication:\n  anonymous:\n    enabled: false\nreadOnlyPort: 10255\n",
    );
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    // argv[0] says kubelet; python sleeps and ignores the flags after -c.
    let child = Command::new(python)
        .arg0("/usr/bin/kubelet")
        .args(["-c", "import time; time.sleep(120)"])
        .arg(format!("--config={}", config.display()))
        .arg("--hostname-override=live-test")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawning the stand-in");
    let pid = child.id();
    let _reaper = Reaper(child);
    // Wait until the kernel shows the new argv.
    for _ in 0..200 {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with(b"/usr/bin/kubelet\0")
            && cmdline.windows(8).any(|w| w == b"--config")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = harness::run(harness::tool("bench-node").args([
        "--host-root",
        "/",
        "--targets",
        "node",
        "--check",
        "4.2.1,4.2.4,4.2.7,4.1.9",
        "--kubernetes-version",
        "1.31",
    ]));
    out.assert_code(0);
    let doc = out.json();
    let kubelet = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "kubelet")
        .cloned()
        .expect("kubelet found in /proc");
    if kubelet["pid"] != pid {
        eprintln!("SKIPPED (another kubelet runs on this machine: {kubelet}): live stand-in");
        return;
    }
    let r = super::fixture::Results::from_doc(doc);
    let anon = r.expect("4.2.1", "PASS");
    assert!(
        anon["source_detail"]
            .as_str()
            .unwrap()
            .contains(config.to_str().unwrap()),
        "{anon:#}"
    );
    r.expect("4.2.4", "WARN");
    assert_eq!(
        r.expect("4.2.7", "WARN")["actual"],
        "--hostname-override=live-test"
    );
    // The config is 0644: too open for 4.1.9.
    r.expect("4.1.9", "FAIL");
}
