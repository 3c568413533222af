//! Field hardening on a booted node: a run killed during activation, the
//! placeholder profile (`not_configured`), a Secret with upper-case keys,
//! a credential with a newline, and registration.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::super::agent_pkg::{self, Source};
use super::super::node::{rootfs, Node};
use super::*;
use crate::harness::TestDir;

const ACTIVATE_UNIT: &str = "nodeguard-install-agent-tinyagent-activate.service";

/// Files under the node's staging directory (the activation script holds
/// the credentials while it exists).
fn staged_files(node: &Node) -> Vec<String> {
    let (_, out) = node.sh("find /var/lib/nodeguard/install-agent/staging -type f 2>/dev/null");
    out.lines().map(str::to_owned).collect()
}

#[test]
fn a_run_killed_during_activation_does_not_block_the_next() {
    skip_unless_root!("boots a systemd node with systemd-nspawn on an overlay mount");
    let rootfs = match rootfs() {
        Ok(r) => r,
        Err(why) => return eprintln!("SKIPPED: {why}"),
    };
    let _slot = node_slot();
    let dir = TestDir::new("ia-e2e-kill-activate");
    let mut t = Transcript::default();
    let (profile, creds) = deb_from_path(&dir);
    // The activation tool sleeps a minute while this marker exists.
    let node = Node::boot("killact", &rootfs, |root| {
        fs::write(root.join("etc/tinyagent-slow-activate"), "").unwrap();
    });
    let mut cmd = ia(&node, "install", &profile, &creds, &[]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, active) = node.sh(&format!("systemctl is-active {ACTIVATE_UNIT}"));
        if active.trim() == "active" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the activation unit never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "install-agent ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The script that carries the token removed itself as it started.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(staged_files(&node), Vec::<String>::new(), "staged files");
    child.kill().unwrap();
    child.wait().unwrap();
    let (_, active) = node.sh(&format!("systemctl is-active {ACTIVATE_UNIT}"));
    assert_eq!(active.trim(), "active", "the orphaned activation runs on");

    // The next run must not wait for the orphan (a minute) nor fail on its
    // unit name; it stops it and activates again, quickly.
    fs::remove_file(node.path("/etc/tinyagent-slow-activate")).unwrap();
    let started = Instant::now();
    let r = t.run(
        "after kill",
        &mut ia(&node, "install", &profile, &creds, &[]),
    );
    let took = started.elapsed();
    r.assert_code(0);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let j = r.json();
    let recover = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "recover")
        .unwrap_or_else(|| panic!("no recover step: {}", r.stdout));
    assert!(
        recover["detail"]
            .as_str()
            .unwrap()
            .contains("stopped the interrupted activation unit"),
        "{recover}"
    );
    assert_eq!(j["activated"], true);
    assert!(node.path("/var/lib/tinyagent/activated").exists());
    assert_service_active(&node);
    assert_eq!(staged_files(&node), Vec::<String>::new());
    finish(&mut t, &node);
}

/// The agent profile with the deb entry's sum replaced by the placeholder.
fn placeholder_profile(dir: &TestDir) -> std::path::PathBuf {
    let none = "0".repeat(64);
    agent_pkg::profile(
        dir.path(),
        "placeholder.toml",
        "1.0.0",
        &Source::Path(Path::new("/opt/nodeguard/packages/tinyagent.deb"), &none),
        &Source::Path(Path::new("/opt/nodeguard/packages/tinyagent.rpm"), &none),
    )
}

