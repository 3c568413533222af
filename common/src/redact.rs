//! Scrubbing secret values out of text before it reaches a log, an error
//! message, a report or a captured subprocess output.
//!
//! A tool registers each secret as soon as it reads it from a file
//! ([`register_secret`]); every log line ([`crate::logging`]), every error
//! printed by [`crate::exit::main_with`] and every captured output in
//! [`crate::process`] then passes through [`redact`]. URL userinfo
//! (`https://user:pass@proxy:3128`) is scrubbed even when nobody registered
//! it, because proxy strings arrive from environment variables.

use std::sync::RwLock;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// A set of secret values to scrub from text.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is masked whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// An empty redactor (still scrubs URL userinfo).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret value. Surrounding whitespace is ignored, because values
    /// read from Secret files usually end with a newline; empty values are
    /// ignored.
    pub fn add(&mut self, secret: &str) {
        for candidate in [secret, secret.trim()] {
            if candidate.is_empty() || self.secrets.iter().any(|s| s == candidate) {
                continue;
            }
            self.secrets.push(candidate.to_string());
        }
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// Returns `text` with every registered secret and every URL userinfo
    /// replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        redact_url_userinfo(&out)
    }
}

static GLOBAL: RwLock<Redactor> = RwLock::new(Redactor {
    secrets: Vec::new(),
});

/// Registers a secret with the process-wide redactor used by logging,
/// error printing and subprocess capture.
pub fn register_secret(secret: &str) {
    let mut guard = GLOBAL
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    guard.add(secret);
}

/// Scrubs `text` with the process-wide redactor.
pub fn redact(text: &str) -> String {
    let guard = GLOBAL
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    guard.redact(text)
}

/// Replaces the userinfo of every `scheme://user[:pass]@host` in `text`.
pub fn redact_url_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((before, after_scheme)) = rest.split_once("://") {
        out.push_str(before);
        out.push_str("://");
        // The authority ends at the first '/', '?', '#' or whitespace.
        let authority_end = after_scheme
            .find(|c: char| {
                matches!(c, '/' | '?' | '#') || c.is_whitespace() || c == '"' || c == '\''
            })
            .unwrap_or(after_scheme.len());
        let (authority, tail) = after_scheme
            .split_at_checked(authority_end)
            .unwrap_or((after_scheme, ""));
        match authority.rsplit_once('@') {
            Some((_, host)) => {
                out.push_str(MASK);
                out.push('@');
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_registered_values_and_their_trimmed_form() {
        let mut r = Redactor::new();
        r.add("s3cr3t-activation\n");
        let text = "activating with s3cr3t-activation now";
        assert_eq!(r.redact(text), "activating with *** now");
    }

    #[test]
    fn longer_secret_wins_over_contained_shorter_one() {
        let mut r = Redactor::new();
        r.add("abc");
        r.add("xxabcxx");
        assert_eq!(r.redact("id=xxabcxx and abc"), "id=*** and ***");
    }

    #[test]
    fn empty_secret_is_ignored() {
        let mut r = Redactor::new();
        r.add("  \n");
        assert_eq!(r.redact("nothing to hide"), "nothing to hide");
    }

    #[test]
    fn url_userinfo_is_masked() {
        assert_eq!(
            redact_url_userinfo(
                "proxy https://bob:hunter2@proxy.corp:3128/path and http://plain.host/x"
            ),
            "proxy https://***@proxy.corp:3128/path and http://plain.host/x"
        );
        assert_eq!(
            redact_url_userinfo("HTTPS_PROXY=http://u@p"),
            "HTTPS_PROXY=http://***@p"
        );
        assert_eq!(redact_url_userinfo("no url here"), "no url here");
        assert_eq!(redact_url_userinfo("trailing ://"), "trailing ://");
    }

    #[test]
    fn url_userinfo_with_at_in_password_is_masked_whole() {
        assert_eq!(
            redact_url_userinfo("http://user:p@ss@host:8080"),
            "http://***@host:8080"
        );
    }

    #[test]
    fn global_registry_applies_everywhere() {
        register_secret("global-token-123");
        assert_eq!(redact("t=global-token-123"), "t=***");
    }

    proptest::proptest! {
        /// Any text: no panic, and a `user:pass@` after `://` never survives.
        #[test]
        fn url_userinfo_redaction_never_panics(text in "\\PC{0,80}") {
            let out = redact_url_userinfo(&text);
            let probe = format!("{text} https://u:pw-canary@h/x");
            let masked = redact_url_userinfo(&probe);
            proptest::prop_assert!(!masked.contains("pw-canary@"), "{}", masked);
            proptest::prop_assert!(out.len() <= text.len() + 3 * text.matches("://").count());
        }
    }
}
