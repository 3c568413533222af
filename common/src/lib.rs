//! What every nodeguard tool shares, and nothing more.
//!
//! Each tool is a small binary that reads a node (under `--host-root`) and
//! prints one JSON document. The pieces here are the ones whose behaviour
//! must be identical across tools because scripts, alerts and the cluster
//! report depend on it:
//!
//! - [`exit`]: the exit-code contract (0 ok, 1 findings at/above `--fail-on`,
//!   2+ error) and the `main` wrapper that maps errors to it;
//! - [`finish`]: the one way a run ends: metrics file first, then the
//!   report, so a failure is exit 2 with nothing on stdout;
//! - [`cli`]: the flags every tool takes (`--host-root`, `--format`, …);
//! - [`report`]: the JSON/JSON Lines envelope (`schema_version`, `tool`, …);
//! - [`text`]: `--format text` for a person (colour, tables);
//! - [`version`]: `--version` with the commit the binary was built from;
//! - [`hostroot`]: path resolution that never escapes the host root;
//! - [`input`]: operator-given files read as regular files only, size-capped;
//! - [`atomic`]: files written via temp file + fsync + rename;
//! - [`progress`]: progress lines on stderr, only when it is a terminal;
//! - [`process`]: subprocesses with timeouts that kill the process group;
//! - [`redact`]: secret values scrubbed from logs, errors and captured output;
//! - [`metrics`]: Prometheus textfile-collector output;
//! - [`logging`]: `env_logger` on stderr, through the redactor.
//!
//! Tool-specific types (reports, checks, profiles) stay in their own crates.

// Common code handles every tool's untrusted input (paths, files, process
// output): no index that can panic, no cast that silently truncates. The
// other crates are listed for the same treatment in docs/conventions.md.
#![warn(
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::expect_used
)]

pub mod atomic;
pub mod cli;
pub mod exit;
pub mod finish;
pub mod hostroot;
pub mod input;
pub mod logging;
pub mod lsm;
pub mod metrics;
pub mod process;
pub mod progress;
pub mod redact;
pub mod report;
pub mod text;
pub mod version;

pub use hostroot::HostRoot;
