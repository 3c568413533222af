//! `--format text`: the report laid out for a person at a terminal.
//!
//! Each tool renders its own report (its `text.rs`) from the same typed
//! report as the JSON, with the helpers here so all six look alike:
//! a [`header`], [`Painter`] for colour, [`table`] for tables.
//!
//! Colour is decided once, for stdout, by `anstream` (no detection of our
//! own): on when stdout is a terminal, off when it is piped or redirected,
//! off whenever `NO_COLOR` is set, and forced on by `CLICOLOR_FORCE=1`
//! (e.g. `CLICOLOR_FORCE=1 bench-node --format text | less -R`).

use std::fmt::Display;

use anstyle::{AnsiColor, Style};
use comfy_table::{presets, ContentArrangement, Table};

use crate::report::{rfc3339, RunContext};

/// Paints text when colour is on; passes it through unchanged otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Painter {
    color: bool,
}

/// A status's tone, for [`Painter::tone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Passed, clean, done.
    Good,
    /// Needs a look (warnings, medium findings).
    Warn,
    /// Failed, critical, changed.
    Bad,
    /// Informational.
    Info,
    /// Secondary detail.
    Dim,
}

impl Painter {
    /// Colour as `anstream` decides for stdout: a terminal, no `NO_COLOR`,
    /// or `CLICOLOR_FORCE` set.
    pub fn for_stdout() -> Self {
        let choice = anstream::AutoStream::choice(&std::io::stdout());
        Self {
            color: matches!(
                choice,
                anstream::ColorChoice::Always | anstream::ColorChoice::AlwaysAnsi
            ),
        }
    }

    /// Never colour (tests, files).
    pub fn plain() -> Self {
        Self { color: false }
    }

    /// Always colour (tests).
    pub fn colored() -> Self {
        Self { color: true }
    }

    /// Whether this painter emits escapes.
    pub fn is_color(&self) -> bool {
        self.color
    }

    /// `text` in `style`.
    pub fn paint(&self, style: Style, text: impl Display) -> String {
        if self.color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_string()
        }
    }

    /// `text` in the colour of a tone.
    pub fn tone(&self, tone: Tone, text: impl Display) -> String {
        let style = match tone {
            Tone::Good => Style::new().fg_color(Some(AnsiColor::Green.into())),
            Tone::Warn => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
            Tone::Bad => Style::new().fg_color(Some(AnsiColor::Red.into())).bold(),
            Tone::Info => Style::new().fg_color(Some(AnsiColor::Blue.into())),
            Tone::Dim => Style::new().dimmed(),
        };
        self.paint(style, text)
    }

    /// `text` in bold.
    pub fn bold(&self, text: impl Display) -> String {
        self.paint(Style::new().bold(), text)
    }
}

/// The first line of every text report: tool, version, node, time, e.g.
/// `bench-node 0.1.0 · node worker-1 · 2026-11-24T01:02:03.456Z`, then a
/// blank line.
pub fn header(ctx: &RunContext, p: &Painter) -> String {
    format!(
        "{} {} · node {} · {}\n\n",
        p.bold(ctx.tool),
        ctx.version,
        p.bold(&ctx.node),
        rfc3339(ctx.started_at)
    )
}

/// A table with our look: a header row, light borders, column widths from
/// the content (comfy-table does the arithmetic, ANSI-aware).
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    table
}

/// `n thing` or `n things`.
pub fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("{n} {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// Any report as indented `key: value` lines, from its JSON form: the
/// fallback for a report without a renderer of its own.
pub fn generic(value: &serde_json::Value, p: &Painter) -> String {
    let mut out = String::new();
    generic_into(&mut out, value, 0, p);
    out
}

fn generic_into(out: &mut String, value: &serde_json::Value, depth: usize, p: &Painter) {
    use serde_json::Value;
    let pad = "  ".repeat(depth);
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        out.push_str(&format!("{pad}{}:\n", p.bold(key)));
                        generic_into(out, v, depth + 1, p);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{}:\n", p.bold(key)));
                        generic_into(out, v, depth + 1, p);
                    }
                    _ => out.push_str(&format!("{pad}{}: {}\n", p.bold(key), scalar(v))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(_) | Value::Array(_) => {
                        out.push_str(&format!("{pad}-\n"));
                        generic_into(out, item, depth + 1, p);
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                }
            }
        }
        _ => out.push_str(&format!("{pad}{}\n", scalar(value))),
    }
}

