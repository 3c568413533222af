//! Parser for `os-release(5)` files and for the `KEY=value` release files that
//! share its syntax (`/etc/lsb-release`).
//!
//! The grammar is "shell-compatible variable assignments without shell
//! features". We follow systemd's own reader (`env-file.c`) rather than a
//! shell or Python's `shlex`, because systemd is what every distribution tests
//! its file against:
//! - `#` or `;` as the first non-blank character starts a comment; a `#`
//!   inside a value is literal (`BUG_REPORT_URL=…#contact`);
//! - whitespace around the key and after `=` is dropped, trailing whitespace of
//!   an unquoted value is chomped;
//! - unquoted: `\x` is `x`, backslash-newline continues the line;
//! - `'…'`: everything literal up to the next `'`, newlines included;
//! - `"…"`: `\"`, `\\`, `` \` `` and `\$` are unescaped, any other `\c` keeps
//!   its backslash, backslash-newline is dropped;
//! - a closing quote returns to "before value", so `A="x"'y'` concatenates
//!   (tolerated, as systemd does, not promised by the spec);
//! - a line without `=` or with an invalid key is ignored and reported;
//! - a key assigned twice keeps the last value.
//!
//! The parser works on any bytes: invalid UTF-8 is replaced, never rejected,
//! so a corrupt file yields whatever valid assignments it holds plus issues.

use std::collections::BTreeMap;
use std::fmt;

/// All assignments of one os-release-style file, keys as written (case kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// Every valid assignment, including keys the spec does not define.
    pub fields: BTreeMap<String, String>,
    /// Lines that were ignored or repaired, for the report's warnings.
    pub issues: Vec<ParseIssue>,
}

/// Something in the file that the parser skipped or had to guess about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseIssue {
    /// 1-based line where the offending assignment started.
    pub line: usize,
    /// What was wrong.
    pub kind: IssueKind,
}

/// The kinds of [`ParseIssue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueKind {
    /// A non-comment line without `=`.
    MissingEquals,
    /// A key that is not `[A-Za-z_][A-Za-z0-9_]*`.
    InvalidKey,
    /// The file ended inside a quoted value; the value was kept as read.
    UnterminatedQuote,
    /// The file was not valid UTF-8; invalid sequences became U+FFFD.
    InvalidUtf8,
}

impl fmt::Display for ParseIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            IssueKind::MissingEquals => "line without '=' ignored",
            IssueKind::InvalidKey => "assignment with an invalid key ignored",
            IssueKind::UnterminatedQuote => "unterminated quote at end of file",
            IssueKind::InvalidUtf8 => "invalid UTF-8 replaced",
        };
        if self.line == 0 {
            f.write_str(what)
        } else {
            write!(f, "line {}: {what}", self.line)
        }
    }
}

impl OsRelease {
    /// The value of `key`, if assigned (empty values included).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// The value of `key` when it is assigned and not blank.
    pub fn get_nonempty(&self, key: &str) -> Option<&str> {
        self.get(key).map(str::trim).filter(|v| !v.is_empty())
    }

    /// True when the file held no assignment at all (empty, only comments, or garbage).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    PreKey,
    Key,
    PreValue,
    Value,
    ValueEscape,
    SingleQuoted,
    DoubleQuoted,
    DoubleQuotedEscape,
    Comment,
    CommentEscape,
}

/// Characters that `\` protects inside double quotes (the shell's specials).
const DOUBLE_QUOTE_ESCAPABLE: &[char] = &['"', '\\', '`', '$'];

/// Parse an os-release-style file. Never fails and never panics.
pub fn parse(bytes: &[u8]) -> OsRelease {
    let text = String::from_utf8_lossy(bytes);
    let mut parser = Parser::default();
    if matches!(text, std::borrow::Cow::Owned(_)) {
        parser.out.issues.push(ParseIssue {
            line: 0,
            kind: IssueKind::InvalidUtf8,
        });
    }
    for c in text.chars() {
        parser.feed(c);
    }
    parser.finish()
}

#[derive(Debug)]
struct Parser {
    state: State,
    key: String,
    value: String,
    /// Length of `value` up to its last character that must not be chomped
    /// (anything but trailing unquoted whitespace).
    keep: usize,
    line: usize,
    start_line: usize,
    out: OsRelease,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            state: State::PreKey,
            key: String::new(),
            value: String::new(),
            keep: 0,
            line: 1,
            start_line: 1,
            out: OsRelease::default(),
        }
    }
}

