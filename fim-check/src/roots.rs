//! Where a pattern's matches can lie: the literal directories ("roots")
//! a walk must start below so that it sees every path a glob or regex can
//! match. A regex is parsed into regex-syntax's HIR (the same parser the
//! `regex` crate compiles), so alternations, groups and anchors are
//! understood instead of cutting the text at the first metacharacter:
//! `/usr/bin/tool|/etc/passwd` has the roots `/usr/bin` and `/etc`.

use regex_syntax::hir::{Hir, HirKind};

/// At most this many literal prefixes are followed through a pattern;
/// beyond it they are shortened (still correct, only a wider walk).
const MAX_PREFIXES: usize = 64;

/// Glob braces nested deeper than this are refused (globset compiles them
/// into a regex that can exceed the regex crate's nesting limit).
pub const MAX_GLOB_NESTING: usize = 8;
/// Longest glob or regex accepted in a policy, in bytes.
pub const MAX_PATTERN_LEN: usize = 4096;

/// A literal every match (of a sub-pattern) starts with; `complete` when
/// the sub-pattern matches exactly that literal.
#[derive(Debug, Clone)]
struct Prefix {
    lit: Vec<u8>,
    complete: bool,
}

fn empty(complete: bool) -> Vec<Prefix> {
    vec![Prefix {
        lit: Vec::new(),
        complete,
    }]
}

/// The longest prefix all of `ps` share (an incomplete prefix).
fn common(ps: &[Prefix]) -> Vec<Prefix> {
    let mut lit = ps.first().map(|p| p.lit.clone()).unwrap_or_default();
    for p in ps {
        let n = lit.iter().zip(&p.lit).take_while(|(a, b)| a == b).count();
        lit.truncate(n);
    }
    vec![Prefix {
        lit,
        complete: false,
    }]
}

fn prefixes(h: &Hir) -> Vec<Prefix> {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => empty(true),
        HirKind::Literal(l) => vec![Prefix {
            lit: l.0.to_vec(),
            complete: true,
        }],
        HirKind::Class(_) => empty(false),
        HirKind::Repetition(r) => {
            if r.min == 0 {
                empty(false)
            } else {
                let mut ps = prefixes(&r.sub);
                for p in &mut ps {
                    p.complete = false;
                }
                ps
            }
        }
        HirKind::Capture(c) => prefixes(&c.sub),
        HirKind::Concat(subs) => {
            let mut cur = empty(true);
            for sub in subs {
                if !cur.iter().any(|p| p.complete) {
                    break;
                }
                let next = prefixes(sub);
                let mut out = Vec::new();
                for c in &cur {
                    if !c.complete {
                        out.push(c.clone());
                        continue;
                    }
                    for n in &next {
                        let mut lit = c.lit.clone();
                        lit.extend_from_slice(&n.lit);
                        out.push(Prefix {
                            lit,
                            complete: n.complete,
                        });
                    }
                }
                if out.len() > MAX_PREFIXES {
                    for c in &mut cur {
                        c.complete = false;
                    }
                    break;
                }
                cur = out;
            }
            cur
        }
        HirKind::Alternation(alts) => {
            let all: Vec<Prefix> = alts.iter().flat_map(prefixes).collect();
            if all.len() > MAX_PREFIXES {
                common(&all)
            } else {
                all
            }
        }
    }
}