#[test]
fn placeholders_upper_case_keys_bad_credentials_and_registration() {
    skip_unless_root!("boots a systemd node with systemd-nspawn on an overlay mount");
    let rootfs = match rootfs() {
        Ok(r) => r,
        Err(why) => return eprintln!("SKIPPED: {why}"),
    };
    let _slot = node_slot();
    let dir = TestDir::new("ia-e2e-configured");
    let mut t = Transcript::default();
    let node = Node::boot("configured", &rootfs, |_| {});

    // 1. The shipped state: placeholder sums, no package in the image, no
    //    Secret. Every command says not_configured with the values to set;
    //    install exits 8 and writes nothing on the node.
    let placeholder = placeholder_profile(&dir);
    let empty = dir.join("no-creds");
    fs::create_dir_all(&empty).unwrap();
    let metrics = dir.join("metrics.prom");
    for (command, code) in [("plan", 0), ("status", 8), ("install", 8)] {
        let metrics_arg = metrics.display().to_string();
        let r = t.run(
            command,
            &mut ia(
                &node,
                command,
                &placeholder,
                &empty,
                &["--metrics-file", &metrics_arg],
            ),
        );
        r.assert_code(code);
        let j = r.json();
        assert_eq!(j["status"], "not_configured", "{command}: {}", r.stdout);
        let gaps = j["not_configured"].as_array().unwrap();
        let sets: Vec<&str> = gaps
            .iter()
            .flat_map(|g| g["set"].as_array().unwrap())
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(
            sets.iter().any(|s| s.starts_with("bootstrap.packages"))
                && sets.iter().any(|s| s.contains("sha256"))
                && sets.contains(&"credentials.values.token"),
            "{command}: {sets:?}"
        );
        assert_eq!(j["installed"], false);
        let text = fs::read_to_string(&metrics).unwrap();
        assert!(
            text.contains("nodeguard_install_agent_configured{agent=\"tinyagent\"} 0"),
            "{text}"
        );
    }
    assert!(
        !node.path("/var/lib/nodeguard").exists(),
        "not_configured wrote on the node"
    );

    // 2. A credential value with a newline is refused, naming the key only.
    let (profile, _) = deb_from_path(&dir);
    let upper = dir.join("upper");
    fs::create_dir_all(&upper).unwrap();
    fs::write(
        upper.join("TOKEN"),
        format!("{TOKEN}\nserver=https://evil.invalid\n"),
    )
    .unwrap();
    let r = t.run("newline", &mut ia(&node, "install", &profile, &upper, &[]));
    r.assert_code(2);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let last = r.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("credential token") && last.contains("newline"),
        "{}",
        r.stderr
    );
    assert!(!node.path("/etc/tinyagent/agent.conf").exists());

    // 3. Both spellings of one credential: an error naming both.
    fs::write(upper.join("TOKEN"), format!("{TOKEN}\n")).unwrap();
    fs::write(upper.join("token"), format!("{TOKEN}\n")).unwrap();
    let r = t.run("both", &mut ia(&node, "install", &profile, &upper, &[]));
    r.assert_code(2);
    assert!(
        r.stderr.contains("TOKEN") && r.stderr.contains("as token"),
        "{}",
        r.stderr
    );

    // 4. The upper-case key alone installs; registration is reported.
    fs::remove_file(upper.join("token")).unwrap();
    let metrics_arg = metrics.display().to_string();
    let r = t.run(
        "upper-case",
        &mut ia(
            &node,
            "install",
            &profile,
            &upper,
            &["--metrics-file", &metrics_arg],
        ),
    );
    r.assert_code(0);
    let j = r.json();
    assert_eq!(j["status"], "changed", "{}", r.stdout);
    for flag in ["installed", "active", "activated", "registered"] {
        assert_eq!(j[flag], true, "{flag}: {}", r.stdout);
    }
    assert_config(&node, false);
    let text = fs::read_to_string(&metrics).unwrap();
    for line in [
        "nodeguard_install_agent_configured{agent=\"tinyagent\"} 1",
        "nodeguard_install_agent_registered{agent=\"tinyagent\"} 1",
    ] {
        assert!(text.contains(line), "{line}:\n{text}");
    }

    // 5. status tells installed, active, activated and registered apart.
    fs::remove_file(node.path("/var/lib/tinyagent/activated")).unwrap();
    let r = t.run("status", &mut ia(&node, "status", &profile, &upper, &[]));
    r.assert_code(0);
    let j = r.json();
    assert_eq!(
        (
            &j["installed"],
            &j["active"],
            &j["activated"],
            &j["registered"]
        ),
        (
            &Value::Bool(true),
            &Value::Bool(true),
            &Value::Bool(true),
            &Value::Bool(false)
        ),
        "{}",
        r.stdout
    );
    assert!(
        j["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "registered" && s["status"] == "pending"),
        "{}",
        r.stdout
    );
    finish(&mut t, &node);
}