impl Parser {
    fn feed(&mut self, c: char) {
        use State::*;
        let newline = c == '\n';
        match self.state {
            PreKey => {
                if c == '#' || c == ';' {
                    self.state = Comment;
                } else if !c.is_whitespace() {
                    self.start_line = self.line;
                    self.key.clear();
                    self.key.push(c);
                    self.state = Key;
                }
            }
            Key => {
                if newline {
                    self.issue(IssueKind::MissingEquals);
                    self.state = PreKey;
                } else if c == '=' {
                    self.value.clear();
                    self.keep = 0;
                    self.state = PreValue;
                } else {
                    self.key.push(c);
                }
            }
            PreValue => {
                if newline {
                    self.assign();
                    self.state = PreKey;
                } else if c == '\'' {
                    self.state = SingleQuoted;
                } else if c == '"' {
                    self.state = DoubleQuoted;
                } else if c == '\\' {
                    self.state = ValueEscape;
                } else if !c.is_whitespace() {
                    self.push_kept(c);
                    self.state = Value;
                }
            }
            Value => {
                if newline {
                    self.value.truncate(self.keep);
                    self.assign();
                    self.state = PreKey;
                } else if c == '\\' {
                    self.state = ValueEscape;
                } else if c.is_whitespace() {
                    self.value.push(c);
                } else {
                    self.push_kept(c);
                }
            }
            ValueEscape => {
                // Backslash-newline continues the value on the next line.
                if !newline {
                    self.push_kept(c);
                }
                self.state = Value;
            }
            SingleQuoted => {
                if c == '\'' {
                    self.state = PreValue;
                } else {
                    self.push_kept(c);
                }
            }
            DoubleQuoted => {
                if c == '"' {
                    self.state = PreValue;
                } else if c == '\\' {
                    self.state = DoubleQuotedEscape;
                } else {
                    self.push_kept(c);
                }
            }
            DoubleQuotedEscape => {
                if DOUBLE_QUOTE_ESCAPABLE.contains(&c) {
                    self.push_kept(c);
                } else if !newline {
                    self.push_kept('\\');
                    self.push_kept(c);
                }
                self.state = DoubleQuoted;
            }
            Comment => {
                if c == '\\' {
                    self.state = CommentEscape;
                } else if newline {
                    self.state = PreKey;
                }
            }
            CommentEscape => self.state = Comment,
        }
        if c == '\n' {
            self.line += 1;
        }
    }

    fn push_kept(&mut self, c: char) {
        self.value.push(c);
        self.keep = self.value.len();
    }

    fn issue(&mut self, kind: IssueKind) {
        self.out.issues.push(ParseIssue {
            line: self.start_line,
            kind,
        });
    }

    fn assign(&mut self) {
        let key = self.key.trim_end();
        if is_valid_key(key) {
            self.out
                .fields
                .insert(key.to_owned(), std::mem::take(&mut self.value));
        } else {
            self.issue(IssueKind::InvalidKey);
            self.value.clear();
        }
        self.key.clear();
        self.keep = 0;
    }

    fn finish(mut self) -> OsRelease {
        use State::*;
        match self.state {
            PreKey | Comment | CommentEscape => {}
            Key => self.issue(IssueKind::MissingEquals),
            PreValue => self.assign(),
            Value | ValueEscape => {
                self.value.truncate(self.keep);
                self.assign();
            }
            SingleQuoted | DoubleQuoted | DoubleQuotedEscape => {
                self.issue(IssueKind::UnterminatedQuote);
                self.assign();
            }
        }
        self.out
    }
}

