//! The selection policy: which paths are recorded with which attributes.
//!
//! A TOML file in AIDE's spirit (see `docs/fim-check.md`):
//! `[[rule]]` selects a `path`, `glob` or `regex` with an attribute
//! expression, recursively unless `recursive = false` (AIDE's `=` lines);
//! `[[exclude]]` removes paths (AIDE's `!` lines) and stops inheritance below
//! them. For a path, the most specific matching rule wins: the one with the
//! longest literal base, a literal path beating a pattern on the same base,
//! and a later rule beating an earlier one on a tie.

use crate::attrs::{parse_expr, AttrSet};
use crate::entry::is_within;
use crate::roots;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The built-in policy for Kubernetes nodes, with the reason for every line.
pub const DEFAULT_POLICY: &str = include_str!("default-policy.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    one_file_system: Option<bool>,
    #[serde(default)]
    groups: BTreeMap<String, String>,
    #[serde(default)]
    rule: Vec<RuleSpec>,
    #[serde(default)]
    exclude: Vec<PatternSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternSpec {
    path: Option<String>,
    glob: Option<String>,
    regex: Option<String>,
    /// Documentation only; not part of the config digest.
    #[allow(dead_code)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    path: Option<String>,
    glob: Option<String>,
    regex: Option<String>,
    attributes: String,
    recursive: Option<bool>,
    /// Documentation only; not part of the config digest.
    #[allow(dead_code)]
    reason: Option<String>,
}

impl RuleSpec {
    fn pattern(&self) -> PatternSpec {
        PatternSpec {
            path: self.path.clone(),
            glob: self.glob.clone(),
            regex: self.regex.clone(),
            reason: None,
        }
    }
}

/// A path selector.
#[derive(Debug)]
pub enum Pattern {
    Literal,
    Glob(globset::GlobSet),
    Regex(regex::bytes::Regex),
}

#[derive(Debug)]
pub struct Matcher {
    pattern: Pattern,
    /// The literal directories every match lies in (the whole path for
    /// `Literal`); a regex alternation can have several.
    pub bases: Vec<Vec<u8>>,
    source: String,
}

impl Matcher {
    fn parse(spec: &PatternSpec) -> Result<Matcher, String> {
        match (&spec.path, &spec.glob, &spec.regex) {
            (Some(p), None, None) => Ok(Matcher {
                bases: vec![normalize(p)?],
                pattern: Pattern::Literal,
                source: format!("path:{}", String::from_utf8_lossy(&normalize(p)?)),
            }),
            (None, Some(g), None) => Ok(Matcher {
                bases: vec![literal_base(g, "*?[{\\")?],
                pattern: Pattern::Glob(compile_glob(g)?),
                source: format!("glob:{g}"),
            }),
            (None, None, Some(r)) => {
                let bases = roots::regex_roots(r)?;
                let re = regex::bytes::Regex::new(&format!("^(?:{r})$"))
                    .map_err(|e| format!("bad regex {r:?}: {}", one_line(&e.to_string())))?;
                Ok(Matcher {
                    bases,
                    pattern: Pattern::Regex(re),
                    source: format!("regex:{r}"),
                })
            }
            _ => Err("each rule/exclude needs exactly one of `path`, `glob`, `regex`".into()),
        }
    }

    pub fn is_literal(&self) -> bool {
        matches!(self.pattern, Pattern::Literal)
    }

    /// The longest base `path` lies in, if any.
    fn base_of(&self, path: &[u8]) -> Option<&[u8]> {
        self.bases
            .iter()
            .filter(|b| is_within(path, b))
            .map(Vec::as_slice)
            .max_by_key(|b| b.len())
    }

    pub fn matches(&self, path: &[u8]) -> bool {
        match &self.pattern {
            Pattern::Literal => self.bases.iter().any(|b| path == b.as_slice()),
            _ if self.base_of(path).is_none() => false,
            Pattern::Glob(g) => g.is_match(Path::new(OsStr::from_bytes(path))),
            Pattern::Regex(r) => r.is_match(path),
        }
    }

    /// For a path it matches: literal paths beat patterns on the same
    /// base; longer bases win.
    fn specificity(&self, path: &[u8]) -> usize {
        self.base_of(path).map_or(0, <[u8]>::len) * 2 + usize::from(self.is_literal())
    }
}

/// A glob as a matcher, refused (not a panic inside globset) when it nests
/// braces too deeply or is too long to compile.
fn compile_glob(g: &str) -> Result<globset::GlobSet, String> {
    if g.len() > roots::MAX_PATTERN_LEN {
        return Err(format!(
            "glob is {} bytes; at most {} are accepted",
            g.len(),
            roots::MAX_PATTERN_LEN
        ));
    }
    let depth = roots::glob_brace_depth(g);
    if depth > roots::MAX_GLOB_NESTING {
        return Err(format!(
            "glob {g:?} nests braces {depth} deep; at most {} levels are accepted",
            roots::MAX_GLOB_NESTING
        ));
    }
    let glob = globset::GlobBuilder::new(g)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("bad glob {g:?}: {e}"))?;
    // A set's build returns an error where `compile_matcher` would panic.
    globset::GlobSetBuilder::new()
        .add(glob)
        .build()
        .map_err(|e| format!("bad glob {g:?}: {}", one_line(&e.to_string())))
}