/// The shipped Qualys profile, unchanged, with its packages from a
/// `--packages-file` (what the chart renders from `bootstrap.packages`)
/// and the Qualys chart's Secret layout (upper-case keys): installs,
/// activates, and reports registration once the agent has its host id.
#[test]
fn shipped_qualys_profile_with_a_packages_file_and_upper_case_secret_keys() {
    skip_unless_root!("boots a systemd node with systemd-nspawn on an overlay mount");
    let rootfs = match rootfs() {
        Ok(r) => r,
        Err(why) => return eprintln!("SKIPPED: {why}"),
    };
    let _slot = node_slot();
    let dir = TestDir::new("ia-e2e-qualys");
    let mut t = Transcript::default();
    let (deb, sum) = agent_pkg::build_qualys_standin_deb(dir.path(), "6.1.0.28");
    let packages = dir.write(
        "packages.toml",
        format!(
            "# Rendered from bootstrap.packages.\n[[package]]\nformat = \"deb\"\narch = \"{}\"\nversion = \"6.1.0.28\"\npath = \"{}\"\nsha256 = \"{sum}\"\n",
            agent_pkg::arch(),
            deb.display()
        ),
    );
    let profile = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../install-agent/profiles/qualys-cloud-agent.toml");
    let creds = dir.join("qualys-credentials");
    fs::create_dir_all(&creds).unwrap();
    fs::write(creds.join("ACTIVATION_ID"), format!("{TOKEN}\n")).unwrap();
    fs::write(creds.join("CUSTOMER_ID"), "ngcustomer-0001\n").unwrap();
    fs::write(
        creds.join("SERVER_URI"),
        "https://qagpublic.invalid/CloudAgent/\n",
    )
    .unwrap();
    let node = Node::boot("qualys", &rootfs, |_| {});
    let packages_arg = packages.display().to_string();
    let r = t.run(
        "install",
        &mut ia(
            &node,
            "install",
            &profile,
            &creds,
            &["--packages-file", &packages_arg],
        ),
    );
    r.assert_code(0);
    let j = r.json();
    assert_eq!(j["status"], "changed", "{}", r.stdout);
    assert_eq!(j["package"]["name"], "qualys-cloud-agent");
    assert_eq!(j["package"]["sha256"], sum.as_str());
    assert_eq!(
        (&j["installed"], &j["activated"]),
        (&Value::Bool(true), &Value::Bool(true))
    );
    let conf = node.path("/etc/qualys/cloud-agent/qualys-cloud-agent.conf");
    let text = fs::read_to_string(&conf).unwrap();
    assert_eq!(
        text,
        format!(
            "ActivationId={TOKEN}\nCustomerId=ngcustomer-0001\nServerUri=https://qagpublic.invalid/CloudAgent/\n"
        )
    );
    let (_, active) = node.sh("systemctl is-active qualys-cloud-agent");
    assert_eq!(active.trim(), "active");
    // Registration comes from the platform, later: status reports it once
    // the host id exists.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = t.run(
            "status",
            &mut ia(
                &node,
                "status",
                &profile,
                &creds,
                &["--packages-file", &packages_arg],
            ),
        );
        r.assert_code(0);
        if r.json()["registered"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "never registered: {}", r.stdout);
        std::thread::sleep(Duration::from_millis(300));
    }
    let r = t.run(
        "rerun",
        &mut ia(
            &node,
            "install",
            &profile,
            &creds,
            &["--packages-file", &packages_arg],
        ),
    );
    r.assert_code(0);
    assert_eq!(r.json()["status"], "converged");
    finish(&mut t, &node);
}

/// An agent that crashed until systemd gave up (`StartLimitBurst`) is
/// reset and started by the next run, which says so.
#[test]
fn a_unit_that_hit_its_start_limit_is_reset_and_started() {
    skip_unless_root!("boots a systemd node with systemd-nspawn on an overlay mount");
    let rootfs = match rootfs() {
        Ok(r) => r,
        Err(why) => return eprintln!("SKIPPED: {why}"),
    };
    let _slot = node_slot();
    let dir = TestDir::new("ia-e2e-start-limit");
    let mut t = Transcript::default();
    let (profile, creds) = deb_from_path(&dir);
    let node = Node::boot("startlimit", &rootfs, |_| {});
    t.run("install", &mut ia(&node, "install", &profile, &creds, &[]))
        .assert_code(0);
    // Crash loop: Restart=always restarts it until the start limit trips
    // (a small, explicit limit so the test does not depend on defaults).
    fs::create_dir_all(node.path("/etc/systemd/system/tinyagent.service.d")).unwrap();
    fs::write(
        node.path("/etc/systemd/system/tinyagent.service.d/limit.conf"),
        "[Unit]\nStartLimitIntervalSec=60\nStartLimitBurst=3\n[Service]\nRestartSec=100ms\n",
    )
    .unwrap();
    fs::write(node.path("/etc/tinyagent-crash"), "").unwrap();
    node.sh("systemctl daemon-reload; systemctl restart tinyagent");
    // systemd gives up: failed, restarts at the burst. (No manual start
    // here: a refused one would set Result=start-limit-hit, while the
    // field's case, automatic restarts, keeps Result=exit-code.)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, show) = node.sh(
            "systemctl show --property=ActiveState,NRestarts,Result,SubState tinyagent; journalctl -u tinyagent --no-pager | grep -c 'repeated too quickly'",
        );
        if show.contains("ActiveState=failed") && show.trim_end().ends_with('1') {
            assert!(show.contains("Result=exit-code"), "{show}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never hit the start limit:\n{show}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    fs::remove_file(node.path("/etc/tinyagent-crash")).unwrap();

    let r = t.run(
        "after crash loop",
        &mut ia(&node, "install", &profile, &creds, &[]),
    );
    r.assert_code(0);
    let j = r.json();
    let start = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "start")
        .unwrap_or_else(|| panic!("no start step: {}", r.stdout));
    let detail = start["detail"].as_str().unwrap();
    assert!(
        detail.contains("StartLimitBurst") && detail.contains("reset-failed"),
        "{detail}"
    );
    assert_service_active(&node);
    finish(&mut t, &node);
}
