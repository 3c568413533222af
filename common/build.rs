//! Records the commit the tools are built from, for `--version`:
//! `git rev-parse --short HEAD` when the source is a git checkout, else
//! `NODEGUARD_BUILD_COMMIT` (set by a build from a source tarball or an
//! image build without `.git`), else `unknown`.
//!
//! Cargo reruns this only when HEAD moves: the checkout's `HEAD` file, the
//! branch ref it points to and `packed-refs` are watched (each only if it
//! exists: a missing watched file would rerun every build).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=NODEGUARD_BUILD_COMMIT");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = from_git(&dir)
        .or_else(|| {
            std::env::var("NODEGUARD_BUILD_COMMIT")
                .ok()
                .map(|c| c.trim().to_string())
                .filter(|c| {
                    !c.is_empty()
                        && c.chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.')
                })
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=NODEGUARD_BUILD_COMMIT={commit}");
}

/// The short commit, when `dir` is inside a git checkout that has `.git`.
fn from_git(dir: &Path) -> Option<String> {
    if !dir.ancestors().any(|d| d.join(".git").exists()) {
        return None;
    }
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (!text.is_empty()).then_some(text)
    };
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    // What moves when a commit is made or checked out.
    let git_dir = git(&["rev-parse", "--absolute-git-dir"]).map(PathBuf::from);
    let common_dir = git(&["rev-parse", "--git-common-dir"])
        .map(|d| dir.join(d))
        .or_else(|| git_dir.clone());
    let mut watch: Vec<PathBuf> = Vec::new();
    if let Some(git_dir) = &git_dir {
        let head = git_dir.join("HEAD");
        if let Ok(text) = std::fs::read_to_string(&head) {
            if let (Some(reference), Some(common)) =
                (text.trim().strip_prefix("ref: "), &common_dir)
            {
                watch.push(common.join(reference));
            }
        }
        watch.push(head);
    }
    if let Some(common) = &common_dir {
        watch.push(common.join("packed-refs"));
    }
    for path in watch.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(commit)
}
