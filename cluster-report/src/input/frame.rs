//! Turning one physical input line into the JSON text it carries.
//!
//! The same JSON Lines reach us wrapped in several ways, depending on how
//! they were collected:
//!
//! | collected with | a line looks like |
//! |---|---|
//! | the tool's stdout, a shipper that kept the payload | `{"schema_version":1,…}` |
//! | `kubectl logs --prefix` | `[pod/nodeguard-scan-x7k2p/scan-images] {…}` |
//! | `kubectl logs --timestamps` | `2026-11-24T01:00:00.123456789Z {…}` |
//! | the CRI log files under `/var/log/pods` | `2026-11-24T01:00:00.123456789Z stdout F {…}` |
//!
//! CRI runtimes split long lines (CRI-O at 8 KiB, containerd at 16 KiB by
//! default) into `P` (partial) pieces closed by an `F` piece; [`Joiner`]
//! glues them back so a long record is not lost. Lines on the `stderr`
//! stream are the tools' logs, never records.

/// What a physical line is, once its wrappers are removed.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The whole payload of a line (plain, kubectl-prefixed or CRI `F`).
    Full(&'a str),
    /// A CRI `P` piece: the payload continues on the next piece.
    Partial(&'a str),
    /// A line that cannot carry a record (CRI stderr stream).
    Ignored,
}

/// Strips the kubectl prefix, timestamps and CRI framing from `line`.
pub fn decode(line: &str) -> Frame<'_> {
    let mut rest = line.strip_suffix('\r').unwrap_or(line);
    // `kubectl logs --prefix`: "[pod/<name>/<container>] ".
    if rest.starts_with('[') {
        if let Some((_, after)) = rest.split_once("] ") {
            rest = after;
        }
    }
    // A leading RFC 3339 timestamp: kubectl --timestamps or a CRI log file.
    if let Some((first, after)) = rest.split_once(' ') {
        if looks_like_timestamp(first) {
            if let Some(frame) = decode_cri(after) {
                return frame;
            }
            rest = after;
        }
    }
    Frame::Full(rest)
}

/// `<stream> <tag> <content>` after the CRI timestamp, or `None` when the
/// line is not in CRI format (kubectl's `--timestamps` has no stream).
fn decode_cri(after_timestamp: &str) -> Option<Frame<'_>> {
    let (stream, rest) = after_timestamp.split_once(' ')?;
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    // The tag is "P" or "F", possibly followed by more ':'-separated flags;
    // the content may be empty (an empty line has no trailing space).
    let (tag, content) = rest.split_once(' ').unwrap_or((rest, ""));
    let partial = match tag.split(':').next() {
        Some("P") => true,
        Some("F") => false,
        _ => return None,
    };
    Some(if stream == "stderr" {
        Frame::Ignored
    } else if partial {
        Frame::Partial(content)
    } else {
        Frame::Full(content)
    })
}

/// `2026-11-24T01:00:00Z`-like: digits, dashes, a `T`. Cheap, and only
/// used to decide whether the first word is a wrapper to strip.
fn looks_like_timestamp(word: &str) -> bool {
    let bytes = word.as_bytes();
    bytes.len() >= 20
        && bytes
            .get(..4)
            .is_some_and(|year| year.iter().all(u8::is_ascii_digit))
        && bytes.get(4) == Some(&b'-')
        && bytes.get(10) == Some(&b'T')
}

/// Re-joins CRI partial pieces, in order, within one input.
#[derive(Debug, Default)]
pub struct Joiner {
    pending: String,
    /// `pending` holds a payload already handed out: clear it first.
    handed_out: bool,
}

impl Joiner {
    /// Feeds one physical line; returns the complete payload it closes, if
    /// any. The returned text borrows either the line or the joiner.
    pub fn push<'a>(&'a mut self, line: &'a str) -> Option<&'a str> {
        if self.handed_out {
            self.pending.clear();
            self.handed_out = false;
        }
        match decode(line) {
            Frame::Ignored => None,
            Frame::Partial(piece) => {
                self.pending.push_str(piece);
                None
            }
            Frame::Full(payload) if self.pending.is_empty() => Some(payload),
            Frame::Full(last) => {
                self.pending.push_str(last);
                self.handed_out = true;
                Some(&self.pending)
            }
        }
    }

    /// Pieces left without their closing `F` piece (a truncated log).
    pub fn unterminated(&self) -> bool {
        !self.handed_out && !self.pending.is_empty()
    }
}

/// True when `line` is a CRI partial piece: a chunk boundary must not fall
/// right after it, or the joiner would lose the rest of the record.
pub fn is_partial(line: &str) -> bool {
    matches!(decode(line), Frame::Partial(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REC: &str = r#"{"schema_version":1,"tool":"fim-check"}"#;

    #[test]
    fn plain_line_is_its_own_payload() {
        assert_eq!(decode(REC), Frame::Full(REC));
    }

    #[test]
    fn kubectl_prefix_is_stripped() {
        let line = format!("[pod/nodeguard-fim-8x2kq/fim-check] {REC}");
        assert_eq!(decode(&line), Frame::Full(REC));
    }

    #[test]
    fn kubectl_prefix_and_timestamps_are_stripped() {
        let line =
            format!("[pod/nodeguard-fim-8x2kq/fim-check] 2026-11-24T01:02:03.123456789Z {REC}");
        assert_eq!(decode(&line), Frame::Full(REC));
    }

    #[test]
    fn cri_full_partial_and_stderr() {
        let ts = "2026-11-24T01:02:03.123456789+00:00";
        assert_eq!(decode(&format!("{ts} stdout F {REC}")), Frame::Full(REC));
        assert_eq!(
            decode(&format!("{ts} stdout P {{\"a\"")),
            Frame::Partial("{\"a\"")
        );
        assert_eq!(decode(&format!("{ts} stderr F [WARN] x")), Frame::Ignored);
        assert_eq!(decode(&format!("{ts} stdout F")), Frame::Full(""));
    }

    #[test]
    fn log_text_that_starts_with_a_bracket_is_kept() {
        // No "] " → not a kubectl prefix; the line is left for the JSON check.
        assert_eq!(decode("[WARN]x"), Frame::Full("[WARN]x"));
    }

    #[test]
    fn joiner_reassembles_split_records() {
        let ts = "2026-11-24T01:02:03.1Z";
        let (a, b) = REC.split_at(10);
        let mut joiner = Joiner::default();
        assert_eq!(joiner.push(&format!("{ts} stdout P {a}")), None);
        assert!(joiner.unterminated());
        assert_eq!(joiner.push(&format!("{ts} stderr F log line")), None);
        let line = format!("{ts} stdout F {b}");
        assert_eq!(joiner.push(&line), Some(REC));
        assert!(!joiner.unterminated());
        assert_eq!(joiner.push(REC), Some(REC));
    }

    #[test]
    fn partial_detection() {
        assert!(is_partial("2026-11-24T01:02:03.1Z stdout P {"));
        assert!(!is_partial("2026-11-24T01:02:03.1Z stdout F }"));
        assert!(!is_partial(REC));
    }
}
