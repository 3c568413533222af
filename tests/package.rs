//! `scripts/package`: what the .deb, .rpm and .tar.gz hold (the six tools
//! in /usr/bin, man pages, bash/zsh/fish completions, the licence), that
//! SHA256SUMS verifies, and the .deb installed with dpkg on the booted
//! nspawn node with every tool run there.
//!
//! The fast tests package the tools this test run built (stripped) with
//! `--bin-dir`; `NODEGUARD_PACKAGE_E2E=1` also runs the real thing
//! (`--arch all`: static musl release builds) and the arm64 binaries
//! under qemu.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{self, TestDir};

// The booted-node helper is private to the install_agent tests (another
// owner); compiled here once more rather than changing its visibility.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "install_agent/node.rs"]
mod node;

const TOOLS: [&str; 6] = [
    "detect-host",
    "install-agent",
    "scan-images",
    "fim-check",
    "bench-node",
    "cluster-report",
];

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tools_missing() -> Option<String> {
    ["dpkg-deb", "rpmbuild", "rpm"]
        .into_iter()
        .find(|p| !have(p))
        .map(|p| format!("SKIPPED: {p} not installed (tests/setup/package.sh)"))
}

/// Packages the tools this run built, stripped, into `dir/dist`.
fn package_built_tools(dir: &TestDir) -> PathBuf {
    let bins = dir.join("bin");
    std::fs::create_dir_all(&bins).unwrap();
    for tool in TOOLS {
        sh(Command::new("objcopy")
            .arg("--strip-debug")
            .arg(harness::bin(tool))
            .arg(bins.join(tool)));
    }
    let dist = dir.join("dist");
    sh(
        Command::new(harness::workspace_root().join("scripts/package"))
            .args(["--arch", "amd64", "--bin-dir"])
            .arg(&bins)
            .arg("--out")
            .arg(&dist),
    );
    dist
}

fn one(dist: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dist)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one *{suffix} in {}: {found:?}",
        dist.display()
    );
    found.into_iter().next().unwrap()
}

/// Every file a package must hold, as installed paths.
fn assert_complete(listing: &str, what: &str) {
    for tool in TOOLS {
        for path in [
            format!("/usr/bin/{tool}"),
            format!("/usr/share/man/man1/{tool}.1.gz"),
            format!("/usr/share/bash-completion/completions/{tool}"),
            format!("/usr/share/zsh/vendor-completions/_{tool}"),
            format!("/usr/share/fish/vendor_completions.d/{tool}.fish"),
        ] {
            assert!(
                listing.lines().any(|l| l.trim_end().ends_with(&path)),
                "{what} lacks {path}:\n{listing}"
            );
        }
    }
    for path in [
        "/usr/share/man/man1/fim-check-check.1.gz",
        "/usr/share/man/man1/install-agent-install.1.gz",
        "/usr/share/doc/nodeguard/LICENSE",
        "/usr/bin/nodeguard-scan-this-node",
    ] {
        assert!(
            listing.lines().any(|l| l.trim_end().ends_with(path)),
            "{what} lacks {path}:\n{listing}"
        );
    }
}

#[test]
fn deb_rpm_and_tarball_hold_tools_man_pages_completions_and_licence() {
    if let Some(skip) = tools_missing() {
        eprintln!("{skip}");
        return;
    }
    let dir = TestDir::new("package");
    let dist = package_built_tools(&dir);
    let version = env!("CARGO_PKG_VERSION");

    let rpm = one(&dist, ".x86_64.rpm");
    assert!(rpm.ends_with(format!("nodeguard-{version}-1.x86_64.rpm")));
    let listing = sh(Command::new("rpm").arg("-qpl").arg(&rpm));
    assert_complete(&listing, "rpm");
    let licences = sh(Command::new("rpm")
        .args(["-qp", "--licensefiles"])
        .arg(&rpm));
    assert!(
        licences.contains("/usr/share/doc/nodeguard/LICENSE"),
        "{licences}"
    );
    let info = sh(Command::new("rpm").args(["-qpi"]).arg(&rpm));
    assert!(info.contains("Apache-2.0"), "{info}");

    let deb = one(&dist, "_amd64.deb");
    assert!(deb.ends_with(format!("nodeguard_{version}_amd64.deb")));
    let listing = sh(Command::new("dpkg-deb").arg("-c").arg(&deb));
    assert_complete(&listing, "deb");
    assert!(listing.contains("root/root"), "owned by root: {listing}");
    let arch = sh(Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb)
        .arg("Architecture"));
    assert_eq!(arch.trim(), "amd64");

    let tgz = one(&dist, "-linux-amd64.tar.gz");
    let listing = sh(Command::new("tar").arg("-tzf").arg(&tgz));
    for tool in TOOLS {
        assert!(
            listing.contains(&format!("nodeguard-{version}-linux-amd64/bin/{tool}\n")),
            "{listing}"
        );
    }
    assert!(listing.contains("/LICENSE\n"), "{listing}");

    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 3, "{sums}");
    sh(Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&dist));

    // The packaged tools run, and the man pages render.
    let x = dir.join("x");
    sh(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x));
    for tool in TOOLS {
        let v = sh(Command::new(x.join("usr/bin").join(tool)).arg("--version"));
        assert!(v.starts_with(&format!("{tool} {version} (commit ")), "{v}");
    }
    if have("man") {
        let page = sh(Command::new("man")
            .arg("-l")
            .arg(x.join("usr/share/man/man1/fim-check-check.1.gz"))
            .env("MANPAGER", "cat")
            .env("COLUMNS", "100"));
        assert!(page.contains("--baseline"), "{page}");
    }
}

