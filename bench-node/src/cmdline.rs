//! Command lines: splitting `/proc/<pid>/cmdline` and reading Go-style flags.
//!
//! kube-bench greps `ps -ef` output for a flag name as a substring, so
//! `--config` also matches `--config-dir` and a value with a space is cut.
//! Here argv comes NUL-separated from `/proc`, flags are matched by exact
//! name, and both `--name=value` and `--name value` forms are understood,
//! as the kubelet's flag parser (spf13/pflag) understands them.

use std::collections::BTreeMap;

use crate::value::{Value, ValueType};

/// Splits a raw `/proc/<pid>/cmdline`. Normally arguments are NUL-separated;
/// a process that rewrote its argv into one space-separated string (or a
/// wrapper that passed everything as one argument) is split like a shell
/// would, honouring single and double quotes and backslashes.
pub fn split_cmdline(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let parts: Vec<&str> = text.trim_end_matches('\0').split('\0').collect();
    if parts.len() == 1 && parts[0].contains(' ') {
        return shell_words(parts[0]);
    }
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Splits a string into words with POSIX-shell quoting rules (no
/// expansion). An unterminated quote takes the rest of the line.
pub fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => word.push(e),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => word.push('\\'),
                        },
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(e) = chars.next() {
                    word.push(e);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// One occurrence of a flag on a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagUse {
    /// The text after `=`, or the next argument for `--name value`.
    pub value: Option<String>,
    /// The value came from the next argument, not from `=`. For a boolean
    /// flag pflag does not take the next argument, so such a flag is `true`.
    pub detached: bool,
}

/// The flags of one command line, by normalised name, in order of use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    uses: BTreeMap<String, Vec<FlagUse>>,
}

impl Flags {
    /// Parses the arguments after the program name (and after a
    /// `hyperkube` sub-command). Positional words are ignored.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Flags {
        let mut flags = Flags::default();
        let mut i = 0;
        while i < args.len() {
            let arg = args[i].as_ref();
            i += 1;
            if arg == "--" {
                break;
            }
            let Some(body) = arg.strip_prefix("--") else {
                continue;
            };
            let (name, use_) = match body.split_once('=') {
                Some((name, value)) => (
                    name,
                    FlagUse {
                        value: Some(value.to_string()),
                        detached: false,
                    },
                ),
                None => {
                    let next = args.get(i).map(AsRef::as_ref);
                    match next {
                        Some(v) if !v.starts_with("--") => {
                            i += 1;
                            (
                                body,
                                FlagUse {
                                    value: Some(v.to_string()),
                                    detached: true,
                                },
                            )
                        }
                        _ => (
                            body,
                            FlagUse {
                                value: None,
                                detached: false,
                            },
                        ),
                    }
                }
            };
            flags.uses.entry(normalize(name)).or_default().push(use_);
        }
        flags
    }

    /// Adds occurrences from another source that comes later on the
    /// effective command line (e.g. k3s `kubelet-arg` entries).
    pub fn extend(&mut self, other: Flags) {
        for (name, uses) in other.uses {
            self.uses.entry(name).or_default().extend(uses);
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.uses.contains_key(&normalize(name))
    }

    /// The raw text of the last occurrence (`""` for a bare flag).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.uses
            .get(&normalize(name))
            .and_then(|uses| uses.last())
            .map(|u| u.value.as_deref().unwrap_or(""))
    }

    /// The typed value as the component's flag parser would see it: the
    /// last occurrence wins, except that repeated list flags append and
    /// repeated map flags (`--feature-gates`) merge.
    pub fn typed(&self, name: &str, ty: ValueType) -> Option<Result<Value, String>> {
        let uses = self.uses.get(&normalize(name))?;
        let result = match ty {
            ValueType::Bool => {
                let last = uses.last()?;
                match (&last.value, last.detached) {
                    (None, _) | (Some(_), true) => Ok(Value::Bool(true)),
                    (Some(v), false) => ty.parse_flag(v),
                }
            }
            ValueType::List => uses
                .iter()
                .map(|u| ty.parse_flag(u.value.as_deref().unwrap_or("")))
                .try_fold(Vec::new(), |mut acc, v| {
                    if let Value::List(items) = v? {
                        acc.extend(items);
                    }
                    Ok(acc)
                })
                .map(Value::List),
            ValueType::Map => uses
                .iter()
                .map(|u| ty.parse_flag(u.value.as_deref().unwrap_or("")))
                .try_fold(BTreeMap::new(), |mut acc, v| {
                    if let Value::Map(map) = v? {
                        acc.extend(map);
                    }
                    Ok(acc)
                })
                .map(Value::Map),
            _ => {
                let last = uses.last()?;
                match &last.value {
                    Some(v) => ty.parse_flag(v),
                    None => Err(format!("--{name} has no value")),
                }
            }
        };
        Some(result)
    }

    /// All flag names, for diagnostics.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.uses.keys().map(String::as_str)
    }
}