/// An error from a parser that draws multi-line diagrams, on one line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join("; ")
}

/// An absolute path inside the host root, without `.`/`..`, `//` or a
/// trailing slash.
pub fn normalize(p: &str) -> Result<Vec<u8>, String> {
    if !p.starts_with('/') {
        return Err(format!(
            "path {p:?} must be absolute (relative to the host root)"
        ));
    }
    let mut out = Vec::new();
    for c in p.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." {
            return Err(format!("path {p:?} must not contain `.` or `..`"));
        }
        out.push(b'/');
        out.extend_from_slice(c.as_bytes());
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

/// The directory part of a pattern's literal prefix: `/usr/lib*` → `/usr`.
fn literal_base(pat: &str, meta: &str) -> Result<Vec<u8>, String> {
    if !pat.starts_with('/') {
        return Err(format!(
            "pattern {pat:?} must start with `/` (paths are relative to the host root)"
        ));
    }
    let lit = match pat.find(|c| meta.contains(c)) {
        Some(i) => pat.get(..i).unwrap_or_default(),
        None => pat,
    };
    let dir = lit.get(..lit.rfind('/').unwrap_or(0)).unwrap_or_default();
    normalize(if dir.is_empty() { "/" } else { dir })
}

#[derive(Debug)]
pub struct Rule {
    pub matcher: Matcher,
    pub attrs: AttrSet,
    pub recursive: bool,
}

/// What the walker does with one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index of the rule that records this path, if any.
    pub record: Option<usize>,
    /// Whether to read this directory's children.
    pub descend: bool,
    /// What the children inherit.
    pub inherit: Inherit,
}

/// The recursive rule in effect below a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inherit(pub Option<usize>);

#[derive(Debug)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub excludes: Vec<Matcher>,
    pub one_file_system: bool,
    /// `builtin` or the config file's path.
    pub source: String,
    /// SHA-256 of the canonical form (comments and reasons excluded).
    pub digest: String,
}

impl Policy {
    pub fn builtin() -> Result<Policy, String> {
        Policy::parse(DEFAULT_POLICY, "builtin")
    }