/// A JSON scalar without quotes around strings.
pub fn scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::Object(m) if m.is_empty() => "{}".to_string(),
        serde_json::Value::Array(a) if a.is_empty() => "[]".to_string(),
        other => other.to_string(),
    }
}

/// A rendered text report made safe for a terminal: colour sequences (SGR,
/// `ESC [ digits ; m`) are kept; every other control character (sequences
/// that move the cursor, set the window title or clear the screen, `\r`,
/// backspace), which can only come from a file name, an image tag or a log
/// line an attacker chose, is shown as `\u{..}` instead of acting on the
/// operator's terminal.
pub fn sanitize(rendered: &str) -> String {
    let mut out = String::with_capacity(rendered.len());
    let mut chars = rendered.char_indices();
    while let Some((at, c)) = chars.next() {
        if c == '\n' || c == '\t' || !c.is_control() {
            out.push(c);
            continue;
        }
        if c == '\u{1b}' {
            if let Some(sgr) = rendered.get(at..).and_then(sgr_prefix) {
                out.push_str(sgr);
                // The rest of the sequence is ASCII: one char per byte.
                for _ in 1..sgr.len() {
                    chars.next();
                }
                continue;
            }
        }
        out.push_str(&c.escape_unicode().to_string());
    }
    out
}

/// The SGR (colour) sequence at the start of `s`, such as `\x1b[1;31m`.
fn sgr_prefix(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("\u{1b}[")?;
    let params = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';')
        .count();
    if rest.as_bytes().get(params) != Some(&b'm') {
        return None;
    }
    s.get(..2 + params + 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sanitize_keeps_colour_and_escapes_the_rest() {
        let hostile = "\u{1b}[1;31mFAIL\u{1b}[0m /etc/\u{1b}]0;pwned\u{7}x\rlog\u{1b}[2J\tend\n";
        let safe = sanitize(hostile);
        assert!(
            safe.starts_with("\u{1b}[1;31mFAIL\u{1b}[0m /etc/"),
            "{safe:?}"
        );
        assert!(
            safe.contains("\\u{1b}]0;pwned\\u{7}x\\u{d}log\\u{1b}[2J\tend\n"),
            "{safe:?}"
        );
        assert_eq!(
            safe.matches('\u{1b}').count(),
            2,
            "only the two colour sequences stay"
        );
        assert_eq!(sanitize("plain: ünïcödé ✓\n"), "plain: ünïcödé ✓\n");
        assert_eq!(sanitize("\u{1b}["), "\\u{1b}[");
    }

    use super::*;

    #[test]
    fn plain_has_no_escapes_and_colored_has() {
        assert_eq!(Painter::plain().tone(Tone::Bad, "FAIL"), "FAIL");
        let c = Painter::colored().tone(Tone::Bad, "FAIL");
        assert!(c.contains("\u{1b}[") && c.contains("FAIL"), "{c:?}");
    }

    #[test]
    fn tables_size_columns_from_content() {
        let mut t = table(["image", "CRITICAL"]);
        t.add_row(vec!["docker.io/library/nginx:1.25", "3"]);
        let s = t.to_string();
        assert!(s.contains("docker.io/library/nginx:1.25"), "{s}");
        assert!(s
            .lines()
            .all(|l| l.chars().count() == s.lines().next().unwrap().chars().count()));
    }

    #[test]
    fn generic_lists_keys() {
        let v = serde_json::json!({"a": 1, "b": {"c": "x"}, "d": [1, 2]});
        let s = generic(&v, &Painter::plain());
        assert_eq!(s, "a: 1\nb:\n  c: x\nd:\n  - 1\n  - 2\n");
    }
}