/// pflag's word-separator normalisation used by Kubernetes components:
/// `--read_only_port` is `--read-only-port`.
fn normalize(name: &str) -> String {
    name.replace('_', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_separated_cmdline() {
        let raw = b"/usr/bin/kubelet\0--config=/var/lib/kubelet/config.yaml\0--v=2\0";
        assert_eq!(
            split_cmdline(raw),
            vec![
                "/usr/bin/kubelet",
                "--config=/var/lib/kubelet/config.yaml",
                "--v=2"
            ]
        );
    }

    #[test]
    fn rewritten_cmdline_is_split_with_quotes() {
        let raw = br#"kubelet --config="/etc/kube let/config.yaml" --hostname-override='node a' --x=a\ b"#;
        assert_eq!(
            split_cmdline(raw),
            vec![
                "kubelet",
                "--config=/etc/kube let/config.yaml",
                "--hostname-override=node a",
                "--x=a b"
            ]
        );
    }

    #[test]
    fn exact_names_not_prefixes() {
        let flags = Flags::parse(&["--config-dir=/etc/kubelet.conf.d", "--v=2"]);
        assert!(!flags.contains("config"));
        assert_eq!(flags.raw("config-dir"), Some("/etc/kubelet.conf.d"));
    }

    #[test]
    fn both_value_forms_and_bare_bools() {
        let flags = Flags::parse(&[
            "--kubeconfig",
            "/etc/kubernetes/kubelet.conf",
            "--rotate-certificates",
            "--anonymous-auth=false",
            "--read_only_port=0",
        ]);
        assert_eq!(
            flags.raw("kubeconfig"),
            Some("/etc/kubernetes/kubelet.conf")
        );
        assert_eq!(
            flags.typed("rotate-certificates", ValueType::Bool),
            Some(Ok(Value::Bool(true)))
        );
        assert_eq!(
            flags.typed("anonymous-auth", ValueType::Bool),
            Some(Ok(Value::Bool(false)))
        );
        assert_eq!(
            flags.typed("read-only-port", ValueType::Int),
            Some(Ok(Value::Int(0)))
        );
    }

    #[test]
    fn last_occurrence_wins_lists_append_maps_merge() {
        let flags = Flags::parse(&[
            "--anonymous-auth=true",
            "--anonymous-auth=false",
            "--feature-gates=A=true,B=false",
            "--feature-gates=B=true",
            "--tls-cipher-suites=X",
            "--tls-cipher-suites=Y",
        ]);
        assert_eq!(
            flags.typed("anonymous-auth", ValueType::Bool),
            Some(Ok(Value::Bool(false)))
        );
        let Some(Ok(Value::Map(gates))) = flags.typed("feature-gates", ValueType::Map) else {
            panic!("map expected");
        };
        assert_eq!(gates.get("B").map(String::as_str), Some("true"));
        assert_eq!(gates.get("A").map(String::as_str), Some("true"));
        assert_eq!(
            flags.typed("tls-cipher-suites", ValueType::List),
            Some(Ok(Value::List(vec!["X".into(), "Y".into()])))
        );
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        let flags = Flags::parse(&["--read-only-port=ten", "--anonymous-auth=maybe"]);
        assert!(matches!(
            flags.typed("read-only-port", ValueType::Int),
            Some(Err(_))
        ));
        assert!(matches!(
            flags.typed("anonymous-auth", ValueType::Bool),
            Some(Err(_))
        ));
        assert!(flags.typed("absent", ValueType::Int).is_none());
    }
}
