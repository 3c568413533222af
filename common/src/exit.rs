//! The exit-code contract shared by every tool.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success; findings, if any, are data in the report |
//! | 1 | success, and findings at or above the requested `--fail-on` threshold exist |
//! | 2 | error: no report was produced (bad input, missing path, failed command) |
//! | 3+ | tool-specific errors, documented in each tool's `--help` |
//!
//! Entrypoint scripts rely on "≥ 2 means no report", so a tool must never
//! print a partial document and exit 2.

use std::fmt;
use std::process::ExitCode;

/// Success: the report was printed.
pub const SUCCESS: u8 = 0;
/// Success with findings at or above the `--fail-on` threshold.
pub const FINDINGS: u8 = 1;
/// Error: no report.
pub const ERROR: u8 = 2;

/// What exit 0 means, unless a tool words it for itself.
pub const SUCCESS_HELP: &str = "success (findings, if any, are in the report)";
/// What exit 1 means for a tool with `--fail-on`.
pub const FINDINGS_HELP: &str = "success, with findings at or above --fail-on";
/// What exit 2 means, for every tool.
pub const ERROR_HELP: &str =
    "error: nothing was reported (the message on stderr names the path or command)";

/// The exit-code text of a tool without codes of its own (clap `after_help`).
pub const EXIT_CODES_HELP: &str = "Exit codes:\n  0  success (findings, if any, are in the report)\n  1  success, with findings at or above --fail-on\n  2  error: nothing was reported (the message on stderr names the path or command)";

/// The `Exit codes:` block of a tool's `--help`, from its codes and their
/// meanings. Exit 0 and 2 get the shared wording unless listed; a meaning
/// given for 2 is added to the shared one (what typically fails). A meaning
/// may span lines (`\n`); continuation lines are indented under the text.
pub fn help(codes: &[(u8, &str)]) -> String {
    let mut all: Vec<(u8, String)> = Vec::new();
    if !codes.iter().any(|(c, _)| *c == SUCCESS) {
        all.push((SUCCESS, SUCCESS_HELP.to_string()));
    }
    for (code, meaning) in codes {
        let meaning = if *code == ERROR {
            format!("{ERROR_HELP}:\n{meaning}")
        } else {
            (*meaning).to_string()
        };
        all.push((*code, meaning));
    }
    if !codes.iter().any(|(c, _)| *c == ERROR) {
        all.push((ERROR, ERROR_HELP.to_string()));
    }
    all.sort_by_key(|(code, _)| *code);
    let mut text = String::from("Exit codes:");
    for (code, meaning) in all {
        let mut lines = meaning.lines().map(str::trim).filter(|l| !l.is_empty());
        text.push_str(&format!("\n  {code:<2} {}", lines.next().unwrap_or("")));
        for line in lines {
            text.push_str("\n     ");
            text.push_str(line);
        }
    }
    text
}

/// An error that carries its own exit code (3 or more), for failures a
/// caller must tell apart from a generic error, e.g. a tampered baseline.
#[derive(Debug)]
pub struct ToolError {
    /// The process exit code, 3 or more.
    pub code: u8,
    /// What went wrong, naming the path or command.
    pub message: String,
}

impl ToolError {
    /// A new error with a tool-specific exit code.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ToolError {}

/// The exit code for an error: the [`ToolError`] code if one is in the
/// chain, else [`ERROR`].
pub fn code_for(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<ToolError>())
        .map_or(ERROR, |tool_error| tool_error.code.max(ERROR))
}

/// Runs a tool's body and turns its result into the process exit code.
///
/// Errors are printed once, on one line, as `<tool>: error: <cause>:
/// <cause>…`, through the redactor: an error message quoting a file or a
/// command line must not leak a secret. Returning a `Result` from `main`
/// would print the `Debug` form instead, which is neither readable nor
/// redacted.
pub fn main_with<F>(tool: &str, body: F) -> ExitCode
where
    F: FnOnce() -> anyhow::Result<u8>,
{
    match body() {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("{tool}: error: {}", error_line(&err));
            ExitCode::from(code_for(&err))
        }
    }
}

/// The standard `main` of every tool: parse the command line, start
/// logging, run with stdout as the report's destination, and map the
/// result to the exit code (see [`main_with`]).
pub fn main<C, F>(tool: &str, run: F) -> ExitCode
where
    C: clap::Parser,
    F: FnOnce(&C, &mut dyn std::io::Write) -> anyhow::Result<u8>,
{
    let cli = match parse::<C>() {
        Ok(cli) => cli,
        Err(err) => return usage_error(tool, &err),
    };
    crate::logging::init();
    let mut stdout = QuietPipe::new(std::io::stdout().lock());
    main_with(tool, || run(&cli, &mut stdout))
}

/// The command line, with `--version` naming the commit the binary was
/// built from ([`crate::version::VERSION_LINE`]).
fn parse<C: clap::Parser>() -> Result<C, clap::Error> {
    let mut command = C::command().version(crate::version::VERSION_LINE);
    let matches = command.try_get_matches_from_mut(std::env::args_os())?;
    C::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
}

