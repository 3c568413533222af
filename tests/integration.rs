//! Black-box tests for every nodeguard tool, script and manifest, compiled
//! into one test binary (one link instead of one per tool).
//!
//! Each module runs the real binaries on fixture host roots under
//! `tests/fixtures/<tool>/` and `../shared/fixtures/`. Tests that need root
//! (booting a node, containerd, loop mounts) skip loudly when not root; CI
//! runs as root, so there they run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// Not every helper is used by every tool's tests at all times.
#[allow(dead_code)]
#[macro_use]
mod harness;

mod bench_node;
mod cluster_report;
mod deploy;
mod detect_host;
mod fim_check;
mod fim_watch;
mod install_agent;
mod package;
mod scan_images;
mod scan_this_node;
mod scripts;
mod text_output;
mod workspace;
