//! Logging on stderr through the redactor.
//!
//! stdout belongs to the JSON document, so every log line goes to stderr;
//! `RUST_LOG` selects the level (default `warn`, so a clean run prints
//! nothing but the report).

use std::io::Write;

/// Installs `env_logger` writing redacted lines to stderr. Safe to call more
/// than once (later calls do nothing), which keeps tests simple.
pub fn init() {
    let env = env_logger::Env::default().default_filter_or("warn");
    let _ = env_logger::Builder::from_env(env)
        .target(env_logger::Target::Stderr)
        .format(|buf, record| {
            let message = crate::redact::redact(&record.args().to_string());
            writeln!(
                buf,
                "{} {:<5} {}: {}",
                buf.timestamp_millis(),
                record.level(),
                record.target(),
                message
            )
        })
        .try_init();
}