#[test]
fn bad_arguments_are_refused() {
    let out = Command::new(harness::workspace_root().join("scripts/package"))
        .args(["--arch", "sparc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--arch amd64|arm64|all"));
}

#[test]
fn the_deb_installs_on_a_booted_node_and_every_tool_runs_there() {
    if !harness::is_root() {
        eprintln!("SKIPPED: booting a node needs root");
        return;
    }
    if let Some(skip) = tools_missing() {
        eprintln!("{skip}");
        return;
    }
    let rootfs = match node::rootfs() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            return;
        }
    };
    let dir = TestDir::new("package-node");
    let dist = package_built_tools(&dir);
    let deb = one(&dist, "_amd64.deb");
    let node = node::Node::boot("package", &rootfs, |root| {
        std::fs::copy(&deb, root.join("var/tmp/nodeguard.deb")).unwrap();
    });
    let (code, out) =
        node.sh("dpkg -i /var/tmp/nodeguard.deb && dpkg -L nodeguard | grep -c /usr/bin/");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.trim_end().ends_with('7'),
        "six tools and the scan script: {out}"
    );
    for tool in TOOLS {
        let (code, out) = node.sh(&format!("{tool} --version"));
        assert_eq!(code, 0, "{tool}: {out}");
        assert!(out.starts_with(&format!("{tool} ")), "{out}");
    }
    let (code, out) = node.sh("detect-host --format text");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Init       systemd"), "{out}");
    let (code, out) = node.sh("bench-node --format text | tail -n 6");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("checks total"), "{out}");
    let (code, out) = node.sh("NODEGUARD_STATE_DIR=/tmp/ng nodeguard-scan-this-node");
    assert!(code == 0 || code == 2, "{out}");
    assert!(out.contains("fim-check"), "{out}");
    assert!(out.contains("Full JSON reports: /tmp/ng/reports"), "{out}");
    let (code, out) = node.sh("cluster-report --version && install-agent --help | head -n 3 && man -w fim-check 2>/dev/null || true");
    assert_eq!(code, 0, "{out}");
}

#[test]
fn release_packages_for_both_arches_and_arm64_runs_under_qemu() {
    if std::env::var_os("NODEGUARD_PACKAGE_E2E").is_none() {
        eprintln!(
            "SKIPPED: set NODEGUARD_PACKAGE_E2E=1 to build the static release packages (minutes)"
        );
        return;
    }
    let dir = TestDir::new("package-release");
    let dist = dir.join("dist");
    sh(
        Command::new(harness::workspace_root().join("scripts/package"))
            .args(["--arch", "all", "--out"])
            .arg(&dist),
    );
    for suffix in [
        "_amd64.deb",
        "_arm64.deb",
        ".x86_64.rpm",
        ".aarch64.rpm",
        "-linux-amd64.tar.gz",
        "-linux-arm64.tar.gz",
    ] {
        one(&dist, suffix);
    }
    let listing = sh(Command::new("rpm")
        .arg("-qpl")
        .arg(one(&dist, ".aarch64.rpm")));
    assert_complete(&listing, "arm64 rpm");
    let x = dir.join("arm64");
    sh(Command::new("dpkg-deb")
        .arg("-x")
        .arg(one(&dist, "_arm64.deb"))
        .arg(&x));
    for tool in TOOLS {
        let bin = x.join("usr/bin").join(tool);
        let file = sh(Command::new("file").arg(&bin));
        assert!(
            file.contains("ARM aarch64") && file.contains("statically linked"),
            "{file}"
        );
        let v = sh(Command::new("qemu-aarch64-static")
            .arg(&bin)
            .arg("--version"));
        assert!(v.starts_with(&format!("{tool} ")), "{v}");
    }
    let x = dir.join("amd64");
    sh(Command::new("dpkg-deb")
        .arg("-x")
        .arg(one(&dist, "_amd64.deb"))
        .arg(&x));
    let file = sh(Command::new("file").arg(x.join("usr/bin/detect-host")));
    assert!(file.contains("x86-64") && file.contains("static"), "{file}");
}