/// The directory part of a literal prefix, normalised: `/usr/lib` →
/// `/usr`, `/etc/` → `/etc`. Stops before a `.` or `..` component.
fn directory_of(lit: &[u8]) -> Vec<u8> {
    let dir = match lit.iter().rposition(|&c| c == b'/') {
        Some(i) => lit.get(..i).unwrap_or_default(),
        None => &[],
    };
    let mut out = Vec::new();
    for c in dir.split(|&c| c == b'/').filter(|c| !c.is_empty()) {
        if c == b"." || c == b".." {
            break;
        }
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Removes duplicates and roots inside another root.
fn minimal(mut roots: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    roots.sort();
    roots.dedup();
    let all = roots.clone();
    roots.retain(|r| !all.iter().any(|o| o != r && crate::entry::is_within(r, o)));
    roots
}

/// The roots of a regex (as written in a policy; it is matched against the
/// whole path). Error: it does not parse, or some alternative does not
/// start with a literal `/`, so no directory bounds its matches.
pub fn regex_roots(re: &str) -> Result<Vec<Vec<u8>>, String> {
    if re.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "regex is {} bytes; at most {MAX_PATTERN_LEN} are accepted",
            re.len()
        ));
    }
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(re)
        .map_err(|e| format!("bad regex {re:?}: {}", one_line(&e.to_string())))?;
    let mut roots = Vec::new();
    for p in prefixes(&hir) {
        if !p.lit.starts_with(b"/") {
            return Err(format!(
                "regex {re:?}: cannot tell which directories to walk: a match may start with {:?}, not a literal `/`; start every alternative with an absolute path (e.g. `/etc/a|/usr/b`)",
                String::from_utf8_lossy(&p.lit)
            ));
        }
        roots.push(directory_of(&p.lit));
    }
    Ok(minimal(roots))
}

/// How deep `{...}` alternations nest in a glob (escaped braces and braces
/// inside `[...]` classes do not count).
pub fn glob_brace_depth(glob: &str) -> usize {
    let (mut depth, mut max, mut escaped, mut class) = (0usize, 0usize, false, false);
    for c in glob.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' if !class => class = true,
            ']' if class => class = false,
            '{' if !class => {
                depth += 1;
                max = max.max(depth);
            }
            '}' if !class => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// A parser error on one line (regex-syntax draws a caret diagram).
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(re: &str) -> Vec<String> {
        regex_roots(re)
            .expect("roots")
            .into_iter()
            .map(|r| String::from_utf8(r).expect("utf8"))
            .collect()
    }

    #[test]
    fn every_alternative_gives_a_root() {
        assert_eq!(roots("/usr/bin/tool|/etc/passwd"), ["/etc", "/usr/bin"]);
        assert_eq!(roots("^(/opt/a|/srv/b)/conf$"), ["/opt/a", "/srv/b"]);
        assert_eq!(roots("/var/lib/kubelet/[^/]+\\.yaml"), ["/var/lib/kubelet"]);
        assert_eq!(roots("/etc/(ssh|ssl)/.*"), ["/etc/ssh", "/etc/ssl"]);
        assert_eq!(roots("/usr/lib.*"), ["/usr"]);
        assert_eq!(roots("(?i)/etc/x"), ["/"]);
        assert_eq!(roots("/a/b|/a/b/c|/a/d"), ["/a"]);
        assert_eq!(roots("/x(/y)?/z"), ["/"]);
        assert_eq!(roots("/x/(y)+/z"), ["/x"]);
    }

    #[test]
    fn unrooted_alternatives_are_refused() {
        for re in ["/etc/passwd|.*shadow", ".*", "etc/x", "(/a|b)/c", "x?/etc"] {
            let e = regex_roots(re).unwrap_err();
            assert!(e.contains("cannot tell"), "{re}: {e}");
        }
        assert!(regex_roots("/(").unwrap_err().contains("bad regex"));
        assert!(!regex_roots("/(").unwrap_err().contains('\n'));
    }

    #[test]
    fn huge_alternations_stay_bounded() {
        let re: Vec<String> = (0..500).map(|i| format!("/d/{i}")).collect();
        assert_eq!(roots(&re.join("|")), ["/d"]);
        let re = "/(a|b)(c|d)(e|f)(g|h)(i|j)(k|l)(m|n)/x";
        assert!(!roots(re).is_empty());
    }

    #[test]
    fn brace_depth() {
        assert_eq!(glob_brace_depth("/a/{b,c}/{d,{e,f}}"), 2);
        assert_eq!(glob_brace_depth("/a/\\{b/[{]"), 0);
    }
}