/// stdout that ends quietly when its reader goes away: `bench-node --format
/// text | head` prints its first lines and exits with the run's own code,
/// without a panic or an error line. Once a write meets a broken pipe, the
/// rest of the report is discarded (the reader asked for no more).
#[derive(Debug)]
pub struct QuietPipe<W> {
    inner: W,
    closed: bool,
}

impl<W: std::io::Write> QuietPipe<W> {
    /// Wraps `inner` (stdout).
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            closed: false,
        }
    }

    /// Whether the reader went away.
    pub fn closed(&self) -> bool {
        self.closed
    }
}

impl<W: std::io::Write> std::io::Write for QuietPipe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.inner.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}

/// `--help` and `--version` print as clap does; a command-line mistake is
/// one line (`<tool>: error: unexpected argument '--x' found; tip: …`),
/// exit 2.
fn usage_error(tool: &str, err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        err.exit();
    }
    let text = err.render().to_string();
    let line = one_line(&text);
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    eprintln!("{tool}: error: {}", crate::redact::redact(line));
    ExitCode::from(ERROR)
}

/// An error as one redacted line: the causes joined with `: `, and any
/// multi-line cause (a TOML or YAML parser's snippet with a caret under the
/// column) collapsed onto that line, so log shippers keep it whole.
pub fn error_line(err: &anyhow::Error) -> String {
    crate::redact::redact(&one_line(&format!("{err:#}")))
}

/// `text` on one line: each line trimmed, blank lines and snippet gutters
/// (`  |`, `   ^^^`) dropped, the rest joined with `; `, other control
/// characters (`\r`, escapes) turned into spaces.
pub fn one_line(text: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || is_snippet_gutter(line) {
            continue;
        }
        parts.push(line);
    }
    // A stray carriage return or escape would let an error rewrite the
    // terminal line or spoof another log record.
    parts
        .join("; ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A line of a parser's source snippet that carries no words: `|`, `^^^`,
/// `  --> file:1:2` is kept (it carries the position).
fn is_snippet_gutter(line: &str) -> bool {
    line.chars()
        .all(|c| c == '|' || c == '^' || c == '-' || c == '~' || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_closed_pipe_is_quiet() {
        use std::io::Write;
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
        }
        let mut out = QuietPipe::new(Closed);
        out.write_all(b"report\n").unwrap();
        out.flush().unwrap();
        assert!(out.closed());
    }

    #[test]
    fn generic_errors_exit_2() {
        let err = anyhow::anyhow!("boom");
        assert_eq!(code_for(&err), ERROR);
    }

    #[test]
    fn tool_errors_keep_their_code_through_context() {
        let err = Err::<(), _>(ToolError::new(4, "baseline tampered"))
            .context("checking /var/lib/nodeguard/fim.baseline")
            .unwrap_err();
        assert_eq!(code_for(&err), 4);
    }

    #[test]
    fn help_lists_shared_and_own_codes_in_order() {
        let text = help(&[
            (FINDINGS, FINDINGS_HELP),
            (3, "baseline refused:\ncorrupt or edited"),
            (ERROR, "bad config"),
        ]);
        assert_eq!(
            text,
            format!(
                "Exit codes:\n  0  {SUCCESS_HELP}\n  1  {FINDINGS_HELP}\n  2  {ERROR_HELP}:\n     bad config\n  3  baseline refused:\n     corrupt or edited"
            )
        );
    }

    #[test]
    fn the_plain_help_is_the_generated_one() {
        assert_eq!(EXIT_CODES_HELP, help(&[(FINDINGS, FINDINGS_HELP)]));
    }

    #[test]
    fn multi_line_errors_become_one_line() {
        let toml_like = "reading /etc/p.toml: TOML parse error at line 3, column 7\n  |\n3 | name = \n  |       ^\nstring values must be quoted\n";
        let err = anyhow::anyhow!(toml_like.to_string()).context("loading the profile");
        let line = error_line(&err);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("line 3, column 7"), "{line}");
        assert!(line.contains("string values must be quoted"), "{line}");
        assert!(
            line.starts_with("loading the profile: reading /etc/p.toml"),
            "{line}"
        );
    }

    #[test]
    fn usage_errors_render_on_one_line() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Demo {
            #[arg(long)]
            count: u32,
        }
        let err = Demo::try_parse_from(["demo", "--count", "x", "--bogus"]).unwrap_err();
        let line = one_line(&err.render().to_string());
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("--count"), "{line}");
    }

    #[test]
    fn tool_error_codes_below_2_are_raised_to_2() {
        let err = anyhow::Error::new(ToolError::new(1, "misused"));
        assert_eq!(code_for(&err), ERROR);
    }

    proptest::proptest! {
        /// Any error text prints as exactly one line.
        #[test]
        fn any_error_is_one_line(text in "(\\PC|\n|\r){0,120}") {
            let line = error_line(&anyhow::anyhow!(text.clone()));
            proptest::prop_assert!(!line.chars().any(char::is_control), "{:?}", line);
        }
    }
}
