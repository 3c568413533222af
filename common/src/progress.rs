//! Progress on long runs, for a person watching: drawn on stderr with
//! indicatif, and only when stderr is a terminal (never in a pod's log,
//! never when redirected), so reports and logs are unchanged.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress line, or nothing when stderr is not a terminal.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    bytes: Arc<AtomicU64>,
}

impl Progress {
    fn new(bar: Option<ProgressBar>) -> Self {
        Self {
            bar,
            bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// No progress shown (tests, pipes).
    pub fn hidden() -> Self {
        Self::new(None)
    }

    fn shown() -> bool {
        std::io::stderr().is_terminal()
    }

    /// Counting `unit`s (e.g. files) and bytes, with the byte rate; with a
    /// total ([`Self::set_total`]), a bar and the ETA.
    pub fn counter(unit: &'static str) -> Self {
        if !Self::shown() {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let progress = Self::new(Some(bar.clone()));
        bar.set_style(progress.style(&format!(
            "{{spinner}} {{pos}} {unit} · {{bytes}} hashed, {{rate}} · {{elapsed}}"
        )));
        bar.enable_steady_tick(Duration::from_millis(200));
        progress
    }

    /// A style with `{bytes}` (bytes so far) and `{rate}` (bytes/s) keys,
    /// computed when the line is drawn (not per file).
    fn style(&self, template: &str) -> ProgressStyle {
        let bytes = Arc::clone(&self.bytes);
        let rate_bytes = Arc::clone(&self.bytes);
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "bytes",
                move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}", HumanBytes(bytes.load(Ordering::Relaxed)));
                },
            )
            .with_key(
                "rate",
                move |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let secs = state.elapsed().as_secs_f64();
                    #[allow(
                        clippy::cast_precision_loss,
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss
                    )]
                    let rate = if secs > 0.0 {
                        (rate_bytes.load(Ordering::Relaxed) as f64 / secs) as u64
                    } else {
                        0
                    };
                    let _ = write!(w, "{}/s", HumanBytes(rate));
                },
            )
            .progress_chars("=> ")
    }

    /// `i of n` `unit`s (e.g. images), the current one as the message.
    pub fn steps(unit: &'static str, n: u64) -> Self {
        if !Self::shown() || n == 0 {
            return Self::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {unit} {{pos}} of {{len}} [{{bar:25}}] {{elapsed}} {{wide_msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Self::new(Some(bar))
    }

    /// The expected number of units: the counter becomes a bar with an ETA.
    pub fn set_total(&self, total: u64, unit: &'static str) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_style(self.style(&format!(
                "{{spinner}} [{{bar:25}}] {{pos}}/{{len}} {unit} · {{bytes}} hashed, {{rate}} · ETA {{eta}}"
            )));
        }
    }

    /// One more unit done, of `bytes` bytes (0 when nothing was read).
    pub fn inc(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
            bar.inc(1);
            let secs = bar.elapsed().as_secs_f64();
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let rate = if secs > 0.0 {
                (total as f64 / secs) as u64
            } else {
                0
            };
            bar.set_message(format!(
                "{} hashed, {}/s",
                HumanBytes(total),
                HumanBytes(rate)
            ));
        }
    }

    /// One step done; `what` is shown beside the count.
    pub fn step(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(what.to_string());
        }
    }

    /// Shows `what` as the current step without counting it.
    pub fn working_on(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(what.to_string());
        }
    }
}

impl Drop for Progress {
    /// The line is erased: the report follows on stdout, logs on stderr.
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_progress_is_a_no_op() {
        let p = Progress::hidden();
        p.set_total(10, "files");
        p.inc(100);
        p.step("x");
        p.working_on("y");
    }
}