    pub fn parse(text: &str, source: &str) -> Result<Policy, String> {
        let cfg: ConfigFile =
            nodeguard_common::input::parse_toml(text, source).map_err(|e| format!("{e:#}"))?;
        let mut groups: BTreeMap<String, AttrSet> = BTreeMap::new();
        for (name, expr) in &cfg.groups {
            let known = groups.clone();
            let set = parse_expr(expr, &|n| known.get(n).copied())
                .map_err(|e| format!("{source}: group {name}: {e}"))?;
            groups.insert(name.clone(), set);
        }
        let mut rules = Vec::new();
        for (i, r) in cfg.rule.iter().enumerate() {
            let ctx = |e: String| format!("{source}: rule #{}: {e}", i + 1);
            rules.push(Rule {
                matcher: Matcher::parse(&r.pattern()).map_err(ctx)?,
                attrs: parse_expr(&r.attributes, &|n| groups.get(n).copied()).map_err(ctx)?,
                recursive: r.recursive.unwrap_or(true),
            });
        }
        let excludes = cfg
            .exclude
            .iter()
            .enumerate()
            .map(|(i, e)| {
                Matcher::parse(e).map_err(|m| format!("{source}: exclude #{}: {m}", i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if rules.is_empty() {
            return Err(format!("{source}: no [[rule]] selects anything"));
        }
        let one_file_system = cfg.one_file_system.unwrap_or(true);
        let mut canon = format!("fim-check policy v1\none_file_system={one_file_system}\n");
        for r in &rules {
            canon.push_str(&format!(
                "rule {} {} {}\n",
                r.matcher.source,
                r.attrs.bits(),
                r.recursive
            ));
        }
        for e in &excludes {
            canon.push_str(&format!("exclude {}\n", e.source));
        }
        let digest = hex(&Sha256::digest(canon.as_bytes()));
        Ok(Policy {
            rules,
            excludes,
            one_file_system,
            source: source.to_string(),
            digest,
        })
    }

    fn better(&self, path: &[u8], a: Option<usize>, b: usize) -> usize {
        let key = |i: usize| self.rules.get(i).map_or(0, |r| r.matcher.specificity(path));
        match a {
            Some(a) if (key(a), a) > (key(b), b) => a,
            _ => b,
        }
    }

    /// Excludes the baseline's own files when they live inside the host
    /// root: `B`, `B.prev` and the temporary files written beside them.
    /// Not part of the digest (the same baseline path gives the same walk).
    pub fn exclude_baseline(&mut self, rel: &str) -> Result<(), String> {
        let (dir, name) = rel
            .rsplit_once('/')
            .ok_or("baseline path without a directory")?;
        let escaped = globset::escape(name);
        let dir_glob = globset::escape(dir);
        for spec in [
            PatternSpec {
                path: Some(rel.to_string()),
                glob: None,
                regex: None,
                reason: None,
            },
            PatternSpec {
                path: Some(format!("{rel}.prev")),
                glob: None,
                regex: None,
                reason: None,
            },
            PatternSpec {
                path: None,
                glob: Some(format!("{dir_glob}/.{escaped}.*.tmp")),
                regex: None,
                reason: None,
            },
            PatternSpec {
                path: None,
                glob: Some(format!("{dir_glob}/.{escaped}.prev.*.tmp")),
                regex: None,
                reason: None,
            },
        ] {
            self.excludes.push(Matcher::parse(&spec)?);
        }
        Ok(())
    }

    pub fn is_excluded(&self, path: &[u8]) -> bool {
        self.excludes.iter().any(|e| e.matches(path))
    }

    /// Whether a rule names this exact directory (the walk may cross a
    /// mount point there even with `one_file_system`).
    pub fn is_rule_base(&self, path: &[u8]) -> bool {
        self.rules
            .iter()
            .any(|r| r.matcher.bases.iter().any(|b| b == path))
    }

    /// Whether some rule may select paths strictly below `dir`.
    fn rule_below(&self, dir: &[u8]) -> bool {
        self.rules.iter().any(|r| {
            r.matcher
                .bases
                .iter()
                .any(|b| is_within(b, dir) && (b.as_slice() != dir || !r.matcher.is_literal()))
        })
    }

    pub fn decide(&self, path: &[u8], is_dir: bool, parent: Inherit) -> Decision {
        if self.is_excluded(path) {
            return Decision {
                record: None,
                descend: is_dir && self.rule_below(path),
                inherit: Inherit(None),
            };
        }
        let mut record = parent.0;
        let mut inherit = parent.0;
        for (i, r) in self.rules.iter().enumerate() {
            if r.matcher.matches(path) {
                record = Some(self.better(path, record, i));
                if r.recursive {
                    inherit = Some(self.better(path, inherit, i));
                }
            }
        }
        Decision {
            record,
            descend: is_dir && (inherit.is_some() || self.rule_below(path)),
            inherit: Inherit(inherit),
        }
    }
}

impl Policy {
    /// Whether the walk records anything at or below `dir`, judged from
    /// the rules alone (not the file system): every ancestor is descended
    /// into, and `dir` itself is recorded or descended into.
    pub fn selects_within(&self, dir: &[u8]) -> bool {
        let mut inherit = Inherit::default();
        for ancestor in ancestors(dir) {
            let d = self.decide(ancestor, true, inherit);
            if !d.descend {
                return false;
            }
            inherit = d.inherit;
        }
        let d = self.decide(dir, true, inherit);
        d.record.is_some() || d.descend
    }

    /// What the rules cover, for messages: `/etc, /usr/bin, ... (N more)`.
    pub fn coverage(&self) -> String {
        let mut bases: Vec<String> = self
            .rules
            .iter()
            .flat_map(|r| &r.matcher.bases)
            .map(|b| crate::entry::display_path(b))
            .collect();
        bases.sort();
        bases.dedup();
        const SHOWN: usize = 12;
        let more = bases.len().saturating_sub(SHOWN);
        bases.truncate(SHOWN);
        let mut out = bases.join(", ");
        if more > 0 {
            out.push_str(&format!(" and {more} more"));
        }
        out
    }
}

/// The proper ancestors of a normalised absolute path, `/` first.
pub fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let root: &[u8] = b"/";
    let inner = path
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, c)| **c == b'/')
        .filter_map(move |(i, _)| path.get(..i));
    std::iter::once(root)
        .filter(move |_| path != b"/")
        .chain(inner)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::Attr;

    const CFG: &str = r#"
        [groups]
        BIN = "content-inode"
        [[rule]]
        path = "/etc"
        attributes = "content"
        [[rule]]
        path = "/etc/ssh"
        attributes = "perms"
        recursive = false
        [[rule]]
        glob = "/usr/lib*"
        attributes = "BIN"
        [[rule]]
        regex = '/var/lib/kubelet/[^/]+\.yaml'
        attributes = "content"
        [[rule]]
        path = "/var/log/app.log"
        attributes = "log"
        [[exclude]]
        path = "/etc/resolv.conf"
        [[exclude]]
        glob = "/etc/**/*.swp"
        [[exclude]]
        path = "/var"
    "#;

    fn rec(p: &Policy, path: &str, parents: &[&str]) -> Option<AttrSet> {
        let mut inh = Inherit::default();
        for d in parents {
            inh = p.decide(d.as_bytes(), true, inh).inherit;
        }
        p.decide(path.as_bytes(), false, inh)
            .record
            .map(|i| p.rules[i].attrs)
    }

    #[test]
    fn most_specific_rule_wins_and_non_recursive_stops() {
        let p = Policy::parse(CFG, "t").expect("parse");
        let content = rec(&p, "/etc/passwd", &["/", "/etc"]).expect("etc");
        assert!(content.has(Attr::Sha256));
        let ssh = rec(&p, "/etc/ssh", &["/", "/etc"]).expect("ssh dir");
        assert!(!ssh.has(Attr::Sha256), "the /etc/ssh rule is more specific");
        // /etc/ssh is non-recursive: its children fall back to /etc's rule.
        let cfg = rec(&p, "/etc/ssh/sshd_config", &["/", "/etc", "/etc/ssh"]).expect("child");
        assert!(cfg.has(Attr::Sha256));
    }

    #[test]
    fn globs_regexes_and_excludes() {
        let p = Policy::parse(CFG, "t").expect("parse");
        assert!(rec(&p, "/usr/lib64", &["/", "/usr"]).is_some());
        assert!(rec(
            &p,
            "/usr/lib/x/y.so",
            &["/", "/usr", "/usr/lib", "/usr/lib/x"]
        )
        .is_some());
        assert!(rec(&p, "/usr/share", &["/", "/usr"]).is_none());
        assert!(rec(&p, "/etc/resolv.conf", &["/", "/etc"]).is_none());
        assert!(rec(&p, "/etc/a/.x.swp", &["/", "/etc", "/etc/a"]).is_none());
        let kl = ["/", "/var", "/var/lib", "/var/lib/kubelet"];
        assert!(rec(&p, "/var/lib/kubelet/config.yaml", &kl).is_some());
        assert!(rec(&p, "/var/lib/kubelet/pods", &kl).is_none());
        assert!(rec(&p, "/var/log/app.log", &["/", "/var", "/var/log"])
            .expect("log")
            .has(Attr::Growing));
    }

    #[test]
    fn descent_is_limited_to_selected_trees() {
        let p = Policy::parse(CFG, "t").expect("parse");
        let root = p.decide(b"/", true, Inherit::default());
        assert!(root.descend && root.record.is_none());
        // /var is excluded but holds more specific selections.
        let var = p.decide(b"/var", true, root.inherit);
        assert!(var.descend && var.record.is_none() && var.inherit.0.is_none());
        assert!(!p.decide(b"/var/cache", true, var.inherit).descend);
        assert!(!p.decide(b"/home", true, root.inherit).descend);
        assert!(p.decide(b"/var/lib/kubelet", true, var.inherit).descend);
    }

    #[test]
    fn digest_ignores_comments_and_reasons_but_not_rules() {
        let a = Policy::parse(CFG, "a").expect("a");
        let b = Policy::parse(&format!("# comment\n{CFG}"), "b").expect("b");
        assert_eq!(a.digest, b.digest);
        let c = Policy::parse(&CFG.replace("\"perms\"", "\"content\""), "c").expect("c");
        assert_ne!(a.digest, c.digest);
    }

    #[test]
    fn bad_configs_are_explained() {
        let e =
            Policy::parse("[[rule]]\npath = \"etc\"\nattributes = \"content\"", "x").unwrap_err();
        assert!(e.contains("absolute"), "{e}");
        let e = Policy::parse("[[rule]]\npath = \"/etc\"\nattributes = \"nope\"", "x").unwrap_err();
        assert!(e.contains("nope"), "{e}");
        let e = Policy::parse("[[rule]]\nregex = \"/(\"\nattributes = \"perm\"", "x").unwrap_err();
        assert!(e.contains("bad regex"), "{e}");
        let e = Policy::parse(
            "[[rule]]\npath = \"/a\"\nglob = \"/b\"\nattributes = \"perm\"",
            "x",
        )
        .unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
        assert!(Policy::parse("bogus = 1", "x").is_err());
        assert!(Policy::parse("", "x").unwrap_err().contains("no [[rule]]"));
    }

    #[test]
    fn path_limits_outside_the_policy_select_nothing() {
        let p = Policy::builtin().expect("builtin");
        assert!(p.selects_within(b"/etc"));
        assert!(p.selects_within(b"/etc/ssh/new"));
        assert!(p.selects_within(b"/"));
        assert!(!p.selects_within(b"/srv/app"));
        assert!(!p.selects_within(b"/proc/1"));
        assert!(p.coverage().contains("/etc"));
        let v: Vec<&[u8]> = ancestors(b"/a/b/c").collect();
        assert_eq!(v, [&b"/"[..], b"/a", b"/a/b"]);
        assert_eq!(ancestors(b"/").count(), 0);
    }

    fn rule_with(kind: &str, pattern: &str) -> String {
        let quoted = serde_json::to_string(pattern).expect("json string");
        format!("[[rule]]\n{kind} = {quoted}\nattributes = \"content\"\n")
    }

    proptest::proptest! {
        /// Any pattern text parses or is refused with one line; matching
        /// and selection never panic.
        #[test]
        fn arbitrary_patterns_never_panic(
            body in "[/a-z{},*?\\[\\]()|^$.+\\\\-]{0,300}",
            any in ".{0,80}",
        ) {
            for pat in [format!("/{body}"), any.clone(), body.clone()] {
                for kind in ["glob", "regex", "path"] {
                    match Policy::parse(&rule_with(kind, &pat), "t") {
                        Ok(p) => {
                            let _ = p.selects_within(b"/a/b");
                            let _ = p.decide(b"/a", true, Inherit::default());
                            let _ = p.coverage();
                        }
                        Err(e) => proptest::prop_assert!(!e.contains('\n'), "{e}"),
                    }
                }
            }
        }
    }

    /// Every alternative of a regex counts, for rules and for excludes.
    #[test]
    fn regex_alternatives_select_and_exclude_everywhere() {
        let p = Policy::parse(
            "[[rule]]\nregex = '/usr/bin/tool|/etc/passwd'\nattributes = \"content\"\n\
             [[rule]]\npath = \"/var\"\nattributes = \"perms\"\n\
             [[exclude]]\nregex = '/var/a|/var/b/c'\n",
            "t",
        )
        .expect("policy");
        assert!(rec(&p, "/etc/passwd", &["/", "/etc"]).is_some());
        assert!(rec(&p, "/usr/bin/tool", &["/", "/usr", "/usr/bin"]).is_some());
        assert!(rec(&p, "/etc/shadow", &["/", "/etc"]).is_none());
        assert!(p.decide(b"/etc", true, Inherit::default()).descend);
        assert!(p.is_excluded(b"/var/a") && p.is_excluded(b"/var/b/c"));
        assert!(!p.is_excluded(b"/var/b"));
    }

    #[test]
    fn deep_brace_nesting_is_refused() {
        let g = format!("/{}b{}", "{a,".repeat(150), "}".repeat(150));
        let e = Policy::parse(&rule_with("glob", &g), "t").unwrap_err();
        assert!(
            e.contains("rule #1") && e.contains("nests braces 150 deep"),
            "{e}"
        );
        let ok = format!("/{}b{}", "{a,".repeat(8), "}".repeat(8));
        assert!(Policy::parse(&rule_with("glob", &ok), "t").is_ok());
    }

    #[test]
    fn builtin_policy_parses() {
        let p = Policy::builtin().expect("builtin");
        assert!(p.one_file_system);
        assert!(p.is_excluded(b"/proc"));
        assert!(rec(&p, "/usr/bin/kubelet", &["/", "/usr", "/usr/bin"]).is_some());
    }
}
