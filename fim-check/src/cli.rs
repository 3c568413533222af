//! Command-line arguments (every flag also reads a `NODEGUARD_*` variable).

use clap::{Args, Parser, Subcommand, ValueEnum};
use nodeguard_common::cli::CommonArgs;
use nodeguard_common::exit;
use std::path::PathBuf;

/// What the exit codes mean (shared wording from nodeguard-common).
pub fn exit_codes() -> String {
    exit::help(&[
        (exit::SUCCESS, "success (changes, if any, are in the report)"),
        (
            exit::FINDINGS,
            "success, and the report has what --fail-on asked to fail on",
        ),
        (
            exit::ERROR,
            "bad config, unreadable baseline, metrics file not writable, I/O error",
        ),
        (
            crate::EXIT_BASELINE_INTEGRITY,
            "baseline refused: corrupt, truncated, edited, wrong --key-file, or not\nauthenticated although --key-file was given (possible tampering)",
        ),
        (
            crate::EXIT_BASELINE_MISMATCH,
            "baseline refused: intact but made for another node, another config,\nother --path limits, or in an unsupported format version (run init)",
        ),
    ])
}

pub const ENVIRONMENT: &str = "Environment: every flag also reads a variable: NODEGUARD_HOST_ROOT,
NODEGUARD_BASELINE, NODEGUARD_CONFIG, NODEGUARD_KEY_FILE, NODEGUARD_PATH,
NODEGUARD_FORMAT, NODEGUARD_PRETTY, NODEGUARD_METRICS_FILE, NODEGUARD_NODE_NAME,
NODEGUARD_MAX_READ_RATE, NODEGUARD_NICE, NODEGUARD_NO_IO_IDLE, NODEGUARD_THREADS,
NODEGUARD_FAIL_ON, NODEGUARD_FORCE (see each command's --help).";

/// The most hashing threads `--threads` accepts.
pub const MAX_THREADS: u64 = 256;

#[derive(Debug, Parser)]
#[command(
    name = "fim-check",
    version,
    about = "File integrity monitoring for Kubernetes nodes: signed baselines, parallel SHA-256, JSON reports.",
    after_help = format!("{ENVIRONMENT}\n\n{}", exit_codes())
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Walk the selected files and write a new baseline.
    #[command(after_help = exit_codes())]
    Init(InitArgs),
    /// Compare the host with the baseline and report what changed.
    #[command(after_help = exit_codes())]
    Check(ScanArgs),
    /// Check, then accept the current state as the new baseline (the old
    /// one is kept as <BASELINE>.prev).
    #[command(after_help = exit_codes())]
    Update(ScanArgs),
    /// Show a baseline's metadata, or with --path one recorded entry.
    #[command(after_help = exit_codes())]
    Show(ShowArgs),
    /// Print the built-in Kubernetes node policy (TOML) to start a config from.
    DefaultConfig,
    /// Check, then keep watching: one JSON line per change as it happens,
    /// until SIGTERM/SIGINT (exit 0).
    #[command(after_help = exit_codes())]
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub scan: ScanArgs,

    /// Event source: inotify (one watch per directory, no capability),
    /// fanotify (one mark per file system; Linux 5.9+, CAP_SYS_ADMIN and
    /// CAP_DAC_READ_SEARCH), auto (fanotify when allowed, else inotify).
    #[arg(long, env = "NODEGUARD_WATCH_BACKEND", value_enum, default_value_t = crate::watch::Backend::Auto)]
    pub backend: crate::watch::Backend,

    /// Also run a full check this often, in seconds (0: only at start and
    /// after lost events).
    #[arg(
        long,
        env = "NODEGUARD_FULL_CHECK_INTERVAL",
        value_name = "SECONDS",
        default_value_t = 0
    )]
    pub full_check_interval: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Never exit 1.
    None,
    /// Exit 1 when anything was added, removed or changed.
    Changes,
    /// Exit 1 when some path could not be examined.
    Errors,
    /// Either.
    Any,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The baseline file.
    #[arg(long, env = "NODEGUARD_BASELINE", value_name = "FILE")]
    pub baseline: PathBuf,

    /// Policy file (TOML); default: the built-in Kubernetes node policy.
    #[arg(long, env = "NODEGUARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// HMAC-SHA256 key file (e.g. a mounted Secret), at least 16 bytes;
    /// trailing whitespace is ignored.
    #[arg(long, env = "NODEGUARD_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// Limit the scan to these paths (inside the host root); repeatable.
    #[arg(
        long = "path",
        env = "NODEGUARD_PATH",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub paths: Vec<String>,

    /// Cap on content read, in MB/s across all threads (0: unlimited;
    /// otherwise 0.001 to 1000000).
    #[arg(
        long,
        env = "NODEGUARD_MAX_READ_RATE",
        value_name = "MB_PER_S",
        default_value_t = 0.0
    )]
    pub max_read_rate: f64,

    /// CPU niceness of the scan (0 keeps the current priority).
    #[arg(long, env = "NODEGUARD_NICE", default_value_t = 10, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub nice: i32,

    /// Keep the normal I/O priority instead of the idle class.
    #[arg(long, env = "NODEGUARD_NO_IO_IDLE")]
    pub no_io_idle: bool,

    /// Hashing threads, 1 to 256 (default: all CPUs).
    #[arg(long, env = "NODEGUARD_THREADS", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_THREADS))]
    pub threads: Option<usize>,

    /// When to exit 1.
    #[arg(long, env = "NODEGUARD_FAIL_ON", value_enum, default_value_t = FailOn::None)]
    pub fail_on: FailOn,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub scan: ScanArgs,

    /// Replace an existing baseline (otherwise init refuses to).
    #[arg(long, env = "NODEGUARD_FORCE")]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The baseline file.
    #[arg(long, env = "NODEGUARD_BASELINE", value_name = "FILE")]
    pub baseline: PathBuf,

    /// HMAC-SHA256 key file to verify the baseline with.
    #[arg(long, env = "NODEGUARD_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// Show the entry recorded for this path.
    #[arg(long, env = "NODEGUARD_PATH", value_name = "PATH")]
    pub path: Option<String>,
}