/// Environment-variable style key, the only kind os-release defines.
fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> BTreeMap<String, String> {
        parse(text.as_bytes()).fields
    }

    fn one(text: &str, key: &str) -> Option<String> {
        fields(text).get(key).cloned()
    }

    #[test]
    fn reads_unquoted_double_and_single_quoted_values() {
        let f = fields("ID=ubuntu\nNAME=\"Ubuntu Linux\"\nOSTREE_VERSION='40.2024.1'\n");
        assert_eq!(f["ID"], "ubuntu");
        assert_eq!(f["NAME"], "Ubuntu Linux");
        assert_eq!(f["OSTREE_VERSION"], "40.2024.1");
    }

    #[test]
    fn unescapes_only_shell_specials_inside_double_quotes() {
        let v = one(r#"A="q\" b\\ t\` d\$ n\n x\y""#, "A").unwrap();
        assert_eq!(v, r#"q" b\ t` d$ n\n x\y"#);
    }

    #[test]
    fn single_quotes_are_fully_literal() {
        assert_eq!(one(r"A='a\b $c'", "A").unwrap(), r"a\b $c");
    }

    #[test]
    fn unquoted_backslash_escapes_next_char_and_continues_lines() {
        assert_eq!(one(r"A=a\ b\$c", "A").unwrap(), "a b$c");
        assert_eq!(one("A=one\\\ntwo\nB=3", "A").unwrap(), "onetwo");
        assert_eq!(one("A=one\\\ntwo\nB=3", "B").unwrap(), "3");
    }

    #[test]
    fn skips_comments_and_blank_lines_but_keeps_hash_inside_values() {
        let f = fields(
            "# VERSION=\"15.0\"\n\n   \n  ; old style\nURL=https://x/#contact\nID=x # not a comment\n",
        );
        assert_eq!(f.get("VERSION"), None);
        assert_eq!(f["URL"], "https://x/#contact");
        assert_eq!(f["ID"], "x # not a comment");
    }

    #[test]
    fn comment_with_quotes_does_not_open_a_value() {
        let f = fields("# SUSE's \"file\n# more '\nID=\"sles\"\n");
        assert_eq!(f["ID"], "sles");
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn trims_whitespace_around_key_and_value() {
        let f = fields("  ID =  debian  \nVERSION_ID= \"12\"  \n");
        assert_eq!(f["ID"], "debian");
        assert_eq!(f["VERSION_ID"], "12");
    }

    #[test]
    fn quoted_whitespace_is_kept() {
        assert_eq!(one("A=\" x \"", "A").unwrap(), " x ");
        assert_eq!(one("A=x\" \"", "A").unwrap(), "x\" \"");
    }

    #[test]
    fn adjacent_quoted_strings_concatenate_like_systemd() {
        assert_eq!(one(r#"A="x"'y'z"#, "A").unwrap(), "xyz");
    }

    #[test]
    fn quoted_values_may_span_lines() {
        let f = fields("A=\"one\ntwo\"\nB=1\n");
        assert_eq!(f["A"], "one\ntwo");
        assert_eq!(f["B"], "1");
    }

    #[test]
    fn later_assignment_wins_and_whole_keys_match() {
        let f = fields("ID=a\nID_LIKE=b\nID=c\nVERSION_ID=1\nVERSION=one\n");
        assert_eq!(f["ID"], "c");
        assert_eq!(f["ID_LIKE"], "b");
        assert_eq!(f["VERSION_ID"], "1");
        assert_eq!(f["VERSION"], "one");
    }

    #[test]
    fn empty_values_are_kept() {
        let f = fields("VERSION_CODENAME=\"\"\nB=\n");
        assert_eq!(f["VERSION_CODENAME"], "");
        assert_eq!(f["B"], "");
    }

    #[test]
    fn missing_final_newline_and_crlf_are_tolerated() {
        assert_eq!(one("ID=alpine", "ID").unwrap(), "alpine");
        // CR is whitespace: chomped from unquoted values, ignored after quotes.
        let f = fields("ID=rhel\r\nVERSION_ID=\"9.4\"\r\n");
        assert_eq!(f["ID"], "rhel");
        assert_eq!(f["VERSION_ID"], "9.4");
    }

    #[test]
    fn reports_lines_without_equals_and_invalid_keys() {
        let r = parse(b"hello world\n1ID=x\nID=ok\nBAD KEY=y\n");
        assert_eq!(r.fields.len(), 1);
        assert_eq!(r.fields["ID"], "ok");
        let kinds: Vec<_> = r.issues.iter().map(|i| (i.line, i.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (1, IssueKind::MissingEquals),
                (2, IssueKind::InvalidKey),
                (4, IssueKind::InvalidKey)
            ]
        );
    }

    #[test]
    fn unterminated_quote_keeps_value_and_reports() {
        let r = parse(b"ID=\"debian\nVERSION_ID=12\n");
        assert_eq!(r.fields["ID"], "debian\nVERSION_ID=12\n");
        assert_eq!(r.issues[0].kind, IssueKind::UnterminatedQuote);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let r = parse(b"ID=deb\xffian\nVERSION_ID=12\n");
        assert_eq!(r.fields["ID"], "deb\u{fffd}ian");
        assert_eq!(r.fields["VERSION_ID"], "12");
        assert_eq!(r.issues[0].kind, IssueKind::InvalidUtf8);
    }

    #[test]
    fn empty_and_comment_only_files_have_no_fields() {
        assert!(parse(b"").is_empty());
        assert!(parse(b"# nothing\n\n").is_empty());
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let r = parse(&bytes);
                for key in r.fields.keys() {
                    prop_assert!(is_valid_key(key));
                }
            }

            #[test]
            fn double_quoted_round_trip(value in "[ -~\u{a0}-\u{2ff}]{0,40}") {
                // Escape the way the spec tells writers to, and read it back.
                let mut quoted = String::from("X=\"");
                for c in value.chars() {
                    if DOUBLE_QUOTE_ESCAPABLE.contains(&c) {
                        quoted.push('\\');
                    }
                    quoted.push(c);
                }
                quoted.push_str("\"\nNEXT=1\n");
                let r = parse(quoted.as_bytes());
                prop_assert_eq!(r.get("X"), Some(value.as_str()));
                prop_assert_eq!(r.get("NEXT"), Some("1"));
                prop_assert!(r.issues.is_empty());
            }

            #[test]
            fn plain_tokens_round_trip_unquoted(key in "[A-Z_][A-Z0-9_]{0,12}", value in "[A-Za-z0-9._:/-]{1,30}") {
                let text = format!("# c\n{key}={value}\n");
                let r = parse(text.as_bytes());
                prop_assert_eq!(r.get(&key), Some(value.as_str()));
            }
        }
    }
}
