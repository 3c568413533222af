//! `fim-check`: file integrity monitoring for Kubernetes nodes.
//!
//! `init` walks the host root under a policy (`policy`), hashes in parallel
//! (`scan`) and streams an HMAC-authenticated baseline (`baseline`);
//! `check` joins a new walk with the baseline (`merge`, `compare`) and
//! prints one JSON report (`report`); `update` does both and replaces the
//! baseline atomically, keeping the previous one as `<baseline>.prev`.

// Everything here reads hostile input (files, policies, baselines): an
// input-derived value never indexes, slices, truncates or panics. Tests may.
#![cfg_attr(
    not(test),
    warn(
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::expect_used,
        clippy::panic
    )
)]

pub mod attrs;
pub mod baseline;
pub mod cli;
mod commands;
pub mod compare;
pub mod entry;
pub mod hash;
pub mod judge;
pub mod merge;
pub mod policy;
pub mod report;
pub mod roots;
pub mod scan;
pub mod text;
pub mod throttle;
pub mod walk;
pub mod watch;

pub use commands::run;

/// The tool's name as it appears in reports and metrics.
pub const TOOL: &str = "fim-check";
/// The tool's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Exit code: the baseline failed its integrity check (see `cli::exit_codes`).
pub const EXIT_BASELINE_INTEGRITY: u8 = 3;
/// Exit code: the baseline is intact but not for this node/config/format.
pub const EXIT_BASELINE_MISMATCH: u8 = 4;
